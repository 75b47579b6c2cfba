//! The crate's one error type.
//!
//! Every variant names the file, line, field or tensor it is about and, where it applies, what was
//! expected and what was found, so that a user can fix their input without reading our code
//! (after ort's `src/error.rs` and candle's shape errors).

use std::path::PathBuf;
use std::sync::Arc;

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

    /// Answering one benchmark record failed.
    #[error("{location}: {source}")]
    Item {
        /// `file:line` of the record.
        location: String,
        /// What went wrong.
        #[source]
        source: Box<Error>,
    },

    /// A manifest is not valid YAML.
    #[error("manifest `{path}` is not valid YAML: {message}")]
    ManifestSyntax {
        /// The manifest file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },

    /// A manifest parses but a field is missing, mistyped or inconsistent with another.
    #[error("manifest `{path}`: field `{field}`: {message}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// The field, as a dotted path (`graphs.decoder.inputs`).
        field: String,
        /// What is wrong, with the expected value.
        message: String,
    },

    /// A manifest path leaves the zoo directory (absolute, `..`, or a symlink pointing out).
    #[error("manifest `{manifest}`: field `{field}`: path `{path}` escapes the zoo: {reason}")]
    PathEscape {
        /// The manifest file.
        manifest: PathBuf,
        /// The field holding the path.
        field: String,
        /// The path as written.
        path: String,
        /// Why it is rejected.
        reason: String,
    },

    /// A file's sha256 differs from the manifest's.
    #[error("checksum mismatch for `{path}`: manifest says sha256 `{expected}`, file has `{got}` (re-export the variant or fix the manifest)")]
    Checksum {
        /// The file.
        path: PathBuf,
        /// sha256 in the manifest.
        expected: String,
        /// sha256 of the file.
        got: String,
    },

    /// No variant of that name in the zoo.
    #[error("no variant `{name}` in `{zoo}`{}", suggest(.similar))]
    UnknownVariant {
        /// The name asked for.
        name: String,
        /// The zoo directory.
        zoo: PathBuf,
        /// Names that are close.
        similar: Vec<String>,
    },

    /// The ONNX Runtime shared library could not be found or loaded.
    #[error("onnx runtime library: {message} (run `bash scripts/setup-ort`, or set ORT_DYLIB_PATH to libonnxruntime.so.1.31.1)")]
    OrtLibrary {
        /// What went wrong, with the paths tried.
        message: String,
        /// The loader's error, where there is one (shared: a failed load is remembered and
        /// reported on every later attempt).
        #[source]
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    },

    /// An execution provider was asked for but cannot run.
    #[error("execution provider `{provider}` is not available: {reason}")]
    Provider {
        /// The provider asked for (`cuda`).
        provider: String,
        /// Why not, with a hint.
        reason: String,
        /// ONNX Runtime's error, where it refused the provider.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// ONNX Runtime failed on a graph (loading a corrupt file, running it).
    #[error("graph `{graph}` (`{path}`): onnx runtime failed {action}: {source}")]
    Ort {
        /// The graph role (`vision`, `decoder`, ...).
        graph: String,
        /// Its file.
        path: PathBuf,
        /// What we were doing ("to load it", "to run it").
        action: &'static str,
        /// ONNX Runtime's error (an `ort::Error`, boxed so that only `runtime` names `ort`).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A graph's inputs or outputs differ from what the manifest declares or the pipeline needs.
    #[error("graph `{graph}`: tensor `{tensor}`: expected {expected}, got {got}")]
    GraphIo {
        /// The graph role.
        graph: String,
        /// The tensor name.
        tensor: String,
        /// What the manifest or the pipeline expects.
        expected: String,
        /// What the session has.
        got: String,
        /// ONNX Runtime's error, where it is the one that refused the tensor.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// The tokenizer could not be loaded or used.
    #[error("tokenizer `{path}`: {message}")]
    Tokenizer {
        /// tokenizer.json.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// The prompt does not fit in the model's context.
    #[error("the prompt is {tokens} positions long but `{variant}` has a context of {max_positions} (and needs room for {reserve} new tokens); shorten the question")]
    ContextOverflow {
        /// The variant.
        variant: String,
        /// Positions the prompt takes (visual tokens included).
        tokens: usize,
        /// Positions new tokens need at least.
        reserve: usize,
        /// The model's context.
        max_positions: usize,
    },

    /// A file the zoo reads is not a regular file (a FIFO, a device, a folder) or is larger than
    /// the limit for its kind.
    #[error("{what} `{path}`: {message}")]
    FileRefused {
        /// What the file was to be ("manifest", "graph", "tokenizer", ...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it is refused, with the limit.
        message: String,
    },

    /// An ONNX file names external data that its manifest does not list (or cannot be parsed far
    /// enough to tell).
    #[error("graph `{graph}` (`{path}`): {message}")]
    ExternalData {
        /// The graph role.
        graph: String,
        /// The `.onnx` file.
        path: PathBuf,
        /// What is wrong, with the manifest field to fix.
        message: String,
    },

    /// A results folder holds files that do not fit together: shards of two splits, a missing
    /// shard, runs of different benchmarks, no runs at all.
    #[error("results `{path}`: {message}")]
    Results {
        /// The results folder or run folder.
        path: PathBuf,
        /// What is wrong, with the fix.
        message: String,
    },

    /// A results folder (or one shard of it) is being written by another process.
    #[error("results folder `{folder}`{part} is in use by {holder}; wait for it to finish, or write to another folder (`--out DIR`)")]
    FolderLocked {
        /// The run folder (`OUT/VARIANT/`, or its control folder).
        folder: PathBuf,
        /// ` (shard I/N)` when only a shard is taken, else empty.
        part: String,
        /// Who holds it: `pid N (`COMMAND`)`, several for shard writers.
        holder: String,
    },

    /// A graph produced NaN or infinite logits: the weights or the inputs are broken, and any
    /// token chosen from them would be noise.
    #[error("graph `{graph}`: tensor `{tensor}` holds {value} at step {step} (row {row}, token {token}); NaN or infinite logits mean broken weights or inputs: re-export the variant, or check the media")]
    NonFiniteLogits {
        /// The graph role (`decoder`).
        graph: String,
        /// The tensor (`logits`).
        tensor: String,
        /// Generation step: 0 is the prefill, n the n-th decode step.
        step: usize,
        /// Row of the batch (beam rows included).
        row: usize,
        /// Vocabulary index of the first bad value.
        token: usize,
        /// The value (`NaN`, `inf`, `-inf`).
        value: f32,
    },

    /// A model folder made elsewhere (onnxruntime-genai, Optimum) cannot become a variant: a file
    /// or field is missing, or describes what the runtime does not run.
    #[error("import `{path}`{}: {message}", field_part(.field))]
    Import {
        /// The folder or the file read.
        path: PathBuf,
        /// The field of that file (`model.decoder.num_key_value_heads`), or the graph tensor.
        field: Option<String>,
        /// What is wrong, what was expected, and the way out.
        message: String,
    },
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

    /// An [`Error::Manifest`] for `field` of the manifest at `path`.
    pub fn manifest(path: impl Into<PathBuf>, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Manifest { path: path.into(), field: field.into(), message: message.into() }
    }

    /// An [`Error::Import`] about `field` of `path` (or the file as a whole).
    pub fn import(path: impl Into<PathBuf>, field: Option<&str>, message: impl Into<String>) -> Self {
        Self::Import { path: path.into(), field: field.map(str::to_string), message: message.into() }
    }

    /// An [`Error::Image`] for `path`.
    pub fn image(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Image { path: path.into(), message: message.into() }
    }
}

/// `: field `name`` or nothing.
fn field_part(field: &Option<String>) -> String {
    field.as_ref().map_or_else(String::new, |f| format!(": field `{f}`"))
}

/// `; similar: `a`, `b`` or nothing.
fn suggest(similar: &[String]) -> String {
    if similar.is_empty() {
        String::new()
    } else {
        let names: Vec<String> = similar.iter().map(|s| format!("`{s}`")).collect();
        format!("; similar: {}", names.join(", "))
    }
}
