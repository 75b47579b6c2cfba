//! Beam search, as Hugging Face's `BeamSearchScorer` (which Lynx decodes with).
//!
//! Per sample, K beams run as K decoder rows. Each step, every beam's log-probs (after the EOS and
//! n-gram bans) plus its running score give K x V candidates; the best 2K are walked in order: an
//! EOS candidate among the first K closes a hypothesis (scored sum / length ^ length_penalty), any
//! other candidate continues as one of the next K beams. The decoder's rows are then re-ordered to
//! follow their beams ([`StepDecoder::select_rows`]); a sample is done when K hypotheses exist and
//! no running beam can beat the worst of them.
//!
//! ```text
//!  rows: s0b0 s0b1 s0b2 | s1b0 s1b1 s1b2        step: logits (B*K, V)
//!          \    |   /        \    |   /                 -> top 2K per sample
//!       next beams of s0    next beams of s1            -> select_rows(src), step(tokens)
//! ```

use ndarray::{Array2, Axis};

use super::logits::{ban_early_eos, ban_repeated_ngrams, log_softmax};
use super::{Generated, GenerationOptions, SpecialTokens, StepDecoder};
use crate::error::Result;

/// Finished hypotheses of one sample, the best `k` kept.
#[derive(Debug, Clone)]
struct Hypotheses {
    k: usize,
    length_penalty: f32,
    /// (normalised score, tokens, ended with EOS), best first.
    list: Vec<(f32, Vec<u32>, bool)>,
}

impl Hypotheses {
    fn new(k: usize, length_penalty: f32) -> Self {
        Hypotheses { k, length_penalty, list: Vec::with_capacity(k + 1) }
    }

    fn normalise(&self, sum_logprobs: f32, len: usize) -> f32 {
        sum_logprobs / (len.max(1) as f32).powf(self.length_penalty)
    }

    fn add(&mut self, tokens: Vec<u32>, sum_logprobs: f32, len: usize, eos: bool) {
        let score = self.normalise(sum_logprobs, len);
        if self.list.len() < self.k || self.list.last().is_some_and(|w| score > w.0) {
            let at = self.list.iter().position(|h| score > h.0).unwrap_or(self.list.len());
            self.list.insert(at, (score, tokens, eos));
            self.list.truncate(self.k);
        }
    }

    /// Whether no running beam with `best_sum` after `len` tokens can enter the list.
    fn is_done(&self, best_sum: f32, len: usize) -> bool {
        if self.list.len() < self.k {
            return false;
        }
        let worst = self.list.last().map_or(f32::NEG_INFINITY, |h| h.0);
        worst >= self.normalise(best_sum, len)
    }
}

