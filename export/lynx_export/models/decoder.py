"""Decoder-only LLMs with KV cache: LLaMA-style and GPT-2-style.

- llama (Touvron et al. 2023): RMSNorm, rotary position embedding on q/k, SwiGLU MLP, no biases.
- gpt2 (Radford et al. 2019): LayerNorm, learned absolute positions, GELU MLP, biases.

Both tie the output projection to the token embedding. The forward pass is the ONNX `decoder`
graph of docs/contract.md: it takes embeddings (so visual prefix tokens can precede the text),
an attention mask over past + new positions, explicit position ids (left padding:
cumsum(mask) - 1) and the past keys/values, and returns logits and the present keys/values.
"""

from __future__ import annotations

import typing

import torch
from torch import nn

from ..config import AdapterConfig, AdapterKind, DecoderConfig, Family
from .adapters import BottleneckAdapter, LoRALinear
from .cross_attention import GatedCrossAttentionBlock
from .layers import MASK_VALUE, GeluMLP, RMSNorm, SwiGLU, attend, merge_heads, split_heads


def rotate_half(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


class SelfAttention(nn.Module):
    """Causal self-attention over past + new positions, returning the updated cache."""

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        bias = cfg.family is Family.GPT2
        self.heads = cfg.heads
        # q and v: a LoRALinear around the Linear after `Decoder.add_adapters` with LoRA
        self.q_proj: nn.Module = nn.Linear(cfg.hidden, cfg.hidden, bias=bias)
        self.k_proj = nn.Linear(cfg.hidden, cfg.hidden, bias=bias)
        self.v_proj: nn.Module = nn.Linear(cfg.hidden, cfg.hidden, bias=bias)
        self.o_proj = nn.Linear(cfg.hidden, cfg.hidden, bias=bias)

    def forward(self, x, bias, rope, past_key=None, past_value=None):
        """x (B, S, D); bias (B, 1, S, T); rope (cos, sin) each (B, 1, S, Dh) or None."""
        q = split_heads(self.q_proj(x), self.heads)  # (B, H, S, Dh)
        k = split_heads(self.k_proj(x), self.heads)
        v = split_heads(self.v_proj(x), self.heads)
        if rope is not None:
            cos, sin = rope
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
        if past_key is not None:
            k = torch.cat([past_key, k], dim=2)  # (B, H, T, Dh), T = past + S
            v = torch.cat([past_value, v], dim=2)
        out = self.o_proj(merge_heads(attend(q, k, v, bias)))
        return out, k, v


class DecoderLayer(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        llama = cfg.family is Family.LLAMA
        norm = (lambda: RMSNorm(cfg.hidden, cfg.norm_eps)) if llama else (lambda: nn.LayerNorm(cfg.hidden, eps=cfg.norm_eps))
        self.attn_norm = norm()
        self.attn = SelfAttention(cfg)
        self.mlp_norm = norm()
        self.mlp = SwiGLU(cfg.hidden, cfg.ffn) if llama else GeluMLP(cfg.hidden, cfg.ffn)
        self.adapter: BottleneckAdapter | None = None
        self.cross: GatedCrossAttentionBlock | None = None

    def forward(self, x, bias, rope, past_key=None, past_value=None, cross_key=None, cross_value=None):
        if self.cross is not None and cross_key is not None:
            x = self.cross(x, cross_key, cross_value)
        h, k, v = self.attn(self.attn_norm(x), bias, rope, past_key, past_value)
        x = x + h
        x = x + self.mlp(self.mlp_norm(x))
        if self.adapter is not None:
            x = self.adapter(x)
        return x, k, v


class Decoder(nn.Module):
    """Token embedding, decoder layers, final norm, LM head (tied to the embedding or its own)."""

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.cfg = cfg
        llama = cfg.family is Family.LLAMA
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden)
        # `scaled_embedding`: rows N(0, 1/hidden) times sqrt(hidden), so tokens (and learned
        # positions) enter at unit scale; otherwise 0.02-std rows as GPT-2
        self.embed_multiplier = cfg.hidden ** 0.5 if cfg.scaled_embedding else 1.0
        nn.init.normal_(self.embed_tokens.weight, std=cfg.hidden ** -0.5 if cfg.scaled_embedding else 0.02)
        self.embed_positions = None if llama else nn.Embedding(cfg.max_positions, cfg.hidden)
        if self.embed_positions is not None:
            nn.init.normal_(self.embed_positions.weight, std=1.0 if cfg.scaled_embedding else 0.01)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.layers))
        self.lm_head = None if cfg.tie_word_embeddings else nn.Linear(cfg.hidden, cfg.vocab_size, bias=False)
        self.norm = RMSNorm(cfg.hidden, cfg.norm_eps) if llama else nn.LayerNorm(cfg.hidden, eps=cfg.norm_eps)
        self.inv_freq: torch.Tensor | None  # rotary frequencies (llama), a buffer
        if llama:
            inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, cfg.head_dim, 2).float() / cfg.head_dim))
            self.register_buffer("inv_freq", inv_freq, persistent=False)
        else:
            self.inv_freq = None

    # -- variant surgery --------------------------------------------------------------------
    def add_adapters(self, cfg: AdapterConfig):
        """Bottleneck adapters after every `every`-th layer, or LoRA on q and v of every layer."""
        if cfg.kind is AdapterKind.BOTTLENECK:
            for i, layer in enumerate(self.layers):
                if (i + 1) % cfg.every == 0:
                    layer.adapter = BottleneckAdapter(self.cfg.hidden, cfg.dim)
        elif cfg.kind is AdapterKind.LORA:
            for layer in self.decoder_layers():
                attn = layer.attn
                if not (isinstance(attn.q_proj, nn.Linear) and isinstance(attn.v_proj, nn.Linear)):
                    raise ValueError("LoRA is already applied to this decoder")
                attn.q_proj = LoRALinear(attn.q_proj, cfg.rank, cfg.alpha)
                attn.v_proj = LoRALinear(attn.v_proj, cfg.rank, cfg.alpha)

    def add_cross_attention(self, every: int) -> list[int]:
        """A gated cross-attention block before every `every`-th layer; returns their layer ids."""
        ids = [i for i in range(self.cfg.layers) if (i + 1) % every == 0]
        for i in ids:
            self.layers[i].cross = GatedCrossAttentionBlock(self.cfg)
        return ids

    def decoder_layers(self) -> list[DecoderLayer]:
        """`layers` with their type (an `nn.ModuleList` yields plain modules)."""
        return typing.cast(list[DecoderLayer], list(self.layers))

    @property
    def cross_layers(self) -> list[int]:
        return [i for i, layer in enumerate(self.decoder_layers()) if layer.cross is not None]

    # -- graphs -----------------------------------------------------------------------------
    def embed(self, input_ids):
        """(B, S) int64 -> (B, S, hidden): the `embed` graph."""
        if self.embed_multiplier == 1.0:
            return self.embed_tokens(input_ids)
        return self.embed_tokens(input_ids) * self.embed_multiplier

    @property
    def embedding_std(self) -> float:
        """The standard deviation of what `embed` returns (visual prefix tokens are matched to it)."""
        return float(self.embed_tokens.weight.detach().std()) * self.embed_multiplier

    def forward(self, inputs_embeds, attention_mask, position_ids, past=None, cross=None, last_only=False):
        """The `decoder` graph.

        inputs_embeds (B, S, D); attention_mask (B, T) with T = past + S; position_ids (B, S);
        past: per layer (key, value) each (B, H, past, Dh), or None for a training pass;
        cross: per cross-attention layer (key, value) each (B, H, M, Dh), or None (text only).
        Returns logits (B, S, V) -- (B, 1, V) with `last_only`, the exported graph's: generation
        reads only the last position (rows are left-padded), and the LM head over every prompt
        position is wasted work -- and per layer the present (key, value) (B, H, T, Dh).
        """
        b, s, _ = inputs_embeds.shape
        total = attention_mask.shape[1]
        # Causal + padding mask as an additive bias:
        #   key j is visible to query i (absolute position past + i) iff j <= past + i and mask[j] = 1
        q_pos = torch.arange(s, device=inputs_embeds.device) + (total - s)  # (S,)
        k_pos = torch.arange(total, device=inputs_embeds.device)  # (T,)
        causal = k_pos.unsqueeze(0) <= q_pos.unsqueeze(1)  # (S, T)
        visible = causal.unsqueeze(0) & (attention_mask.unsqueeze(1) > 0)  # (B, S, T)
        bias = torch.where(visible, 0.0, MASK_VALUE).to(inputs_embeds.dtype).unsqueeze(1)  # (B, 1, S, T)

        x = inputs_embeds
        rope = None
        if self.inv_freq is not None:
            freqs = position_ids.unsqueeze(-1).to(x.dtype) * self.inv_freq  # (B, S, Dh/2)
            angles = torch.cat([freqs, freqs], dim=-1).unsqueeze(1)  # (B, 1, S, Dh)
            rope = (torch.cos(angles), torch.sin(angles))
        if self.embed_positions is not None:  # gpt2
            x = x + self.embed_positions(position_ids)

        cross_by_layer = {}
        if cross is not None:
            cross_by_layer = dict(zip(self.cross_layers, cross))
        presents = []
        for i, layer in enumerate(self.layers):
            pk, pv = past[i] if past is not None else (None, None)
            ck, cv = cross_by_layer.get(i, (None, None))
            x, k, v = layer(x, bias, rope, pk, pv, ck, cv)
            presents.append((k, v))
        if last_only:
            x = x[:, -1:]
        head = self.embed_tokens.weight if self.lm_head is None else self.lm_head.weight
        logits = torch.matmul(self.norm(x), head.t())  # (B, S, V)
        return logits, presents
