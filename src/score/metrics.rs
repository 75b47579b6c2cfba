//! Accuracy with bootstrap confidence intervals, and paired tests of two variants on the same
//! items (exact McNemar and a paired bootstrap of the difference), so that comparison tables can
//! mark differences that are unlikely to be noise.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::error::{Error, Result};

/// Bootstrap resamples used by default.
pub const DEFAULT_RESAMPLES: usize = 2000;

/// Accuracy of a set of outcomes with a 95% percentile-bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Accuracy {
    /// Items scored.
    pub n: usize,
    /// Items correct.
    pub correct: usize,
    /// correct / n (0 when n is 0).
    pub accuracy: f64,
    /// Lower end of the 95% interval.
    pub ci_low: f64,
    /// Upper end of the 95% interval.
    pub ci_high: f64,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Accuracy of `outcomes` with a 95% bootstrap interval from `resamples` seeded resamples.
pub fn accuracy(outcomes: &[bool], resamples: usize, seed: u64) -> Accuracy {
    let n = outcomes.len();
    let correct = outcomes.iter().filter(|&&c| c).count();
    if n == 0 {
        return Accuracy { n, correct, accuracy: 0.0, ci_low: 0.0, ci_high: 0.0 };
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut stats: Vec<f64> =
        (0..resamples).map(|_| (0..n).filter(|_| outcomes[rng.random_range(0..n)]).count() as f64 / n as f64).collect();
    stats.sort_by(f64::total_cmp);
    Accuracy {
        n,
        correct,
        accuracy: correct as f64 / n as f64,
        ci_low: percentile(&stats, 0.025),
        ci_high: percentile(&stats, 0.975),
    }
}

/// Overall and per-class accuracy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassAccuracy {
    /// Every item.
    pub overall: Accuracy,
    /// Per class, sorted by class name.
    pub per_class: BTreeMap<String, Accuracy>,
}

/// Scores `(class, correct)` outcomes overall and per class.
pub fn class_accuracy<'a>(
    outcomes: impl IntoIterator<Item = (&'a str, bool)>,
    resamples: usize,
    seed: u64,
) -> ClassAccuracy {
    let mut all = Vec::new();
    let mut by_class: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    for (class, ok) in outcomes {
        all.push(ok);
        by_class.entry(class.to_string()).or_default().push(ok);
    }
    ClassAccuracy {
        overall: accuracy(&all, resamples, seed),
        per_class: by_class.into_iter().map(|(c, v)| (c, accuracy(&v, resamples, seed))).collect(),
    }
}

/// A paired comparison of variants A and B on the same items.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PairedTest {
    /// Items compared.
    pub n: usize,
    /// Items A got right and B wrong.
    pub a_only: usize,
    /// Items B got right and A wrong.
    pub b_only: usize,
    /// accuracy(B) - accuracy(A).
    pub difference: f64,
    /// Lower end of the 95% paired-bootstrap interval of the difference.
    pub ci_low: f64,
    /// Upper end of that interval.
    pub ci_high: f64,
    /// Two-sided exact McNemar p-value.
    pub p_value: f64,
}

impl PairedTest {
    /// Whether the difference is significant at `alpha` by McNemar's test.
    pub fn significant(&self, alpha: f64) -> bool {
        self.p_value < alpha
    }
}

/// Two-sided exact McNemar test: the discordant pairs follow Binomial(b + c, 1/2) under the null.
pub fn mcnemar_exact(b: usize, c: usize) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let k = b.min(c);
    // log C(n, i) by the recurrence C(n, i+1) = C(n, i) (n - i) / (i + 1), summed in log space.
    let ln_half_n = n as f64 * 0.5f64.ln();
    let mut ln_c = 0.0f64;
    let mut tail = 0.0f64;
    for i in 0..=k {
        if i > 0 {
            ln_c += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        tail += (ln_c + ln_half_n).exp();
    }
    (2.0 * tail).min(1.0)
}

