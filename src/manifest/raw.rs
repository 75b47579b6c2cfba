//! The serde mirror of `variants/NAME.yaml`: one struct per YAML mapping, field for field.
//!
//! This layer only parses. Cross-field rules (a cross-attention variant has cross-attention layers,
//! a variant without vision has no vision graph, paths stay inside the zoo, ...) live in the `TryFrom`
//! conversion to [`super::Manifest`] (the two-layer config of candle's `LlamaConfig` ->
//! `into_config`). Unknown keys are errors (`deny_unknown_fields`), so a typo in a manifest is
//! reported with its field path instead of being silently ignored; only `provenance` is open,
//! since it records whatever the exporter found worth recording.
//!
//! A manifest comes from the zoo's own exporter (no `origin`, or `origin: {kind: zoo}`) or from an
//! importer that turned someone else's model into a variant (`origin: {kind: imported, ...}`).
//! The second kind may leave out what only the zoo's recipe knows (adapter, freeze, data, prompts,
//! quantisation, flavour) and may name any backbone family and size; `TryFrom` holds zoo manifests
//! to the full, typed recipe.
//!
//! Every field is documented in docs/manifest.md.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ConnectorFamily;
use crate::generate::Strategy;

/// The whole manifest file.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawManifest {
    /// Schema version; this runtime reads version 1.
    pub schema_version: u32,
    /// Variant name; must equal the file stem.
    pub name: String,
    /// One-line description.
    #[serde(default)]
    pub description: String,
    /// Where the variant comes from: the zoo's exporter (the default when absent) or an importer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<RawOrigin>,
    /// The design choices this variant makes.
    pub axes: RawAxes,
    /// The one axis changed from the baseline (`null` for the baseline itself).
    #[serde(default)]
    pub changes: Option<String>,
    /// What the Lynx paper reports for this axis.
    #[serde(default)]
    pub paper: Option<String>,
    /// Which way the Lynx paper found this variant against the baseline, where it reports a
    /// direction: what `report`'s findings table holds the measured verdict to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paper_finding: Option<PaperFinding>,
    /// The variant this one repeats with another training seed (`provenance.seed`); comparisons
    /// fold the two into one row with the spread over seeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_of: Option<String>,
    /// Dimensions of the exported model.
    pub model: RawModel,
    /// The ONNX graphs.
    pub graphs: RawGraphs,
    /// Image preprocessing (absent without vision, `vision_input: none`).
    #[serde(default)]
    pub preprocess: Option<RawPreprocess>,
    /// Video frame sampling (absent without vision, `vision_input: none`).
    #[serde(default)]
    pub video: Option<RawVideo>,
    /// The tokenizer.
    pub tokenizer: RawTokenizer,
    /// The prompt template.
    pub prompt: RawPrompt,
    /// Default decoding settings.
    pub generation: RawGeneration,
    /// Parameter counts.
    pub parameters: RawParameters,
    /// How the variant was trained and exported.
    #[serde(default)]
    pub provenance: RawProvenance,
    /// Reference outputs for the parity test.
    #[serde(default)]
    pub goldens: Option<RawFile>,
}

/// `origin:` -- who made the variant. Absent means `{kind: zoo}`. A mapping rather than a tagged
/// enum so that every error names its field (`origin.kind`, `origin.config_sha256`); which keys
/// go with which kind is checked when the manifest is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawOrigin {
    /// `zoo` or `imported`.
    pub kind: OriginKind,
    /// Imported only: what it was imported from, a Hugging Face repository id
    /// (`llava-hf/llava-1.5-7b-hf`) or the folder's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Imported only: the source's revision (a commit, tag or version); null or absent when
    /// unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Imported only (and required there): lowercase hex sha256 of the source's configuration file
    /// (`config.json`, `genai_config.json`), as read when importing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_sha256: Option<String>,
}

impl RawOrigin {
    /// `origin: {kind: zoo}`, what an absent `origin` means.
    pub const ZOO: RawOrigin = RawOrigin { kind: OriginKind::Zoo, source: None, revision: None, config_sha256: None };
}

