"""A zoo decoder's self-attention as ONNX Runtime's GroupQueryAttention over one K/V buffer.

The exporter traces `models/decoder.py` into plain ONNX operators: per layer, rotary embedding on
q and k (slices, negation, concatenation), past + new keys and values concatenated into a new
`present`, the causal and padding mask built from `attention_mask`, and the attention itself --
about 75 nodes per layer, and a `present` copied whole on every step. This rewrite keeps every
weight (the initializers, and their external data files, are not touched) and replaces, per
layer, everything between the q/k/v projections and the output projection by one
`com.microsoft.GroupQueryAttention` node, the operator onnxruntime-genai's builder emits:

- rotary inside the operator (`do_rotary`, half rotation as `rotate_half`), from cos/sin caches of
  `max_positions` rows computed from `rope_theta` -- the graph's own `position_ids * inv_freq`;
- the valid length per row from `attention_mask` (`seqlens_k` = row sum - 1, the total length its
  width), so the graph has no `position_ids` input (`model.position_ids: derived`);
- past and present one buffer (`model.kv_cache.update: shared_buffer`): the runtime binds a
  (batch, kv_heads, prompt + new tokens, head_dim) buffer as both, and the operator writes each
  step's keys and values into it in place. GroupQueryAttention reads a row's tokens from the start
  of the buffer, so rows cannot be left-padded: the manifest says `prompt.padding: none` and the
  runtime answers a batch one question at a time.

The LM head then reads the last position only (`logits` (batch, 1, vocab)): generation uses no
other. Cross-attention blocks, adapters and LoRA paths stay as they are. GPT-2-style decoders
(learned positions, no rotary) are not rewritten.

`python -m lynx_export gqa VARIANT... [--zoo ROOT]` rewrites each variant's decoder in place,
checks it against the former graph in ONNX Runtime (a left-unpadded prefill and decode steps,
logits and every present) and updates the manifest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from . import yaml_io
from .graph_edit import copy, producers, prune, topological
from .graphs import kv_name
from .onnx_io import difference, ort_session, replace_checked, sha256_file

MS_DOMAIN = "com.microsoft"
# The export revision (build.EXPORT_REVISION) whose decoders are these graphs; a rewritten manifest says it.
REVISION = 6


@dataclass(frozen=True)
class DecoderShape:
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    max_positions: int
    rope_theta: float
    rotary: bool = True  # llama; GPT-2 adds learned positions to the embeddings instead


def _projection(graph: onnx.GraphProto, prod: dict, layer: int, proj: str) -> str:
    """The (B, S, D) output of layer `layer`'s `proj` (q_proj, k_proj, v_proj): the tensor the
    attention's head split reshapes (`prod`: [`graph_edit.producers`] of `graph`)."""
    scope = f"/decoder/layers.{layer}/attn/"
    hits = []
    for n in graph.node:
        if n.op_type == "Reshape" and n.name.startswith(scope) and n.name[len(scope):].startswith("Reshape"):
            src = prod.get(n.input[0])
            if src is not None and src.name.startswith(f"{scope}{proj}/"):
                hits.append(n.input[0])
    if len(hits) != 1:
        raise ValueError(f"decoder graph: layer {layer}: expected one head split of `{proj}`, found {len(hits)}")
    return hits[0]


def _merged_heads(graph: onnx.GraphProto, prod: dict, layer: int) -> str:
    """The (B, S, D) attention output of layer `layer` before its output projection: the head merge,
    the one Reshape of the attention's own scope that reshapes a transposed tensor."""
    scope = f"/decoder/layers.{layer}/attn/"
    hits = [n.output[0] for n in graph.node
            if n.op_type == "Reshape" and n.name.startswith(scope) and "/" not in n.name[len(scope):]
            and (src := prod.get(n.input[0])) is not None and src.op_type == "Transpose" and src.name.startswith(scope)]
    if len(hits) != 1:
        raise ValueError(f"decoder graph: layer {layer}: expected one head merge before the output projection, "
                         f"found {len(hits)}; not a graph of this exporter's decoder")
    return hits[0]


