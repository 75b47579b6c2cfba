//! An Optimum export: what `optimum-cli export onnx --model HF_DIR --task text-generation-with-past
//! OUT` (or `optimum.exporters.onnx.main_export`) writes for a decoder-only language model
//! (`config.json`, `generation_config.json`, `model.onnx` with its `model.onnx_data` past 2 GiB,
//! and the tokenizer files when transformers could load them).
//!
//! The graph takes `input_ids`, `attention_mask`, `position_ids` and `past_key_values.{i}.key` /
//! `.value` and returns `logits` and `present.{i}.key` / `.value` -- the contract's names (they are
//! Optimum's), but for the embedding, which [`super::graph::split_embedding`] moves into an `embed`
//! graph. Sizes come from `config.json` under transformers' names (GPT-2's `n_embd`, `n_layer`,
//! `n_head`, `n_positions` too). Refused, with the way out: the older two-graph and merged layouts
//! (`decoder_with_past_model.onnx`, `decoder_model_merged.onnx` with its `use_cache_branch`
//! input), a graph without the cache (`--task text-generation`), and a vision-language
//! configuration (`text_config`), which Optimum does not export.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{field_u32, Dims, GenerationDefaults, Layout, Source};
use crate::error::{Error, Result};
use crate::import::text::SpecialIds;

/// The configuration file of the layout.
pub const CONFIG: &str = "config.json";

/// The graph current Optimum writes for `text-generation-with-past`.
pub const MODEL: &str = "model.onnx";

/// Graph files of older Optimum layouts, each refused with the reason.
const OLDER: [(&str, &str); 3] = [
    (
        "decoder_model_merged.onnx",
        "the merged decoder of Optimum 1.x takes a `use_cache_branch` flag and holds both graphs in an `If`",
    ),
    ("decoder_with_past_model.onnx", "Optimum 1.x's two decoders (without and with the cache)"),
    ("decoder_model.onnx", "Optimum 1.x's decoder without the cache"),
];

/// The first of `keys` that `config` has, as a u32.
fn size(path: &Path, config: &Value, keys: &[&str]) -> Result<u32> {
    let key = keys.iter().find(|k| config.get(**k).is_some_and(|v| !v.is_null())).unwrap_or(&keys[0]);
    field_u32(path, config, "", key)
}

/// Reads `config.json` and `generation_config.json` of `folder`.
pub fn read(folder: &Path) -> Result<Source> {
    let path = folder.join(CONFIG);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io("reading", &path, e))?;
    let config: Value =
        serde_json::from_str(&text).map_err(|e| Error::import(&path, None, format!("is not valid JSON ({e})")))?;
    if config.get("text_config").is_some() || config.get("vision_config").is_some() {
        return Err(Error::import(
            &path,
            Some("text_config"),
            "a vision-language configuration: Optimum exports decoder-only language models (it refuses LLaVA: \
             \"unsupported architecture\"); import a LLaVA checkpoint with `python -m lynx_export import hf` \
             (docs/import.md)",
        ));
    }
    let model = folder.join(MODEL);
    if !model.is_file() {
        let older = OLDER.iter().find(|(f, _)| folder.join(f).is_file());
        let why = older.map_or_else(|| format!("no `{MODEL}` in the folder"), |(file, why)| format!("`{file}`: {why}"));
        return Err(Error::import(
            folder,
            None,
            format!(
                "{why}; export again with a current Optimum (optimum-onnx): `optimum-cli export onnx --model HF_DIR \
                 --task text-generation-with-past OUT` writes one `{MODEL}` with the cache"
            ),
        ));
    }
    let hidden = size(&path, &config, &["hidden_size", "n_embd", "d_model"])?;
    let heads = size(&path, &config, &["num_attention_heads", "n_head"])?;
    let kv_heads = match config.get("num_key_value_heads") {
        Some(v) if !v.is_null() => field_u32(&path, &config, "", "num_key_value_heads")?,
        _ => heads,
    };
    let head_dim = match config.get("head_dim") {
        Some(v) if !v.is_null() => field_u32(&path, &config, "", "head_dim")?,
        _ => hidden / heads.max(1),
    };
    let dims = Dims {
        hidden,
        layers: size(&path, &config, &["num_hidden_layers", "n_layer"])?,
        heads,
        kv_heads,
        head_dim,
        vocab: size(&path, &config, &["vocab_size"])?,
        max_positions: size(&path, &config, &["max_position_embeddings", "n_positions"])?,
    };
    let family = config.get("model_type").and_then(Value::as_str).map(str::to_string).ok_or_else(|| {
        Error::import(
            &path,
            Some("model_type"),
            "missing: expected the transformers model type (`llama`, `qwen2`, ...)",
        )
    })?;

    let mut files = vec![path.clone()];
    let gen_path = folder.join("generation_config.json");
    let generation_doc = if gen_path.is_file() {
        files.push(gen_path.clone());
        let text = std::fs::read_to_string(&gen_path).map_err(|e| Error::io("reading", &gen_path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::import(&gen_path, None, format!("is not valid JSON ({e})")))?
    } else {
        Value::Null
    };
    // generate's ids: generation_config.json first, config.json where it is silent.
    let ids = |key: &str| -> Vec<i64> {
        let pick = |doc: &Value| match doc.get(key) {
            Some(Value::Number(n)) => n.as_i64().into_iter().collect(),
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_i64).collect(),
            _ => Vec::new(),
        };
        let first = pick(&generation_doc);
        if first.is_empty() {
            pick(&config)
        } else {
            first
        }
    };
    let specials = SpecialIds {
        bos: ids("bos_token_id").first().copied(),
        eos: ids("eos_token_id"),
        pad: ids("pad_token_id").first().copied(),
        source: if gen_path.is_file() { gen_path.clone() } else { path.clone() },
    };
    let mut notes = Vec::new();
    let generation = GenerationDefaults::from_json(&generation_doc, &gen_path, "", &mut notes)?;
    Ok(Source {
        layout: Layout::Optimum,
        config: path,
        family,
        decoder: model,
        dims,
        past: crate::manifest::tensors::PAST_PATTERN.to_string(),
        present: crate::manifest::tensors::PRESENT_PATTERN.to_string(),
        specials,
        generation,
        files,
        notes,
        padded_batches: true,
        update: crate::manifest::KvUpdate::Concat,
    })
}

/// Whether `folder` looks like an Optimum export: `config.json` beside an ONNX decoder.
pub fn detect(folder: &Path) -> Option<PathBuf> {
    let config = folder.join(CONFIG);
    let graph = std::iter::once(MODEL).chain(OLDER.iter().map(|(f, _)| *f)).any(|f| folder.join(f).is_file());
    (config.is_file() && graph).then_some(config)
}
