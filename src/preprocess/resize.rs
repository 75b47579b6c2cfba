//! Antialiased separable resampling, as PIL and PyTorch (`interpolate(..., antialias=True)`).
//!
//! When shrinking, the filter support is widened by the scale factor so every input pixel
//! contributes (PIL's `ImagingResample`; PyTorch's `_upsample_bicubic2d_aa` ports it). The exporter
//! preprocesses with PyTorch, so this follows PyTorch's arithmetic: weights per output index,
//! horizontal pass first, then vertical, in floating point with no intermediate rounding.

use ndarray::{Array3, ArrayView3};

use crate::manifest::ResizeFilter;

/// PIL/PyTorch bicubic kernel, a = -0.5.
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Triangle kernel.
fn bilinear(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

/// For each output index: the first input index and the normalised weights of the inputs it reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Taps {
    /// (first input index, weights) per output index.
    pub rows: Vec<(usize, Vec<f32>)>,
}

impl Taps {
    /// Taps resampling `input` samples to `output` samples.
    pub fn new(input: usize, output: usize, filter: ResizeFilter) -> Taps {
        let (kernel, half): (fn(f64) -> f64, f64) = match filter {
            ResizeFilter::Bicubic => (bicubic, 2.0),
            ResizeFilter::Bilinear => (bilinear, 1.0),
        };
        let scale = input as f64 / output as f64;
        let support = if scale >= 1.0 { half * scale } else { half };
        let invscale = if scale >= 1.0 { 1.0 / scale } else { 1.0 };
        let rows = (0..output)
            .map(|i| {
                let center = scale * (i as f64 + 0.5);
                // `as i64` truncates toward zero, as the C++ `static_cast<int64_t>` does.
                let xmin = ((center - support + 0.5) as i64).max(0) as usize;
                let xmax = ((center + support + 0.5) as i64).min(input as i64).max(0) as usize;
                let mut w: Vec<f64> =
                    (xmin..xmax.max(xmin)).map(|j| kernel((j as f64 - center + 0.5) * invscale)).collect();
                let total: f64 = w.iter().sum();
                if total != 0.0 {
                    w.iter_mut().for_each(|v| *v /= total);
                }
                (xmin, w.into_iter().map(|v| v as f32).collect())
            })
            .collect();
        Taps { rows }
    }
}

