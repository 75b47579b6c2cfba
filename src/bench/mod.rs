//! Latency of a variant, stage by stage: image and video preprocessing, vision encoder,
//! connector, prefill, time to first token, per-token decode, end to end; at batch 1 and a larger
//! batch; median and p90 over repeats after warm-up; peak RSS, size on disk, parameter counts, and
//! the machine (execution provider, threads, ONNX Runtime version, CPU model).
//!
//! Timing rules (../shared/BRIEF.md): warm-up first, no profiling, compare ratios measured in one
//! run on one machine. Variants are timed *interleaved* -- every variant answers an item before the
//! next item starts, round after round -- so that a burst of load on a shared machine lands on
//! every variant alike instead of on whichever ran at the time; and every statistic carries a
//! bootstrap interval over the items ([`stats`]), so that a comparison can tell a difference from
//! noise.

pub mod floor;
pub mod stats;

pub use stats::paired_difference_ci;

use std::collections::BTreeSet;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::benchmark::{Benchmark, Record};
use crate::error::Result;
use crate::generate::GenerationOptions;
use crate::model::{Model, Request, Timings};
use crate::preprocess::Media;
use crate::runtime::RuntimeOptions;

pub use stats::Stat;

/// Options of [`measure_variants`].
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Untimed passes over the items first.
    pub warmup: usize,
    /// Timed passes (rounds) over the items.
    pub repeats: usize,
    /// Image items and video items taken from the benchmark (each).
    pub items_per_modality: usize,
    /// The larger batch size.
    pub batch: usize,
    /// Decoding.
    pub generation: GenerationOptions,
    /// Keep every variant loaded and time them round-robin (the default); `false` loads, times
    /// and drops one variant after another (less memory, more exposed to load changes).
    pub interleave: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            warmup: 1,
            repeats: 3,
            items_per_modality: 8,
            batch: 8,
            generation: GenerationOptions::greedy(24),
            interleave: true,
        }
    }
}

/// Stage latencies at batch 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stages {
    /// Decoding and resizing one image.
    pub preprocess_image: Stat,
    /// Decoding, sampling and resizing one clip.
    pub preprocess_video: Stat,
    /// Vision encoder (all frames of the item).
    pub vision: Stat,
    /// Connector.
    pub connector: Stat,
    /// Prompt embedding and decoder prefill.
    pub prefill: Stat,
    /// Time to first token (preprocess + vision + connector + tokenize + prefill).
    pub ttft: Stat,
    /// One decoder step.
    pub per_token: Stat,
    /// The host's text work: tokenizing the prompt, choosing the tokens, decoding them to text
    /// (empty in reports written before these stages had their timers).
    #[serde(default)]
    pub host: Stat,
    /// Time inside no stage timer (`Timings::unaccounted`; empty in older reports).
    #[serde(default)]
    pub unaccounted: Stat,
    /// lynx-zoo's own time per item: end to end less ONNX Runtime's run calls
    /// (`Timings::outside_onnx_runtime`; empty in older reports).
    #[serde(default)]
    pub outside_onnx_runtime: Stat,
    /// End to end, one item.
    pub end_to_end: Stat,
}

/// Throughput at a batch size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Batch size.
    pub batch: usize,
    /// Items answered per second.
    pub items_per_s: f64,
    /// New tokens generated per second.
    pub tokens_per_s: f64,
    /// End-to-end time per batch.
    pub per_batch: Stat,
}

/// The machine and runtime a measurement was made on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineInfo {
    /// CPU model from /proc/cpuinfo.
    pub cpu: String,
    /// Logical cores.
    pub cores: usize,
    /// ONNX Runtime version and library.
    pub onnxruntime: String,
    /// Execution provider that ran.
    pub provider: String,
    /// Intra-op threads per session.
    pub threads: usize,
    /// lynx-zoo version.
    pub lynx_zoo: String,
    /// UTC date and time of the measurement (RFC 3339).
    pub date: String,
    /// Load average over the last minute when the run started (Linux; None elsewhere): a busy
    /// machine is worth knowing about when reading the numbers.
    #[serde(default)]
    pub load_1min: Option<f64>,
}

