//! Models made elsewhere as zoo variants (issue 15): an onnxruntime-genai folder or an Optimum
//! export becomes `variants/NAME.yaml` with `origin: {kind: imported}` and its files under
//! `onnx/NAME/`, so that `ask`, `eval`, `bench` and `compare` run it as any variant
//! (docs/import.md). A Hugging Face LLaVA checkpoint is the third route, in Python
//! (`python -m lynx_export import hf`), since its graphs must first be exported.
//!
//! The steps, one module each:
//!
//! 1. [`detect`] the layout: `genai_config.json` ([`genai`]) or `config.json` beside `model.onnx`
//!    ([`optimum`]); each reader returns a [`Source`] (sizes, cache names, special ids, decoding
//!    defaults) or an [`Error::Import`] naming the file and field.
//! 2. [`graph`]: the decoder's declared inputs and outputs are held to the configuration, and its
//!    embedding is split out into an `embed` graph (a decoder taking `input_ids`), or an `embed`
//!    graph is written from the checkpoint's matrix ([`checkpoint`], for onnxruntime-genai's
//!    `exclude_embeds`); a split is checked in ONNX Runtime against the decoder it came from.
//! 3. [`text`]: tokenizer, special tokens, the chat template rendered as the prompt.
//! 4. The manifest, read back through [`crate::manifest`]'s validation before it is written,
//!    then the whole variant through [`crate::Zoo::check`] (checksums, sessions, I/O).
//!
//! Nothing is changed in the source folder; the graphs and data files are copied (the decoder
//! rewritten when its embedding moves), every file with its sha256 in the manifest.

pub mod checkpoint;
pub mod genai;
pub mod graph;
pub mod optimum;
pub mod text;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::files::{self, FileKind};
use crate::generate::Strategy;
use crate::manifest::raw::{
    Backbone, ConnectorKind, Dtype, KvLayout, KvUpdate, Open, OriginKind, PaddingSide, PositionIds, RawAxes,
    RawConnector, RawDim, RawFile, RawGeneration, RawGraph, RawGraphs, RawKvCache, RawManifest, RawModel, RawOrigin,
    RawParameters, RawPrompt, RawProvenance, RawTensor, RawTokenizer, RawVisionInput, VisionInput,
};
use crate::manifest::{paths, tensors, yaml, GraphRole, Manifest};
use crate::onnx_proto::{self, ProtoDim, ValueInfo};
use crate::runtime::{GraphBytes, Input, RuntimeOptions, Session};

/// Where the importers' manifests say they came from.
const IMPORTER: &str = "lynx-zoo import";

/// Default `generation.max_new_tokens` when the source says nothing (as `import hf`).
pub const DEFAULT_MAX_NEW_TOKENS: u32 = 64;

/// Largest difference of the split decoder's logits from the original's that passes.
pub const SPLIT_ATOL: f32 = 1e-4;

/// A folder layout the importer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// onnxruntime-genai's model builder (`genai_config.json`).
    Genai,
    /// Hugging Face Optimum's ONNX exporter (`config.json` + `model.onnx`).
    Optimum,
}

impl Layout {
    /// The name used on the command line and in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::Genai => "genai",
            Layout::Optimum => "optimum",
        }
    }

    fn tool(self) -> &'static str {
        match self {
            Layout::Genai => "onnxruntime-genai",
            Layout::Optimum => "Optimum",
        }
    }
}

/// The decoder's sizes, from the layout's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    /// Width.
    pub hidden: u32,
    /// Layers.
    pub layers: u32,
    /// Query heads.
    pub heads: u32,
    /// Key/value heads.
    pub kv_heads: u32,
    /// Width of a head.
    pub head_dim: u32,
    /// Vocabulary (the width of `logits`).
    pub vocab: u32,
    /// Context.
    pub max_positions: u32,
}

/// Decoding defaults of the source (transformers' and onnxruntime-genai's defaults where silent).
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationDefaults {
    /// `greedy`, `beam` or `sample`.
    pub strategy: Strategy,
    /// Beams.
    pub beams: u32,
    /// `max_new_tokens`, when the source names it (onnxruntime-genai's `max_length` is the whole
    /// sequence, not the new tokens).
    pub max_new_tokens: Option<u32>,
    /// `min_new_tokens`.
    pub min_new_tokens: u32,
    /// Beam length penalty.
    pub length_penalty: f32,
    /// No repeated n-grams of this size (0: off).
    pub no_repeat_ngram_size: u32,
    /// Sampling temperature.
    pub temperature: f32,
    /// Sampling top-k (0: off).
    pub top_k: u32,
    /// Sampling top-p.
    pub top_p: f32,
}

impl GenerationDefaults {
    /// Reads the decoding settings of generation_config.json or genai_config.json's `search`
    /// (`section`, for messages); settings the runtime lacks are noted.
    pub fn from_json(doc: &Value, path: &Path, section: &str, notes: &mut Vec<String>) -> Result<GenerationDefaults> {
        let num = |key: &str| doc.get(key).and_then(Value::as_f64);
        let uint = |key: &str| -> Result<Option<u32>> {
            match doc.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v.as_u64().and_then(|n| u32::try_from(n).ok()).map(Some).ok_or_else(|| {
                    Error::import(path, Some(&dotted(section, key)), format!("`{v}`: expected a count"))
                }),
            }
        };
        let beams = uint("num_beams")?.unwrap_or(1).max(1);
        let sample = doc.get("do_sample").and_then(Value::as_bool).unwrap_or(false);
        for (key, neutral) in [("repetition_penalty", 1.0), ("diversity_penalty", 0.0), ("typical_p", 1.0)] {
            if let Some(v) = num(key).filter(|v| (v - neutral).abs() > 1e-9) {
                notes.push(format!("`{}: {v}` has no runtime counterpart and is ignored", dotted(section, key)));
            }
        }
        Ok(GenerationDefaults {
            strategy: if sample {
                Strategy::Sample
            } else if beams > 1 {
                Strategy::Beam
            } else {
                Strategy::Greedy
            },
            beams,
            max_new_tokens: uint("max_new_tokens")?,
            min_new_tokens: uint("min_new_tokens")?.unwrap_or(0),
            length_penalty: num("length_penalty").unwrap_or(1.0) as f32,
            no_repeat_ngram_size: uint("no_repeat_ngram_size")?.unwrap_or(0),
            temperature: num("temperature").filter(|t| *t > 0.0).unwrap_or(1.0) as f32,
            top_k: uint("top_k")?.unwrap_or(50),
            top_p: num("top_p").filter(|p| *p > 0.0 && *p <= 1.0).unwrap_or(1.0) as f32,
        })
    }
}

