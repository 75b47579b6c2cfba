"""ViT vision encoder (Dosovitskiy et al. 2021), the stand-in for Lynx's frozen EVA-CLIP ViT.

The stem is a patch embedding or, with `VisionConfig.stem = conv`, a stack of stride-2 convolutions
with the same patch grid.

Pixels (B, 3, H, W) -> patch tokens (B, P, width); no class token: the connector consumes every
patch. The position table is learned on a `grid` x `grid` layout (the pretraining resolution);
a lower resolution average-pools the table, so one set of weights serves 64 px and 32 px.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..config import Stem, VisionConfig
from .layers import GeluMLP, MultiHeadAttention


def conv_stem(patch: int, width: int) -> nn.Sequential:
    """log2(patch) 3x3 stride-2 convolutions with GELU, channels 32, 64, ... up to `width`: the same
    patch grid as a patch x patch embedding, but each token sees its pixels through small local
    filters (Xiao et al. 2021, "Early Convolutions Help Transformers See Better")."""
    n = patch.bit_length() - 1
    if patch != 1 << n or n < 1:
        raise ValueError(f"vision.patch: the conv stem needs a power of two >= 2, got {patch}")
    chans = [3] + [min(width, 32 << i) for i in range(n - 1)] + [width]
    layers: list[nn.Module] = []
    for c_in, c_out in zip(chans, chans[1:]):
        layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.GELU()]
    return nn.Sequential(*layers[:-1])  # the last convolution is linear, like a patch embedding


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
        self.patch_embed = (conv_stem(cfg.patch, cfg.width) if cfg.stem == Stem.CONV
                            else nn.Conv2d(3, cfg.width, cfg.patch, stride=cfg.patch))
        self.pos_embed = nn.Parameter(torch.randn(1, cfg.width, cfg.grid, cfg.grid) * 0.02)
        self.blocks = nn.ModuleList(VisionBlock(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.width)

    def positions(self, grid: int):
        """(1, grid*grid, width) position table for a grid x grid patch layout."""
        pos: torch.Tensor = self.pos_embed  # (1, W, grid, grid)
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
