//! ONNX Runtime, behind one module.
//!
//! This is the only module that names `ort` types (ort's API moved between release candidates; a
//! new one changes this folder only). The rest of the crate sees:
//!
//! - [`RuntimeOptions`]: execution provider, threads, graph optimisation, spinning;
//! - [`Session`]: one loaded graph, its real inputs and outputs, and `run` by name;
//! - [`Value`]: an ONNX Runtime tensor we own -- kept between runs so that a decoder's `present.*`
//!   outputs become the next step's `past_key_values.*` inputs without a copy;
//! - [`Input`]: what `run` takes: an ndarray view or a [`Value`].
//!
//! The CUDA execution provider (cargo feature `cuda`) is registered with `error_on_failure`: a
//! session asked to run on CUDA runs there or fails to load. There is no silent CPU fallback, and
//! every session records the provider it was created with ([`Session::provider`]).

pub mod library;

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, IxDyn};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::SessionInputValue;
use ort::value::{DynValue, Tensor, TensorElementType, TensorRef, ValueType};

use crate::error::{Error, Result};
use crate::manifest::{Dim, Dtype, GraphRole, GraphSpec, TensorSpec};

pub use library::{ensure_loaded, LoadedLibrary, ORT_VERSION};

/// Where graphs run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ExecutionProvider {
    /// ONNX Runtime's CPU provider.
    #[default]
    Cpu,
    /// The CUDA provider on one device (cargo feature `cuda`).
    Cuda {
        /// CUDA device ordinal.
        device: i32,
    },
}

impl ExecutionProvider {
    /// ONNX Runtime's name for the provider.
    pub fn ort_name(self) -> &'static str {
        match self {
            ExecutionProvider::Cpu => "CPUExecutionProvider",
            ExecutionProvider::Cuda { .. } => "CUDAExecutionProvider",
        }
    }

    /// Whether this build can run the provider at all.
    pub fn compiled_in(self) -> bool {
        match self {
            ExecutionProvider::Cpu => true,
            ExecutionProvider::Cuda { .. } => cfg!(feature = "cuda"),
        }
    }
}

impl std::fmt::Display for ExecutionProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExecutionProvider::Cpu => f.write_str("cpu"),
            ExecutionProvider::Cuda { device } => write!(f, "cuda:{device}"),
        }
    }
}

impl std::str::FromStr for ExecutionProvider {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(ExecutionProvider::Cpu),
            "cuda" => Ok(ExecutionProvider::Cuda { device: 0 }),
            other => match other.strip_prefix("cuda:").and_then(|d| d.parse().ok()) {
                Some(device) => Ok(ExecutionProvider::Cuda { device }),
                None => Err(Error::InvalidArgument {
                    what: "execution provider",
                    value: s.to_string(),
                    expected: "`cpu`, `cuda` or `cuda:N`".to_string(),
                }),
            },
        }
    }
}

/// ONNX Runtime graph optimisation level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Optimization {
    /// None.
    Disable,
    /// Constant folding and redundant-node removal.
    Basic,
    /// Plus node fusions.
    Extended,
    /// Everything, layout changes included.
    #[default]
    All,
}

/// Whether idle intra-op threads spin between operators or sleep.
///
/// Sleeping suits small graphs on few cores: spinning made the shipped zoo's `lynx` 1.7x slower
/// per item on 2 cores, the spinning pools of its several sessions stealing the core the running
/// one needs. Spinning suits a deployed model's decoder, whose hundreds of kernels per step each
/// wait for a sleeping pool to wake: at 0.5B parameters and int4 a token took 25.2 ms sleeping
/// and 21.6 ms spinning, in two separate runs (at fp32, memory-bound, level). `Auto` chooses by the decoder's weight bytes
/// (docs/performance.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Spinning {
    /// Sleep when idle.
    Off,
    /// Spin when idle (ONNX Runtime's and onnxruntime-genai's default).
    On,
    /// `On` for a variant whose decoder holds at least [`Spinning::AUTO_MIN_DECODER_BYTES`] of
    /// tensors, `Off` below; a lone session ([`Session::from_bytes`]) goes by its own graph's.
    #[default]
    Auto,
}

