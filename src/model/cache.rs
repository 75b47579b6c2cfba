//! The decoder's KV cache and one-token steps: the ONNX implementation of [`StepDecoder`].
//!
//! Each step feeds the new tokens' embeddings, the grown attention mask and the next position per
//! row. Two ways to keep the cache (`model.kv_cache.update`):
//!
//! - `concat`: the graph returns `present.{i}.key|value` (batch, kv_heads, total, head_dim), and
//!   those tensors become the next step's `past_key_values.{i}.key|value` by moving the ONNX
//!   Runtime values, not by copying them. The graph's own Concat of past and new K/V copies the
//!   whole past every step, which grows with the context.
//! - `shared_buffer`: one buffer per cache tensor, (batch, kv_heads, prompt + new tokens,
//!   head_dim), allocated at the prefill and bound as both past and present
//!   ([`Session::bind_shared`], [`Session::run_bound`]); GroupQueryAttention appends each step's K/V in place and reads
//!   the valid length from the mask. Nothing is copied.
//!
//! ```text
//!  step t:  embed(tokens) (R,1,D) ─┐
//!           mask (R, T+1) ─────────┼─> decoder ─> logits (R,1,V) ─> next-token scores
//!           positions (R,1) ───────┤            └> present.* (R,H,T+1,Dh) ──┐
//!           past.* (R,H,T,Dh) ─────┘                                        │ moved
//!  step t+1: past.* <───────────────────────────────────────────────────────┘
//! ```
//!
//! Beam search re-orders rows: only rows whose beam changed are rewritten, in place; the one
//! expansion from B samples to B x beams rows gathers once. Cross-attention K/V (computed once per
//! sample by the connector) are fed unchanged every step and only re-gathered when a row moves to
//! another sample, which happens at that expansion alone.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ndarray::{Array2, ArrayD, Axis, Ix3};

use crate::error::{Error, Result};
use crate::generate::StepDecoder;
use crate::manifest::tensors::{ATTENTION_MASK, INPUTS_EMBEDS, INPUT_IDS, LOGITS, POSITION_IDS};
use crate::runtime::{Binding, ExecutionProvider, Input, Session, SharedBuffers, Value};

/// One cache tensor: its input name, its output name and the current value.
#[derive(Debug)]
pub struct CacheEntry {
    /// `past_key_values.{i}.key|value`.
    pub past: String,
    /// `present.{i}.key|value`.
    pub present: String,
    /// (rows, kv_heads, total, head_dim)
    pub value: Value,
}

/// The state of a batch being decoded.
#[derive(Debug)]
pub struct DecodeState<'s> {
    /// Embedding graph.
    pub embed: &'s mut Session,
    /// Decoder graph.
    pub decoder: &'s mut Session,
    /// Whether the decoder takes `position_ids` (`model.position_ids: input`); without it, the
    /// graph derives positions from the mask itself.
    pub position_ids: bool,
    /// Self-attention cache.
    pub cache: Vec<CacheEntry>,
    /// Whether the cache entries are buffers shared by past and present (`shared_buffer`) rather
    /// than the last step's `present` (`concat`).
    pub shared: bool,
    /// Cross-attention K/V by input name, one row per decoder row.
    pub cross: Vec<(String, Value)>,
    /// The sample each row belongs to (for the cross K/V).
    pub row_sample: Vec<usize>,
    /// (rows, total) attention mask.
    pub mask: Vec<Vec<i64>>,
    /// Time spent in decode steps.
    pub elapsed: Duration,
    /// Steps run.
    pub steps: usize,
    /// Cache rows rewritten by beam re-ordering (for tests and diagnostics).
    pub rows_moved: usize,
    /// The decoder's binding of the shared cache buffers (`shared_buffer`), made at the first run
    /// and again after a buffer is replaced.
    pub binding: Option<Binding>,
}

