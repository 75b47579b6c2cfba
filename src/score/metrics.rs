//! Accuracy with bootstrap confidence intervals, and paired tests of two variants on the same
//! items (exact McNemar and a paired bootstrap of the difference), so that comparison tables can
//! mark differences that are unlikely to be noise.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Bootstrap resamples used by default.
pub const DEFAULT_RESAMPLES: usize = 2000;

/// Accuracy of a set of outcomes with a 95% percentile-bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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

/// Welch's two-sample t-test of the means of `a` and `b` (unequal variances): used on per-seed
/// accuracies, where each value is one training run of a variant.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WelchTest {
    /// mean(b) - mean(a).
    pub difference: f64,
    /// The t statistic.
    pub t: f64,
    /// Welch-Satterthwaite degrees of freedom.
    pub df: f64,
    /// Two-sided p-value.
    pub p_value: f64,
}

/// Mean and sample standard deviation (n - 1); `None` for fewer than two values.
pub fn mean_sd(values: &[f64]) -> Option<(f64, f64)> {
    if values.len() < 2 {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    Some((mean, var.sqrt()))
}

/// Welch's test; `None` unless both sides have two or more values. Equal means with no spread
/// give p = 1; different means with no spread give p = 0.
pub fn welch(a: &[f64], b: &[f64]) -> Option<WelchTest> {
    let (ma, sa) = mean_sd(a)?;
    let (mb, sb) = mean_sd(b)?;
    let (va, vb) = (sa * sa / a.len() as f64, sb * sb / b.len() as f64);
    let difference = mb - ma;
    if va + vb == 0.0 {
        let p_value = if difference == 0.0 { 1.0 } else { 0.0 };
        return Some(WelchTest { difference, t: f64::INFINITY.copysign(difference), df: f64::NAN, p_value });
    }
    let t = difference / (va + vb).sqrt();
    let df = (va + vb).powi(2) / (va * va / (a.len() - 1) as f64 + vb * vb / (b.len() - 1) as f64);
    Some(WelchTest { difference, t, df, p_value: student_t_two_sided(t, df) })
}

/// Two-sided p-value of Student's t with `df` degrees of freedom: I_{df/(df+t^2)}(df/2, 1/2).
pub fn student_t_two_sided(t: f64, df: f64) -> f64 {
    if !t.is_finite() {
        return 0.0;
    }
    regularized_beta(df / (df + t * t), df / 2.0, 0.5).clamp(0.0, 1.0)
}

/// ln Gamma(x) for x > 0 (Lanczos, g = 7, n = 9; relative error below 1e-13).
fn ln_gamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + 7.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// The regularised incomplete beta function I_x(a, b), by its continued fraction (Lentz).
fn regularized_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front = (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    // The continued fraction converges fast for x < (a + 1) / (a + b + 2); use the symmetry otherwise.
    if x > (a + 1.0) / (a + b + 2.0) {
        return 1.0 - regularized_beta(1.0 - x, b, a);
    }
    const TINY: f64 = 1e-300;
    let mut c = 1.0;
    let mut d = 1.0 - (a + b) * x / (a + 1.0);
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut f = d;
    for m in 1..300 {
        let m = m as f64;
        for numerator in [
            m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0)),
        ] {
            d = 1.0 + numerator * d;
            if d.abs() < TINY {
                d = TINY;
            }
            c = 1.0 + numerator / c;
            if c.abs() < TINY {
                c = TINY;
            }
            d = 1.0 / d;
            f *= c * d;
        }
        if (c * d - 1.0).abs() < 1e-15 {
            break;
        }
    }
    front * f / a
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
    fn student_t_matches_tables() {
        // Two-sided critical values: t = 2.776 at df = 4 and t = 1.96 at df = inf give p = 0.05.
        assert!((student_t_two_sided(2.776_445, 4.0) - 0.05).abs() < 1e-5);
        assert!((student_t_two_sided(12.706_205, 1.0) - 0.05).abs() < 1e-5);
        assert!((student_t_two_sided(1.959_964, 1e7) - 0.05).abs() < 1e-5);
        assert!((student_t_two_sided(0.0, 3.0) - 1.0).abs() < 1e-12);
        assert!((student_t_two_sided(-2.776_445, 4.0) - 0.05).abs() < 1e-5);
    }

    #[test]
    fn welch_matches_a_hand_computed_case() {
        // a = 1,2,3 (mean 2, var 1), b = 4,5,6 (mean 5, var 1): t = 3 / sqrt(2/3) = 3.674, df = 4,
        // p = 0.0213 (R: t.test(c(4,5,6), c(1,2,3))$p.value = 0.02131164).
        let w = welch(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]).unwrap();
        assert!((w.difference - 3.0).abs() < 1e-12);
        assert!((w.df - 4.0).abs() < 1e-12);
        assert!((w.p_value - 0.021_311_64).abs() < 1e-6, "{w:?}");
        assert!(welch(&[1.0], &[2.0, 3.0]).is_none());
        assert_eq!(welch(&[1.0, 1.0], &[1.0, 1.0]).unwrap().p_value, 1.0);
        assert_eq!(mean_sd(&[2.0, 4.0]), Some((3.0, 2f64.sqrt())));
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
