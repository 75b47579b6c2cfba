//! Runs one variant over a benchmark, writing each finished batch of predictions at once so that
//! an interrupted run resumes where it stopped (see [`super::store`]).
//!
//! ```text
//! OUT/VARIANT/run.json                          what was run (checked on resume)
//! OUT/VARIANT/predictions[.shard-I-of-N].jsonl  deterministic per-item results
//! OUT/VARIANT/timings[.shard-I-of-N].jsonl      per-item latency (not deterministic)
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use super::store::{JsonlAppender, Prediction, PredictionStore};
use super::{score_answer, select, Shard};
use crate::benchmark::{Benchmark, Record};
use crate::error::{Error, Result};
use crate::generate::GenerationOptions;
use crate::manifest::paths::sha256_file;
use crate::model::{Answer, Model, Request, Timings};
use crate::results;
use crate::results::lock::{self, Access};
use crate::runtime::{ExecutionProvider, Spinning};

/// What an evaluation run is; a resumed run must match it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    /// Variant name.
    pub variant: String,
    /// sha256 of the variant's manifest file.
    pub manifest_sha256: String,
    /// The benchmark file, as given.
    pub bench: PathBuf,
    /// sha256 of the benchmark file.
    pub bench_sha256: String,
    /// First N records only.
    pub limit: Option<usize>,
    /// Decoding (greedy unless beams > 1).
    pub beams: usize,
    /// Most new tokens per answer.
    pub max_new_tokens: usize,
    /// Items per batch.
    pub batch: usize,
    /// A control run: the media each item is answered with (absent: its own).
    #[serde(default, skip_serializing_if = "Control::is_none")]
    pub control: Control,
}

/// What media an evaluation answers each item with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    /// Each item's own picture or clip.
    #[default]
    None,
    /// The image-swap control: the picture or clip of another item of the same class
    /// ([`super::controls::swap_partners`]), question and answers kept.
    ImageSwap,
}

impl Control {
    /// Whether this is a plain run.
    pub fn is_none(&self) -> bool {
        *self == Control::None
    }
}

impl RunSpec {
    /// The settings in which `self` (the run on disk) and `new` differ, as `name: old -> new`.
    pub fn differences(&self, new: &RunSpec) -> Vec<String> {
        let mut out = Vec::new();
        let mut diff = |name: &str, a: String, b: String| {
            if a != b {
                out.push(format!("{name}: {a} -> {b}"));
            }
        };
        let limit = |l: Option<usize>| l.map_or_else(|| "none (all items)".to_string(), |n| n.to_string());
        diff("variant", self.variant.clone(), new.variant.clone());
        diff("manifest sha256", short(&self.manifest_sha256), short(&new.manifest_sha256));
        diff("benchmark sha256", short(&self.bench_sha256), short(&new.bench_sha256));
        diff("--limit", limit(self.limit), limit(new.limit));
        diff("--beams", self.beams.to_string(), new.beams.to_string());
        diff("--max-new-tokens", self.max_new_tokens.to_string(), new.max_new_tokens.to_string());
        diff("--batch", self.batch.to_string(), new.batch.to_string());
        diff("control", format!("{:?}", self.control), format!("{:?}", new.control));
        out
    }
}

fn short(sha: &str) -> String {
    sha.chars().take(12).collect()
}

/// Per-item latency, one line of `timings.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemTiming {
    /// `dataset/index`.
    pub id: String,
    /// Items in the batch that produced this answer.
    pub batch: usize,
    /// Execution provider that ran.
    pub provider: String,
    /// Milliseconds per stage (for a batch: the batch's time divided by its size).
    pub preprocess_ms: f64,
    /// Vision encoder.
    pub vision_ms: f64,
    /// Connector.
    pub connector_ms: f64,
    /// Encoding the prompt (0 in files written before this stage had its own timer, when it was
    /// part of `prefill_ms`).
    #[serde(default)]
    pub tokenize_ms: f64,
    /// Prefill.
    pub prefill_ms: f64,
    /// All decode steps.
    pub decode_ms: f64,
    /// Choosing the next tokens (0 in files written before this stage had its own timer).
    #[serde(default)]
    pub select_ms: f64,
    /// The answer back to text (0 in files written before this stage had its own timer).
    #[serde(default)]
    pub detokenize_ms: f64,
    /// Decode steps run.
    pub decode_steps: usize,
    /// Inside ONNX Runtime's run calls (0 in files written before this was counted).
    #[serde(default)]
    pub onnx_runtime_ms: f64,
    /// End to end.
    pub total_ms: f64,
}

