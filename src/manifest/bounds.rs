//! Bounds on every size and count a manifest states, and their agreement with the graphs'
//! declared shapes.
//!
//! A manifest is data from whoever built the zoo; its numbers size buffers (the empty KV cache,
//! pixel tensors, the per-layer tensor names). [`check`] runs on the parsed file before anything
//! is allocated from it, so `layers: 1000000000` is a named error instead of an abort. The bounds
//! are far above any model this runtime can serve on one machine (docs/manifest.md, "Bounds");
//! [`check_shapes`] then holds the sizes to the fixed dimensions the graphs declare, which
//! `Session::check_io` in turn holds to the real graphs.

use std::path::Path;

use super::raw::RawManifest;
use super::tensors;
use super::{Axes, ConnectorFamily, Dim, GraphSpec, Graphs, KvCache, ModelDims};
use crate::error::{Error, Result};

/// Largest `model.hidden` and `model.vision_dim`.
pub const MAX_WIDTH: u32 = 65_536;
/// Largest `model.layers`.
pub const MAX_LAYERS: u32 = 512;
/// Largest `model.heads` (and so `kv_heads`).
pub const MAX_HEADS: u32 = 1_024;
/// Largest `model.head_dim`.
pub const MAX_HEAD_DIM: u32 = 1_024;
/// Largest `model.vocab_size`.
pub const MAX_VOCAB: u32 = 4_194_304;
/// Largest `model.max_positions`.
pub const MAX_POSITIONS: u32 = 1_048_576;
/// Largest `model.patches`, `axes.visual_tokens` and `axes.connector.latents`.
pub const MAX_TOKENS: u32 = 65_536;
/// Largest `axes.resolution` (and `preprocess.size`).
pub const MAX_RESOLUTION: u32 = 4_096;
/// Largest `axes.frames` (and `video.frames`).
pub const MAX_FRAMES: u32 = 256;
/// Most pixels in one sample, `frames x resolution^2` (64 Mi: 768 MiB of float32 RGB).
pub const MAX_SAMPLE_PIXELS: u64 = 1 << 26;
/// Largest `axes.connector.depth`.
pub const MAX_DEPTH: u32 = 64;
/// Largest `axes.adapter.dim` and `axes.adapter.rank`.
pub const MAX_ADAPTER: u32 = 65_536;
/// Largest `generation.beams`.
pub const MAX_BEAMS: u32 = 64;
/// Largest `generation.max_new_tokens`.
pub const MAX_NEW_TOKENS: u32 = 4_096;
/// Largest `generation.no_repeat_ngram_size`.
pub const MAX_NGRAM: u32 = 64;
/// Most inputs or outputs per graph, and external-data files per graph.
pub const MAX_TENSORS: usize = 4_096;
/// Largest tensor rank, and largest fixed dimension, in a declared shape.
pub const MAX_RANK: usize = 8;
/// Largest fixed dimension in a declared shape.
pub const MAX_DIM: i64 = 1 << 31;
/// Longest string field (names, paths, template, tokens), in bytes.
pub const MAX_STRING: usize = 4_096;

