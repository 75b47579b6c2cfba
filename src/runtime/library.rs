//! Finding and loading the ONNX Runtime shared library (ort's `load-dynamic`).
//!
//! Search order: `ORT_DYLIB_PATH`, then the cache that `scripts/setup-ort` fills
//! (`${LYNX_ZOO_ORT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lynx-zoo}/onnxruntime[-gpu]-1.31.1/`).
//! A build with the `cuda` feature prefers the `onnxruntime-gpu` library, which carries the CUDA
//! provider. The library is loaded once per process; a failure is remembered and reported the same
//! way on every later attempt.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use crate::error::{Error, Result};

/// The ONNX Runtime version the project pins (ort 2.0.0-rc.15 speaks its API 31).
pub const ORT_VERSION: &str = "1.31.1";

/// The library file name inside the cache folders.
fn lib_name() -> String {
    format!("libonnxruntime.so.{ORT_VERSION}")
}

/// The cache root `scripts/setup-ort` writes to.
pub fn cache_root() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("LYNX_ZOO_ORT_CACHE") {
        return Some(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("lynx-zoo"))
}

/// The places searched, in order; the first that exists is loaded.
pub fn candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        out.push(PathBuf::from(p));
    }
    if let Some(root) = cache_root() {
        if cfg!(feature = "cuda") {
            out.push(root.join(format!("onnxruntime-gpu-{ORT_VERSION}")).join(lib_name()));
        }
        out.push(root.join(format!("onnxruntime-{ORT_VERSION}")).join(lib_name()));
    }
    out
}

/// What was loaded.
#[derive(Debug, Clone)]
pub struct LoadedLibrary {
    /// The library file.
    pub path: PathBuf,
    /// ONNX Runtime's own version string.
    pub version: String,
}

struct Loaded {
    library: LoadedLibrary,
    environment: ort::environment::Environment,
}

/// Why the library did not load: kept for the process, and turned into an [`Error::OrtLibrary`]
/// (with the same source) each time it is asked for.
#[derive(Debug, Clone)]
struct LoadFailure {
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl LoadFailure {
    fn new(message: String, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self { message, source: Some(Arc::new(source)) }
    }

    fn to_error(&self) -> Error {
        Error::OrtLibrary { message: self.message.clone(), source: self.source.clone() }
    }
}

static LOADED: OnceLock<std::result::Result<Loaded, LoadFailure>> = OnceLock::new();

fn load() -> std::result::Result<Loaded, LoadFailure> {
    let tried = candidates();
    let Some(path) = tried.iter().find(|p| p.is_file()).cloned() else {
        let list: Vec<String> = tried.iter().map(|p| format!("`{}`", p.display())).collect();
        let message = if list.is_empty() {
            "not found: ORT_DYLIB_PATH is unset and there is no HOME for the cache".to_string()
        } else {
            format!("not found; tried {}", list.join(", "))
        };
        return Err(LoadFailure { message, source: None });
    };
    let builder =
        ort::init_from(&path).map_err(|e| LoadFailure::new(format!("cannot load `{}`: {e}", path.display()), e))?;
    let environment = builder
        .with_name("lynx-zoo")
        .with_telemetry(false)
        .build()
        .map_err(|e| LoadFailure::new(format!("cannot create an environment from `{}`: {e}", path.display()), e))?;
    let version = ort::info()
        .split(',')
        .find_map(|kv| kv.trim().strip_prefix("git-branch=rel-"))
        .unwrap_or(ORT_VERSION)
        .to_string();
    tracing::info!(path = %path.display(), %version, "loaded onnx runtime");
    Ok(Loaded { library: LoadedLibrary { path, version }, environment })
}

fn loaded() -> Result<&'static Loaded> {
    LOADED.get_or_init(load).as_ref().map_err(LoadFailure::to_error)
}

/// Loads the library (once) and says where it came from.
pub fn ensure_loaded() -> Result<&'static LoadedLibrary> {
    loaded().map(|l| &l.library)
}

/// The process-wide ONNX Runtime environment.
pub(super) fn environment() -> Result<&'static ort::environment::Environment> {
    loaded().map(|l| &l.environment)
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn a_remembered_load_failure_keeps_its_source_each_time_it_is_reported() {
        let cause = std::io::Error::new(std::io::ErrorKind::InvalidData, "invalid ELF header");
        let failure = LoadFailure::new("cannot load `/x/libonnxruntime.so`: invalid ELF header".into(), cause);
        for _ in 0..2 {
            let err = failure.to_error();
            assert!(err.to_string().contains("cannot load `/x/libonnxruntime.so`"), "{err}");
            let source = err.source().expect("the loader's error stays the source");
            assert_eq!(source.to_string(), "invalid ELF header");
        }
        let not_found = LoadFailure { message: "not found; tried `/x`".into(), source: None };
        assert!(not_found.to_error().source().is_none());
    }
}
