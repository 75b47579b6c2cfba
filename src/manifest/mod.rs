//! Variant manifests: `variants/NAME.yaml`, the only thing the runtime reads about a variant.
//!
//! Two layers, as candle's `LlamaConfig` -> `Config`: [`raw`] mirrors the YAML with serde, and
//! [`Manifest`] is the validated form, built by `TryFrom<ManifestSource>`. Validation names the file
//! and the field of every problem, resolves every path inside the zoo root ([`paths`]), and checks
//! the cross-field rules the pipeline relies on (docs/contract.md section 3, docs/manifest.md):
//!
//! - a prefix connector (resampler, projector) outputs `visual_embeds`; a cross-attention connector
//!   outputs `cross_key_values.*`, each of which the decoder takes as an input of the same name;
//! - a text-only variant (`vision_input: none`, connector `none`) has no vision graph, no
//!   connector and no preprocessing; every other variant (`picture`, and the matched blind control
//!   `blank`, which runs the same graphs on a blank picture) has all three;
//! - the decoder declares its cache inputs and outputs (`past_key_values.{i}.key|value` and
//!   `present.{i}.key|value` unless `model.kv_cache` names them otherwise) for every layer `i`, and
//!   `position_ids` exactly when `model.position_ids` is `input`;
//! - the zoo's own variants (`origin` absent or `zoo`) record their whole training recipe with the
//!   zoo's typed values; imported ones (`origin: {kind: imported, ...}`) may leave the recipe out
//!   and name their own backbone family and size;
//! - an image placeholder (`prompt.image_placeholder`, the picture inside the template as in
//!   LLaVA) goes with a prefix connector only, and the template holds it once.
//!
//! Checksums and the comparison with the ONNX sessions' real inputs and outputs come later, when a
//! variant is checked or loaded ([`crate::zoo`]).

pub mod bounds;
pub mod open;
pub mod paths;
pub mod raw;
pub mod tensors;
pub mod yaml;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub use open::{Import, KvCache, Origin};
pub use paths::FileRef;
pub use raw::{
    AdapterKind, Backbone, BackboneFamily, BackboneFlavour, BackboneSize, ConnectorKind, CropMode, DataRecipe, Dtype,
    FrameSampling, Freeze, KvLayout, KvUpdate, LlmFreeze, Open, PaddingSide, PaperFinding, PositionIds, PromptRecipe,
    Quantization, RawManifest, ResizeFilter, SizeRounding, VisionFreeze, VisionInput,
};

use crate::error::{Error, Result};
use crate::generate::GenerationOptions;

/// The schema version this runtime reads.
pub const SCHEMA_VERSION: u32 = 1;

/// A validated variant manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The manifest file.
    pub file: PathBuf,
    /// The zoo root its paths are relative to.
    pub root: PathBuf,
    /// Variant name (the file stem).
    pub name: String,
    /// One-line description.
    pub description: String,
    /// Who made it: the zoo's exporter, or an importer (and from what).
    pub origin: Origin,
    /// The design choices.
    pub axes: Axes,
    /// The axis changed from the baseline.
    pub changes: Option<String>,
    /// What the paper reports for that axis.
    pub paper: Option<String>,
    /// Which way the paper found the variant against the baseline, where it reports a direction.
    pub paper_finding: Option<PaperFinding>,
    /// The variant this one repeats with another training seed.
    pub seed_of: Option<String>,
    /// Model dimensions.
    pub model: ModelDims,
    /// The decoder's cache tensors (`model.kv_cache`).
    pub kv_cache: KvCache,
    /// The graphs.
    pub graphs: Graphs,
    /// Image preprocessing (None without vision, `vision_input: none`).
    pub preprocess: Option<PreprocessSpec>,
    /// Video sampling (None without vision, `vision_input: none`).
    pub video: Option<VideoSpec>,
    /// Tokenizer.
    pub tokenizer: TokenizerSpec,
    /// Prompt template, split around `{question}`.
    pub prompt: PromptSpec,
    /// Decoding defaults (`generation:`), checked: what [`crate::Model::default_generation`]
    /// starts from.
    pub generation: GenerationOptions,
    /// Parameter counts.
    pub parameters: Parameters,
    /// The training seed (`provenance.seed`), which tells a repeat (`seed_of`) from its original.
    /// The rest of `provenance:` is a record for people: [`read_raw`] has it.
    pub seed: Option<u64>,
    /// Parity goldens, if exported.
    pub goldens: Option<FileRef>,
}

/// `parameters:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parameters {
    /// All parameters the variant runs with.
    pub total: u64,
    /// Parameters its training updated.
    pub trainable: u64,
}

