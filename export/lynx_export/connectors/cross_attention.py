"""The `connector` graph: image features -> what the decoder consumes.

Prefix connectors (resampler, projector) return visual embeddings placed before the text; the
cross-attention connector resamples the frames and projects the memory to per-layer keys and
values, computed once per sample (docs/contract.md section 2).
"""

from __future__ import annotations

from torch import nn

from ..config import ConnectorConfig, ConnectorKind, DecoderConfig
from .layers import split_heads
from .projector import Projector
from .resampler import PerceiverResampler


class CrossAttentionConnector(nn.Module):
    """Resampler memory -> cross_key_values.{j}.key/value (B, H, M, Dh) for each gated block j."""

    def __init__(self, cfg: ConnectorConfig, vision_dim: int, dec: DecoderConfig, n_blocks: int):
        super().__init__()
        self.heads = dec.heads
        self.resampler = PerceiverResampler(cfg, vision_dim, dec.hidden)
        self.k_proj = nn.ModuleList(nn.Linear(dec.hidden, dec.hidden) for _ in range(n_blocks))
        self.v_proj = nn.ModuleList(nn.Linear(dec.hidden, dec.hidden) for _ in range(n_blocks))

    def forward(self, image_features):
        memory = self.resampler(image_features)  # (B, M, hidden)
        return [(split_heads(k(memory), self.heads), split_heads(v(memory), self.heads))
                for k, v in zip(self.k_proj, self.v_proj)]


def build_connector(cfg: ConnectorConfig, vision_dim: int, dec: DecoderConfig, patches: int, n_cross: int):
    if cfg.kind is ConnectorKind.RESAMPLER:
        return PerceiverResampler(cfg, vision_dim, dec.hidden)
    if cfg.kind is ConnectorKind.PROJECTOR:
        return Projector(cfg, vision_dim, dec.hidden, patches)
    if cfg.kind is ConnectorKind.CROSS_ATTENTION:
        return CrossAttentionConnector(cfg, vision_dim, dec, n_cross)
    return None