impl Spinning {
    /// Where `Auto` starts to spin: 64 MiB of decoder tensors, between the shipped zoo's decoders
    /// (3.2 MB fp32, where sleeping is faster) and a 0.5B decoder's 309 MB at int4 (where spinning
    /// is).
    pub const AUTO_MIN_DECODER_BYTES: u64 = 64 << 20;

    /// `On` or `Off`: `Auto` decided for a decoder of `decoder_bytes`.
    pub fn resolve(self, decoder_bytes: u64) -> Spinning {
        match self {
            Spinning::Auto if decoder_bytes >= Self::AUTO_MIN_DECODER_BYTES => Spinning::On,
            Spinning::Auto => Spinning::Off,
            decided => decided,
        }
    }
}

impl std::fmt::Display for Spinning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Spinning::Off => "off",
            Spinning::On => "on",
            Spinning::Auto => "auto",
        })
    }
}

/// How sessions are created: provider, threads, optimisation, spinning.
///
/// Built with fallible `with_*` steps; `--ep cuda` in a build without the `cuda` feature fails
/// here, before anything loads.
///
/// ```
/// use lynx_zoo::runtime::{ExecutionProvider, RuntimeOptions, Spinning};
/// let opts = RuntimeOptions::new().with_intra_threads(2)?.with_spinning(Spinning::Off);
/// assert_eq!(opts.ep(), ExecutionProvider::Cpu);
/// let cuda = RuntimeOptions::new().with_ep(ExecutionProvider::Cuda { device: 0 });
/// assert_eq!(cuda.is_ok(), cfg!(feature = "cuda"));
/// # Ok::<(), lynx_zoo::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeOptions {
    ep: ExecutionProvider,
    intra_threads: usize,
    optimization: Optimization,
    spinning: Spinning,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl RuntimeOptions {
    /// CPU, intra-op threads = available cores, all optimisations, spinning chosen by the
    /// decoder's size ([`Spinning::Auto`]).
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        RuntimeOptions {
            ep: ExecutionProvider::Cpu,
            intra_threads: cores,
            optimization: Optimization::All,
            spinning: Spinning::Auto,
        }
    }

    /// Runs on `ep`; errors if this build lacks it.
    pub fn with_ep(mut self, ep: ExecutionProvider) -> Result<Self> {
        if !ep.compiled_in() {
            return Err(Error::Provider {
                provider: ep.to_string(),
                reason: "this build of lynx-zoo lacks CUDA; rebuild with `cargo build --release --features cuda` \
                         and fetch the GPU library with `bash scripts/setup-ort --cuda`"
                    .to_string(),
                source: None,
            });
        }
        self.ep = ep;
        Ok(self)
    }

    /// Intra-op threads per session (at least 1).
    pub fn with_intra_threads(mut self, threads: usize) -> Result<Self> {
        if threads == 0 {
            return Err(Error::InvalidArgument {
                what: "intra-op threads",
                value: "0".into(),
                expected: "at least 1".into(),
            });
        }
        self.intra_threads = threads;
        Ok(self)
    }

    /// Graph optimisation level.
    pub fn with_optimization(mut self, level: Optimization) -> Self {
        self.optimization = level;
        self
    }

    /// Whether idle intra-op threads spin.
    pub fn with_spinning(mut self, spinning: Spinning) -> Self {
        self.spinning = spinning;
        self
    }

    /// The provider.
    pub fn ep(&self) -> ExecutionProvider {
        self.ep
    }

    /// Intra-op threads.
    pub fn intra_threads(&self) -> usize {
        self.intra_threads
    }

    /// Optimisation level.
    pub fn optimization(&self) -> Optimization {
        self.optimization
    }

    /// Spinning, as asked (`Auto` until a variant's loading decides it).
    pub fn spinning(&self) -> Spinning {
        self.spinning
    }
}

/// A tensor's element type and dimensions as a session reports them (`None` = dynamic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Name.
    pub name: String,
    /// Element type (`None` when not one the zoo uses, or not a tensor).
    pub dtype: Option<Dtype>,
    /// What ONNX Runtime calls the type, for messages.
    pub type_name: String,
    /// Dimensions; `None` for a dynamic axis.
    pub shape: Vec<Option<usize>>,
}