/// Everything `bench` measures for one variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyReport {
    /// Variant name.
    pub variant: String,
    /// The measurement run: variants timed together share it (`report` never mixes runs).
    #[serde(default)]
    pub run_id: String,
    /// Variants timed together, interleaved, in that run (1: timed alone).
    #[serde(default)]
    pub interleaved_with: usize,
    /// Where and how.
    pub machine: MachineInfo,
    /// Items timed (image + video).
    pub items: usize,
    /// Timed passes over the items.
    #[serde(default)]
    pub repeats: usize,
    /// Batch-1 stage latencies.
    pub stages: Stages,
    /// Throughput at batch 1.
    pub batch1: Throughput,
    /// Throughput at the larger batch.
    pub batched: Throughput,
    /// The fastest end-to-end ms of each timed item at batch 1 over the repeats, in item order:
    /// variants timed in one run are compared item by item (report::pareto).
    #[serde(default)]
    pub e2e_per_item_ms: Vec<f64>,
    /// Whether each timed item is a video (the strata of the intervals).
    #[serde(default)]
    pub item_is_video: Vec<bool>,
    /// Resident memory the variant added, MiB: the process's peak while loading and warming it up,
    /// less its resident memory just before (Linux; 0 elsewhere).
    #[serde(alias = "peak_rss_mib")]
    pub rss_added_mib: f64,
    /// Bytes on disk of every file the manifest references.
    pub disk_bytes: u64,
    /// Total parameters (from the manifest).
    pub parameters_total: u64,
    /// Trainable parameters (from the manifest).
    pub parameters_trainable: u64,
    /// The median batch-1 decode step against the memory-bandwidth floor measured in the same run
    /// (`None` in reports written before it was measured, or when the decoder's tensors could not
    /// be counted).
    #[serde(default)]
    pub memory_floor: Option<floor::MemoryFloor>,
}

/// The CPU model name, or `unknown`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Resets the kernel's peak-RSS counter of this process (Linux `clear_refs`), so that the next
/// [`peak_rss_mib`] covers only what follows. A no-op elsewhere.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident set size of this process since start or the last [`reset_peak_rss`], MiB.
pub fn peak_rss_mib() -> f64 {
    status_kib("VmHWM:").map_or(0.0, |kib| kib / 1024.0)
}

/// Resident memory of this process now, MiB (Linux; 0 elsewhere).
pub fn rss_mib() -> f64 {
    status_kib("VmRSS:").map_or(0.0, |kib| kib / 1024.0)
}

fn status_kib(field: &str) -> Option<f64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| t.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
}

