//! Logit processors: what decoding rules do to one row of next-token scores.
//!
//! The same rules as Hugging Face `generate` (which Lynx decodes with): EOS is banned until
//! `min_new_tokens` tokens exist; a token that would complete an n-gram already in the row's
//! generated text is banned (`no_repeat_ngram_size`); sampling divides by the temperature, keeps the
//! `top_k` best, then the smallest set whose probability reaches `top_p`.

/// Sets `scores[eos]` to -inf while fewer than `min_new_tokens` tokens were generated.
pub fn ban_early_eos(scores: &mut [f32], generated: usize, min_new_tokens: usize, eos: usize) {
    if generated < min_new_tokens {
        if let Some(s) = scores.get_mut(eos) {
            *s = f32::NEG_INFINITY;
        }
    }
}

/// Bans every token that would repeat an n-gram of `history` (n = `size`; 0 disables).
pub fn ban_repeated_ngrams(scores: &mut [f32], history: &[u32], size: usize) {
    if size == 0 || history.len() < size {
        return;
    }
    let prefix = &history[history.len() + 1 - size..]; // the last n-1 tokens
    for start in 0..=history.len() - size {
        if &history[start..start + size - 1] == prefix {
            if let Some(s) = scores.get_mut(history[start + size - 1] as usize) {
                *s = f32::NEG_INFINITY;
            }
        }
    }
}

/// In-place log-softmax; a row of all -inf stays all -inf.
pub fn log_softmax(scores: &mut [f32]) {
    let log_sum = log_sum_exp(scores);
    if log_sum == f32::NEG_INFINITY {
        return;
    }
    scores.iter_mut().for_each(|s| *s -= log_sum);
}

/// log(sum(exp(scores))), computed stably; -inf for a row of all -inf (or an empty one). The
/// log-probability of one token is its score less this, without a log-softmax of the whole row.
///
/// At a deployed model's vocabulary (151 936 for Qwen2) this runs once per generated token, so it
/// is written for the compiler to vectorise: a lane-wise max, then [`exp_nonpositive`] summed in
/// [`LANES`] accumulators.
pub fn log_sum_exp(scores: &[f32]) -> f32 {
    let max = max_score(scores);
    if max == f32::NEG_INFINITY {
        return f32::NEG_INFINITY;
    }
    max + sum_exp_below(scores, max).ln()
}

/// sum(exp(s - max)) over `scores`, none above `max`: 8-wide on x86 CPUs with AVX2, 4-wide (SSE2)
/// elsewhere. The same code and the same [`LANES`] accumulators either way, without fused
/// multiply-adds, so every CPU gives the same bits.
fn sum_exp_below(scores: &[f32], max: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        fn avx2(scores: &[f32], max: f32) -> f32 {
            sum_exp_lanes(scores, max)
        }
        // SAFETY: the CPU was just found to have AVX2, the only requirement of `avx2`.
        return unsafe { avx2(scores, max) };
    }
    sum_exp_lanes(scores, max)
}

#[inline(always)]
fn sum_exp_lanes(scores: &[f32], max: f32) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let chunks = scores.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (acc, &s) in lanes.iter_mut().zip(chunk) {
            *acc += exp_nonpositive(s - max);
        }
    }
    lanes.iter().sum::<f32>() + rest.iter().map(|&s| exp_nonpositive(s - max)).sum::<f32>()
}

/// Accumulators per pass of the vectorised row reductions (two AVX-512 or four AVX registers).
const LANES: usize = 16;

/// The largest score (-inf for an empty row; NaN is never larger). Lane-wise, so it vectorises.
pub fn max_score(scores: &[f32]) -> f32 {
    let larger = |a: f32, b: f32| if b > a { b } else { a };
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = scores.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (m, &s) in lanes.iter_mut().zip(chunk) {
            *m = larger(*m, s);
        }
    }
    lanes.into_iter().chain(rest.iter().copied()).fold(f32::NEG_INFINITY, larger)
}

