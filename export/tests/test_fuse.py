"""The fused attention and GELU rewrite (fuse.py): freshly exported vision encoders and decoders of
every kind the zoo holds, the check that guards it, and a zoo fused in place (a shared graph, a run
stopped halfway, a manifest that does not verify)."""

import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from test_gqa import _decoders, _exported

from lynx_export import fuse, gqa
from lynx_export import graphs as G
from lynx_export import onnx_io as O
from lynx_export.models.vision import VisionEncoder


def _vision(tmp_path: Path, cfg, name: str = "vision.onnx") -> tuple[Path, VisionEncoder]:
    torch.manual_seed(0)
    vit = VisionEncoder(cfg).eval()
    for p in vit.parameters():  # away from LayerNorm's ones and zeros
        torch.nn.init.normal_(p, std=0.2)
    res = cfg.patch * cfg.grid
    ins, outs = G.vision_io(vit, res)
    path = tmp_path / name
    path.write_bytes(O.export_graph(G.VisionGraph(vit), (torch.randn(2, 3, res, res),), ins, outs).SerializeToString())
    return path, vit


def _ops(path: Path) -> list[str]:
    return [n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node]


def test_a_vit_fuses_every_block_and_still_answers_as_pytorch(tmp_path, tiny_vision):
    path, vit = _vision(tmp_path, tiny_vision)
    stats = fuse.fuse_file(path, fuse.check_graph)
    assert (stats.attention, stats.gelu) == (tiny_vision.layers, tiny_vision.layers), stats
    assert stats.nodes_after < stats.nodes_before / 2 and stats.diff < gqa.ATOL, stats
    ops = _ops(path)
    assert ops.count("MultiHeadAttention") == ops.count("FastGelu") == tiny_vision.layers
    assert "Softmax" not in ops and "Tanh" not in ops
    res = tiny_vision.patch * tiny_vision.grid
    assert O.parity(G.VisionGraph(vit), path, (torch.randn(3, 3, res, res),), [G.NAMES["pixel_values"]]) < 1e-4
    # each GELU's bias Add went into the operator
    model = onnx.load(str(path), load_external_data=False)
    assert all(len(n.input) == 2 for n in model.graph.node if n.op_type == "FastGelu")
    assert fuse.fused_from(path) is not None  # the former file's sha256, vouched for
    again = fuse.fuse_file(path, fuse.check_graph)  # nothing left: the file is not written
    assert not again.changed


# (attention blocks, GELUs) each decoder kind holds beside its self-attention
EXPECTED = {"llama": (0, 0), "lora": (0, 0), "adapters": (0, 2), "cross": (1, 1), "gpt2": (0, 2)}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_decoders_fuse_their_gelus_and_cross_attention(tmp_path, kind):
    dec = _decoders()[kind]
    path = _exported(tmp_path, dec)
    shape = gqa.shape_of(dec.cfg)
    gqa.rewrite_file(path, shape)
    before = O.sha256_file(path)
    stats = fuse.fuse_file(path, lambda a, b: fuse.check_decoder(a, b, shape))
    assert (stats.attention, stats.gelu) == EXPECTED[kind], stats
    assert stats.diff < gqa.ATOL
    ops = _ops(path)
    assert ops.count("MultiHeadAttention") == EXPECTED[kind][0]
    if not stats.changed:
        assert O.sha256_file(path) == before


def _block(model: onnx.ModelProto, op: str, block: int) -> onnx.NodeProto:
    return next(n for n in model.graph.node if n.op_type == op and f"blocks.{block}/" in n.name)


def _mask_the_scores(model: onnx.ModelProto):
    """softmax(q k^T * scale + mask) v in block 0: a mask added before the Softmax."""
    softmax = _block(model, "Softmax", 0)
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.zeros((1,), np.float32), "mask"))
    model.graph.node.append(onnx.helper.make_node("Add", [softmax.input[0], "mask"], ["masked"], name="mask_add"))
    softmax.input[0] = "masked"