def rope_caches(shape: DecoderShape) -> tuple[np.ndarray, np.ndarray]:
    """(max_positions, head_dim / 2) cos and sin of `position * inv_freq`, as the traced graph
    computes them: float32 angles (`models/decoder.py`), the functions rounded from float64."""
    dh = shape.head_dim
    inv_freq = (1.0 / (shape.rope_theta ** (np.arange(0, dh, 2, dtype=np.float32) / np.float32(dh)))).astype(np.float32)
    angles = np.arange(shape.max_positions, dtype=np.float32)[:, None] * inv_freq[None, :]  # float32
    return np.cos(angles.astype(np.float64)).astype(np.float32), np.sin(angles.astype(np.float64)).astype(np.float32)


def rewrite(model: onnx.ModelProto, shape: DecoderShape) -> onnx.ModelProto:
    """The decoder `model` (left as it is) with GroupQueryAttention self-attention; see the module
    docstring."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    inputs = {i.name for i in g.input}
    if "position_ids" not in inputs or "attention_mask" not in inputs:
        raise ValueError("decoder graph: expected `attention_mask` and `position_ids` inputs")
    rope = ["gqa.cos_cache", "gqa.sin_cache"] if shape.rotary else []

    # seqlens_k (B,) int32 = row sums - 1; total_sequence_length () int32 = the mask's width
    one = numpy_helper.from_array(np.array(1, dtype=np.int64), "gqa.one")
    axis1 = numpy_helper.from_array(np.array([1], dtype=np.int64), "gqa.axis1")
    g.initializer.extend([one, axis1])
    if shape.rotary:
        cos, sin = rope_caches(shape)
        g.initializer.extend([numpy_helper.from_array(cos, "gqa.cos_cache"), numpy_helper.from_array(sin, "gqa.sin_cache")])
    new_nodes = [
        helper.make_node("ReduceSum", ["attention_mask", "gqa.axis1"], ["gqa.row_sums"], name="/gqa/ReduceSum", keepdims=0),
        helper.make_node("Sub", ["gqa.row_sums", "gqa.one"], ["gqa.seqlens_k64"], name="/gqa/Sub"),
        helper.make_node("Cast", ["gqa.seqlens_k64"], ["gqa.seqlens_k"], name="/gqa/Cast", to=TensorProto.INT32),
        helper.make_node("Shape", ["attention_mask"], ["gqa.mask_shape"], name="/gqa/Shape"),
        helper.make_node("Gather", ["gqa.mask_shape", "gqa.one"], ["gqa.total64"], name="/gqa/Gather", axis=0),
        helper.make_node("Cast", ["gqa.total64"], ["gqa.total"], name="/gqa/Cast_1", to=TensorProto.INT32),
    ]

    presents = {kv_name("present", i, kv) for i in range(shape.layers) for kv in ("key", "value")}
    prod = producers(g)  # the traced graph's; the rewiring below renames no node outputs
    for i in range(shape.layers):
        q, k, v = (_projection(g, prod, i, p) for p in ("q_proj", "k_proj", "v_proj"))
        merged = _merged_heads(g, prod, i)
        out = f"gqa.layers.{i}.attn_out"
        new_nodes.append(helper.make_node(
            "GroupQueryAttention",
            [q, k, v, kv_name("past", i, "key"), kv_name("past", i, "value"), "gqa.seqlens_k", "gqa.total", *rope],
            [out, kv_name("present", i, "key"), kv_name("present", i, "value")],
            name=f"/decoder/layers.{i}/attn/GroupQueryAttention", domain=MS_DOMAIN,
            num_heads=shape.heads, kv_num_heads=shape.kv_heads, do_rotary=int(shape.rotary), rotary_interleaved=0,
            scale=float(shape.head_dim) ** -0.5))
        for n in g.node:  # the output projection (or, int8, its input quantiser) reads the operator's output
            n.input[:] = [out if x == merged else x for x in n.input]

    # the LM head over each row's last position only (a trace that reads the batch's last position,
    # `last_only`, has its slice bypassed: with right-padded rows that is a padding position)
    norm_in = _final_norm_input(g)
    hidden = prod[norm_in].input[0] if _is_last_position(g, prod, prod.get(norm_in)) else norm_in
    for n in g.node:
        if n.name.startswith("/decoder/norm/"):
            n.input[:] = [LAST_HIDDEN if x == norm_in else x for x in n.input]
    g.initializer.extend(_last_rows_initializers(_hidden(g)))
    new_nodes.extend(_last_rows(hidden))

    # the former producers of `present` go; then everything no output needs
    keep = [copy(n) for n in g.node if not (set(n.output) & presents)]
    del g.node[:]
    g.node.extend(topological(keep + new_nodes, g, "decoder graph"))
    prune(g)
    # rotary: no position_ids, positions come from the mask's row sums (GPT-2 keeps the input for
    # its learned positions)
    if shape.rotary:
        kept_inputs = [i for i in g.input if i.name != "position_ids"]
        del g.input[:]
        g.input.extend(kept_inputs)
        for p in m.metadata_props:  # ecosystem.py's map of input roles
            if p.key == "lynx.inputs":
                roles = json.loads(p.value)
                roles.pop("position_ids", None)
                p.value = json.dumps(roles, separators=(",", ":"))
    for o in g.output:
        if o.name == "logits":
            dims = o.type.tensor_type.shape.dim
            dims[1].ClearField("dim_param")
            dims[1].dim_value = 1
    # shapes recorded for the former tensors (the int8 quantiser's shape inference) no longer
    # hold (the LM head's input is one position now): ONNX Runtime would plan buffer reuse by them
    del g.value_info[:]
    if not any(op.domain == MS_DOMAIN for op in m.opset_import):
        m.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    return m


def _final_norm_input(g: onnx.GraphProto) -> str:
    """The hidden states entering the final norm (`/decoder/norm/`): its one input from outside."""
    inside = {o for n in g.node if n.name.startswith("/decoder/norm/") for o in n.output}
    inits = {t.name for t in g.initializer}
    outer = {x for n in g.node if n.name.startswith("/decoder/norm/") for x in n.input
             if x and x not in inside and x not in inits and not x.startswith("/decoder/norm/")}
    if len(outer) != 1:
        raise ValueError(f"decoder graph: expected one input to the final norm, found {sorted(outer)}")
    return outer.pop()


LAST_HIDDEN = "gqa.last_hidden"


def _is_last_position(g: onnx.GraphProto, prod: dict, node: onnx.NodeProto | None) -> bool:
    """Whether `node` is a Slice of the last position on axis 1 (`x[:, -1:]`, as traced)."""
    if node is None or node.op_type != "Slice" or len(node.input) < 4:
        return False
    inits = {t.name: t for t in g.initializer}

    def value(name: str):
        if name in inits:
            return numpy_helper.to_array(inits[name]).tolist()
        p = prod.get(name)
        if p is not None and p.op_type == "Constant" and p.attribute and p.attribute[0].name == "value":
            return numpy_helper.to_array(p.attribute[0].t).tolist()
        return None

    ends = value(node.input[2])
    return (value(node.input[1]) == [-1] and ends is not None and ends[0] >= 2**31 - 1
            and value(node.input[3]) == [1] and (len(node.input) < 5 or value(node.input[4]) == [1]))


def _hidden(g: onnx.GraphProto) -> int:
    dims = next(i for i in g.input if i.name == "inputs_embeds").type.tensor_type.shape.dim
    if not dims[-1].HasField("dim_value"):
        raise ValueError("decoder graph: `inputs_embeds` has no fixed width")
    return dims[-1].dim_value


def _last_rows_initializers(hidden: int) -> list[onnx.TensorProto]:
    return [numpy_helper.from_array(np.array([1, 2], dtype=np.int64), "gqa.axes12"),
            numpy_helper.from_array(np.array([1, 1, hidden], dtype=np.int64), "gqa.row_width")]


def _last_rows(hidden_states: str) -> list[onnx.NodeProto]:
    """(B, 1, D) `LAST_HIDDEN`: each row's last own position of the (B, S, D) `hidden_states`,
    min(seqlens_k, S - 1) -- a right-padded prompt's row ends at its own length, a decode step
    feeds one position. Needs `gqa.seqlens_k64`, `gqa.one` and [`_last_rows_initializers`]."""
    return [
        helper.make_node("Shape", [hidden_states], ["gqa.hidden_shape"], name="/gqa/Shape_hidden"),
        helper.make_node("Gather", ["gqa.hidden_shape", "gqa.one"], ["gqa.seq"], name="/gqa/Gather_seq", axis=0),
        helper.make_node("Sub", ["gqa.seq", "gqa.one"], ["gqa.seq_last"], name="/gqa/Sub_seq"),
        helper.make_node("Min", ["gqa.seqlens_k64", "gqa.seq_last"], ["gqa.last_index"], name="/gqa/Min_last"),
        helper.make_node("Unsqueeze", ["gqa.last_index", "gqa.axes12"], ["gqa.last_index3"], name="/gqa/Unsqueeze_last"),
        helper.make_node("Expand", ["gqa.last_index3", "gqa.row_width"], ["gqa.last_rows"], name="/gqa/Expand_last"),
        helper.make_node("GatherElements", [hidden_states, "gqa.last_rows"], [LAST_HIDDEN], name="/gqa/Gather_last",
                         axis=1),
    ]


def relast(model: onnx.ModelProto) -> onnx.ModelProto:
    """A decoder rewritten at revision 5 (the LM head on the batch's last position, `/gqa/Slice_last`)
    with the LM head on each row's own last position instead (left as it is otherwise), so that
    right-padded rows answer as they do alone."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    sliced = [n for n in g.node if n.name == "/gqa/Slice_last"]
    if len(sliced) != 1:
        raise ValueError("decoder graph: expected the revision-5 rewrite's `/gqa/Slice_last` node")
    norm_in = sliced[0].input[0]
    keep = [copy(n) for n in g.node if n.name != "/gqa/Slice_last"]
    g.initializer.extend(_last_rows_initializers(_hidden(g)))
    del g.node[:]
    g.node.extend(topological(keep + _last_rows(norm_in), g, "decoder graph"))
    prune(g)
    return m


# -- the check against the former graph ----------------------------------------------------------

def _dims(value_info, sizes: dict[str, int]) -> tuple[int, ...]:
    return tuple(d.dim_value if d.HasField("dim_value") else sizes[d.dim_param]
                 for d in value_info.type.tensor_type.shape.dim)


def check(former: Path, rewritten: Path, shape: DecoderShape, batch: int = 2, prompt: int = 12,
          steps: int = 4, seed: int = 0) -> float:
    """Runs both decoders in ONNX Runtime on the same unpadded prompt and decode steps (the former
    with its concatenated cache and `position_ids`, the rewritten with one buffer bound as past and
    present) and returns the largest difference of the last logits and every present. Raises when
    a greedy choice differs."""
    import onnxruntime as ort

    old, new = ort_session(former, threads=1), ort_session(rewritten, threads=1)
    rng = np.random.default_rng(seed)
    old_inputs = {i.name: i for i in onnx.load(str(former), load_external_data=False).graph.input}
    hidden = _dims(old_inputs["inputs_embeds"], {"batch": batch, "seq": 1})[-1]
    total = prompt + steps
    x = (rng.standard_normal((batch, total, hidden)) * 0.5).astype(np.float32)
    # inputs besides the prompt and the cache (cross-attention K/V), the same for both graphs
    extra = {}
    for name, vi in old_inputs.items():
        if name.startswith("cross_key_values."):
            extra[name] = (rng.standard_normal(_dims(vi, {"batch": batch, "memory": 8})) * 0.5).astype(np.float32)
    kv = [(i, k) for i in range(shape.layers) for k in ("key", "value")]
    past = {kv_name("past", i, k): np.zeros((batch, shape.kv_heads, 0, shape.head_dim), np.float32) for i, k in kv}
    buffers = {(i, k): ort.OrtValue.ortvalue_from_numpy(np.zeros((batch, shape.kv_heads, total, shape.head_dim), np.float32))
               for i, k in kv}
    worst = 0.0
    for t in range(steps + 1):
        lo, hi = (0, prompt) if t == 0 else (prompt + t - 1, prompt + t)
        mask = np.ones((batch, hi), np.int64)
        feeds = {"inputs_embeds": x[:, lo:hi], "attention_mask": mask,
                 "position_ids": np.tile(np.arange(lo, hi, dtype=np.int64), (batch, 1)), **past, **extra}
        names = [o.name for o in old.get_outputs()]
        ref = dict(zip(names, old.run(None, feeds)))
        past = {kv_name("past", i, k): ref[kv_name("present", i, k)] for i, k in kv}

        io = new.io_binding()
        io.bind_cpu_input("inputs_embeds", np.ascontiguousarray(x[:, lo:hi]))
        io.bind_cpu_input("attention_mask", mask)
        if not shape.rotary:
            io.bind_cpu_input("position_ids", feeds["position_ids"])
        for name, value in extra.items():
            io.bind_cpu_input(name, value)
        for (i, k), buf in buffers.items():
            io.bind_ortvalue_input(kv_name("past", i, k), buf)
            io.bind_ortvalue_output(kv_name("present", i, k), buf)
        io.bind_output("logits")
        new.run_with_iobinding(io)
        logits = io.get_outputs()[-1].numpy()[:, -1]
        want = ref["logits"][:, -1]
        worst = max(worst, difference(logits, want))
        for (i, k), buf in buffers.items():
            worst = max(worst, difference(buf.numpy()[:, :, :hi], ref[kv_name("present", i, k)]))
        if not (logits.argmax(-1) == want.argmax(-1)).all():
            raise AssertionError(f"{rewritten.name}: step {t}: the greedy token differs from the former graph's")
    return worst


def run_shared(session, prompts: list[np.ndarray], steps: np.ndarray, shape: DecoderShape,
               extra: dict[str, np.ndarray] | None = None) -> list[np.ndarray]:
    """Runs a rewritten decoder as the runtime does: `prompts` (one (L_r, D) array per row) right-padded
    into one prefill (padding embeddings zero), then `steps` (B, T, D) one position per run, one
    buffer per cache tensor bound as past and present. Returns the logits each run gave, (B, V)."""
    import onnxruntime as ort

    b, longest = len(prompts), max(len(p) for p in prompts)
    capacity = longest + steps.shape[1]
    x = np.zeros((b, longest, steps.shape[2]), np.float32)
    mask = np.zeros((b, longest), np.int64)
    for r, p in enumerate(prompts):
        x[r, :len(p)], mask[r, :len(p)] = p, 1
    buffers = {kv_name("past", i, k): ort.OrtValue.ortvalue_from_numpy(
        np.zeros((b, shape.kv_heads, capacity, shape.head_dim), np.float32))
        for i in range(shape.layers) for k in ("key", "value")}
    out = []
    for t in range(steps.shape[1] + 1):
        if t > 0:
            x = np.ascontiguousarray(steps[:, t - 1:t])
            mask = np.concatenate([mask, np.ones((b, 1), np.int64)], 1)
        io = session.io_binding()
        io.bind_cpu_input("inputs_embeds", x)
        io.bind_cpu_input("attention_mask", mask)
        if not shape.rotary:  # GPT-2's learned positions: cumsum(mask) - 1 of the positions fed
            positions = np.maximum(np.cumsum(mask, 1) - 1, 0)[:, -x.shape[1]:]
            io.bind_cpu_input("position_ids", np.ascontiguousarray(positions))
        for name, value in (extra or {}).items():
            io.bind_cpu_input(name, value)
        for name, buf in buffers.items():
            io.bind_ortvalue_input(name, buf)
            io.bind_ortvalue_output(name.replace("past_key_values", "present"), buf)
        io.bind_output("logits")
        session.run_with_iobinding(io)
        out.append(io.get_outputs()[-1].numpy()[:, -1])  # bound last: (B, 1, V), the rows' last positions
    return out


def _random_rows(graph: Path, lengths: tuple[int, ...], steps: int, seed: int):
    """Inputs for [`run_shared`] on the decoder at `graph`: a prompt of each of `lengths` positions,
    `steps` later positions per row and the cross-attention K/V the graph takes (memory 8), all
    standard normal * 0.5."""
    rng = np.random.default_rng(seed)
    inputs = {i.name: i for i in onnx.load(str(graph), load_external_data=False).graph.input}
    hidden = _dims(inputs["inputs_embeds"], {"batch": 1, "seq": 1})[-1]
    b = len(lengths)
    prompts = [(rng.standard_normal((n, hidden)) * 0.5).astype(np.float32) for n in lengths]
    later = (rng.standard_normal((b, steps, hidden)) * 0.5).astype(np.float32)
    extra = {name: (rng.standard_normal(_dims(vi, {"batch": b, "memory": 8})) * 0.5).astype(np.float32)
             for name, vi in inputs.items() if name.startswith("cross_key_values.")}
    return prompts, later, extra


def check_padded(graph: Path, shape: DecoderShape, lengths: tuple[int, ...] = (7, 3, 5), steps: int = 3,
                 seed: int = 1) -> float:
    """Runs the rewritten decoder at `graph` on rows of different `lengths` right-padded into one
    batch and on each row alone, and returns the largest difference of the logits of every run.
    Raises when a greedy choice differs."""
    sess = ort_session(graph, threads=1)
    prompts, later, extra = _random_rows(graph, lengths, steps, seed)
    together = run_shared(sess, prompts, later, shape, extra)
    worst = 0.0
    for r in range(len(lengths)):
        alone = run_shared(sess, prompts[r:r + 1], later[r:r + 1], shape,
                           {k: np.ascontiguousarray(v[r:r + 1]) for k, v in extra.items()})
        for t, (a, batched) in enumerate(zip(alone, together)):
            worst = max(worst, difference(batched[r], a[0]))
            if batched[r].argmax() != a[0].argmax():
                raise AssertionError(f"{graph.name}: run {t}: row {r} of a right-padded batch chose another token "
                                     "than the row alone")
    return worst


# -- a shipped variant, rewritten in place ----------------------------------------------------------

ATOL = 1e-4
# A dynamically quantised graph (`lynx-int8`) re-quantises the attention output per run: a 1e-6
# difference there can move a value by one quantisation step. Its goldens allow 0.25 for the same
# reason; the greedy tokens must still agree.
ATOL_QUANTISED = 0.25
# ... and quantises a whole batch with one scale (the range of every row's activations): a row in a
# batch is quantised otherwise than alone, with or without padding (measured 0.32 on lynx-int8's
# right-padded check rows, greedy choices equal; its float graph is 0.18 from the float decoder).
ATOL_QUANTISED_BATCH = 0.5


def tolerances(quantised: bool) -> tuple[float, float]:
    """A decoder's checks: (its largest difference to the former graph, its right-padded rows' to
    the rows alone), for a float or a dynamically quantised graph."""
    return (ATOL_QUANTISED, ATOL_QUANTISED_BATCH) if quantised else (ATOL, ATOL)


def _edit_manifest(text: str, sha256: str, vocab: int, rotary: bool, rewritten: bool = False,
                   padding: str = "right") -> str:
    """The manifest `text` with the rewritten decoder: its sha256, no `position_ids` input, last-position
    logits, `model.position_ids: derived`, `model.kv_cache.update: shared_buffer`, `prompt.padding`
    (`right`; `none` for a dynamically quantised decoder, as manifest.prompt says),
    `provenance.export_revision` (at least [`REVISION`]). `rewritten`: the manifest of a decoder
    rewritten before (revision 5), whose sha256, padding and revision change only. Edits lines in
    place, so the rest of the file stays as it was written."""
    out: list[str] = []
    done = {"model", "position_ids", "logits"} if rewritten else set()
    for ln in yaml_io.lines(text):
        line = ln.text
        if ln.ended == "model" and "model" not in done:
            out.extend((["  position_ids: derived"] if rotary else []) + ["  kv_cache: {update: shared_buffer}"])
            done.add("model")
        if ln.section == "graphs" and ln.key == "decoder":
            if ln.indent == 4 and ln.stripped.startswith("sha256:"):
                line = f'    sha256: "{sha256}"'
                done.add("sha256")
            elif not rewritten and rotary and ln.stripped.startswith("- {name: position_ids,"):
                done.add("position_ids")
                continue
            elif not rewritten and ln.stripped.startswith("- {name: logits,"):
                line = f"{' ' * ln.indent}- {{name: logits, dtype: float32, shape: [batch, 1, {vocab}]}}"
                done.add("logits")
        if (revised := ln.revision(REVISION)) is not None:
            line = revised
            done.add("revision")
        if ln.section == "prompt" and ln.stripped.startswith("prompt:"):
            was = "padding: none" if rewritten else "padding: left"
            if was in line:
                line = line.replace(was, f"padding: {padding}")
                done.add("padding")
        out.append(line)
    missing = ({"model", "sha256", "logits", "padding", "revision"} | ({"position_ids"} if rotary else set())) - done
    if missing:
        raise ValueError(f"manifest: could not edit {sorted(missing)}; expected the exporter's layout")
    return "\n".join(out)


def shape_of(cfg) -> DecoderShape:
    """The rewrite's view of a `config.DecoderConfig`."""
    return DecoderShape(layers=cfg.layers, heads=cfg.heads, kv_heads=cfg.heads, head_dim=cfg.head_dim,
                        max_positions=cfg.max_positions, rope_theta=cfg.rope_theta, rotary=cfg.family.value == "llama")


def _quantised_graph(proto: onnx.ModelProto) -> bool:
    """Whether a decoder graph quantises its activations as it runs (`lynx-int8`): what decides
    `rewrite_file`'s tolerances, which has the graph and no manifest."""
    return any(n.op_type == "DynamicQuantizeLinear" for n in proto.graph.node)


def quantised_manifest(manifest: dict) -> bool:
    """Whether a manifest declares a quantised variant (`axes.quantization` other than `none`): what
    the rewrites of a shipped variant go by (its padding, `fuse`'s tolerances)."""
    return manifest["axes"].get("quantization", "none") != "none"


def _padding(manifest: dict) -> str:
    """The `prompt.padding` of a rewritten variant: `right`, or `none` for a quantised one -- the
    exporter's rule (manifest.prompt)."""
    return "none" if quantised_manifest(manifest) else "right"


def _replace_checked(graph: Path, proto: onnx.ModelProto, rewritten: onnx.ModelProto, shape: DecoderShape,
                     against_former) -> float:
    """Writes `rewritten` beside `graph`, checks it (`against_former(graph, tmp)`: the largest
    difference to the former graph; then right-padded rows against rows alone, [`check_padded`])
    and replaces `graph` with it; returns the larger difference. A failed check leaves `graph` as it was."""
    atol, batch_atol = tolerances(_quantised_graph(proto))

    def checked(new: Path) -> float:
        diff = against_former(graph, new)
        if diff > atol:
            raise AssertionError(f"{graph.name}: the rewritten decoder is {diff:.2e} from the former (atol {atol})")
        padded = check_padded(new, shape)
        if padded > batch_atol:
            raise AssertionError(f"{graph.name}: right-padded rows are {padded:.2e} from the rows alone "
                                 f"(atol {batch_atol})")
        return max(diff, padded)

    return replace_checked(graph, rewritten, checked, "gqa")


def rewrite_file(graph: Path, shape: DecoderShape) -> tuple[float, int, int]:
    """Rewrites the traced decoder at `graph` in place after checking the rewrite against it
    ([`check`]) and right-padded rows against rows alone ([`check_padded`]); returns the largest
    difference and the node counts before and after."""
    proto = onnx.load(str(graph), load_external_data=False)
    if any(n.op_type == "GroupQueryAttention" for n in proto.graph.node):
        raise ValueError(f"{graph}: already holds GroupQueryAttention")
    rewritten = rewrite(proto, shape)
    diff = _replace_checked(graph, proto, rewritten, shape, lambda former, new: check(former, new, shape))
    return diff, len(proto.graph.node), len(rewritten.graph.node)


def same_answers(former: Path, new: Path, shape: DecoderShape, rows: int = 2, prompt: int = 9, steps: int = 3,
                 seed: int = 2) -> float:
    """Two rewritten decoders on the same unpadded rows: the largest difference of their logits."""
    prompts, later, extra = _random_rows(new, (prompt,) * rows, steps, seed)
    a, b = ort_session(former, threads=1), ort_session(new, threads=1)
    pairs = zip(run_shared(a, prompts, later, shape, extra), run_shared(b, prompts, later, shape, extra))
    return max(difference(x, y) for x, y in pairs)


def relast_file(graph: Path, shape: DecoderShape) -> float:
    """[`relast`] on the revision-5 decoder at `graph`, in place, checked against the former graph on
    unpadded rows and right-padded rows against rows alone; returns the largest difference."""
    proto = onnx.load(str(graph), load_external_data=False)
    return _replace_checked(graph, proto, relast(proto), shape,
                            lambda former, new: same_answers(former, new, shape))


def shape_of_manifest(manifest: dict, source: Path) -> DecoderShape:
    """The rewrite's view of the manifest at `source` (its `model:` and backbone family)."""
    model = manifest["model"]
    family = manifest["axes"]["backbone"]["family"]
    if family not in ("llama", "gpt2"):
        raise ValueError(f"{source}: backbone family `{family}`; the decoder rewrites know llama and gpt2")
    # rope_theta: the exporter's (DecoderConfig); the check compares rotated keys position by position
    return DecoderShape(layers=int(model["layers"]), heads=int(model["heads"]), kv_heads=int(model["kv_heads"]),
                        head_dim=int(model["head_dim"]), max_positions=int(model["max_positions"]),
                        rope_theta=10000.0, rotary=family == "llama")


def apply(zoo: Path, name: str, log) -> str:
    """Rewrites variant `name`'s decoder in `zoo` in place after checking it against the former graph,
    and updates its manifest; a decoder rewritten at revision 5 gets its LM head on each row's last
    position ([`relast`]). Returns a line for the log."""
    manifest_path = zoo / "variants" / f"{name}.yaml"
    text = manifest_path.read_text()
    manifest = yaml_io.load(text)
    model = manifest["model"]
    shape = shape_of_manifest(manifest, manifest_path)
    graph = zoo / manifest["graphs"]["decoder"]["path"]
    vocab = int(model["vocab_size"])
    padding = _padding(manifest)
    if model.get("kv_cache", {}).get("update") == "shared_buffer":
        nodes = onnx.load(str(graph), load_external_data=False).graph.node
        if not any(n.name == "/gqa/Slice_last" for n in nodes):
            sha = sha256_file(graph)
            if manifest["graphs"]["decoder"]["sha256"] != sha:  # upgraded, but the manifest not written
                manifest_path.write_text(_edit_manifest(text, sha, vocab, shape.rotary, rewritten=True,
                                                        padding=padding))
                return f"{name}: manifest brought up to its upgraded decoder (prompt.padding {padding})"
            return f"{name}: already GroupQueryAttention with the LM head on each row's last position"
        diff = relast_file(graph, shape)
        manifest_path.write_text(_edit_manifest(text, sha256_file(graph), vocab, shape.rotary, rewritten=True,
                                                padding=padding))
        log(f"{name}: LM head on each row's last position, max |diff| {diff:.2e}")
        return f"{name}: LM head on each row's last position, prompt.padding {padding} (max |diff| {diff:.1e})"
    diff, before, after = rewrite_file(graph, shape)
    manifest_path.write_text(_edit_manifest(text, sha256_file(graph), vocab, shape.rotary, padding=padding))
    log(f"{name}: {before} -> {after} decoder nodes, max |diff| {diff:.2e}")
    return f"{name}: GroupQueryAttention ({before} -> {after} nodes, max |diff| {diff:.1e})"