/// `axes.adapter`: the adapters inside the language model (bounds checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adapter {
    /// Adapter kind.
    pub kind: AdapterKind,
    /// Every how many layers (Lynx `adapter_freq`).
    pub every: Option<u32>,
    /// Bottleneck width.
    pub dim: Option<u32>,
    /// LoRA rank.
    pub rank: Option<u32>,
}

/// The validated `axes:`. The recipe axes (`adapter`, `freeze`, `data`, `prompts`,
/// `quantization`, and `backbone.flavour`) are always present for the zoo's own variants and may
/// be None for imported ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Axes {
    /// LLM backbone (for the zoo's own variants, family and size are the zoo's typed values).
    pub backbone: Backbone,
    /// How vision reaches the LLM.
    pub connector: Connector,
    /// Adapters.
    pub adapter: Option<Adapter>,
    /// Freeze policy.
    pub freeze: Option<Freeze>,
    /// Image side (0 without vision, `vision_input: none`).
    pub resolution: u32,
    /// Visual tokens (prefix length per sample, or cross-attention memory), if fixed.
    pub visual_tokens: Option<u32>,
    /// Frames per video sample (0 without vision, `vision_input: none`).
    pub frames: u32,
    /// Learned frame-position embedding.
    pub frame_positions: bool,
    /// Data recipe.
    pub data: Option<DataRecipe>,
    /// Prompt recipe.
    pub prompts: Option<PromptRecipe>,
    /// Export quantisation.
    pub quantization: Option<Quantization>,
    /// What the variant sees of the picture: the picture, a blank picture (the matched blind
    /// control), or nothing (no vision graph).
    pub vision_input: VisionInput,
}

/// The connector, by its family (how its output enters the decoder), with what the runtime reads
/// of it. The kind is data here: a new kind of an existing family is one variant of
/// [`ConnectorKind`] and its family (`raw.rs`), nothing else in the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connector {
    /// Visual prefix tokens (resampler, projector, ...).
    Prefix {
        /// The kind.
        kind: ConnectorKind,
    },
    /// Gated cross-attention every `every` layers.
    CrossAttention {
        /// The kind.
        kind: ConnectorKind,
        /// Every k-th layer.
        every: u32,
        /// The decoder layers that cross-attend.
        layers: Vec<u32>,
    },
    /// No connector (no vision: `vision_input: none`).
    None,
}

impl Connector {
    /// The kind as written in YAML.
    pub fn kind(&self) -> ConnectorKind {
        match self {
            Connector::Prefix { kind } | Connector::CrossAttention { kind, .. } => *kind,
            Connector::None => ConnectorKind::None,
        }
    }

    /// How the connector's output enters the decoder.
    pub fn family(&self) -> ConnectorFamily {
        match self {
            Connector::Prefix { .. } => ConnectorFamily::Prefix,
            Connector::CrossAttention { .. } => ConnectorFamily::CrossAttention,
            Connector::None => ConnectorFamily::Blind,
        }
    }
}

/// How vision enters the decoder: the one distinction the generation loop cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorFamily {
    /// Visual tokens are a prefix of the decoder's input sequence.
    Prefix,
    /// The decoder attends to the vision memory through `cross_key_values.*` inputs.
    CrossAttention,
    /// No vision at all.
    Blind,
}

impl ConnectorFamily {
    /// The name the exporter gives it (`connectors.Placement`), which the generated schema carries
    /// as `x-placement` of each connector kind.
    pub fn placement(self) -> &'static str {
        match self {
            ConnectorFamily::Prefix => "prefix",
            ConnectorFamily::CrossAttention => "cross",
            ConnectorFamily::Blind => "none",
        }
    }
}

/// The validated `model:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelDims {
    /// Decoder width.
    pub hidden: usize,
    /// Decoder layers.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Head width.
    pub head_dim: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Context length.
    pub max_positions: usize,
    /// Vision feature width (0 without vision, `vision_input: none`).
    pub vision_dim: usize,
    /// Patches per frame (0 without vision, `vision_input: none`).
    pub patches: usize,
    /// Whether the decoder takes `position_ids`.
    pub position_ids: PositionIds,
}

/// The graphs of a variant.
#[derive(Debug, Clone)]
pub struct Graphs {
    /// Vision encoder.
    pub vision: Option<GraphSpec>,
    /// Connector.
    pub connector: Option<GraphSpec>,
    /// Token embedding.
    pub embed: GraphSpec,
    /// Decoder.
    pub decoder: GraphSpec,
}