/// The one-minute load average (Linux), if readable.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// The first `n` image and first `n` video records of `bench`.
pub fn pick_items(bench: &Benchmark, n: usize) -> Vec<&Record> {
    let images = bench.records.iter().filter(|r| matches!(r.media, Media::Image(_))).take(n);
    let videos = bench.records.iter().filter(|r| matches!(r.media, Media::Video(_))).take(n);
    images.chain(videos).collect()
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One variant being timed, and its samples so far.
struct Timed {
    model: Model,
    rss_added_mib: f64,
    /// (item, video?, timings, new tokens) per batch-1 answer.
    single: Vec<(usize, bool, Timings, usize)>,
    single_wall: f64,
    batch_ms: Vec<(usize, f64)>,
    batched_items: usize,
    batched_tokens: usize,
    batched_wall: f64,
}

/// Loads a variant (the caller's zoo and runtime options).
pub type Loader<'a> = &'a mut dyn FnMut(&str) -> Result<Model>;

/// Times `variants` on `items`: each is loaded (its resident memory measured while loading and
/// warming up), then all are timed together in rounds -- every variant answers every item once
/// per round at batch 1, then in batches -- so load changes on the machine hit every variant alike
/// (with `options.interleave = false`: one variant after another, each dropped when done).
/// `runtime` is only recorded (threads); `run_id` names the measurement run.
pub fn measure_variants(
    variants: &[String],
    load: Loader<'_>,
    items: &[&Record],
    runtime: &RuntimeOptions,
    options: &BenchOptions,
    run_id: &str,
) -> Result<Vec<LatencyReport>> {
    let requests: Vec<Request> = items.iter().map(|r| Request::new(r.media.clone(), r.question.clone())).collect();
    let run = Run {
        id: run_id,
        interleaved_with: 1,
        load_1min: load_average(),
        // Before any variant loads: the buffers are freed by the time resident memory is measured.
        bandwidth: floor::Bandwidth::measure(runtime.intra_threads()),
    };
    if options.interleave {
        let mut timed = Vec::with_capacity(variants.len());
        for name in variants {
            timed.push(load_and_warm(name, load, &requests, options)?);
        }
        for _ in 0..options.repeats.max(1) {
            time_round(&mut timed, &requests, options)?;
        }
        timed
            .into_iter()
            .map(|t| report(t, &requests, runtime, options, &Run { interleaved_with: variants.len(), ..run }))
            .collect()
    } else {
        let mut out = Vec::with_capacity(variants.len());
        for name in variants {
            let mut t = load_and_warm(name, load, &requests, options)?;
            for _ in 0..options.repeats.max(1) {
                time_round(std::slice::from_mut(&mut t), &requests, options)?;
            }
            out.push(report(t, &requests, runtime, options, &run)?);
        }
        Ok(out)
    }
}

/// What the variants timed together share: the run's id, how many were interleaved, the load
/// average at its start and the memory bandwidth measured before any of them loaded.
#[derive(Debug, Clone, Copy)]
struct Run<'a> {
    id: &'a str,
    interleaved_with: usize,
    load_1min: Option<f64>,
    bandwidth: floor::Bandwidth,
}

/// Hands freed heap pages back to the kernel (glibc), so that the memory a variant is about to add
/// shows up as new resident pages instead of reusing what an earlier step freed.
fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory at the top of glibc's heaps to the kernel; it
    // touches no live allocation and is safe to call at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn load_and_warm(name: &str, load: Loader<'_>, requests: &[Request], options: &BenchOptions) -> Result<Timed> {
    release_free_heap();
    let before = rss_mib();
    reset_peak_rss();
    let mut model = load(name)?;
    let g = &options.generation;
    for _ in 0..options.warmup {
        for req in requests {
            model.ask(&req.media, &req.question, g)?;
        }
        for chunk in requests.chunks(options.batch.max(1)) {
            model.ask_batch(chunk, g)?;
        }
    }
    let rss_added_mib = (peak_rss_mib() - before).max(0.0);
    tracing::info!(variant = name, rss_added_mib, "loaded and warmed up");
    Ok(Timed {
        model,
        rss_added_mib,
        single: Vec::new(),
        single_wall: 0.0,
        batch_ms: Vec::new(),
        batched_items: 0,
        batched_tokens: 0,
        batched_wall: 0.0,
    })
}

/// Times item `i` at batch 1 on `t`.
fn time_item(t: &mut Timed, requests: &[Request], i: usize, options: &BenchOptions) -> Result<()> {
    let req = &requests[i];
    let start = Instant::now();
    let a = t.model.ask(&req.media, &req.question, &options.generation)?;
    t.single_wall += start.elapsed().as_secs_f64();
    t.single.push((i, matches!(req.media, Media::Video(_)), a.timings, a.tokens.len()));
    Ok(())
}

/// Times batch `k` (of `options.batch` items) on `t`.
fn time_batch(t: &mut Timed, requests: &[Request], k: usize, options: &BenchOptions) -> Result<()> {
    let b = options.batch.max(1);
    let chunk = &requests[k * b..((k + 1) * b).min(requests.len())];
    let start = Instant::now();
    let answers = t.model.ask_batch(chunk, &options.generation)?;
    t.batched_wall += start.elapsed().as_secs_f64();
    if let Some(a) = answers.first() {
        t.batch_ms.push((k, ms(a.timings.total)));
    }
    t.batched_items += answers.len();
    t.batched_tokens += answers.iter().map(|a| a.tokens.len()).sum::<usize>();
    Ok(())
}

