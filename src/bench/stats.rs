//! Latency statistics with their noise: median, p90 and mean of timed samples, each median and
//! mean with a 95% bootstrap interval that resamples *items* (all repeats of an item together),
//! since repeats of one item are not independent draws -- an item with a long answer is slow in
//! every repeat.
//!
//! The mean per item is what a stream of items costs (its inverse is items/s at batch 1), and it is
//! robust to a benchmark that mixes fast image items and slow video items, where the median falls
//! in the gap between the two and jumps from run to run. The Pareto front therefore compares means
//! (report::pareto).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Bootstrap resamples of the latency intervals.
pub const RESAMPLES: usize = 1000;

/// Summary statistics of timed samples, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Stat {
    /// Samples.
    pub n: usize,
    /// Median.
    pub median_ms: f64,
    /// Lower end of the median's 95% interval (resampling items).
    #[serde(default)]
    pub median_ci_low_ms: f64,
    /// Upper end of the median's 95% interval.
    #[serde(default)]
    pub median_ci_high_ms: f64,
    /// 90th percentile (nearest rank).
    pub p90_ms: f64,
    /// Mean.
    #[serde(default)]
    pub mean_ms: f64,
    /// Lower end of the mean's 95% interval (resampling items).
    #[serde(default)]
    pub mean_ci_low_ms: f64,
    /// Upper end of the mean's 95% interval.
    #[serde(default)]
    pub mean_ci_high_ms: f64,
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

impl Stat {
    /// Statistics of samples that are each their own item (no repeats).
    pub fn of(samples: &[f64]) -> Stat {
        let tagged: Vec<(usize, f64)> = samples.iter().copied().enumerate().collect();
        Stat::of_items(&tagged, &|_| 0)
    }

    /// Statistics of `(item, ms)` samples; the intervals resample items with all their samples,
    /// within each stratum (`stratum(item)`: the benchmark times N image and N video items by
    /// design, so a resample keeps N of each). Non-finite samples are ignored; no samples give
    /// `n = 0`.
    pub fn of_items(samples: &[(usize, f64)], stratum: &dyn Fn(usize) -> usize) -> Stat {
        let samples: Vec<(usize, f64)> = samples.iter().copied().filter(|(_, v)| v.is_finite()).collect();
        if samples.is_empty() {
            return Stat::default();
        }
        let mut sorted: Vec<f64> = samples.iter().map(|s| s.1).collect();
        sorted.sort_by(f64::total_cmp);
        let mut items: Vec<usize> = samples.iter().map(|s| s.0).collect();
        items.sort_unstable();
        items.dedup();
        // stratum -> items -> samples
        let mut strata: std::collections::BTreeMap<usize, Vec<Vec<f64>>> = std::collections::BTreeMap::new();
        for i in &items {
            strata.entry(stratum(*i)).or_default().push(samples.iter().filter(|s| s.0 == *i).map(|s| s.1).collect());
        }
        let strata: Vec<Vec<Vec<f64>>> = strata.into_values().collect();
        // Seeded by the data, so the same samples always give the same interval.
        let seed = sorted.iter().fold(0u64, |h, v| h.rotate_left(5) ^ v.to_bits());
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (mut medians, mut means) = (Vec::with_capacity(RESAMPLES), Vec::with_capacity(RESAMPLES));
        let mut draw = Vec::with_capacity(sorted.len());
        for _ in 0..RESAMPLES {
            draw.clear();
            for clusters in &strata {
                for _ in 0..clusters.len() {
                    draw.extend_from_slice(&clusters[rng.random_range(0..clusters.len())]);
                }
            }
            draw.sort_by(f64::total_cmp);
            medians.push(median(&draw));
            means.push(draw.iter().sum::<f64>() / draw.len() as f64);
        }
        medians.sort_by(f64::total_cmp);
        means.sort_by(f64::total_cmp);
        Stat {
            n: sorted.len(),
            median_ms: median(&sorted),
            median_ci_low_ms: percentile(&medians, 0.025),
            median_ci_high_ms: percentile(&medians, 0.975),
            p90_ms: nearest_rank(&sorted, 0.9),
            mean_ms: sorted.iter().sum::<f64>() / sorted.len() as f64,
            mean_ci_low_ms: percentile(&means, 0.025),
            mean_ci_high_ms: percentile(&means, 0.975),
        }
    }

    /// Whether this is faster than `other` beyond noise: the upper end of this mean's interval is
    /// below the lower end of the other's.
    pub fn clearly_faster_than(&self, other: &Stat) -> bool {
        self.n > 0 && other.n > 0 && self.mean_ci_high_ms < other.mean_ci_low_ms
    }
}

