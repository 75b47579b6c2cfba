//! Generation: greedy, beam search and sampling over a decoder with a KV cache.
//!
//! The loops here know nothing of ONNX: they drive a [`StepDecoder`], which turns one new token
//! per row into next-token logits and keeps its own cache, and which can re-order or duplicate its
//! rows (beam search). The ONNX decoder implements it in [`crate::model`]; the unit tests implement
//! it with a table, so every rule is tested without a model.
//!
//! Decoding follows Hugging Face `generate`, which Lynx uses (5 beams, length penalty, no-repeat
//! n-gram size 2, min length; or top-k / top-p sampling): see [`beam`], [`search`] and [`logits`].
//! Rows stop at EOS (not included in the output); finished rows are fed PAD while others go on.

pub mod beam;
pub mod logits;
pub mod search;

use ndarray::Array2;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Most beams: each beam is a decoder row with its own KV cache; Lynx decodes with 5, and 100 000
/// beams ran past a minute before answering.
pub const MAX_BEAMS: usize = 64;

/// Decoding strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Argmax each step.
    Greedy,
    /// Beam search.
    Beam,
    /// Temperature / top-k / top-p sampling.
    Sample,
}

/// A model that extends each row by one token at a time.
pub trait StepDecoder {
    /// Feeds one token per row and returns the next-token logits, (rows, vocab).
    fn step(&mut self, tokens: &[i64]) -> Result<Array2<f32>>;

    /// Re-orders or duplicates rows: new row `i` continues old row `rows[i]`. Called by beam
    /// search once to expand B rows to B x beams, then whenever beams swap.
    fn select_rows(&mut self, rows: &[usize]) -> Result<()>;
}

/// How to decode.
///
/// Starts from a variant's defaults (`generation:` of its manifest, checked and converted once when
/// the manifest is read: `Manifest::generation`) or [`GenerationOptions::greedy`];
/// each `with_*` step checks its value.
///
/// ```
/// use lynx_zoo::generate::{GenerationOptions, Strategy};
/// let opts = GenerationOptions::greedy(16).with_beams(5)?.with_length_penalty(-2.0);
/// assert_eq!(opts.strategy, Strategy::Beam);
/// assert!(GenerationOptions::greedy(16).with_top_p(1.5).is_err());
/// # Ok::<(), lynx_zoo::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationOptions {
    /// Greedy, beam or sampling.
    pub strategy: Strategy,
    /// Beams (beam search).
    pub beams: usize,
    /// Most new tokens.
    pub max_new_tokens: usize,
    /// Fewest new tokens before EOS may end a row.
    pub min_new_tokens: usize,
    /// Beam score = sum of log-probs / length ^ length_penalty.
    pub length_penalty: f32,
    /// No n-gram of this size repeats (0 = off).
    pub no_repeat_ngram_size: usize,
    /// Sampling temperature.
    pub temperature: f32,
    /// Sampling top-k (0 = off).
    pub top_k: usize,
    /// Sampling nucleus (1 = off).
    pub top_p: f32,
    /// Sampling seed.
    pub seed: u64,
}

impl GenerationOptions {
    /// Pure argmax decoding of at most `max_new_tokens` tokens (what the parity goldens use).
    pub fn greedy(max_new_tokens: usize) -> GenerationOptions {
        GenerationOptions {
            strategy: Strategy::Greedy,
            beams: 1,
            max_new_tokens: max_new_tokens.max(1),
            min_new_tokens: 0,
            length_penalty: 1.0,
            no_repeat_ngram_size: 0,
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            seed: 0,
        }
    }

    /// Beam search with `beams` beams (1 = greedy, at most [`MAX_BEAMS`]).
    pub fn with_beams(mut self, beams: usize) -> Result<Self> {
        if !(1..=MAX_BEAMS).contains(&beams) {
            return Err(invalid("beams", beams, &format!("1 to {MAX_BEAMS} (1: greedy)")));
        }
        self.beams = beams;
        self.strategy = if beams == 1 { Strategy::Greedy } else { Strategy::Beam };
        Ok(self)
    }

    /// Greedy decoding (keeps the other settings).
    pub fn with_greedy(mut self) -> Self {
        self.strategy = Strategy::Greedy;
        self.beams = 1;
        self
    }

