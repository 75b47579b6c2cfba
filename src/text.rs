//! Text: the variant's tokenizer.json and prompt template.
//!
//! The prompt is the manifest's template with the question in place of `{question}` (Lynx:
//! `User: {question}\nBot:`), encoded without the tokenizer's own special tokens and preceded by the
//! BOS token (docs/contract.md section 2). Batches are padded on the left, so the last position of
//! every row is the last prompt token and generation continues from there for all rows at once.

use std::path::{Path, PathBuf};

use tokenizers::Tokenizer;

use crate::error::{Error, Result};
use crate::files::{self, FileKind};
use crate::manifest::{PromptSpec, TokenizerSpec};

/// A loaded tokenizer with the variant's special tokens and prompt template.
#[derive(Debug, Clone)]
pub struct TextCodec {
    tokenizer: Tokenizer,
    path: PathBuf,
    prompt: PromptSpec,
    /// BOS id.
    pub bos: u32,
    /// EOS id.
    pub eos: u32,
    /// PAD id.
    pub pad: u32,
}

/// A left-padded batch of prompts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptBatch {
    /// (B, L) token ids, pad on the left.
    pub ids: Vec<Vec<i64>>,
    /// (B, L) 1 for tokens, 0 for padding.
    pub mask: Vec<Vec<i64>>,
    /// Unpadded length of each row.
    pub lengths: Vec<usize>,
}

impl TextCodec {
    /// Reads tokenizer.json (a regular file within [`FileKind::Tokenizer`]'s limit) and resolves
    /// the special tokens. [`crate::zoo::Zoo::load`] uses [`TextCodec::from_bytes`] with the
    /// verified bytes instead.
    pub fn load(spec: &TokenizerSpec, prompt: &PromptSpec) -> Result<TextCodec> {
        Self::from_bytes(spec, prompt, &files::read(&spec.file.path, FileKind::Tokenizer)?)
    }

    /// The tokenizer from tokenizer.json's bytes (`spec` names the file in errors).
    pub fn from_bytes(spec: &TokenizerSpec, prompt: &PromptSpec, bytes: &[u8]) -> Result<TextCodec> {
        let path = spec.file.path.clone();
        let tokenizer = Tokenizer::from_bytes(bytes)
            .map_err(|e| Error::Tokenizer { path: path.clone(), message: format!("cannot load it: {e}") })?;
        let id = |token: &str, field: &str| {
            tokenizer.token_to_id(token).ok_or_else(|| Error::Tokenizer {
                path: path.clone(),
                message: format!("the manifest's `tokenizer.{field}` token `{token}` is not in its vocabulary"),
            })
        };
        let (bos, eos, pad) = (id(&spec.bos, "bos")?, id(&spec.eos, "eos")?, id(&spec.pad, "pad")?);
        Ok(TextCodec { bos, eos, pad, tokenizer, path, prompt: prompt.clone() })
    }

    /// The tokenizer file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Vocabulary size, special tokens included.
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// BOS + the encoded prompt for `question`. Rejects an empty question.
    pub fn prompt_ids(&self, question: &str) -> Result<Vec<i64>> {
        if question.trim().is_empty() {
            return Err(Error::InvalidArgument {
                what: "question",
                value: question.to_string(),
                expected: "a non-empty question".to_string(),
            });
        }
        let text = self.prompt.render(question);
        let enc = self.tokenizer.encode(text.as_str(), false).map_err(|e| Error::Tokenizer {
            path: self.path.clone(),
            message: format!("cannot encode the prompt: {e}"),
        })?;
        let mut ids = Vec::with_capacity(enc.len() + 1);
        ids.push(i64::from(self.bos));
        ids.extend(enc.get_ids().iter().map(|&i| i64::from(i)));
        Ok(ids)
    }

    /// Encodes questions into a left-padded batch.
    pub fn batch(&self, questions: &[&str]) -> Result<PromptBatch> {
        let rows = questions.iter().map(|q| self.prompt_ids(q)).collect::<Result<Vec<_>>>()?;
        Ok(left_pad(rows, i64::from(self.pad)))
    }

    /// Token ids back to text, special tokens skipped.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|e| Error::Tokenizer { path: self.path.clone(), message: format!("cannot decode {ids:?}: {e}") })
    }
}

/// Pads rows on the left to the longest.
pub fn left_pad(rows: Vec<Vec<i64>>, pad: i64) -> PromptBatch {
    let len = rows.iter().map(Vec::len).max().unwrap_or(0);
    let lengths: Vec<usize> = rows.iter().map(Vec::len).collect();
    let mut ids = Vec::with_capacity(rows.len());
    let mut mask = Vec::with_capacity(rows.len());
    for row in rows {
        let padding = len - row.len();
        let mut r = vec![pad; padding];
        r.extend(row.iter().copied());
        let mut m = vec![0; padding];
        m.extend(std::iter::repeat_n(1, row.len()));
        ids.push(r);
        mask.push(m);
    }
    PromptBatch { ids, mask, lengths }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_padding() {
        let b = left_pad(vec![vec![1, 5, 6], vec![1, 7]], 0);
        assert_eq!(b.ids, vec![vec![1, 5, 6], vec![0, 1, 7]]);
        assert_eq!(b.mask, vec![vec![1, 1, 1], vec![0, 1, 1]]);
        assert_eq!(b.lengths, vec![3, 2]);
    }

    #[test]
    fn template_substitution() {
        let p = PromptSpec { template: "User: {question}\nBot:".into(), padding: crate::manifest::PaddingSide::Left };
        assert_eq!(p.render("why?"), "User: why?\nBot:");
    }
}