/// One round over `timed`: item by item, every variant answers the item before the next item
/// starts; then batch by batch likewise. Interleaving at this grain (milliseconds, not a whole
/// pass) spreads a burst of load on the machine over every variant.
fn time_round(timed: &mut [Timed], requests: &[Request], options: &BenchOptions) -> Result<()> {
    for i in 0..requests.len() {
        for t in timed.iter_mut() {
            time_item(t, requests, i, options)?;
        }
    }
    for k in 0..requests.len().div_ceil(options.batch.max(1)) {
        for t in timed.iter_mut() {
            time_batch(t, requests, k, options)?;
        }
    }
    Ok(())
}

fn report(
    t: Timed,
    requests: &[Request],
    runtime: &RuntimeOptions,
    options: &BenchOptions,
    run: &Run<'_>,
) -> Result<LatencyReport> {
    // Image and video items are timed in equal numbers by design: intervals resample within each.
    let item_is_video: Vec<bool> = requests.iter().map(|r| matches!(r.media, Media::Video(_))).collect();
    let stratum = |i: usize| usize::from(item_is_video.get(i).copied().unwrap_or(false));
    let col = |f: &dyn Fn(&Timings) -> f64| {
        Stat::of_items(&t.single.iter().map(|(i, _, tm, _)| (*i, f(tm))).collect::<Vec<_>>(), &stratum)
    };
    let of_kind = |video: bool| {
        Stat::of_items(
            &t.single
                .iter()
                .filter(|(_, v, _, _)| *v == video)
                .map(|(i, _, tm, _)| (*i, ms(tm.preprocess)))
                .collect::<Vec<_>>(),
            &|_| 0,
        )
    };
    let per_token: Vec<(usize, f64)> =
        t.single.iter().filter_map(|(i, _, tm, _)| tm.per_token().map(|d| (*i, ms(d)))).collect();
    let stages = Stages {
        preprocess_image: of_kind(false),
        preprocess_video: of_kind(true),
        vision: col(&|tm| ms(tm.vision)),
        connector: col(&|tm| ms(tm.connector)),
        prefill: col(&|tm| ms(tm.prefill)),
        ttft: col(&|tm| ms(tm.time_to_first_token())),
        per_token: Stat::of_items(&per_token, &stratum),
        host: col(&|tm| ms(tm.tokenize + tm.select + tm.detokenize)),
        unaccounted: col(&|tm| ms(tm.unaccounted())),
        outside_onnx_runtime: col(&|tm| ms(tm.outside_onnx_runtime())),
        end_to_end: col(&|tm| ms(tm.total)),
    };
    // Per item, the fastest of the repeats: interference from other work on the machine only ever
    // adds time, so the minimum is the most repeatable estimate of what the item costs.
    let e2e_per_item_ms: Vec<f64> = (0..requests.len())
        .map(|i| t.single.iter().filter(|s| s.0 == i).map(|s| ms(s.2.total)).fold(f64::INFINITY, f64::min))
        .collect();
    let tokens1: usize = t.single.iter().map(|(_, _, _, n)| n).sum();
    let per_s = |n: usize, wall: f64| if wall > 0.0 { n as f64 / wall } else { 0.0 };
    let batch1 = Throughput {
        batch: 1,
        items_per_s: per_s(t.single.len(), t.single_wall),
        tokens_per_s: per_s(tokens1, t.single_wall),
        per_batch: stages.end_to_end,
    };
    let batched = Throughput {
        batch: options.batch.max(1),
        items_per_s: per_s(t.batched_items, t.batched_wall),
        tokens_per_s: per_s(t.batched_tokens, t.batched_wall),
        per_batch: Stat::of_items(&t.batch_ms, &|_| 0),
    };
    let manifest = t.model.manifest();
    let files: BTreeSet<&std::path::Path> = manifest.files().into_iter().map(|f| f.path.as_path()).collect();
    let disk_bytes = files.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
    let decoder_weight_bytes = Some(t.model.decoder_weight_bytes()).filter(|b| *b > 0);
    let median_step = (stages.per_token.n > 0).then_some(stages.per_token.median_ms);
    Ok(LatencyReport {
        variant: t.model.name().to_string(),
        run_id: run.id.to_string(),
        interleaved_with: run.interleaved_with,
        machine: MachineInfo {
            cpu: cpu_model(),
            cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            onnxruntime: crate::runtime::describe()?,
            provider: t.model.provider().ort_name().to_string(),
            threads: runtime.intra_threads(),
            lynx_zoo: env!("CARGO_PKG_VERSION").to_string(),
            date: utc_now(),
            load_1min: run.load_1min,
        },
        items: requests.len(),
        repeats: options.repeats.max(1),
        stages,
        batch1,
        batched,
        e2e_per_item_ms,
        item_is_video,
        rss_added_mib: t.rss_added_mib,
        disk_bytes,
        parameters_total: manifest.parameters.total,
        parameters_trainable: manifest.parameters.trainable,
        memory_floor: decoder_weight_bytes.map(|b| floor::MemoryFloor::new(b, run.bandwidth, median_step)),
    })
}

