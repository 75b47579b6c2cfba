//! Text: the variant's tokenizer.json and prompt template.
//!
//! The prompt is the manifest's template with the question in place of `{question}` (Lynx:
//! `User: {question}\nBot:`), encoded without the tokenizer's own special tokens and preceded by the
//! BOS token (docs/contract.md section 2; `prompt.add_bos: false` leaves it out). Batches are padded
//! on the left, so the last position of every row is the last prompt token and generation
//! continues from there for all rows at once.
//!
//! With an image placeholder (`prompt.image_placeholder`, LLaVA's `<image>`), the template is
//! encoded whole, as Hugging Face's tokenizer encodes a LLaVA prompt: the placeholder is an added
//! token of the tokenizer, so the text on either side of it is tokenized as it would be anyway.
//! Its one token marks where the visual tokens go ([`Prompt::image_at`]) and is not embedded.

use std::path::{Path, PathBuf};

use tokenizers::Tokenizer;

use crate::error::{Error, Result};
use crate::files::{self, FileKind};
use crate::manifest::{PaddingSide, PromptSpec, TokenizerSpec};

/// A loaded tokenizer with the variant's special tokens and prompt template.
#[derive(Debug, Clone)]
pub struct TextCodec {
    tokenizer: Tokenizer,
    path: PathBuf,
    prompt: PromptSpec,
    /// The image placeholder's id (placeholder layout).
    placeholder: Option<u32>,
    /// BOS id.
    pub bos: u32,
    /// EOS id.
    pub eos: u32,
    /// PAD id.
    pub pad: u32,
}

/// A batch of prompts, padded on the manifest's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptBatch {
    /// (B, L) token ids to embed, padded on the manifest's side (an image placeholder's token taken out).
    pub ids: Vec<Vec<i64>>,
    /// (B, L) 1 for tokens, 0 for padding.
    pub mask: Vec<Vec<i64>>,
    /// Unpadded length of each row.
    pub lengths: Vec<usize>,
    /// Per row, where the visual tokens go (placeholder layout): how many of the row's unpadded
    /// ids come before them. None without a placeholder.
    pub image_at: Vec<Option<usize>>,
    /// Per row, the prompt as encoded: BOS, the template's tokens and the placeholder's token in
    /// its place, unpadded.
    pub encoded: Vec<Vec<i64>>,
}

/// One encoded prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// BOS (unless `prompt.add_bos` is false) and the template's tokens, the image placeholder's
    /// token included.
    pub ids: Vec<i64>,
    /// The index in `ids` of the image placeholder's token; None without a placeholder.
    pub image_at: Option<usize>,
}

impl Prompt {
    /// The ids the embedding graph gets: `ids` without the placeholder's token.
    pub fn text_ids(&self) -> Vec<i64> {
        let mut ids = self.ids.clone();
        if let Some(k) = self.image_at {
            ids.remove(k);
        }
        ids
    }
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
        let placeholder = match &prompt.image_placeholder {
            None => None,
            Some(p) => {
                // One added token, so that the tokenizer splits the text at it (as Hugging Face's
                // LLaVA tokenizers do with `<image>`), never a piece of a longer token.
                let one = tokenizer.token_to_id(p).filter(|i| tokenizer.get_added_tokens_decoder().contains_key(i));
                Some(one.ok_or_else(|| Error::Tokenizer {
                    path: path.clone(),
                    message: format!(
                        "the manifest's `prompt.image_placeholder` `{p}` is not an added token of its vocabulary; \
                         add it as a special (added) token, as LLaVA's tokenizers hold `<image>`"
                    ),
                })?)
            }
        };
        Ok(TextCodec { bos, eos, pad, tokenizer, path, prompt: prompt.clone(), placeholder })
    }

    /// The tokenizer file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Vocabulary size, special tokens included.
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// The encoded prompt for `question` and where its image placeholder is. Rejects an empty
    /// question, and one that holds the placeholder itself (the picture would have two places).
    pub fn prompt(&self, question: &str) -> Result<Prompt> {
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
        if self.prompt.add_bos {
            ids.push(i64::from(self.bos));
        }
        ids.extend(enc.get_ids().iter().map(|&i| i64::from(i)));
        let image_at = match self.placeholder {
            None => None,
            Some(p) => {
                let at: Vec<usize> = (0..ids.len()).filter(|&k| ids[k] == i64::from(p)).collect();
                match at[..] {
                    [k] => Some(k),
                    _ => {
                        return Err(Error::InvalidArgument {
                            what: "question",
                            value: question.to_string(),
                            expected: format!(
                                "a question without the image placeholder `{}` (the prompt holds it {} times)",
                                self.prompt.image_placeholder.as_deref().unwrap_or_default(),
                                at.len()
                            ),
                        })
                    }
                }
            }
        };
        Ok(Prompt { ids, image_at })
    }

    /// Encodes questions into a padded batch of the ids to embed (the placeholder's token taken
    /// out, its place kept in [`PromptBatch::image_at`]).
    pub fn batch(&self, questions: &[&str]) -> Result<PromptBatch> {
        let prompts = questions.iter().map(|q| self.prompt(q)).collect::<Result<Vec<_>>>()?;
        Ok(self.batch_prompts(prompts))
    }

    /// [`TextCodec::batch`] of prompts already encoded, padded on the manifest's side
    /// (`prompt.padding`; `none` pads on the left, as a batch of one needs no padding).
    pub fn batch_prompts(&self, prompts: Vec<Prompt>) -> PromptBatch {
        let rows = prompts.iter().map(Prompt::text_ids).collect();
        let mut batch = pad(rows, i64::from(self.pad), self.prompt.padding);
        batch.image_at = prompts.iter().map(|p| p.image_at).collect();
        batch.encoded = prompts.into_iter().map(|p| p.ids).collect();
        batch
    }

    /// Token ids back to text, special tokens skipped.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|e| Error::Tokenizer { path: self.path.clone(), message: format!("cannot decode {ids:?}: {e}") })
    }
}