/// The 95% paired-bootstrap interval of the mean per-item difference `b - a`, in ms, resampling
/// items within their stratum (`strata[i]`, e.g. image or video; empty: one stratum); `None`
/// unless both hold the same number (two or more) of per-item values. Timed on the same items in
/// one run, two variants differ by their difference on each item, which is far less noisy than
/// either mean: item-to-item spread cancels.
pub fn paired_difference_ci(b: &[f64], a: &[f64], strata: &[bool]) -> Option<(f64, f64)> {
    if a.len() != b.len() || a.len() < 2 || !(strata.is_empty() || strata.len() == a.len()) {
        return None;
    }
    let d: Vec<f64> = b.iter().zip(a).map(|(x, y)| x - y).collect();
    if d.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let groups: Vec<Vec<f64>> = [false, true]
        .iter()
        .map(|s| {
            d.iter()
                .enumerate()
                .filter(|(i, _)| strata.get(*i).copied().unwrap_or(false) == *s)
                .map(|(_, v)| *v)
                .collect()
        })
        .filter(|g: &Vec<f64>| !g.is_empty())
        .collect();
    let seed = d.iter().fold(0x5eed_u64, |h, v| h.rotate_left(7) ^ v.to_bits());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            let sum: f64 =
                groups.iter().map(|g| (0..g.len()).map(|_| g[rng.random_range(0..g.len())]).sum::<f64>()).sum();
            sum / d.len() as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    Some((percentile(&means, 0.025), percentile(&means, 0.975)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_p90_mean_and_intervals() {
        let s = Stat::of(&[5.0, 1.0, 3.0, 2.0, 4.0, 6.0, 7.0, 8.0, 9.0, 10.0]);
        assert_eq!(s.n, 10);
        assert_eq!(s.median_ms, 5.5);
        assert_eq!(s.p90_ms, 9.0);
        assert_eq!(s.mean_ms, 5.5);
        assert!(s.median_ci_low_ms < 5.5 && s.median_ci_high_ms > 5.5, "{s:?}");
        assert!(s.mean_ci_low_ms > 3.0 && s.mean_ci_high_ms < 8.0, "{s:?}");
        assert_eq!(Stat::of(&[3.0]).p90_ms, 3.0);
        assert_eq!(Stat::of(&[]).n, 0);
        assert_eq!(Stat::of(&[f64::NAN, 2.0]).n, 1);
    }

    #[test]
    fn repeats_of_one_item_do_not_shrink_the_interval() {
        // Two items, 1 ms and 9 ms, each timed 50 times: the mean's interval must still span the
        // item-to-item spread, not the tiny repeat-to-repeat one.
        let samples: Vec<(usize, f64)> =
            (0..100).map(|k| (k % 2, if k % 2 == 0 { 1.0 + 1e-3 * k as f64 } else { 9.0 })).collect();
        let s = Stat::of_items(&samples, &|_| 0);
        assert!(s.mean_ci_high_ms - s.mean_ci_low_ms > 4.0, "{s:?}");
        // Two strata by design (one item each): a resample keeps one of each, so the mean is fixed.
        let s = Stat::of_items(&samples, &|i| i);
        assert!(s.mean_ci_high_ms - s.mean_ci_low_ms < 0.1, "{s:?}");
    }

    #[test]
    fn paired_differences_cancel_the_item_spread() {
        // Items from 1 to 30 ms; b is 0.5 ms faster on every item (+- 0.05).
        let a: Vec<f64> = (0..8).map(|i| 1.0 + 4.0 * i as f64).collect();
        let b: Vec<f64> = a.iter().enumerate().map(|(i, x)| x - 0.5 + 0.05 * (i % 2) as f64).collect();
        let (lo, hi) = paired_difference_ci(&b, &a, &[]).unwrap();
        assert!(hi < 0.0 && lo > -0.6, "{lo} {hi}");
        assert!(!Stat::of(&b).clearly_faster_than(&Stat::of(&a)), "the unpaired intervals overlap");
        assert!(paired_difference_ci(&b[..3], &a, &[]).is_none());
        // A saving on video items only (the last four): unstratified, the number of video items
        // in a resample varies and so does the mean; stratified, it does not.
        let a = [5.0, 6.0, 5.5, 6.5, 20.0, 22.0, 21.0, 23.0];
        let b = [5.0, 6.0, 5.5, 6.5, 10.0, 11.0, 10.5, 11.5];
        let video = [false, false, false, false, true, true, true, true];
        let (lo, hi) = paired_difference_ci(&b, &a, &[]).unwrap();
        let (slo, shi) = paired_difference_ci(&b, &a, &video).unwrap();
        assert!(shi - slo < (hi - lo) / 3.0, "stratified [{slo}, {shi}] vs [{lo}, {hi}]");
    }

    #[test]
    fn faster_beyond_noise_needs_disjoint_intervals() {
        let fast = Stat::of(&[1.0, 1.1, 0.9, 1.05, 0.95, 1.0]);
        let slow = Stat::of(&[2.0, 2.1, 1.9, 2.05, 1.95, 2.0]);
        let tie = Stat::of(&[1.0, 1.2, 0.8, 1.1, 0.9, 1.0]);
        assert!(fast.clearly_faster_than(&slow));
        assert!(!slow.clearly_faster_than(&fast));
        assert!(!fast.clearly_faster_than(&tie) && !tie.clearly_faster_than(&fast));
        assert!(!fast.clearly_faster_than(&Stat::default()));
    }
}