/// Resamples an (H, W, C) image to (out_h, out_w, C): horizontal pass, then vertical.
///
/// The source may be 8-bit (a decoded image's own buffer, viewed without a copy) or `f32`; the
/// arithmetic is `f32` either way, so both give the same values, and a large 8-bit picture never
/// exists as a 4-times larger `f32` copy. Each output value is the sum over its taps in order,
/// starting from 0, as PyTorch's loop adds them; the passes walk contiguous rows so that the
/// compiler can vectorise across pixels without changing that order.
pub fn resize<T: Copy + Into<f32>>(
    src: ArrayView3<'_, T>,
    out_h: usize,
    out_w: usize,
    filter: ResizeFilter,
) -> Array3<f32> {
    let (h, w, c) = src.dim();
    let owned;
    let pixels = match src.as_slice() {
        Some(s) => s,
        None => {
            owned = src.iter().copied().collect::<Vec<T>>();
            &owned
        }
    };
    // horizontal: (H, W, C) -> (H, out_w, C)
    let horizontal: Vec<f32> = if w == out_w {
        pixels.iter().map(|&v| v.into()).collect()
    } else {
        let taps = Taps::new(w, out_w, filter);
        let mut out = vec![0f32; h * out_w * c];
        for (row, out_row) in pixels.chunks_exact(w * c).zip(out.chunks_exact_mut(out_w * c)) {
            for ((x0, weights), out_px) in taps.rows.iter().zip(out_row.chunks_exact_mut(c)) {
                let read = &row[x0 * c..(x0 + weights.len()) * c];
                for (wt, px) in weights.iter().zip(read.chunks_exact(c)) {
                    for (acc, &v) in out_px.iter_mut().zip(px) {
                        *acc += wt * v.into();
                    }
                }
            }
        }
        out
    };
    // into an array, row by row in logical order (a fresh array is contiguous; this needs no
    // fallible reshape either way)
    let array = |rows: usize, data: &[f32]| {
        let mut out = Array3::<f32>::zeros((rows, out_w, c));
        out.iter_mut().zip(data).for_each(|(o, &v)| *o = v);
        out
    };
    if h == out_h {
        return array(h, &horizontal);
    }
    // vertical: (H, out_w, C) -> (out_h, out_w, C), a whole output row per tap
    let taps = Taps::new(h, out_h, filter);
    let stride = out_w * c;
    let mut out = vec![0f32; out_h * stride];
    for ((y0, weights), out_row) in taps.rows.iter().zip(out.chunks_exact_mut(stride)) {
        for (k, wt) in weights.iter().enumerate() {
            let read = &horizontal[(y0 + k) * stride..(y0 + k + 1) * stride];
            for (acc, &v) in out_row.iter_mut().zip(read) {
                *acc += wt * v;
            }
        }
    }
    array(out_h, &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_and_cover_the_input() {
        for (i, o) in [(128usize, 64usize), (20, 16), (16, 48), (7, 3)] {
            let taps = Taps::new(i, o, ResizeFilter::Bicubic);
            assert_eq!(taps.rows.len(), o);
            for (x0, w) in &taps.rows {
                let s: f32 = w.iter().sum();
                assert!((s - 1.0).abs() < 1e-5, "{i}->{o}: sum {s}");
                assert!(x0 + w.len() <= i);
            }
        }
    }

    #[test]
    fn halving_uses_the_widened_kernel() {
        // 2x downsampling: support 4 -> 8 taps in the interior, symmetric around the centre.
        let taps = Taps::new(16, 8, ResizeFilter::Bicubic);
        let (x0, w) = &taps.rows[4];
        assert_eq!((*x0, w.len()), (5, 8));
        for k in 0..4 {
            assert!((w[k] - w[7 - k]).abs() < 1e-6);
        }
    }

    #[test]
    fn constant_images_stay_constant() {
        let src = Array3::<f32>::from_elem((20, 24, 3), 77.0);
        let out = resize(src.view(), 16, 19, ResizeFilter::Bicubic);
        assert_eq!(out.dim(), (16, 19, 3));
        assert!(out.iter().all(|v| (v - 77.0).abs() < 1e-3));
    }

    /// The straightforward loops (one output value at a time, indexed), as this file had them:
    /// the reference the row-wise passes must match bit for bit.
    fn reference(src: ArrayView3<'_, u8>, out_h: usize, out_w: usize, filter: ResizeFilter) -> Array3<f32> {
        let (h, w, c) = src.dim();
        let taps = Taps::new(w, out_w, filter);
        let mut horizontal = Array3::<f32>::zeros((h, out_w, c));
        for y in 0..h {
            for (x, (x0, weights)) in taps.rows.iter().enumerate() {
                for ch in 0..c {
                    let mut acc = 0.0f32;
                    for (k, wt) in weights.iter().enumerate() {
                        acc += wt * f32::from(src[[y, x0 + k, ch]]);
                    }
                    horizontal[[y, x, ch]] = acc;
                }
            }
        }
        let taps = Taps::new(h, out_h, filter);
        let mut out = Array3::<f32>::zeros((out_h, out_w, c));
        for (y, (y0, weights)) in taps.rows.iter().enumerate() {
            for x in 0..out_w {
                for ch in 0..c {
                    let mut acc = 0.0f32;
                    for (k, wt) in weights.iter().enumerate() {
                        acc += wt * horizontal[[y0 + k, x, ch]];
                    }
                    out[[y, x, ch]] = acc;
                }
            }
        }
        out
    }

    #[test]
    fn row_wise_passes_give_the_reference_loops_bits() {
        let mut state = 0x2545_f491_u32;
        let src = Array3::<u8>::from_shape_simple_fn((37, 53, 3), || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        });
        for (h, w) in [(16, 16), (24, 40), (64, 90), (37, 53), (37, 20), (10, 53)] {
            for filter in [ResizeFilter::Bicubic, ResizeFilter::Bilinear] {
                let expected = reference(src.view(), h, w, filter);
                let got = resize(src.view(), h, w, filter);
                let same = got.iter().zip(&expected).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{h}x{w} {filter:?}");
            }
        }
        // a source that is not in standard layout (a transposed view) reads the same pixels
        let transposed = src.view().permuted_axes([1, 0, 2]);
        let owned = transposed.as_standard_layout().into_owned();
        let (a, b) =
            (resize(transposed, 20, 20, ResizeFilter::Bicubic), resize(owned.view(), 20, 20, ResizeFilter::Bicubic));
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    }

    #[test]
    fn identity_when_sizes_match() {
        let src = Array3::<f32>::from_shape_fn((4, 5, 3), |(y, x, c)| (y * 100 + x * 10 + c) as f32);
        assert_eq!(resize(src.view(), 4, 5, ResizeFilter::Bicubic), src);
    }
}
