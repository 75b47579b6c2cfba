//! The decoder graph of an imported folder: its embedding split out into an `embed` graph, or an
//! `embed` graph written from a checkpoint's embedding matrix.
//!
//! The runtime runs `embed` (`input_ids` -> `inputs_embeds`) and a decoder that takes
//! `inputs_embeds` (docs/contract.md section 2), so that visual tokens can sit among the text's.
//! Optimum's decoder and onnxruntime-genai's (built without `exclude_embeds`) take `input_ids` and
//! look the embedding up inside. [`split_embedding`] moves that lookup into a graph of its own:
//!
//! ```text
//!   before:  input_ids (B, S) int64 --Gather(W (V, D))--> e (B, S, D) --> ... decoder ...
//!
//!   embed:   input_ids (B, S) int64 --Gather(W)--> inputs_embeds (B, S, D)
//!   decoder: inputs_embeds (B, S, D) float32 --Identity--> e (B, S, D) --> ... unchanged ...
//! ```
//!
//! Only the lookup's node, the graph input and (when nothing else reads it) the initializer `W`
//! change; every other field of the model is copied byte for byte, so the rest of the graph --
//! GroupQueryAttention, rotary caches, external-data references -- is what the tool wrote. `W`
//! keeps its storage: an external tensor still points into the folder's data file (which the
//! `embed` graph then lists too), an inline one moves inline into `embed.onnx`. The edit works on
//! the protobuf wire format (`crate::onnx_proto`), as the rest of the zoo reads ONNX: a Python
//! `onnx` round trip would be shorter to write, but would make the Rust CLI depend on a Python
//! environment, and would re-serialise (and, past 2 GiB, re-lay-out) the whole model.

use std::collections::BTreeSet;

use crate::onnx_proto::{self, raw_fields, write, ProtoDim, ProtoError, RawField, ValueInfo, Wire};

type Walk<T> = std::result::Result<T, ProtoError>;

/// Why a graph cannot be split (the message names the tensor or node, and the way out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitError(pub String);

impl From<ProtoError> for SplitError {
    fn from(e: ProtoError) -> Self {
        SplitError(format!("is not a readable ONNX model ({e})"))
    }
}

/// A decoder with its embedding moved out.
#[derive(Debug)]
pub struct Split {
    /// The decoder, now taking `inputs_embeds`.
    pub decoder: Vec<u8>,
    /// `input_ids` -> `inputs_embeds`.
    pub embed: Vec<u8>,
    /// Rows of the embedding matrix (when it is an initializer, not computed).
    pub vocab: Option<i64>,
    /// Its width (`inputs_embeds`' last axis).
    pub hidden: i64,
    /// The matrix's tensor name.
    pub weight: String,
    /// Whether the decoder still holds the matrix's initializers (tied input and output embeddings).
    pub tied: bool,
}

/// A node, parsed as far as the split needs.
struct Node<'a> {
    /// The graph's field, key and length included.
    raw: &'a [u8],
    /// The NodeProto itself.
    body: &'a [u8],
    inputs: Vec<String>,
    outputs: Vec<String>,
    name: String,
    op_type: String,
    domain: String,
    /// `axis` attribute, when present.
    axis: Option<i64>,
    /// Names read inside the node's subgraphs (`If`/`Loop` bodies), which may name outer tensors.
    inner_reads: BTreeSet<String>,
}

fn parse_node<'a>(bytes: &'a [u8], raw: &'a [u8]) -> Walk<Node<'a>> {
    let mut n = Node {
        raw,
        body: bytes,
        inputs: Vec::new(),
        outputs: Vec::new(),
        name: String::new(),
        op_type: String::new(),
        domain: String::new(),
        axis: None,
        inner_reads: BTreeSet::new(),
    };
    for field in raw_fields(bytes) {
        let field = field?;
        match (field.number, field.wire) {
            (1, Wire::Len(s)) => n.inputs.push(onnx_proto::utf8(s)?),
            (2, Wire::Len(s)) => n.outputs.push(onnx_proto::utf8(s)?),
            (3, Wire::Len(s)) => n.name = onnx_proto::utf8(s)?,
            (4, Wire::Len(s)) => n.op_type = onnx_proto::utf8(s)?,
            (7, Wire::Len(s)) => n.domain = onnx_proto::utf8(s)?,
            (5, Wire::Len(attribute)) => {
                let (mut name, mut int) = (None, None);
                for a in raw_fields(attribute) {
                    let a = a?;
                    match (a.number, a.wire) {
                        (1, Wire::Len(s)) => name = Some(onnx_proto::utf8(s)?),
                        (3, Wire::Varint(v)) => int = Some(v as i64),
                        (6 | 11, Wire::Len(graph)) => reads_in_graph(graph, 0, &mut n.inner_reads)?,
                        _ => {}
                    }
                }
                if name.as_deref() == Some("axis") {
                    n.axis = int;
                }
            }
            _ => {}
        }
    }
    Ok(n)
}