impl DecodeState<'_> {
    /// Runs the decoder on `embeds` (R, S, D) with the current mask (already including these S
    /// positions) and cache; returns each row's last real position's logits (R, V) and moves
    /// `present` into the cache.
    pub fn run(&mut self, embeds: Input<'_>) -> Result<Array2<f32>> {
        let rows = self.mask.len();
        let total = self.mask.first().map_or(0, Vec::len);
        let seq = embeds.shape().get(1).copied().unwrap_or(0);
        let flat: Vec<i64> = self.mask.iter().flatten().copied().collect();
        let mask = ArrayD::from_shape_vec(vec![rows, total], flat).map_err(|e| shape_error(ATTENTION_MASK, e))?;
        let positions = match self.position_ids {
            true => {
                let pos: Vec<i64> = positions(&self.mask, seq).into_iter().flatten().collect();
                Some(ArrayD::from_shape_vec(vec![rows, seq], pos).map_err(|e| shape_error(POSITION_IDS, e))?)
            }
            false => None, // the graph derives them from the mask
        };

        let mut inputs: Vec<(&str, Input<'_>)> =
            vec![(INPUTS_EMBEDS, embeds.reborrow()), (ATTENTION_MASK, Input::I64(mask.view()))];
        if let Some(p) = &positions {
            inputs.push((POSITION_IDS, Input::I64(p.view())));
        }
        for (name, v) in &self.cross {
            inputs.push((name.as_str(), Input::Value(v)));
        }
        let mut out = if self.shared {
            let capacity = self.cache.first().and_then(|e| e.value.shape().get(2).copied()).unwrap_or(0);
            if total > capacity {
                return Err(Error::GraphIo {
                    graph: "decoder".into(),
                    tensor: self.cache.first().map_or_else(String::new, |e| e.past.clone()),
                    expected: format!("a shared cache buffer of at least {total} positions"),
                    got: format!("{capacity} positions, sized at the prefill for the prompt and the new tokens"),
                    source: None,
                });
            }
            // Bound once per generation, again after a buffer was replaced (the beam expansion).
            // Another provider than the CPU copies a bound input to its device when it is bound,
            // not when the graph runs: there the buffers are bound again for every run.
            if self.decoder.provider() != ExecutionProvider::Cpu {
                self.binding = None;
            }
            let binding = match &mut self.binding {
                Some(b) => b,
                None => {
                    let mut shared: Vec<(&str, &str, &mut Value)> =
                        self.cache.iter_mut().map(|e| (e.past.as_str(), e.present.as_str(), &mut e.value)).collect();
                    self.binding.insert(self.decoder.bind_shared(&mut shared)?)
                }
            };
            self.decoder.run_bound(binding, &inputs)?
        } else {
            for e in &self.cache {
                inputs.push((e.past.as_str(), Input::Value(&e.value)));
            }
            self.decoder.run(&inputs)?
        };
        let logits = out.take(LOGITS)?;
        let view = logits.view_f32()?;
        // (R, S, V) from decoders that give every position's logits, (R, 1, V) from the zoo's,
        // which give each row's last position only (its own last, for right-padded rows: the
        // manifest's `prompt.padding: right` vouches for that)
        let view = view.into_dimensionality::<Ix3>().map_err(|e| shape_error(LOGITS, e))?;
        if view.shape()[0] != rows || (view.shape()[1] != seq && view.shape()[1] != 1) {
            return Err(Error::GraphIo {
                graph: "decoder".into(),
                tensor: LOGITS.into(),
                expected: format!("logits of {rows} rows: of the {seq} positions fed, or of the last one"),
                got: format!("{:?}", view.shape()),
                source: None,
            });
        }
        // (R, V): each row's last position fed that is not padding -- the last one fed, except in
        // the prefill of a right-padded row, which ends at its own length
        let last = match view.shape()[1] {
            1 => view.index_axis(Axis(1), 0).to_owned(), // every decode step, and the zoo's prefill
            _ => {
                let fed = total.saturating_sub(seq);
                let mut last = Array2::zeros((rows, view.shape()[2]));
                for (r, mut row) in last.outer_iter_mut().enumerate() {
                    let real = self.mask[r].get(fed..).and_then(|m| m.iter().rposition(|&m| m == 1));
                    row.assign(&view.index_axis(Axis(0), r).index_axis(Axis(0), real.unwrap_or(seq - 1)));
                }
                last
            }
        };
        if !self.shared {
            for e in &mut self.cache {
                e.value = out.take(&e.present)?;
            }
        }
        Ok(last)
    }

    /// Embeds `ids` (R, S): the embedding graph's output, kept in ONNX Runtime's memory for the
    /// decoder to read as it is.
    pub fn embed_ids(&mut self, ids: &ArrayD<i64>) -> Result<Value> {
        let mut out = self.embed.run(&[(INPUT_IDS, Input::I64(ids.view()))])?;
        out.take(INPUTS_EMBEDS)
    }
}