/// Pads rows to the longest: on the right for `PaddingSide::Right`, else on the left.
pub fn pad(rows: Vec<Vec<i64>>, pad: i64, side: PaddingSide) -> PromptBatch {
    let len = rows.iter().map(Vec::len).max().unwrap_or(0);
    let lengths: Vec<usize> = rows.iter().map(Vec::len).collect();
    let right = side == PaddingSide::Right;
    let mut ids = Vec::with_capacity(rows.len());
    let mut mask = Vec::with_capacity(rows.len());
    for row in &rows {
        let padding = len - row.len();
        let (mut r, mut m) = (Vec::with_capacity(len), Vec::with_capacity(len));
        if !right {
            r.resize(padding, pad);
            m.resize(padding, 0);
        }
        r.extend_from_slice(row);
        m.resize(m.len() + row.len(), 1);
        if right {
            r.resize(len, pad);
            m.resize(len, 0);
        }
        ids.push(r);
        mask.push(m);
    }
    PromptBatch { image_at: vec![None; ids.len()], ids, mask, lengths, encoded: rows }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn right_padding_ends_each_row_at_its_own_length() {
        let b = pad(vec![vec![1, 5, 6], vec![1, 7]], 0, PaddingSide::Right);
        assert_eq!(b.ids, vec![vec![1, 5, 6], vec![1, 7, 0]]);
        assert_eq!(b.mask, vec![vec![1, 1, 1], vec![1, 1, 0]]);
        assert_eq!(b.lengths, vec![3, 2]);
        assert_eq!(b.encoded, vec![vec![1, 5, 6], vec![1, 7]]);
        assert_eq!(pad(vec![vec![4]], 0, PaddingSide::None).ids, vec![vec![4]]);
    }

    #[test]
    fn left_padding() {
        let b = pad(vec![vec![1, 5, 6], vec![1, 7]], 0, PaddingSide::Left);
        assert_eq!(b.ids, vec![vec![1, 5, 6], vec![0, 1, 7]]);
        assert_eq!(b.mask, vec![vec![1, 1, 1], vec![0, 1, 1]]);
        assert_eq!(b.lengths, vec![3, 2]);
        assert_eq!(b.encoded, vec![vec![1, 5, 6], vec![1, 7]]);
        assert_eq!(b.image_at, vec![None, None]);
    }

    #[test]
    fn the_placeholder_token_is_taken_out_of_the_embedded_ids() {
        let p = Prompt { ids: vec![1, 5, 9, 6], image_at: Some(2) };
        assert_eq!(p.text_ids(), vec![1, 5, 6]);
        let q = Prompt { ids: vec![1, 5], image_at: None };
        assert_eq!(q.text_ids(), vec![1, 5]);
    }

    #[test]
    fn template_substitution() {
        let p = PromptSpec {
            template: "User: {question}\nBot:".into(),
            padding: crate::manifest::PaddingSide::Left,
            image_placeholder: None,
            add_bos: true,
        };
        assert_eq!(p.render("why?"), "User: why?\nBot:");
    }
}
