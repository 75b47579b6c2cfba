//! Reading the files a zoo names: regular files only, each kind with a size limit.
//!
//! A FIFO opened for reading blocks until a writer comes, and a device such as `/dev/zero` never
//! ends; a zoo, a benchmark or a command line from someone else may name either. Every file the
//! zoo reads goes through [`read_regular`]: it opens without blocking, asks the opened file (not
//! the path, which may be swapped in between) what it is, refuses anything but a regular file,
//! and reads at most the limit for its [`FileKind`].

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// What a file is for, and so how large it may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `variants/NAME.yaml` (1 MiB).
    Manifest,
    /// `tokenizer.json` (64 MiB; the largest public ones are ~20 MiB).
    Tokenizer,
    /// An `.onnx` graph (2 GiB, protobuf's own limit).
    Graph,
    /// A graph's external-data file (64 GiB).
    ExternalData,
    /// The parity goldens (64 MiB).
    Goldens,
    /// A JSONL file of records: a benchmark's annotations, predictions (4 GiB).
    Records,
}

impl FileKind {
    /// The largest file of this kind that is read.
    pub fn limit(self) -> u64 {
        match self {
            FileKind::Manifest => MIB,
            FileKind::Tokenizer | FileKind::Goldens => 64 * MIB,
            FileKind::Graph => 2 * GIB,
            FileKind::ExternalData => 64 * GIB,
            FileKind::Records => 4 * GIB,
        }
    }

    /// The kind's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            FileKind::Manifest => "manifest",
            FileKind::Tokenizer => "tokenizer",
            FileKind::Graph => "graph",
            FileKind::ExternalData => "external data",
            FileKind::Goldens => "goldens",
            FileKind::Records => "records file",
        }
    }
}

/// Opens `path` for reading if it is a regular file of at most `limit` bytes; returns the file and
/// its length.
pub fn open_regular(path: &Path, what: &'static str, limit: u64) -> Result<(File, u64)> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Opening a FIFO without O_NONBLOCK waits for a writer; with it, the open returns at once
        // and the type check below refuses the file.
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(|e| Error::io("opening", path, e))?;
    let meta = file.metadata().map_err(|e| Error::io("reading", path, e))?;
    if !meta.is_file() {
        return Err(Error::FileRefused {
            what,
            path: path.to_path_buf(),
            message: format!("is not a regular file ({})", kind(&meta)),
        });
    }
    if meta.len() > limit {
        return Err(too_large(what, path, meta.len(), limit));
    }
    Ok((file, meta.len()))
}

/// Reads the regular file at `path`, at most `limit` bytes.
pub fn read_regular(path: &Path, what: &'static str, limit: u64) -> Result<Vec<u8>> {
    let (file, len) = open_regular(path, what, limit)?;
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    // The file may grow after the size check: read one byte past the limit to notice.
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes).map_err(|e| Error::io("reading", path, e))?;
    if bytes.len() as u64 > limit {
        return Err(too_large(what, path, bytes.len() as u64, limit));
    }
    Ok(bytes)
}

/// Reads a file of `kind` (see [`FileKind::limit`]).
pub fn read(path: &Path, kind: FileKind) -> Result<Vec<u8>> {
    read_regular(path, kind.name(), kind.limit())
}

/// Reads a file of `kind` straight into shared memory (`Arc::from` a `Vec` would copy it, holding
/// the file twice for a moment: gigabytes, for a large model's weights).
pub fn read_shared(path: &Path, kind: FileKind) -> Result<Arc<[u8]>> {
    let (mut file, len) = open_regular(path, kind.name(), kind.limit())?;
    let changed = |now: String| Error::FileRefused {
        what: kind.name(),
        path: path.to_path_buf(),
        message: format!("changed size while it was read ({len} bytes, then {now})"),
    };
    let n = usize::try_from(len).map_err(|_| too_large(kind.name(), path, len, usize::MAX as u64))?;
    let mut bytes: Arc<[u8]> = std::iter::repeat_n(0u8, n).collect();
    let Some(buf) = Arc::get_mut(&mut bytes) else { return Err(changed("shared".into())) };
    file.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => changed("fewer".into()),
        _ => Error::io("reading", path, e),
    })?;
    let mut more = [0u8; 1];
    loop {
        match file.read(&mut more) {
            Ok(0) => return Ok(bytes),
            Ok(_) => return Err(changed("more".into())),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("reading", path, e)),
        }
    }
}

/// Reads a UTF-8 text file of `kind`.
pub fn read_text(path: &Path, kind: FileKind) -> Result<String> {
    String::from_utf8(read(path, kind)?).map_err(|e| Error::FileRefused {
        what: kind.name(),
        path: path.to_path_buf(),
        message: format!("is not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
    })
}

/// What kind of file `meta` is, for messages.
fn kind(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        return "a folder";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "not a plain file"
}

fn too_large(what: &'static str, path: &Path, size: u64, limit: u64) -> Error {
    Error::FileRefused {
        what,
        path: path.to_path_buf(),
        message: format!("is {size} bytes, over the limit of {limit} bytes for a {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_fifos_devices_folders_and_oversized_files() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("creating", "tempdir", e))?;
        let fifo = dir.path().join("fifo.yaml");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Returns at once (no writer) with a named refusal.
        let err = read(&fifo, FileKind::Manifest).unwrap_err().to_string();
        assert!(err.contains("not a regular file (a FIFO)") && err.contains("fifo.yaml"), "{err}");
        let err = read(Path::new("/dev/zero"), FileKind::Manifest).unwrap_err().to_string();
        assert!(err.contains("not a regular file (a device)"), "{err}");
        let err = read(dir.path(), FileKind::Manifest).unwrap_err().to_string();
        assert!(err.contains("not a regular file (a folder)"), "{err}");
        let big = dir.path().join("big.yaml");
        std::fs::write(&big, vec![b'#'; (MIB + 1) as usize]).map_err(|e| Error::io("writing", &big, e))?;
        let err = read(&big, FileKind::Manifest).unwrap_err().to_string();
        assert!(err.contains("over the limit of 1048576 bytes"), "{err}");
        let ok = dir.path().join("ok.yaml");
        std::fs::write(&ok, b"a: 1").map_err(|e| Error::io("writing", &ok, e))?;
        assert_eq!(read_text(&ok, FileKind::Manifest)?, "a: 1");
        Ok(())
    }
}
