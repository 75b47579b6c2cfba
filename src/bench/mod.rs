//! Latency of a variant, stage by stage: image and video preprocessing, vision encoder,
//! connector, prefill, time to first token, per-token decode, end to end; at batch 1 and a larger
//! batch; median and p90 over repeats after warm-up; peak RSS, size on disk, parameter counts, and
//! the machine (execution provider, threads, ONNX Runtime version, CPU model).
//!
//! Timing rules (../shared/BRIEF.md): warm-up first, no profiling, compare ratios measured in one
//! run on one machine.

use std::collections::BTreeSet;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::data::{Benchmark, Modality, Record};
use crate::error::Result;
use crate::eval::media_of;
use crate::generate::GenerationOptions;
use crate::model::{Model, Request, Timings};
use crate::runtime::RuntimeOptions;

/// Median and 90th percentile of a set of samples, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Stat {
    /// Samples.
    pub n: usize,
    /// Median.
    pub median_ms: f64,
    /// 90th percentile (nearest rank).
    pub p90_ms: f64,
}

impl Stat {
    /// Median and p90 of `samples` (ms). NaN-free input expected; empty gives n = 0.
    pub fn of(samples: &[f64]) -> Stat {
        if samples.is_empty() {
            return Stat::default();
        }
        let mut v = samples.to_vec();
        v.sort_by(f64::total_cmp);
        let rank = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        let median = if v.len() % 2 == 1 { v[v.len() / 2] } else { (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0 };
        Stat { n: v.len(), median_ms: median, p90_ms: rank(0.9) }
    }
}

/// Options of [`measure`].
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Untimed passes over the items first.
    pub warmup: usize,
    /// Timed passes over the items.
    pub repeats: usize,
    /// Image items and video items taken from the benchmark (each).
    pub items_per_modality: usize,
    /// The larger batch size.
    pub batch: usize,
    /// Decoding.
    pub generation: GenerationOptions,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self { warmup: 1, repeats: 3, items_per_modality: 8, batch: 8, generation: GenerationOptions::greedy(24) }
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
    /// Time to first token (preprocess + vision + connector + prefill).
    pub ttft: Stat,
    /// One decoder step.
    pub per_token: Stat,
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
}