/// `origin.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OriginKind {
    /// Trained and exported by the zoo's exporter (export/): every recipe axis is recorded, with
    /// the zoo's typed values.
    Zoo,
    /// Converted from a model made elsewhere (a Hugging Face checkpoint, an onnxruntime-genai or
    /// Optimum folder): `source` and `config_sha256` are required, and the recipe axes the source
    /// does not record may be absent.
    Imported,
}

/// `axes:` -- the variant's position in the ablation grid.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAxes {
    /// LLM backbone.
    pub backbone: Backbone,
    /// How vision reaches the LLM.
    pub connector: RawConnector,
    /// `k` for cross-attention every k-th layer, else null.
    #[serde(default)]
    pub cross_attention_every: Option<u32>,
    /// Adapters inside the LLM (recipe: required for the zoo's own variants, optional for
    /// imported ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<RawAdapter>,
    /// What stayed frozen in training (recipe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freeze: Option<Freeze>,
    /// Input image side in pixels (null without vision, `vision_input: none`).
    #[serde(default)]
    pub resolution: Option<u32>,
    /// Visual tokens handed to the LLM (prefix length, or cross-attention memory length).
    #[serde(default)]
    pub visual_tokens: Option<u32>,
    /// Video frames per sample (null without vision, `vision_input: none`).
    #[serde(default)]
    pub frames: Option<u32>,
    /// Whether a learned frame-position embedding is added before resampling (null without vision,
    /// `vision_input: none`).
    #[serde(default)]
    pub frame_positions: Option<bool>,
    /// Training data recipe (recipe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataRecipe>,
    /// Prompt recipe (recipe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompts: Option<PromptRecipe>,
    /// Quantisation applied at export (recipe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<Quantization>,
    /// What the model sees of the picture: `picture`, `blank` (the matched blind control) or `none`
    /// (no vision at all); the older `true` / `false` read as `picture` / `none`.
    pub vision_input: RawVisionInput,
}

/// `paper_finding`: the direction of a variant's accuracy against the baseline's that the Lynx
/// paper reports for its axis (absent where the paper reports none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaperFinding {
    /// The variant does better than the baseline.
    Better,
    /// The variant does worse.
    Worse,
    /// The variant does no better ("matches or beats", "no clear gain"): only a significant gain
    /// contradicts it, and only a significant loss shows it.
    NotBetter,
    /// The variant does no worse: the mirror of `not_better`.
    NotWorse,
}

impl PaperFinding {
    /// The value as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            PaperFinding::Better => "better",
            PaperFinding::Worse => "worse",
            PaperFinding::NotBetter => "not_better",
            PaperFinding::NotWorse => "not_worse",
        }
    }
}

/// `axes.vision_input`: what a variant sees of the picture it is handed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VisionInput {
    /// The picture itself.
    #[default]
    Picture,
    /// The matched blind control: the vision and connector graphs run as for `picture`, but every
    /// image and video frame is replaced by the blank picture (every pixel (255, 255, 255), at the
    /// preprocess size) before the vision graph runs.
    #[schemars(extend("x-blank-rgb" = VisionInput::BLANK_RGB))]
    Blank,
    /// No vision graph and no connector: a text-only model (connector kind `none`).
    None,
}

impl VisionInput {
    /// The colour of every pixel of the blank picture a `blank` variant sees: white, the benchmark
    /// pictures' background. One definition for runtime and exporter: the generated schema
    /// (docs/manifest.schema.json) carries it as `x-blank-rgb` of `blank`, for the exporter to read.
    pub const BLANK_RGB: [u8; 3] = [255, 255, 255];

    /// Every value, in the order the docs list them.
    pub const ALL: [VisionInput; 3] = [VisionInput::Picture, VisionInput::Blank, VisionInput::None];

