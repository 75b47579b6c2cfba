//! The tensor names of the graphs' interface (docs/contract.md section 2), in one table.
//!
//! The runtime matches graphs to each other by these names: the vision encoder's `image_features`
//! feed the connector, a prefix connector's `visual_embeds` or a cross-attention connector's
//! `cross_key_values.*` feed the decoder, whose `present.*` outputs become the next step's
//! `past_key_values.*` inputs. The exporter names its graphs from its own table
//! (export/lynx_export/graphs.py `TENSOR_NAMES`); docs/tensor-names.json, written from this table
//! by [`json`] and kept current by a test, is what the exporter's tests compare theirs with.

/// Vision input: (B*F, 3, S, S) pixels.
pub const PIXEL_VALUES: &str = "pixel_values";
/// Vision output, connector input: (B*F, P, Dv) or (B, F, P, Dv).
pub const IMAGE_FEATURES: &str = "image_features";
/// A prefix connector's output: (B, V, D) visual tokens.
pub const VISUAL_EMBEDS: &str = "visual_embeds";
/// Embedding input: (B, L) token ids.
pub const INPUT_IDS: &str = "input_ids";
/// Embedding output, decoder input: (B, L, D).
pub const INPUTS_EMBEDS: &str = "inputs_embeds";
/// Decoder input: (B, T) 1 for real positions, 0 for padding.
pub const ATTENTION_MASK: &str = "attention_mask";
/// Decoder input: (B, L) positions of the new tokens.
pub const POSITION_IDS: &str = "position_ids";
/// Decoder output: (B, L, vocab).
pub const LOGITS: &str = "logits";

/// Prefix of the decoder's cache inputs, `past_key_values.{layer}.{key|value}`.
pub const PAST_PREFIX: &str = "past_key_values.";
/// Prefix of the decoder's cache outputs, `present.{layer}.{key|value}`.
pub const PRESENT_PREFIX: &str = "present.";
/// Prefix of a cross-attention connector's outputs and the decoder's matching inputs,
/// `cross_key_values.{block}.{key|value}`.
pub const CROSS_PREFIX: &str = "cross_key_values.";
/// The two halves of each cached pair, in order.
pub const KV: [&str; 2] = ["key", "value"];
/// The default pattern of the cache inputs (`model.kv_cache.past`): `{i}` the layer, `{kv}` one
/// of [`KV`]. Optimum's and onnxruntime-genai's name.
pub const PAST_PATTERN: &str = "past_key_values.{i}.{kv}";
/// The default pattern of the cache outputs (`model.kv_cache.present`).
pub const PRESENT_PATTERN: &str = "present.{i}.{kv}";

/// `pattern` with `{i}` and `{kv}` filled in.
pub fn fill(pattern: &str, layer: usize, kv: &str) -> String {
    pattern.replacen("{i}", &layer.to_string(), 1).replacen("{kv}", kv, 1)
}

/// `past_key_values.{layer}.{kv}`.
pub fn past(layer: usize, kv: &str) -> String {
    format!("{PAST_PREFIX}{layer}.{kv}")
}

/// `present.{layer}.{kv}`.
pub fn present(layer: usize, kv: &str) -> String {
    format!("{PRESENT_PREFIX}{layer}.{kv}")
}

/// `cross_key_values.{block}.{kv}`.
pub fn cross(block: usize, kv: &str) -> String {
    format!("{CROSS_PREFIX}{block}.{kv}")
}

/// The table as JSON (docs/tensor-names.json): each fixed name by its role, and the cache and
/// cross-attention names as patterns with `{i}` (layer or block) and `{kv}` (one of `kv`).
pub fn json() -> String {
    let table = serde_json::json!({
        "pixel_values": PIXEL_VALUES,
        "image_features": IMAGE_FEATURES,
        "visual_embeds": VISUAL_EMBEDS,
        "input_ids": INPUT_IDS,
        "inputs_embeds": INPUTS_EMBEDS,
        "attention_mask": ATTENTION_MASK,
        "position_ids": POSITION_IDS,
        "logits": LOGITS,
        "past": PAST_PATTERN,
        "present": PRESENT_PATTERN,
        "cross": format!("{CROSS_PREFIX}{{i}}.{{kv}}"),
        "kv": KV,
    });
    let mut text = serde_json::to_string_pretty(&table).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn names_follow_their_patterns() {
        assert_eq!(past(1, KV[0]), "past_key_values.1.key");
        assert_eq!(present(0, KV[1]), "present.0.value");
        assert_eq!(cross(2, "key"), "cross_key_values.2.key");
        assert!(past(3, "value").starts_with(PAST_PREFIX) && cross(0, "key").starts_with(CROSS_PREFIX));
        assert_eq!(fill(PAST_PATTERN, 3, "value"), past(3, "value"));
        assert_eq!(fill(PRESENT_PATTERN, 12, "key"), present(12, "key"));
        assert_eq!(fill("model.layers.{i}.past.{kv}", 0, "key"), "model.layers.0.past.key");
    }

    #[test]
    fn the_committed_tensor_names_are_the_table() {
        // Regenerate with `LYNX_BLESS=1 cargo test --release --lib tensor_names`.
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/tensor-names.json");
        let generated = json();
        if std::env::var_os("LYNX_BLESS").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(generated.contains("\"past_key_values.{i}.{kv}\""), "{generated}");
        assert!(
            committed == generated,
            "docs/tensor-names.json is stale: run `LYNX_BLESS=1 cargo test --release --lib tensor_names`"
        );
    }
}