impl TensorInfo {
    fn describe(&self) -> String {
        let dims: Vec<String> =
            self.shape.iter().map(|d| d.map_or_else(|| "?".to_string(), |n| n.to_string())).collect();
        format!("{} [{}]", self.type_name, dims.join(", "))
    }
}

/// One loaded ONNX graph.
///
/// `Send + Sync`; `run` takes `&mut self` (ONNX Runtime sessions are run by one caller at a time in
/// ort 2.0), so share a session between threads behind a `Mutex`, or load one per thread.
#[derive(Debug)]
pub struct Session {
    inner: ort::session::Session,
    role: GraphRole,
    path: PathBuf,
    provider: ExecutionProvider,
    inputs: Vec<TensorInfo>,
    outputs: Vec<TensorInfo>,
    /// Time inside ONNX Runtime's run calls so far.
    busy: Duration,
    /// The session's CPU arena, for buffers bound to it ([`Session::buffer_f32`]); None where the
    /// session has none. (In a mutex only so that a session stays `Sync`: it is reached through
    /// `&mut self`.)
    arena: std::sync::Mutex<Option<ort::memory::Allocator>>,
    /// Shared buffers given back after a generation, with their binding ([`Session::give_back`]).
    pool: std::sync::Mutex<Vec<SharedBuffers>>,
}

/// Buffers a graph reads and writes in place (one per cache tensor), all of one shape, and the
/// binding that holds them, if it was made.
#[derive(Debug)]
pub struct SharedBuffers {
    /// The buffers, in the order they were asked for.
    pub(crate) values: Vec<Value>,
    /// Their binding ([`Session::bind_shared`]), or None.
    pub(crate) binding: Option<Binding>,
}

/// How many sets of shared buffers a session keeps for reuse.
const POOLED: usize = 2;

/// What a session run takes for one input.
#[derive(Debug)]
pub enum Input<'a> {
    /// A float32 array (contiguous).
    F32(ArrayViewD<'a, f32>),
    /// An int64 array (contiguous).
    I64(ArrayViewD<'a, i64>),
    /// A tensor kept from an earlier run.
    Value(&'a Value),
}

impl Input<'_> {
    /// The tensor's shape.
    pub fn shape(&self) -> Vec<usize> {
        match self {
            Input::F32(a) => a.shape().to_vec(),
            Input::I64(a) => a.shape().to_vec(),
            Input::Value(v) => v.shape(),
        }
    }

    /// The same tensor, borrowed for as long as `self` is (for a feed list whose other entries
    /// live shorter).
    pub fn reborrow(&self) -> Input<'_> {
        match self {
            Input::F32(a) => Input::F32(a.view()),
            Input::I64(a) => Input::I64(a.view()),
            Input::Value(v) => Input::Value(v),
        }
    }
}

/// A tensor owned by ONNX Runtime (typically a run's output), kept without copying.
#[derive(Debug)]
pub struct Value(DynValue);

/// The outputs of one run, by name.
#[derive(Debug)]
pub struct Outputs {
    graph: GraphRole,
    values: Vec<(String, Value)>,
}

fn dtype_of(t: TensorElementType) -> Option<Dtype> {
    match t {
        TensorElementType::Float32 => Some(Dtype::Float32),
        TensorElementType::Int64 => Some(Dtype::Int64),
        TensorElementType::Int32 => Some(Dtype::Int32),
        TensorElementType::Float16 => Some(Dtype::Float16),
        TensorElementType::Bool => Some(Dtype::Bool),
        _ => None,
    }
}

fn info_of(name: &str, ty: &ValueType) -> TensorInfo {
    match ty {
        ValueType::Tensor { ty, shape, .. } => TensorInfo {
            name: name.to_string(),
            dtype: dtype_of(*ty),
            type_name: dtype_of(*ty).map_or_else(|| format!("{ty:?}").to_lowercase(), |d| d.to_string()),
            shape: shape.iter().map(|&d| usize::try_from(d).ok()).collect(),
        },
        other => TensorInfo { name: name.to_string(), dtype: None, type_name: format!("{other}"), shape: vec![] },
    }
}

