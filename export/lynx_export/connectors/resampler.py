"""The Perceiver resampler connector (Lynx's bridge; Jaegle et al. 2021): `latents` prefix tokens
per sample, whatever the frame count. The module is models/resampler.py (shared with the
cross-attention kind)."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import ConnectorKind, DecoderConfig
from ..models.resampler import PerceiverResampler
from .base import ConnectorSpec, Placement


@dataclass(frozen=True)
class ResamplerConfig:
    """The resampler's settings (defaults and comments: config.ConnectorConfig)."""

    depth: int
    latents: int
    width: int
    heads: int
    frame_positions: bool
    max_frames: int


class ResamplerSpec(ConnectorSpec):
    kind = ConnectorKind.RESAMPLER
    placement = Placement.PREFIX
    settings_type = ResamplerConfig

    def visual_tokens(self, s: ResamplerConfig, resolution: int, patch: int) -> int:
        return s.latents

    def build(self, s: ResamplerConfig, vision_dim: int, dec: DecoderConfig, patches: int, n_cross: int):
        return PerceiverResampler(s, vision_dim, dec.hidden)

    def manifest_fields(self, s: ResamplerConfig) -> dict:
        return {"depth": s.depth, "latents": s.latents}
