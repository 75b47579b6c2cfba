"""ViT vision encoder (Dosovitskiy et al. 2021), the stand-in for Lynx's frozen EVA-CLIP ViT.

Pixels (B, 3, H, W) -> patch tokens (B, P, width); no class token: the connector consumes every
patch. The position table is learned on a `grid` x `grid` layout (the pretraining resolution);
a lower resolution average-pools the table, so one set of weights serves 64 px and 32 px.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..config import VisionConfig
from .layers import GeluMLP, MultiHeadAttention


class VisionBlock(nn.Module):
    """Pre-LN transformer block."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.width)
        self.attn = MultiHeadAttention(cfg.width, cfg.heads)
        self.norm2 = nn.LayerNorm(cfg.width)
        self.mlp = GeluMLP(cfg.width, cfg.width * cfg.mlp_ratio)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionEncoder(nn.Module):
    """ViT: patch embedding + learned positions + blocks + final LayerNorm."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = nn.Conv2d(3, cfg.width, cfg.patch, stride=cfg.patch)
        self.pos_embed = nn.Parameter(torch.randn(1, cfg.width, cfg.grid, cfg.grid) * 0.02)
        self.blocks = nn.ModuleList(VisionBlock(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.width)

    def positions(self, grid: int):
        """(1, grid*grid, width) position table for a grid x grid patch layout."""
        pos = self.pos_embed
        if grid != self.cfg.grid:
            pos = F.avg_pool2d(pos, self.cfg.grid // grid)
        return pos.flatten(2).transpose(1, 2)

    def trunk(self, pixel_values):
        """Every block but the last: (B, 3, H, W) -> (B, P, width)."""
        x = self.patch_embed(pixel_values)  # (B, W, g, g)
        grid = int(x.shape[-1])  # static per exported resolution
        x = x.flatten(2).transpose(1, 2) + self.positions(grid)  # (B, P, W)
        for block in self.blocks[:-1]:
            x = block(x)
        return x

    def head(self, hidden):
        """The last block and the final norm: (B, P, width) -> (B, P, width)."""
        return self.norm(self.blocks[-1](hidden))

    def forward(self, pixel_values):
        return self.head(self.trunk(pixel_values))
