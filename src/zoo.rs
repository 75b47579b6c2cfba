//! A zoo: a folder holding `variants/*.yaml` and the files they name (usually under `onnx/`).
//!
//! [`Zoo::open`] lists the variants; [`Zoo::manifest`] reads and validates one;
//! [`Zoo::check`] verifies it fully (schema, paths, checksums, external data, tokenizer, and every
//! graph's inputs and outputs against its ONNX Runtime session); [`Zoo::load`] does the same and
//! returns the [`Model`].
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
//!
//! What runs is what was verified: [`Zoo::load`] and [`Zoo::check`] read each file once (regular
//! files only, each kind within its size limit, see [`crate::files`]), hash those bytes, and build
//! the tokenizer and every ONNX Runtime session from them -- external data included, handed over
//! from memory. A graph that names an external-data file its manifest does not list is refused
//! (see [`crate::onnx_proto`]).

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::files::{self, FileKind};
use crate::manifest::paths::hex;
use crate::manifest::{FileRef, GraphSpec, Manifest};
use crate::model::Model;
use crate::onnx_proto;
use crate::runtime::{GraphBytes, RuntimeOptions};

/// A zoo directory.
#[derive(Debug)]
pub struct Zoo {
    root: PathBuf,
    names: Vec<String>,
}

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
        Ok(Zoo { root, names })
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

    /// Reads and validates the manifest of `name`. The manifest must be a regular file inside the
    /// zoo (a symlink may point elsewhere in the zoo, not out of it).
    pub fn manifest(&self, name: &str) -> Result<Manifest> {
        if !self.names.iter().any(|n| n == name) {
            return Err(Error::UnknownVariant {
                name: name.to_string(),
                zoo: self.root.clone(),
                similar: similar(name, &self.names),
            });
        }
        let path = self.manifest_path(name);
        if let (Ok(real), Ok(root)) = (path.canonicalize(), self.root.canonicalize()) {
            if !real.starts_with(&root) {
                return Err(Error::FileRefused {
                    what: "manifest",
                    path,
                    message: format!("is a link to `{}`, outside the zoo `{}`", real.display(), root.display()),
                });
            }
        }
        Manifest::from_file(&path, &self.root)
    }

    /// Reads every file of a manifest (graphs, external data, tokenizer, goldens) once, each a
    /// regular file within its size limit, and verifies its checksum. Sessions and the tokenizer
    /// are then built from these bytes, never by reopening a path.
    pub fn read_verified(&self, manifest: &Manifest) -> Result<VerifiedFiles> {
        let mut verified = VerifiedFiles::default();
        for spec in manifest.graphs.iter() {
            verified.add(&spec.file, FileKind::Graph)?;
            for data in &spec.external_data {
                verified.add(data, FileKind::ExternalData)?;
            }
        }
        verified.add(&manifest.tokenizer.file, FileKind::Tokenizer)?;
        if let Some(g) = &manifest.goldens {
            verified.add(g, FileKind::Goldens)?;
        }
        // Every graph names only listed external data.
        for spec in manifest.graphs.iter() {
            verified.graph(spec)?;
        }
        Ok(verified)
    }

    /// Checks one variant fully: its files as [`Zoo::read_verified`] does, then a session per
    /// graph from the verified bytes, whose inputs and outputs must match the manifest, and the
    /// tokenizer against `model.vocab_size`.
    pub fn check(&self, name: &str, options: &RuntimeOptions) -> Result<CheckReport> {
        let manifest = self.manifest(name)?;
        self.check_seed_of(&manifest)?;
        let files = self.read_verified(&manifest)?;
        let model = Model::from_verified(manifest, &files, options)?;
        let graphs = model.manifest().graphs.iter().map(|g| g.role.to_string()).collect();
        Ok(CheckReport {
            name: model.name().to_string(),
            files: files.count(),
            bytes: files.bytes(),
            graphs,
            vocab: model.text().vocab_size(),
        })
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
        if target.seed == manifest.seed {
            return Err(bad(format!(
                "`{of}` has the same training seed ({:?}); a replicate needs another one",
                manifest.seed
            )));
        }
        if target.seed_of.is_some() {
            return Err(bad(format!("`{of}` is itself a replicate; name the variant it repeats")));
        }
        Ok(())
    }

    /// Loads a variant: validates its manifest, reads and verifies every file, then creates
    /// sessions from the verified bytes.
    pub fn load(&self, name: &str, options: &RuntimeOptions) -> Result<Model> {
        let manifest = self.manifest(name)?;
        let files = self.read_verified(&manifest)?;
        Model::from_verified(manifest, &files, options)
    }
}

/// The files of one variant as read and verified by [`Zoo::read_verified`], by path.
#[derive(Debug, Default)]
pub struct VerifiedFiles {
    files: HashMap<PathBuf, Arc<[u8]>>,
    bytes: u64,
}

impl VerifiedFiles {
    fn add(&mut self, file: &FileRef, kind: FileKind) -> Result<()> {
        if self.files.contains_key(&file.path) {
            return Ok(());
        }
        let bytes = files::read_shared(&file.path, kind)?;
        let got = hex(&Sha256::digest(&bytes));
        if got != file.sha256 {
            return Err(Error::Checksum { path: file.path.clone(), expected: file.sha256.clone(), got });
        }
        self.bytes += bytes.len() as u64;
        self.files.insert(file.path.clone(), bytes);
        Ok(())
    }

    /// The verified bytes of `file`.
    pub fn get(&self, file: &FileRef) -> Result<Arc<[u8]>> {
        self.files.get(&file.path).cloned().ok_or_else(|| Error::FileRefused {
            what: "file",
            path: file.path.clone(),
            message: "was not among the files read and verified for this variant".to_string(),
        })
    }

    /// Distinct files.
    pub fn count(&self) -> usize {
        self.files.len()
    }

    /// Their bytes in all.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The graph's model and the external data it names, each checked against the manifest's
    /// `external_data` list: a location the list lacks is refused, whatever the file holds.
    pub fn graph(&self, spec: &GraphSpec) -> Result<GraphBytes> {
        let model = self.get(&spec.file)?;
        let refused = |message: String| Error::ExternalData {
            graph: spec.role.to_string(),
            path: spec.file.path.clone(),
            message,
        };
        let locations = onnx_proto::external_locations(&model)
            .map_err(|e| refused(format!("is not a readable ONNX model ({e})")))?;
        let folder = Path::new(&spec.file.rel).parent().unwrap_or(Path::new(""));
        let mut external = Vec::with_capacity(locations.len());
        for location in locations {
            let field = format!("graphs.{}.external_data", spec.role);
            let rel = zoo_relative(folder, &location).ok_or_else(|| {
                refused(format!("names external data `{location}`, which leaves the model's folder (absolute or `..`)"))
            })?;
            let listed = spec.external_data.iter().find(|d| zoo_relative(Path::new(""), &d.rel).as_ref() == Some(&rel));
            let Some(listed) = listed else {
                return Err(refused(format!(
                    "reads external data `{location}` (`{}` in the zoo), which `{field}` does not list; \
                     list it with its sha256 so that its bytes are verified",
                    rel.display()
                )));
            };
            external.push((location, self.get(listed)?));
        }
        Ok(GraphBytes { path: spec.file.path.clone(), model, external })
    }
}

/// `location` (relative to `folder`) as a normalised zoo-relative path; `None` when it is absolute
/// or climbs out with `..`.
fn zoo_relative(folder: &Path, location: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in folder.join(location).components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
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
