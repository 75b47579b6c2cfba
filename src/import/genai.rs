//! An onnxruntime-genai folder: what `python -m onnxruntime_genai.models.builder -i HF_DIR -o DIR
//! -p fp32|int4 -e cpu` writes (`genai_config.json`, the decoder `model.onnx` with its
//! `model.onnx.data`, `tokenizer.json`, `tokenizer_config.json`, the chat template).
//!
//! `genai_config.json` (onnxruntime-genai's `config.h`) gives the decoder's file, sizes and tensor
//! names (`model.decoder.inputs` / `outputs`, the cache names as printf patterns
//! `past_key_values.%d.key`), the special token ids (`model.bos_token_id`, `eos_token_id`,
//! `pad_token_id`), the context (`model.context_length`) and the decoding defaults (`search`).
//!
//! Its decoder runs GroupQueryAttention with the rotary embedding inside and no `position_ids`
//! input (`model.position_ids: derived`). onnxruntime-genai hands it one buffer as past and present
//! (`search.past_present_share_buffer`, its default), and so does lynx-zoo then
//! (`model.kv_cache.update: shared_buffer`): the operator appends each step in place. Without it,
//! given two tensors, the operator writes past + new into present (present = past + seq, the
//! `concat` update the runtime moves into the next step's past). It
//! reads the attention mask as right padding (`seqlens_k`, the mask's row sums), so left-padded
//! batches do not answer as single questions do: over a shared buffer, with each row read at its
//! own last position (the importer puts the output head there), the manifest says
//! `prompt.padding: right`, else `none`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{field_str, field_u32, Dims, GenerationDefaults, Layout, Source};
use crate::error::{Error, Result};
use crate::import::text::SpecialIds;
use crate::manifest::KvUpdate;

/// The configuration file of the layout.
pub const CONFIG: &str = "genai_config.json";

/// Sections of `model` that make a multimodal pipeline (vision, speech, their embedding graph).
const PIPELINE_SECTIONS: [&str; 3] = ["vision", "embedding", "speech"];

/// A printf cache name pair (`past_key_values.%d.key`, `past_key_values.%d.value`) as the
/// manifest's pattern (`past_key_values.{i}.{kv}`), when the two differ only in `key` / `value`.
pub fn kv_pattern(key: &str, value: &str) -> Option<String> {
    let (key, value) = (key.replace("%d", "{i}"), value.replace("%d", "{i}"));
    key.match_indices("key").map(|(at, _)| format!("{}{{kv}}{}", &key[..at], &key[at + 3..])).find(|p| {
        p.replace("{kv}", "value") == value && p.matches("{i}").count() == 1 && p.matches("{kv}").count() == 1
    })
}

