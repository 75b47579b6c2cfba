//! The memory-bandwidth floor of a decode step (issue 16). At batch 1 a decoder step reads every
//! weight of the decoder once, so no step can take less than the decoder's weight bytes divided by
//! the memory bandwidth; at a deployed model's size that bound, not arithmetic, sets the speed.
//! `bench` measures the bandwidth in the same run as the steps it is held against, with the
//! sessions' thread count:
//!
//! - **read-only**: every thread sums its share of one buffer (far larger than any cache), the
//!   access pattern of a step's weight reads;
//! - **triad** (STREAM's `a = b + s * c`), comparable with published numbers: it reads two arrays
//!   and writes one, counted as 3 x 8 bytes per element as STREAM counts.
//!
//! Each is the best of a few passes (the machine is shared: the best pass is the least disturbed),
//! and the floor takes the higher of the two: a floor set by the weaker kernel would not be one.
//! (On this 2-core machine, 2026-12-03, with nothing else running: read-only 13-17 GB/s, triad
//! 19 GB/s.)

use std::hint::black_box;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Bytes of the read-only buffer: far past any last-level cache.
const READ_BYTES: usize = 512 << 20;
/// Elements of each triad array (3 x 64 MiB of f64).
const TRIAD_LEN: usize = 8 << 20;
/// Timed passes of each kernel; the best counts.
const PASSES: usize = 5;

/// Memory bandwidth measured on this machine, in GB/s (10^9 bytes per second).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bandwidth {
    /// Read-only: a sum over a buffer far larger than the caches.
    pub read_gbps: f64,
    /// STREAM triad `a = b + s * c`, 24 bytes per element.
    pub triad_gbps: f64,
    /// Threads that ran each kernel (the sessions' intra-op threads).
    pub threads: usize,
}

impl Bandwidth {
    /// Measures both kernels on `threads` threads (about a second; allocates 704 MiB for the
    /// time it runs).
    pub fn measure(threads: usize) -> Bandwidth {
        let threads = threads.max(1);
        let read = vec![1u64; READ_BYTES / 8];
        let read_s = best_of(|| {
            let sums: Vec<u64> = std::thread::scope(|s| {
                let handles: Vec<_> =
                    read.chunks(read.len().div_ceil(threads)).map(|chunk| s.spawn(move || sum(chunk))).collect();
                handles.into_iter().map(|h| h.join().unwrap_or(0)).collect()
            });
            black_box(sums);
        });
        drop(read);
        let (b, c) = (vec![1.0f64; TRIAD_LEN], vec![2.0f64; TRIAD_LEN]);
        let mut a = vec![0.0f64; TRIAD_LEN];
        let chunk = TRIAD_LEN.div_ceil(threads);
        let triad_s = best_of(|| {
            std::thread::scope(|s| {
                for ((a, b), c) in a.chunks_mut(chunk).zip(b.chunks(chunk)).zip(c.chunks(chunk)) {
                    s.spawn(move || {
                        for ((a, b), c) in a.iter_mut().zip(b).zip(c) {
                            *a = b + 3.0 * c;
                        }
                    });
                }
            });
            black_box(&a);
        });
        Bandwidth {
            read_gbps: READ_BYTES as f64 / read_s / 1e9,
            triad_gbps: (3 * 8 * TRIAD_LEN) as f64 / triad_s / 1e9,
            threads,
        }
    }
}

impl Bandwidth {
    /// The higher of the two bandwidths: what the floor divides by.
    pub fn best_gbps(&self) -> f64 {
        self.read_gbps.max(self.triad_gbps)
    }
}

/// The wrapping sum of `xs` in eight independent lanes, which the compiler keeps in vector
/// registers: a load-bound loop, not one bound by a chain of dependent adds.
fn sum(xs: &[u64]) -> u64 {
    let mut lanes = [0u64; 8];
    let blocks = xs.chunks_exact(8);
    let tail = blocks.remainder().iter().fold(0u64, |a, &x| a.wrapping_add(x));
    for block in blocks {
        for (lane, &x) in lanes.iter_mut().zip(block) {
            *lane = lane.wrapping_add(x);
        }
    }
    lanes.iter().fold(tail, |a, &x| a.wrapping_add(x))
}

/// The shortest of [`PASSES`] timed runs of `f`, in seconds, after one untimed run.
fn best_of(mut f: impl FnMut()) -> f64 {
    f();
    (0..PASSES)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
        .max(1e-9)
}

/// One variant's decode step held to the floor.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MemoryFloor {
    /// Bytes of every tensor of the decoder graph (`onnx_proto::tensor_bytes`): what one step at
    /// batch 1 reads at least once.
    pub decoder_weight_bytes: u64,
    /// The bandwidth measured in the run.
    pub bandwidth: Bandwidth,
    /// The fastest a step can be: the weight bytes at the best bandwidth measured, ms.
    pub step_floor_ms: f64,
    /// The median measured step (batch 1) over the floor: 1.0 would run at the floor; `None`
    /// when no step was timed.
    pub step_over_floor: Option<f64>,
}

impl MemoryFloor {
    /// The floor of a decoder of `decoder_weight_bytes` at `bandwidth`, against a measured median
    /// step of `median_step_ms` (when one was timed).
    pub fn new(decoder_weight_bytes: u64, bandwidth: Bandwidth, median_step_ms: Option<f64>) -> MemoryFloor {
        let step_floor_ms = decoder_weight_bytes as f64 / (bandwidth.best_gbps() * 1e9) * 1e3;
        MemoryFloor {
            decoder_weight_bytes,
            bandwidth,
            step_floor_ms,
            step_over_floor: median_step_ms.filter(|m| m.is_finite() && *m > 0.0).map(|m| m / step_floor_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_is_the_weight_bytes_at_the_read_bandwidth() {
        let bw = Bandwidth { read_gbps: 20.0, triad_gbps: 10.0, threads: 2 }; // the floor takes the higher
        let f = MemoryFloor::new(2_000_000_000, bw, Some(250.0));
        assert!((f.step_floor_ms - 100.0).abs() < 1e-9, "{f:?}");
        assert_eq!(f.step_over_floor, Some(2.5));
        assert_eq!(MemoryFloor::new(1, bw, None).step_over_floor, None);
        assert_eq!(MemoryFloor::new(1, bw, Some(f64::NAN)).step_over_floor, None);
    }

    #[test]
    fn the_sum_counts_every_element_once() {
        let xs: Vec<u64> = (1..=1003).collect();
        assert_eq!(sum(&xs), 1003 * 1004 / 2);
        assert_eq!(sum(&[]), 0);
    }

    #[test]
    fn measured_bandwidth_is_positive_and_finite() {
        let bw = Bandwidth::measure(1);
        assert!(bw.read_gbps.is_finite() && bw.read_gbps > 0.0, "{bw:?}");
        assert!(bw.triad_gbps.is_finite() && bw.triad_gbps > 0.0, "{bw:?}");
        assert_eq!(bw.threads, 1);
    }
}