    /// The value as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            VisionInput::Picture => "picture",
            VisionInput::Blank => "blank",
            VisionInput::None => "none",
        }
    }

    /// Whether the variant has vision and connector graphs (and preprocessing): `picture` and
    /// `blank`.
    pub fn has_vision(self) -> bool {
        !matches!(self, VisionInput::None)
    }

    /// Whether the answer can depend on the picture: `picture` only. `blank` and `none` are blind
    /// controls.
    pub fn sees(self) -> bool {
        matches!(self, VisionInput::Picture)
    }

    /// What the variant sees, for people: `the picture`, `a blank picture`, `no picture`.
    pub fn describe(self) -> &'static str {
        match self {
            VisionInput::Picture => "the picture",
            VisionInput::Blank => "a blank picture",
            VisionInput::None => "no picture",
        }
    }
}

impl std::fmt::Display for VisionInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `axes.vision_input` as written: `picture`, `blank` or `none`, or the schema's older boolean
/// (`true`: `picture`, `false`: `none`), kept as written so that `show` prints the file's own value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum RawVisionInput {
    /// `picture`, `blank` or `none`.
    Named(VisionInput),
    /// The older boolean: `true` is `picture`, `false` is `none`.
    Flag(bool),
}

impl RawVisionInput {
    /// The value it stands for.
    pub fn value(self) -> VisionInput {
        match self {
            RawVisionInput::Named(v) => v,
            RawVisionInput::Flag(true) => VisionInput::Picture,
            RawVisionInput::Flag(false) => VisionInput::None,
        }
    }
}

impl From<VisionInput> for RawVisionInput {
    fn from(v: VisionInput) -> Self {
        RawVisionInput::Named(v)
    }
}

/// Hand-written rather than `untagged`, whose error ("did not match any variant") names neither
/// the value nor the expected ones.
impl<'de> Deserialize<'de> for RawVisionInput {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawVisionInput;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("`picture`, `blank` or `none` (or the older `true` = picture, `false` = none)")
            }

            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<RawVisionInput, E> {
                Ok(RawVisionInput::Flag(v))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawVisionInput, E> {
                match VisionInput::ALL.into_iter().find(|k| k.as_str() == v) {
                    Some(k) => Ok(RawVisionInput::Named(k)),
                    None => Err(E::custom(format_args!(
                        "unknown value `{}`, expected `picture`, `blank` or `none` (or the older `true` = picture, `false` = none)",
                        v.escape_debug()
                    ))),
                }
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// `axes.backbone`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Backbone {
    /// Decoder family: `llama` or `gpt2` for the zoo's own variants; an imported model may name
    /// its own (`qwen2`, `mistral`).
    pub family: Open<BackboneFamily>,
    /// Pretrained only, or also tuned on text instructions (recipe: optional for imported models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavour: Option<BackboneFlavour>,
    /// Size class: `small` or `large` for the zoo's own variants; an imported model may name its
    /// own (`0.5b`, `7b`).
    pub size: Open<BackboneSize>,
}

/// A value of one of the zoo's enums, or any other name (an imported model's backbone family or
/// size). Reading tries the enum first, so `llama` is always the zoo's value; another name is
/// allowed for imported variants only (`origin: {kind: imported}`), a rule checked when the
/// manifest is read, whose error names the field and the zoo's values.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, JsonSchema)]
#[serde(untagged)]
#[schemars(rename = "Open{T}")]
pub enum Open<T> {
    /// One of the zoo's values.
    Known(T),
    /// Another name (letters, digits, `.`, `-`, `_`; imported models only).
    Other(String),
}

impl<T: Serialize> Open<T> {
    /// The value as written in YAML.
    pub fn as_string(&self) -> String {
        match self {
            Open::Known(t) => super::yaml::scalar(t),
            Open::Other(s) => s.clone(),
        }
    }

    /// The zoo's value, if it is one.
    pub fn known(&self) -> Option<&T> {
        match self {
            Open::Known(t) => Some(t),
            Open::Other(_) => None,
        }
    }
}

impl<T: Serialize> std::fmt::Display for Open<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_string())
    }
}

impl<T> From<T> for Open<T> {
    fn from(t: T) -> Self {
        Open::Known(t)
    }
}

