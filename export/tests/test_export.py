"""Export of each graph family to ONNX, storage layout, and parity in ONNX Runtime (<= 1e-4)."""

import dataclasses

import onnx
import pytest
import torch

from conftest import tiny_decoder
from lynx_export import graphs as G
from lynx_export import onnx_io as O
from lynx_export.config import AdapterConfig, AdapterKind, ConnectorConfig, ConnectorKind, Family, replace
from lynx_export import connectors
from lynx_export.connectors import build_connector
from lynx_export.models.decoder import Decoder
from lynx_export.models.vision import VisionEncoder

ATOL = 1e-4


def _randomise(module):
    torch.manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return module.eval()


def _decoder_args(dec, batch, seq, past, memory=4):
    cfg = dec.cfg
    mask = torch.ones(batch, past + seq, dtype=torch.long)
    mask[-1, :1] = 0
    pos = (mask.cumsum(-1) - 1).clamp(min=0)[:, past:]
    flat = [torch.randn(batch, cfg.heads, past, cfg.head_dim) for _ in range(2 * cfg.layers)]
    flat += [torch.randn(batch, cfg.heads, memory, cfg.head_dim) for _ in range(2 * len(dec.cross_layers))]
    return (torch.randn(batch, seq, cfg.hidden), mask, pos, *flat)