impl ItemTiming {
    fn new(id: String, t: &Timings, provider: &str) -> Self {
        let per = |d: std::time::Duration| d.as_secs_f64() * 1e3 / t.batch.max(1) as f64;
        Self {
            id,
            batch: t.batch,
            provider: provider.to_string(),
            preprocess_ms: per(t.preprocess),
            vision_ms: per(t.vision),
            connector_ms: per(t.connector),
            tokenize_ms: per(t.tokenize),
            prefill_ms: per(t.prefill),
            decode_ms: per(t.decode),
            select_ms: per(t.select),
            detokenize_ms: per(t.detokenize),
            decode_steps: t.decode_steps,
            onnx_runtime_ms: per(t.onnx_runtime),
            total_ms: per(t.total),
        }
    }
}

/// Options of [`evaluate`].
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// First N records only.
    pub limit: Option<usize>,
    /// Which shard.
    pub shard: Shard,
    /// Items per batch.
    pub batch: usize,
    /// Decoding.
    pub generation: GenerationOptions,
    /// What to do when the folder holds results of another run.
    pub stale: StaleResults,
    /// Plain run or a control.
    pub control: Control,
}

/// What [`evaluate`] does with a folder that holds results of another run (another manifest,
/// benchmark, limit, decoding or batch size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleResults {
    /// Stop with an error naming the folder (`eval`: results are the user's).
    Refuse,
    /// Delete them and start over, with a warning (`compare`: its folder is a cache).
    Replace,
}

/// Called after each batch with (items done in this shard, items in this shard).
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize);

/// Items whose pictures `evaluate` prepares in one pass ahead of their batches (rounded up to whole
/// batches).
const PREPARE_WINDOW: usize = 16;

/// The items prepared in one pass for batches of `size`: [`PREPARE_WINDOW`] rounded up to whole
/// batches, so that the run is cut into the same batches as without the window (which items share
/// a padded batch can move a logit).
fn prepare_window(size: usize) -> usize {
    let size = size.max(1);
    size * PREPARE_WINDOW.div_ceil(size)
}