/// exp(x) for x <= 0, within 2 ulp of `f32::exp` down to -87 and exp(-87) (1.6e-38) below, in
/// branch-free arithmetic the compiler vectorises. Cephes' `expf`: x = n ln 2 + r with
/// |r| <= ln 2 / 2, exp(r) by its degree-7 polynomial, 2^n written into the exponent bits.
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer, kept in the low bits
    let x = if x < -87.0 { -87.0 } else { x };
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4; // ln 2 in two parts (Cody-Waite)
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1)
        * r
        + 0.5;
    let exp_r = p * r * r + r + 1.0;
    // t's bits are those of ROUND plus n (n in -126..=0), so n + 127 is the biased exponent
    let biased = (t.to_bits() as i32) - (ROUND.to_bits() as i32) + 127;
    exp_r * f32::from_bits((biased << 23) as u32)
}

/// Whether every score is finite, in one vectorised pass (the caller looks for the culprit only
/// when it is not).
pub fn all_finite(scores: &[f32]) -> bool {
    const EXPONENT: u32 = 0x7f80_0000; // all ones: infinity or NaN
    let mut lanes = [0u32; LANES];
    let chunks = scores.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (bad, &s) in lanes.iter_mut().zip(chunk) {
            *bad |= u32::from(s.to_bits() & EXPONENT == EXPONENT);
        }
    }
    lanes.iter().all(|&b| b == 0) && rest.iter().all(|s| s.is_finite())
}

/// Index of the largest score (the first of equals; 0 for an empty row or one without a number).
pub fn argmax(scores: &[f32]) -> usize {
    let max = max_score(scores);
    scores.iter().position(|&s| s == max).unwrap_or(0)
}

