"""Greedy decoding over the graphs, in PyTorch and in ONNX Runtime, and the goldens file.

One loop drives either backend, so the goldens follow the ONNX graphs' semantics exactly:

    pixels (1, F, 3, R, R) -> vision (F images) -> (1, F, P, Dv) -> connector
    prefill: [visual_embeds][embed(<s> + prompt)], mask all 1, position_ids = cumsum(mask) - 1,
             past K/V of length 0, cross K/V from the connector (cross-attention variants)
    step:    embed(last token), mask += [1], position_ids = [[sum(mask) - 1]], past = present
    stop at </s> (not emitted) or after max_new_tokens; no minimum length.
"""

from __future__ import annotations

import numpy as np
import torch

from . import graphs as G
from .models.lynx import LynxModel


class TorchGraphs:
    """The variant's graphs as PyTorch modules taking and returning numpy arrays."""

    def __init__(self, model: LynxModel):
        self.model = model.eval()
        self.vision_g = G.VisionGraph(model.vision) if model.vision is not None else None
        self.connector_g = G.ConnectorGraph(model.connector, model.is_cross) if model.connector is not None else None
        self.embed_g = G.EmbedGraph(model.decoder)
        self.decoder_g = G.DecoderGraph(model.decoder)

    @torch.no_grad()
    def run(self, graph: str, *args):
        module = {"vision": self.vision_g, "connector": self.connector_g, "embed": self.embed_g,
                  "decoder": self.decoder_g}[graph]
        if module is None:
            raise ValueError(f"this variant has no `{graph}` graph")
        out = module(*[torch.from_numpy(np.asarray(a)) for a in args])
        if isinstance(out, torch.Tensor):
            out = (out,)
        return [o.numpy() for o in out]


class OrtGraphs:
    """The exported graphs in ONNX Runtime sessions."""

    def __init__(self, sessions: dict):
        self.sessions = sessions

    def run(self, graph: str, *args):
        sess = self.sessions[graph]
        names = [i.name for i in sess.get_inputs()]
        if graph == "decoder" and "position_ids" not in names:
            # a GroupQueryAttention decoder (gqa.py) derives positions from the mask: the
            # arguments follow the traced decoder's inputs, position_ids third
            args = args[:2] + args[3:]
        feeds = {name: np.asarray(a) for name, a in zip(names, args)}
        return sess.run(None, feeds)


def greedy(backend, pixels, prompt: list[int], layers: int, heads: int, head_dim: int, prefix: bool,
           cross: bool, max_new_tokens: int, eos: int):
    """Returns (last prefill logits (V,), new tokens without </s>)."""
    visual, cross_kv = None, []
    if pixels is not None:
        b, f = pixels.shape[:2]
        feats = backend.run("vision", pixels.reshape(b * f, *pixels.shape[2:]))[0]
        feats = feats.reshape(b, f, *feats.shape[1:])  # (1, F, P, Dv)
        out = backend.run("connector", feats)
        if prefix:
            visual = out[0]
        elif cross:
            cross_kv = out
    embeds = backend.run("embed", np.array([prompt], dtype=np.int64))[0]
    if visual is not None:
        embeds = np.concatenate([visual, embeds], axis=1)
    mask = np.ones((1, embeds.shape[1]), dtype=np.int64)
    past = [np.zeros((1, heads, 0, head_dim), dtype=np.float32) for _ in range(2 * layers)]
    pos = (np.cumsum(mask, axis=1) - 1).clip(min=0)
    outs = backend.run("decoder", embeds, mask, pos, *past, *cross_kv)
    last = outs[0][0, -1]
    tokens: list[int] = []
    logits = last
    for _ in range(max_new_tokens):
        tok = int(np.argmax(logits))
        if tok == eos:
            break
        tokens.append(tok)
        past = outs[1:]
        embeds = backend.run("embed", np.array([[tok]], dtype=np.int64))[0]
        mask = np.concatenate([mask, np.ones((1, 1), dtype=np.int64)], axis=1)
        pos = np.array([[mask.sum() - 1]], dtype=np.int64)
        outs = backend.run("decoder", embeds, mask, pos, *past, *cross_kv)
        logits = outs[0][0, -1]
    return last, tokens