/// Evaluates a variant on `bench` into the folder `dir` (`OUT/VARIANT/`, or its control folder:
/// [`crate::results`]), resuming a previous run of the same spec. Returns the path of the
/// predictions file and every prediction of this shard.
///
/// `models` are the variant loaded once per worker (at least one). Each worker answers whole
/// windows of batches on its own thread; the run is cut into the same batches whatever the number
/// of workers, and their predictions are written in the benchmark's order, so the files are the
/// same as with one worker. A worker that fails stops the others after their current window; the
/// batches before the failing one are written.
pub fn evaluate(
    models: &mut [Model],
    manifest_path: &Path,
    bench: &Benchmark,
    dir: &Path,
    options: &EvalOptions,
    progress: Progress<'_>,
) -> Result<(PathBuf, Vec<Prediction>)> {
    // One writer per folder (or per shard of it) for the whole run, taken before run.json is
    // read: a second `eval` into the same folder would append the same items again.
    let access = if options.shard == Shard::ALL { Access::Whole } else { Access::Shard(options.shard) };
    let _lock = lock::lock(dir, access, &lock::this_command())?;
    let Some(model) = models.first() else {
        return Err(Error::InvalidArgument { what: "workers", value: "0".into(), expected: "at least 1".into() });
    };
    let spec = RunSpec {
        variant: model.name().to_string(),
        manifest_sha256: sha256_file(manifest_path)?,
        bench: bench.path.clone(),
        bench_sha256: sha256_file(&bench.path)?,
        limit: options.limit,
        beams: options.generation.beams,
        max_new_tokens: options.generation.max_new_tokens,
        batch: options.batch,
        control: options.control,
    };
    let spec_path = dir.join(results::RUN_FILE);
    if spec_path.exists() {
        let text = fs::read_to_string(&spec_path).map_err(|e| Error::io("reading", &spec_path, e))?;
        let old: RunSpec =
            serde_json::from_str(&text).map_err(|e| Error::jsonl(&spec_path, 1, format!("not a run spec: {e}")))?;
        // The same benchmark may be named by another path; everything else must match, the batch
        // size too (left padding can move a logit by an ulp, and resumed files must be identical).
        let differences = old.differences(&spec);
        match (differences.is_empty(), options.stale) {
            (true, _) => {}
            (false, StaleResults::Refuse) => {
                return Err(Error::Mismatch(format!(
                    "`{}` holds results of another run ({}); to keep them, evaluate into another folder (`--out DIR`) or rerun with the old settings; to replace them, remove `{}`",
                    dir.display(),
                    differences.join(", "),
                    dir.display()
                )))
            }
            (false, StaleResults::Replace) => {
                tracing::warn!(folder = %dir.display(), changed = %differences.join(", "), "replacing results of another run");
                // The lock files stay: removing a held lock file would let another process lock
                // a new one beside ours.
                lock::clear_except_locks(dir)?;
            }
        }
    }
    if !spec_path.exists() {
        // Written whole and renamed into place: shards of one run start together on shared
        // storage, and none may read another's half-written spec.
        let text = serde_json::to_string_pretty(&spec).map_err(|e| Error::Mismatch(e.to_string()))?;
        let tmp = dir.join(format!(".{}.{}.tmp", results::RUN_FILE, std::process::id()));
        fs::write(&tmp, text + "\n").map_err(|e| Error::io("writing", &tmp, e))?;
        fs::rename(&tmp, &spec_path).map_err(|e| Error::io("renaming", &tmp, e))?;
    }
    let mut store = PredictionStore::open(dir.join(results::predictions_file(options.shard)))?;
    let items = select(bench, options.limit, options.shard);
    let expected: HashMap<String, usize> = items.iter().map(|(position, r)| (r.id(), *position)).collect();
    store.check_resumed(&expected, &scope(bench, items.len(), options))?;
    let (mut timings, _) = JsonlAppender::open(dir.join(results::timings_file(options.shard)))?;

    let partners = match options.control {
        Control::None => Vec::new(),
        Control::ImageSwap => super::controls::swap_partners(bench),
    };
    let total = items.len();
    let todo: Vec<(usize, &Record)> = items.into_iter().filter(|(_, r)| !store.is_done(&r.id())).collect();
    let mut done = total - todo.len();
    progress(done, total);
    let provider = model.provider().ort_name().to_string();
    // Every question of the run encoded in one pass before the first graph runs: a bad question
    // fails here with its item's location, and one pass keeps the tokenizer in the caches
    // (about a fifth of the time per question of encoding each between graph runs).
    let requests: Vec<Request> = todo
        .iter()
        .map(|(position, r)| {
            let media = match options.control {
                Control::None => r.media.clone(),
                Control::ImageSwap => super::controls::swapped(bench, &partners, *position)?.media,
            };
            model
                .request(media, r.question.clone())
                .map_err(|e| Error::Item { location: r.location(), source: Box::new(e) })
        })
        .collect::<Result<_>>()?;
    let size = options.batch.max(1);
    // Pictures are read and preprocessed a window of items at a time, in one pass ahead of the
    // window's batches, for the same reason (the window's pixels are held until it is done). A
    // window is a worker's unit of work.
    let window = prepare_window(size);
    let mut pending = requests.into_iter();
    let windows: Vec<Window<'_>> = todo
        .chunks(window)
        .enumerate()
        .map(|(w, items)| Window {
            first_batch: w * (window / size),
            items,
            requests: pending.by_ref().take(items.len()).collect(),
        })
        .collect();
    let queue = Mutex::new(windows.into_iter());
    let stop = AtomicBool::new(false);
    let (sender, answered) = mpsc::channel::<(usize, Result<Vec<Answer>>)>();
    std::thread::scope(|scope| {
        for model in models.iter_mut() {
            let (sender, queue, stop) = (sender.clone(), &queue, &stop);
            scope.spawn(move || work(model, queue, stop, size, &options.generation, &sender));
        }
        drop(sender);
        // Batches are written in order: one answered ahead waits for those before it.
        let mut ready: BTreeMap<usize, Vec<Answer>> = BTreeMap::new();
        let mut next = 0;
        let mut failure: Option<(usize, Error)> = None;
        let mut write = |k: usize, answers: &[Answer]| -> Result<()> {
            let chunk = &todo[k * size..((k + 1) * size).min(todo.len())];
            for ((position, record), answer) in chunk.iter().zip(answers) {
                store.push(score_answer(record, *position, &answer.text, answer.tokens.len()))?;
                timings.append(&ItemTiming::new(record.id(), &answer.timings, &provider))?;
            }
            done += chunk.len();
            progress(done, total);
            Ok(())
        };
        for (k, result) in answered {
            match result {
                Ok(answers) => {
                    ready.insert(k, answers);
                }
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    if failure.as_ref().is_none_or(|(first, _)| k < *first) {
                        failure = Some((k, e));
                    }
                }
            }
            while let Some(answers) = ready.remove(&next) {
                if let Err(e) = write(next, &answers) {
                    // The workers stop after their current window; the channel's end is dropped
                    // with this loop, so a worker's next send fails and it returns.
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
                next += 1;
            }
        }
        failure.map_or(Ok(()), |(_, e)| Err(e))
    })?;
    let path = store.path().to_path_buf();
    let mut preds = store.predictions().to_vec();
    preds.sort_by_key(|p| p.position);
    Ok((path, preds))
}

/// The most workers [`auto_workers`] chooses: every copy holds the variant and its ONNX Runtime
/// sessions, and the 550 items of the test split are 35 windows at batch 8, which 16 workers share
/// two or more each.
pub const AUTO_MAX_WORKERS: usize = 16;