impl Graphs {
    /// All graphs, in pipeline order.
    pub fn iter(&self) -> impl Iterator<Item = &GraphSpec> {
        self.vision.iter().chain(self.connector.iter()).chain([&self.embed, &self.decoder])
    }
}

/// The role a graph plays in the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GraphRole {
    /// `pixel_values` -> `image_features`.
    Vision,
    /// `image_features` -> `visual_embeds` or `cross_key_values.*`.
    Connector,
    /// `input_ids` -> `inputs_embeds`.
    Embed,
    /// One decoder step with KV cache.
    Decoder,
}

impl GraphRole {
    /// The role's name, as in `graphs.NAME`.
    pub fn as_str(self) -> &'static str {
        match self {
            GraphRole::Vision => "vision",
            GraphRole::Connector => "connector",
            GraphRole::Embed => "embed",
            GraphRole::Decoder => "decoder",
        }
    }
}

impl std::fmt::Display for GraphRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One validated graph.
#[derive(Debug, Clone)]
pub struct GraphSpec {
    /// Its role.
    pub role: GraphRole,
    /// The `.onnx` file.
    pub file: FileRef,
    /// External-data files.
    pub external_data: Vec<FileRef>,
    /// Declared inputs.
    pub inputs: Vec<TensorSpec>,
    /// Declared outputs.
    pub outputs: Vec<TensorSpec>,
}

impl GraphSpec {
    /// The declared input called `name`.
    pub fn input(&self, name: &str) -> Option<&TensorSpec> {
        self.inputs.iter().find(|t| t.name == name)
    }

    /// The declared output called `name`.
    pub fn output(&self, name: &str) -> Option<&TensorSpec> {
        self.outputs.iter().find(|t| t.name == name)
    }

    /// Every file of the graph: the `.onnx` and its external data.
    pub fn files(&self) -> impl Iterator<Item = &FileRef> {
        std::iter::once(&self.file).chain(self.external_data.iter())
    }
}

/// A declared tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// Name.
    pub name: String,
    /// Element type.
    pub dtype: Dtype,
    /// Dimensions.
    pub shape: Vec<Dim>,
}

/// One dimension of a declared tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// Fixed size.
    Fixed(usize),
    /// Dynamic axis with a name.
    Symbol(String),
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Symbol(s) => f.write_str(s),
        }
    }
}

impl std::fmt::Display for TensorSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dims: Vec<String> = self.shape.iter().map(Dim::to_string).collect();
        write!(f, "{} {} [{}]", self.name, self.dtype, dims.join(", "))
    }
}

/// The validated `preprocess:`.
#[derive(Debug, Clone, PartialEq)]
pub struct PreprocessSpec {
    /// Output side.
    pub size: u32,
    /// Filter.
    pub resize: ResizeFilter,
    /// Crop mode.
    pub crop: CropMode,
    /// How `crop: center` rounds the resized longer side.
    pub size_rounding: SizeRounding,
    /// 0..=255 -> 0..=1 factor.
    pub rescale: f32,
    /// RGB mean.
    pub mean: [f32; 3],
    /// RGB std.
    pub std: [f32; 3],
}

/// The validated `video:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoSpec {
    /// Frames per sample.
    pub frames: usize,
    /// Sampling rule.
    pub sampling: FrameSampling,
}

/// The validated `tokenizer:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizerSpec {
    /// tokenizer.json.
    pub file: FileRef,
    /// BOS token.
    pub bos: String,
    /// EOS token.
    pub eos: String,
    /// PAD token.
    pub pad: String,
}

/// The validated `prompt:`: the template with its one `{question}` (and at most one image
/// placeholder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptSpec {
    /// The template as written.
    pub template: String,
    /// Padding side.
    pub padding: PaddingSide,
    /// The image placeholder (placeholder layout), None for the prefix layout.
    pub image_placeholder: Option<String>,
    /// Whether BOS goes before the encoded template.
    pub add_bos: bool,
}

impl PromptSpec {
    /// The template with `question` in place of `{question}`.
    pub fn render(&self, question: &str) -> String {
        self.template.replacen("{question}", question, 1)
    }
}

