//! The controls every accuracy table is read against (../shared/BRIEF.md, "What makes a verdict
//! trustworthy"):
//!
//! - the **majority floor** ([`MajorityFloor`]): per class, the most common answer of a split
//!   generated with another seed, given to every item of the class whatever it asks -- what
//!   knowing the answer distribution alone scores, computed by the tool and scored like a model;
//! - the **image swap** ([`swap_partners`]): each item's picture replaced by the picture of another
//!   item of the same class (a fixed derangement), question and answers kept. A variant that reads
//!   the picture loses accuracy; one that answers from the question alone does not. The drop is its
//!   *vision reliance*.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{score_answer, select, Prediction, Shard};
use crate::benchmark::{self, Benchmark, Record};
use crate::data::{self, SplitMeta};
use crate::error::{Error, Result};
use crate::score::normalize;

/// Seed offset of the split the majority floor learns from: `seed + FLOOR_SEED_OFFSET` of the
/// benchmark's own generator seed, so the floor never sees the items it is scored on.
pub const FLOOR_SEED_OFFSET: u64 = 1_000_003;
/// Items of the split the majority floor learns from (200 per class).
pub const FLOOR_ITEMS: usize = 2200;

/// Where the floor's majority answers come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FloorSource {
    /// A split of our generator with another seed (benchmarks that carry a `meta.json`).
    Generated {
        /// The split generated.
        split: data::Split,
        /// Its items.
        n: usize,
        /// Its seed.
        seed: u64,
    },
    /// Any other file: two folds by position parity, each item answered with the majority answer
    /// of its class in the other fold.
    CrossFitted,
}

/// The majority floor of a benchmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MajorityFloor {
    /// Where the answers were learned.
    pub source: FloorSource,
    /// Per class, the majority answer (for a generated source).
    pub answers: BTreeMap<String, String>,
}

/// The most common answer among `answers` by normalised form; ties go to the smallest normalised
/// form, so the result does not depend on order. Returns the answer as first written.
fn majority<'a>(answers: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut counts: BTreeMap<String, (usize, &'a str)> = BTreeMap::new();
    for a in answers {
        counts.entry(normalize(a)).or_insert((0, a)).0 += 1;
    }
    let best = counts.values().map(|(n, _)| *n).max()?;
    counts.into_values().find(|(n, _)| *n == best).map(|(_, a)| a.to_string())
}

impl MajorityFloor {
    /// The floor of `bench`: learned from a split of another seed when `bench` is a generated split
    /// (its `meta.json`), else cross-fitted on `bench` itself.
    pub fn for_benchmark(bench: &Benchmark) -> Result<Self> {
        match SplitMeta::beside(&bench.path)? {
            Some(meta) if meta.dataset == benchmark::DATASET => {
                let seed = meta.seed.wrapping_add(FLOOR_SEED_OFFSET);
                let split = data::Split::Val;
                let items = data::answers(split, FLOOR_ITEMS, seed, &meta.knobs)?;
                let mut by_class: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
                for (class, answers) in &items {
                    if let Some(first) = answers.first() {
                        by_class.entry(class.name()).or_default().push(first);
                    }
                }
                let answers =
                    by_class.into_iter().filter_map(|(c, v)| majority(v).map(|a| (c.to_string(), a))).collect();
                Ok(Self { source: FloorSource::Generated { split, n: FLOOR_ITEMS, seed }, answers })
            }
            _ => Ok(Self { source: FloorSource::CrossFitted, answers: BTreeMap::new() }),
        }
    }

    /// The floor's answer to each of `records` (in their order): the majority answer of its class.
    fn answer_all(&self, bench: &Benchmark, records: &[(usize, &Record)]) -> Vec<String> {
        match self.source {
            FloorSource::Generated { .. } => {
                records.iter().map(|(_, r)| self.answers.get(r.class_or_all()).cloned().unwrap_or_default()).collect()
            }
            FloorSource::CrossFitted => {
                // Majority per (fold, class) over the whole file, then each item gets the other fold's.
                let mut by_fold: [BTreeMap<&str, Vec<&str>>; 2] = [BTreeMap::new(), BTreeMap::new()];
                for (i, r) in bench.records.iter().enumerate() {
                    if let Some(a) = r.answers.first() {
                        by_fold[i % 2].entry(r.class_or_all()).or_default().push(a);
                    }
                }
                let best: Vec<BTreeMap<&str, String>> = by_fold
                    .into_iter()
                    .map(|m| m.into_iter().filter_map(|(c, v)| majority(v).map(|a| (c, a))).collect())
                    .collect();
                records
                    .iter()
                    .map(|(i, r)| best[1 - i % 2].get(r.class_or_all()).cloned().unwrap_or_default())
                    .collect()
            }
        }
    }

    /// The floor's scored predictions on the first `limit` records of `bench`.
    pub fn predictions(&self, bench: &Benchmark, limit: Option<usize>) -> Vec<Prediction> {
        let records = select(bench, limit, Shard::ALL);
        let answers = self.answer_all(bench, &records);
        records.iter().zip(answers).map(|((pos, r), a)| score_answer(r, *pos, &a, 0)).collect()
    }

