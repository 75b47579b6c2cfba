//! Zoo-relative paths and checksums.
//!
//! Every file a manifest names is relative to the zoo root and must stay inside it: absolute
//! paths, `..` components and symlinks that resolve outside the root are rejected before anything
//! is opened, so a manifest from an untrusted zoo cannot make the runtime read `/etc/passwd`.
//! Checksums are verified before ONNX Runtime sees a file.

use std::fs::File;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A file named by a manifest: as written, resolved, and with its expected checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    /// The path as written in the manifest (relative to the zoo root).
    pub rel: String,
    /// The path on disk (zoo root joined with `rel`).
    pub path: PathBuf,
    /// Expected sha256, lowercase hex.
    pub sha256: String,
}

/// Resolves `rel` under `root`, rejecting anything that could leave the root.
///
/// `manifest` and `field` only name the offending place in the error.
pub fn resolve(root: &Path, rel: &str, manifest: &Path, field: &str) -> Result<PathBuf> {
    let escape = |why: &str| Error::PathEscape {
        manifest: manifest.to_path_buf(),
        field: field.to_string(),
        path: rel.to_string(),
        reason: why.to_string(),
    };
    if rel.is_empty() {
        return Err(escape("the path is empty"));
    }
    let candidate = Path::new(rel);
    for component in candidate.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err(escape("`..` is not allowed")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(escape("absolute paths are not allowed; paths are relative to the zoo root"))
            }
        }
    }
    let joined = root.join(candidate);
    // A symlink may point anywhere: compare where it really leads. A file that does not exist yet
    // cannot escape; reading it later fails with its own I/O error.
    if let (Ok(real), Ok(real_root)) = (joined.canonicalize(), root.canonicalize()) {
        if !real.starts_with(&real_root) {
            return Err(escape(&format!("it resolves to `{}`, outside the zoo", real.display())));
        }
    }
    Ok(joined)
}

/// Checks that `sha256` is 64 hex digits and returns it in lowercase.
pub fn parse_sha256(value: &str, manifest: &Path, field: &str) -> Result<String> {
    if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(value.to_ascii_lowercase())
    } else {
        Err(Error::manifest(manifest, field, format!("`{value}` is not a sha256 (64 hex digits)")))
    }
}

/// The sha256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io("reading", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

impl FileRef {
    /// Verifies the file's checksum.
    pub fn verify(&self) -> Result<()> {
        let got = sha256_file(&self.path)?;
        if got == self.sha256 {
            Ok(())
        } else {
            Err(Error::Checksum { path: self.path.clone(), expected: self.sha256.clone(), got })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_parent_and_absolute_paths() {
        let root = Path::new("/tmp");
        let m = Path::new("variants/x.yaml");
        assert!(matches!(resolve(root, "../etc/passwd", m, "f"), Err(Error::PathEscape { .. })));
        assert!(matches!(resolve(root, "onnx/../../x", m, "f"), Err(Error::PathEscape { .. })));
        assert!(matches!(resolve(root, "/etc/passwd", m, "f"), Err(Error::PathEscape { .. })));
        assert!(matches!(resolve(root, "", m, "f"), Err(Error::PathEscape { .. })));
        assert_eq!(resolve(root, "onnx/a.onnx", m, "f").ok(), Some(PathBuf::from("/tmp/onnx/a.onnx")));
    }

    #[test]
    fn rejects_symlinks_that_leave_the_root() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("creating", "tempdir", e))?;
        let root = dir.path().join("zoo");
        std::fs::create_dir_all(root.join("onnx")).map_err(|e| Error::io("creating", &root, e))?;
        std::fs::write(dir.path().join("outside.onnx"), b"x").map_err(|e| Error::io("writing", "x", e))?;
        std::os::unix::fs::symlink(dir.path().join("outside.onnx"), root.join("onnx/link.onnx"))
            .map_err(|e| Error::io("linking", "x", e))?;
        std::fs::write(root.join("onnx/inside.onnx"), b"y").map_err(|e| Error::io("writing", "y", e))?;
        std::os::unix::fs::symlink(root.join("onnx/inside.onnx"), root.join("onnx/ok.onnx"))
            .map_err(|e| Error::io("linking", "y", e))?;
        let m = Path::new("m.yaml");
        let err = resolve(&root, "onnx/link.onnx", m, "graphs.vision.path");
        assert!(matches!(err, Err(Error::PathEscape { ref field, .. }) if field == "graphs.vision.path"), "{err:?}");
        assert!(resolve(&root, "onnx/ok.onnx", m, "f").is_ok());
        Ok(())
    }

    #[test]
    fn sha256_of_known_bytes() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("creating", "tempdir", e))?;
        let p = dir.path().join("abc");
        std::fs::write(&p, b"abc").map_err(|e| Error::io("writing", &p, e))?;
        assert_eq!(sha256_file(&p)?, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let bad = FileRef { rel: "abc".into(), path: p, sha256: "00".repeat(32) };
        assert!(matches!(bad.verify(), Err(Error::Checksum { .. })));
        Ok(())
    }

    #[test]
    fn sha256_syntax() {
        let m = Path::new("m.yaml");
        assert!(parse_sha256(&"A".repeat(64), m, "f").is_ok());
        assert!(parse_sha256("abc", m, "f").is_err());
        assert!(parse_sha256(&"g".repeat(64), m, "f").is_err());
    }
}
