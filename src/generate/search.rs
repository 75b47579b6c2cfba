//! Greedy decoding and sampling: one row per sample, one token per row per step.

use ndarray::Array2;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::logits::{argmax, ban_early_eos, ban_repeated_ngrams, log_sum_exp, sampling_probs};
use super::{Generated, GenerationOptions, SpecialTokens, StepDecoder};
use crate::error::Result;

/// Greedy (`rng` None) or sampled decoding of every row of `first` (B, vocab).
pub fn search(
    first: Array2<f32>,
    decoder: &mut dyn StepDecoder,
    options: &GenerationOptions,
    special: SpecialTokens,
    mut rng: Option<ChaCha8Rng>,
) -> Result<Vec<Generated>> {
    let rows = first.nrows();
    let eos = special.eos as usize;
    let mut out: Vec<Generated> = vec![Generated { tokens: Vec::new(), finished: false, score: 0.0 }; rows];
    let mut logits = first;
    let mut scores: Vec<f32> = Vec::with_capacity(logits.ncols()); // one row's, reused
    for step in 0..options.max_new_tokens {
        let mut next = vec![i64::from(special.pad); rows];
        for (r, row) in logits.rows().into_iter().enumerate() {
            let g = &mut out[r];
            if g.finished {
                continue;
            }
            scores.clear();
            match row.as_slice() {
                Some(contiguous) => scores.extend_from_slice(contiguous),
                None => scores.extend(row.iter().copied()),
            }
            ban_early_eos(&mut scores, g.tokens.len(), options.min_new_tokens, eos);
            ban_repeated_ngrams(&mut scores, &g.tokens, options.no_repeat_ngram_size);
            let token = match rng.as_mut() {
                None => argmax(&scores),
                Some(rng) => sample(&scores, options, rng),
            };
            // the chosen token's log-probability, without a log-softmax of the whole row
            let log_sum = log_sum_exp(&scores);
            g.score += match scores.get(token) {
                Some(&s) if log_sum > f32::NEG_INFINITY => s - log_sum,
                _ => f32::NEG_INFINITY,
            };
            if token == eos {
                g.finished = true;
            } else {
                g.tokens.push(token as u32);
                next[r] = token as i64;
            }
        }
        if out.iter().all(|g| g.finished) || step + 1 == options.max_new_tokens {
            break;
        }
        logits = decoder.step(&next)?;
    }
    Ok(out)
}

/// Draws a token from the processed scores.
fn sample(scores: &[f32], options: &GenerationOptions, rng: &mut ChaCha8Rng) -> usize {
    let probs = sampling_probs(scores, options.temperature, options.top_k, options.top_p);
    let r: f32 = rng.random::<f32>();
    let mut acc = 0.0f32;
    let mut last = argmax(&probs);
    for (i, &p) in probs.iter().enumerate() {
        if p > 0.0 {
            acc += p;
            last = i;
            if r < acc {
                return i;
            }
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::super::fake::Chain;
    use super::super::{generate, GenerationOptions, SpecialTokens};
    use crate::error::Result;

    const SPECIAL: SpecialTokens = SpecialTokens { eos: 0, pad: 9 };

    #[test]
    fn greedy_follows_the_chain_and_stops_at_eos() -> Result<()> {
        // 1 -> 2 -> 3 -> eos
        let mut chain = Chain::new(10, &[(1, 2), (2, 3), (3, 0)]);
        let first = chain.start(&[1]);
        let out = generate(first, &mut chain, &GenerationOptions::greedy(10), SPECIAL)?;
        assert_eq!(out[0].tokens, vec![2, 3]);
        assert!(out[0].finished);
        assert_eq!(chain.steps, 2, "one decoder step per token after the prefill");
        Ok(())
    }

    #[test]
    fn max_new_tokens_caps_the_output() -> Result<()> {
        let mut chain = Chain::new(10, &[(1, 2), (2, 1)]);
        let first = chain.start(&[1]);
        let out = generate(first, &mut chain, &GenerationOptions::greedy(5), SPECIAL)?;
        assert_eq!(out[0].tokens, vec![2, 1, 2, 1, 2]);
        assert!(!out[0].finished);
        assert_eq!(chain.steps, 4);
        Ok(())
    }

    #[test]
    fn min_new_tokens_and_no_repeat() -> Result<()> {
        // 1 -> eos is best, second best 4; 4 -> 1.
        let mut chain = Chain::new(10, &[(1, 0), (4, 1)]).with_second(&[(1, 4), (4, 5)]);
        let first = chain.start(&[1]);
        let opts = GenerationOptions::greedy(6).with_min_new_tokens(2)?;
        let out = generate(first, &mut chain, &opts, SPECIAL)?;
        // 4 (eos banned at 0 tokens), 1 (eos banned at 1), then eos
        assert_eq!(out[0].tokens, vec![4, 1]);
        // no-repeat 2 over the generated tokens (Lynx generates from embeddings, so the prompt is
        // not in the history): 4 1 4 is allowed, then (4, 1) would repeat and the second choice 5
        // wins.
        let mut chain = Chain::new(10, &[(1, 4), (4, 1)]).with_second(&[(4, 5), (5, 0)]);
        let first = chain.start(&[1]);
        let opts = GenerationOptions::greedy(6).with_no_repeat_ngram_size(2);
        let out = generate(first, &mut chain, &opts, SPECIAL)?;
        assert_eq!(out[0].tokens, vec![4, 1, 4, 5]);
        Ok(())
    }

    #[test]
    fn batched_rows_finish_independently() -> Result<()> {
        let mut chain = Chain::new(10, &[(1, 0), (2, 3), (3, 4), (4, 0)]);
        let first = chain.start(&[1, 2]);
        let out = generate(first, &mut chain, &GenerationOptions::greedy(8), SPECIAL)?;
        assert_eq!(out[0].tokens, Vec::<u32>::new());
        assert_eq!(out[1].tokens, vec![3, 4]);
        // the finished row was fed PAD
        assert_eq!(chain.fed[0], vec![9, 9]);
        Ok(())
    }

    #[test]
    fn sampling_is_seeded_and_top_k_1_is_greedy() -> Result<()> {
        let run = |opts: &GenerationOptions| -> Result<Vec<u32>> {
            let mut chain = Chain::new(10, &[(1, 2), (2, 3), (3, 1)]).with_noise(7);
            let first = chain.start(&[1]);
            Ok(generate(first, &mut chain, opts, SPECIAL)?.remove(0).tokens)
        };
        let greedy = run(&GenerationOptions::greedy(12))?;
        let k1 = run(&GenerationOptions::greedy(12).with_top_k(1).with_seed(3))?;
        assert_eq!(greedy, k1);
        let hot = GenerationOptions::greedy(12).with_temperature(5.0)?;
        let a = run(&hot.clone().with_seed(1))?;
        let b = run(&hot.clone().with_seed(1))?;
        let c = run(&hot.with_seed(2))?;
        assert_eq!(a, b);
        assert_ne!(a, c, "different seeds should give different samples at temperature 5");
        Ok(())
    }
}
