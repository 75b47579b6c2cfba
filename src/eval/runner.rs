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
    let mut write = |k: usize, answers: Vec<Answer>| -> Result<()> {
        let chunk = &todo[k * size..((k + 1) * size).min(todo.len())];
        for ((position, record), answer) in chunk.iter().zip(&answers) {
            store.push(score_answer(record, *position, &answer.text, answer.tokens.len()))?;
            timings.append(&ItemTiming::new(record.id(), &answer.timings, &provider))?;
        }
        done += chunk.len();
        progress(done, total);
        Ok(())
    };
    in_order(models, windows, |model, window, emit| work(model, window, size, &options.generation, emit), &mut write)?;
    let path = store.path().to_path_buf();
    let mut preds = store.predictions().to_vec();
    preds.sort_by_key(|p| p.position);
    Ok((path, preds))
}

/// How many windows of work (a worker's unit: the items whose pictures are prepared in one pass)
/// a run of `bench` with `options` has, at most (fewer when it resumes): the most workers it keeps
/// busy.
pub fn windows(bench: &Benchmark, options: &EvalOptions) -> usize {
    select(bench, options.limit, options.shard).len().div_ceil(prepare_window(options.batch))
}

/// The most workers [`auto_workers`] chooses: every copy holds the variant and its ONNX Runtime
/// sessions, and the 550 items of the test split are 35 windows at batch 8, which 16 workers share
/// two or more each.
pub const AUTO_MAX_WORKERS: usize = 16;

/// The most a variant's files may hold for [`auto_workers`] to run copies of it: a small decoder
/// beside a large vision tower would otherwise be copied whole once per core.
pub const AUTO_MAX_VARIANT_BYTES: u64 = 256 << 20;

