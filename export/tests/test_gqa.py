"""The decoder rewrite to GroupQueryAttention over one K/V buffer (gqa.py), on freshly exported
decoders of every kind the zoo holds, and the manifest edit of a shipped variant."""

import dataclasses
from pathlib import Path

import onnx
import pytest
import torch

from conftest import tiny_decoder
from lynx_export import gqa
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
           .replace("padding: none}", "padding: left}").replace("export_revision: 5", "export_revision: 4")
           .replace("shape: [batch, 1, 1024]", "shape: [batch, seq, 1024]")
           .replace("      - {name: attention_mask, dtype: int64, shape: [batch, total]}\n",
                    "      - {name: attention_mask, dtype: int64, shape: [batch, total]}\n"
                    "      - {name: position_ids, dtype: int64, shape: [batch, seq]}\n", 1))
    assert old != text
    sha = text.split("  decoder:\n", 1)[1].split('sha256: "', 1)[1].split('"', 1)[0]
    assert gqa._edit_manifest(old, sha, 1024, rotary=True) == text
    with pytest.raises(ValueError, match="could not edit"):
        gqa._edit_manifest(old.replace("prompt:", "prompts:"), sha, 1024, rotary=True)
