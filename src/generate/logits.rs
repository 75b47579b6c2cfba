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
pub fn log_sum_exp(scores: &[f32]) -> f32 {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return f32::NEG_INFINITY;
    }
    let sum: f32 = scores.iter().map(|&s| (s - max).exp()).sum();
    max + sum.ln()
}

/// Index of the largest score (the first of equals; 0 for an empty row).
pub fn argmax(scores: &[f32]) -> usize {
    let mut best = 0;
    for (i, &s) in scores.iter().enumerate() {
        if s > scores[best] {
            best = i;
        }
    }
    best
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