/// The JSON Schema of a manifest file, generated from the serde types of [`raw`] (field names,
/// types, enums, required and unknown keys). Committed as docs/manifest.schema.json, which the
/// exporter's tests validate every manifest they write against; the cross-field rules and
/// [`bounds`] are checked by [`Manifest::from_yaml`] only. Each connector kind carries its family
/// as `x-placement` ([`ConnectorFamily::placement`]).
pub fn json_schema() -> String {
    let mut schema = schemars::schema_for!(RawManifest);
    // Each connector kind's family as `x-placement`, for the exporter's registry to be held to.
    if let Some(serde_json::Value::Array(kinds)) = schema.pointer_mut("/$defs/ConnectorKind/oneOf") {
        for option in kinds {
            let kind = option.get("const").and_then(|c| serde_json::from_value::<ConnectorKind>(c.clone()).ok());
            if let (Some(kind), Some(fields)) = (kind, option.as_object_mut()) {
                fields.insert("x-placement".into(), kind.family().placement().into());
            }
        }
    }
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

/// The manifest file at `file` as written (parsed, not validated): what `lynx-zoo show` prints.
pub fn read_raw(file: &Path) -> Result<RawManifest> {
    let text = crate::files::read_text(file, crate::files::FileKind::Manifest)?;
    yaml::parse(&text, file)
}

/// A raw manifest with where it came from: the input of the `TryFrom` conversion.
#[derive(Debug)]
pub struct ManifestSource<'a> {
    /// The parsed YAML.
    pub raw: RawManifest,
    /// The manifest file (for error messages and the name check).
    pub file: &'a Path,
    /// The zoo root.
    pub root: &'a Path,
}

impl Manifest {
    /// Reads and validates the manifest at `file`, whose paths are relative to `root`.
    pub fn from_file(file: &Path, root: &Path) -> Result<Manifest> {
        Manifest::try_from(ManifestSource { raw: read_raw(file)?, file, root })
    }

    /// Parses and validates manifest text; `file` names it in errors.
    pub fn from_yaml(text: &str, file: &Path, root: &Path) -> Result<Manifest> {
        let raw: RawManifest = yaml::parse(text, file)?;
        Manifest::try_from(ManifestSource { raw, file, root })
    }

    /// The decoder's cache names, `(past, present)` (by default `past_key_values.{i}.{kv}`,
    /// `present.{i}.{kv}`) for every layer `i` and `kv` of key, value, in that order: the output
    /// that becomes each input.
    pub fn cache_names(&self) -> Vec<(String, String)> {
        self.kv_cache.names(self.model.layers)
    }

    /// Every distinct file the variant uses (graphs, external data, tokenizer).
    pub fn files(&self) -> Vec<&FileRef> {
        let mut seen = BTreeSet::new();
        self.graphs
            .iter()
            .flat_map(GraphSpec::files)
            .chain(std::iter::once(&self.tokenizer.file))
            .filter(|f| seen.insert(f.path.clone()))
            .collect()
    }
}