/// A fresh id for a measurement run: the UTC time and the process id.
pub fn new_run_id() -> String {
    format!("{}-pid{}", utc_now(), std::process::id())
}

/// The current UTC time as RFC 3339, from the system clock (no time-zone database needed).
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// A made-up report with end-to-end median `ms`, for tests of tables and plots.
#[cfg(test)]
pub(crate) fn sample_report(variant: &str, ms: f64) -> LatencyReport {
    let s = Stat {
        n: 3,
        median_ms: ms,
        median_ci_low_ms: ms * 0.95,
        median_ci_high_ms: ms * 1.05,
        p90_ms: ms * 1.2,
        mean_ms: ms,
        mean_ci_low_ms: ms * 0.95,
        mean_ci_high_ms: ms * 1.05,
    };
    let tp = Throughput { batch: 1, items_per_s: 1000.0 / ms, tokens_per_s: 4000.0 / ms, per_batch: s };
    LatencyReport {
        variant: variant.into(),
        run_id: "test-run".into(),
        interleaved_with: 1,
        machine: MachineInfo {
            cpu: "test cpu".into(),
            cores: 2,
            onnxruntime: "onnxruntime 1.31.1".into(),
            provider: "cpu".into(),
            threads: 2,
            lynx_zoo: "0".into(),
            date: "2026-11-27T00:00:00Z".into(),
            load_1min: None,
        },
        items: 3,
        repeats: 1,
        stages: Stages {
            preprocess_image: s,
            preprocess_video: s,
            vision: s,
            connector: s,
            prefill: s,
            ttft: s,
            per_token: s,
            host: s,
            unaccounted: s,
            outside_onnx_runtime: s,
            end_to_end: s,
        },
        batch1: tp,
        batched: Throughput { batch: 8, ..tp },
        e2e_per_item_ms: vec![ms; 3],
        item_is_video: vec![false, false, true],
        rss_added_mib: 100.0,
        disk_bytes: 1_000_000,
        parameters_total: 2_000_000,
        parameters_trainable: 10_000,
        // 4 MB at 20 GB/s: a 0.2 ms floor, against a median step of `ms`
        memory_floor: Some(floor::MemoryFloor::new(
            4_000_000,
            floor::Bandwidth { read_gbps: 20.0, triad_gbps: 10.0, threads: 1 },
            Some(ms),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_date_is_well_formed() {
        let d = utc_now();
        assert_eq!(d.len(), 20, "{d}");
        assert!(d.starts_with("20") && d.ends_with('Z'));
    }
}