/// Everything `bench` measures for one variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyReport {
    /// Variant name.
    pub variant: String,
    /// Where and how.
    pub machine: MachineInfo,
    /// Items timed (image + video).
    pub items: usize,
    /// Batch-1 stage latencies.
    pub stages: Stages,
    /// Throughput at batch 1.
    pub batch1: Throughput,
    /// Throughput at the larger batch.
    pub batched: Throughput,
    /// Peak resident memory while this variant was loaded and run, MiB (Linux; 0 elsewhere).
    pub peak_rss_mib: f64,
    /// Bytes on disk of every file the manifest references.
    pub disk_bytes: u64,
    /// Total parameters (from the manifest).
    pub parameters_total: u64,
    /// Trainable parameters (from the manifest).
    pub parameters_trainable: u64,
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
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| {
            t.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// The first `n` image and first `n` video records of `bench`.
pub fn pick_items(bench: &Benchmark, n: usize) -> Vec<&Record> {
    let modality = |r: &Record| match r.media {
        crate::data::Media::Image(_) => Modality::Image,
        crate::data::Media::Video(_) => Modality::Video,
    };
    let images = bench.records.iter().filter(|r| modality(r) == Modality::Image).take(n);
    let videos = bench.records.iter().filter(|r| modality(r) == Modality::Video).take(n);
    images.chain(videos).collect()
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Measures `model` on `items`. `runtime` is only recorded (threads).
pub fn measure(
    model: &mut Model,
    items: &[&Record],
    runtime: &RuntimeOptions,
    options: &BenchOptions,
) -> Result<LatencyReport> {
    let requests: Vec<Request> = items.iter().map(|r| Request::new(media_of(r), r.question.clone())).collect();
    let g = &options.generation;
    for _ in 0..options.warmup {
        for req in &requests {
            model.ask(&req.media, &req.question, g)?;
        }
    }
    let mut single: Vec<(bool, Timings, usize)> = Vec::new();
    let start = Instant::now();
    for _ in 0..options.repeats.max(1) {
        for req in &requests {
            let a = model.ask(&req.media, &req.question, g)?;
            single.push((matches!(req.media, crate::preprocess::Media::Video(_)), a.timings, a.tokens.len()));
        }
    }
    let single_wall = start.elapsed().as_secs_f64();
    let col = |f: &dyn Fn(&Timings) -> f64| Stat::of(&single.iter().map(|(_, t, _)| f(t)).collect::<Vec<_>>());
    let of_kind = |video: bool| {
        Stat::of(&single.iter().filter(|(v, _, _)| *v == video).map(|(_, t, _)| ms(t.preprocess)).collect::<Vec<_>>())
    };
    let per_token: Vec<f64> = single.iter().filter_map(|(_, t, _)| t.per_token().map(ms)).collect();
    let stages = Stages {
        preprocess_image: of_kind(false),
        preprocess_video: of_kind(true),
        vision: col(&|t| ms(t.vision)),
        connector: col(&|t| ms(t.connector)),
        prefill: col(&|t| ms(t.prefill)),
        ttft: col(&|t| ms(t.time_to_first_token())),
        per_token: Stat::of(&per_token),
        end_to_end: col(&|t| ms(t.total)),
    };
    let tokens1: usize = single.iter().map(|(_, _, n)| n).sum();
    let batch1 = Throughput {
        batch: 1,
        items_per_s: single.len() as f64 / single_wall,
        tokens_per_s: tokens1 as f64 / single_wall,
        per_batch: stages.end_to_end,
    };

    let b = options.batch.max(1);
    for chunk in requests.chunks(b).take(options.warmup) {
        model.ask_batch(chunk, g)?;
    }
    let mut batch_ms = Vec::new();
    let (mut items, mut tokens) = (0usize, 0usize);
    let start = Instant::now();
    for _ in 0..options.repeats.max(1) {
        for chunk in requests.chunks(b) {
            let answers = model.ask_batch(chunk, g)?;
            if let Some(a) = answers.first() {
                batch_ms.push(ms(a.timings.total));
            }
            items += answers.len();
            tokens += answers.iter().map(|a| a.tokens.len()).sum::<usize>();
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let batched = Throughput {
        batch: b,
        items_per_s: items as f64 / wall,
        tokens_per_s: tokens as f64 / wall,
        per_batch: Stat::of(&batch_ms),
    };

    let manifest = model.manifest();
    let files: BTreeSet<&std::path::Path> = manifest.files().into_iter().map(|f| f.path.as_path()).collect();
    let disk_bytes = files.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
    Ok(LatencyReport {
        variant: model.name().to_string(),
        machine: MachineInfo {
            cpu: cpu_model(),
            cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            onnxruntime: crate::runtime::describe()?,
            provider: model.provider().ort_name().to_string(),
            threads: runtime.intra_threads(),
            lynx_zoo: env!("CARGO_PKG_VERSION").to_string(),
            date: utc_now(),
        },
        items: requests.len(),
        stages,
        batch1,
        batched,
        peak_rss_mib: peak_rss_mib(),
        disk_bytes,
        parameters_total: manifest.parameters.total,
        parameters_trainable: manifest.parameters.trainable,
    })
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
    let s = Stat { n: 3, median_ms: ms, p90_ms: ms * 1.2 };
    let tp = Throughput { batch: 1, items_per_s: 1000.0 / ms, tokens_per_s: 4000.0 / ms, per_batch: s };
    LatencyReport {
        variant: variant.into(),
        machine: MachineInfo {
            cpu: "test cpu".into(),
            cores: 2,
            onnxruntime: "onnxruntime 1.31.1".into(),
            provider: "cpu".into(),
            threads: 2,
            lynx_zoo: "0".into(),
            date: "2026-11-27T00:00:00Z".into(),
        },
        items: 3,
        stages: Stages {
            preprocess_image: s,
            preprocess_video: s,
            vision: s,
            connector: s,
            prefill: s,
            ttft: s,
            per_token: s,
            end_to_end: s,
        },
        batch1: tp,
        batched: Throughput { batch: 8, ..tp },
        peak_rss_mib: 100.0,
        disk_bytes: 1_000_000,
        parameters_total: 2_000_000,
        parameters_trainable: 10_000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_p90() {
        let s = Stat::of(&[5.0, 1.0, 3.0, 2.0, 4.0, 6.0, 7.0, 8.0, 9.0, 10.0]);
        assert_eq!(s.n, 10);
        assert_eq!(s.median_ms, 5.5);
        assert_eq!(s.p90_ms, 9.0);
        assert_eq!(Stat::of(&[3.0]).p90_ms, 3.0);
        assert_eq!(Stat::of(&[]).n, 0);
    }

    #[test]
    fn utc_date_is_well_formed() {
        let d = utc_now();
        assert_eq!(d.len(), 20, "{d}");
        assert!(d.starts_with("20") && d.ends_with('Z'));
    }
}