impl TryFrom<ManifestSource<'_>> for Manifest {
    type Error = Error;

    fn try_from(src: ManifestSource<'_>) -> Result<Manifest> {
        let ManifestSource { raw, file, root } = src;
        let bad = |field: &str, message: String| Error::manifest(file, field, message);

        if raw.schema_version != SCHEMA_VERSION {
            return Err(bad(
                "schema_version",
                format!("this runtime reads schema version {SCHEMA_VERSION}, the file has `{}`", raw.schema_version),
            ));
        }
        let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        if raw.name != stem {
            return Err(bad("name", format!("`{}` differs from the file name `{stem}`", raw.name)));
        }
        if raw.name.is_empty() || !raw.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
            return Err(bad("name", format!("`{}` must be letters, digits, `-`, `_`, `.`", raw.name)));
        }

        bounds::check(&raw, file)?;
        let origin = open::origin(raw.origin.as_ref(), file)?;
        let model = model_dims(&raw, file)?;
        let kv_cache = open::kv_cache(raw.model.kv_cache.as_ref(), file)?;
        let axes = axes(&raw, &origin, &model, file)?;
        let graphs = graphs(&raw, &axes, &model, &kv_cache, file, root)?;

        let vision_input = axes.vision_input;
        let preprocess = match (&raw.preprocess, vision_input.has_vision()) {
            (Some(p), true) => Some(preprocess(p, &axes, file)?),
            (None, false) => None,
            (None, true) => {
                return Err(bad(
                    "preprocess",
                    format!("missing; a variant with `vision_input: {vision_input}` needs it"),
                ))
            }
            (Some(_), false) => {
                return Err(bad("preprocess", "present, but the variant has `vision_input: none` (no vision)".into()))
            }
        };
        let video = match (&raw.video, vision_input.has_vision()) {
            (Some(v), true) => {
                if v.frames == 0 || v.frames != axes.frames {
                    return Err(bad(
                        "video.frames",
                        format!("`{}` must be at least 1 and equal `axes.frames` (`{}`)", v.frames, axes.frames),
                    ));
                }
                Some(VideoSpec { frames: v.frames as usize, sampling: v.sampling })
            }
            (None, true) => {
                return Err(bad("video", format!("missing; a variant with `vision_input: {vision_input}` needs it")))
            }
            (_, false) => None,
        };

        let t = &raw.tokenizer;
        let tokenizer = TokenizerSpec {
            file: FileRef {
                rel: t.path.clone(),
                path: paths::resolve(root, &t.path, file, "tokenizer.path")?,
                sha256: paths::parse_sha256(&t.sha256, file, "tokenizer.sha256")?,
            },
            bos: t.bos.clone(),
            eos: t.eos.clone(),
            pad: t.pad.clone(),
        };
        for (field, token) in [("tokenizer.bos", &t.bos), ("tokenizer.eos", &t.eos), ("tokenizer.pad", &t.pad)] {
            if token.is_empty() {
                return Err(bad(field, "is empty".into()));
            }
        }

        let prompt = open::prompt(&raw.prompt, &axes, file)?;
        match (kv_cache.update, prompt.padding) {
            (KvUpdate::SharedBuffer, PaddingSide::Left) => {
                return Err(bad(
                    "prompt.padding",
                    "`left` with `model.kv_cache.update: shared_buffer`: GroupQueryAttention reads each row's \
                     tokens from the buffer's start to its own length (the mask's row sum); pad on the `right` \
                     or not at all (`none`)"
                        .into(),
                ));
            }
            (KvUpdate::Concat, PaddingSide::Right) => {
                return Err(bad(
                    "prompt.padding",
                    "`right` needs `model.kv_cache.update: shared_buffer`: a decoder that concatenates its cache \
                     appends each step after the padding; pad on the `left` or not at all (`none`)"
                        .into(),
                ));
            }
            _ => {}
        }

        let generation = generation(&raw.generation, file)?;

        if let Some(of) = &raw.seed_of {
            if *of == raw.name {
                return Err(bad(
                    "seed_of",
                    format!("`{of}` names the variant itself; it names the variant this one repeats"),
                ));
            }
            if raw.provenance.seed.is_none() {
                return Err(bad(
                    "seed_of",
                    format!("`{of}` needs `provenance.seed`: the training seed that tells the two apart"),
                ));
            }
        }

        let goldens = match &raw.goldens {
            Some(g) => Some(FileRef {
                rel: g.path.clone(),
                path: paths::resolve(root, &g.path, file, "goldens.path")?,
                sha256: paths::parse_sha256(&g.sha256, file, "goldens.sha256")?,
            }),
            None => None,
        };

        bounds::check_shapes(&graphs, &axes, &model, &kv_cache, file)?;

        Ok(Manifest {
            file: file.to_path_buf(),
            root: root.to_path_buf(),
            name: raw.name.clone(),
            description: raw.description.clone(),
            origin,
            axes,
            changes: raw.changes.clone(),
            paper: raw.paper.clone(),
            paper_finding: raw.paper_finding,
            seed_of: raw.seed_of.clone(),
            model,
            kv_cache,
            graphs,
            preprocess,
            video,
            tokenizer,
            prompt,
            generation,
            parameters: Parameters { total: raw.parameters.total, trainable: raw.parameters.trainable },
            seed: raw.provenance.seed,
            goldens,
        })
    }
}

fn model_dims(raw: &RawManifest, file: &Path) -> Result<ModelDims> {
    let m = &raw.model;
    for (field, v) in [
        ("model.hidden", m.hidden),
        ("model.layers", m.layers),
        ("model.heads", m.heads),
        ("model.kv_heads", m.kv_heads),
        ("model.head_dim", m.head_dim),
        ("model.vocab_size", m.vocab_size),
        ("model.max_positions", m.max_positions),
    ] {
        if v == 0 {
            return Err(Error::manifest(file, field, "must be at least 1"));
        }
    }
    if !m.heads.is_multiple_of(m.kv_heads) {
        return Err(Error::manifest(
            file,
            "model.kv_heads",
            format!("`{}` must divide `model.heads` (`{}`)", m.kv_heads, m.heads),
        ));
    }
    Ok(ModelDims {
        hidden: m.hidden as usize,
        layers: m.layers as usize,
        heads: m.heads as usize,
        kv_heads: m.kv_heads as usize,
        head_dim: m.head_dim as usize,
        vocab_size: m.vocab_size as usize,
        max_positions: m.max_positions as usize,
        vision_dim: m.vision_dim.unwrap_or(0) as usize,
        patches: m.patches.unwrap_or(0) as usize,
        position_ids: m.position_ids,
    })
}