def _one_key_head(model: onnx.ModelProto):
    """Block 0's keys split into one head (a shape MultiHeadAttention does not take)."""
    g = model.graph
    prod = {o: n for n in g.node for o in n.output}
    scores = prod[_block(model, "Softmax", 0).input[0]]
    scores = prod[next(i for i in scores.input if prod.get(i) is not None and prod[i].op_type == "MatMul")]
    heads = prod[prod[prod[scores.input[1]].input[0]].input[1]].input[2]  # Transpose <- Reshape <- Concat
    prod[heads].attribute[0].t.CopyFrom(onnx.numpy_helper.from_array(np.array([1], np.int64)))


def _softmax_over_axis_1(model: onnx.ModelProto):
    for a in _block(model, "Softmax", 0).attribute:
        if a.name == "axis":
            a.i = 1


def test_the_fused_from_entry_vouches_for_the_graph_whatever_order_its_metadata_came_in(tmp_path, tiny_vision):
    # `lynx.*` keys ahead of another tool's: the file is written with the other tool's first
    path, _ = _vision(tmp_path, tiny_vision)
    model = onnx.load(str(path), load_external_data=False)
    props = [(p.key, p.value) for p in model.metadata_props]
    del model.metadata_props[:]
    for key, value in [("lynx.first", "1"), *props, ("other.tool", "2")]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    path.write_bytes(model.SerializeToString())
    former = hashlib.sha256(path.read_bytes()).hexdigest()
    fuse.fuse_file(path, fuse.check_graph)
    assert fuse.fused_from(path) == former


@pytest.mark.parametrize("edit", [_mask_the_scores, _one_key_head, _softmax_over_axis_1])
def test_an_attention_block_of_another_shape_is_left_alone(tmp_path, tiny_vision, edit):
    path, _ = _vision(tmp_path, tiny_vision)
    model = onnx.load(str(path))
    edit(model)
    stats = fuse.fuse(model)
    assert (stats.attention, stats.gelu) == (tiny_vision.layers - 1, tiny_vision.layers), stats
    assert [n.op_type for n in model.graph.node].count("Softmax") == 1


def test_a_traced_decoders_masked_self_attention_is_left_alone(tmp_path):
    dec = _decoders()["adapters"]
    model = onnx.load(str(_exported(tmp_path, dec)))  # softmax(q k^T * scale + mask) v, rotary, past
    softmaxes = [n.op_type for n in model.graph.node].count("Softmax")
    stats = fuse.fuse(model)
    assert softmaxes == dec.cfg.layers and stats.attention == 0 and stats.gelu == 2, stats


def test_a_fusion_that_changes_the_answers_fails_the_check_and_leaves_the_file(tmp_path, tiny_vision, monkeypatch):
    path, _ = _vision(tmp_path, tiny_vision)
    before = O.sha256_file(path)
    real = fuse._attention

    def twice_the_scale(*args):
        node = real(*args)
        if node is not None:
            for a in node.attribute:
                if a.name == "scale":
                    a.f *= 2
        return node

    monkeypatch.setattr(fuse, "_attention", twice_the_scale)
    with pytest.raises(AssertionError, match="from the former"):
        fuse.fuse_file(path, fuse.check_graph)
    assert O.sha256_file(path) == before
    assert not list(tmp_path.glob(".*.tmp.onnx"))


def test_a_fused_graph_that_answers_nan_fails_the_check(tmp_path, tiny_vision, monkeypatch):
    path, _ = _vision(tmp_path, tiny_vision)
    real = fuse._attention

    def nan_scale(*args):
        node = real(*args)
        if node is not None:
            next(a for a in node.attribute if a.name == "scale").f = float("nan")
        return node

    monkeypatch.setattr(fuse, "_attention", nan_scale)
    with pytest.raises(AssertionError, match="inf from the former"):
        fuse.fuse_file(path, fuse.check_graph)
    assert O.difference(np.array([1.0, np.nan]), np.array([1.0, 2.0])) == float("inf")
    assert O.difference(np.zeros((2, 3)), np.zeros((3, 2))) == float("inf")