/// Every size and count of `raw` within its bound (see the constants).
pub fn check(raw: &RawManifest, file: &Path) -> Result<()> {
    let over = |field: &str, value: u64, max: u64| -> Result<()> {
        if value > max {
            Err(Error::manifest(
                file,
                field,
                format!("`{value}` is over the bound of {max} (docs/manifest.md, Bounds)"),
            ))
        } else {
            Ok(())
        }
    };
    let m = &raw.model;
    for (field, value, max) in [
        ("model.hidden", m.hidden, MAX_WIDTH),
        ("model.layers", m.layers, MAX_LAYERS),
        ("model.heads", m.heads, MAX_HEADS),
        ("model.kv_heads", m.kv_heads, MAX_HEADS),
        ("model.head_dim", m.head_dim, MAX_HEAD_DIM),
        ("model.vocab_size", m.vocab_size, MAX_VOCAB),
        ("model.max_positions", m.max_positions, MAX_POSITIONS),
        ("model.vision_dim", m.vision_dim.unwrap_or(0), MAX_WIDTH),
        ("model.patches", m.patches.unwrap_or(0), MAX_TOKENS),
    ] {
        over(field, value.into(), max.into())?;
    }
    over("model.cross_attention_layers", m.cross_attention_layers.len() as u64, m.layers.into())?;
    let a = &raw.axes;
    for (field, value, max) in [
        ("axes.resolution", a.resolution, MAX_RESOLUTION),
        ("axes.visual_tokens", a.visual_tokens, MAX_TOKENS.min(m.max_positions)),
        ("axes.frames", a.frames, MAX_FRAMES),
        ("axes.cross_attention_every", a.cross_attention_every, m.layers),
        ("axes.connector.depth", a.connector.depth, MAX_DEPTH),
        ("axes.connector.latents", a.connector.latents, MAX_TOKENS),
    ] {
        over(field, value.unwrap_or(0).into(), max.into())?;
    }
    if let Some(ad) = &a.adapter {
        for (field, value, max) in [
            ("axes.adapter.every", ad.every, m.layers),
            ("axes.adapter.dim", ad.dim, MAX_ADAPTER),
            ("axes.adapter.rank", ad.rank, MAX_ADAPTER),
        ] {
            over(field, value.unwrap_or(0).into(), max.into())?;
        }
    }
    if let Some(p) = &raw.preprocess {
        over("preprocess.size", p.size.into(), MAX_RESOLUTION.into())?;
    }
    if let Some(v) = &raw.video {
        over("video.frames", v.frames.into(), MAX_FRAMES.into())?;
    }
    let side = u64::from(a.resolution.unwrap_or(0)).max(raw.preprocess.as_ref().map_or(0, |p| p.size.into()));
    let frames = u64::from(a.frames.unwrap_or(0)).max(raw.video.as_ref().map_or(0, |v| v.frames.into()));
    if frames * side * side > MAX_SAMPLE_PIXELS {
        return Err(Error::manifest(
            file,
            "axes.frames",
            format!(
                "{frames} frames of {side}x{side} are {} pixels per sample, over the bound of {MAX_SAMPLE_PIXELS}",
                frames * side * side
            ),
        ));
    }
    let g = &raw.generation;
    over("generation.beams", g.beams.into(), MAX_BEAMS.into())?;
    over("generation.max_new_tokens", g.max_new_tokens.into(), MAX_NEW_TOKENS.min(m.max_positions).into())?;
    over("generation.no_repeat_ngram_size", g.no_repeat_ngram_size.into(), MAX_NGRAM.into())?;
    over("generation.top_k", g.top_k.into(), m.vocab_size.into())?;

    let graphs = [
        ("vision", raw.graphs.vision.as_ref()),
        ("connector", raw.graphs.connector.as_ref()),
        ("embed", Some(&raw.graphs.embed)),
        ("decoder", Some(&raw.graphs.decoder)),
    ];
    for (role, graph) in graphs {
        let Some(graph) = graph else { continue };
        over(&format!("graphs.{role}.external_data"), graph.external_data.len() as u64, MAX_TENSORS as u64)?;
        for (what, list) in [("inputs", &graph.inputs), ("outputs", &graph.outputs)] {
            over(&format!("graphs.{role}.{what}"), list.len() as u64, MAX_TENSORS as u64)?;
            for t in list {
                let field = format!("graphs.{role}.{what}.{}.shape", t.name);
                over(&field, t.shape.len() as u64, MAX_RANK as u64)?;
                for d in &t.shape {
                    match d {
                        super::raw::RawDim::Fixed(n) if *n > MAX_DIM => {
                            return Err(Error::manifest(file, &field, format!("dimension `{n}` is over {MAX_DIM}")))
                        }
                        super::raw::RawDim::Symbol(s) if s.len() > MAX_STRING => {
                            return Err(Error::manifest(
                                file,
                                &field,
                                format!("an axis name is over {MAX_STRING} bytes"),
                            ))
                        }
                        _ => {}
                    }
                }
                strings(file, &format!("graphs.{role}.{what}"), [&t.name])?;
            }
        }
        strings(file, &format!("graphs.{role}.path"), [&graph.path])?;
        for d in &graph.external_data {
            strings(file, &format!("graphs.{role}.external_data"), [&d.path])?;
        }
    }
    let t = &raw.tokenizer;
    strings(file, "tokenizer", [&t.path, &t.bos, &t.eos, &t.pad])?;
    strings(file, "prompt.template", [&raw.prompt.template])?;
    strings(file, "prompt.image_placeholder", raw.prompt.image_placeholder.iter())?;
    if let Some(o) = &raw.origin {
        strings(file, "origin", o.source.iter().chain(&o.revision).chain(&o.config_sha256))?;
    }
    if let super::raw::Open::Other(s) = &a.backbone.family {
        strings(file, "axes.backbone.family", [s])?;
    }
    if let super::raw::Open::Other(s) = &a.backbone.size {
        strings(file, "axes.backbone.size", [s])?;
    }
    if let Some(kv) = &raw.model.kv_cache {
        strings(file, "model.kv_cache", [&kv.past, &kv.present])?;
    }
    strings(file, "name", [&raw.name])?;
    Ok(())
}

