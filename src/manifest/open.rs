//! The open manifest (issue 15): what lets a model made elsewhere -- a Hugging Face LLaVA
//! checkpoint, an onnxruntime-genai or Optimum folder -- be a variant beside the zoo's own.
//!
//! - `origin`: the zoo's exporter (absent, or `{kind: zoo}`) or an import, with its source,
//!   revision and config digest ([`Origin`]);
//! - the recipe axes only the zoo's training knows (`backbone.flavour`, `adapter`, `freeze`,
//!   `data`, `prompts`, `quantization`) are required of the zoo's own variants and optional for
//!   imports (`recipe`); backbone family and size are the zoo's typed values, or for imports any
//!   one-word name (`backbone`);
//! - the picture's place in the prompt: before BOS, or at an image placeholder in the template
//!   as in LLaVA's chat template (`prompt`);
//! - the decoder's cache tensors: names, and the one layout this runtime supports ([`KvCache`],
//!   `kv_cache`). (Whether the decoder takes `position_ids` is `model.position_ids`, checked
//!   with the decoder's declared inputs in `graphs`.)
//!
//! Every rule names its field in the error; docs/manifest.md documents them.

use std::path::Path;

use super::raw::{self, Backbone, KvLayout, KvUpdate, Open, RawAxes};
use super::{paths, tensors, yaml, Axes, ConnectorFamily, PromptSpec};
use crate::error::{Error, Result};

/// The validated `origin:`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Origin {
    /// Trained and exported by the zoo's exporter.
    #[default]
    Zoo,
    /// Converted from a model made elsewhere.
    Imported(Import),
}

/// Where an imported variant comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// A Hugging Face repository id or a folder's name.
    pub source: String,
    /// The source's revision, when known.
    pub revision: Option<String>,
    /// Lowercase hex sha256 of the source's configuration file.
    pub config_sha256: String,
}

impl Origin {
    /// `zoo` or `imported`, as written in YAML.
    pub fn kind(&self) -> &'static str {
        match self {
            Origin::Zoo => "zoo",
            Origin::Imported(_) => "imported",
        }
    }

    /// Whether the variant was imported.
    pub fn is_imported(&self) -> bool {
        matches!(self, Origin::Imported(_))
    }
}

/// The validated `model.kv_cache`: the cache tensors' name patterns and how a step updates them.
/// The layout is the one this runtime supports, (batch, kv_heads, seq, head_dim); `bsnh` is
/// refused when the manifest is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvCache {
    /// Input pattern, `{i}` the layer and `{kv}` `key` or `value`.
    pub past: String,
    /// Output pattern.
    pub present: String,
    /// `concat` (present = past + new, moved into the next past) or `shared_buffer` (one buffer
    /// per tensor, bound as past and present, appended in place).
    pub update: KvUpdate,
}

impl Default for KvCache {
    fn default() -> Self {
        KvCache {
            past: tensors::PAST_PATTERN.into(),
            present: tensors::PRESENT_PATTERN.into(),
            update: KvUpdate::Concat,
        }
    }
}

impl KvCache {
    /// `(past, present)` names for every layer below `layers` and `kv` of key, value, in that
    /// order: the output that becomes each input.
    pub fn names(&self, layers: usize) -> Vec<(String, String)> {
        (0..layers)
            .flat_map(|i| tensors::KV.map(|kv| (tensors::fill(&self.past, i, kv), tensors::fill(&self.present, i, kv))))
            .collect()
    }
}

/// `origin:`, absent meaning the zoo; an import names its source and its config's digest.
pub(super) fn origin(raw: Option<&raw::RawOrigin>, file: &Path) -> Result<Origin> {
    let bad = |field: &str, message: String| Error::manifest(file, field, message);
    let Some(o) = raw else { return Ok(Origin::Zoo) };
    match o.kind {
        raw::OriginKind::Zoo => {
            let extra = [
                ("origin.source", &o.source),
                ("origin.revision", &o.revision),
                ("origin.config_sha256", &o.config_sha256),
            ];
            if let Some((field, _)) = extra.into_iter().find(|(_, v)| v.is_some()) {
                return Err(bad(
                    field,
                    "only an imported variant (`origin.kind: imported`) records where it came from".into(),
                ));
            }
            Ok(Origin::Zoo)
        }
        raw::OriginKind::Imported => {
            let source = o.source.as_deref().unwrap_or_default();
            if source.trim().is_empty() || source.contains(['\n', '\r']) {
                return Err(bad(
                    "origin.source",
                    format!(
                        "`{}`: an imported variant names its source on one line (a Hugging Face repository id or a \
                         folder name)",
                        source.escape_debug()
                    ),
                ));
            }
            if let Some(r) = &o.revision {
                if r.trim().is_empty() || r.contains(['\n', '\r']) {
                    return Err(bad(
                        "origin.revision",
                        format!("`{}` must be one non-empty line, or null", r.escape_debug()),
                    ));
                }
            }
            let Some(sha) = &o.config_sha256 else {
                return Err(bad(
                    "origin.config_sha256",
                    "missing; an imported variant records the sha256 of its source's configuration file".into(),
                ));
            };
            let config_sha256 = paths::parse_sha256(sha, file, "origin.config_sha256")?;
            Ok(Origin::Imported(Import { source: source.to_string(), revision: o.revision.clone(), config_sha256 }))
        }
    }
}