/// A string: the enum's value when it names one, else [`Open::Other`] (hand-written: `untagged`
/// would report neither the value nor the expected ones).
impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Open<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::IntoDeserializer;
        let name = String::deserialize(deserializer)?;
        let as_enum: serde::de::value::StrDeserializer<'_, serde::de::value::Error> = name.as_str().into_deserializer();
        Ok(match T::deserialize(as_enum) {
            Ok(t) => Open::Known(t),
            Err(_) => Open::Other(name),
        })
    }
}

/// Decoder family: LLaMA-style (RMSNorm, RoPE, SwiGLU) or GPT-2-style.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BackboneFamily {
    /// RMSNorm, rotary positions, SwiGLU.
    Llama,
    /// LayerNorm, learned positions, GELU.
    Gpt2,
}

/// Backbone flavour: the LLaMA-vs-Vicuna analogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BackboneFlavour {
    /// Language-model pretraining only.
    Base,
    /// Further tuned on text instructions.
    Chat,
}

/// Backbone size class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BackboneSize {
    /// The default backbone.
    Small,
    /// The larger backbone.
    Large,
}

/// `axes.connector`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConnector {
    /// Connector kind.
    pub kind: ConnectorKind,
    /// Resampler depth (resampler only).
    #[serde(default)]
    pub depth: Option<u32>,
    /// Resampler latents (resampler only).
    #[serde(default)]
    pub latents: Option<u32>,
}

// The runtime knows a kind only by its family: a kind of an existing family is one variant here and
// its arm in `family` (docs/architecture.md, "Adding a connector kind").
/// How vision reaches the LLM; `x-placement`: how its output enters the decoder (prefix tokens,
/// cross-attention, or none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorKind {
    /// Perceiver resampler -> visual prefix tokens (Lynx).
    Resampler,
    /// Linear / MLP projector -> visual prefix tokens (LLaVA).
    Projector,
    /// Gated cross-attention layers attend to the vision memory (Flamingo).
    CrossAttention,
    /// No connector: no vision at all (`vision_input: none`).
    None,
}

impl ConnectorKind {
    /// How the kind's output enters the decoder; the generated schema carries it as `x-placement`,
    /// and the exporter's tests hold its `connectors` registry to it.
    pub fn family(self) -> ConnectorFamily {
        match self {
            ConnectorKind::Resampler | ConnectorKind::Projector => ConnectorFamily::Prefix,
            ConnectorKind::CrossAttention => ConnectorFamily::CrossAttention,
            ConnectorKind::None => ConnectorFamily::Blind,
        }
    }
}

/// `axes.adapter`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAdapter {
    /// Adapter kind.
    pub kind: AdapterKind,
    /// Every how many layers (Lynx `adapter_freq`).
    #[serde(default)]
    pub every: Option<u32>,
    /// Bottleneck width.
    #[serde(default)]
    pub dim: Option<u32>,
    /// LoRA rank.
    #[serde(default)]
    pub rank: Option<u32>,
}

/// Adapter kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AdapterKind {
    /// No adapters.
    None,
    /// Bottleneck adapters (Lynx).
    Bottleneck,
    /// Low-rank adaptation.
    Lora,
}

/// `axes.freeze`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Freeze {
    /// Vision encoder policy.
    pub vision: VisionFreeze,
    /// LLM policy.
    pub llm: LlmFreeze,
}

/// What of the vision encoder trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VisionFreeze {
    /// Nothing.
    Frozen,
    /// The last block.
    LastBlock,
    /// Everything.
    Trained,
}

/// What of the LLM trained (adapters always train when present).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LlmFreeze {
    /// Backbone weights frozen.
    Frozen,
    /// Full fine-tuning.
    Trained,
}

/// `axes.data`: the training data recipe.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataRecipe {
    /// Alignment-stage captions.
    pub alignment: AlignmentData,
    /// Fraction of the instruction data used.
    pub fraction: f64,
    /// Whether video tasks were in the instruction data.
    pub video: bool,
    /// Whether text-only instruction data was mixed in.
    pub text_instructions: bool,
    /// Task sampling during instruction tuning.
    pub sampling: TaskSampling,
}