fn strings<'a>(file: &Path, field: &str, values: impl IntoIterator<Item = &'a String>) -> Result<()> {
    for v in values {
        if v.len() > MAX_STRING {
            return Err(Error::manifest(file, field, format!("a value of {} bytes is over {MAX_STRING}", v.len())));
        }
    }
    Ok(())
}

/// The sizes in `model` and `axes` agree with every fixed dimension the graphs declare (a named
/// axis such as `batch` or `seq` is free).
pub fn check_shapes(graphs: &Graphs, axes: &Axes, model: &ModelDims, kv: &KvCache, file: &Path) -> Result<()> {
    let expect = |spec: &GraphSpec, tensor: &str, output: bool, rank: usize, dims: &[(usize, usize, &str)]| {
        let list = if output { &spec.outputs } else { &spec.inputs };
        let what = if output { "outputs" } else { "inputs" };
        let Some(t) = list.iter().find(|t| t.name == tensor) else { return Ok(()) };
        let field = format!("graphs.{}.{what}.{tensor}.shape", spec.role);
        if t.shape.len() != rank {
            return Err(Error::manifest(file, &field, format!("has rank {}, expected {rank}", t.shape.len())));
        }
        for &(axis, value, source) in dims {
            if let Dim::Fixed(n) = t.shape[axis] {
                if n != value {
                    return Err(Error::manifest(
                        file,
                        &field,
                        format!("dimension {axis} is `{n}` but `{source}` is `{value}`"),
                    ));
                }
            }
        }
        Ok(())
    };
    let (res, patches, vdim) = (axes.resolution as usize, model.patches, model.vision_dim);
    if let Some(vision) = &graphs.vision {
        expect(
            vision,
            tensors::PIXEL_VALUES,
            false,
            4,
            &[(1, 3, "RGB"), (2, res, "axes.resolution"), (3, res, "axes.resolution")],
        )?;
        expect(
            vision,
            tensors::IMAGE_FEATURES,
            true,
            3,
            &[(1, patches, "model.patches"), (2, vdim, "model.vision_dim")],
        )?;
    }
    if let Some(conn) = &graphs.connector {
        let frames = axes.frames as usize;
        expect(
            conn,
            tensors::IMAGE_FEATURES,
            false,
            4,
            &[(1, frames, "axes.frames"), (2, patches, "model.patches"), (3, vdim, "model.vision_dim")],
        )?;
        let tokens = axes.visual_tokens.map(|v| v as usize);
        if axes.connector.family() == ConnectorFamily::Prefix {
            // A fixed token axis (the resampler's latents) is the variant's visual tokens; one that
            // grows with the frames (the projector's) is named, so free.
            let mut dims = Vec::new();
            if let Some(v) = tokens {
                dims.push((1, v, "axes.visual_tokens"));
            }
            dims.push((2, model.hidden, "model.hidden"));
            expect(conn, tensors::VISUAL_EMBEDS, true, 3, &dims)?
        }
        for t in conn.outputs.iter().filter(|t| t.name.starts_with(tensors::CROSS_PREFIX)) {
            let mut dims = vec![(1, model.kv_heads, "model.kv_heads"), (3, model.head_dim, "model.head_dim")];
            if let Some(v) = tokens {
                dims.push((2, v, "axes.visual_tokens"));
            }
            expect(conn, &t.name, true, 4, &dims)?;
        }
    }
    expect(&graphs.embed, tensors::INPUTS_EMBEDS, true, 3, &[(2, model.hidden, "model.hidden")])?;
    let decoder = &graphs.decoder;
    expect(decoder, tensors::INPUTS_EMBEDS, false, 3, &[(2, model.hidden, "model.hidden")])?;
    expect(decoder, tensors::LOGITS, true, 3, &[(2, model.vocab_size, "model.vocab_size")])?;
    let cache = [(1, model.kv_heads, "model.kv_heads"), (3, model.head_dim, "model.head_dim")];
    // (batch, kv_heads, past|total, head_dim): grouped-query attention has kv_heads < heads.
    for (past, present) in kv.names(model.layers) {
        expect(decoder, &past, false, 4, &cache)?;
        expect(decoder, &present, true, 4, &cache)?;
    }
    Ok(())
}
