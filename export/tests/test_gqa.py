"""The decoder rewrite to GroupQueryAttention over one K/V buffer (gqa.py), on freshly exported
decoders of every kind the zoo holds, and the manifest edit of a shipped variant."""

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from conftest import tiny_decoder
from onnx import helper, numpy_helper

from lynx_export import gqa, graph_edit
from lynx_export import graphs as G
from lynx_export import onnx_io as O
from lynx_export.config import AdapterConfig, AdapterKind, Family
from lynx_export.models.decoder import Decoder

REPO = Path(__file__).resolve().parents[2]


def _exported(tmp_path, dec: Decoder, memory: int = 3):
    ins, outs = G.decoder_io(dec, memory if dec.cross_layers else "memory")
    g = torch.Generator().manual_seed(0)
    cfg = dec.cfg
    b, s, past = 2, 4, 3
    args = [torch.randn(b, s, cfg.hidden, generator=g), torch.ones(b, past + s, dtype=torch.long),
            torch.arange(past, past + s).repeat(b, 1)]
    args += [torch.randn(b, cfg.heads, past, cfg.head_dim, generator=g) for _ in range(2 * cfg.layers)]
    args += [torch.randn(b, cfg.heads, memory, cfg.head_dim, generator=g) for _ in range(2 * len(dec.cross_layers))]
    for p in dec.parameters():  # away from the identity adapters and gates start as
        torch.nn.init.normal_(p, std=0.2, generator=g)
    path = tmp_path / "decoder.onnx"
    path.write_bytes(O.export_graph(G.DecoderGraph(dec), tuple(args), ins, outs).SerializeToString())
    return path


def _decoders():
    adapters = Decoder(tiny_decoder())
    adapters.add_adapters(AdapterConfig(kind=AdapterKind.BOTTLENECK, every=1, dim=8))
    lora = Decoder(tiny_decoder())
    lora.add_adapters(AdapterConfig(kind=AdapterKind.LORA, rank=4, alpha=8.0))
    cross = Decoder(tiny_decoder())
    cross.add_cross_attention(every=2)
    return {"llama": Decoder(tiny_decoder()), "adapters": adapters, "lora": lora, "cross": cross,
            "gpt2": Decoder(tiny_decoder(Family.GPT2))}


@pytest.mark.parametrize("kind", sorted(_decoders()))
def test_the_rewrite_answers_as_the_traced_decoder_with_fewer_nodes(tmp_path, kind):
    dec = _decoders()[kind]
    path = _exported(tmp_path, dec)
    shape = gqa.shape_of(dec.cfg)
    diff, before, after = gqa.rewrite_file(path, shape)  # checks prefill + steps against the traced graph
    assert diff < gqa.ATOL and after < before / 2, (diff, before, after)
    model = onnx.load(str(path))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("GroupQueryAttention") == dec.cfg.layers
    assert "Concat" not in {n.op_type for n in model.graph.node if n.output[0].startswith("present")}
    inputs = {i.name for i in model.graph.input}
    assert ("position_ids" in inputs) == (kind == "gpt2")  # LLaMA's positions come from the mask
    with pytest.raises(ValueError, match="already holds GroupQueryAttention"):
        gqa.rewrite_file(path, shape)


def test_a_wrong_rotary_base_fails_the_check(tmp_path):
    dec = Decoder(tiny_decoder())
    path = _exported(tmp_path, dec)
    wrong = dataclasses.replace(gqa.shape_of(dec.cfg), rope_theta=500.0)
    before = path.read_bytes()
    with pytest.raises(AssertionError, match="greedy token differs|from the former"):
        gqa.rewrite_file(path, wrong)
    assert path.read_bytes() == before, "a failed rewrite leaves the graph as it was"
    assert not list(tmp_path.glob(".*.tmp.onnx"))


def test_the_manifest_edit_of_a_shipped_variant_as_it_was_before_the_rewrite():
    text = (REPO / "variants" / "lynx.yaml").read_text()
    # the shipped manifest as revision 4 wrote it: a concat decoder
    old = (text.replace("  position_ids: derived\n", "").replace("  kv_cache: {update: shared_buffer}\n", "")
           .replace("padding: right}", "padding: left}").replace("export_revision: 6", "export_revision: 4")
           .replace("shape: [batch, 1, 1024]", "shape: [batch, seq, 1024]")
           .replace("      - {name: attention_mask, dtype: int64, shape: [batch, total]}\n",
                    "      - {name: attention_mask, dtype: int64, shape: [batch, total]}\n"
                    "      - {name: position_ids, dtype: int64, shape: [batch, seq]}\n", 1))
    assert old != text
    sha = text.split("  decoder:\n", 1)[1].split('sha256: "', 1)[1].split('"', 1)[0]
    assert gqa._edit_manifest(old, sha, 1024, rotary=True) == text
    with pytest.raises(ValueError, match="could not edit"):
        gqa._edit_manifest(old.replace("prompt:", "prompts:"), sha, 1024, rotary=True)


