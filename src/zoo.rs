//! A zoo: a folder holding `variants/*.yaml` and the files they name (usually under `onnx/`).
//!
//! [`Zoo::open`] lists the variants; [`Zoo::manifest`] reads and validates one;
//! [`Zoo::check`] verifies it fully (schema, paths, checksums, tokenizer, and every graph's inputs
//! and outputs against its ONNX Runtime session); [`Zoo::load`] verifies checksums before creating
//! any session and returns a [`Model`].
//!
//! ```
//! use lynx_zoo::{GenerationOptions, Media, RuntimeOptions, Zoo};
//! let zoo = Zoo::open("tests/fixtures/runtime/zoo")?;
//! assert_eq!(zoo.variants(), ["tiny", "tiny-blind", "tiny-xattn"]);
//! let report = zoo.check("tiny", &RuntimeOptions::new())?;
//! assert_eq!(report.graphs, ["vision", "connector", "embed", "decoder"]);
//! let mut model = zoo.load("tiny", &RuntimeOptions::new())?;
//! let image = Media::image("tests/fixtures/runtime/media/scene.png");
//! let answer = model.ask(&image, "what colour is the block?", &GenerationOptions::greedy(4))?;
//! assert_eq!(answer.tokens.len(), 4);
//! assert_eq!(answer.provider, lynx_zoo::ExecutionProvider::Cpu);
//! # Ok::<(), lynx_zoo::Error>(())
//! ```
//!
//! `Zoo` is `Send + Sync` and cheap to share: load models from it on several threads at once.
//! Checksums of files shared by several variants (a frozen backbone, the tokenizer) are computed
//! once per process and remembered by path, size and modification time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use crate::error::{Error, Result};
use crate::manifest::{FileRef, Manifest};
use crate::model::Model;
use crate::runtime::{RuntimeOptions, Session};
use crate::text::TextCodec;

/// A zoo directory.
#[derive(Debug)]
pub struct Zoo {
    root: PathBuf,
    names: Vec<String>,
    hashes: Mutex<HashMap<PathBuf, HashEntry>>,
}

/// A remembered checksum: file size, modification time, sha256.
type HashEntry = (u64, Option<SystemTime>, String);

/// What `check` verified for one variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// Variant name.
    pub name: String,
    /// Files whose checksum matched.
    pub files: usize,
    /// Bytes in those files.
    pub bytes: u64,
    /// Graphs whose session inputs and outputs match the manifest.
    pub graphs: Vec<String>,
    /// Tokenizer vocabulary size.
    pub vocab: usize,
}