    /// At most `n` new tokens.
    pub fn with_max_new_tokens(mut self, n: usize) -> Result<Self> {
        if n == 0 {
            return Err(invalid("max new tokens", n, "at least 1"));
        }
        self.max_new_tokens = n;
        self.min_new_tokens = self.min_new_tokens.min(n);
        Ok(self)
    }

    /// At least `n` new tokens before EOS.
    pub fn with_min_new_tokens(mut self, n: usize) -> Result<Self> {
        if n > self.max_new_tokens {
            return Err(invalid("min new tokens", n, &format!("at most max new tokens ({})", self.max_new_tokens)));
        }
        self.min_new_tokens = n;
        Ok(self)
    }

    /// Beam length penalty.
    pub fn with_length_penalty(mut self, penalty: f32) -> Self {
        self.length_penalty = penalty;
        self
    }

    /// No repeated n-grams of this size (0 = off).
    pub fn with_no_repeat_ngram_size(mut self, n: usize) -> Self {
        self.no_repeat_ngram_size = n;
        self
    }

    /// Sampling at `temperature` (switches the strategy to sampling).
    pub fn with_temperature(mut self, temperature: f32) -> Result<Self> {
        if !(temperature.is_finite() && temperature > 0.0) {
            return Err(invalid("temperature", temperature, "a positive number"));
        }
        self.temperature = temperature;
        self.strategy = Strategy::Sample;
        Ok(self)
    }

    /// Sampling from the `k` best tokens (0 = all; switches to sampling).
    pub fn with_top_k(mut self, k: usize) -> Self {
        self.top_k = k;
        self.strategy = Strategy::Sample;
        self
    }

    /// Nucleus sampling with mass `p` in (0, 1] (switches to sampling).
    pub fn with_top_p(mut self, p: f32) -> Result<Self> {
        if !(p > 0.0 && p <= 1.0) {
            return Err(invalid("top-p", p, "a number in (0, 1]"));
        }
        self.top_p = p;
        self.strategy = Strategy::Sample;
        Ok(self)
    }

    /// Sampling seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Rows the decoder runs per sample (beams for beam search, else 1).
    pub fn rows_per_sample(&self) -> usize {
        if self.strategy == Strategy::Beam {
            self.beams
        } else {
            1
        }
    }
}

fn invalid(what: &'static str, value: impl std::fmt::Display, expected: &str) -> Error {
    Error::InvalidArgument { what, value: value.to_string(), expected: expected.to_string() }
}

/// Special token ids the loops need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialTokens {
    /// End of sequence.
    pub eos: u32,
    /// Padding (fed to finished rows).
    pub pad: u32,
}

/// One generated sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// New tokens, EOS excluded.
    pub tokens: Vec<u32>,
    /// Whether it ended with EOS (rather than at the token limit).
    pub finished: bool,
    /// Beam score (sum of log-probs / length ^ penalty), or the sum of log-probs.
    pub score: f32,
}

/// Decodes from the prefill's last-position logits `first` (B, vocab), one sequence per sample.
///
/// NaN or infinite logits, from the prefill or any step, stop generation with
/// [`Error::NonFiniteLogits`]: argmax over NaN picks token 0 and beam search drops every NaN
/// candidate, so broken weights would otherwise answer with silent noise or nothing at all.
pub fn generate(
    first: Array2<f32>,
    decoder: &mut dyn StepDecoder,
    options: &GenerationOptions,
    special: SpecialTokens,
) -> Result<Vec<Generated>> {
    check_finite(&first, 0)?;
    let mut decoder = FiniteLogits { inner: decoder, steps: 0 };
    let decoder: &mut dyn StepDecoder = &mut decoder;
    match options.strategy {
        Strategy::Beam if options.beams > 1 => beam::beam_search(first, decoder, options, special),
        Strategy::Beam | Strategy::Greedy => search::search(first, decoder, options, special, None),
        Strategy::Sample => {
            let rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(options.seed);
            search::search(first, decoder, options, special, Some(rng))
        }
    }
}

