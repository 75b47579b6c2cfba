"""Build stage 2: training one variant (the two Lynx stages) on the shared components, cached by a
hash of the variant config and every upstream key."""

from __future__ import annotations

import torch

from .components import Components
from .config import VariantConfig, config_hash
from .models.lynx import LynxModel
from .registry import create_variant
from .train import train_variant


class VariantTraining:
    """Trains variants on `components` (their data, ViT, backbones and features)."""

    def __init__(self, components: Components):
        self.components = components

    def variant_key(self, v: VariantConfig) -> str:
        c = self.components
        if v.base_variant:
            return config_hash("quantized", v, self.variant_key(create_variant(v.base_variant)))
        return config_hash("variant", v, c.vit_key(), c.backbone_key(v.backbone), c.tokenizer_key(),
                           c.profile.step_scale)

    def build_model(self, v: VariantConfig) -> LynxModel:
        """A fresh (untrained) model of `v` at the profile's sizes."""
        c = self.components
        return LynxModel(v, c.vision_cfg(), c.decoder_cfg(v.backbone))

    def initial_model(self, v: VariantConfig, backbone_state: dict | None = None) -> LynxModel:
        """The model `train_variant` starts from: initialised under the recipe's seed (a seed
        replicate starts elsewhere), the pretrained ViT and backbone (`backbone_state`, default the
        foundation's) loaded."""
        c = self.components
        torch.manual_seed(v.recipe.seed)
        model = self.build_model(v)
        model.load_pretrained(c.vit_state() if v.has_vision else None,
                              backbone_state if backbone_state is not None else c.backbone_state(v.backbone))
        return model

    def trained(self, v: VariantConfig, frame_counts: list[int]) -> tuple[LynxModel, dict]:
        """(model in eval mode, stats) of a trained variant, from the cache when present."""
        c = self.components
        data = c.data()

        def make():
            model = self.initial_model(v)
            store = c.features(v.resolution, frame_counts) if v.has_vision else None
            stats = train_variant(model, c.codec(), store, data.records, data.captions, data.instructions,
                                  c.profile.step_scale, c.log)
            trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
            stats["parameters"] = {"total": sum(p.numel() for p in model.parameters()), "trainable": trainable}
            return {k: t.cpu() for k, t in model.state_dict().items()}, stats

        state, stats = c.cache.get("variant", self.variant_key(v), make)
        model = self.build_model(v)
        model.load_state_dict(state)
        return model.eval(), stats