def _manifest(name: str, graphs: dict[str, Path], zoo: Path, revision: int = 6) -> str:
    lines = ["schema_version: 1", f"name: {name}", "axes:", "  backbone: {family: llama, flavour: chat, size: small}",
             "  quantization: none", "model:", "  hidden: 32", "graphs:"]
    for role, path in graphs.items():
        lines += [f"  {role}:", f"    path: {path.relative_to(zoo).as_posix()}",
                  f'    sha256: "{O.sha256_file(path)}"', "    inputs: []"]
    lines += ["provenance:", f"  export_revision: {revision}", ""]
    return "\n".join(lines)


def test_a_zoo_fuses_a_shared_graph_once_and_mends_manifests_a_stopped_run_left(tmp_path, tiny_vision):
    zoo = tmp_path / "zoo"
    (zoo / "onnx").mkdir(parents=True)
    (zoo / "variants").mkdir()
    shared, _ = _vision(zoo / "onnx", tiny_vision, "vit.onnx")
    own, _ = _vision(zoo / "onnx", tiny_vision, "b.vision.onnx")
    for name, graphs in (("a", {"vision": shared}), ("b", {"vision": own}), ("c", {"vision": shared})):
        (zoo / "variants" / f"{name}.yaml").write_text(_manifest(name, graphs, zoo))
    former = O.sha256_file(shared)

    lines: list[str] = []
    assert fuse.ZooFusion(zoo, lines.append).variant("a") == "a: vision fused; export revision 7"
    fused = O.sha256_file(shared)
    assert fused != former and any("onnx/vit.onnx" in line for line in lines)
    assert fuse.fused_from(shared) == former  # the sha256 the run read before fusing, recorded
    # a run stopped here: c still lists the shared file as it was; the next run recognises it
    run = fuse.ZooFusion(zoo, lines.append)
    assert run.variant("a") == "a: fused already"
    assert run.variant("b") == "b: vision fused; export revision 7"
    assert run.variant("c") == "c: vision fused; export revision 7"
    for name in "abc":
        text = (zoo / "variants" / f"{name}.yaml").read_text()
        assert "export_revision: 7" in text
    assert fused in (zoo / "variants" / "c.yaml").read_text()
    assert fuse.ZooFusion(zoo, lines.append).variant("c") == "c: fused already"

    # a manifest whose graph does not verify is not rewritten
    (zoo / "variants" / "d.yaml").write_text(_manifest("d", {"vision": shared}, zoo).replace(fused, "0" * 64))
    with pytest.raises(ValueError, match="d.yaml: lists onnx/vit.onnx .*lynx-zoo check"):
        fuse.ZooFusion(zoo, lines.append).variant("d")
    # nor one listing the former file once the fused graph changed since (its entry no longer vouches)
    (zoo / "variants" / "d.yaml").write_text(_manifest("d", {"vision": shared}, zoo).replace(fused, former))
    model = onnx.load(str(shared), load_external_data=False)
    model.producer_version = "edited"
    shared.write_bytes(model.SerializeToString())
    assert fuse.fused_from(shared) is None
    with pytest.raises(ValueError, match="was not fused from it"):
        fuse.ZooFusion(zoo, lines.append).variant("d")
    # and a zoo before the GroupQueryAttention decoders is told to run `gqa` first
    (zoo / "variants" / "e.yaml").write_text(_manifest("e", {"vision": own}, zoo, revision=5))
    with pytest.raises(ValueError, match="lynx_export gqa"):
        fuse.ZooFusion(zoo, lines.append).variant("e")


def test_the_manifest_edit_needs_the_exporters_layout():
    text = 'graphs:\n  vision:\n    path: onnx/v.onnx\n    sha256: "aa"\nprovenance:\n  export_revision: 6\n'
    edited = fuse.edit_manifest(text, {"vision": "bb"})
    assert 'sha256: "bb"' in edited and "export_revision: 7" in edited and "path: onnx/v.onnx" in edited
    assert "export_revision: 8" in fuse.edit_manifest(edited.replace("revision: 7", "revision: 8"), {})
    with pytest.raises(ValueError, match="connector"):
        fuse.edit_manifest(text, {"connector": "bb"})