/// Every node input named anywhere in `graph` and its subgraphs.
fn reads_in_graph(graph: &[u8], depth: usize, out: &mut BTreeSet<String>) -> Walk<()> {
    if depth > onnx_proto::MAX_GRAPH_DEPTH {
        return Err(ProtoError(format!("graphs nest deeper than {} levels", onnx_proto::MAX_GRAPH_DEPTH)));
    }
    for field in raw_fields(graph) {
        let field = field?;
        if let (1, Wire::Len(node_bytes)) = (field.number, field.wire) {
            for f in raw_fields(node_bytes) {
                let f = f?;
                match (f.number, f.wire) {
                    (1, Wire::Len(s)) => {
                        out.insert(onnx_proto::utf8(s)?);
                    }
                    (5, Wire::Len(attribute)) => {
                        for a in raw_fields(attribute) {
                            let a = a?;
                            if let (6 | 11, Wire::Len(g)) = (a.number, a.wire) {
                                reads_in_graph(g, depth + 1, out)?;
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

/// An initializer: name, dims, element type, raw field.
struct Initializer<'a> {
    raw: &'a [u8],
    name: String,
    dims: Vec<i64>,
    data_type: i64,
}

fn parse_initializer<'a>(bytes: &'a [u8], raw: &'a [u8]) -> Walk<Initializer<'a>> {
    let mut t = Initializer { raw, name: String::new(), dims: Vec::new(), data_type: 0 };
    for field in raw_fields(bytes) {
        let field = field?;
        match (field.number, field.wire) {
            (1, Wire::Varint(d)) => t.dims.push(d as i64),
            (1, Wire::Len(packed)) => {
                let mut rest = packed;
                while !rest.is_empty() {
                    let (v, used) = varint(rest)?;
                    t.dims.push(v as i64);
                    rest = &rest[used..];
                }
            }
            (2, Wire::Varint(d)) => t.data_type = d as i64,
            (8, Wire::Len(s)) => t.name = onnx_proto::utf8(s)?,
            _ => {}
        }
    }
    Ok(t)
}

fn varint(bytes: &[u8]) -> Walk<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err(ProtoError("a truncated packed varint".to_string()))
}

/// A graph's nodes, initializers, inputs and outputs, parsed as far as the rewrites need.
struct Parts<'a> {
    nodes: Vec<Node<'a>>,
    initializers: Vec<Initializer<'a>>,
    inputs: Vec<ValueInfo>,
    outputs: Vec<ValueInfo>,
}

fn parts(graph: &[u8]) -> Walk<Parts<'_>> {
    let mut p = Parts { nodes: Vec::new(), initializers: Vec::new(), inputs: Vec::new(), outputs: Vec::new() };
    for field in raw_fields(graph) {
        let field = field?;
        match (field.number, field.wire) {
            (1, Wire::Len(b)) => p.nodes.push(parse_node(b, field.raw)?),
            (5, Wire::Len(b)) => p.initializers.push(parse_initializer(b, field.raw)?),
            (11, Wire::Len(b)) => p.inputs.push(onnx_proto::value_info(b)?),
            (12, Wire::Len(b)) => p.outputs.push(onnx_proto::value_info(b)?),
            _ => {}
        }
    }
    Ok(p)
}

/// What [`edit_graph`] does with one field of a graph.
enum Edit {
    Keep,
    Drop,
    /// These bytes (whole fields, keys included) in its place.
    Replace(Vec<u8>),
}

/// `graph` with each field kept, dropped or replaced as `edit` says (it gets the field and, for a
/// node, the node's index), then `extra` (whole fields) appended.
fn edit_graph(graph: &[u8], extra: &[u8], mut edit: impl FnMut(&RawField<'_>, usize) -> Walk<Edit>) -> Walk<Vec<u8>> {
    let mut out = Vec::with_capacity(graph.len() + extra.len());
    let mut node = 0usize;
    for field in raw_fields(graph) {
        let field = field?;
        match edit(&field, node)? {
            Edit::Keep => out.extend_from_slice(field.raw),
            Edit::Drop => {}
            Edit::Replace(bytes) => out.extend_from_slice(&bytes),
        }
        if field.number == 1 {
            node += 1;
        }
    }
    out.extend_from_slice(extra);
    Ok(out)
}

/// One field's bytes.
fn field_bytes(number: u64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write::bytes(&mut out, number, body);
    out
}

/// `model` with `graph` as its main graph, every other field as it was.
fn with_graph(model: &[u8], graph: &[u8]) -> Walk<Vec<u8>> {
    let mut out = Vec::with_capacity(model.len() + 2048);
    for field in raw_fields(model) {
        let field = field?;
        if field.number == 7 {
            write::bytes(&mut out, 7, graph);
        } else {
            out.extend_from_slice(field.raw);
        }
    }
    Ok(out)
}

/// The main graph's bytes and the model's other top-level fields.
fn graph_of(model: &[u8]) -> Walk<&[u8]> {
    let mut graph = None;
    for field in raw_fields(model) {
        let field = field?;
        if let (7, Wire::Len(g)) = (field.number, field.wire) {
            graph = Some(g);
        }
    }
    graph.ok_or_else(|| ProtoError("the model has no graph".to_string()))
}

/// A node's bytes: inputs, outputs, name, op type (default domain).
fn node_bytes(inputs: &[&str], outputs: &[&str], name: &str, op_type: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for i in inputs {
        write::bytes(&mut out, 1, i.as_bytes());
    }
    for o in outputs {
        write::bytes(&mut out, 2, o.as_bytes());
    }
    write::bytes(&mut out, 3, name.as_bytes());
    write::bytes(&mut out, 4, op_type.as_bytes());
    out
}

/// The `embed` model: the nodes computing the matrix (none when it is an initializer), then
/// `ids` -> Gather(matrix) -> `embeds`; the IR version and operator sets of `model` (the decoder
/// it came from). `nodes` and `initializers` are raw graph fields (key included).
fn embed_model(
    model: &[u8],
    nodes: &[&[u8]],
    initializers: &[&[u8]],
    matrix: &str,
    ids: &[u8],
    embeds: &[u8],
) -> Walk<Vec<u8>> {
    let mut out = Vec::new();
    for field in raw_fields(model) {
        let field = field?;
        if let (1, Wire::Varint(_)) | (8, Wire::Len(_)) = (field.number, field.wire) {
            out.extend_from_slice(field.raw);
        }
    }
    write::bytes(&mut out, 2, b"lynx-zoo import");
    let mut graph = Vec::new();
    let ids_name = onnx_proto::value_info(ids)?.name;
    let embeds_name = onnx_proto::value_info(embeds)?.name;
    for n in nodes {
        graph.extend_from_slice(n);
    }
    write::bytes(&mut graph, 1, &node_bytes(&[matrix, &ids_name], &[&embeds_name], "embed", "Gather"));
    write::bytes(&mut graph, 2, b"embed");
    for t in initializers {
        graph.extend_from_slice(t);
    }
    write::bytes(&mut graph, 11, ids);
    write::bytes(&mut graph, 12, embeds);
    write::bytes(&mut out, 7, &graph);
    Ok(out)
}

/// Moves the embedding lookup of `model` (a decoder reading `ids`) into a graph of its own; the
/// decoder then reads `embeds` (float32, (batch, seq, `hidden`)) in `ids`' place.
///
/// The lookup's matrix is an initializer (Optimum), or computed from initializers by a few nodes
/// (onnxruntime-genai with tied embeddings: `Transpose` of the output head's matrix); those nodes
/// go into the `embed` graph too, and leave the decoder when nothing else there reads them.
///
/// Refused, with the reason: `ids` missing or not an int64 (batch, seq) input; no lookup, or more
/// than one; a lookup that is not a plain `Gather` on axis 0 (a quantized `GatherBlockQuantized`);
/// a matrix that depends on a graph input; other nodes that read `ids` (the split would have to
/// rebuild what they compute from the token values).
pub fn split_embedding(model: &[u8], ids: &str, embeds: &str, hidden: i64) -> Result<Split, SplitError> {
    let graph = graph_of(model)?;
    let Parts { nodes, initializers, inputs, .. } = parts(graph)?;
    let ids_info = inputs
        .into_iter()
        .find(|i| i.name == ids)
        .ok_or_else(|| SplitError(format!("has no input `{ids}` to split the embedding from")))?;
    if ids_info.elem_type != onnx_proto::INT64 || ids_info.dims.len() != 2 {
        return Err(SplitError(format!(
            "input `{ids}` is {} of rank {}; expected int64 (batch, seq)",
            onnx_proto::elem_type_name(ids_info.elem_type),
            ids_info.dims.len()
        )));
    }
    let reads = |n: &Node<'_>, name: &str| n.inputs.iter().any(|i| i == name) || n.inner_reads.contains(name);
    let readers: Vec<usize> = (0..nodes.len()).filter(|&k| reads(&nodes[k], ids)).collect();
    let lookups: Vec<usize> =
        readers.iter().copied().filter(|&k| nodes[k].inputs.get(1).map(String::as_str) == Some(ids)).collect();
    let [at] = lookups[..] else {
        return Err(SplitError(format!(
            "`{ids}` is read by {} nodes as indices ({}); expected one embedding lookup",
            lookups.len(),
            lookups.iter().map(|&k| format!("`{}` {}", nodes[k].name, nodes[k].op_type)).collect::<Vec<_>>().join(", ")
        )));
    };
    let lookup = &nodes[at];
    if lookup.op_type != "Gather" || !(lookup.domain.is_empty() || lookup.domain == "ai.onnx") {
        return Err(SplitError(format!(
            "the embedding lookup `{}` is a `{}` (domain `{}`), not a plain `Gather`: a quantized embedding \
             cannot be split; build the decoder with `--extra_options exclude_embeds=true` and import it with \
             `--embeddings CHECKPOINT`",
            lookup.name, lookup.op_type, lookup.domain
        )));
    }
    if lookup.axis.unwrap_or(0) != 0 || lookup.inputs.len() != 2 || lookup.outputs.len() != 1 {
        return Err(SplitError(format!("the embedding lookup `{}` is not a Gather of rows (axis 0)", lookup.name)));
    }
    if let Some(&other) = readers.iter().find(|&&k| k != at) {
        return Err(SplitError(format!(
            "`{ids}` is read by `{}` ({}) besides the embedding lookup; the split moves only a lookup that is \
             its sole reader",
            nodes[other].name, nodes[other].op_type
        )));
    }

    // What computes the matrix: nodes back to initializers (in graph order, which is topological).
    let matrix = lookup.inputs[0].clone();
    let mut ancestors = BTreeSet::new();
    let mut leaves = BTreeSet::new();
    let mut todo = vec![matrix.clone()];
    while let Some(tensor) = todo.pop() {
        if tensor.is_empty() || leaves.contains(&tensor) {
            continue;
        }
        if initializers.iter().any(|t| t.name == tensor) {
            leaves.insert(tensor);
        } else if let Some(k) = nodes.iter().position(|n| n.outputs.contains(&tensor)) {
            if ancestors.insert(k) {
                todo.extend(nodes[k].inputs.iter().cloned());
                todo.extend(nodes[k].inner_reads.iter().cloned());
            }
        } else {
            return Err(SplitError(format!(
                "the embedding matrix `{matrix}` depends on `{tensor}`, which is neither an initializer nor computed \
                 from initializers"
            )));
        }
    }
    if ancestors.len() > 16 {
        return Err(SplitError(format!(
            "the embedding matrix `{matrix}` is computed by {} nodes; the split moves a lookup of an initializer or \
             of a few nodes over initializers",
            ancestors.len()
        )));
    }
    if let Some(t) = initializers.iter().find(|t| leaves.contains(&t.name) && t.data_type != onnx_proto::FLOAT) {
        return Err(SplitError(format!(
            "the embedding matrix comes from `{}`, which is {}; the runtime feeds float32 `{embeds}`: build a \
             float32 model (onnxruntime-genai: `-p fp32`, or `-p int4` with `-e cpu`)",
            t.name,
            onnx_proto::elem_type_name(t.data_type)
        )));
    }
    // What stays in the decoder: every node but the lookup, and the matrix's nodes only while
    // something left there still reads them.
    let mut removed: BTreeSet<usize> = BTreeSet::from([at]);
    loop {
        let before = removed.len();
        for &k in &ancestors {
            let read_elsewhere = nodes[k]
                .outputs
                .iter()
                .any(|o| nodes.iter().enumerate().any(|(j, n)| !removed.contains(&j) && reads(n, o)));
            if !read_elsewhere {
                removed.insert(k);
            }
        }
        if removed.len() == before {
            break;
        }
    }
    let kept_reads = |name: &str| nodes.iter().enumerate().any(|(j, n)| !removed.contains(&j) && reads(n, name));
    let tied = leaves.iter().any(|l| kept_reads(l));
    let vocab = match initializers.iter().find(|t| t.name == matrix) {
        Some(t) if t.dims.len() == 2 => {
            if t.dims[1] != hidden {
                return Err(SplitError(format!(
                    "the embedding matrix `{matrix}` is {:?}; the configuration's width is {hidden}",
                    t.dims
                )));
            }
            Some(t.dims[0])
        }
        Some(t) => {
            return Err(SplitError(format!(
                "the embedding matrix `{matrix}` has shape {:?}; expected (vocab, hidden)",
                t.dims
            )))
        }
        None => None,
    };
    let embeds_info = write::value_info(
        embeds,
        onnx_proto::FLOAT,
        &[ids_info.dims[0].clone(), ids_info.dims[1].clone(), ProtoDim::Value(hidden)],
    );

    // The decoder: every field as it was, but the lookup (now an Identity of `embeds`), the
    // matrix's nodes and initializers no longer read there, and the input (now `embeds`).
    let new_graph = edit_graph(graph, &[], |field, k| {
        Ok(match (field.number, field.wire) {
            (1, _) if k == at => {
                Edit::Replace(field_bytes(1, &node_bytes(&[embeds], &[&lookup.outputs[0]], &lookup.name, "Identity")))
            }
            (1, _) if removed.contains(&k) => Edit::Drop,
            (5, Wire::Len(b)) => {
                let name = onnx_proto::tensor_name(b)?.unwrap_or_default();
                if !leaves.contains(&name) || kept_reads(&name) {
                    Edit::Keep
                } else {
                    Edit::Drop
                }
            }
            (11, Wire::Len(b)) if onnx_proto::value_info(b)?.name == ids => {
                Edit::Replace(field_bytes(11, &embeds_info))
            }
            _ => Edit::Keep,
        })
    })?;
    let decoder = with_graph(model, &new_graph)?;
    let ids_raw = write::value_info(ids, onnx_proto::INT64, &ids_info.dims);
    let matrix_nodes: Vec<&[u8]> = ancestors.iter().map(|&k| nodes[k].raw).collect();
    let matrix_inits: Vec<&[u8]> = initializers.iter().filter(|t| leaves.contains(&t.name)).map(|t| t.raw).collect();
    let embed = embed_model(model, &matrix_nodes, &matrix_inits, &matrix, &ids_raw, &embeds_info)?;
    Ok(Split { decoder, embed, vocab, hidden, weight: matrix, tied })
}

/// Elements of every initializer of the main graph (what a parameter count means for a graph;
/// packed low-bit weights count their stored elements).
pub fn parameter_count(model: &[u8]) -> Walk<u64> {
    let mut total = 0u64;
    for field in raw_fields(graph_of(model)?) {
        let field = field?;
        if let (5, Wire::Len(b)) = (field.number, field.wire) {
            let t = parse_initializer(b, field.raw)?;
            total = total.saturating_add(t.dims.iter().map(|&d| d.max(0) as u64).product::<u64>());
        }
    }
    Ok(total)
}

/// An `embed` model whose matrix (`vocab` x `hidden` float32) is stored in the external-data file
/// `location` (next to the model) from offset 0.
pub fn embed_from_external(vocab: i64, hidden: i64, location: &str, ids: &str, embeds: &str) -> Walk<Vec<u8>> {
    let weight_name = "embed_tokens.weight";
    let length = (vocab * hidden * 4) as u64;
    let tensor = write::external_tensor(weight_name, onnx_proto::FLOAT, &[vocab, hidden], location, length);
    let mut weight = Vec::new();
    write::bytes(&mut weight, 5, &tensor);
    let batch = ProtoDim::Param("batch".into());
    let seq = ProtoDim::Param("seq".into());
    let ids_raw = write::value_info(ids, onnx_proto::INT64, &[batch.clone(), seq.clone()]);
    let embeds_raw = write::value_info(embeds, onnx_proto::FLOAT, &[batch, seq, ProtoDim::Value(hidden)]);
    // IR version 8 and opset 17: the exporter's (docs/contract.md section 2).
    let mut model = Vec::new();
    write::uint(&mut model, 1, 8);
    let mut opset = Vec::new();
    write::bytes(&mut opset, 1, b"");
    write::uint(&mut opset, 2, 17);
    write::bytes(&mut model, 8, &opset);
    // embed_model copies the IR version and opsets from `model`, then adds the graph.
    embed_model(&model, &[], &[weight.as_slice()], weight_name, &ids_raw, &embeds_raw)
}

/// A node's bytes (default domain) with int attributes (`(name, value)`, `AttributeProto.INT`).
fn node_with(inputs: &[&str], outputs: &[&str], name: &str, op_type: &str, ints: &[(&str, i64)]) -> Vec<u8> {
    let mut out = node_bytes(inputs, outputs, name, op_type);
    for (attr, value) in ints {
        let mut a = Vec::new();
        write::bytes(&mut a, 1, attr.as_bytes());
        write::uint(&mut a, 3, *value as u64); // int64 as a varint (two's complement for negatives)
        write::uint(&mut a, 20, 2); // AttributeProto.INT
        write::bytes(&mut out, 5, &a);
    }
    out
}

/// An int64 initializer of `dims` (empty: a scalar) holding `values`.
fn int64_initializer(name: &str, dims: &[i64], values: &[i64]) -> Vec<u8> {
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    write::tensor(name, onnx_proto::INT64, dims, &raw)
}

/// Which position of each row the output head reads after [`last_position_logits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastPosition {
    /// Each row's own last fed position, from the mask's row sum: rows padded on the right over a
    /// shared K/V buffer (onnxruntime-genai's GroupQueryAttention).
    RowLength,
    /// The last position fed, the same for every row: rows padded on the left, or one at a time.
    Last,
}

/// Rewrites a decoder that computes logits for every position so that its output head reads one
/// position per row: the logits become (batch, 1, vocab), and a prefill of S tokens runs the head
/// (a (hidden x vocab) product, a quarter of a 0.5B model's prefill) once per row instead of S
/// times. The head is the node writing `logits`, a `MatMul` or `MatMulNBits` whose first input is
/// the hidden states (batch, seq, hidden); a `GatherElements` (per-row index, [`LastPosition`]) or
/// a `Gather` (the last position) of those states is put in front of it. Every other field of the
/// model is kept byte for byte. `Ok(None)`, the model left as it is: no `logits` output (the
/// importer's I/O check says so), logits already of one position, another head, `logits` read
/// inside the graph too, an opset before 13, or a graph rewritten before.
pub fn last_position_logits(
    model: &[u8],
    logits: &str,
    mask: &str,
    which: LastPosition,
) -> Result<Option<Vec<u8>>, SplitError> {
    let graph = graph_of(model)?;
    let Parts { nodes, outputs, .. } = parts(graph)?;
    // (a missing output is the importer's I/O check's to report, with its name)
    let Some(info) = outputs.into_iter().find(|o| o.name == logits) else {
        return Ok(None);
    };
    if info.dims.len() != 3 || info.dims[1] == ProtoDim::Value(1) || default_opset(model)? < 13 {
        return Ok(None); // (ReduceSum and Unsqueeze take their axes as inputs since opset 13)
    }
    let p = "lynx_last/";
    let read = |n: &Node<'_>, name: &str| n.inputs.iter().any(|i| i == name) || n.inner_reads.contains(name);
    let clash = nodes.iter().any(|n| n.name.starts_with(p) || n.outputs.iter().any(|o| o.starts_with(p)));
    if clash || nodes.iter().any(|n| read(n, logits)) {
        return Ok(None); // rewritten before, or the logits are read inside the graph too
    }
    let Some(at) = nodes.iter().position(|n| n.outputs.iter().any(|o| o == logits)) else {
        return Ok(None);
    };
    let head = &nodes[at];
    let known = matches!(
        (head.op_type.as_str(), head.domain.as_str()),
        ("MatMul", "" | "ai.onnx") | ("MatMulNBits", "com.microsoft")
    );
    if !known || head.inputs.is_empty() {
        return Ok(None);
    }
    let x = head.inputs[0].clone();
    let t = |s: &str| format!("{p}{s}");
    let mut inits: Vec<Vec<u8>> =
        vec![int64_initializer(&t("one"), &[], &[1]), int64_initializer(&t("axis1"), &[1], &[1])];
    let gathered = t("hidden");
    // (op, inputs, output, int attributes): `@x` is the head's input, `@mask` the attention mask,
    // every other name this rewrite's own (prefixed)
    type Step = (&'static str, &'static [&'static str], &'static str, &'static [(&'static str, i64)]);
    let common: &[Step] = &[
        ("Shape", &["@x"], "x_shape", &[]),
        ("Gather", &["x_shape", "one"], "seq", &[("axis", 0)]),
        ("Sub", &["seq", "one"], "seq_last", &[]),
    ];
    let steps: &[Step] = match which {
        LastPosition::Last => {
            inits.push(int64_initializer(&t("axis0"), &[1], &[0]));
            &[
                ("Unsqueeze", &["seq_last", "axis0"], "index", &[]),
                ("Gather", &["@x", "index"], "hidden", &[("axis", 1)]),
            ]
        }
        LastPosition::RowLength => {
            inits.push(int64_initializer(&t("zero"), &[], &[0]));
            inits.push(int64_initializer(&t("axes12"), &[2], &[1, 2]));
            inits.push(int64_initializer(&t("ones2"), &[2], &[1, 1]));
            inits.push(int64_initializer(&t("two"), &[1], &[2]));
            inits.push(int64_initializer(&t("three"), &[1], &[3]));
            // a row's last real position among those fed: min(row sum - 1, seq - 1) -- its own last
            // token in a prefill of right-padded rows, the one position of a decode step (as
            // GroupQueryAttention's seqlens_k, and the exporter's gqa.py, count it)
            &[
                ("ReduceSum", &["@mask", "axis1"], "rows", &[("keepdims", 0)]),
                ("Sub", &["rows", "one"], "own_last", &[]),
                ("Max", &["own_last", "zero"], "own_last_0", &[]),
                ("Min", &["own_last_0", "seq_last"], "last", &[]),
                ("Unsqueeze", &["last", "axes12"], "last3", &[]),
                ("Slice", &["x_shape", "two", "three"], "width", &[]),
                ("Concat", &["ones2", "width"], "index_shape", &[("axis", 0)]),
                ("Expand", &["last3", "index_shape"], "index", &[]),
                ("GatherElements", &["@x", "index"], "hidden", &[("axis", 1)]),
            ]
        }
    };
    let added: Vec<Vec<u8>> = common
        .iter()
        .chain(steps)
        .map(|(op, inputs, output, ints)| {
            let inputs: Vec<String> = inputs
                .iter()
                .map(|i| match *i {
                    "@x" => x.clone(),
                    "@mask" => mask.to_string(),
                    local => t(local),
                })
                .collect();
            let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
            node_with(&inputs, &[&t(output)], &t(&format!("{op}_{output}")), op, ints)
        })
        .collect();
    // the head's node with the gathered states as its first input, every other field as it was
    let mut new_head = Vec::with_capacity(head.raw.len());
    let mut first = true;
    for field in raw_fields(head.body) {
        let field = field?;
        if let (1, Wire::Len(_), true) = (field.number, field.wire, first) {
            write::bytes(&mut new_head, 1, gathered.as_bytes());
            first = false;
        } else {
            new_head.extend_from_slice(field.raw);
        }
    }
    let extra: Vec<u8> = inits.iter().flat_map(|init| field_bytes(5, init)).collect();
    let new_graph = edit_graph(graph, &extra, |field, k| {
        Ok(match (field.number, field.wire) {
            (1, _) if k == at => {
                Edit::Replace(added.iter().chain([&new_head]).flat_map(|n| field_bytes(1, n)).collect())
            }
            (12, Wire::Len(b)) if onnx_proto::value_info(b)?.name == logits => {
                let dims = [info.dims[0].clone(), ProtoDim::Value(1), info.dims[2].clone()];
                Edit::Replace(field_bytes(12, &write::value_info(logits, info.elem_type, &dims)))
            }
            _ => Edit::Keep,
        })
    })?;
    Ok(Some(with_graph(model, &new_graph)?))
}

/// The model's version of the default operator set (0 when it declares none).
fn default_opset(model: &[u8]) -> Walk<i64> {
    let mut version = 0;
    for field in raw_fields(model) {
        let field = field?;
        if let (8, Wire::Len(opset)) = (field.number, field.wire) {
            let (mut domain, mut v) = (String::new(), 0i64);
            for f in raw_fields(opset) {
                let f = f?;
                match (f.number, f.wire) {
                    (1, Wire::Len(d)) => domain = onnx_proto::utf8(d)?,
                    (2, Wire::Varint(x)) => v = x as i64,
                    _ => {}
                }
            }
            if domain.is_empty() || domain == "ai.onnx" {
                version = v;
            }
        }
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model: ids -> Gather(W) -> e -> MatMul(W2) -> logits, W inline; `extra` adds a node
    /// reading `ids`.
    fn toy(extra: Option<&str>, tied: bool) -> Vec<u8> {
        let w = write::tensor("W", onnx_proto::FLOAT, &[5, 3], &[0u8; 60]);
        let mut graph = Vec::new();
        write::bytes(&mut graph, 1, &node_bytes(&["W", "input_ids"], &["e"], "lookup", "Gather"));
        let head = if tied { "W" } else { "W2" };
        write::bytes(&mut graph, 1, &node_bytes(&["e", head], &["logits"], "head", "MatMul"));
        if let Some(op) = extra {
            write::bytes(&mut graph, 1, &node_bytes(&["input_ids"], &["s"], "other", op));
        }
        write::bytes(&mut graph, 5, &w);
        let b = ProtoDim::Param("b".into());
        let s = ProtoDim::Param("s".into());
        write::bytes(&mut graph, 11, &write::value_info("input_ids", 7, &[b.clone(), s.clone()]));
        write::bytes(&mut graph, 12, &write::value_info("logits", 1, &[b, s, ProtoDim::Value(5)]));
        let mut model = Vec::new();
        write::uint(&mut model, 1, 8);
        write::bytes(&mut model, 7, &graph);
        model
    }

    #[test]
    fn splits_a_lookup_into_an_embed_graph_and_an_identity() {
        let split = split_embedding(&toy(None, false), "input_ids", "inputs_embeds", 3).unwrap();
        assert_eq!((split.vocab, split.hidden, split.tied), (Some(5), 3, false));
        let (inputs, outputs) = onnx_proto::graph_io(&split.decoder).unwrap();
        assert_eq!(inputs[0].name, "inputs_embeds");
        assert_eq!(inputs[0].dims, vec![ProtoDim::Param("b".into()), ProtoDim::Param("s".into()), ProtoDim::Value(3)]);
        assert_eq!(outputs[0].name, "logits");
        let (inputs, outputs) = onnx_proto::graph_io(&split.embed).unwrap();
        assert_eq!((inputs[0].name.as_str(), inputs[0].elem_type), ("input_ids", 7));
        assert_eq!((outputs[0].name.as_str(), outputs[0].elem_type), ("inputs_embeds", 1));
        // The matrix moved (not tied): the decoder no longer holds it.
        let names = |m: &[u8]| -> Vec<String> {
            raw_fields(graph_of(m).unwrap())
                .filter_map(|f| match f.unwrap() {
                    f if f.number == 5 => match f.wire {
                        Wire::Len(b) => onnx_proto::tensor_name(b).unwrap(),
                        _ => None,
                    },
                    _ => None,
                })
                .collect()
        };
        assert!(names(&split.decoder).is_empty());
        assert_eq!(names(&split.embed), vec!["W".to_string()]);
        // Tied: the decoder keeps it for its head.
        let tied = split_embedding(&toy(None, true), "input_ids", "inputs_embeds", 3).unwrap();
        assert!(tied.tied);
        assert_eq!(names(&tied.decoder), vec!["W".to_string()]);
    }

    #[test]
    fn refuses_what_it_cannot_split_and_says_why() {
        let err = |m: Vec<u8>, ids: &str| split_embedding(&m, ids, "inputs_embeds", 3).unwrap_err().0;
        assert!(err(toy(Some("Shape"), false), "input_ids").contains("read by `other` (Shape) besides"));
        assert!(err(toy(None, false), "tokens").contains("no input `tokens`"));
        assert!(err(vec![0x3a, 0x05, 0x01], "input_ids").contains("not a readable ONNX model"));
    }

    #[test]
    fn writes_an_embed_graph_over_external_data() {
        let m = embed_from_external(7, 4, "embed.data", "input_ids", "inputs_embeds").unwrap();
        assert_eq!(onnx_proto::external_locations(&m).unwrap(), BTreeSet::from(["embed.data".to_string()]));
        let (inputs, outputs) = onnx_proto::graph_io(&m).unwrap();
        assert_eq!(inputs.len(), 1);
        assert_eq!(outputs[0].dims.last(), Some(&ProtoDim::Value(4)));
    }

    /// ids (b, s) -> Gather(E (5, 3)) -> e -> MatMul(H (3, 4)) -> logits (b, s, 4); the mask an
    /// input the graph does not read; opset `opset` (0: none declared).
    fn runnable(opset: u64) -> Vec<u8> {
        let f32s = |name: &str, dims: &[i64], values: &[f32]| {
            write::tensor(
                name,
                onnx_proto::FLOAT,
                dims,
                &values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(),
            )
        };
        let e: Vec<f32> = (0..15).map(|k| k as f32 * 0.5 - 3.0).collect();
        let h: Vec<f32> = (0..12).map(|k| (k as f32 * 0.37).sin()).collect();
        let mut graph = Vec::new();
        write::bytes(&mut graph, 1, &node_bytes(&["E", "input_ids"], &["e"], "lookup", "Gather"));
        write::bytes(&mut graph, 1, &node_bytes(&["e", "H"], &["logits"], "head", "MatMul"));
        write::bytes(&mut graph, 5, &f32s("E", &[5, 3], &e));
        write::bytes(&mut graph, 5, &f32s("H", &[3, 4], &h));
        let b = ProtoDim::Param("batch".into());
        write::bytes(&mut graph, 11, &write::value_info("input_ids", 7, &[b.clone(), ProtoDim::Param("seq".into())]));
        write::bytes(
            &mut graph,
            11,
            &write::value_info("attention_mask", 7, &[b.clone(), ProtoDim::Param("total".into())]),
        );
        write::bytes(
            &mut graph,
            12,
            &write::value_info("logits", 1, &[b, ProtoDim::Param("seq".into()), ProtoDim::Value(4)]),
        );
        let mut model = Vec::new();
        write::uint(&mut model, 1, 8);
        if opset > 0 {
            let mut o = Vec::new();
            write::uint(&mut o, 2, opset);
            write::bytes(&mut model, 8, &o);
        }
        write::bytes(&mut model, 7, &graph);
        model
    }

    fn logits(model: &[u8], ids: &[[i64; 4]; 2], mask: &[[i64; 4]; 2]) -> ndarray::ArrayD<f32> {
        use crate::runtime::{GraphBytes, Input, RuntimeOptions, Session};
        let graph = GraphBytes { path: "toy.onnx".into(), model: std::sync::Arc::from(model), external: vec![] };
        let options = RuntimeOptions::new().with_intra_threads(1).unwrap();
        let mut s = Session::from_bytes(&graph, crate::manifest::GraphRole::Decoder, &options).unwrap();
        let ids = ndarray::Array2::from_shape_fn((2, 4), |(r, c)| ids[r][c]).into_dyn();
        let mask = ndarray::Array2::from_shape_fn((2, 4), |(r, c)| mask[r][c]).into_dyn();
        let mut out =
            s.run(&[("input_ids", Input::I64(ids.view())), ("attention_mask", Input::I64(mask.view()))]).unwrap();
        out.take("logits").unwrap().view_f32().unwrap().to_owned()
    }

    #[test]
    fn the_output_head_reads_each_rows_own_last_position_or_the_last_one() {
        let model = runnable(17);
        let ids = [[1, 2, 3, 0], [4, 3, 2, 1]];
        let mask = [[1, 1, 1, 0], [1, 1, 1, 1]]; // row 0 right-padded: its last token is at 2
        let every = logits(&model, &ids, &mask);
        assert_eq!(every.shape(), &[2, 4, 4]);
        let own = last_position_logits(&model, "logits", "attention_mask", LastPosition::RowLength).unwrap().unwrap();
        let got = logits(&own, &ids, &mask);
        assert_eq!(got.shape(), &[2, 1, 4]);
        for (row, at) in [(0, 2), (1, 3)] {
            for v in 0..4 {
                assert_eq!(got[[row, 0, v]], every[[row, at, v]], "row {row}");
            }
        }
        let (_, outputs) = onnx_proto::graph_io(&own).unwrap();
        assert_eq!(outputs[0].dims[1], ProtoDim::Value(1));
        let last = last_position_logits(&model, "logits", "attention_mask", LastPosition::Last).unwrap().unwrap();
        let got = logits(&last, &ids, &mask);
        for row in 0..2 {
            for v in 0..4 {
                assert_eq!(got[[row, 0, v]], every[[row, 3, v]]);
            }
        }
        // already one position, or an opset before 13 (axes as attributes): kept as it is
        assert!(last_position_logits(&own, "logits", "attention_mask", LastPosition::RowLength).unwrap().is_none());
        assert!(last_position_logits(&runnable(0), "logits", "attention_mask", LastPosition::Last).unwrap().is_none());
    }
}
