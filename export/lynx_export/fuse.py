"""The zoo's graphs with ONNX Runtime's fused attention and GELU operators (export revision 7).

The exporter traces `models/layers.py`'s attention into plain operators: per attention block the
head split (Shape, Gather, Unsqueeze, Concat, Reshape, Transpose for each of q, k and v), the scores'
MatMul, the scale, Softmax, the MatMul with the values and the head merge -- about 45 nodes, most of
them shape arithmetic. Its tanh-approximated GELU (the ViT's and the resampler's MLPs, the decoders'
adapters, GPT-2's MLP, the cross-attention blocks' feed-forward) is nine element-wise nodes after a
bias Add. ONNX Runtime fuses neither on its own (its optimizer matches no attention of these graphs,
docs/performance.md), and at the zoo's size each of those kernels costs more than its arithmetic.
This rewrite keeps every weight and replaces

- each attention block -- `softmax(q_h k_h^T * scale) v_h`, heads split from (B, S, H*D)
  projections or read from (B, H, T, D) cross-attention inputs -- by one
  `com.microsoft.MultiHeadAttention` (`num_heads`, `scale` from the graph);
- each tanh GELU `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))` by `com.microsoft.FastGelu`,
  the bias Add before it folded in as the operator's bias input.

Structural matching (not node names): a block that does not have exactly this shape (a mask added
to the scores, a value read twice) is left as it is. The decoders' self-attention is
GroupQueryAttention already (gqa.py) and has a mask: it is not touched.

`python -m lynx_export fuse VARIANT... | --all [--zoo ROOT]` rewrites a built zoo's vision,
connector and decoder graphs in place, each checked against the graph it replaces in ONNX Runtime
(random inputs; decoders: prefill and steps over one shared K/V buffer, and right-padded rows
against rows alone), and updates the manifests' checksums. `build` fuses as it exports
(the vision and connector graphs before their PyTorch parity check, the decoder after its
GroupQueryAttention rewrite).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from . import gqa, yaml_io
from .ecosystem import PREFIX as METADATA_PREFIX
from .graph_edit import constant, consumers, copy, initializer_shape, producers, prune, topological
from .onnx_io import difference, ort_session, replace_checked, sha256_file

MS_DOMAIN = "com.microsoft"
# The export revision (build.EXPORT_REVISION) whose graphs are fused; a rewritten manifest says it.
REVISION = 7
# metadata_props key of a fused graph file: the sha256 of the file it replaced, so that a manifest
# still listing that file (a run stopped between the graph and the manifest) is recognised
FUSED_FROM = "lynx_export.fused_from"


@dataclass
class Fused:
    """What [`fuse`] replaced in one graph."""

    attention: int = 0
    gelu: int = 0
    nodes_before: int = 0
    nodes_after: int = 0
    diff: float = 0.0  # the largest difference to the former graph in the check (fuse_file)

    @property
    def changed(self) -> bool:
        return self.attention + self.gelu > 0

    def summary(self) -> str:
        return (f"{self.attention} attention, {self.gelu} GELU fused "
                f"({self.nodes_before} -> {self.nodes_after} nodes, max |diff| {self.diff:.1e})")


def fuse(model: onnx.ModelProto) -> Fused:
    """Fuses `model`'s attention blocks and tanh GELUs in place (module doc); returns the counts."""
    g = model.graph
    stats = Fused(nodes_before=len(g.node))
    replaced: dict[str, onnx.NodeProto] = {}  # output name -> the fused node that now writes it
    prod, cons = producers(g), consumers(g)
    for n in g.node:
        if (n.op_type == "Softmax" and _softmax_axis(model, n) in (-1, 3)
                and (fused := _attention(g, prod, cons, n)) is not None):
            replaced[fused.output[0]] = fused
            stats.attention += 1
        elif n.op_type == "Tanh" and (fused := _gelu(g, prod, cons, n)) is not None:
            replaced[fused.output[0]] = fused
            stats.gelu += 1
    if replaced:
        keep = [copy(n) for n in g.node if not (set(n.output) & replaced.keys())]
        del g.node[:]
        g.node.extend(topological(keep + list(replaced.values()), g))
        prune(g)
        if not any(o.domain == MS_DOMAIN for o in model.opset_import):
            model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    stats.nodes_after = len(g.node)
    return stats