/// The positions of the last `seq` entries of each mask row: `cumsum(mask) - 1`, clamped at 0
/// (Hugging Face's rule for left-padded batches; in a right-padded row each real token's index,
/// and a step's position its row's length), what `position_ids` holds.
pub fn positions(mask: &[Vec<i64>], seq: usize) -> Vec<Vec<i64>> {
    mask.iter()
        .map(|row| {
            let mut c = 0i64;
            let cums: Vec<i64> = row
                .iter()
                .map(|&m| {
                    c += m;
                    (c - 1).max(0)
                })
                .collect();
            cums[cums.len().saturating_sub(seq)..].to_vec()
        })
        .collect()
}

fn shape_error(tensor: &str, e: impl std::fmt::Display) -> Error {
    Error::GraphIo {
        graph: "decoder".into(),
        tensor: tensor.into(),
        expected: "a consistent shape".into(),
        got: e.to_string(),
        source: None,
    }
}

/// Makes row `i` of `value` a copy of old row `rows[i]`.
///
/// Same row count: an in-place move of the rows that change (the others are not touched).
/// Different row count (the beam expansion): a gather into a new tensor.
pub fn select_value_rows(value: &mut Value, rows: &[usize]) -> Result<usize> {
    let n = value.shape().first().copied().unwrap_or(0);
    if let Some(&bad) = rows.iter().find(|&&r| r >= n) {
        return Err(Error::InvalidArgument {
            what: "row",
            value: bad.to_string(),
            expected: format!("a row of a tensor with {n} rows"),
        });
    }
    if rows.len() != n {
        let gathered = value.view_f32()?.select(Axis(0), rows);
        // allocated by ONNX Runtime, so that a shared cache buffer stays one (bindable as output)
        let mut fresh = Value::zeros_f32_bindable(gathered.shape())?;
        fresh.view_f32_mut()?.assign(&gathered);
        *value = fresh;
        return Ok(rows.len());
    }
    let changed: Vec<usize> = (0..n).filter(|&i| rows[i] != i).collect();
    if changed.is_empty() {
        return Ok(0);
    }
    let mut view = value.view_f32_mut()?;
    // Snapshot the source rows first: a row may be both a source and overwritten.
    let sources: BTreeMap<usize, ArrayD<f32>> =
        changed.iter().map(|&i| (rows[i], view.index_axis(Axis(0), rows[i]).to_owned())).collect();
    for &i in &changed {
        if let Some(src) = sources.get(&rows[i]) {
            view.index_axis_mut(Axis(0), i).assign(src);
        }
    }
    Ok(changed.len())
}

impl Drop for DecodeState<'_> {
    /// Shared cache buffers go back to the decoder with their binding, for the next generation.
    fn drop(&mut self) {
        if self.shared && !self.cache.is_empty() {
            let values = std::mem::take(&mut self.cache).into_iter().map(|e| e.value).collect();
            self.decoder.give_back(SharedBuffers { values, binding: self.binding.take() });
        }
    }
}

impl StepDecoder for DecodeState<'_> {
    fn step(&mut self, tokens: &[i64]) -> Result<Array2<f32>> {
        let start = Instant::now();
        let ids =
            ArrayD::from_shape_vec(vec![tokens.len(), 1], tokens.to_vec()).map_err(|e| shape_error(INPUT_IDS, e))?;
        let embeds = self.embed_ids(&ids)?; // (R, 1, D)
        for row in &mut self.mask {
            row.push(1);
        }
        let logits = self.run(Input::Value(&embeds))?;
        self.elapsed += start.elapsed();
        self.steps += 1;
        Ok(logits)
    }

    fn select_rows(&mut self, rows: &[usize]) -> Result<()> {
        if rows.len() != self.mask.len() {
            // new buffers with another row count: the binding holds the former ones
            self.binding = None;
        }
        for e in &mut self.cache {
            self.rows_moved += select_value_rows(&mut e.value, rows)?;
        }
        self.mask = rows.iter().map(|&r| self.mask[r].clone()).collect();
        let new_samples: Vec<usize> = rows.iter().map(|&r| self.row_sample[r]).collect();
        if new_samples != self.row_sample {
            for (_, v) in &mut self.cross {
                select_value_rows(v, rows)?;
            }
        }
        self.row_sample = new_samples;
        Ok(())
    }
}
