"""The projector connector: a LLaVA-style MLP projector (Liu et al. 2023) as a prefix connector.

Each frame's patch grid is average-pooled `pool` x `pool` (64 patches -> 16 tokens at 64 px) to
keep video prefixes short, a frame-position embedding is added, and a two-layer GELU MLP maps
every pooled patch to one LLM token: (B, F, P, Dv) -> (B, F * P / pool^2, hidden).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn
from torch.nn import functional as F

from ..config import ConnectorKind, DecoderConfig
from ..models.layers import GeluMLP, PrefixConnector
from ..models.resampler import FramePositions
from .base import ConnectorSpec, Placement


@dataclass(frozen=True)
class ProjectorConfig:
    """The projector's settings (defaults and comments: config.ConnectorConfig)."""

    pool: int
    frame_positions: bool
    max_frames: int


class ProjectorSpec(ConnectorSpec):
    kind = ConnectorKind.PROJECTOR
    placement = Placement.PREFIX
    settings_type = ProjectorConfig

    def visual_tokens(self, s: ProjectorConfig, resolution: int, patch: int) -> int:
        grid = resolution // patch
        return (grid // s.pool) ** 2

    def graph_tokens(self, s: ProjectorConfig, resolution: int, patch: int) -> str:
        return "visual_tokens"  # per frame: the graph's output grows with the frame count

    def build(self, s: ProjectorConfig, vision_dim: int, dec: DecoderConfig, patches: int, n_cross: int):
        return Projector(s, vision_dim, dec.hidden, patches)


class Projector(PrefixConnector):
    def __init__(self, cfg: ProjectorConfig, vision_dim: int, out_dim: int, patches: int):
        super().__init__()
        self.pool = cfg.pool
        self.grid = math.isqrt(patches)
        self.frame_pos = FramePositions(cfg.max_frames, vision_dim) if cfg.frame_positions else None
        self.mlp = GeluMLP(vision_dim, out_dim, out_dim)

    def match_output_scale(self, std: float) -> None:
        """Initialises the last layer so visual tokens start at the LLM's embedding scale."""
        nn.init.normal_(self.mlp.fc_out.weight, std=std / self.mlp.fc_out.in_features ** 0.5)
        nn.init.zeros_(self.mlp.fc_out.bias)

    def forward(self, image_features):
        b, f, p, d = image_features.shape
        x = image_features
        if self.frame_pos is not None:
            x = self.frame_pos(x)
        x = x.reshape(b * f, self.grid, self.grid, d).permute(0, 3, 1, 2)  # (B*F, Dv, g, g)
        x = F.avg_pool2d(x, self.pool)  # (B*F, Dv, g/pool, g/pool)
        x = x.flatten(2).transpose(1, 2)  # (B*F, P', Dv)
        x = x.reshape(b, -1, d)  # (B, F*P', Dv)
        return self.mlp(x)  # (B, F*P', hidden)