/// Alignment-stage data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlignmentData {
    /// Clean captions.
    Clean,
    /// Captions with injected noise (the data-quality ablation).
    Noisy,
    /// No alignment stage.
    None,
}

/// Task sampling during instruction tuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskSampling {
    /// Tasks sampled in proportion to their size (capped).
    SizeBalanced,
    /// Every task equally likely.
    Uniform,
}

/// Prompt recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PromptRecipe {
    /// Diversified prompt templates.
    Diverse,
    /// One template.
    Single,
}

/// Quantisation at export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Quantization {
    /// Float32 throughout.
    None,
    /// Dynamic int8 quantisation of the weights.
    Int8Dynamic,
}

/// `model:` -- dimensions of the exported model.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    /// Decoder width.
    pub hidden: u32,
    /// Decoder layers.
    pub layers: u32,
    /// Attention heads.
    pub heads: u32,
    /// Key/value heads (grouped-query attention when fewer than `heads`).
    pub kv_heads: u32,
    /// Width of one head.
    pub head_dim: u32,
    /// Vocabulary size (the width of `logits`).
    pub vocab_size: u32,
    /// Context length: the most positions one sequence may hold.
    pub max_positions: u32,
    /// Decoder layers that cross-attend to the vision memory.
    #[serde(default)]
    pub cross_attention_layers: Vec<u32>,
    /// Vision feature width (absent without vision, `vision_input: none`).
    #[serde(default)]
    pub vision_dim: Option<u32>,
    /// Patches per frame (absent without vision, `vision_input: none`).
    #[serde(default)]
    pub patches: Option<u32>,
    /// Whether the decoder takes `position_ids` (`input`, the default) or derives positions from
    /// `attention_mask` itself (`derived`: no such input, as some onnxruntime-genai and Optimum
    /// exports).
    #[serde(default, skip_serializing_if = "PositionIds::is_input")]
    pub position_ids: PositionIds,
    /// The decoder's KV-cache tensors (absent: `past_key_values.{i}.{kv}` in, `present.{i}.{kv}`
    /// out, (batch, kv_heads, seq, head_dim), present = past + new).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_cache: Option<RawKvCache>,
}

/// `model.position_ids`: how the decoder learns each token's position.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PositionIds {
    /// The decoder takes `position_ids` (batch, seq) int64; the runtime passes
    /// `cumsum(attention_mask) - 1` (clamped at 0) for the new positions.
    #[default]
    Input,
    /// The decoder has no `position_ids` input and derives the positions itself from
    /// `attention_mask` (onnxruntime-genai's builder for some models, Optimum exports).
    Derived,
}

impl PositionIds {
    /// Whether the decoder takes the input (the default, not written out).
    pub fn is_input(&self) -> bool {
        matches!(self, PositionIds::Input)
    }
}

/// `model.kv_cache`: names and layout of the decoder's cache tensors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawKvCache {
    /// Input names, with `{i}` for the layer and `{kv}` for `key` / `value`.
    #[serde(default = "default_past")]
    pub past: String,
    /// Output names, with `{i}` and `{kv}`.
    #[serde(default = "default_present")]
    pub present: String,
    /// Axis order of every cache tensor.
    #[serde(default)]
    pub layout: KvLayout,
    /// What `present` holds.
    #[serde(default)]
    pub update: KvUpdate,
}

fn default_past() -> String {
    super::tensors::PAST_PATTERN.to_string()
}

fn default_present() -> String {
    super::tensors::PRESENT_PATTERN.to_string()
}

/// Axis order of the cache tensors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KvLayout {
    /// (batch, kv_heads, seq, head_dim): Optimum's and onnxruntime-genai's layout, the one this
    /// runtime supports.
    #[default]
    Bnsh,
    /// (batch, seq, kv_heads, head_dim): refused (named so that the refusal can say why).
    Bsnh,
}