/// `model.kv_cache`: two name patterns with `{i}` and `{kv}` once each, and the one layout this
/// runtime supports (the others are refused with the reason).
pub(super) fn kv_cache(raw: Option<&raw::RawKvCache>, file: &Path) -> Result<KvCache> {
    let bad = |field: &str, message: String| Error::manifest(file, field, message);
    let Some(raw) = raw else { return Ok(KvCache::default()) };
    if raw.layout != KvLayout::Bnsh {
        return Err(bad(
            "model.kv_cache.layout",
            format!(
                "`{}` is not supported: this runtime reads cache tensors as (batch, kv_heads, seq, head_dim), `bnsh` \
                 (Optimum's and onnxruntime-genai's layout); export the decoder with that layout",
                yaml::scalar(&raw.layout)
            ),
        ));
    }
    for (field, pattern) in [("model.kv_cache.past", &raw.past), ("model.kv_cache.present", &raw.present)] {
        let once = |marker: &str| pattern.matches(marker).count() == 1;
        let rest = pattern.replacen("{i}", "", 1).replacen("{kv}", "", 1);
        if !once("{i}") || !once("{kv}") || rest.contains(['{', '}']) || rest.trim().is_empty() {
            return Err(bad(
                field,
                format!(
                    "`{}` must hold `{{i}}` (the layer) and `{{kv}}` (`key` or `value`) once each, as `{}`",
                    pattern.escape_debug(),
                    if field.ends_with("past") { tensors::PAST_PATTERN } else { tensors::PRESENT_PATTERN }
                ),
            ));
        }
        if pattern.starts_with(tensors::CROSS_PREFIX) {
            return Err(bad(
                field,
                format!("`{pattern}` starts with `{}`, the cross-attention inputs' prefix", tensors::CROSS_PREFIX),
            ));
        }
    }
    if raw.past == raw.present {
        return Err(bad("model.kv_cache.present", format!("`{}` is the same pattern as `past`", raw.present)));
    }
    Ok(KvCache { past: raw.past.clone(), present: raw.present.clone(), update: raw.update })
}

/// `prompt:`: `{question}` once; an image placeholder once, only with a prefix connector.
pub(super) fn prompt(p: &raw::RawPrompt, axes: &Axes, file: &Path) -> Result<PromptSpec> {
    let bad = |field: &str, message: String| Error::manifest(file, field, message);
    if p.template.matches("{question}").count() != 1 {
        return Err(bad(
            "prompt.template",
            format!("`{}` must contain `{{question}}` exactly once", p.template.escape_debug()),
        ));
    }
    if let Some(ph) = &p.image_placeholder {
        if ph.trim().is_empty() || ph.contains(['{', '}']) {
            return Err(bad(
                "prompt.image_placeholder",
                format!("`{}` must be a token such as `<image>` (not empty, no braces)", ph.escape_debug()),
            ));
        }
        if axes.connector.family() != ConnectorFamily::Prefix {
            return Err(bad(
                "prompt.image_placeholder",
                format!(
                    "`{ph}` places visual tokens in the prompt, but connector kind `{}` puts none there; \
                     only `resampler` and `projector` variants have one",
                    yaml::scalar(&axes.connector.kind())
                ),
            ));
        }
        let n = p.template.matches(ph.as_str()).count();
        if n != 1 {
            return Err(bad(
                "prompt.template",
                format!(
                    "`{}` must contain the image placeholder `{ph}` exactly once, not {n} times",
                    p.template.escape_debug()
                ),
            ));
        }
    }
    Ok(PromptSpec {
        template: p.template.clone(),
        padding: p.padding,
        image_placeholder: p.image_placeholder.clone(),
        add_bos: p.add_bos,
    })
}

/// Letters, digits, `.`, `-`, `_`, 1 to 64 of them: the names an imported model may give its
/// backbone family and size.
fn open_name_ok(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// `axes.backbone`: the zoo's typed family and size (and a flavour) for its own variants; any
/// well-formed name for imported ones.
pub(super) fn backbone(b: &Backbone, origin: &Origin, file: &Path) -> Result<()> {
    let bad = |field: &str, message: String| Error::manifest(file, field, message);
    let known = |field: &str, value: &str, expected: &str| {
        bad(
            field,
            format!(
                "unknown value `{}`, expected {expected} (a zoo variant; an imported one, `origin: {{kind: imported}}`, \
                 may name its own)",
                value.escape_debug()
            ),
        )
    };
    for (field, other, expected) in [
        ("axes.backbone.family", matches!(b.family, Open::Other(_)).then(|| b.family.as_string()), "`llama` or `gpt2`"),
        ("axes.backbone.size", matches!(b.size, Open::Other(_)).then(|| b.size.as_string()), "`small` or `large`"),
    ] {
        let Some(name) = other else { continue };
        if !origin.is_imported() {
            return Err(known(field, &name, expected));
        }
        if !open_name_ok(&name) {
            return Err(bad(
                field,
                format!("`{}` must be 1 to 64 letters, digits, `.`, `-` or `_`", name.escape_debug()),
            ));
        }
    }
    Ok(())
}

/// The recipe axes: all present for the zoo's own variants; imports may leave any out.
pub(super) fn recipe(a: &RawAxes, origin: &Origin, file: &Path) -> Result<()> {
    if origin.is_imported() {
        return Ok(());
    }
    let missing = [
        ("axes.backbone.flavour", a.backbone.flavour.is_none()),
        ("axes.adapter", a.adapter.is_none()),
        ("axes.freeze", a.freeze.is_none()),
        ("axes.data", a.data.is_none()),
        ("axes.prompts", a.prompts.is_none()),
        ("axes.quantization", a.quantization.is_none()),
    ];
    match missing.into_iter().find(|(_, m)| *m) {
        Some((field, _)) => Err(Error::manifest(
            file,
            field,
            "missing; a zoo variant (no `origin`, or `origin: {kind: zoo}`) records its whole recipe \
             (only an imported one, `origin: {kind: imported, ...}`, may leave it out)",
        )),
        None => Ok(()),
    }
}