/// Reads `genai_config.json` of `folder`.
pub fn read(folder: &Path) -> Result<Source> {
    let path = folder.join(CONFIG);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io("reading", &path, e))?;
    let doc: Value =
        serde_json::from_str(&text).map_err(|e| Error::import(&path, None, format!("is not valid JSON ({e})")))?;
    let model = doc.get("model").cloned().unwrap_or(Value::Null);
    for section in PIPELINE_SECTIONS {
        if model.get(section).is_some() {
            return Err(Error::import(
                &path,
                Some(&format!("model.{section}")),
                "a multimodal onnxruntime-genai pipeline (Phi-3-vision, Phi-4-multimodal, Qwen2.5-VL, Gemma 3): its \
                 vision graph takes the model's own extra inputs (image sizes, grids) and its embedding graph merges \
                 the image features into the text itself, where the runtime's vision -> connector -> embed graphs \
                 keep them apart; the text decoder alone imports (a genai_config.json without `model.vision`, \
                 `model.embedding` and `model.speech`), a LLaVA checkpoint imports with \
                 `python -m lynx_export import hf` (docs/import.md)",
            ));
        }
    }
    let decoder = model.get("decoder").cloned().unwrap_or(Value::Null);
    if decoder.get("pipeline").is_some() {
        return Err(Error::import(
            &path,
            Some("model.decoder.pipeline"),
            "a decoder split over several graphs; the runtime runs one decoder graph",
        ));
    }
    let filename = field_str(&path, &decoder, "model.decoder", "filename")?;
    let u = |v: &Value, section: &str, name: &str| field_u32(&path, v, section, name);
    let hidden = u(&decoder, "model.decoder", "hidden_size")?;
    let heads = u(&decoder, "model.decoder", "num_attention_heads")?;
    let dims = Dims {
        hidden,
        layers: u(&decoder, "model.decoder", "num_hidden_layers")?,
        heads,
        kv_heads: u(&decoder, "model.decoder", "num_key_value_heads")?,
        head_dim: u(&decoder, "model.decoder", "head_size")?,
        vocab: u(&model, "model", "vocab_size")?,
        max_positions: u(&model, "model", "context_length")?,
    };
    let family = field_str(&path, &model, "model", "type")?;

    // Tensor names: the contract's, but for the cache patterns.
    let names = |section: &str| decoder.get(section).cloned().unwrap_or(Value::Null);
    let (inputs, outputs) = (names("inputs"), names("outputs"));
    let name = |v: &Value, section: &str, key: &str| -> Result<Option<String>> {
        match v.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(Error::import(
                &path,
                Some(&format!("model.decoder.{section}.{key}")),
                format!("`{other}`: expected a tensor name"),
            )),
        }
    };
    for (v, section, key, want) in [
        (&inputs, "inputs", "input_ids", "input_ids"),
        (&inputs, "inputs", "inputs_embeds", "inputs_embeds"),
        (&inputs, "inputs", "attention_mask", "attention_mask"),
        (&inputs, "inputs", "position_ids", "position_ids"),
        (&outputs, "outputs", "logits", "logits"),
    ] {
        if let Some(got) = name(v, section, key)? {
            if got != want {
                return Err(Error::import(
                    &path,
                    Some(&format!("model.decoder.{section}.{key}")),
                    format!("`{got}`: the runtime feeds and reads the tensor as `{want}` (docs/contract.md section 2)"),
                ));
            }
        }
    }
    let pattern = |sect: &str, key: &str, value: &str, default_key: &str, default_value: &str| -> Result<String> {
        let section = if sect == "inputs" { &inputs } else { &outputs };
        let k = name(section, sect, key)?.unwrap_or_else(|| default_key.to_string());
        let v = name(section, sect, value)?.unwrap_or_else(|| default_value.to_string());
        kv_pattern(&k, &v).ok_or_else(|| {
            Error::import(
                &path,
                Some(&format!("model.decoder.{sect}.{key}")),
                format!("`{k}` and `{v}`: expected two names that differ only in `key` / `value`, each with one `%d`"),
            )
        })
    };
    let past =
        pattern("inputs", "past_key_names", "past_value_names", "past_key_values.%d.key", "past_key_values.%d.value")?;
    let present = pattern("outputs", "present_key_names", "present_value_names", "present.%d.key", "present.%d.value")?;

    let ids = |key: &str| -> Result<Vec<i64>> {
        match model.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Number(n)) => Ok(n.as_i64().into_iter().collect()),
            Some(Value::Array(list)) => Ok(list.iter().filter_map(Value::as_i64).collect()),
            Some(other) => {
                Err(Error::import(&path, Some(&format!("model.{key}")), format!("`{other}`: expected a token id")))
            }
        }
    };
    let specials = SpecialIds {
        bos: ids("bos_token_id")?.first().copied(),
        eos: ids("eos_token_id")?,
        pad: ids("pad_token_id")?.first().copied(),
        source: path.clone(),
    };

    let search = doc.get("search").cloned().unwrap_or(Value::Null);
    let mut notes = Vec::new();
    // onnxruntime-genai runs the decoder with one buffer as past and present when this is set (its
    // default on CPU); lynx-zoo then does the same (`model.kv_cache.update: shared_buffer`)
    let update = match search.get("past_present_share_buffer").and_then(Value::as_bool) {
        Some(true) => KvUpdate::SharedBuffer,
        _ => KvUpdate::Concat,
    };
    let generation = GenerationDefaults::from_json(&search, &path, "search", &mut notes)?;
    Ok(Source {
        layout: Layout::Genai,
        config: path.clone(),
        family,
        decoder: folder.join(&filename),
        dims,
        past,
        present,
        specials,
        generation,
        files: vec![path],
        notes,
        padded_batches: false,
        update,
    })
}

/// Whether `folder` looks like an onnxruntime-genai folder.
pub fn detect(folder: &Path) -> Option<PathBuf> {
    let path = folder.join(CONFIG);
    path.is_file().then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printf_cache_names_become_patterns() {
        assert_eq!(
            kv_pattern("past_key_values.%d.key", "past_key_values.%d.value").as_deref(),
            Some("past_key_values.{i}.{kv}")
        );
        assert_eq!(kv_pattern("present.%d.key", "present.%d.value").as_deref(), Some("present.{i}.{kv}"));
        assert_eq!(kv_pattern("past_key_%d", "past_value_%d").as_deref(), Some("past_{kv}_{i}"));
        assert_eq!(kv_pattern("k.%d", "v.%d"), None);
        assert_eq!(kv_pattern("past.key", "past.value"), None);
    }
}