def _only(cons: dict, name: str, op: str) -> onnx.NodeProto | None:
    """The one reader of `name` when it is an `op` node."""
    readers = cons.get(name, [])
    return readers[0] if len(readers) == 1 and readers[0].op_type == op else None


def _perm(node: onnx.NodeProto | None) -> list[int] | None:
    if node is None or node.op_type != "Transpose":
        return None
    return next((list(a.ints) for a in node.attribute if a.name == "perm"), None)


def _split(prod, transposed: str, perm: list[int]) -> tuple[str, onnx.NodeProto] | None:
    """The (B, S, H*D) tensor whose head split `transposed` is: Reshape to (B, S, H, D), then
    Transpose `perm`; with the Reshape."""
    t = prod.get(transposed)
    if _perm(t) != perm:
        return None
    r = prod.get(t.input[0])
    if r is None or r.op_type != "Reshape":
        return None
    return r.input[0], r


def _target_entries(g, prod, reshape: onnx.NodeProto) -> list | None:
    """A Reshape's target shape entry by entry -- an int where it is a constant, else None -- when the
    target is a constant or a Concat of operands (each a one-element constant or not); else None."""
    shape = constant(g, prod, reshape.input[1])
    if shape is not None:
        return [int(x) for x in shape.reshape(-1)]
    cat = prod.get(reshape.input[1])
    if cat is None or cat.op_type != "Concat":
        return None
    values = [constant(g, prod, x) for x in cat.input]
    return [int(v.reshape(-1)[0]) if v is not None and v.size == 1 else None for v in values]


def _target_rank(g, prod, reshape: onnx.NodeProto) -> int | None:
    """How many entries a Reshape's target shape has, when it is a constant or a Concat of operands."""
    entries = _target_entries(g, prod, reshape)
    return None if entries is None else len(entries)


def _target(g, prod, reshape: onnx.NodeProto, rank: int, entry: int) -> int | None:
    """Entry `entry` of a Reshape's target shape when the target has `rank` entries and that one is
    a constant (the target a constant, or a Concat of one-element operands); else None."""
    entries = _target_entries(g, prod, reshape)
    return entries[entry] if entries is not None and len(entries) == rank else None


def _merges_to_rank_3(g, prod, reshape: onnx.NodeProto) -> bool:
    """Whether a Reshape's target has three entries (a constant, or a Concat of three operands)."""
    return _target_rank(g, prod, reshape) == 3


def _heads(g, prod, reshape: onnx.NodeProto) -> int | None:
    """H of a head split's Reshape to (B, S, H, D): the target's third entry, a positive constant."""
    h = _target(g, prod, reshape, 4, 2)
    return h if h is not None and h > 0 else None


def _scalar(g, prod, name: str) -> float | None:
    """A constant of one element and at most one axis (a larger rank would broadcast the result's)."""
    v = constant(g, prod, name)
    return float(v.reshape(-1)[0]) if v is not None and v.size == 1 and v.ndim <= 1 else None


def _softmax_axis(model: onnx.ModelProto, softmax: onnx.NodeProto) -> int | None:
    """The Softmax's axis: its attribute, or the default of the model's opset (-1 since 13; before,
    1 over flattened axes: None)."""
    for a in softmax.attribute:
        if a.name == "axis":
            return a.i
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    return -1 if opset >= 13 else None


