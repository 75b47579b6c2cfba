//! The crate's one error type.
//!
//! Every variant names the file, line, field or tensor it is about and, where it applies, what was
//! expected and what was found, so that a user can fix their input without reading our code
//! (after ort's `src/error.rs` and candle's shape errors).

use std::path::PathBuf;

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in lynx-zoo.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{action} `{path}`: {source}")]
    Io {
        /// What we were doing ("reading", "creating", ...).
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// A line of a JSONL file is not what it should be (bad JSON, a missing or mistyped key, a
    /// missing media file).
    #[error("{path}:{line}: {message}")]
    Jsonl {
        /// The JSONL file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong, with the expected form.
        message: String,
    },

    /// An image could not be decoded or is not acceptable (too large, wrong size, ...).
    #[error("image `{path}`: {message}")]
    Image {
        /// The image file (or frame).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// An argument or option has a value that cannot work.
    #[error("invalid {what} `{value}`: {expected}")]
    InvalidArgument {
        /// The option or field.
        what: &'static str,
        /// The value given.
        value: String,
        /// What would be accepted.
        expected: String,
    },

    /// Two result sets cannot be compared (different items, different lengths).
    #[error("cannot compare: {0}")]
    Mismatch(String),
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { action, path: path.into(), source }
    }

    /// An [`Error::Jsonl`] at `path:line`.
    pub fn jsonl(path: impl Into<PathBuf>, line: usize, message: impl Into<String>) -> Self {
        Self::Jsonl { path: path.into(), line, message: message.into() }
    }

    /// An [`Error::Image`] for `path`.
    pub fn image(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Image { path: path.into(), message: message.into() }
    }
}