impl Zoo {
    /// Opens the zoo at `dir` (the folder holding `variants/`). A zoo without variants is valid
    /// (and empty).
    pub fn open(dir: impl AsRef<Path>) -> Result<Zoo> {
        let root = dir.as_ref().to_path_buf();
        if !root.is_dir() {
            return Err(Error::io(
                "opening zoo",
                &root,
                std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
            ));
        }
        let variants = root.join("variants");
        let mut names = Vec::new();
        if variants.is_dir() {
            for entry in std::fs::read_dir(&variants).map_err(|e| Error::io("listing", &variants, e))? {
                let path = entry.map_err(|e| Error::io("listing", &variants, e))?.path();
                if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                    if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                        names.push(stem.to_string());
                    }
                }
            }
        }
        names.sort();
        Ok(Zoo { root, names, hashes: Mutex::new(HashMap::new()) })
    }

    /// The zoo folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Variant names, sorted.
    pub fn variants(&self) -> &[String] {
        &self.names
    }

    /// The manifest file of `name` (whether or not it exists).
    fn manifest_path(&self, name: &str) -> PathBuf {
        let yaml = self.root.join("variants").join(format!("{name}.yaml"));
        if yaml.exists() {
            yaml
        } else {
            self.root.join("variants").join(format!("{name}.yml"))
        }
    }

    /// Reads and validates the manifest of `name`.
    pub fn manifest(&self, name: &str) -> Result<Manifest> {
        if !self.names.iter().any(|n| n == name) {
            return Err(Error::UnknownVariant {
                name: name.to_string(),
                zoo: self.root.clone(),
                similar: similar(name, &self.names),
            });
        }
        Manifest::from_file(&self.manifest_path(name), &self.root)
    }

    /// Verifies the checksum of `file` (cached per process).
    pub fn verify_file(&self, file: &FileRef) -> Result<()> {
        let meta = std::fs::metadata(&file.path).map_err(|e| Error::io("reading", &file.path, e))?;
        let key = (meta.len(), meta.modified().ok());
        let cached = self
            .hashes
            .lock()
            .ok()
            .and_then(|h| h.get(&file.path).filter(|(len, m, _)| (*len, *m) == key).map(|(_, _, d)| d.clone()));
        let got = match cached {
            Some(d) => d,
            None => {
                let d = crate::manifest::paths::sha256_file(&file.path)?;
                if let Ok(mut h) = self.hashes.lock() {
                    h.insert(file.path.clone(), (key.0, key.1, d.clone()));
                }
                d
            }
        };
        if got == file.sha256 {
            Ok(())
        } else {
            Err(Error::Checksum { path: file.path.clone(), expected: file.sha256.clone(), got })
        }
    }

    /// Verifies every file of a manifest (graphs, external data, tokenizer, goldens).
    pub fn verify(&self, manifest: &Manifest) -> Result<(usize, u64)> {
        let mut files = manifest.files();
        if let Some(g) = &manifest.goldens {
            files.push(g);
        }
        let mut bytes = 0;
        for f in &files {
            self.verify_file(f)?;
            bytes += std::fs::metadata(&f.path).map(|m| m.len()).unwrap_or(0);
        }
        Ok((files.len(), bytes))
    }

    /// Checks one variant fully, creating (and dropping) a session per graph.
    pub fn check(&self, name: &str, options: &RuntimeOptions) -> Result<CheckReport> {
        let manifest = self.manifest(name)?;
        self.check_seed_of(&manifest)?;
        let (files, bytes) = self.verify(&manifest)?;
        let text = TextCodec::load(&manifest.tokenizer, &manifest.prompt)?;
        let mut graphs = Vec::new();
        for spec in manifest.graphs.iter() {
            let session = Session::load(spec, options)?;
            session.check_io(spec)?;
            graphs.push(spec.role.to_string());
        }
        Ok(CheckReport { name: manifest.name, files, bytes, graphs, vocab: text.vocab_size() })
    }

    /// A seed replicate (`seed_of: X`) must repeat a variant of this zoo with the same axes and
    /// another training seed.
    pub fn check_seed_of(&self, manifest: &Manifest) -> Result<()> {
        let Some(of) = &manifest.seed_of else { return Ok(()) };
        let bad = |message: String| Error::manifest(&manifest.file, "seed_of", message);
        let target = self.manifest(of).map_err(|e| bad(format!("`{of}`: {e}")))?;
        if target.axes != manifest.axes {
            return Err(bad(format!("`{of}` has other axes: a seed replicate changes only the training seed")));
        }
        if target.provenance.seed == manifest.provenance.seed {
            return Err(bad(format!(
                "`{of}` has the same training seed ({:?}); a replicate needs another one",
                manifest.provenance.seed
            )));
        }
        if target.seed_of.is_some() {
            return Err(bad(format!("`{of}` is itself a replicate; name the variant it repeats")));
        }
        Ok(())
    }

    /// Loads a variant: validates its manifest, verifies every checksum, then creates sessions.
    pub fn load(&self, name: &str, options: &RuntimeOptions) -> Result<Model> {
        let manifest = self.manifest(name)?;
        self.verify(&manifest)?;
        Model::from_verified_manifest(manifest, options)
    }
}

/// Names within a small edit distance of `name`, or containing it, best first.
pub fn similar(name: &str, names: &[String]) -> Vec<String> {
    let mut scored: Vec<(usize, &String)> = names
        .iter()
        .map(|n| (edit_distance(name, n), n))
        .filter(|(d, n)| *d <= 2.max(name.len() / 4) || n.contains(name) || name.contains(n.as_str()))
        .collect();
    scored.sort();
    scored.into_iter().take(3).map(|(_, n)| n.clone()).collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let names: Vec<String> =
            ["lynx", "lynx-xattn", "lynx-projector", "lynx-blind"].iter().map(|s| s.to_string()).collect();
        assert_eq!(similar("lynx-xatn", &names).first().map(String::as_str), Some("lynx-xattn"));
        assert!(similar("zzzzzzzz", &names).is_empty());
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
