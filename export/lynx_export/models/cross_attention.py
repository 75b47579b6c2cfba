"""Flamingo-style gated cross-attention (Alayrac et al. 2022).

A `GatedCrossAttentionBlock` sits before every k-th decoder layer: text queries attend to the
vision memory, and the result enters the residual stream through tanh gates that start at zero,
so the frozen LLM is unchanged at initialisation. The memory's keys and values are projected by
the connector (`CrossAttentionConnector`), once per sample, and fed to every decoding step:

    vision memory (B, M, hidden) --k_proj_j, v_proj_j--> cross_key_values.{j}.key/value (B, H, M, Dh)
                                                                |
    x (B, S, hidden) --norm--> q_proj --> attend --> o_proj --> * tanh(attn_gate) --+--> x
      --norm--> MLP --> * tanh(ffn_gate) --+--> x
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import DecoderConfig
from .layers import GeluMLP, attend, merge_heads, split_heads


class GatedCrossAttentionBlock(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.heads = cfg.heads
        self.norm = nn.LayerNorm(cfg.hidden, eps=cfg.norm_eps)
        self.q_proj = nn.Linear(cfg.hidden, cfg.hidden)
        self.o_proj = nn.Linear(cfg.hidden, cfg.hidden)
        self.attn_gate = nn.Parameter(torch.zeros(1))
        self.ffn_norm = nn.LayerNorm(cfg.hidden, eps=cfg.norm_eps)
        self.ffn = GeluMLP(cfg.hidden, cfg.ffn)
        self.ffn_gate = nn.Parameter(torch.zeros(1))

    def forward(self, x, key, value):
        """x (B, S, hidden); key/value (B, H, M, Dh) -> (B, S, hidden)"""
        q = split_heads(self.q_proj(self.norm(x)), self.heads)  # (B, H, S, Dh)
        x = x + torch.tanh(self.attn_gate) * self.o_proj(merge_heads(attend(q, key, value)))
        return x + torch.tanh(self.ffn_gate) * self.ffn(self.ffn_norm(x))