def _attention(g, prod, cons, softmax: onnx.NodeProto) -> onnx.NodeProto | None:
    """One MultiHeadAttention for the block around `softmax`, or None when the block is not
    `softmax(q_h k_h^T * scale) v_h` with its heads merged back into (B, S, H*D)."""
    scaled = prod.get(softmax.input[0])
    if scaled is None or scaled.op_type != "Mul" or len(cons.get(scaled.output[0], [])) != 1:
        return None
    scores, scale = None, None
    for a, b in (scaled.input, reversed(scaled.input)):
        if (s := _scalar(g, prod, b)) is not None and (p := prod.get(a)) is not None and p.op_type == "MatMul":
            scores, scale = p, s
    if scores is None or scale is None or not scale > 0 or len(cons.get(scores.output[0], [])) != 1:
        return None  # (MultiHeadAttention reads a scale of 0 as its default, 1/sqrt(D))
    q = _split(prod, scores.input[0], [0, 2, 1, 3])
    if q is None:
        return None
    heads = _heads(g, prod, q[1])
    k = _split(prod, scores.input[1], [0, 2, 3, 1])  # split and transposed for the scores at once
    weighted = _only(cons, softmax.output[0], "MatMul")
    if heads is None or weighted is None or weighted.input[0] != softmax.output[0]:
        return None
    graph_inputs = {i.name for i in g.input}
    if k is not None:
        v = _split(prod, weighted.input[1], [0, 2, 1, 3])
        if v is None or _heads(g, prod, k[1]) != heads or _heads(g, prod, v[1]) != heads:
            return None  # keys and values split into as many heads as the queries
        key, value = k[0], v[0]
    else:
        # cross-attention memory fed as (B, H, T, D): keys transposed for the scores, values as they
        # are, both declared with the queries' head count
        kt = prod.get(scores.input[1])
        if _perm(kt) != [0, 1, 3, 2] or kt.input[0] not in graph_inputs or weighted.input[1] not in graph_inputs:
            return None
        key, value = kt.input[0], weighted.input[1]
        for name in (key, value):
            dims = next(i for i in g.input if i.name == name).type.tensor_type.shape.dim
            if len(dims) != 4 or not dims[1].HasField("dim_value") or dims[1].dim_value != heads:
                return None
    # the head merge: a Transpose back to (B, S, H, D) (the trace also reads the tensor's Shape for
    # the merged shape) and a Reshape
    readers = cons.get(weighted.output[0], [])
    merges = [r for r in readers if r.op_type == "Transpose"]
    if len(merges) != 1 or any(r.op_type != "Shape" for r in readers if r is not merges[0]):
        return None
    merge = merges[0]
    if _perm(merge) != [0, 2, 1, 3]:
        return None
    reshape = _only(cons, merge.output[0], "Reshape")
    if reshape is None or not _merges_to_rank_3(g, prod, reshape):
        return None
    return helper.make_node("MultiHeadAttention", [q[0], key, value], [reshape.output[0]],
                            name=f"{_scope(softmax.name)}MultiHeadAttention", domain=MS_DOMAIN,
                            num_heads=heads, scale=scale)