@pytest.mark.parametrize("family", [Family.LLAMA, Family.GPT2])
@pytest.mark.parametrize("adapter", [AdapterKind.NONE, AdapterKind.BOTTLENECK, AdapterKind.LORA])
def test_decoder_export_parity_with_dynamic_axes(tmp_path, family, adapter):
    dec = Decoder(tiny_decoder(family))
    dec.add_adapters(AdapterConfig(kind=adapter, every=1, dim=8, rank=4))
    _randomise(dec)
    ins, outs = G.decoder_io(dec)
    proto = O.export_graph(G.DecoderGraph(dec), _decoder_args(dec, 2, 3, 2), ins, outs)
    path = tmp_path / "d.onnx"
    O.place(proto, path, [], O.DataFile(tmp_path / "d.data"))
    names = [s.name for s in ins]
    for batch, seq, past in [(2, 3, 2), (1, 7, 0), (3, 1, 9)]:  # other shapes than traced
        assert O.parity(G.DecoderGraph(dec), path, _decoder_args(dec, batch, seq, past), names) <= ATOL
    model = onnx.load(str(path), load_external_data=False)
    assert model.opset_import[0].version >= 17
    assert [i.name for i in model.graph.input][:4] == ["inputs_embeds", "attention_mask", "position_ids",
                                                       "past_key_values.0.key"]
    assert [o.name for o in model.graph.output][:2] == ["logits", "present.0.key"]
    # the last position's logits only, declared so
    logits = [d.dim_param or d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    assert logits == ["batch", 1, dec.cfg.vocab_size]
    feeds = {n: a.numpy() for n, a in zip(names, _decoder_args(dec, 2, 5, 0))}
    assert O.ort_session(path).run(["logits"], feeds)[0].shape == (2, 1, dec.cfg.vocab_size)


@pytest.mark.parametrize("family", [Family.LLAMA, Family.GPT2])
def test_untied_scaled_decoder_and_its_embed_graph_export_with_parity(tmp_path, family):
    """The foundation's backbone config: its own LM head matrix, embeddings times sqrt(hidden)."""
    dec = Decoder(dataclasses.replace(tiny_decoder(family), scaled_embedding=True, tie_word_embeddings=False))
    _randomise(dec)
    assert dec.lm_head is not None and not torch.equal(dec.lm_head.weight, dec.embed_tokens.weight)
    ins, outs = G.decoder_io(dec)
    proto = O.export_graph(G.DecoderGraph(dec), _decoder_args(dec, 2, 3, 2), ins, outs)
    O.place(proto, tmp_path / "d.onnx", [], O.DataFile(tmp_path / "d.data"))
    for batch, seq, past in [(2, 3, 2), (1, 5, 0)]:
        assert O.parity(G.DecoderGraph(dec), tmp_path / "d.onnx", _decoder_args(dec, batch, seq, past),
                        [s.name for s in ins]) <= ATOL
    ids = torch.tensor([[1, 5, 9], [2, 2, 63]])
    ins, outs = G.embed_io(dec)
    proto = O.export_graph(G.EmbedGraph(dec), (ids,), ins, outs)
    O.place(proto, tmp_path / "e.onnx", [], O.DataFile(tmp_path / "e.data"))
    assert O.parity(G.EmbedGraph(dec), tmp_path / "e.onnx", (ids,), ["input_ids"]) <= ATOL
    assert torch.allclose(dec.embed(ids), dec.embed_tokens(ids) * dec.cfg.hidden ** 0.5)


def test_cross_attention_decoder_and_connector_parity(tmp_path, tiny_vision):
    dec = Decoder(tiny_decoder())
    n = len(dec.add_cross_attention(2))
    con = build_connector(ConnectorConfig(kind=ConnectorKind.CROSS_ATTENTION, latents=6, width=16, heads=2),
                          32, dec.cfg, 64, n)
    _randomise(dec), _randomise(con)
    ins, outs = G.decoder_io(dec, 6)
    proto = O.export_graph(G.DecoderGraph(dec), _decoder_args(dec, 2, 3, 2, 6), ins, outs)
    O.place(proto, tmp_path / "d.onnx", [], O.DataFile(tmp_path / "d.data"))
    assert O.parity(G.DecoderGraph(dec), tmp_path / "d.onnx", _decoder_args(dec, 1, 4, 0, 6),
                    [s.name for s in ins]) <= ATOL
    cins, couts = G.connector_io(32, 64, dec, True, 6)
    assert [o.name for o in couts] == ["cross_key_values.0.key", "cross_key_values.0.value"]
    g = G.ConnectorGraph(con, True)
    O.place(O.export_graph(g, (torch.randn(2, 5, 64, 32),), cins, couts), tmp_path / "c.onnx", [], None)
    assert O.parity(g, tmp_path / "c.onnx", (torch.randn(3, 1, 64, 32),), ["image_features"]) <= ATOL


PREFIX_KINDS = [k for k, s in connectors.KINDS.items() if s.placement is connectors.Placement.PREFIX]
SMALL = {"latents": 8, "width": 16, "heads": 2}  # the settings of these a kind reads, set small


@pytest.mark.parametrize("kind", PREFIX_KINDS, ids=lambda k: k.value)
def test_prefix_connector_parity_over_frame_counts(tmp_path, kind):
    """Every prefix kind of the registry: its module makes as many tokens as its graph declares
    (a number, or per frame where the axis is named), and its graph matches it in ONNX Runtime."""
    dec = tiny_decoder()
    spec = connectors.spec(kind)
    reads = {f.name for f in dataclasses.fields(spec.settings_type)}
    flat = replace(ConnectorConfig(kind=kind), **{k: v for k, v in SMALL.items() if k in reads})
    con = _randomise(build_connector(flat, 32, dec, 64, 0))
    s = connectors.settings(flat)
    tokens = spec.graph_tokens(s, 128, 16)  # 64 patches: an 8 x 8 grid
    per_frame = spec.visual_tokens(s, 128, 16)
    assert tokens is not None and per_frame is not None
    with torch.no_grad():
        for frames in (1, 5):
            want = tokens if isinstance(tokens, int) else per_frame * frames
            assert con(torch.randn(2, frames, 64, 32)).shape == (2, want, dec.hidden)
    ins, outs = G.connector_io(32, 64, Decoder(dec), False, tokens)
    g = G.ConnectorGraph(con, False)
    O.place(O.export_graph(g, (torch.randn(2, 5, 64, 32),), ins, outs), tmp_path / "c.onnx", [], None)
    for frames in (1, 5):
        assert O.parity(g, tmp_path / "c.onnx", (torch.randn(2, frames, 64, 32),), ["image_features"]) <= ATOL


def test_shared_data_is_referenced_not_copied(tmp_path, tiny_vision):
    """Two ViT graphs (64 px, 32 px) share one data file; a variant with a retrained last block
    stores only the tensors that changed."""
    vit = _randomise(VisionEncoder(tiny_vision))
    protos = []
    for res in (64, 32):
        ins, outs = G.vision_io(vit, res)
        protos.append((O.export_graph(G.VisionGraph(vit), (torch.randn(1, 3, res, res),), ins, outs), res))
    shared = O.write_shared(tmp_path / "vit.data", [p for p, _ in protos])
    for proto, res in protos:
        used = O.place(proto, tmp_path / f"vit-{res}.onnx", [shared], None)
        assert used == [tmp_path / "vit.data"]
        assert O.parity(G.VisionGraph(vit), tmp_path / f"vit-{res}.onnx", (torch.randn(2, 3, res, res),),
                        ["pixel_values"]) <= ATOL
    with torch.no_grad():
        vit.blocks[-1].mlp.fc_in.weight.add_(0.1)
    ins, outs = G.vision_io(vit, 64)
    own = O.DataFile(tmp_path / "own.data")
    used = O.place(O.export_graph(G.VisionGraph(vit), (torch.randn(1, 3, 64, 64),), ins, outs),
                   tmp_path / "own.onnx", [shared], own)
    assert used == [tmp_path / "vit.data", tmp_path / "own.data"]
    w = vit.blocks[-1].mlp.fc_in.weight
    assert own.path.stat().st_size < 2 * w.numel() * 4 + 1024  # only the changed tensor (+ alignment)
    assert O.parity(G.VisionGraph(vit), tmp_path / "own.onnx", (torch.randn(2, 3, 64, 64),), ["pixel_values"]) <= ATOL


def test_parity_check_can_fail(tmp_path):
    dec = _randomise(Decoder(tiny_decoder()))
    ins, outs = G.decoder_io(dec)
    args = _decoder_args(dec, 1, 2, 1)
    O.place(O.export_graph(G.DecoderGraph(dec), args, ins, outs), tmp_path / "d.onnx", [], None)
    with torch.no_grad():
        dec.norm.weight.mul_(1.5)
    assert O.parity(G.DecoderGraph(dec), tmp_path / "d.onnx", args, [s.name for s in ins]) > ATOL
