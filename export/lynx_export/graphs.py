"""The ONNX graphs of docs/contract.md section 2 as small modules with flat tensor signatures.

Each wrapper's forward is exactly one graph: its arguments are the graph inputs, in order, and its
outputs the graph outputs. `graph_io` gives the names and symbolic shapes for export and manifests.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .models.decoder import Decoder
from .models.vision import VisionEncoder


# The tensor names of the graphs (docs/contract.md section 2), in one table: the fixed names by role,
# and the cache and cross-attention names as patterns of `i` (layer or block) and `kv` (one of KV).
# The runtime's table is src/manifest/tensors.rs; tests/test_tensor_names.py compares this one with
# docs/tensor-names.json, which a Rust test writes from that table and keeps current.
NAMES: dict[str, str] = {
    "pixel_values": "pixel_values",
    "image_features": "image_features",
    "visual_embeds": "visual_embeds",
    "input_ids": "input_ids",
    "inputs_embeds": "inputs_embeds",
    "attention_mask": "attention_mask",
    "position_ids": "position_ids",
    "logits": "logits",
    "past": "past_key_values.{i}.{kv}",
    "present": "present.{i}.{kv}",
    "cross": "cross_key_values.{i}.{kv}",
}
KV = ("key", "value")  # the values of `kv`
TENSOR_NAMES = {**NAMES, "kv": list(KV)}  # the whole table, as docs/tensor-names.json holds it
N = NAMES


def kv_name(pattern: str, i: int, kv: str) -> str:
    """`past`, `present` or `cross` of layer or block `i`: e.g. past_key_values.0.key."""
    return N[pattern].format(i=i, kv=kv)


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # float32 | int64
    shape: tuple  # ints and symbolic axis names

    def as_dict(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


class VisionGraph(nn.Module):
    """pixel_values (batch, 3, H, W) -> image_features (batch, patches, vision_dim)"""

    def __init__(self, vision: VisionEncoder):
        super().__init__()
        self.vision = vision

    def forward(self, pixel_values):
        return self.vision(pixel_values)


class ConnectorGraph(nn.Module):
    """image_features (batch, frames, patches, vision_dim) -> visual_embeds or cross K/V pairs."""

    def __init__(self, connector: nn.Module, cross: bool):
        super().__init__()
        self.connector = connector
        self.cross = cross

    def forward(self, image_features):
        out = self.connector(image_features)
        if self.cross:
            return tuple(t for kv in out for t in kv)
        return out


class EmbedGraph(nn.Module):
    """input_ids (batch, seq) -> inputs_embeds (batch, seq, hidden)"""

    def __init__(self, decoder: Decoder):
        super().__init__()
        self.decoder = decoder

    def forward(self, input_ids):
        return self.decoder.embed(input_ids)


class DecoderGraph(nn.Module):
    """inputs_embeds, attention_mask, position_ids, past K/V..., [cross K/V...] -> logits, present K/V..."""

    def __init__(self, decoder: Decoder):
        super().__init__()
        self.decoder = decoder
        self.n_layers = decoder.cfg.layers
        self.n_cross = len(decoder.cross_layers)

    def forward(self, inputs_embeds, attention_mask, position_ids, *flat):
        n = self.n_layers
        past = [(flat[2 * i], flat[2 * i + 1]) for i in range(n)]
        cross = None
        if self.n_cross:
            rest = flat[2 * n:]
            cross = [(rest[2 * j], rest[2 * j + 1]) for j in range(self.n_cross)]
        logits, presents = self.decoder(inputs_embeds, attention_mask, position_ids, past, cross, last_only=True)
        return (logits,) + tuple(t for kv in presents for t in kv)


def vision_io(vision: VisionEncoder, resolution: int):
    grid = resolution // vision.cfg.patch
    return ([TensorSpec(N["pixel_values"], "float32", ("batch", 3, resolution, resolution))],
            [TensorSpec(N["image_features"], "float32", ("batch", grid * grid, vision.cfg.width))])


def connector_io(vision_dim: int, patches: int, decoder: Decoder, cross: bool, visual_tokens: str | int):
    cfg = decoder.cfg
    inputs = [TensorSpec(N["image_features"], "float32", ("batch", "frames", patches, vision_dim))]
    if cross:
        outputs = []
        for j in range(len(decoder.cross_layers)):
            for kind in KV:
                outputs.append(TensorSpec(kv_name("cross", j, kind), "float32",
                                          ("batch", cfg.heads, visual_tokens, cfg.head_dim)))
    else:
        outputs = [TensorSpec(N["visual_embeds"], "float32", ("batch", visual_tokens, cfg.hidden))]
    return inputs, outputs


def embed_io(decoder: Decoder):
    return ([TensorSpec(N["input_ids"], "int64", ("batch", "seq"))],
            [TensorSpec(N["inputs_embeds"], "float32", ("batch", "seq", decoder.cfg.hidden))])


def decoder_io(decoder: Decoder, memory: str | int = "memory"):
    cfg = decoder.cfg
    inputs = [TensorSpec(N["inputs_embeds"], "float32", ("batch", "seq", cfg.hidden)),
              TensorSpec(N["attention_mask"], "int64", ("batch", "total")),
              TensorSpec(N["position_ids"], "int64", ("batch", "seq"))]
    outputs = [TensorSpec(N["logits"], "float32", ("batch", 1, cfg.vocab_size))]  # the last position's
    for i in range(cfg.layers):
        for kind in KV:
            inputs.append(TensorSpec(kv_name("past", i, kind), "float32", ("batch", cfg.heads, "past", cfg.head_dim)))
            outputs.append(TensorSpec(kv_name("present", i, kind), "float32", ("batch", cfg.heads, "total", cfg.head_dim)))
    for j in range(len(decoder.cross_layers)):
        for kind in KV:
            inputs.append(TensorSpec(kv_name("cross", j, kind), "float32", ("batch", cfg.heads, memory, cfg.head_dim)))
    return inputs, outputs
