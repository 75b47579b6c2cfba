//! The Pareto front of accuracy against latency, with the noise of both.
//!
//! Variant B *dominates* A only when B is not significantly less accurate than A (exact McNemar on
//! the items both answered, p >= alpha, or B is at least as accurate) **and** B is faster beyond
//! the noise of the latency measurement, by at least [`MIN_SPEEDUP`] of A's mean: timed on the same
//! items in one run, the 95% paired interval of the per-item difference of end-to-end latency lies
//! below minus that margin
//! (bench::paired_difference_ci); measured in different runs, the 95% intervals of the two means
//! do not overlap (bench::Stat::clearly_faster_than). Differences inside the noise dominate
//! nothing, so the front does not change from one run to the next with the machine's load.

use crate::bench::{paired_difference_ci, Stat};
use crate::error::Result;
use crate::eval::{aligned_outcomes, Prediction};
use crate::score;

/// One variant on the plane.
#[derive(Debug, Clone, Copy)]
pub struct Point<'a> {
    /// Its scored predictions.
    pub predictions: &'a [Prediction],
    /// Its end-to-end latency.
    pub latency: &'a Stat,
    /// The fastest end-to-end ms of each timed item over the repeats, whether each item is a video,
    /// and the measurement run they come from.
    pub per_item: (&'a [f64], &'a [bool], &'a str),
}

/// The least speed-up that counts, as a share of the slower variant's mean latency: differences
/// smaller than this are ties however sure the measurement, so a front does not flip on them.
pub const MIN_SPEEDUP: f64 = 0.10;

/// Whether `b` is faster than `a` beyond the noise of the measurement, by at least
/// [`MIN_SPEEDUP`].
fn clearly_faster(b: &Point<'_>, a: &Point<'_>) -> bool {
    let same_run = b.per_item.2 == a.per_item.2 && !a.per_item.2.is_empty() && b.per_item.1 == a.per_item.1;
    let margin = MIN_SPEEDUP * a.latency.mean_ms;
    match paired_difference_ci(b.per_item.0, a.per_item.0, a.per_item.1).filter(|_| same_run) {
        Some((_, high)) => high < -margin,
        None => b.latency.clearly_faster_than(a.latency) && b.latency.mean_ms < a.latency.mean_ms - margin,
    }
}

fn accuracy(p: &[bool]) -> f64 {
    p.iter().filter(|&&c| c).count() as f64 / p.len().max(1) as f64
}

/// Whether `b` is significantly less accurate than `a` on their common items.
fn significantly_less_accurate(a: &[Prediction], b: &[Prediction], alpha: f64) -> bool {
    let (oa, ob) = aligned_outcomes(a, b);
    if accuracy(&ob) >= accuracy(&oa) {
        return false;
    }
    let a_only = oa.iter().zip(&ob).filter(|(x, y)| **x && !**y).count();
    let b_only = oa.iter().zip(&ob).filter(|(x, y)| !**x && **y).count();
    score::mcnemar_exact(a_only, b_only) < alpha
}

/// For each point, `None` when it is on the front, else the index of a point that dominates it
/// (the fastest such point).
pub fn noisy_front(points: &[Point<'_>], alpha: f64) -> Result<Vec<Option<usize>>> {
    Ok((0..points.len())
        .map(|i| {
            let a = points[i];
            (0..points.len())
                .filter(|&j| j != i)
                .filter(|&j| {
                    let b = points[j];
                    clearly_faster(&b, &a) && !significantly_less_accurate(a.predictions, b.predictions, alpha)
                })
                .min_by(|&x, &y| points[x].latency.mean_ms.total_cmp(&points[y].latency.mean_ms))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::compare::tests::preds;

    fn stat(ms: f64, spread: f64) -> Stat {
        Stat { n: 8, mean_ms: ms, mean_ci_low_ms: ms - spread, mean_ci_high_ms: ms + spread, ..Stat::default() }
    }

    #[test]
    fn dominance_needs_both_a_clear_speed_up_and_no_significant_loss() {
        let good = preds(&(0..200).map(|i| i % 4 != 0).collect::<Vec<_>>()); // 75%
        let weak = preds(&(0..200).map(|i| i % 2 == 0).collect::<Vec<_>>()); // 50%
        let same = preds(&(0..200).map(|i| i % 4 != 0).collect::<Vec<_>>());
        let (fast, slow, near) = (stat(5.0, 0.5), stat(10.0, 0.5), stat(5.4, 0.5));
        let none: (&[f64], &[bool], &str) = (&[], &[], "");
        let pts = [
            Point { predictions: &good, latency: &slow, per_item: none }, // 0: dominated by 2 (same accuracy, clearly faster)
            Point { predictions: &weak, latency: &fast, per_item: none }, // 1: fast but weak: on the front
            Point { predictions: &same, latency: &near, per_item: none }, // 2: on the front (1 is faster, not clearly)
        ];
        assert_eq!(noisy_front(&pts, 0.05).unwrap(), vec![Some(2), None, None]);
        // Without the speed-up beyond noise, nothing is dominated.
        let pts = [
            Point { predictions: &good, latency: &near, per_item: none },
            Point { predictions: &same, latency: &fast, per_item: none },
        ];
        assert_eq!(noisy_front(&pts, 0.05).unwrap(), vec![None, None]);
        // Timed on the same items in one run, a consistent speed-up counts (20% here, against
        // unpaired intervals that overlap) ...
        let a_items = [4.0, 9.0, 5.0, 12.0, 6.0, 20.0];
        let b_items = [3.2, 7.2, 4.0, 9.6, 4.8, 16.0];
        let pts = [
            Point { predictions: &good, latency: &near, per_item: (&a_items, &[], "run") },
            Point { predictions: &same, latency: &fast, per_item: (&b_items, &[], "run") },
        ];
        assert_eq!(noisy_front(&pts, 0.05).unwrap(), vec![Some(1), None]);
        // ... a 5% one does not (below MIN_SPEEDUP) ...
        let c_items: Vec<f64> = a_items.iter().map(|x| x * 0.95).collect();
        let pts = [
            Point { predictions: &good, latency: &near, per_item: (&a_items, &[], "run") },
            Point { predictions: &same, latency: &fast, per_item: (&c_items, &[], "run") },
        ];
        assert_eq!(noisy_front(&pts, 0.05).unwrap(), vec![None, None]);
        // ... and across runs only the unpaired intervals count.
        let pts = [
            Point { predictions: &good, latency: &near, per_item: (&a_items, &[], "run 1") },
            Point { predictions: &same, latency: &fast, per_item: (&b_items, &[], "run 2") },
        ];
        assert_eq!(noisy_front(&pts, 0.05).unwrap(), vec![None, None]);
    }
}