fn dotted(section: &str, key: &str) -> String {
    if section.is_empty() {
        key.to_string()
    } else {
        format!("{section}.{key}")
    }
}

/// What a layout reader found in the folder.
#[derive(Debug, Clone)]
pub struct Source {
    /// The layout.
    pub layout: Layout,
    /// Its configuration file (`origin.config_sha256`).
    pub config: PathBuf,
    /// The model type (`llama`, `qwen2`): the backbone family.
    pub family: String,
    /// The decoder graph.
    pub decoder: PathBuf,
    /// Sizes.
    pub dims: Dims,
    /// Cache input pattern (`{i}`, `{kv}`).
    pub past: String,
    /// Cache output pattern.
    pub present: String,
    /// Special token ids.
    pub specials: text::SpecialIds,
    /// Decoding defaults.
    pub generation: GenerationDefaults,
    /// Configuration files read.
    pub files: Vec<PathBuf>,
    /// What the runtime does differently.
    pub notes: Vec<String>,
    /// Whether the decoder answers a left-padded row as it answers the row alone (false for
    /// onnxruntime-genai's GroupQueryAttention, which reads the mask as right padding).
    pub padded_batches: bool,
    /// How the decoder's cache is updated: `shared_buffer` where the source runs it so
    /// (onnxruntime-genai's `past_present_share_buffer`), else `concat`.
    pub update: KvUpdate,
}

/// `section.key` of `value` as a string, or an error naming `path` and the field.
pub(crate) fn field_str(path: &Path, value: &Value, section: &str, key: &str) -> Result<String> {
    match value.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(other) => {
            Err(Error::import(path, Some(&dotted(section, key)), format!("`{other}`: expected a non-empty string")))
        }
        None => Err(Error::import(path, Some(&dotted(section, key)), "missing")),
    }
}

/// `section.key` of `value` as a positive count, or an error naming `path` and the field.
pub(crate) fn field_u32(path: &Path, value: &Value, section: &str, key: &str) -> Result<u32> {
    match value.get(key) {
        Some(v) => v.as_u64().and_then(|n| u32::try_from(n).ok()).filter(|n| *n > 0).ok_or_else(|| {
            Error::import(path, Some(&dotted(section, key)), format!("`{v}`: expected a positive integer"))
        }),
        None => Err(Error::import(path, Some(&dotted(section, key)), "missing")),
    }
}

/// The layout of `folder`: onnxruntime-genai (`genai_config.json`) or Optimum (`config.json` with
/// `model.onnx`, or an older Optimum graph, refused later with the reason).
pub fn detect(folder: &Path) -> Result<Layout> {
    if !folder.is_dir() {
        return Err(Error::import(folder, None, "is not a folder"));
    }
    if genai::detect(folder).is_some() {
        return Ok(Layout::Genai);
    }
    if optimum::detect(folder).is_some() {
        return Ok(Layout::Optimum);
    }
    Err(Error::import(
        folder,
        None,
        format!(
            "is neither an onnxruntime-genai folder (`{}`, as `python -m onnxruntime_genai.models.builder` writes) nor \
             an Optimum export (`{}` beside `{}`, as `optimum-cli export onnx --task text-generation-with-past` \
             writes); a Hugging Face checkpoint (config.json with weights) imports with `python -m lynx_export import \
             hf` when it is a LLaVA model",
            genai::CONFIG,
            optimum::CONFIG,
            optimum::MODEL
        ),
    ))
}

/// Reads `folder` as `layout`.
pub fn read_source(folder: &Path, layout: Layout) -> Result<Source> {
    let config = match layout {
        Layout::Genai => folder.join(genai::CONFIG),
        Layout::Optimum => folder.join(optimum::CONFIG),
    };
    if !config.is_file() {
        return Err(Error::import(
            &config,
            None,
            format!("missing: an {} folder holds it (is `{}` another layout?)", layout.tool(), folder.display()),
        ));
    }
    match layout {
        Layout::Genai => genai::read(folder),
        Layout::Optimum => optimum::read(folder),
    }
}

/// What `lynx-zoo import` is asked for, beside the folder.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The variant's name: `variants/NAME.yaml` and `onnx/NAME/`.
    pub name: String,
    /// The zoo root receiving `variants/` and `onnx/` (created when missing).
    pub zoo: PathBuf,
    /// The layout; `None` detects it.
    pub layout: Option<Layout>,
    /// A Hugging Face checkpoint folder whose token embedding becomes the `embed` graph (for a
    /// decoder built without its embedding).
    pub embeddings: Option<PathBuf>,
    /// The prompt template in place of the chat template (`{question}` once).
    pub template: Option<String>,
    /// `generation.max_new_tokens` (else the source's, else 64).
    pub max_new_tokens: Option<u32>,
    /// `origin.source` (default: the folder's name).
    pub source: Option<String>,
    /// `origin.revision` (default: unknown).
    pub revision: Option<String>,
    /// Replace an existing variant of that name.
    pub force: bool,
}

/// The result of an import.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The manifest written.
    pub manifest: PathBuf,
    /// The layout read.
    pub layout: Layout,
    /// Largest |logits| difference of the split decoder from the original (when split).
    pub split_parity: Option<f32>,
    /// What the runtime does differently from the source's own runtime.
    pub notes: Vec<String>,
}

fn valid_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name != "."
        && name != ".."
}

/// A relative location inside a folder (no `..`, not absolute).
fn inside(location: &str) -> bool {
    Path::new(location).components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

fn sha256_bytes(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    paths::hex(&Sha256::digest(bytes))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io("creating", parent, e))?;
    }
    std::fs::write(path, bytes).map_err(|e| Error::io("writing", path, e))
}