/// Beam search over every row of `first` (B, vocab); one result per row.
pub fn beam_search(
    first: Array2<f32>,
    decoder: &mut dyn StepDecoder,
    options: &GenerationOptions,
    special: SpecialTokens,
) -> Result<Vec<Generated>> {
    let (b, k) = (first.nrows(), options.beams);
    let eos = special.eos as usize;
    let expand: Vec<usize> = (0..b).flat_map(|s| std::iter::repeat_n(s, k)).collect();
    decoder.select_rows(&expand)?;
    let mut logits = first.select(Axis(0), &expand); // (B*K, V)
                                                     // Only beam 0 of each sample is live at first, so the K beams start from K different tokens.
    let mut beam_scores: Vec<f32> = (0..b * k).map(|r| if r % k == 0 { 0.0 } else { -1e9 }).collect();
    let mut histories: Vec<Vec<u32>> = vec![Vec::new(); b * k];
    let mut hyps: Vec<Hypotheses> = (0..b).map(|_| Hypotheses::new(k, options.length_penalty)).collect();
    let mut done = vec![false; b];

    for step in 0..options.max_new_tokens {
        let mut src: Vec<usize> = (0..b * k).collect();
        let mut tokens = vec![i64::from(special.pad); b * k];
        let mut scores = beam_scores.clone();
        let was_done = done.clone();
        for s in 0..b {
            if done[s] {
                continue;
            }
            // (total score, beam, token) of the best 2K candidates
            let mut cands: Vec<(f32, usize, usize)> = Vec::with_capacity(2 * k * 2);
            for j in 0..k {
                let row = s * k + j;
                let mut lp: Vec<f32> = logits.row(row).to_vec();
                log_softmax(&mut lp);
                ban_early_eos(&mut lp, step, options.min_new_tokens, eos);
                ban_repeated_ngrams(&mut lp, &histories[row], options.no_repeat_ngram_size);
                for (t, &x) in lp.iter().enumerate() {
                    if x.is_finite() {
                        cands.push((x + beam_scores[row], j, t));
                    }
                }
                top(&mut cands, 2 * k);
            }
            cands.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
            let mut chosen = 0;
            for (rank, &(score, j, t)) in cands.iter().enumerate() {
                if t == eos {
                    if rank < k {
                        hyps[s].add(histories[s * k + j].clone(), score, step + 1, true);
                    }
                    continue;
                }
                let dst = s * k + chosen;
                src[dst] = s * k + j;
                tokens[dst] = t as i64;
                scores[dst] = score;
                chosen += 1;
                if chosen == k {
                    break;
                }
            }
            // Fewer than K live candidates (a tiny vocabulary): park the rest on beam 0, dead.
            for c in chosen..k {
                let dst = s * k + c;
                src[dst] = s * k;
                tokens[dst] = i64::from(special.pad);
                scores[dst] = f32::NEG_INFINITY;
            }
            let best = (0..k).map(|c| scores[s * k + c]).fold(f32::NEG_INFINITY, f32::max);
            done[s] = chosen == 0 || hyps[s].is_done(best, step + 1);
        }
        histories = (0..b * k)
            .map(|row| {
                if was_done[row / k] {
                    return histories[row].clone();
                }
                let mut h = histories[src[row]].clone();
                h.push(tokens[row] as u32);
                h
            })
            .collect();
        beam_scores = scores;
        if done.iter().all(|&d| d) || step + 1 == options.max_new_tokens {
            break;
        }
        if src.iter().enumerate().any(|(i, &r)| i != r) {
            decoder.select_rows(&src)?;
        }
        logits = decoder.step(&tokens)?;
    }

    Ok((0..b)
        .map(|s| {
            let mut h = hyps[s].clone();
            if !done[s] || h.list.len() < k {
                for j in 0..k {
                    let row = s * k + j;
                    if beam_scores[row].is_finite() {
                        h.add(histories[row].clone(), beam_scores[row], histories[row].len(), false);
                    }
                }
            }
            match h.list.into_iter().next() {
                Some((score, tokens, finished)) => Generated { tokens, finished, score },
                None => Generated { tokens: Vec::new(), finished: false, score: f32::NEG_INFINITY },
            }
        })
        .collect())
}