/// How a decoder step's `present` relates to its `past`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KvUpdate {
    /// `present` is `past` followed by this step's keys/values (total = past + seq); the runtime
    /// moves it into the next step's `past`.
    #[default]
    Concat,
    /// One buffer per cache tensor, as long as the prompt plus the new tokens, bound as both
    /// `past` and `present`: the graph appends each step's keys/values in place
    /// (GroupQueryAttention with `past_present_share_buffer`, onnxruntime-genai's layout). Needs
    /// `prompt.padding: right` or `none`.
    SharedBuffer,
}

/// `graphs:` -- one entry per ONNX graph.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGraphs {
    /// Vision encoder.
    #[serde(default)]
    pub vision: Option<RawGraph>,
    /// Connector.
    #[serde(default)]
    pub connector: Option<RawGraph>,
    /// Token embedding.
    pub embed: RawGraph,
    /// Decoder with KV cache.
    pub decoder: RawGraph,
}

/// One graph: its file, checksum, external data and declared I/O.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGraph {
    /// Path of the `.onnx` file, relative to the zoo root.
    pub path: String,
    /// Hex sha256 of the file.
    pub sha256: String,
    /// External-data files the graph reads.
    #[serde(default)]
    pub external_data: Vec<RawFile>,
    /// Declared inputs.
    pub inputs: Vec<RawTensor>,
    /// Declared outputs.
    pub outputs: Vec<RawTensor>,
}

/// A file with its checksum.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    /// Path relative to the zoo root.
    pub path: String,
    /// Hex sha256.
    pub sha256: String,
}

/// A declared graph input or output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTensor {
    /// Tensor name.
    pub name: String,
    /// Element type.
    pub dtype: Dtype,
    /// Dimensions: integers, or symbolic names (`batch`, `seq`, `past`, `total`, ...).
    pub shape: Vec<RawDim>,
}

/// Tensor element types the zoo uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Dtype {
    /// 32-bit float.
    Float32,
    /// 64-bit signed integer.
    Int64,
    /// 32-bit signed integer.
    Int32,
    /// 16-bit float.
    Float16,
    /// Boolean.
    Bool,
}

impl std::fmt::Display for Dtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Dtype::Float32 => "float32",
            Dtype::Int64 => "int64",
            Dtype::Int32 => "int32",
            Dtype::Float16 => "float16",
            Dtype::Bool => "bool",
        })
    }
}

/// One dimension as written: a number or a symbol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawDim {
    /// A fixed size.
    Fixed(i64),
    /// A named dynamic axis.
    Symbol(String),
}

/// `preprocess:`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPreprocess {
    /// Output side in pixels.
    pub size: u32,
    /// Resampling filter.
    pub resize: ResizeFilter,
    /// Crop after resizing the shortest side.
    pub crop: CropMode,
    /// How `crop: center` rounds the longer side after scaling the shorter one to `size`
    /// (default `half_even`, as the zoo's exporter; `floor` as transformers' image processors).
    #[serde(default, skip_serializing_if = "SizeRounding::is_default")]
    pub size_rounding: SizeRounding,
    /// Factor from 0..=255 to 0..=1.
    pub rescale: f32,
    /// Per-channel mean (RGB).
    pub mean: Vec<f32>,
    /// Per-channel standard deviation (RGB).
    pub std: Vec<f32>,
}

/// Resampling filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResizeFilter {
    /// Antialiased bicubic (a = -0.5), as PIL and CLIP.
    Bicubic,
    /// Antialiased bilinear.
    Bilinear,
}

/// Crop after the shortest-side resize.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CropMode {
    /// Resize the shortest side to `size`, then take the centre `size` x `size` (CLIP).
    Center,
    /// Resize both sides to `size`, ignoring the aspect ratio.
    None,
}

/// How the longer side's length is rounded when the shorter side is resized to `size`
/// (`crop: center`): `long * size / short` to an integer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SizeRounding {
    /// To the nearest, ties to even (Python's `round`): the zoo's exporter (`media.py`).
    #[default]
    HalfEven,
    /// Down (`int(size * long / short)`): transformers' image processors, so an imported
    /// checkpoint's pictures are resized as `AutoImageProcessor` resizes them.
    Floor,
}