/// The decoder as the importer runs it: its bytes, the external data it names (read from the
/// source folder), and its declared I/O.
struct Decoder {
    bytes: Vec<u8>,
    external: Vec<(String, Arc<[u8]>)>,
    inputs: Vec<ValueInfo>,
}

fn read_decoder(path: &Path) -> Result<Decoder> {
    let bytes = files::read(path, FileKind::Graph)?;
    let bad = |e: onnx_proto::ProtoError| Error::import(path, None, format!("is not a readable ONNX model ({e})"));
    let (inputs, _) = onnx_proto::graph_io(&bytes).map_err(bad)?;
    let folder = path.parent().unwrap_or(Path::new("."));
    let mut external = Vec::new();
    for location in onnx_proto::external_locations(&bytes).map_err(bad)? {
        if !inside(&location) {
            return Err(Error::import(
                path,
                None,
                format!("names external data `{location}` outside its folder (absolute or `..`)"),
            ));
        }
        let data = files::read(&folder.join(&location), FileKind::ExternalData)?;
        external.push((location, Arc::from(data)));
    }
    Ok(Decoder { bytes, external, inputs })
}

/// How the runtime pads the imported decoder's batches: on the left where it answers a
/// left-padded row as the row alone (Optimum's); on the right where it reads the mask's row sums as
/// right padding over one shared K/V buffer (onnxruntime-genai's GroupQueryAttention) and each row
/// is read at its own last position (every position's logits, or the importer's head on each
/// row's own last, `head`); else one question at a time (a concatenated cache would put the next
/// step after the padding).
fn batch_padding(source: &Source, decoder_outputs: &[RawTensor], head: Option<graph::LastPosition>) -> PaddingSide {
    let every_position = decoder_outputs
        .iter()
        .find(|t| t.name == tensors::LOGITS)
        .is_some_and(|t| !matches!(t.shape.get(1), Some(RawDim::Fixed(1))));
    let own_last = every_position || head == Some(graph::LastPosition::RowLength);
    match (source.padded_batches, source.update) {
        (true, _) => PaddingSide::Left,
        (false, KvUpdate::SharedBuffer) if own_last => PaddingSide::Right,
        _ => PaddingSide::None,
    }
}

/// Which position [`graph::last_position_logits`] gives the output head of a decoder from `source`:
/// each row's own length over a shared buffer of right-padded rows, else the last position fed.
fn head_position(source: &Source) -> graph::LastPosition {
    match (source.padded_batches, source.update) {
        (false, KvUpdate::SharedBuffer) => graph::LastPosition::RowLength,
        _ => graph::LastPosition::Last,
    }
}

/// A declared shape in the manifest's words: fixed sizes kept, dynamic axes named by role.
fn shape(info: &ValueInfo, names: &[&str]) -> Vec<RawDim> {
    info.dims
        .iter()
        .enumerate()
        .map(|(k, d)| match d {
            ProtoDim::Value(v) => RawDim::Fixed(*v),
            _ => RawDim::Symbol(names.get(k).copied().unwrap_or("dim").to_string()),
        })
        .collect()
}

fn dtype_of(info: &ValueInfo, path: &Path) -> Result<Dtype> {
    match info.elem_type {
        onnx_proto::FLOAT => Ok(Dtype::Float32),
        onnx_proto::INT64 => Ok(Dtype::Int64),
        other => Err(Error::import(
            path,
            Some(&info.name),
            format!(
                "is {}; the runtime feeds float32 embeddings and cache and int64 masks (build a float32 model: \
                 onnxruntime-genai `-p fp32` or `-p int4` with `-e cpu`)",
                onnx_proto::elem_type_name(other)
            ),
        )),
    }
}

/// Holds `size` of tensor `info` (axis `axis`) to what the configuration says, where the graph fixes it.
fn held(info: &ValueInfo, axis: usize, want: u32, what: &str, source: &Source, graph: &Path) -> Result<()> {
    if let Some(ProtoDim::Value(got)) = info.dims.get(axis) {
        if *got != i64::from(want) {
            return Err(Error::import(
                graph,
                Some(&info.name),
                format!(
                    "axis {axis} is {got}, but {} says {what} is {want}",
                    source.config.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned())
                ),
            ));
        }
    }
    Ok(())
}

