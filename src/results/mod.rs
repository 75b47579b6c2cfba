//! The results folder that `eval`, `bench` and `compare` write and `compare` and `report` read:
//! one owner for its layout, so no command builds these paths by hand.
//!
//! ```text
//! OUT/VARIANT/run.json                        what was run (checked on resume)
//! OUT/VARIANT/predictions[.shard-I-of-N].jsonl  per-item answers and verdicts
//! OUT/VARIANT/timings[.shard-I-of-N].jsonl      per-item latency (not deterministic)
//! OUT/VARIANT/latency.json                    `bench`: stage latency, throughput, memory, run id
//! OUT/VARIANT/control-image-swap/...          the image-swap control: same files, pictures swapped
//! OUT/comparison.json                         `compare` over the whole zoo
//! OUT/comparisons/NAMES-DIGEST.json           `compare` over a subset (never overwrites the above)
//! ```
//!
//! The file names are [`RUN_FILE`], [`predictions_file`], [`timings_file`] and [`LATENCY_FILE`];
//! [`splice`] writes the generated part of a Markdown report into its file.
//!
//! Predictions are re-scored against the benchmark when they are loaded: the verdict stored in a
//! file is the scorer's at the time of the run, and a better scorer must not need a new run.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::bench::LatencyReport;
use crate::benchmark::Benchmark;
use crate::error::{Error, Result};
use crate::eval::{check_ids, read_numbered_predictions, score_answer, Control, Prediction, RunSpec, Shard};

pub mod lock;
pub mod merge;
pub mod splice;

/// Name of the image-swap control's folder inside a variant's folder.
pub const IMAGE_SWAP_DIR: &str = "control-image-swap";

/// A run folder's record of what was run (a [`RunSpec`]), checked on resume.
pub const RUN_FILE: &str = "run.json";

/// A variant folder's latency report (`bench`).
pub const LATENCY_FILE: &str = "latency.json";

/// How the name of every predictions shard file starts.
pub const PREDICTIONS_SHARD_PREFIX: &str = "predictions.shard-";

/// The predictions file of `shard` in a run folder: `predictions.jsonl` for the whole benchmark,
/// else `predictions.shard-I-of-N.jsonl`.
pub fn predictions_file(shard: Shard) -> String {
    format!("predictions{}.jsonl", shard.suffix())
}

/// The timings file of `shard` in a run folder: `timings.jsonl` or `timings.shard-I-of-N.jsonl`.
pub fn timings_file(shard: Shard) -> String {
    format!("timings{}.jsonl", shard.suffix())
}

/// The shard a predictions file is named after, for `predictions.shard-I-of-N.jsonl` (0 <= I < N,
/// N > 1); `None` for any other name, `predictions.jsonl` included.
pub fn predictions_shard(file: &str) -> Option<Shard> {
    Shard::from_suffix(file.strip_prefix("predictions")?.strip_suffix(".jsonl")?)
}

/// A results folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultsDir {
    root: PathBuf,
}

impl ResultsDir {
    /// The folder at `root` (need not exist yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `OUT/VARIANT/`.
    pub fn variant_dir(&self, variant: &str) -> PathBuf {
        self.root.join(variant)
    }

    /// The folder of one run of `variant`: its own folder, or its control's.
    pub fn run_dir(&self, variant: &str, control: Control) -> PathBuf {
        match control {
            Control::None => self.variant_dir(variant),
            Control::ImageSwap => self.variant_dir(variant).join(IMAGE_SWAP_DIR),
        }
    }

    /// `OUT/VARIANT/latency.json`.
    pub fn latency_file(&self, variant: &str) -> PathBuf {
        self.variant_dir(variant).join(LATENCY_FILE)
    }

    /// Where a comparison of `variants` is kept: `OUT/comparison.json` when they are the whole zoo,
    /// else a file named by a digest of the sorted names, so a subset never overwrites the full
    /// comparison.
    pub fn comparison_file(&self, variants: &[String], whole_zoo: bool) -> PathBuf {
        if whole_zoo {
            return self.root.join("comparison.json");
        }
        let mut names = variants.to_vec();
        names.sort();
        let digest = Sha256::digest(names.join("\n").as_bytes());
        let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
        let first = names.first().cloned().unwrap_or_default();
        self.root.join("comparisons").join(format!("{first}+{}-{hex}.json", names.len().saturating_sub(1)))
    }

