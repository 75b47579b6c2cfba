"""The cross-attention connector (Flamingo; Alayrac et al. 2022): gated cross-attention blocks inside
the decoder (models/cross_attention.py) read keys and values that this connector computes once per
sample from a resampled memory (docs/contract.md section 2).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..config import ConnectorKind, DecoderConfig
from ..models.layers import split_heads
from ..models.resampler import PerceiverResampler
from .base import ConnectorSpec, Placement


@dataclass(frozen=True)
class CrossAttentionConfig:
    """The cross-attention connector's settings (defaults and comments: config.ConnectorConfig)."""

    depth: int
    latents: int
    width: int
    heads: int
    frame_positions: bool
    max_frames: int
    cross_attention_every: int


class CrossAttentionSpec(ConnectorSpec):
    kind = ConnectorKind.CROSS_ATTENTION
    placement = Placement.CROSS
    settings_type = CrossAttentionConfig

    def visual_tokens(self, s: CrossAttentionConfig, resolution: int, patch: int) -> int:
        return s.latents  # the memory length

    def prepare_decoder(self, decoder, s: CrossAttentionConfig) -> int:
        return len(decoder.add_cross_attention(s.cross_attention_every))

    def build(self, s: CrossAttentionConfig, vision_dim: int, dec: DecoderConfig, patches: int, n_cross: int):
        return CrossAttentionConnector(s, vision_dim, dec, n_cross)

    def manifest_fields(self, s: CrossAttentionConfig) -> dict:
        return {"depth": s.depth, "latents": s.latents, "cross_attention_every": s.cross_attention_every}


class CrossAttentionConnector(nn.Module):
    """Resampler memory -> cross_key_values.{j}.key/value (B, H, M, Dh) for each gated block j."""

    def __init__(self, cfg: CrossAttentionConfig, vision_dim: int, dec: DecoderConfig, n_blocks: int):
        super().__init__()
        self.heads = dec.heads
        self.resampler = PerceiverResampler(cfg, vision_dim, dec.hidden)
        self.k_proj = nn.ModuleList(nn.Linear(dec.hidden, dec.hidden) for _ in range(n_blocks))
        self.v_proj = nn.ModuleList(nn.Linear(dec.hidden, dec.hidden) for _ in range(n_blocks))

    def forward(self, image_features):
        memory = self.resampler(image_features)  # (B, M, hidden)
        return [(split_heads(k(memory), self.heads), split_heads(v(memory), self.heads))
                for k, v in zip(self.k_proj, self.v_proj)]
