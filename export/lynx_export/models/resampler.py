"""Perceiver resampler (Jaegle et al. 2021; Flamingo; Lynx's bridge) and Lynx video handling.

Video in Lynx (`concate`): every frame is encoded separately, a learned frame-position embedding
is added per frame, the frames are concatenated along the token axis, then resampled:

    image_features (B, F, P, Dv) --in_proj--> (B, F, P, W) + frame_pos[:F] --> (B, F*P, W) = media
    latents (L, W) --+--> [ latents += attn(ln(latents), ln([media; latents])) ;
                          latents += ff(ln(latents)) ] x depth --> ln --> out_proj --> (B, L, hidden)
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import GeluMLP, MultiHeadAttention, PrefixConnector


class FramePositions(nn.Module):
    """Learned per-frame embedding added to every patch of that frame."""

    def __init__(self, max_frames: int, dim: int):
        super().__init__()
        self.table = nn.Parameter(torch.zeros(max_frames, dim))

    def forward(self, x):  # (B, F, P, D) -> (B, F, P, D)
        frames = x.shape[1]
        return x + self.table[:frames].unsqueeze(0).unsqueeze(2)


class ResamplerLayer(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.norm_media = nn.LayerNorm(width)
        self.norm_latents = nn.LayerNorm(width)
        self.attn = MultiHeadAttention(width, heads)
        self.norm_ff = nn.LayerNorm(width)
        self.ff = GeluMLP(width, width * 2)

    def forward(self, latents, media):
        q = self.norm_latents(latents)
        context = torch.cat([self.norm_media(media), q], dim=1)  # (B, F*P + L, W)
        latents = latents + self.attn(q, context)
        return latents + self.ff(self.norm_ff(latents))


class PerceiverResampler(PrefixConnector):
    """(B, F, P, vision_dim) -> (B, latents, out_dim)."""

    def __init__(self, cfg, vision_dim: int, out_dim: int):
        # cfg: connectors.resampler.ResamplerConfig or connectors.cross_attention.CrossAttentionConfig
        super().__init__()
        self.in_proj = nn.Linear(vision_dim, cfg.width)
        self.frame_pos = FramePositions(cfg.max_frames, cfg.width) if cfg.frame_positions else None
        self.latents = nn.Parameter(torch.randn(cfg.latents, cfg.width) * 0.02)
        self.layers = nn.ModuleList(ResamplerLayer(cfg.width, cfg.heads) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.width)
        self.out_proj = nn.Linear(cfg.width, out_dim)

    def match_output_scale(self, std: float) -> None:
        """Initialises the output projection so visual tokens start at the LLM's embedding scale
        (the normed latents have unit variance; out-of-scale prefix tokens swamp a frozen LLM)."""
        nn.init.normal_(self.out_proj.weight, std=std / self.out_proj.in_features ** 0.5)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, image_features, context=None):
        """`context` (B, N, W), when given: more keys and values for the latents beside the media,
        already in the resampler's width (a probe's question tokens; no exported graph takes it)."""
        b, f, p, _ = image_features.shape
        media = self.in_proj(image_features)  # (B, F, P, W)
        if self.frame_pos is not None:
            media = self.frame_pos(media)
        media = media.reshape(b, f * p, media.shape[-1])  # (B, F*P, W)
        if context is not None:
            media = torch.cat([media, context], dim=1)
        latents = self.latents.unsqueeze(0).expand(b, -1, -1)  # (B, L, W)
        for layer in self.layers:
            latents = layer(latents, media)
        return self.out_proj(self.norm(latents))  # (B, L, out)