fn axes(raw: &RawManifest, origin: &Origin, model: &ModelDims, file: &Path) -> Result<Axes> {
    let a = &raw.axes;
    let bad = |field: &str, message: String| Error::manifest(file, field, message);
    open::backbone(&a.backbone, origin, file)?;
    open::recipe(a, origin, file)?;
    let layers = &raw.model.cross_attention_layers;
    let kind = a.connector.kind;
    let connector = match kind.family() {
        ConnectorFamily::Prefix => Connector::Prefix { kind },
        ConnectorFamily::CrossAttention => {
            let every = a.cross_attention_every.ok_or_else(|| {
                bad(
                    "axes.cross_attention_every",
                    "a cross-attention variant needs `k` (cross-attend every k-th layer)".into(),
                )
            })?;
            if every == 0 {
                return Err(bad("axes.cross_attention_every", "must be at least 1".into()));
            }
            if layers.is_empty() {
                return Err(bad("model.cross_attention_layers", "a cross-attention variant needs at least one".into()));
            }
            if let Some(l) = layers.iter().find(|&&l| l as usize >= model.layers) {
                return Err(bad(
                    "model.cross_attention_layers",
                    format!("layer `{l}` does not exist; the decoder has {} layers", model.layers),
                ));
            }
            Connector::CrossAttention { kind, every, layers: layers.clone() }
        }
        ConnectorFamily::Blind => Connector::None,
    };
    if connector.family() != ConnectorFamily::CrossAttention && !layers.is_empty() {
        return Err(bad(
            "model.cross_attention_layers",
            format!("must be empty for connector kind `{:?}`", a.connector.kind).to_lowercase(),
        ));
    }
    let vision_input = a.vision_input.value();
    if vision_input.has_vision() == (connector == Connector::None) {
        return Err(bad(
            "axes.vision_input",
            format!(
                "`{}` contradicts connector kind `{}`: `none` goes with connector kind `none` and only with it; \
                 `picture` and `blank` need a connector",
                yaml::scalar(&a.vision_input),
                yaml::scalar(&a.connector.kind)
            ),
        ));
    }
    if vision_input.has_vision() {
        let needs = format!("a variant with `vision_input: {vision_input}` needs");
        if model.vision_dim == 0 || model.patches == 0 {
            return Err(bad("model.vision_dim", format!("{needs} `vision_dim` and `patches`")));
        }
        if a.resolution.unwrap_or(0) == 0 {
            return Err(bad("axes.resolution", format!("{needs} a resolution of at least 1")));
        }
        if a.frames.unwrap_or(0) == 0 {
            return Err(bad("axes.frames", format!("{needs} at least 1 frame")));
        }
    }
    Ok(Axes {
        backbone: a.backbone.clone(),
        connector,
        adapter: a.adapter.map(|d| Adapter { kind: d.kind, every: d.every, dim: d.dim, rank: d.rank }),
        freeze: a.freeze,
        resolution: a.resolution.unwrap_or(0),
        visual_tokens: a.visual_tokens,
        frames: a.frames.unwrap_or(0),
        frame_positions: a.frame_positions.unwrap_or(false),
        data: a.data,
        prompts: a.prompts,
        quantization: a.quantization,
        vision_input,
    })
}

fn preprocess(p: &raw::RawPreprocess, axes: &Axes, file: &Path) -> Result<PreprocessSpec> {
    let bad = |field: &str, message: String| Error::manifest(file, field, message);
    if p.size == 0 || p.size != axes.resolution {
        return Err(bad(
            "preprocess.size",
            format!("`{}` must be at least 1 and equal `axes.resolution` (`{}`)", p.size, axes.resolution),
        ));
    }
    let triple = |field: &str, v: &[f32]| -> Result<[f32; 3]> {
        match v {
            [r, g, b] => Ok([*r, *g, *b]),
            _ => Err(bad(field, format!("needs 3 values (R, G, B), got {}", v.len()))),
        }
    };
    let mean = triple("preprocess.mean", &p.mean)?;
    let std = triple("preprocess.std", &p.std)?;
    if std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(bad("preprocess.std", format!("{std:?} must be positive")));
    }
    if !(p.rescale.is_finite() && p.rescale > 0.0) {
        return Err(bad("preprocess.rescale", format!("`{}` must be positive", p.rescale)));
    }
    Ok(PreprocessSpec {
        size: p.size,
        resize: p.resize,
        crop: p.crop,
        size_rounding: p.size_rounding,
        rescale: p.rescale,
        mean,
        std,
    })
}