/// The decoder's manifest entry (without path and checksums), checked against the source: the
/// contract's names, the cache for every layer, nothing else.
fn decoder_io(
    source: &Source,
    inputs: &[ValueInfo],
    outputs: &[ValueInfo],
    graph: &Path,
) -> Result<(Vec<RawTensor>, Vec<RawTensor>, PositionIds)> {
    let d = source.dims;
    let cache =
        crate::manifest::KvCache { past: source.past.clone(), present: source.present.clone(), update: source.update };
    let names = cache.names(d.layers as usize);
    let mut ins = Vec::new();
    let mut positions = PositionIds::Derived;
    for info in inputs {
        let (roles, fixed): (&[&str], Option<(usize, u32, &str)>) = if info.name == tensors::INPUTS_EMBEDS {
            (&["batch", "seq"], Some((2, d.hidden, "the width (hidden_size)")))
        } else if info.name == tensors::ATTENTION_MASK {
            (&["batch", "total"], None)
        } else if info.name == tensors::POSITION_IDS {
            positions = PositionIds::Input;
            (&["batch", "seq"], None)
        } else if names.iter().any(|(p, _)| *p == info.name) {
            (&["batch", "kv_heads", "past"], Some((1, d.kv_heads, "the key/value heads")))
        } else {
            return Err(Error::import(
                graph,
                Some(&info.name),
                format!(
                    "an input the runtime does not feed; it feeds `{}`, `{}`, `{}` and the cache `{}`",
                    tensors::INPUTS_EMBEDS,
                    tensors::ATTENTION_MASK,
                    tensors::POSITION_IDS,
                    source.past
                ),
            ));
        };
        if let Some((axis, want, what)) = fixed {
            held(info, axis, want, what, source, graph)?;
        }
        let is_cache = roles.len() == 3;
        if is_cache {
            held(info, 3, d.head_dim, "the head width (head_size)", source, graph)?;
        }
        let want_type =
            if info.name == tensors::INPUTS_EMBEDS || is_cache { onnx_proto::FLOAT } else { onnx_proto::INT64 };
        if info.elem_type != want_type {
            return Err(Error::import(
                graph,
                Some(&info.name),
                format!(
                    "is {}; expected {}",
                    onnx_proto::elem_type_name(info.elem_type),
                    onnx_proto::elem_type_name(want_type)
                ),
            ));
        }
        let mut s = shape(info, roles);
        if is_cache && s.len() == 4 {
            s[1] = RawDim::Fixed(i64::from(d.kv_heads));
            s[3] = RawDim::Fixed(i64::from(d.head_dim));
        }
        if info.name == tensors::INPUTS_EMBEDS && s.len() == 3 {
            s[2] = RawDim::Fixed(i64::from(d.hidden));
        }
        ins.push(RawTensor { name: info.name.clone(), dtype: dtype_of(info, graph)?, shape: s });
    }
    for (past, _) in &names {
        if !inputs.iter().any(|i| i.name == *past) {
            return Err(Error::import(
                graph,
                Some(past),
                format!(
                    "missing: the decoder must take the cache of every layer (`{}`); an export without the cache \
                     (Optimum's `--task text-generation`) cannot be run step by step: export with \
                     `--task text-generation-with-past`",
                    source.past
                ),
            ));
        }
    }
    let mut outs = Vec::new();
    for info in outputs {
        let mut s = if info.name == tensors::LOGITS {
            held(info, 2, d.vocab, "the vocabulary (vocab_size)", source, graph)?;
            let mut s = shape(info, &["batch", "seq"]);
            if s.len() == 3 {
                s[2] = RawDim::Fixed(i64::from(d.vocab));
            }
            s
        } else if names.iter().any(|(_, p)| *p == info.name) {
            held(info, 1, d.kv_heads, "the key/value heads", source, graph)?;
            held(info, 3, d.head_dim, "the head width (head_size)", source, graph)?;
            shape(info, &["batch", "kv_heads", "total"])
        } else {
            return Err(Error::import(
                graph,
                Some(&info.name),
                format!("an output the runtime does not read; it reads `logits` and the cache `{}`", source.present),
            ));
        };
        if s.len() == 4 {
            s[1] = RawDim::Fixed(i64::from(d.kv_heads));
            s[3] = RawDim::Fixed(i64::from(d.head_dim));
        }
        if info.elem_type != onnx_proto::FLOAT {
            return Err(Error::import(
                graph,
                Some(&info.name),
                format!("is {}; expected float32", onnx_proto::elem_type_name(info.elem_type)),
            ));
        }
        outs.push(RawTensor { name: info.name.clone(), dtype: Dtype::Float32, shape: s });
    }
    for name in std::iter::once(tensors::LOGITS.to_string()).chain(names.iter().map(|(_, p)| p.clone())) {
        if !outputs.iter().any(|o| o.name == name) {
            return Err(Error::import(graph, Some(&name), "missing: an output the runtime reads"));
        }
    }
    if !inputs.iter().any(|i| i.name == tensors::ATTENTION_MASK) {
        return Err(Error::import(graph, Some(tensors::ATTENTION_MASK), "missing: the runtime masks padding with it"));
    }
    Ok((ins, outs, positions))
}

/// Feeds for one prefill of `ids` (batch, seq) under `mask` with an empty cache (positions
/// 0, 1, ... per row).
fn prefill_feed(
    inputs: &[ValueInfo],
    ids_name: &str,
    ids: &ArrayD<i64>,
    embeds: Option<&ArrayD<f32>>,
    mask: &ArrayD<i64>,
    dims: Dims,
) -> Vec<(String, FeedValue)> {
    let (batch, seq) = (ids.shape()[0], ids.shape()[1]);
    let mut feed = Vec::new();
    for info in inputs {
        let value = if info.name == ids_name {
            FeedValue::I64(ids.clone())
        } else if info.name == tensors::INPUTS_EMBEDS {
            FeedValue::F32(embeds.cloned().unwrap_or_else(|| ArrayD::zeros(IxDyn(&[batch, seq, dims.hidden as usize]))))
        } else if info.name == tensors::ATTENTION_MASK {
            FeedValue::I64(mask.clone())
        } else if info.name == tensors::POSITION_IDS {
            FeedValue::I64(ArrayD::from_shape_fn(IxDyn(&[batch, seq]), |i| i[1] as i64))
        } else {
            FeedValue::F32(ArrayD::zeros(IxDyn(&[batch, dims.kv_heads as usize, 0, dims.head_dim as usize])))
        };
        feed.push((info.name.clone(), value));
    }
    feed
}

enum FeedValue {
    F32(ArrayD<f32>),
    I64(ArrayD<i64>),
}