    /// One line saying where the floor comes from, for table notes.
    pub fn describe(&self) -> String {
        match &self.source {
            FloorSource::Generated { split, n, seed } => format!(
                "per-class majority answer of a {n}-item {} split generated with seed {seed}",
                serde_json::to_value(split).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
            ),
            FloorSource::CrossFitted => {
                "per-class majority answer of the other half of the benchmark (two folds by position)".into()
            }
        }
    }
}

/// For each record of `bench` (by position), the position of the record whose media replaces its
/// own in the image-swap control: the next record of the same class, cyclically, so every record
/// of a class with two or more records gets another record's picture (a derangement) and every
/// picture is used once. `None` for a class with a single record.
pub fn swap_partners(bench: &Benchmark) -> Vec<Option<usize>> {
    let mut by_class: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, r) in bench.records.iter().enumerate() {
        by_class.entry(r.class_or_all()).or_default().push(i);
    }
    let mut partner = vec![None; bench.records.len()];
    for positions in by_class.values() {
        if positions.len() < 2 {
            continue;
        }
        for (k, &p) in positions.iter().enumerate() {
            partner[p] = Some(positions[(k + 1) % positions.len()]);
        }
    }
    partner
}

/// The record at `position` with its media replaced by its swap partner's; an error when the
/// class has a single record (nothing to swap with).
pub fn swapped(bench: &Benchmark, partners: &[Option<usize>], position: usize) -> Result<Record> {
    let record = &bench.records[position];
    let other = partners.get(position).copied().flatten().ok_or_else(|| {
        Error::jsonl(
            &record.file,
            record.line,
            format!("class `{}` has a single record: the image-swap control needs two", record.class_or_all()),
        )
    })?;
    Ok(Record { media: bench.records[other].media.clone(), ..record.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::Path;

    fn bench_with(dir: &Path, lines: &[(&str, &str)]) -> Benchmark {
        image::RgbImage::new(2, 2).save(dir.join("a.png")).unwrap();
        let text: String = lines
            .iter()
            .enumerate()
            .map(|(i, (class, answer))| {
                format!(
                    "{{\"dataset\":\"d\",\"question\":\"q{i}\",\"answer\":[\"{answer}\"],\"index\":{i},\"image\":\"a.png\",\"class\":\"{class}\"}}\n"
                )
            })
            .collect();
        fs::write(dir.join("ann.jsonl"), text).unwrap();
        Benchmark::load(dir.join("ann.jsonl")).unwrap()
    }

    #[test]
    fn majority_is_by_normalised_form_and_ties_are_stable() {
        assert_eq!(majority(["Two", "2", "three"]).as_deref(), Some("Two"));
        assert_eq!(majority(["b", "a"]).as_deref(), Some("a"));
        assert_eq!(majority(["b", "a", "b"]).as_deref(), Some("b"));
        assert_eq!(majority(Vec::<&str>::new()), None);
    }

    #[test]
    fn swap_is_a_derangement_within_each_class() {
        let t = tempfile::tempdir().unwrap();
        let b = bench_with(t.path(), &[("x", "1"), ("y", "a"), ("x", "2"), ("x", "3"), ("z", "b"), ("y", "c")]);
        let p = swap_partners(&b);
        assert_eq!(p, vec![Some(2), Some(5), Some(3), Some(0), None, Some(1)]);
        for (i, q) in p.iter().enumerate() {
            if let Some(q) = q {
                assert_ne!(i, *q);
                assert_eq!(b.records[i].class, b.records[*q].class);
            }
        }
        assert!(swapped(&b, &p, 4).unwrap_err().to_string().contains("single record"));
        assert_eq!(swapped(&b, &p, 0).unwrap().question, "q0");
    }

    #[test]
    fn cross_fitted_floor_never_uses_an_items_own_answer() {
        let t = tempfile::tempdir().unwrap();
        // Fold 0 (even positions) says "a", fold 1 (odd) says "b": every item gets the other's.
        let b = bench_with(t.path(), &[("x", "a"), ("x", "b"), ("x", "a"), ("x", "b")]);
        let f = MajorityFloor::for_benchmark(&b).unwrap();
        assert_eq!(f.source, FloorSource::CrossFitted);
        let p = f.predictions(&b, None);
        assert_eq!(p.iter().map(|p| p.prediction.as_str()).collect::<Vec<_>>(), vec!["b", "a", "b", "a"]);
        assert!(p.iter().all(|p| !p.correct));
    }

    #[test]
    fn generated_floor_learns_from_another_seed() {
        let bench = Benchmark::load(concat!(env!("CARGO_MANIFEST_DIR"), "/data/test/annotations.jsonl")).unwrap();
        let f = MajorityFloor::for_benchmark(&bench).unwrap();
        assert_eq!(
            f.source,
            FloorSource::Generated { split: data::Split::Val, n: FLOOR_ITEMS, seed: FLOOR_SEED_OFFSET }
        );
        assert_eq!(f.answers.len(), benchmark::QuestionClass::ALL.len());
        assert!(f.answers["more"] == "yes" || f.answers["more"] == "no");
        let p = f.predictions(&bench, Some(110));
        assert_eq!(p.len(), 110);
        let acc = p.iter().filter(|p| p.correct).count() as f64 / 110.0;
        assert!((0.05..0.6).contains(&acc), "{acc}");
    }
}