/// The decoding defaults, checked here once: every count at least 1 where it must be, and the
/// sampling settings in range (their bounds: [`bounds`]).
fn generation(g: &raw::RawGeneration, file: &Path) -> Result<GenerationOptions> {
    let bad = |field: &str, message: String| Error::manifest(file, field, message);
    if g.beams == 0 {
        return Err(bad("generation.beams", "must be at least 1".into()));
    }
    if g.max_new_tokens == 0 {
        return Err(bad("generation.max_new_tokens", "must be at least 1".into()));
    }
    if g.min_new_tokens > g.max_new_tokens {
        return Err(bad(
            "generation.min_new_tokens",
            format!("`{}` exceeds `max_new_tokens` (`{}`)", g.min_new_tokens, g.max_new_tokens),
        ));
    }
    if !(g.temperature.is_finite() && g.temperature > 0.0) {
        return Err(bad("generation.temperature", format!("`{}` must be positive", g.temperature)));
    }
    if !(g.top_p > 0.0 && g.top_p <= 1.0) {
        return Err(bad("generation.top_p", format!("`{}` must be in (0, 1]", g.top_p)));
    }
    Ok(GenerationOptions {
        strategy: g.strategy,
        beams: g.beams as usize,
        max_new_tokens: g.max_new_tokens as usize,
        min_new_tokens: g.min_new_tokens as usize,
        length_penalty: g.length_penalty,
        no_repeat_ngram_size: g.no_repeat_ngram_size as usize,
        temperature: g.temperature,
        top_k: g.top_k as usize,
        top_p: g.top_p,
        seed: 0,
    })
}

/// Names and dtypes of tensors.
type TensorList = Vec<(String, Dtype)>;

/// The (inputs, outputs) a graph of each role must declare (beyond what the manifest adds).
fn required_io(role: GraphRole, family: ConnectorFamily, model: &ModelDims, kv: &KvCache) -> (TensorList, TensorList) {
    let f = |n: &str| (n.to_string(), Dtype::Float32);
    let i = |n: &str| (n.to_string(), Dtype::Int64);
    match role {
        GraphRole::Vision => (vec![f(tensors::PIXEL_VALUES)], vec![f(tensors::IMAGE_FEATURES)]),
        GraphRole::Connector => match family {
            ConnectorFamily::Prefix => (vec![f(tensors::IMAGE_FEATURES)], vec![f(tensors::VISUAL_EMBEDS)]),
            _ => (vec![f(tensors::IMAGE_FEATURES)], vec![]),
        },
        GraphRole::Embed => (vec![i(tensors::INPUT_IDS)], vec![f(tensors::INPUTS_EMBEDS)]),
        GraphRole::Decoder => {
            let mut inputs = vec![f(tensors::INPUTS_EMBEDS), i(tensors::ATTENTION_MASK)];
            if model.position_ids == PositionIds::Input {
                inputs.push(i(tensors::POSITION_IDS));
            }
            let mut outputs = vec![f(tensors::LOGITS)];
            for (past, present) in kv.names(model.layers) {
                inputs.push(f(&past));
                outputs.push(f(&present));
            }
            (inputs, outputs)
        }
    }
}