def _gelu(g, prod, cons, tanh: onnx.NodeProto) -> onnx.NodeProto | None:
    """One FastGelu for the tanh GELU around `tanh`: x -> x*x -> *x -> *0.044715 -> +x -> *sqrt(2/pi)
    -> tanh -> +1 -> *x -> *0.5 (the factors in either operand order), or None."""

    def other(node, known: str) -> str | None:  # a binary node's operand that is not `known`
        ins = list(node.input)
        if len(ins) != 2 or known not in ins:
            return None
        return ins[1] if ins[0] == known else ins[0]

    def times(node, value: float) -> str | None:  # the operand of a Mul by the constant `value`
        if node is None or node.op_type != "Mul":
            return None
        for a, b in (node.input, reversed(node.input)):
            if (s := _scalar(g, prod, b)) is not None and math.isclose(s, value, rel_tol=1e-5):
                return a
        return None

    scaled = prod.get(tanh.input[0])
    inner = times(scaled, math.sqrt(2.0 / math.pi))
    add = prod.get(inner) if inner else None
    if add is None or add.op_type != "Add":
        return None
    chain: list[onnx.NodeProto] = []  # the nodes that read x
    x = None
    for a, b in (add.input, reversed(add.input)):
        small = prod.get(b)
        c = times(small, 0.044715)
        m1 = prod.get(c) if c else None
        if m1 is not None and m1.op_type == "Mul" and a in m1.input:
            sq = prod.get(other(m1, a) or "")
            if sq is not None and sq.op_type == "Mul" and list(sq.input) == [a, a]:
                x, chain = a, [sq, m1, add]
    if x is None:
        return None
    plus = _only(cons, tanh.output[0], "Add")
    if plus is None:
        return None
    one = _scalar(g, prod, other(plus, tanh.output[0]) or "")
    if one is None or not math.isclose(one, 1.0):
        return None
    gated = _only(cons, plus.output[0], "Mul")
    if gated is None or other(gated, plus.output[0]) != x:
        return None
    half = _only(cons, gated.output[0], "Mul")
    if half is None or times(half, 0.5) != gated.output[0]:
        return None
    chain.append(gated)
    # the bias Add before the GELU becomes FastGelu's bias when it adds a (D,) initializer to a MatMul
    inputs = [x]
    biased = prod.get(x)
    if biased is not None and biased.op_type == "Add":
        for a, b in (biased.input, reversed(biased.input)):
            shape = initializer_shape(g, b)
            mm = prod.get(a)
            if shape is not None and len(shape) == 1 and mm is not None and mm.op_type == "MatMul":
                w = initializer_shape(g, mm.input[1])
                if w is not None and w[-1:] == shape and {r.output[0] for r in cons[x]} <= {c.output[0] for c in chain}:
                    inputs = [a, b]
    return helper.make_node("FastGelu", inputs, [half.output[0]], name=f"{_scope(tanh.name)}FastGelu",
                            domain=MS_DOMAIN)


def _scope(name: str) -> str:
    """The scope of a traced node's name (`/vision/blocks.0/attn/Softmax` -> `/vision/blocks.0/attn/`);
    a node without one gets its own name as the scope, so that fused names stay unique."""
    return name.rsplit("/", 1)[0] + "/" if "/" in name else f"{name}/"


# -- the check against the former graph ----------------------------------------------------------

