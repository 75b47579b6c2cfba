"""A Lynx variant as one PyTorch module: vision encoder -> connector -> decoder.

Training runs the decoder without cache over whole sequences; export slices the same module into
the graphs of docs/contract.md (see export.py). Sequence layout (one row, right-padded in training,
left-padded at inference; positions = cumsum(mask) - 1 in both):

    prefix:  [visual_embeds (V)][<s> User: {question}\\nBot:][ {response}</s>][pad...]
    cross:   [<s> User: {question}\\nBot:][ {response}</s>][pad...]   + cross K/V from the connector
    blind:   like cross, without the connector
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .. import connectors
from ..config import LlmFreeze, VariantConfig, VisionConfig, VisionFreeze, DecoderConfig
from .decoder import Decoder
from .layers import PrefixConnector
from .vision import VisionEncoder

IGNORE = -100


class LynxModel(nn.Module):
    def __init__(self, variant: VariantConfig, vision_cfg: VisionConfig, decoder_cfg: DecoderConfig):
        super().__init__()
        self.variant = variant
        self.decoder = Decoder(decoder_cfg)
        self.vision = VisionEncoder(vision_cfg) if variant.has_vision else None
        kind = connectors.spec(variant.connector.kind)
        settings = kind.settings(variant.connector, f"variant `{variant.name}`.connector")
        self.placement = kind.placement
        n_cross = kind.prepare_decoder(self.decoder, settings)  # before the adapters (initialisation order)
        self.decoder.add_adapters(variant.adapter)
        patches = (variant.resolution // vision_cfg.patch) ** 2
        self.connector = kind.build(settings, vision_cfg.width, decoder_cfg, patches, n_cross)

    @property
    def is_prefix(self) -> bool:
        return self.placement is connectors.Placement.PREFIX

    @property
    def is_cross(self) -> bool:
        return self.placement is connectors.Placement.CROSS

    def load_pretrained(self, vision_state: dict | None, decoder_state: dict):
        """Starts from the pretrained ViT and LLM (adapters and connector stay freshly initialised)."""
        missing, unexpected = self.decoder.load_state_dict(_lora_keys(decoder_state, self.decoder), strict=False)
        if unexpected:
            raise KeyError(f"decoder checkpoint has unexpected keys {unexpected[:3]}")
        if self.vision is not None and vision_state is not None:
            self.vision.load_state_dict(vision_state)
        if self.is_prefix:
            if not isinstance(self.connector, PrefixConnector):
                raise TypeError(f"connector kind `{self.variant.connector.kind.value}`: the module of a prefix "
                                "kind is a `PrefixConnector` (models/layers.py)")
            self.connector.match_output_scale(self.decoder.embedding_std)

    def apply_freeze(self) -> list[nn.Parameter]:
        """Sets requires_grad by the variant's freeze policy; returns the trainable parameters."""
        recipe = self.variant.recipe
        for p in self.parameters():
            p.requires_grad_(False)
        if self.connector is not None:
            self.connector.requires_grad_(True)
        for layer in self.decoder.layers:
            if layer.cross is not None:
                layer.cross.requires_grad_(True)
            if layer.adapter is not None:
                layer.adapter.requires_grad_(True)
        for name, p in self.decoder.named_parameters():
            if "lora_" in name:
                p.requires_grad_(True)
        if recipe.llm is LlmFreeze.TRAINED:
            self.decoder.requires_grad_(True)
        if self.vision is not None and recipe.vision is VisionFreeze.LAST_BLOCK:
            self.vision.blocks[-1].requires_grad_(True)
            self.vision.norm.requires_grad_(True)
        return [p for p in self.parameters() if p.requires_grad]

    def llm_parameters(self) -> set[int]:
        """ids of the pretrained LLM weights (a lower learning rate when they train)."""
        skip = {id(p) for layer in self.decoder.decoder_layers() for m in (layer.adapter, layer.cross)
                if m is not None for p in m.parameters()}
        return {id(p) for n, p in self.decoder.named_parameters() if id(p) not in skip and "lora_" not in n}

    def vision_features(self, feats):
        """Cached features -> image features. Cached features are the ViT output when the ViT is
        frozen, or the output of the frozen trunk (all blocks but the last) when the last block trains.
        (B, F, P, Dv) -> (B, F, P, Dv)"""
        if self.vision is not None and self.variant.recipe.vision is VisionFreeze.LAST_BLOCK:
            b, f, p, d = feats.shape
            feats = self.vision.head(feats.reshape(b * f, p, d)).reshape(b, f, p, d)
        return feats

    def loss(self, input_ids, attention_mask, labels, feats=None, token_weights=None):
        """Mean next-token cross-entropy over labelled positions.

        input_ids/attention_mask/labels (B, T); feats (B, F, P, Dv) cached vision features or None;
        token_weights (B, T) or None: each labelled position's weight, the mean then taken over the
        weights (a probe's answer-weighted loss).
        """
        embeds = self.decoder.embed(input_ids)  # (B, T, D)
        cross = None
        if feats is not None and self.connector is not None:
            out = self.connector(self.vision_features(feats))
            if self.is_prefix:  # (B, V, D) before the text
                b, v = out.shape[:2]
                embeds = torch.cat([out, embeds], dim=1)
                attention_mask = torch.cat([attention_mask.new_ones(b, v), attention_mask], dim=1)
                labels = torch.cat([labels.new_full((b, v), IGNORE), labels], dim=1)
                if token_weights is not None:
                    token_weights = torch.cat([token_weights.new_ones(b, v), token_weights], dim=1)
            else:
                cross = out
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        logits, _ = self.decoder(embeds, attention_mask, position_ids, None, cross)
        flat_logits, flat_labels = logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1)
        if token_weights is None:
            return F.cross_entropy(flat_logits, flat_labels, ignore_index=IGNORE)
        ce = F.cross_entropy(flat_logits, flat_labels, ignore_index=IGNORE, reduction="none")
        w = token_weights[:, 1:].reshape(-1) * (flat_labels != IGNORE)
        return (ce * w).sum() / w.sum().clamp(min=1e-6)


def _lora_keys(state: dict, decoder: Decoder) -> dict:
    """Renames `...q_proj.weight` to `...q_proj.base.weight` where LoRA wraps the projection."""
    own = set(decoder.state_dict())
    out = {}
    for k, v in state.items():
        if k not in own:
            stem, _, leaf = k.rpartition(".")
            alt = f"{stem}.base.{leaf}"
            if alt in own:
                k = alt
        out[k] = v
    return out
