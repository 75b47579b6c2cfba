//! A table-driven [`StepDecoder`] for testing the decoding loops without a model.
//!
//! Logits of a row depend only on the row's last token, through a table of edges. The fake keeps
//! each row's history itself, so a wrong `select_rows` (beam re-ordering) shows up as wrong
//! logits, and it records what each row was fed.

use ndarray::Array2;

use super::StepDecoder;
use crate::error::Result;

/// Markov-chain decoder: `logit(next | last)` from a table.
#[derive(Debug, Clone)]
pub struct Chain {
    vocab: usize,
    table: Vec<Vec<f32>>,
    /// Per row: every token seen (the start token first).
    pub history: Vec<Vec<i64>>,
    /// Per row: tokens fed through `step`.
    pub fed: Vec<Vec<i64>>,
    /// `step` calls.
    pub steps: usize,
    /// `select_rows` calls.
    pub selects: Vec<Vec<usize>>,
}

impl Chain {
    /// Edges `(from, to)` with logit 10; everything else 0.
    pub fn new(vocab: usize, best: &[(usize, usize)]) -> Chain {
        let mut table = vec![vec![0.0; vocab]; vocab];
        for &(a, b) in best {
            table[a][b] = 10.0;
        }
        Chain { vocab, table, history: Vec::new(), fed: Vec::new(), steps: 0, selects: Vec::new() }
    }

    /// Adds edges with logit 5.
    pub fn with_second(mut self, second: &[(usize, usize)]) -> Chain {
        for &(a, b) in second {
            self.table[a][b] = 5.0;
        }
        self
    }

    /// Sets one edge.
    pub fn with_edge(mut self, from: usize, to: usize, logit: f32) -> Chain {
        self.table[from][to] = logit;
        self
    }

    /// Adds deterministic noise in [0, 1) to every edge.
    pub fn with_noise(mut self, seed: u64) -> Chain {
        let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        for row in &mut self.table {
            for v in row.iter_mut() {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                *v += (x >> 40) as f32 / (1u64 << 24) as f32;
            }
        }
        self
    }

    fn logits(&self) -> Array2<f32> {
        let mut out = Array2::<f32>::zeros((self.history.len(), self.vocab));
        for (r, h) in self.history.iter().enumerate() {
            let last = h.last().copied().unwrap_or(0) as usize % self.vocab;
            for (t, v) in self.table[last].iter().enumerate() {
                out[[r, t]] = *v;
            }
        }
        out
    }

    /// Starts one row per token (the "prefill") and returns its logits.
    pub fn start(&mut self, tokens: &[i64]) -> Array2<f32> {
        self.history = tokens.iter().map(|&t| vec![t]).collect();
        self.fed = vec![Vec::new(); tokens.len()];
        self.logits()
    }
}

impl StepDecoder for Chain {
    fn step(&mut self, tokens: &[i64]) -> Result<Array2<f32>> {
        assert_eq!(tokens.len(), self.history.len(), "one token per row");
        for (r, &t) in tokens.iter().enumerate() {
            self.history[r].push(t);
            self.fed[r].push(t);
        }
        self.steps += 1;
        Ok(self.logits())
    }

    fn select_rows(&mut self, rows: &[usize]) -> Result<()> {
        self.history = rows.iter().map(|&r| self.history[r].clone()).collect();
        self.fed = rows.iter().map(|&r| self.fed[r].clone()).collect();
        self.selects.push(rows.to_vec());
        Ok(())
    }
}