/// Paired comparison of two outcome vectors over the same items, in the same order.
pub fn paired(a: &[bool], b: &[bool], resamples: usize, seed: u64) -> Result<PairedTest> {
    if a.len() != b.len() {
        return Err(Error::Mismatch(format!("paired test needs the same items: {} vs {} outcomes", a.len(), b.len())));
    }
    let n = a.len();
    let a_only = a.iter().zip(b).filter(|(x, y)| **x && !**y).count();
    let b_only = a.iter().zip(b).filter(|(x, y)| !**x && **y).count();
    if n == 0 {
        return Ok(PairedTest { n, a_only, b_only, difference: 0.0, ci_low: 0.0, ci_high: 0.0, p_value: 1.0 });
    }
    let diff_of = |idx: &mut dyn Iterator<Item = usize>| {
        let mut d = 0i64;
        for i in idx {
            d += b[i] as i64 - a[i] as i64;
        }
        d as f64 / n as f64
    };
    let difference = diff_of(&mut (0..n));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut stats: Vec<f64> = (0..resamples)
        .map(|_| {
            let mut it = (0..n).map(|_| rng.random_range(0..n));
            diff_of(&mut it)
        })
        .collect();
    stats.sort_by(f64::total_cmp);
    Ok(PairedTest {
        n,
        a_only,
        b_only,
        difference,
        ci_low: percentile(&stats, 0.025),
        ci_high: percentile(&stats, 0.975),
        p_value: mcnemar_exact(a_only, b_only),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_and_interval() {
        let outcomes: Vec<bool> = (0..200).map(|i| i % 4 != 0).collect();
        let a = accuracy(&outcomes, 1000, 1);
        assert_eq!((a.n, a.correct), (200, 150));
        assert!((a.accuracy - 0.75).abs() < 1e-12);
        assert!(a.ci_low < 0.75 && a.ci_high > 0.75);
        // Normal approximation: half-width ~ 1.96 * sqrt(.75 * .25 / 200) = 0.06.
        assert!((a.ci_high - a.ci_low - 0.12).abs() < 0.03, "{a:?}");
        assert_eq!(accuracy(&outcomes, 1000, 1), a, "seeded bootstrap must be reproducible");
        let all = accuracy(&[true; 10], 100, 0);
        assert_eq!((all.ci_low, all.ci_high), (1.0, 1.0));
    }

    #[test]
    fn per_class_accuracy() {
        let outcomes = [("a", true), ("a", false), ("b", true), ("b", true)];
        let t = class_accuracy(outcomes, 100, 0);
        assert_eq!(t.overall.correct, 3);
        assert!((t.per_class["a"].accuracy - 0.5).abs() < 1e-12);
        assert!((t.per_class["b"].accuracy - 1.0).abs() < 1e-12);
    }

    #[test]
    fn mcnemar_matches_hand_computed_values() {
        // b=0, c=5: p = 2 * (1/32) = 0.0625.
        assert!((mcnemar_exact(0, 5) - 0.0625).abs() < 1e-12);
        // b=1, c=9: p = 2 * (1 + 10) / 1024 = 0.021484375.
        assert!((mcnemar_exact(1, 9) - 0.021484375).abs() < 1e-12);
        assert_eq!(mcnemar_exact(4, 4), 1.0);
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        // Large n stays finite and tiny.
        assert!(mcnemar_exact(100, 300) < 1e-20);
    }

    #[test]
    fn paired_detects_a_real_difference_and_not_a_tie() {
        let a: Vec<bool> = (0..300).map(|i| i % 2 == 0).collect();
        let mut b = a.clone();
        for i in (1..300).step_by(2).take(60) {
            b[i] = true;
        }
        let t = paired(&a, &b, 1000, 3).unwrap();
        assert_eq!((t.a_only, t.b_only), (0, 60));
        assert!((t.difference - 0.2).abs() < 1e-12);
        assert!(t.significant(0.05) && t.ci_low > 0.0);
        let same = paired(&a, &a, 1000, 3).unwrap();
        assert!(!same.significant(0.05));
        assert!(paired(&a, &b[..10], 10, 0).is_err());
    }
}