impl SizeRounding {
    fn is_default(&self) -> bool {
        *self == SizeRounding::default()
    }
}

/// `video:`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawVideo {
    /// Frames fed to the model.
    pub frames: u32,
    /// How they are chosen.
    pub sampling: FrameSampling,
}

/// Frame sampling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FrameSampling {
    /// The centres of F equal segments.
    Uniform,
}

/// `tokenizer:`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTokenizer {
    /// tokenizer.json path.
    pub path: String,
    /// Hex sha256.
    pub sha256: String,
    /// Beginning-of-sequence token.
    pub bos: String,
    /// End-of-sequence token.
    pub eos: String,
    /// Padding token.
    pub pad: String,
}

/// `prompt:`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPrompt {
    /// Template holding `{question}` once (and the image placeholder once, when there is one).
    pub template: String,
    /// Batch padding side.
    pub padding: PaddingSide,
    /// The picture's place in the template (placeholder layout, as LLaVA's `<image>`): a token of
    /// the tokenizer that the template holds once; the visual tokens replace it. Absent: the
    /// prefix layout, visual tokens before the BOS token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_placeholder: Option<String>,
    /// Whether the runtime puts `tokenizer.bos` before the encoded template (default true; false
    /// for templates that write it themselves, or models without one).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub add_bos: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// Batch padding side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaddingSide {
    /// Pads before the prompt: every row ends at the batch's last position (a decoder that
    /// concatenates its cache and reads the last position).
    Left,
    /// Pads after the prompt: each row starts at position 0 and ends at its own length, the mask's
    /// row sum (GroupQueryAttention over one K/V buffer, `model.kv_cache.update: shared_buffer`,
    /// which writes each row's new keys and values at that length). The decoder's logits are each
    /// row's own last position, or every position (the runtime reads each row's last).
    Right,
    /// No padded batches: the decoder answers a padded row otherwise than the row alone, so the
    /// runtime runs one question at a time, whatever batch it is handed.
    None,
}

/// `generation:` -- decoding defaults.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGeneration {
    /// Strategy.
    pub strategy: Strategy,
    /// Beam count (beam search).
    #[serde(default = "one")]
    pub beams: u32,
    /// Most new tokens.
    pub max_new_tokens: u32,
    /// Fewest new tokens before EOS may end a sequence.
    #[serde(default)]
    pub min_new_tokens: u32,
    /// Beam-search length penalty exponent.
    #[serde(default = "one_f")]
    pub length_penalty: f32,
    /// No n-gram of this size repeats (0 = off).
    #[serde(default)]
    pub no_repeat_ngram_size: u32,
    /// Sampling temperature.
    #[serde(default = "one_f")]
    pub temperature: f32,
    /// Sampling top-k (0 = off).
    #[serde(default)]
    pub top_k: u32,
    /// Sampling nucleus mass (1 = off).
    #[serde(default = "one_f")]
    pub top_p: f32,
}

fn one() -> u32 {
    1
}

fn one_f() -> f32 {
    1.0
}

/// `parameters:`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawParameters {
    /// All parameters the variant runs with.
    pub total: u64,
    /// Parameters its training updated.
    pub trainable: u64,
}

/// `provenance:` -- open: known keys are typed, anything else is kept as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct RawProvenance {
    /// Training seed.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Steps per stage.
    #[serde(default)]
    pub steps: BTreeMap<String, u64>,
    /// Final loss per stage.
    #[serde(default)]
    pub final_loss: BTreeMap<String, f64>,
    /// Wall time of training and export.
    #[serde(default)]
    pub wall_seconds: Option<f64>,
    /// Where it trained (`cpu`, `cuda`).
    #[serde(default)]
    pub device: Option<String>,
    /// Everything else (data seeds, library versions, opset, date, ...).
    #[serde(flatten)]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub other: BTreeMap<String, super::yaml::Value>,
}
