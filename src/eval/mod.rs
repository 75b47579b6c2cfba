//! Evaluation: runs a variant over a benchmark, scores and stores every answer as it goes
//! ([`store`]), in shards that merge back into one file, and summarises the results per class with
//! confidence intervals and instruction following.

pub mod controls;
pub mod runner;
mod shard;
pub mod store;
mod timings;

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::benchmark::{Benchmark, Record};
use crate::error::{Error, Result};
use crate::score::{self, Accuracy, ClassAccuracy};
pub use controls::{swap_partners, MajorityFloor};
pub use runner::{auto_workers, evaluate, windows, Control, EvalOptions, ItemTiming, RunSpec, StaleResults};
pub use shard::{Shard, ShardSpec};
pub use store::{
    check_ids, read_numbered_predictions, read_predictions, score_external, JsonlAppender, Prediction, PredictionStore,
};
pub use timings::{merge_timings, MergedTimings};

/// The records of `bench` to evaluate: the first `limit` (when given), then this shard's share.
/// Returns (position, record) pairs.
pub fn select(bench: &Benchmark, limit: Option<usize>, shard: Shard) -> Vec<(usize, &Record)> {
    bench.records.iter().enumerate().take(limit.unwrap_or(usize::MAX)).filter(|(i, _)| shard.contains(*i)).collect()
}

/// Scores `answer` to `record` at `position` into a [`Prediction`].
pub fn score_answer(record: &Record, position: usize, answer: &str, new_tokens: usize) -> Prediction {
    let instruction = record.instruction();
    Prediction {
        id: record.id(),
        position,
        class: record.class_or_all().to_string(),
        prediction: answer.to_string(),
        correct: record.is_correct(answer),
        instruction: instruction.map(|i| i.name().to_string()),
        follows: instruction.map(|i| score::follows(i, answer)),
        phrasing: record.extra_str("phrasing").map(str::to_string),
        new_tokens,
    }
}

/// Accuracy, per-class accuracy and instruction following of one variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Overall and per class.
    pub accuracy: ClassAccuracy,
    /// Share of answers in the asked-for format, over items that carry an instruction.
    pub instruction_following: Option<Accuracy>,
    /// Instruction following over held-out phrasings only.
    pub instruction_following_heldout: Option<Accuracy>,
    /// Accuracy over held-out phrasings only.
    pub heldout_accuracy: Option<Accuracy>,
}

/// Summarises predictions (bootstrap seeded, so summaries are reproducible).
pub fn summarize(predictions: &[Prediction]) -> Summary {
    const SEED: u64 = 2307_02469;
    let resamples = score::DEFAULT_RESAMPLES;
    let accuracy = score::class_accuracy(predictions.iter().map(|p| (p.class.as_str(), p.correct)), resamples, SEED);
    let share = |f: &dyn Fn(&Prediction) -> Option<bool>| {
        let v: Vec<bool> = predictions.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| score::accuracy(&v, resamples, SEED))
    };
    let heldout = |p: &Prediction| p.phrasing.as_deref() == Some("heldout");
    Summary {
        accuracy,
        instruction_following: share(&|p| p.follows),
        instruction_following_heldout: share(&|p| if heldout(p) { p.follows } else { None }),
        heldout_accuracy: share(&|p| heldout(p).then_some(p.correct)),
    }
}

/// Outcomes of two variants on the items both answered, aligned by id (in `a`'s order).
pub fn aligned_outcomes(a: &[Prediction], b: &[Prediction]) -> (Vec<bool>, Vec<bool>) {
    let b_by_id: HashMap<&str, bool> = b.iter().map(|p| (p.id.as_str(), p.correct)).collect();
    a.iter().filter_map(|p| b_by_id.get(p.id.as_str()).map(|&ok| (p.correct, ok))).unzip()
}

/// Checks that `predictions` cover `bench` (first `limit` records) exactly, naming what is missing.
pub fn check_complete(bench: &Benchmark, limit: Option<usize>, predictions: &[Prediction], file: &Path) -> Result<()> {
    let expected = select(bench, limit, Shard::ALL);
    if predictions.len() != expected.len() {
        let have: std::collections::HashSet<&str> = predictions.iter().map(|p| p.id.as_str()).collect();
        let missing: Vec<String> =
            expected.iter().filter(|(_, r)| !have.contains(r.id().as_str())).take(5).map(|(_, r)| r.id()).collect();
        return Err(Error::Mismatch(format!(
            "`{}` holds {} predictions for {} items (missing e.g. {})",
            file.display(),
            predictions.len(),
            expected.len(),
            missing.join(", ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(position: usize, correct: bool) -> Prediction {
        Prediction {
            id: format!("d/{position}"),
            position,
            class: if position.is_multiple_of(2) { "even".into() } else { "odd".into() },
            prediction: "x".into(),
            correct,
            instruction: Some("one_word".into()),
            follows: Some(position.is_multiple_of(3)),
            phrasing: Some(if position < 3 { "heldout".into() } else { "seen".into() }),
            new_tokens: 1,
        }
    }

    #[test]
    fn summary_counts_classes_and_instruction_following() {
        let preds: Vec<Prediction> = (0..6).map(|i| p(i, i < 4)).collect();
        let s = summarize(&preds);
        assert_eq!(s.accuracy.overall.correct, 4);
        assert_eq!(s.accuracy.per_class["even"].n, 3);
        assert_eq!(s.instruction_following.unwrap().correct, 2); // positions 0 and 3
        assert_eq!(s.instruction_following_heldout.unwrap().n, 3);
        assert_eq!(s.heldout_accuracy.unwrap().correct, 3);
        let (a, b) = aligned_outcomes(&preds, &preds[2..]);
        assert_eq!(a.len(), 4);
        assert_eq!(a, b);
    }
}