/// Checks that `logits` (rows, vocab) of generation step `step` (0: the prefill) are finite.
pub fn check_finite(logits: &Array2<f32>, step: usize) -> Result<()> {
    for (row, scores) in logits.rows().into_iter().enumerate() {
        if scores.as_slice().is_some_and(logits::all_finite) {
            continue; // the common case, in one vectorised pass
        }
        if let Some((token, &value)) = scores.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(Error::NonFiniteLogits {
                graph: "decoder".into(),
                tensor: "logits".into(),
                step,
                row,
                token,
                value,
            });
        }
    }
    Ok(())
}

/// A [`StepDecoder`] whose every step's logits are checked with [`check_finite`].
struct FiniteLogits<'a> {
    inner: &'a mut dyn StepDecoder,
    steps: usize,
}

impl StepDecoder for FiniteLogits<'_> {
    fn step(&mut self, tokens: &[i64]) -> Result<Array2<f32>> {
        let logits = self.inner.step(tokens)?;
        self.steps += 1;
        check_finite(&logits, self.steps)?;
        Ok(logits)
    }

    fn select_rows(&mut self, rows: &[usize]) -> Result<()> {
        self.inner.select_rows(rows)
    }
}

#[cfg(test)]
pub(crate) mod fake;

#[cfg(test)]
mod tests {
    use super::fake::Chain;
    use super::*;

    const SPECIAL: SpecialTokens = SpecialTokens { eos: 0, pad: 9 };

    /// A chain decoder whose logits at decode step `at` (1-based) hold `bad` at token `token`.
    struct Poisoned {
        chain: Chain,
        at: usize,
        token: usize,
        bad: f32,
        steps: usize,
    }

    impl StepDecoder for Poisoned {
        fn step(&mut self, tokens: &[i64]) -> Result<Array2<f32>> {
            let mut logits = self.chain.step(tokens)?;
            self.steps += 1;
            if self.steps == self.at {
                let last = logits.nrows() - 1;
                logits[[last, self.token]] = self.bad;
            }
            Ok(logits)
        }

        fn select_rows(&mut self, rows: &[usize]) -> Result<()> {
            self.chain.select_rows(rows)
        }
    }

    fn options() -> Vec<GenerationOptions> {
        let g = GenerationOptions::greedy(8);
        vec![g.clone(), g.clone().with_beams(3).unwrap(), g.with_temperature(1.0).unwrap().with_seed(1)]
    }

    #[test]
    fn nan_or_inf_logits_stop_every_strategy_with_the_step_and_token() {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for opts in options() {
                // 1 -> 2 -> 3 -> 1 ...: never ends by itself within 8 tokens; step 2 is poisoned.
                let mut chain = Chain::new(10, &[(1, 2), (2, 3), (3, 1)]);
                let first = chain.start(&[1, 2]);
                let mut d = Poisoned { chain, at: 2, token: 7, bad, steps: 0 };
                let e = generate(first, &mut d, &opts, SPECIAL).unwrap_err();
                let Error::NonFiniteLogits { step, token, value, ref graph, ref tensor, .. } = e else {
                    panic!("{:?}: {e}", opts.strategy)
                };
                assert_eq!((step, token, graph.as_str(), tensor.as_str()), (2, 7, "decoder", "logits"));
                assert_eq!(value.to_bits(), bad.to_bits());
                let msg = e.to_string();
                assert!(msg.contains("step 2") && msg.contains("`logits`"), "{msg}");
            }
        }
    }

    #[test]
    fn nan_in_the_prefill_is_step_0_and_finite_logits_pass() -> Result<()> {
        let mut chain = Chain::new(10, &[(1, 2), (2, 0)]);
        let mut first = chain.start(&[1]);
        let clean = generate(first.clone(), &mut chain, &GenerationOptions::greedy(8), SPECIAL)?;
        assert_eq!(clean[0].tokens, vec![2]);
        first[[0, 4]] = f32::NAN;
        let e = generate(first, &mut chain, &GenerationOptions::greedy(8), SPECIAL).unwrap_err();
        assert!(matches!(e, Error::NonFiniteLogits { step: 0, row: 0, token: 4, .. }), "{e}");
        Ok(())
    }

    #[test]
    fn beams_are_bounded() {
        assert!(GenerationOptions::greedy(4).with_beams(MAX_BEAMS).is_ok());
        for bad in [0, MAX_BEAMS + 1, 100_000] {
            let e = GenerationOptions::greedy(4).with_beams(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("`{bad}`")) && e.contains("1 to 64"), "{e}");
        }
    }
}