def _feeds(path: Path, sizes: dict[str, int], seed: int) -> dict[str, np.ndarray]:
    """Random float inputs for every input of the graph at `path`, dynamic axes from `sizes` (2 by
    default)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for i in onnx.load(str(path), load_external_data=False).graph.input:
        dims = tuple(d.dim_value if d.HasField("dim_value") else sizes.get(d.dim_param, 2)
                     for d in i.type.tensor_type.shape.dim)
        if i.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            raise ValueError(f"{path}: input `{i.name}` is not float32; this check feeds random floats "
                             "(a decoder is checked with check_decoder)")
        feeds[i.name] = rng.standard_normal(dims).astype(np.float32)
    return feeds


def check_graph(former: Path, fused: Path, seed: int = 0) -> float:
    """The largest difference of every output of two graphs without a cache on the same random
    inputs, at batch 2 and 3 (vision, connector); infinite when an output's shape differs or is not
    finite."""
    a, b = ort_session(former, threads=1), ort_session(fused, threads=1)
    worst = 0.0
    for k, batch in enumerate((2, 3)):
        feeds = _feeds(former, {"batch": batch, "frames": 2}, seed + k)
        for x, y in zip(a.run(None, feeds), b.run(None, feeds)):
            worst = max(worst, difference(x, y))
    return worst


def check_decoder(former: Path, fused: Path, shape: gqa.DecoderShape, quantised: bool = False) -> float:
    """Two decoders over one shared K/V buffer on the same rows (prefill and steps), and the fused
    one's right-padded rows against its rows alone. Raises when the padded rows are further apart
    than gqa.py allows; returns the larger difference for a float decoder, and the first for a
    quantised one, whose padded rows have their own tolerance (0.5: it quantises a batch with one
    scale) and are not batched by the runtime."""
    padded = gqa.check_padded(fused, shape)
    batch_atol = gqa.tolerances(quantised)[1]
    if not padded <= batch_atol:
        raise AssertionError(f"{fused.name}: right-padded rows are {padded:.2e} from the rows alone (atol {batch_atol})")
    return max(gqa.same_answers(former, fused, shape), padded if not quantised else 0.0)


def _set_metadata(proto: onnx.ModelProto, props: list[tuple[str, str]]) -> None:
    del proto.metadata_props[:]
    for key, value in props:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def _graph_digest(proto: onnx.ModelProto) -> str:
    """sha256 of `proto` serialised without its FUSED_FROM entry: what the entry vouches for."""
    c = onnx.ModelProto()
    c.CopyFrom(proto)
    _set_metadata(c, [(p.key, p.value) for p in c.metadata_props if p.key != FUSED_FROM])
    return hashlib.sha256(c.SerializeToString()).hexdigest()


def fused_from(path: Path) -> str | None:
    """The sha256 of the file the graph at `path` was fused from, when its FUSED_FROM entry says so
    and still vouches for the graph (the digest of the graph it was written with); else None."""
    proto = onnx.load(str(path), load_external_data=False)
    value = next((p.value for p in proto.metadata_props if p.key == FUSED_FROM), None)
    if value is None:
        return None
    try:
        entry = json.loads(value)
        former, digest = entry["from"], entry["graph"]
    except (ValueError, KeyError, TypeError):
        return None
    return former if digest == _graph_digest(proto) else None


def fuse_file(path: Path, check, atol: float = gqa.ATOL, record: bool = True, sha256: str | None = None) -> Fused:
    """Fuses the graph at `path` in place after `check(former, fused)` -- the largest difference --
    is within `atol`; a failed check leaves `path` as it was. Nothing to fuse: nothing written.
    `record`: write the former file's sha256 (`sha256`, when the caller has it) into the graph's
    FUSED_FROM entry (a zoo fused in place; `build` fuses a graph it has just written and records
    nothing)."""
    proto = onnx.load(str(path), load_external_data=False)
    stats = fuse(proto)
    if not stats.changed:
        return stats
    props = [(p.key, p.value) for p in proto.metadata_props if p.key != FUSED_FROM]
    if record:
        # beside the other tools' keys, before the `lynx.*` ones, as ecosystem.stamp orders them; the
        # digest is of the graph in that order, as it is read back
        others = [kv for kv in props if not kv[0].startswith(METADATA_PREFIX)]
        ours = [kv for kv in props if kv[0].startswith(METADATA_PREFIX)]
        _set_metadata(proto, others + ours)
        vouched = json.dumps({"from": sha256 or sha256_file(path), "graph": _graph_digest(proto)}, separators=(",", ":"))
        props = others + [(FUSED_FROM, vouched)] + ours
    _set_metadata(proto, props)

    def against_former(fused: Path) -> float:
        try:
            diff = check(path, fused)
        except AssertionError:
            raise
        except Exception as e:  # onnxruntime's errors name neither file
            raise RuntimeError(f"{path}: the fused graph does not run as the former one: {e}") from e
        if not diff <= atol:
            raise AssertionError(f"{path}: the fused graph is {diff:.2e} from the former (atol {atol})")
        return diff

    stats.diff = replace_checked(path, proto, against_former, "fuse")
    return stats


# -- a shipped zoo, fused in place -----------------------------------------------------------------

ROLES = ("vision", "connector", "decoder")


@dataclass
class ZooFusion:
    """The graphs fused in one run over a zoo: a shared graph (the ViT) is fused once and every
    manifest that lists it gets its new checksum."""

    zoo: Path
    log: Callable[[str], None] = print
    sha: dict[str, tuple[set[str], str]] = field(default_factory=dict)  # path -> (sha256s a manifest may list, new)

    def graph(self, manifest: Path, rel: str, listed: str, check, atol: float) -> str:
        """Fuses the graph at `rel` that `manifest` lists with sha256 `listed` (once per run) and
        returns the sha256 the manifest should list. The manifest may list the file as it is, or
        the file it was fused from when the graph's FUSED_FROM entry still vouches for it (a run
        stopped between a shared graph and the manifests that list it); anything else raises."""
        path = self.zoo / rel
        if rel not in self.sha:
            new = before = sha256_file(path)
            accepted = {before} | ({former} if (former := fused_from(path)) else set())
            if listed == before:
                stats = fuse_file(path, check, atol, sha256=before)
                if stats.changed:
                    self.log(f"{rel}: {stats.summary()}")
                    new = sha256_file(path)
            elif listed not in accepted:
                raise ValueError(f"{manifest}: lists {rel} with sha256 {listed}, the file on disk is {before} "
                                 "and was not fused from it; run `lynx-zoo check` -- a graph that does not "
                                 "verify is not rewritten")
            self.sha[rel] = (accepted | {new}, new)
        accepted, new = self.sha[rel]
        if listed not in accepted:
            raise ValueError(f"{manifest}: lists {rel} with sha256 {listed}, neither the file's {new} nor the one "
                             "it was fused from; run `lynx-zoo check`")
        return new

    def variant(self, name: str) -> str:
        """Fuses variant `name`'s graphs and rewrites its manifest's checksums and export revision."""
        manifest_path = self.zoo / "variants" / f"{name}.yaml"
        text = manifest_path.read_text()
        manifest = yaml_io.load(text)
        revision = int(manifest.get("provenance", {}).get("export_revision", 0))
        if revision < gqa.REVISION:
            raise ValueError(f"{manifest_path}: export revision {revision}; fusing starts from revision "
                             f"{gqa.REVISION} (run `python -m lynx_export gqa` first)")
        quantised = gqa.quantised_manifest(manifest)
        shas = {}
        for role in ROLES:
            ref = manifest["graphs"].get(role)
            if ref is None:
                continue
            if role == "decoder":
                shape = gqa.shape_of_manifest(manifest, manifest_path)

                def check(a, b, shape=shape):
                    return check_decoder(a, b, shape, quantised)

                atol = gqa.tolerances(quantised)[0]
            else:
                check, atol = check_graph, gqa.ATOL
            shas[role] = self.graph(manifest_path, ref["path"], ref["sha256"], check, atol)
        new_text = edit_manifest(text, shas)
        if new_text == text:
            return f"{name}: fused already"
        manifest_path.write_text(new_text)
        changed = [r for r in shas if shas[r] != manifest["graphs"][r]["sha256"]]
        return f"{name}: {', '.join(changed) or 'no graph'} fused; export revision {REVISION}"


def edit_manifest(text: str, shas: dict[str, str]) -> str:
    """The manifest `text` with `shas` (role -> sha256) as its graphs' checksums and
    `provenance.export_revision` at least [`REVISION`]; lines edited in place, the rest as written."""
    out: list[str] = []
    done: set[str] = set()
    for ln in yaml_io.lines(text):
        line = ln.text
        if ln.section == "graphs" and ln.key in shas and ln.indent == 4 and ln.stripped.startswith("sha256:"):
            line = f'    sha256: "{shas[ln.key]}"'
            done.add(ln.key)
        elif (revised := ln.revision(REVISION)) is not None:
            line = revised
            done.add("revision")
        out.append(line)
    missing = (set(shas) | {"revision"}) - done
    if missing:
        raise ValueError(f"manifest: could not edit {sorted(missing)}; expected the exporter's layout")
    return "\n".join(out)