fn graphs(raw: &RawManifest, axes: &Axes, model: &ModelDims, kv: &KvCache, file: &Path, root: &Path) -> Result<Graphs> {
    let family = axes.connector.family();
    let g = &raw.graphs;
    let graph = |role: GraphRole, r: &raw::RawGraph| -> Result<GraphSpec> {
        let field = format!("graphs.{role}");
        let file_ref = |rel: &str, sha: &str, what: &str| -> Result<FileRef> {
            Ok(FileRef {
                rel: rel.to_string(),
                path: paths::resolve(root, rel, file, &format!("{field}.{what}"))?,
                sha256: paths::parse_sha256(sha, file, &format!("{field}.{what}.sha256"))?,
            })
        };
        let onnx = file_ref(&r.path, &r.sha256, "path")?;
        let external_data = r
            .external_data
            .iter()
            .enumerate()
            .map(|(k, d)| file_ref(&d.path, &d.sha256, &format!("external_data[{k}]")))
            .collect::<Result<Vec<_>>>()?;
        let tensors = |list: &[raw::RawTensor], what: &str| -> Result<Vec<TensorSpec>> {
            let mut names = BTreeSet::new();
            list.iter()
                .map(|t| {
                    if !names.insert(t.name.clone()) {
                        return Err(Error::manifest(
                            file,
                            format!("{field}.{what}"),
                            format!("`{}` is declared twice", t.name),
                        ));
                    }
                    let shape = t
                        .shape
                        .iter()
                        .map(|d| match d {
                            raw::RawDim::Fixed(n) if *n >= 0 => Ok(Dim::Fixed(*n as usize)),
                            raw::RawDim::Fixed(n) => Err(Error::manifest(
                                file,
                                format!("{field}.{what}.{}.shape", t.name),
                                format!("dimension `{n}` is negative; use a name for a dynamic axis"),
                            )),
                            raw::RawDim::Symbol(s) => Ok(Dim::Symbol(s.clone())),
                        })
                        .collect::<Result<Vec<_>>>()?;
                    Ok(TensorSpec { name: t.name.clone(), dtype: t.dtype, shape })
                })
                .collect()
        };
        let spec = GraphSpec {
            role,
            file: onnx,
            external_data,
            inputs: tensors(&r.inputs, "inputs")?,
            outputs: tensors(&r.outputs, "outputs")?,
        };
        let (need_in, need_out) = required_io(role, family, model, kv);
        for (list, need, what) in [(&spec.inputs, need_in, "inputs"), (&spec.outputs, need_out, "outputs")] {
            for (name, dtype) in need {
                match list.iter().find(|t| t.name == name) {
                    None => {
                        return Err(Error::manifest(
                            file,
                            format!("{field}.{what}"),
                            match name.as_str() {
                                tensors::POSITION_IDS => format!(
                                    "`{name}` ({dtype}) is missing; the {role} graph must declare it, or the manifest \
                                     must say that the decoder derives positions itself (`model.position_ids: derived`)"
                                ),
                                _ => format!("`{name}` ({dtype}) is missing; the {role} graph must declare it"),
                            },
                        ))
                    }
                    Some(t) if t.dtype != dtype => {
                        return Err(Error::manifest(
                            file,
                            format!("{field}.{what}.{name}.dtype"),
                            format!("`{}`, expected `{dtype}`", t.dtype),
                        ))
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(spec)
    };

    let vision = g.vision.as_ref().map(|r| graph(GraphRole::Vision, r)).transpose()?;
    let connector = g.connector.as_ref().map(|r| graph(GraphRole::Connector, r)).transpose()?;
    let embed = graph(GraphRole::Embed, &g.embed)?;
    let decoder = graph(GraphRole::Decoder, &g.decoder)?;
    if model.position_ids == PositionIds::Derived && decoder.input(tensors::POSITION_IDS).is_some() {
        return Err(Error::manifest(
            file,
            "model.position_ids",
            "`derived` says the decoder has no `position_ids` input, but `graphs.decoder.inputs` declares one; \
             write `input` (or leave the field out)",
        ));
    }

    let vision_input = axes.vision_input;
    match (vision_input.has_vision(), &vision, &connector) {
        (true, Some(_), Some(_)) | (false, None, None) => {}
        (true, None, _) => {
            return Err(Error::manifest(
                file,
                "graphs.vision",
                format!("missing; a variant with `vision_input: {vision_input}` needs it"),
            ))
        }
        (true, _, None) => {
            return Err(Error::manifest(
                file,
                "graphs.connector",
                format!("missing; a variant with `vision_input: {vision_input}` needs it"),
            ))
        }
        (false, _, _) => {
            return Err(Error::manifest(
                file,
                "graphs",
                "a text-only variant (`vision_input: none`) must have neither a vision nor a connector graph",
            ))
        }
    }

    // Cross-attention: what the connector produces is what the decoder takes, by name.
    if let Some(conn) = &connector {
        let cross_out: BTreeSet<&str> =
            conn.outputs.iter().map(|t| t.name.as_str()).filter(|n| n.starts_with(tensors::CROSS_PREFIX)).collect();
        let cross_in: BTreeSet<&str> =
            decoder.inputs.iter().map(|t| t.name.as_str()).filter(|n| n.starts_with(tensors::CROSS_PREFIX)).collect();
        if family == ConnectorFamily::CrossAttention {
            if cross_out.is_empty() {
                return Err(Error::manifest(
                    file,
                    "graphs.connector.outputs",
                    "a cross-attention connector must output `cross_key_values.{j}.key|value`",
                ));
            }
            if cross_out != cross_in {
                let missing: Vec<&&str> = cross_out.symmetric_difference(&cross_in).collect();
                return Err(Error::manifest(
                    file,
                    "graphs.decoder.inputs",
                    format!("connector outputs and decoder inputs `cross_key_values.*` differ in {missing:?}"),
                ));
            }
        } else if !cross_in.is_empty() {
            return Err(Error::manifest(
                file,
                "graphs.decoder.inputs",
                "declares `cross_key_values.*` but the connector is not cross-attention",
            ));
        }
    }
    Ok(Graphs { vision, connector, embed, decoder })
}

#[cfg(test)]
mod open_tests;
#[cfg(test)]
mod tests;