/// How many workers (copies of a variant, each answering whole batches on its own thread with one
/// intra-op thread) `--workers auto` runs on `cores` CPU cores: one per core for a decoder of
/// fewer than [`Spinning::AUTO_MIN_DECODER_BYTES`] of tensors, whose kernels are too small to share
/// between threads (the shipped zoo: batch 8 on two workers 1.4x batch 8 on one two-thread worker,
/// docs/performance.md, "Workers"), else one, whose threads share each step (a 0.5B decoder) and
/// which a second copy would only double in memory. Other providers than the CPU: one. At most
/// [`AUTO_MAX_WORKERS`].
pub fn auto_workers(decoder_bytes: u64, cores: usize, provider: ExecutionProvider) -> usize {
    if provider == ExecutionProvider::Cpu && decoder_bytes < Spinning::AUTO_MIN_DECODER_BYTES {
        cores.clamp(1, AUTO_MAX_WORKERS)
    } else {
        1
    }
}

/// A worker's unit of work: whole batches of items, with their requests.
struct Window<'a> {
    /// The run's index of the window's first batch.
    first_batch: usize,
    items: &'a [(usize, &'a Record)],
    requests: Vec<Request>,
}

/// One worker: takes the next window until none is left or `stop` is set, prepares its pictures,
/// and sends each batch's answers (or the error that stopped it) with the batch's index.
fn work<'a>(
    model: &mut Model,
    queue: &Mutex<impl Iterator<Item = Window<'a>>>,
    stop: &AtomicBool,
    size: usize,
    generation: &GenerationOptions,
    sender: &mpsc::Sender<(usize, Result<Vec<Answer>>)>,
) {
    while !stop.load(Ordering::Relaxed) {
        let Some(mut window) = queue.lock().unwrap_or_else(PoisonError::into_inner).next() else { return };
        for ((_, record), request) in window.items.iter().zip(window.requests.iter_mut()) {
            if let Err(e) = model.prepare_pixels(request) {
                let _ = sender
                    .send((window.first_batch, Err(Error::Item { location: record.location(), source: Box::new(e) })));
                return;
            }
        }
        for (j, (chunk, requests)) in window.items.chunks(size).zip(window.requests.chunks(size)).enumerate() {
            let result = answer_batch(model, chunk, requests, generation);
            let failed = result.is_err();
            if sender.send((window.first_batch + j, result)).is_err() || failed {
                return;
            }
        }
    }
}

/// The answers to one batch; when the batch fails, its items are answered one by one to name the
/// record at fault.
fn answer_batch(
    model: &mut Model,
    chunk: &[(usize, &Record)],
    requests: &[Request],
    generation: &GenerationOptions,
) -> Result<Vec<Answer>> {
    model.ask_batch(requests, generation).map_err(|batch_err| {
        for ((_, record), request) in chunk.iter().zip(requests) {
            if let Err(e) = model.ask(&request.media, &request.question, generation) {
                return Error::Item { location: record.location(), source: Box::new(e) };
            }
        }
        Error::Item {
            location: format!("batch of {} from {}", chunk.len(), chunk[0].1.location()),
            source: Box::new(batch_err),
        }
    })
}

/// The items of a run, for messages: `the 6 items of `ann.jsonl` (--limit 6, shard 0/2)`.
fn scope(bench: &Benchmark, n: usize, options: &EvalOptions) -> String {
    let mut within = Vec::new();
    if let Some(limit) = options.limit {
        within.push(format!("--limit {limit}"));
    }
    if options.shard != Shard::ALL {
        within.push(format!("shard {}", options.shard));
    }
    let within = if within.is_empty() { String::new() } else { format!(" ({})", within.join(", ")) };
    format!("the {n} items of this run of `{}`{within}", bench.path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_workers_are_one_per_core_for_small_decoders_on_the_cpu_only() {
        let small = Spinning::AUTO_MIN_DECODER_BYTES - 1;
        assert_eq!(auto_workers(small, 2, ExecutionProvider::Cpu), 2);
        assert_eq!(auto_workers(small, 0, ExecutionProvider::Cpu), 1);
        assert_eq!(auto_workers(small, 256, ExecutionProvider::Cpu), AUTO_MAX_WORKERS);
        assert_eq!(auto_workers(Spinning::AUTO_MIN_DECODER_BYTES, 16, ExecutionProvider::Cpu), 1);
        assert_eq!(auto_workers(small, 16, ExecutionProvider::Cuda { device: 0 }), 1);
    }

    #[test]
    fn the_picture_window_holds_whole_batches_and_at_least_the_default() {
        for size in 1..=40 {
            let w = prepare_window(size);
            assert_eq!(w % size, 0, "batch {size}: window {w} would split a batch");
            assert!(w >= PREPARE_WINDOW && w < PREPARE_WINDOW + size, "batch {size}: window {w}");
        }
        assert_eq!(prepare_window(0), PREPARE_WINDOW);
    }
}
