"""Building blocks shared by the encoder, the connectors and the decoders."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

# Additive mask value. Finite (not -inf) so that a fully masked row (a left-padding position)
# gives a uniform softmax instead of NaN, in PyTorch and in ONNX Runtime alike.
MASK_VALUE = -1e9


class RMSNorm(nn.Module):
    """Root-mean-square LayerNorm without bias (LLaMA)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)
        return x * torch.rsqrt(var + self.eps) * self.weight


class PrefixConnector(nn.Module):
    """A connector module whose output is visual prefix tokens (B, V, hidden): the module of every
    prefix connector kind (connectors/)."""

    def match_output_scale(self, std: float) -> None:
        """Initialises the output layer so that untrained visual tokens start at the LLM's embedding
        scale (`std` of the token embeddings; out-of-scale prefix tokens swamp a frozen LLM)."""
        raise NotImplementedError(f"{type(self).__name__} does not set its output scale")


def split_heads(x, heads: int):
    """(B, T, H*D) -> (B, H, T, D)"""
    b, t, _ = x.shape
    return x.reshape(b, t, heads, -1).transpose(1, 2)


def merge_heads(x):
    """(B, H, T, D) -> (B, T, H*D)"""
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)


def attend(q, k, v, bias=None):
    """Scaled dot-product attention. q (B, H, S, D), k/v (B, H, T, D), bias (B, 1, S, T)."""
    scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1]))  # (B, H, S, T)
    if bias is not None:
        scores = scores + bias
    return torch.matmul(torch.softmax(scores, dim=-1), v)  # (B, H, S, D)


class MultiHeadAttention(nn.Module):
    """Attention of queries over a (possibly different) key/value sequence, no mask.

    Used by ViT blocks (self-attention), the Perceiver resampler (latents over media+latents).
    """

    def __init__(self, dim: int, heads: int, kv_dim: int | None = None):
        super().__init__()
        kv_dim = kv_dim or dim
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(kv_dim, dim)
        self.v_proj = nn.Linear(kv_dim, dim)
        self.o_proj = nn.Linear(dim, dim)

    def forward(self, x, context=None):
        context = x if context is None else context
        q = split_heads(self.q_proj(x), self.heads)  # (B, H, S, D)
        k = split_heads(self.k_proj(context), self.heads)  # (B, H, T, D)
        v = split_heads(self.v_proj(context), self.heads)
        return self.o_proj(merge_heads(attend(q, k, v)))


class GeluMLP(nn.Module):
    """Two-layer MLP with GELU (tanh approximation, as GPT-2)."""

    def __init__(self, dim: int, hidden: int, out: int | None = None):
        super().__init__()
        self.fc_in = nn.Linear(dim, hidden)
        self.fc_out = nn.Linear(hidden, out or dim)

    def forward(self, x):
        return self.fc_out(F.gelu(self.fc_in(x), approximate="tanh"))


class SwiGLU(nn.Module):
    """Gated MLP of LLaMA: down(silu(gate(x)) * up(x)), no biases."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=False)
        self.up_proj = nn.Linear(dim, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))