    /// Variants with a complete `predictions.jsonl`, sorted by name.
    pub fn variants(&self) -> Result<Vec<String>> {
        let entries = fs::read_dir(&self.root).map_err(|e| Error::io("listing", &self.root, e))?;
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join(predictions_file(Shard::ALL)).is_file())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    /// The run spec of one run, if there is one.
    pub fn run_spec(&self, variant: &str, control: Control) -> Result<Option<RunSpec>> {
        let path = self.run_dir(variant, control).join(RUN_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        let text = fs::read_to_string(&path).map_err(|e| Error::io("reading", &path, e))?;
        serde_json::from_str(&text).map(Some).map_err(|e| Error::jsonl(&path, 1, format!("not a run spec: {e}")))
    }

    /// The predictions of one run, re-scored against `bench`, in benchmark order; `None` when the
    /// run has no `predictions.jsonl`.
    pub fn predictions(&self, variant: &str, control: Control, bench: &Benchmark) -> Result<Option<Vec<Prediction>>> {
        let path = self.run_dir(variant, control).join(predictions_file(Shard::ALL));
        if !path.is_file() {
            return Ok(None);
        }
        rescore(bench, &read_numbered_predictions(&path)?, &path).map(Some)
    }

    /// `OUT/VARIANT/latency.json`, if measured.
    pub fn latency(&self, variant: &str) -> Result<Option<LatencyReport>> {
        let path = self.latency_file(variant);
        if !path.is_file() {
            return Ok(None);
        }
        let text = fs::read_to_string(&path).map_err(|e| Error::io("reading", &path, e))?;
        serde_json::from_str(&text).map(Some).map_err(|e| Error::jsonl(&path, 1, format!("not a latency report: {e}")))
    }

    /// Writes `latency.json` of `variant`.
    pub fn write_latency(&self, report: &LatencyReport) -> Result<PathBuf> {
        let dir = self.variant_dir(&report.variant);
        fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
        let path = self.latency_file(&report.variant);
        let text = serde_json::to_string_pretty(report).map_err(|e| Error::Mismatch(e.to_string()))?;
        fs::write(&path, text + "\n").map_err(|e| Error::io("writing", &path, e))?;
        Ok(path)
    }
}

/// One variant's runs in a results folder, re-scored against the benchmark.
#[derive(Debug, Clone)]
pub struct VariantRuns {
    /// The variant.
    pub name: String,
    /// Its predictions in benchmark order (empty when it has none).
    pub predictions: Vec<Prediction>,
    /// Its image-swap control's, when run.
    pub swapped: Option<Vec<Prediction>>,
    /// Its `latency.json`, when measured.
    pub latency: Option<LatencyReport>,
}

/// Every variant of a results folder, all runs of one benchmark.
#[derive(Debug, Clone)]
pub struct Runs {
    /// The benchmark the runs name (`run.json`).
    pub bench: Benchmark,
    /// Their limit (first N items), if any.
    pub limit: Option<usize>,
    /// The variants, sorted by name.
    pub variants: Vec<VariantRuns>,
}

impl ResultsDir {
    /// Reads every variant (re-scored against the benchmark its runs name), with its image-swap
    /// control and latency where present. Every run must be of the same benchmark and limit.
    pub fn load(&self) -> Result<Runs> {
        let refuse = |message: String| Error::Results { path: self.root.clone(), message };
        let names = self.variants()?;
        let Some(first) = names.first() else {
            return Err(refuse("holds no results (run `lynx-zoo compare` first)".into()));
        };
        let first_dir = self.run_dir(first, Control::None);
        let spec = self
            .run_spec(first, Control::None)?
            .ok_or_else(|| Error::Results { path: first_dir.clone(), message: format!("has no {RUN_FILE}") })?;
        let bench = Benchmark::load(&spec.bench).map_err(|e| Error::Item {
            location: format!(
                "loading the benchmark `{}` named in `{}`",
                spec.bench.display(),
                first_dir.join(RUN_FILE).display()
            ),
            source: Box::new(e),
        })?;
        let mut variants = Vec::new();
        for name in &names {
            if let Some(s) = self.run_spec(name, Control::None)? {
                if s.bench_sha256 != spec.bench_sha256 || s.limit != spec.limit {
                    return Err(refuse(format!(
                        "holds runs of different benchmarks or limits (`{first}` and `{name}` differ): compare only runs of one benchmark, one folder per benchmark"
                    )));
                }
            }
            variants.push(VariantRuns {
                name: name.clone(),
                predictions: self.predictions(name, Control::None, &bench)?.unwrap_or_default(),
                swapped: self.predictions(name, Control::ImageSwap, &bench)?,
                latency: self.latency(name)?,
            });
        }
        Ok(Runs { bench, limit: spec.limit, variants })
    }
}

/// Scores `predictions` (read from `file`, each with its line) again against `bench` with
/// today's scorer, in benchmark order. An id the benchmark lacks, at another position, or one that
/// appears twice, is an error naming `file:line`.
pub fn rescore(bench: &Benchmark, predictions: &[(usize, Prediction)], file: &Path) -> Result<Vec<Prediction>> {
    let position: HashMap<String, usize> = bench.records.iter().enumerate().map(|(i, r)| (r.id(), i)).collect();
    let numbered: Vec<(usize, &Prediction)> = predictions.iter().map(|(line, p)| (*line, p)).collect();
    check_ids(file, &numbered, &position, &format!("the items of the benchmark `{}`", bench.path.display()))?;
    let mut out: Vec<Prediction> = predictions
        .iter()
        .map(|(_, p)| score_answer(&bench.records[p.position], p.position, &p.prediction, p.new_tokens))
        .collect();
    out.sort_by_key(|p| p.position);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_of_a_run_folder() {
        let s = Shard { index: 1, count: 3 };
        assert_eq!(
            (predictions_file(s), timings_file(s)),
            ("predictions.shard-1-of-3.jsonl".into(), "timings.shard-1-of-3.jsonl".into())
        );
        assert_eq!(
            (predictions_file(Shard::ALL), timings_file(Shard::ALL)),
            ("predictions.jsonl".into(), "timings.jsonl".into())
        );
        assert!(predictions_file(s).starts_with(PREDICTIONS_SHARD_PREFIX));
        assert_eq!(predictions_shard("predictions.shard-2-of-3.jsonl"), Some(Shard { index: 2, count: 3 }));
        for bad in [
            "predictions.shard-3-of-3.jsonl",
            "predictions.shard-0-of-1.jsonl",
            "predictions.shard-x.jsonl",
            "predictions.shard-1-of-2.json",
            "timings.shard-1-of-2.jsonl",
            "predictions.jsonl",
        ] {
            assert_eq!(predictions_shard(bad), None, "{bad}");
        }
        // Agrees with the name `eval` writes.
        let s = Shard { index: 1, count: 4 };
        assert_eq!(predictions_shard(&predictions_file(s)), Some(s));
    }

    #[test]
    fn a_subset_comparison_never_takes_the_full_comparisons_file() {
        let r = ResultsDir::new("out");
        let all = r.comparison_file(&["b".into(), "a".into()], true);
        let sub = r.comparison_file(&["b".into(), "a".into()], false);
        let same = r.comparison_file(&["a".into(), "b".into()], false);
        let other = r.comparison_file(&["a".into(), "c".into()], false);
        assert_eq!(all, Path::new("out/comparison.json"));
        assert_ne!(sub, all);
        assert_eq!(sub, same);
        assert_ne!(sub, other);
        assert!(sub.starts_with("out/comparisons"));
        assert_eq!(r.run_dir("v", Control::ImageSwap), Path::new("out/v/control-image-swap"));
    }
}