/// Sampling probabilities after temperature, top-k and top-p (zero for excluded tokens).
pub fn sampling_probs(scores: &[f32], temperature: f32, top_k: usize, top_p: f32) -> Vec<f32> {
    let scaled: Vec<f32> = scores.iter().map(|&s| s / temperature).collect();
    // Order by score, best first; ties keep index order so a seed gives one answer everywhere.
    let mut order: Vec<usize> = (0..scaled.len()).collect();
    order.sort_by(|&a, &b| scaled[b].total_cmp(&scaled[a]).then(a.cmp(&b)));
    let keep_k = if top_k == 0 { order.len() } else { top_k.min(order.len()) };
    let kept = &order[..keep_k];
    let max = kept.first().map_or(0.0, |&i| scaled[i]);
    let weights: Vec<f32> = kept.iter().map(|&i| (scaled[i] - max).exp()).collect();
    let total: f32 = weights.iter().sum();
    let mut probs = vec![0.0f32; scaled.len()];
    if total.is_nan() || total <= 0.0 {
        return probs;
    }
    // Nucleus: the smallest prefix whose mass reaches top_p (at least one token).
    let mut mass = 0.0f32;
    let mut chosen = 0;
    for (n, w) in weights.iter().enumerate() {
        mass += w / total;
        chosen = n + 1;
        if mass >= top_p {
            break;
        }
    }
    let nucleus: f32 = weights[..chosen].iter().sum();
    for (n, &i) in kept[..chosen].iter().enumerate() {
        probs[i] = weights[n] / nucleus;
    }
    probs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_eos_is_banned() {
        let mut s = vec![0.0, 5.0, 1.0];
        ban_early_eos(&mut s, 0, 2, 1);
        assert_eq!(s[1], f32::NEG_INFINITY);
        let mut s = vec![0.0, 5.0, 1.0];
        ban_early_eos(&mut s, 2, 2, 1);
        assert_eq!(s[1], 5.0);
    }

    #[test]
    fn repeated_bigram_is_banned() {
        // history 4 7 4: the bigram (4, 7) exists, so after 4 token 7 is banned.
        let mut s = vec![0.0; 10];
        ban_repeated_ngrams(&mut s, &[4, 7, 4], 2);
        assert_eq!(s[7], f32::NEG_INFINITY);
        assert_eq!(s.iter().filter(|v| v.is_infinite()).count(), 1);
        let mut s = vec![0.0; 10];
        ban_repeated_ngrams(&mut s, &[4, 7, 5], 2);
        assert!(s.iter().all(|v| v.is_finite()));
        // trigram: (1, 2, 3) then history ends in 1 2 -> 3 banned
        let mut s = vec![0.0; 10];
        ban_repeated_ngrams(&mut s, &[1, 2, 3, 1, 2], 3);
        assert_eq!(s[3], f32::NEG_INFINITY);
    }

    #[test]
    fn log_sum_exp_gives_log_softmax_of_one_token() {
        let scores = [0.5f32, -1.0, 3.0, f32::NEG_INFINITY];
        let mut all = scores.to_vec();
        log_softmax(&mut all);
        for (i, &s) in scores.iter().enumerate() {
            assert_eq!(s - log_sum_exp(&scores), all[i], "token {i}");
        }
        assert_eq!(log_sum_exp(&[f32::NEG_INFINITY; 3]), f32::NEG_INFINITY);
        assert_eq!(log_sum_exp(&[]), f32::NEG_INFINITY);
    }

    #[test]
    fn fast_exp_is_within_two_ulp_of_libm() {
        let mut worst = 0.0f32;
        for i in 0..=870_000 {
            let x = -(i as f32) * 1e-4;
            let (got, want) = (exp_nonpositive(x), x.exp());
            worst = worst.max((got - want).abs() / want);
        }
        assert!(worst < 2.5e-7, "relative error {worst}");
        // the AVX2 path (where this CPU has it) gives the portable path's bits
        let row: Vec<f32> = (0..100_003).map(|i| -((i * 31) % 977) as f32 * 0.03).collect();
        assert_eq!(sum_exp_below(&row, 0.0).to_bits(), sum_exp_lanes(&row, 0.0).to_bits());
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert!(exp_nonpositive(f32::NEG_INFINITY) < 2e-38);
    }

    #[test]
    fn row_reductions_agree_with_plain_loops() {
        // odd lengths exercise the remainder after the lanes; the maximum sits in either part
        for len in [0usize, 1, 15, 16, 17, 151_936 + 3] {
            let row: Vec<f32> = (0..len).map(|i| ((i * 7919) % 1013) as f32 * 0.02 - 9.0).collect();
            let plain_max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(max_score(&row), plain_max, "len {len}");
            let plain_argmax = row.iter().position(|&s| s == plain_max).unwrap_or(0);
            assert_eq!(argmax(&row), plain_argmax, "len {len}");
            let exact = row.iter().map(|&s| f64::from(s - plain_max).exp()).sum::<f64>().ln() + f64::from(plain_max);
            if len > 0 {
                assert!((f64::from(log_sum_exp(&row)) - exact).abs() < 1e-5, "len {len}");
            }
            assert!(all_finite(&row));
        }
        let mut row = vec![1.0f32; 40];
        row[33] = 4.0;
        row[35] = 4.0;
        assert_eq!(argmax(&row), 33, "the first of equals");
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for at in [3, 38] {
                let mut r = row.clone();
                r[at] = bad;
                assert!(!all_finite(&r), "{bad} at {at}");
            }
        }
    }

    #[test]
    fn log_softmax_normalises() {
        let mut s = vec![1.0, 2.0, 3.0];
        log_softmax(&mut s);
        let total: f32 = s.iter().map(|v| v.exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
        assert!((s[2] - s[1] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn top_k_and_top_p() {
        let s = vec![0.0, 3.0, 2.0, 1.0];
        let p = sampling_probs(&s, 1.0, 2, 1.0);
        assert_eq!(p[0], 0.0);
        assert_eq!(p[3], 0.0);
        assert!((p[1] + p[2] - 1.0).abs() < 1e-6 && p[1] > p[2]);
        // top_p tiny -> only the best token
        let p = sampling_probs(&s, 1.0, 0, 0.01);
        assert_eq!(p, vec![0.0, 1.0, 0.0, 0.0]);
        // high temperature flattens
        let hot = sampling_probs(&s, 100.0, 0, 1.0);
        assert!(hot.iter().all(|&v| (v - 0.25).abs() < 0.01));
    }

    #[test]
    fn argmax_takes_the_first_best() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
    }
}