def _as_revision_5(path: Path):
    """The rewritten decoder at `path` as revision 5 wrote it: the LM head on the batch's last position."""
    model = onnx.load(str(path), load_external_data=False)
    g = model.graph
    gather = next(n for n in g.node if n.name == "/gqa/Gather_last")
    hidden = gather.input[0]
    kept = [n for n in g.node if not (n.name.endswith("_last") or n.name.endswith("_seq") or n.name == "/gqa/Shape_hidden")]
    del g.node[:]
    g.node.extend(kept)
    g.initializer.extend([numpy_helper.from_array(np.array([-1], dtype=np.int64), "gqa.last"),
                          numpy_helper.from_array(np.array([2**62], dtype=np.int64), "gqa.end")])
    g.node.append(helper.make_node("Slice", [hidden, "gqa.last", "gqa.end", "gqa.axis1"], [gqa.LAST_HIDDEN],
                                   name="/gqa/Slice_last"))
    ordered = graph_edit.topological([graph_edit.copy(n) for n in g.node], g)
    del g.node[:]
    g.node.extend(ordered)
    graph_edit.prune(g)
    path.write_bytes(model.SerializeToString())


@pytest.mark.parametrize("kind", ["llama", "cross", "gpt2"])
def test_right_padded_rows_answer_as_alone_and_a_revision_5_decoder_is_upgraded(tmp_path, kind):
    dec = _decoders()[kind]
    path = _exported(tmp_path, dec)
    shape = gqa.shape_of(dec.cfg)
    gqa.rewrite_file(path, shape)  # its right-padded check passed
    assert gqa.check_padded(path, shape) < gqa.ATOL
    _as_revision_5(path)
    # the batch's last position is a padded row's padding: the check must see it
    with pytest.raises(AssertionError, match="chose another token"):
        gqa.check_padded(path, shape, lengths=(9, 2, 4, 6))
    diff = gqa.relast_file(path, shape)
    assert diff < gqa.ATOL
    ops = {n.name for n in onnx.load(str(path), load_external_data=False).graph.node}
    assert "/gqa/Gather_last" in ops and "/gqa/Slice_last" not in ops
    with pytest.raises(ValueError, match="revision-5"):
        gqa.relast_file(path, shape)


def test_the_manifest_edit_of_a_variant_rewritten_at_revision_5():
    text = (REPO / "variants" / "lynx.yaml").read_text()
    old = text.replace("padding: right}", "padding: none}").replace("export_revision: 6", "export_revision: 5")
    sha = text.split("  decoder:\n", 1)[1].split('sha256: "', 1)[1].split('"', 1)[0]
    assert gqa._edit_manifest(old, "0" * 64, 1024, rotary=True, rewritten=True) == text.replace(sha, "0" * 64)


def test_an_upgraded_decoder_whose_manifest_was_not_written_gets_it_written(tmp_path):
    """`gqa.apply` replaces the graph before it writes the manifest: a run stopped in between is
    mended by the next (the manifest still at revision 5, the graph already upgraded)."""
    text = (REPO / "variants" / "lynx.yaml").read_text()
    sha = text.split("  decoder:\n", 1)[1].split('sha256: "', 1)[1].split('"', 1)[0]
    (tmp_path / "variants").mkdir()
    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / "lynx.decoder.onnx").write_bytes((REPO / "onnx" / "lynx.decoder.onnx").read_bytes())
    stale = text.replace(sha, "0" * 64).replace("padding: right}", "padding: none}").replace(
        "export_revision: 6", "export_revision: 5")
    (tmp_path / "variants" / "lynx.yaml").write_text(stale)
    assert "brought up" in gqa.apply(tmp_path, "lynx", print)
    assert (tmp_path / "variants" / "lynx.yaml").read_text() == text
    assert "already" in gqa.apply(tmp_path, "lynx", print)