/// Keeps the `n` best candidates (partial selection; order not kept).
fn top(cands: &mut Vec<(f32, usize, usize)>, n: usize) {
    if cands.len() > n {
        cands.select_nth_unstable_by(n - 1, |a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        cands.truncate(n);
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::Chain;
    use super::super::{generate, GenerationOptions, SpecialTokens, Strategy};
    use crate::error::Result;

    const SPECIAL: SpecialTokens = SpecialTokens { eos: 0, pad: 9 };

    /// From 1: token 2 slightly better than 3. After 2 the mass spreads thin; after 3, token 4 is
    /// near certain and then EOS. Greedy takes 2; beam search finds 3 4.
    fn trap() -> Chain {
        let mut c = Chain::new(12, &[]).with_edge(1, 2, 10.0).with_edge(1, 3, 9.5);
        for t in 0..12 {
            c = c.with_edge(2, t, 1.0);
        }
        c.with_edge(3, 4, 20.0).with_edge(4, 0, 20.0)
    }

    #[test]
    fn beam_search_escapes_the_greedy_trap() -> Result<()> {
        let mut chain = trap();
        let first = chain.start(&[1]);
        let greedy = generate(first, &mut chain, &GenerationOptions::greedy(4), SPECIAL)?;
        assert_eq!(greedy[0].tokens.first(), Some(&2));

        let mut chain = trap();
        let first = chain.start(&[1]);
        let opts = GenerationOptions::greedy(4).with_beams(3)?;
        assert_eq!(opts.strategy, Strategy::Beam);
        let beam = generate(first, &mut chain, &opts, SPECIAL)?;
        assert_eq!(beam[0].tokens, vec![3, 4]);
        assert!(beam[0].finished);
        // The first select expands 1 row to 3 beams.
        assert_eq!(chain.selects[0], vec![0, 0, 0]);
        Ok(())
    }

    #[test]
    fn beams_are_reordered_with_their_cache() -> Result<()> {
        // Two samples in one batch; each must end with its own best path, which only happens if
        // the fake's per-row histories follow the beams through select_rows.
        let mut chain = trap().with_edge(5, 6, 10.0).with_edge(6, 7, 10.0).with_edge(7, 0, 10.0);
        let first = chain.start(&[1, 5]);
        let out = generate(first, &mut chain, &GenerationOptions::greedy(5).with_beams(2)?, SPECIAL)?;
        assert_eq!(out[0].tokens, vec![3, 4]);
        assert_eq!(out[1].tokens, vec![6, 7]);
        Ok(())
    }

    #[test]
    fn negative_length_penalty_prefers_short_answers() -> Result<()> {
        // 1 -> eos (logit 9.5) vs 1 -> 8 -> eos (8: logit 10, then eos certain): -0.97 / 1 against
        // -0.47 / 2 (penalty 1) or -0.47 * 4 (penalty -2).
        let chain = || Chain::new(12, &[]).with_edge(1, 0, 9.5).with_edge(1, 8, 10.0).with_edge(8, 0, 30.0);
        let run = |lp: f32| -> Result<Vec<u32>> {
            let mut c = chain();
            let first = c.start(&[1]);
            let opts = GenerationOptions::greedy(4).with_beams(2)?.with_length_penalty(lp);
            Ok(generate(first, &mut c, &opts, SPECIAL)?.remove(0).tokens)
        };
        assert_eq!(run(1.0)?, vec![8]);
        assert_eq!(run(-2.0)?, Vec::<u32>::new());
        Ok(())
    }

    #[test]
    fn no_repeat_ngram_in_beams() -> Result<()> {
        // 1 <-> 2 loop; with no-repeat 2 the beams must leave the loop.
        let mut chain = Chain::new(12, &[(1, 2), (2, 1)]).with_second(&[(1, 3), (2, 3), (3, 0)]);
        let first = chain.start(&[1]);
        let opts = GenerationOptions::greedy(6).with_beams(2)?.with_no_repeat_ngram_size(2);
        let out = generate(first, &mut chain, &opts, SPECIAL)?;
        let t = &out[0].tokens;
        for w in 0..t.len().saturating_sub(2) {
            for v in w + 1..t.len() - 1 {
                assert!(t[w..w + 2] != t[v..v + 2], "repeated bigram in {t:?}");
            }
        }
        Ok(())
    }

    #[test]
    fn min_new_tokens_in_beams() -> Result<()> {
        let mut chain = Chain::new(12, &[(1, 0)]).with_second(&[(1, 5), (5, 0)]);
        let first = chain.start(&[1]);
        let opts = GenerationOptions::greedy(4).with_beams(2)?.with_min_new_tokens(1)?;
        let out = generate(first, &mut chain, &opts, SPECIAL)?;
        assert_eq!(out[0].tokens, vec![5]);
        Ok(())
    }
}