fn run(session: &mut Session, feed: &[(String, FeedValue)], output: &str) -> Result<ArrayD<f32>> {
    let inputs: Vec<(&str, Input<'_>)> = feed
        .iter()
        .map(|(n, v)| {
            (
                n.as_str(),
                match v {
                    FeedValue::F32(a) => Input::F32(a.view()),
                    FeedValue::I64(a) => Input::I64(a.view()),
                },
            )
        })
        .collect();
    let mut out = session.run(&inputs)?;
    Ok(out.take(output)?.view_f32()?.to_owned())
}

/// The rewrite's check: the original decoder, and the rewritten one (after `embed` when the
/// embedding was split out), on the same prompt (token ids spread over the vocabulary, or
/// embeddings drawn for a decoder that takes `inputs_embeds` already): the largest difference of
/// each row's last real position's logits (the rewritten head may give that one only); infinite
/// when one is not finite. With a head on each row's own last position ([`graph::LastPosition::
/// RowLength`]) the prompt is a batch of two, the first row right-padded (7 of 11 positions), so
/// that the per-row index is what is checked; else one row.
fn rewrite_parity(
    original: &Decoder,
    rewritten: &[u8],
    embed: Option<&[u8]>,
    head: Option<graph::LastPosition>,
    new_inputs: &[ValueInfo],
    dims: Dims,
    path: &Path,
) -> Result<f32> {
    let options = RuntimeOptions::new().with_intra_threads(1)?;
    let graph = |model: &[u8]| GraphBytes {
        path: path.to_path_buf(),
        model: Arc::from(model),
        external: original.external.clone(),
    };
    let mut before = Session::from_bytes(&graph(&original.bytes), GraphRole::Decoder, &options)?;
    let mut after = Session::from_bytes(&graph(rewritten), GraphRole::Decoder, &options)?;
    let seq = 11usize;
    let lengths: Vec<usize> = match head {
        Some(graph::LastPosition::RowLength) => vec![7, seq],
        _ => vec![seq],
    };
    let batch = lengths.len();
    let ids = ArrayD::from_shape_fn(IxDyn(&[batch, seq]), |i| {
        ((i[0] * seq + i[1]) as i64 * 7919 + 13) % i64::from(dims.vocab)
    });
    let mask = ArrayD::from_shape_fn(IxDyn(&[batch, seq]), |i| i64::from(i[1] < lengths[i[0]]));
    // the prompt as the rewritten decoder takes it
    let embeds = match embed {
        Some(embed) => {
            let mut embed = Session::from_bytes(&graph(embed), GraphRole::Embed, &options)?;
            let ids = [(tensors::INPUT_IDS.to_string(), FeedValue::I64(ids.clone()))];
            run(&mut embed, &ids, tensors::INPUTS_EMBEDS)?
        }
        None => ArrayD::from_shape_fn(IxDyn(&[batch, seq, dims.hidden as usize]), |i| {
            ((i[0] * 7 + i[1] * 31 + i[2] * 17) % 13) as f32 / 13.0 - 0.5
        }),
    };
    let feed = |inputs: &[ValueInfo]| prefill_feed(inputs, tensors::INPUT_IDS, &ids, Some(&embeds), &mask, dims);
    let want = run(&mut before, &feed(&original.inputs), tensors::LOGITS)?;
    let got = run(&mut after, &feed(new_inputs), tensors::LOGITS)?;
    let (w, g) = (want.shape(), got.shape());
    if w.len() != 3 || g.len() != 3 || w[0] != batch || g[0] != batch || w[2] != g[2] {
        return Err(Error::import(
            path,
            Some(tensors::LOGITS),
            format!("the rewritten decoder gives {g:?}, the original {w:?}"),
        ));
    }
    // a row's last real position: its own in every-position logits, the only one in one-position logits
    let at = |shape: &[usize], r: usize| if shape[1] == 1 { 0 } else { lengths[r] - 1 };
    let mut worst = 0.0f32;
    for r in 0..batch {
        let a = want.index_axis(ndarray::Axis(0), r);
        let b = got.index_axis(ndarray::Axis(0), r);
        let (a, b) = (a.index_axis(ndarray::Axis(0), at(w, r)), b.index_axis(ndarray::Axis(0), at(g, r)));
        for (x, y) in a.iter().zip(b.iter()) {
            let d = (x - y).abs();
            worst = if d.is_finite() { worst.max(d) } else { f32::INFINITY };
        }
    }
    Ok(worst)
}

/// A size class from a parameter count: `7.2b`, `0.5b`, `3.1m`.
fn size_name(params: u64) -> String {
    if params >= 100_000_000 {
        format!("{:.1}b", params as f64 / 1e9)
    } else {
        format!("{:.1}m", params as f64 / 1e6)
    }
}

/// The files this importer writes into `onnx/NAME/` (and replaces with `--force`).
fn owned_files(external: &[(String, Arc<[u8]>)]) -> Vec<String> {
    let mut names: Vec<String> =
        ["decoder.onnx", "embed.onnx", "embed.data", "tokenizer.json"].iter().map(|s| s.to_string()).collect();
    names.extend(external.iter().map(|(l, _)| l.clone()));
    names
}

/// Imports the onnxruntime-genai or Optimum folder `folder` as variant `opts.name` of the zoo at
/// `opts.zoo`; `log` receives progress lines.
pub fn import(folder: &Path, opts: &ImportOptions, log: &mut dyn FnMut(&str)) -> Result<Imported> {
    if !valid_name(&opts.name) {
        return Err(Error::InvalidArgument {
            what: "variant name",
            value: opts.name.clone(),
            expected: "1 to 128 letters, digits, `-`, `_` and `.`".into(),
        });
    }
    let layout = match opts.layout {
        Some(l) => {
            if !folder.is_dir() {
                return Err(Error::import(folder, None, "is not a folder"));
            }
            l
        }
        None => detect(folder)?,
    };
    let source = read_source(folder, layout)?;
    log(&format!("reading {} ({} folder, {} decoder)", folder.display(), layout.tool(), source.family));
    let zoo = &opts.zoo;
    let manifest_path = zoo.join("variants").join(format!("{}.yaml", opts.name));
    let out = zoo.join("onnx").join(&opts.name);
    if (manifest_path.exists() || out.exists()) && !opts.force {
        return Err(Error::InvalidArgument {
            what: "variant",
            value: opts.name.clone(),
            expected: format!(
                "a name not yet in `{zoo}` (variants/{name}.yaml or onnx/{name}/ exists); pass --force to replace it",
                zoo = zoo.display(),
                name = opts.name
            ),
        });
    }

    // The decoder, and the embedding it takes or holds.
    let decoder = read_decoder(&source.decoder)?;
    let takes_ids = decoder.inputs.iter().any(|i| i.name == tensors::INPUT_IDS);
    let takes_embeds = decoder.inputs.iter().any(|i| i.name == tensors::INPUTS_EMBEDS);
    let mut notes = source.notes.clone();
    let mut provenance_files: Vec<PathBuf> = source.files.clone();
    provenance_files.push(source.decoder.clone());
    let (decoder_bytes, embed_bytes, embed_data, split, tied) = match (takes_ids, takes_embeds, &opts.embeddings) {
        (true, false, None) => {
            let hidden = i64::from(source.dims.hidden);
            let split = graph::split_embedding(&decoder.bytes, tensors::INPUT_IDS, tensors::INPUTS_EMBEDS, hidden)
                .map_err(|e| Error::import(&source.decoder, None, e.0))?;
            log(&format!(
                "  split the embedding `{}` ({} x {}) out of the decoder{}",
                split.weight,
                split.vocab.map_or_else(|| "vocab".to_string(), |v| v.to_string()),
                split.hidden,
                if split.tied { "; its matrix is the output head's too, so the decoder keeps it" } else { "" }
            ));
            let graph::Split { decoder: split_decoder, embed, tied, .. } = split;
            (split_decoder, embed, None, true, tied)
        }
        (false, true, Some(dir)) => {
            let e = checkpoint::embedding(dir)?;
            if e.vocab != i64::from(source.dims.vocab) || e.hidden != i64::from(source.dims.hidden) {
                return Err(Error::import(
                    &e.file,
                    Some(&e.name),
                    format!(
                        "is {} x {}, but the decoder's configuration says vocab {} x hidden {}: is `{}` the checkpoint \
                         the decoder was built from?",
                        e.vocab,
                        e.hidden,
                        source.dims.vocab,
                        source.dims.hidden,
                        dir.display()
                    ),
                ));
            }
            log(&format!("  embed graph from `{}` in {} ({}, as float32)", e.name, e.file.display(), e.dtype));
            notes.push(format!("the embed graph holds `{}` of {} ({})", e.name, e.file.display(), e.dtype));
            provenance_files.push(e.file.clone());
            let model =
                graph::embed_from_external(e.vocab, e.hidden, "embed.data", tensors::INPUT_IDS, tensors::INPUTS_EMBEDS)
                    .map_err(|err| Error::import(&e.file, None, err.0))?;
            (decoder.bytes.clone(), model, Some(e.data), false, false)
        }
        (false, true, None) => {
            return Err(Error::import(
                &source.decoder,
                Some(tensors::INPUTS_EMBEDS),
                "the decoder takes `inputs_embeds` (built with onnxruntime-genai's `exclude_embeds`) and the folder has no \
                 embedding graph: pass `--embeddings CHECKPOINT`, the Hugging Face folder it was built from, or build \
                 it without `exclude_embeds` (the importer then splits the embedding out itself)",
            ));
        }
        (true, false, Some(_)) => {
            return Err(Error::InvalidArgument {
                what: "--embeddings",
                value: opts.embeddings.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
                expected: format!(
                    "no --embeddings: `{}` takes `input_ids` and holds its own embedding, which the importer splits out",
                    source.decoder.display()
                ),
            });
        }
        _ => {
            return Err(Error::import(
                &source.decoder,
                None,
                format!(
                    "expected one of the inputs `{}` or `{}`; the decoder has {}",
                    tensors::INPUT_IDS,
                    tensors::INPUTS_EMBEDS,
                    decoder.inputs.iter().map(|i| format!("`{}`", i.name)).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    };
    // The output head on one position per row: a prefill's other positions' logits are never read.
    let which = head_position(&source);
    let (decoder_bytes, head) =
        match graph::last_position_logits(&decoder_bytes, tensors::LOGITS, tensors::ATTENTION_MASK, which)
            .map_err(|e| Error::import(&source.decoder, None, e.0))?
        {
            Some(bytes) => {
                let position = match which {
                    graph::LastPosition::RowLength => "each row's own last position",
                    graph::LastPosition::Last => "the last position fed",
                };
                notes.push(format!("the importer put the output head on {position} (logits (batch, 1, vocab))"));
                log(&format!("  the output head reads {position} only (logits (batch, 1, vocab))"));
                (bytes, Some(which))
            }
            None => (decoder_bytes, None),
        };
    let bad = |e: onnx_proto::ProtoError| Error::import(&source.decoder, None, format!("rewritten: {e}"));
    let (new_inputs, new_outputs) = onnx_proto::graph_io(&decoder_bytes).map_err(bad)?;
    let (inputs, outputs, positions) = decoder_io(&source, &new_inputs, &new_outputs, &source.decoder)?;
    let padding = batch_padding(&source, &outputs, head);
    let (embed_inputs, embed_outputs) = onnx_proto::graph_io(&embed_bytes).map_err(bad)?;

    let split_parity = if split || head.is_some() {
        let embed = split.then_some(embed_bytes.as_slice());
        let diff = rewrite_parity(&decoder, &decoder_bytes, embed, head, &new_inputs, source.dims, &source.decoder)?;
        log(&format!("  rewrite checked in onnx runtime: max |last logits - original's| = {diff:.2e}"));
        if !diff.is_finite() || diff > SPLIT_ATOL {
            return Err(Error::import(
                &source.decoder,
                None,
                format!(
                    "the rewritten decoder (embedding split out, or output head on one position) differs from \
                     the original by {diff:.2e} (not finite, or > {SPLIT_ATOL:e})"
                ),
            ));
        }
        Some(diff)
    } else {
        None
    };

    let text = text::text_spec(folder, &source.specials, opts.template.as_deref())?;
    provenance_files.extend(text.files.iter().cloned());
    notes.extend(text.notes.iter().cloned());
    if text.vocab_len > source.dims.vocab as usize {
        return Err(Error::import(
            folder.join("tokenizer.json"),
            None,
            format!("{} tokens, more than the model's vocabulary {}", text.vocab_len, source.dims.vocab),
        ));
    }
    match padding {
        PaddingSide::Right => notes.push(
            "the decoder reads the attention mask as right padding (GroupQueryAttention's seqlens_k) and its \
             logits are read at each row's own last position: `prompt.padding: right`"
                .to_string(),
        ),
        PaddingSide::None => notes.push(
            "the decoder reads the attention mask as right padding (GroupQueryAttention's seqlens_k): \
             `prompt.padding: none` makes the runtime answer one question at a time"
                .to_string(),
        ),
        PaddingSide::Left => {}
    }

    // Write the files.
    if opts.force {
        for name in owned_files(&decoder.external) {
            let path = out.join(&name);
            if path.is_file() {
                std::fs::remove_file(&path).map_err(|e| Error::io("removing", &path, e))?;
            }
        }
    }
    std::fs::create_dir_all(&out).map_err(|e| Error::io("creating", &out, e))?;
    for (location, bytes) in &decoder.external {
        if location == "embed.data" && embed_data.is_some() {
            return Err(Error::import(
                &source.decoder,
                None,
                "names external data `embed.data`, the file the importer writes the embedding to",
            ));
        }
        write_file(&out.join(location), bytes)?;
    }
    write_file(&out.join("decoder.onnx"), &decoder_bytes)?;
    write_file(&out.join("embed.onnx"), &embed_bytes)?;
    if let Some(data) = &embed_data {
        write_file(&out.join("embed.data"), data)?;
    }
    let tok_bytes = files::read(&folder.join("tokenizer.json"), FileKind::Tokenizer)?;
    write_file(&out.join("tokenizer.json"), &tok_bytes)?;

    let rel = |name: &str| format!("onnx/{}/{name}", opts.name);
    let file = |name: &str, bytes: &[u8]| RawFile { path: rel(name), sha256: sha256_bytes(bytes) };
    let decoder_external: Vec<RawFile> = decoder.external.iter().map(|(l, b)| file(l, b)).collect();
    let embed_external: Vec<RawFile> = match &embed_data {
        Some(data) => vec![file("embed.data", data)],
        None => {
            let locations = onnx_proto::external_locations(&embed_bytes).map_err(bad)?;
            decoder.external.iter().filter(|(l, _)| locations.contains(l)).map(|(l, b)| file(l, b)).collect()
        }
    };
    let embed_io = |infos: &[ValueInfo], roles: &[&str]| -> Result<Vec<RawTensor>> {
        infos
            .iter()
            .map(|i| {
                Ok(RawTensor { name: i.name.clone(), dtype: dtype_of(i, &source.decoder)?, shape: shape(i, roles) })
            })
            .collect()
    };

    // Parameters: the decoder's initializers, and the embedding once.
    let decoder_params = graph::parameter_count(&decoder_bytes).map_err(bad)?;
    let embedding = u64::from(source.dims.vocab) * u64::from(source.dims.hidden);
    let params = decoder_params + if tied { 0 } else { embedding };

    let config_bytes = std::fs::read(&source.config).map_err(|e| Error::io("reading", &source.config, e))?;
    let mut checksums = BTreeMap::new();
    for path in &provenance_files {
        let bytes = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
        // Named as in the folder it was read from (`genai_config.json`), the checkpoint's files
        // by their path as given.
        let key = path.strip_prefix(folder).map_or_else(|_| path.display().to_string(), |p| p.display().to_string());
        checksums.insert(key, yaml::Value::String(sha256_bytes(&bytes)));
    }
    let g = &source.generation;
    let mut other: BTreeMap<String, yaml::Value> = BTreeMap::new();
    let s = |v: &str| yaml::Value::String(v.to_string());
    other.insert("importer".into(), s(&format!("{IMPORTER} {}", layout.as_str())));
    other.insert("lynx_zoo".into(), s(env!("CARGO_PKG_VERSION")));
    other.insert("source_files".into(), yaml::Value::Mapping(checksums.into_iter().map(|(k, v)| (s(&k), v)).collect()));
    other.insert(
        "eos_token_ids".into(),
        yaml::Value::Sequence(text.eos_ids.iter().map(|i| yaml::Value::Number((*i).into())).collect()),
    );
    if let Some(diff) = split_parity {
        let mut parity = serde_norway::Mapping::new();
        parity.insert(s("split_logits"), yaml::Value::Number(serde_norway::Number::from(f64::from(diff))));
        other.insert("parity".into(), yaml::Value::Mapping(parity));
    }
    other.insert("notes".into(), yaml::Value::Sequence(notes.iter().map(|n| s(n)).collect()));
    if let Ok(lib) = crate::runtime::ensure_loaded() {
        other.insert("onnxruntime".into(), s(&lib.version));
    }

    let folder_name = folder
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| folder.display().to_string());
    let origin_source = opts.source.clone().unwrap_or_else(|| folder_name.clone());
    let size = size_name(params);
    let raw = RawManifest {
        schema_version: 1,
        name: opts.name.clone(),
        description: format!(
            "Imported {origin_source}: {} {} decoder ({size}), text only.",
            layout.tool(),
            source.family
        ),
        origin: Some(RawOrigin {
            kind: OriginKind::Imported,
            source: Some(origin_source),
            revision: opts.revision.clone(),
            config_sha256: Some(sha256_bytes(&config_bytes)),
        }),
        axes: RawAxes {
            backbone: Backbone { family: Open::Other(source.family.clone()), flavour: None, size: Open::Other(size) },
            connector: RawConnector { kind: ConnectorKind::None, depth: None, latents: None },
            cross_attention_every: None,
            adapter: None,
            freeze: None,
            resolution: None,
            visual_tokens: None,
            frames: None,
            frame_positions: None,
            data: None,
            prompts: None,
            quantization: None,
            vision_input: RawVisionInput::Named(VisionInput::None),
        },
        changes: None,
        paper: None,
        paper_finding: None,
        seed_of: None,
        model: RawModel {
            hidden: source.dims.hidden,
            layers: source.dims.layers,
            heads: source.dims.heads,
            kv_heads: source.dims.kv_heads,
            head_dim: source.dims.head_dim,
            vocab_size: source.dims.vocab,
            max_positions: source.dims.max_positions,
            cross_attention_layers: Vec::new(),
            vision_dim: None,
            patches: None,
            position_ids: positions,
            kv_cache: Some(RawKvCache {
                past: source.past.clone(),
                present: source.present.clone(),
                layout: KvLayout::Bnsh,
                update: source.update,
            }),
        },
        graphs: RawGraphs {
            vision: None,
            connector: None,
            embed: RawGraph {
                path: rel("embed.onnx"),
                sha256: sha256_bytes(&embed_bytes),
                external_data: embed_external,
                inputs: embed_io(&embed_inputs, &["batch", "seq"])?,
                outputs: embed_io(&embed_outputs, &["batch", "seq"])?,
            },
            decoder: RawGraph {
                path: rel("decoder.onnx"),
                sha256: sha256_bytes(&decoder_bytes),
                external_data: decoder_external,
                inputs,
                outputs,
            },
        },
        preprocess: None,
        video: None,
        tokenizer: RawTokenizer {
            path: rel("tokenizer.json"),
            sha256: sha256_bytes(&tok_bytes),
            bos: text.bos.clone(),
            eos: text.eos.clone(),
            pad: text.pad.clone(),
        },
        prompt: RawPrompt { template: text.template.clone(), padding, image_placeholder: None, add_bos: text.add_bos },
        generation: RawGeneration {
            strategy: g.strategy,
            beams: g.beams,
            max_new_tokens: opts.max_new_tokens.or(g.max_new_tokens).unwrap_or(DEFAULT_MAX_NEW_TOKENS),
            min_new_tokens: g.min_new_tokens,
            length_penalty: g.length_penalty,
            no_repeat_ngram_size: g.no_repeat_ngram_size,
            temperature: g.temperature,
            top_k: g.top_k.min(source.dims.vocab),
            top_p: g.top_p,
        },
        parameters: RawParameters { total: params, trainable: 0 },
        provenance: RawProvenance { other, ..RawProvenance::default() },
        goldens: None,
    };
    let text_yaml = yaml::to_string(&raw)?;
    // The manifest's own validation before anything is written where `list` sees it.
    Manifest::from_yaml(&text_yaml, &manifest_path, zoo)?;
    write_file(&manifest_path, text_yaml.as_bytes())?;
    let checked =
        crate::Zoo::open(zoo).and_then(|z| z.check(&opts.name, &RuntimeOptions::new().with_intra_threads(1)?));
    if let Err(e) = checked {
        let _ = std::fs::remove_file(&manifest_path);
        return Err(e);
    }
    log(&format!("wrote {}", manifest_path.display()));
    Ok(Imported { manifest: manifest_path, layout, split_parity, notes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_that_is_neither_layout_is_refused_with_what_was_expected() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        let e = detect(dir.path()).unwrap_err().to_string();
        assert!(e.contains(&dir.path().display().to_string()), "{e}");
        assert!(e.contains("neither an onnxruntime-genai folder (`genai_config.json`"), "{e}");
        assert!(e.contains("nor an Optimum export (`config.json` beside `model.onnx`"), "{e}");
        let e = detect(&dir.path().join("absent")).unwrap_err().to_string();
        assert!(e.contains("is not a folder"), "{e}");
        // A forced layout names the file it lacks.
        let e = read_source(dir.path(), Layout::Genai).unwrap_err().to_string();
        assert!(e.contains("genai_config.json") && e.contains("missing"), "{e}");
    }

    #[test]
    fn detects_each_layout() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        std::fs::write(dir.path().join("model.onnx"), "").unwrap();
        assert_eq!(detect(dir.path()).unwrap(), Layout::Optimum);
        std::fs::write(dir.path().join("genai_config.json"), "{}").unwrap();
        assert_eq!(detect(dir.path()).unwrap(), Layout::Genai);
    }

    /// A genai_config.json with `model.decoder` as given.
    fn genai_config(decoder: Value) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let doc = serde_json::json!({"model": {"type": "llama", "vocab_size": 100, "context_length": 64,
                                               "eos_token_id": 2, "decoder": decoder}, "search": {}});
        std::fs::write(dir.path().join("genai_config.json"), doc.to_string()).unwrap();
        dir
    }

    #[test]
    fn a_missing_genai_field_names_the_file_and_the_field() {
        let full = serde_json::json!({"filename": "model.onnx", "hidden_size": 8, "num_hidden_layers": 1,
                                      "num_attention_heads": 2, "num_key_value_heads": 1, "head_size": 4});
        assert!(genai::read(genai_config(full.clone()).path()).is_ok());
        for (field, value) in [("num_key_value_heads", None), ("head_size", Some(serde_json::json!("four")))] {
            let mut decoder = full.clone();
            match &value {
                None => {
                    decoder.as_object_mut().unwrap().remove(field);
                }
                Some(v) => decoder[field] = v.clone(),
            }
            let e = genai::read(genai_config(decoder).path()).unwrap_err().to_string();
            assert!(e.contains("genai_config.json"), "{e}");
            assert!(e.contains(&format!("field `model.decoder.{field}`")), "{e}");
            assert!(e.contains(if value.is_none() { "missing" } else { "expected a positive integer" }), "{e}");
        }
        // A multimodal pipeline is refused with the reason and the way out.
        let dir = tempfile::tempdir().unwrap();
        let doc =
            serde_json::json!({"model": {"type": "phi3v", "vision": {"filename": "vision.onnx"}, "decoder": full}});
        std::fs::write(dir.path().join("genai_config.json"), doc.to_string()).unwrap();
        let e = genai::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("field `model.vision`") && e.contains("lynx_export import hf"), "{e}");
        // Another name for a contract tensor.
        let mut renamed = full.clone();
        renamed["inputs"] = serde_json::json!({"attention_mask": "mask"});
        let e = genai::read(genai_config(renamed).path()).unwrap_err().to_string();
        assert!(e.contains("field `model.decoder.inputs.attention_mask`") && e.contains("`mask`"), "{e}");
    }

    #[test]
    fn an_optimum_folder_refuses_older_layouts_and_vision_language_configs() {
        let dir = tempfile::tempdir().unwrap();
        let config = serde_json::json!({"model_type": "llama", "hidden_size": 8, "num_hidden_layers": 1,
                                        "num_attention_heads": 2, "vocab_size": 100, "max_position_embeddings": 64});
        std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
        std::fs::write(dir.path().join("decoder_model_merged.onnx"), "").unwrap();
        assert_eq!(detect(dir.path()).unwrap(), Layout::Optimum);
        let e = optimum::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("use_cache_branch") && e.contains("text-generation-with-past"), "{e}");
        std::fs::write(dir.path().join("model.onnx"), "").unwrap();
        let s = optimum::read(dir.path()).unwrap();
        assert_eq!((s.dims.kv_heads, s.dims.head_dim), (2, 4));
        let vl = serde_json::json!({"model_type": "llava", "text_config": {}, "vision_config": {}});
        std::fs::write(dir.path().join("config.json"), vl.to_string()).unwrap();
        let e = optimum::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("field `text_config`") && e.contains("unsupported architecture"), "{e}");
    }

    #[test]
    fn names_are_checked_before_anything_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let opts = ImportOptions {
            name: "../x".into(),
            zoo: dir.path().to_path_buf(),
            layout: None,
            embeddings: None,
            template: None,
            max_new_tokens: None,
            source: None,
            revision: None,
            force: false,
        };
        let e = import(dir.path(), &opts, &mut |_| {}).unwrap_err().to_string();
        assert!(e.contains("variant name `../x`"), "{e}");
    }
}