/// A graph as verified bytes: the `.onnx` model and every external-data file it names, keyed by
/// the `location` written in the model. Sessions are built from these bytes, never by reopening a
/// path, so what runs is what was checked.
#[derive(Debug, Clone)]
pub struct GraphBytes {
    /// The `.onnx` file (for messages only; it is not reopened).
    pub path: PathBuf,
    /// The model.
    pub model: Arc<[u8]>,
    /// `(location as written in the model, bytes)` for each external-data file.
    pub external: Vec<(String, Arc<[u8]>)>,
}

impl GraphBytes {
    /// The bytes of every tensor the graph holds ([`crate::onnx_proto::tensor_bytes`]), inline or
    /// external: what one run at batch 1 reads at least once.
    /// `role` names the graph in the error.
    pub fn tensor_bytes(&self, role: GraphRole) -> Result<u64> {
        crate::onnx_proto::tensor_bytes(&self.model).map_err(|e| Error::ExternalData {
            graph: role.to_string(),
            path: self.path.clone(),
            message: format!("is not a readable ONNX model ({e})"),
        })
    }
}

impl Session {
    /// Builds a session for `role` from verified bytes (see [`crate::zoo::Zoo::load`], which reads
    /// and verifies them).
    pub fn from_bytes(graph: &GraphBytes, role: GraphRole, options: &RuntimeOptions) -> Result<Session> {
        let env = library::environment()?;
        let path = graph.path.as_path();
        let ort_err = |e: ort::Error| ort_failure(role, path, "to load it", e);
        let level = match options.optimization {
            Optimization::Disable => GraphOptimizationLevel::Disable,
            Optimization::Basic => GraphOptimizationLevel::Level1,
            Optimization::Extended => GraphOptimizationLevel::Level2,
            Optimization::All => GraphOptimizationLevel::All,
        };
        let builder = ort::session::Session::builder(env).map_err(ort_err)?;
        let builder = builder.with_optimization_level(level).map_err(|e| ort_err(ort::Error::from(e)))?;
        let builder = builder.with_intra_threads(options.intra_threads).map_err(|e| ort_err(ort::Error::from(e)))?;
        let spin = match options.spinning {
            Spinning::Auto => Spinning::Auto.resolve(graph.tensor_bytes(role)?),
            decided => decided,
        } == Spinning::On;
        let builder = builder.with_intra_op_spinning(spin).map_err(|e| ort_err(ort::Error::from(e)))?;
        let mut builder = builder.with_inter_op_spinning(spin).map_err(|e| ort_err(ort::Error::from(e)))?;
        for (location, bytes) in &graph.external {
            builder = builder
                .with_external_initializer_file_in_memory(Path::new(location), Arc::clone(bytes))
                .map_err(|e| ort_err(ort::Error::from(e)))?;
        }
        let mut builder = match options.ep {
            ExecutionProvider::Cpu => builder,
            #[cfg(feature = "cuda")]
            ExecutionProvider::Cuda { device } => builder
                .with_execution_providers([ort::ep::CUDA::default()
                    .with_device_id(device)
                    .build()
                    .error_on_failure()])
                .map_err(|e| Error::Provider {
                    provider: options.ep.to_string(),
                    reason: format!(
                        "onnx runtime could not start it ({e}); fetch the GPU library with `bash scripts/setup-ort --cuda` \
                         and put the CUDA 13 and cuDNN 9 libraries on LD_LIBRARY_PATH"
                    ),
                    source: Some(Box::new(<ort::Error>::from(e))),
                })?,
            #[cfg(not(feature = "cuda"))]
            ExecutionProvider::Cuda { .. } => {
                return Err(Error::Provider {
                    provider: options.ep.to_string(),
                    reason: "this build of lynx-zoo lacks CUDA; rebuild with `--features cuda`".to_string(),
                    source: None,
                })
            }
        };
        let inner = builder.commit_from_memory(&graph.model).map_err(ort_err)?;
        let arena = cpu_arena(&inner, role);
        let inputs = inner.inputs().iter().map(|o| info_of(o.name(), o.dtype())).collect();
        let outputs = inner.outputs().iter().map(|o| info_of(o.name(), o.dtype())).collect();
        tracing::debug!(graph = %role, path = %path.display(), ep = %options.ep, "session ready");
        Ok(Session {
            inner,
            role,
            path: path.to_path_buf(),
            provider: options.ep,
            inputs,
            outputs,
            busy: Duration::ZERO,
            arena: std::sync::Mutex::new(arena),
            pool: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// `count` buffers of `shape` for a generation: a set given back before with that shape and
    /// count, as it was left (its binding with it), else new zeroed ones ([`Session::buffer_f32`])
    /// without a binding. Reused buffers hold the former generation's values: for a
    /// GroupQueryAttention cache that is harmless, as the operator reads only the positions the
    /// attention mask says were written by this generation.
    pub fn take_buffers(&mut self, shape: &[usize], count: usize) -> Result<SharedBuffers> {
        let fits = |set: &SharedBuffers| set.values.len() == count && set.values.iter().all(|v| v.shape() == shape);
        let pool = self.pool.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(i) = pool.iter().position(fits) {
            return Ok(pool.swap_remove(i));
        }
        let values = (0..count).map(|_| self.buffer_f32(shape)).collect::<Result<Vec<_>>>()?;
        Ok(SharedBuffers { values, binding: None })
    }

    /// Keeps `buffers` for a later [`Session::take_buffers`] (the oldest set beyond a few is
    /// released).
    pub fn give_back(&mut self, buffers: SharedBuffers) {
        let pool = self.pool.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
        if pool.len() >= POOLED {
            pool.remove(0);
        }
        pool.push(buffers);
    }

    /// A zeroed float32 buffer of `shape` from this session's CPU arena, bindable as an output
    /// ([`Session::bind_shared`]): a K/V cache buffer. The arena keeps the memory it gets back, so
    /// a buffer of a size it has held before costs no system allocation (a generation's eight
    /// cache buffers took about 50 us from ONNX Runtime's default allocator, 2026-12-04).
    pub fn buffer_f32(&mut self, shape: &[usize]) -> Result<Value> {
        match self.arena.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner) {
            Some(arena) => Value::zeros_f32_in(arena, shape),
            None => Value::zeros_f32_bindable(shape),
        }
    }

    /// Time spent inside ONNX Runtime's run calls of this session so far: the graph's own work,
    /// without the inputs' conversion before and the outputs' after.
    pub fn busy(&self) -> Duration {
        self.busy
    }

    /// The graph's role.
    pub fn role(&self) -> GraphRole {
        self.role
    }

    /// The provider the session was created with (and so runs on: no silent fallback).
    pub fn provider(&self) -> ExecutionProvider {
        self.provider
    }

    /// The session's real inputs.
    pub fn inputs(&self) -> &[TensorInfo] {
        &self.inputs
    }

    /// The session's real outputs.
    pub fn outputs(&self) -> &[TensorInfo] {
        &self.outputs
    }

    /// Whether the graph has an input called `name`.
    pub fn has_input(&self, name: &str) -> bool {
        self.inputs.iter().any(|t| t.name == name)
    }

    /// Compares the manifest's declared inputs and outputs with the session's: the same names, and
    /// for each the same element type and rank (and the same size where both fix one).
    pub fn check_io(&self, spec: &GraphSpec) -> Result<()> {
        let graph = self.role.to_string();
        for (declared, real, what) in [(&spec.inputs, &self.inputs, "input"), (&spec.outputs, &self.outputs, "output")]
        {
            for d in declared.iter() {
                let Some(r) = real.iter().find(|r| r.name == d.name) else {
                    return Err(Error::GraphIo {
                        graph,
                        tensor: d.name.clone(),
                        expected: format!("an {what} declared as `{d}`"),
                        got: format!("no such {what}; the graph has {}", names(real)),
                        source: None,
                    });
                };
                check_tensor(&graph, d, r)?;
            }
            if let Some(extra) = real.iter().find(|r| !declared.iter().any(|d| d.name == r.name)) {
                return Err(Error::GraphIo {
                    graph,
                    tensor: extra.name.clone(),
                    expected: format!("only the declared {what}s ({})", names_of(declared)),
                    got: format!("an undeclared {what} `{}` {}", extra.name, extra.describe()),
                    source: None,
                });
            }
        }
        Ok(())
    }

    /// Runs the graph on named inputs and returns every output.
    pub fn run(&mut self, inputs: &[(&str, Input<'_>)]) -> Result<Outputs> {
        let role = self.role;
        let path = self.path.clone();
        let fail = |e| ort_failure(role, &path, "to run it", e);
        let mut values: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = Vec::with_capacity(inputs.len());
        for (name, input) in inputs {
            let value: SessionInputValue<'_> = match input {
                Input::F32(view) => TensorRef::from_array_view(view.view()).map_err(fail)?.into(),
                Input::I64(view) => TensorRef::from_array_view(view.view()).map_err(fail)?.into(),
                Input::Value(v) => SessionInputValue::from(&v.0),
            };
            values.push((Cow::Borrowed(*name), value));
        }
        let start = Instant::now();
        let outputs = self.inner.run(values);
        self.busy += start.elapsed();
        let values = outputs.map_err(fail)?.into_iter().map(|(name, v)| (name.to_string(), Value(v))).collect();
        Ok(Outputs { graph: role, values })
    }

    /// Binds buffers the graph reads and writes in place: for each `(input, output, value)` of
    /// `shared`, `value` is bound as that input and as that output (ONNX Runtime's IO binding), so
    /// the graph appends to it instead of writing a new tensor. This is how a GroupQueryAttention
    /// decoder takes one K/V buffer as past and present. The binding holds the buffers (not their
    /// `Value`s: a buffer replaced by another needs a new binding) and is run, step after step,
    /// by [`Session::run_bound`]. The values must come from [`Value::zeros_f32_bindable`] and
    /// have the output's shape.
    pub fn bind_shared(&mut self, shared: &mut [(&str, &str, &mut Value)]) -> Result<Binding> {
        let fail = |e| ort_failure(self.role, &self.path, "to bind its cache buffers", e);
        let mut binding = self.inner.create_binding().map_err(fail)?;
        for (input, output, value) in shared.iter_mut() {
            binding.bind_input(*input, &value.0).map_err(fail)?;
            binding.bind_output(*output, &mut value.0).map_err(fail)?;
        }
        let shared = shared.iter().map(|(_, output, _)| output.to_string()).collect();
        Ok(Binding { inner: binding, shared })
    }

    /// Runs the graph with `binding` ([`Session::bind_shared`]) and `inputs` (bound for this run,
    /// replacing the last run's); returns the outputs besides the shared buffers.
    pub fn run_bound(&mut self, binding: &mut Binding, inputs: &[(&str, Input<'_>)]) -> Result<Outputs> {
        let role = self.role;
        let path = self.path.clone();
        let fail = |e| ort_failure(role, &path, "to run it", e);
        let io = &mut binding.inner;
        for (name, input) in inputs {
            match input {
                // owned copies (small: embeddings, mask): ort would clone a borrowed tensor
                // through a session of its own, which deadlocks inside a binding
                Input::F32(view) => io.bind_input(*name, &Tensor::from_array(view.to_owned()).map_err(fail)?),
                Input::I64(view) => io.bind_input(*name, &Tensor::from_array(view.to_owned()).map_err(fail)?),
                Input::Value(v) => io.bind_input(*name, &v.0),
            }
            .map_err(fail)?;
        }
        // the other outputs allocated anew on every run: their shapes change (the beam expansion)
        let cpu = ort::memory::MemoryInfo::default();
        for output in &self.outputs {
            if !binding.shared.contains(&output.name) {
                io.bind_output_to_device(output.name.as_str(), &cpu).map_err(fail)?;
            }
        }
        let start = Instant::now();
        let outputs = self.inner.run_binding(io);
        self.busy += start.elapsed();
        let values = outputs
            .map_err(fail)?
            .into_iter()
            .filter(|(name, _)| !binding.shared.iter().any(|s| s == name))
            .map(|(name, v)| (name.to_string(), Value(v)))
            .collect();
        Ok(Outputs { graph: role, values })
    }
}

/// A session's IO binding with buffers shared by an input and an output ([`Session::bind_shared`]),
/// kept from run to run.
#[derive(Debug)]
pub struct Binding {
    inner: ort::session::IoBinding,
    /// The outputs bound to shared buffers.
    shared: Vec<String>,
}

/// The session's CPU arena allocator; None (with a debug line) where it has none, and buffers come
/// from ONNX Runtime's default allocator.
fn cpu_arena(session: &ort::session::Session, role: GraphRole) -> Option<ort::memory::Allocator> {
    let info = ort::memory::MemoryInfo::new(
        ort::memory::AllocationDevice::CPU,
        0,
        ort::memory::AllocatorType::Arena,
        ort::memory::MemoryType::Default,
    );
    match info.and_then(|info| ort::memory::Allocator::new(session, info)) {
        Ok(a) => Some(a),
        Err(e) => {
            tracing::debug!(graph = %role, error = %e, "no CPU arena: the default allocator");
            None
        }
    }
}

/// ONNX Runtime failed on the graph of `role` at `path`; its error stays the source of ours.
fn ort_failure(role: GraphRole, path: &Path, action: &'static str, e: ort::Error) -> Error {
    Error::Ort { graph: role.to_string(), path: path.to_path_buf(), action, source: Box::new(e) }
}

fn names(list: &[TensorInfo]) -> String {
    let n: Vec<String> = list.iter().map(|t| format!("`{}`", t.name)).collect();
    n.join(", ")
}

fn names_of(list: &[TensorSpec]) -> String {
    let n: Vec<String> = list.iter().map(|t| format!("`{}`", t.name)).collect();
    n.join(", ")
}

fn check_tensor(graph: &str, declared: &TensorSpec, real: &TensorInfo) -> Result<()> {
    let mismatch = || Error::GraphIo {
        graph: graph.to_string(),
        tensor: declared.name.clone(),
        expected: format!("`{declared}` as the manifest declares"),
        got: format!("`{}`", real.describe()),
        source: None,
    };
    if real.dtype != Some(declared.dtype) || real.shape.len() != declared.shape.len() {
        return Err(mismatch());
    }
    for (d, r) in declared.shape.iter().zip(&real.shape) {
        if let (Dim::Fixed(want), Some(got)) = (d, r) {
            if want != got {
                return Err(mismatch());
            }
        }
    }
    Ok(())
}

impl Outputs {
    /// Takes the output called `name`.
    pub fn take(&mut self, name: &str) -> Result<Value> {
        match self.values.iter().position(|(n, _)| n == name) {
            Some(i) => Ok(self.values.swap_remove(i).1),
            None => Err(Error::GraphIo {
                graph: self.graph.to_string(),
                tensor: name.to_string(),
                expected: "an output of that name".to_string(),
                got: format!("outputs {:?}", self.values.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>()),
                source: None,
            }),
        }
    }

    /// Takes every output whose name starts with `prefix`, sorted by name.
    pub fn take_prefixed(&mut self, prefix: &str) -> Vec<(String, Value)> {
        let (mut hit, rest): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.values).into_iter().partition(|(n, _)| n.starts_with(prefix));
        self.values = rest;
        hit.sort_by(|a, b| a.0.cmp(&b.0));
        hit
    }
}

impl Value {
    /// Wraps an owned float32 array (moved, not copied).
    pub fn from_f32(array: ArrayD<f32>) -> Result<Value> {
        // a standard-layout array moves in as it is; only another layout is copied
        let array = if array.is_standard_layout() { array } else { array.as_standard_layout().into_owned() };
        Tensor::from_array(array).map(|t| Value(t.into_dyn())).map_err(|e| Error::GraphIo {
            graph: "(input)".into(),
            tensor: "(array)".into(),
            expected: "a float32 array ONNX Runtime accepts".into(),
            got: e.to_string(),
            source: Some(Box::new(e)),
        })
    }

    /// An empty float32 tensor of `shape` (an axis of 0 -- the `past = 0` cache of a prefill).
    pub fn empty_f32(shape: &[usize]) -> Result<Value> {
        Self::from_f32(ArrayD::zeros(IxDyn(shape)))
    }

    /// A zeroed float32 tensor of `shape` that ONNX Runtime allocated, so that it can be bound as
    /// an output ([`Session::bind_shared`]): a K/V buffer shared by past and present.
    pub fn zeros_f32_bindable(shape: &[usize]) -> Result<Value> {
        Value::zeros_f32_in(&ort::memory::Allocator::default(), shape)
    }

    /// [`Value::zeros_f32_bindable`] from `allocator`.
    fn zeros_f32_in(allocator: &ort::memory::Allocator, shape: &[usize]) -> Result<Value> {
        let fail = |e: ort::Error| Error::GraphIo {
            graph: "(cache)".into(),
            tensor: "(buffer)".into(),
            expected: format!("a float32 buffer of shape {shape:?} from ONNX Runtime's CPU allocator"),
            got: e.to_string(),
            source: Some(Box::new(e)),
        };
        // `Tensor::new` zeroes what the allocator gives (ONNX Runtime's `CreateTensorAsOrtValue` does not)
        let tensor = Tensor::<f32>::new(allocator, shape.to_vec()).map_err(fail)?;
        Ok(Value(tensor.into_dyn()))
    }

    /// The dimensions.
    pub fn shape(&self) -> Vec<usize> {
        match self.0.dtype() {
            ValueType::Tensor { shape, .. } => shape.iter().map(|&d| usize::try_from(d).unwrap_or(0)).collect(),
            _ => Vec::new(),
        }
    }

    /// A float32 view of the data (no copy).
    pub fn view_f32(&self) -> Result<ArrayViewD<'_, f32>> {
        self.0.try_extract_array::<f32>().map_err(|e| type_error(format!("{} ({e})", self.0.dtype()), e))
    }

    /// A mutable float32 view of the data (no copy), for in-place row moves of a KV cache.
    pub fn view_f32_mut(&mut self) -> Result<ArrayViewMutD<'_, f32>> {
        self.0.try_extract_array_mut::<f32>().map_err(|e| type_error(e.to_string(), e))
    }
}

/// A value is not the float32 host tensor asked for; ONNX Runtime's error stays the source.
fn type_error(got: String, e: ort::Error) -> Error {
    Error::GraphIo {
        graph: "(value)".into(),
        tensor: "(value)".into(),
        expected: "a float32 tensor in host memory".into(),
        got,
        source: Some(Box::new(e)),
    }
}

/// Describes the loaded ONNX Runtime: version and library path.
pub fn describe() -> Result<String> {
    let lib = ensure_loaded()?;
    Ok(format!("onnxruntime {} ({})", lib.version, lib.path.display()))
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn auto_spinning_spins_for_large_decoders_only() {
        let limit = Spinning::AUTO_MIN_DECODER_BYTES;
        assert_eq!(Spinning::Auto.resolve(3_200_000), Spinning::Off, "the shipped zoo's decoders");
        assert_eq!(Spinning::Auto.resolve(limit - 1), Spinning::Off);
        assert_eq!(Spinning::Auto.resolve(limit), Spinning::On);
        assert_eq!(Spinning::Auto.resolve(309_000_000), Spinning::On, "a 0.5B decoder at int4");
        assert_eq!(Spinning::On.resolve(0), Spinning::On, "asked for is kept");
        assert_eq!(Spinning::Off.resolve(u64::MAX), Spinning::Off, "asked for is kept");
        assert_eq!(RuntimeOptions::new().spinning(), Spinning::Auto);
    }

    #[test]
    fn a_wrongly_typed_value_keeps_onnx_runtimes_error_as_the_source() {
        ensure_loaded().expect("onnx runtime (bash scripts/setup-ort)");
        let ids = Tensor::from_array(ArrayD::<i64>::zeros(IxDyn(&[1, 3]))).expect("an int64 tensor");
        let mut value = Value(ids.into_dyn());
        let err = value.view_f32().expect_err("int64 is not float32");
        assert!(err.to_string().contains("expected a float32 tensor in host memory"), "{err}");
        assert!(err.source().is_some_and(|s| s.is::<ort::Error>()), "{err:?}");
        let err = value.view_f32_mut().expect_err("int64 is not float32");
        assert!(matches!(err, Error::GraphIo { .. }), "{err:?}");
        assert!(err.source().is_some_and(|s| s.is::<ort::Error>()), "{err:?}");
    }
}