/// How many workers (copies of a variant, each answering whole batches on its own thread, the
/// cores' intra-op threads divided among them) `--workers auto` runs on `cores` CPU cores for a
/// variant whose decoder holds `decoder_bytes` of tensors and whose files `variant_bytes`: one per
/// core (at most [`AUTO_MAX_WORKERS`]) for a decoder under [`Spinning::AUTO_MIN_DECODER_BYTES`] in
/// a variant under [`AUTO_MAX_VARIANT_BYTES`], whose kernels are too small to share between
/// threads (the shipped zoo: batch 8 on two workers 1.4-1.6x batch 8 on one two-thread worker,
/// docs/performance.md, "Workers"); else one, whose threads share each step (a 0.5B decoder) and
/// which a copy would only double in memory. Other providers than the CPU: one.
pub fn auto_workers(decoder_bytes: u64, variant_bytes: u64, cores: usize, provider: ExecutionProvider) -> usize {
    let small = decoder_bytes < Spinning::AUTO_MIN_DECODER_BYTES && variant_bytes < AUTO_MAX_VARIANT_BYTES;
    if provider == ExecutionProvider::Cpu && small {
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

/// The stack of a worker thread: the main thread's (a spawned thread gets 2 MiB by default), as a
/// model's runs happened there before there were workers.
const WORKER_STACK: usize = 8 << 20;

/// Runs `jobs` on one thread per worker -- each takes the next job until none is left or the run
/// is stopping -- and hands `write` every result in index order. A job reports its results through
/// `emit(index, result)`, which returns whether to go on: false for its own error, or once the
/// results are no longer read. The first error by index ends the run: the workers stop after their current job, the
/// results before it are written, and it is returned; results after it are dropped (a resumed run
/// makes them again). An error from `write` stops the run the same way.
fn in_order<W, J, T>(
    workers: &mut [W],
    jobs: Vec<J>,
    run: impl Fn(&mut W, J, &mut dyn FnMut(usize, Result<T>) -> bool) + Sync,
    write: &mut dyn FnMut(usize, T) -> Result<()>,
) -> Result<()>
where
    W: Send,
    J: Send,
    T: Send,
{
    let count = workers.len();
    let queue = Mutex::new(jobs.into_iter());
    let stop = AtomicBool::new(false);
    let (sender, results) = mpsc::channel::<(usize, Result<T>)>();
    std::thread::scope(|scope| {
        for worker in workers.iter_mut() {
            let (sender, queue, stop, run) = (sender.clone(), &queue, &stop, &run);
            let spawned = std::thread::Builder::new()
                .name("lynx-zoo-worker".into())
                .stack_size(WORKER_STACK)
                .spawn_scoped(scope, move || {
                    let mut emit = |k: usize, result: Result<T>| {
                        let failed = result.is_err();
                        if failed {
                            stop.store(true, Ordering::Relaxed); // no worker takes another job
                        }
                        // A job that is not failing runs to its end: the results before the
                        // failure may be in it.
                        sender.send((k, result)).is_ok() && !failed
                    };
                    while !stop.load(Ordering::Relaxed) {
                        let Some(job) = queue.lock().unwrap_or_else(PoisonError::into_inner).next() else { return };
                        run(worker, job, &mut emit);
                    }
                });
            if let Err(e) = spawned {
                stop.store(true, Ordering::Relaxed);
                return Err(Error::InvalidArgument {
                    what: "workers",
                    value: count.to_string(),
                    expected: format!("as many threads as the system can start ({e})"),
                });
            }
        }
        drop(sender);
        // Results are written in order: one made ahead waits for those before it.
        let mut ready: BTreeMap<usize, T> = BTreeMap::new();
        let mut next = 0;
        let mut failure: Option<(usize, Error)> = None;
        for (k, result) in results {
            match result {
                Ok(value) => {
                    ready.insert(k, value);
                }
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    if failure.as_ref().is_none_or(|(first, _)| k < *first) {
                        failure = Some((k, e));
                    }
                }
            }
            while let Some(value) = ready.remove(&next) {
                if let Err(e) = write(next, value) {
                    // The receiver is dropped with this return: a worker's next emit fails.
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
                next += 1;
            }
        }
        failure.map_or(Ok(()), |(_, e)| Err(e))
    })
}

/// One worker's job: a window's pictures prepared, then its batches answered, each batch's answers
/// (or the error that ends the job) emitted with the batch's index in the run.
fn work(
    model: &mut Model,
    mut window: Window<'_>,
    size: usize,
    generation: &GenerationOptions,
    emit: &mut dyn FnMut(usize, Result<Vec<Answer>>) -> bool,
) {
    for ((_, record), request) in window.items.iter().zip(window.requests.iter_mut()) {
        if let Err(e) = model.prepare_pixels(request) {
            emit(window.first_batch, Err(Error::Item { location: record.location(), source: Box::new(e) }));
            return;
        }
    }
    for (j, (chunk, requests)) in window.items.chunks(size).zip(window.requests.chunks(size)).enumerate() {
        if !emit(window.first_batch + j, answer_batch(model, chunk, requests, generation)) {
            return;
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

    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// A job of the fake workers: (first index, per result: milliseconds to wait, fails?).
    type Job = (usize, Vec<(u64, bool)>);

    /// Runs `jobs` on `workers` fake workers through `in_order`, writing with `write`; returns the
    /// run's result, the indices written, and how many jobs were started.
    fn run_fake(
        workers: usize,
        jobs: Vec<Job>,
        mut write: impl FnMut(usize) -> Result<()>,
    ) -> (Result<()>, Vec<usize>, usize) {
        let started = AtomicUsize::new(0);
        let mut written = Vec::new();
        let mut fakes = vec![(); workers];
        let result = in_order(
            &mut fakes,
            jobs,
            |_, (first, results): Job, emit| {
                started.fetch_add(1, Ordering::Relaxed);
                for (j, (ms, fails)) in results.into_iter().enumerate() {
                    std::thread::sleep(Duration::from_millis(ms));
                    let k = first + j;
                    let r = if fails { Err(Error::Mismatch(format!("index {k} failed"))) } else { Ok(k) };
                    if !emit(k, r) {
                        return;
                    }
                }
            },
            &mut |k, value: usize| {
                assert_eq!(k, value, "a result handed over under another index");
                write(k)?;
                written.push(k);
                Ok(())
            },
        );
        (result, written, started.into_inner())
    }

    #[test]
    fn results_are_written_in_index_order_whatever_finishes_first() {
        // Later jobs finish first: job j waits (6 - j) * 15 ms per result.
        let jobs: Vec<Job> = (0..6).map(|j| (2 * j, vec![((6 - j as u64) * 15, false); 2])).collect();
        for workers in [1, 3] {
            let (result, written, started) = run_fake(workers, jobs.clone(), |_| Ok(()));
            assert!(result.is_ok(), "{workers} workers: {result:?}");
            assert_eq!(written, (0..12).collect::<Vec<_>>(), "{workers} workers");
            assert_eq!(started, 6);
        }
    }

    #[test]
    fn the_first_error_by_index_ends_the_run_with_the_results_before_it_written() {
        // Two workers: job 0 succeeds slowly; job 1 fails at index 2 after the failure of job 2
        // (index 4, taken when job 0 ends) has arrived; job 3 is never taken.
        let jobs: Vec<Job> = vec![
            (0, vec![(50, false), (50, false)]),
            (2, vec![(150, true), (0, false)]),
            (4, vec![(0, true), (0, false)]),
            (6, vec![(0, false), (0, false)]),
        ];
        let (result, written, started) = run_fake(2, jobs, |_| Ok(()));
        let err = result.expect_err("the run failed").to_string();
        assert!(err.contains("index 2 failed"), "the earliest failure by index is returned: {err}");
        assert_eq!(written, vec![0, 1]);
        assert_eq!(started, 3, "no job is taken once one has failed");
    }

    #[test]
    fn a_job_before_the_failure_runs_to_its_end() {
        // Job 1 fails while job 0 is half done: job 0's later results come before the failure.
        let jobs: Vec<Job> = vec![(0, vec![(0, false), (60, false), (60, false)]), (3, vec![(20, true)])];
        let (result, written, _) = run_fake(2, jobs, |_| Ok(()));
        assert!(result.expect_err("the run failed").to_string().contains("index 3 failed"));
        assert_eq!(written, vec![0, 1, 2]);
    }

    #[test]
    fn a_failed_write_stops_the_workers() {
        let jobs: Vec<Job> = (0..6).map(|j| (j, vec![(40, false)])).collect();
        let fail_at_1 = |k: usize| if k == 1 { Err(Error::Mismatch("disk full".into())) } else { Ok(()) };
        let (result, written, started) = run_fake(1, jobs, fail_at_1);
        assert!(result.expect_err("the write failed").to_string().contains("disk full"));
        assert_eq!(written, vec![0]);
        assert!(started < 6, "the worker went on after the write failed ({started} jobs started)");
    }

    #[test]
    fn auto_workers_are_one_per_core_for_small_variants_on_the_cpu_only() {
        let (small, files) = (Spinning::AUTO_MIN_DECODER_BYTES - 1, AUTO_MAX_VARIANT_BYTES - 1);
        let cpu = ExecutionProvider::Cpu;
        assert_eq!(auto_workers(small, files, 2, cpu), 2);
        assert_eq!(auto_workers(small, files, 0, cpu), 1);
        assert_eq!(auto_workers(small, files, 256, cpu), AUTO_MAX_WORKERS);
        assert_eq!(auto_workers(Spinning::AUTO_MIN_DECODER_BYTES, files, 16, cpu), 1, "a large decoder");
        assert_eq!(auto_workers(small, AUTO_MAX_VARIANT_BYTES, 16, cpu), 1, "a small decoder in a large variant");
        assert_eq!(auto_workers(small, files, 16, ExecutionProvider::Cuda { device: 0 }), 1);
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
