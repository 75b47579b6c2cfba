"""The four graphs of an imported LLaVA checkpoint as modules with flat tensor signatures.

Each wrapper's forward is one ONNX graph of docs/contract.md section 2 (the tensor names are
graphs.py's table): its arguments are the graph inputs in order, its outputs the graph outputs.
They call the checkpoint's own transformers modules, so the graphs compute what
`LlavaForConditionalGeneration` computes (Liu et al. 2023, "Visual Instruction Tuning"; transformers'
`models/llava/modeling_llava.py`):

    pixel_values -> vision tower -> hidden states of `vision_feature_layer` (CLS dropped with the
    `default` strategy)                                           = VisionFeatures  (graph `vision`)
    image_features (B, F, N, Dv) -> (B, F*N, Dv) -> multi_modal_projector
                                                                  = Projector       (graph `connector`)
    input_ids -> embed_tokens                                     = Embed           (graph `embed`)
    inputs_embeds + attention_mask + position_ids + past K/V -> language model + lm_head
                                                                  = Decoder         (graph `decoder`)

The decoder is Optimum's `decoder_model_merged` shape but for its logits, which are the last
position's only (batch, 1, vocab): generation reads no other, and the LM head over every prompt
position is the costliest waste of a prefill at a large vocabulary. The cache is
(batch, kv_heads, seq, head_dim) with present = past + this step (grouped-query attention keeps
`num_key_value_heads` heads in the cache; transformers' attention repeats them for the queries).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..graphs import KV, N, TensorSpec, kv_name


# ---------------------------------------------------------------------------------------------
# the families the importer knows: what differs between them, as data
@dataclass(frozen=True)
class VisionFamily:
    """A vision tower transformers builds from `vision_config.model_type`."""

    model_type: str
    cls_token: bool  # the tower's sequence starts with a class token (CLIP) or not (SigLIP)


@dataclass(frozen=True)
class TextFamily:
    """A language model transformers builds from `text_config.model_type`, and how it takes masks."""

    model_type: str
    # the model reads a {layer type: 4D mask} mapping (Qwen2: full and sliding layers side by side);
    # otherwise one 4D mask for every layer
    mask_per_layer_type: bool
    # the config field holding the sliding-attention window (None: the family has none)
    window_field: str | None


VISION_FAMILIES = {f.model_type: f for f in (VisionFamily("clip_vision_model", cls_token=True),
                                             VisionFamily("siglip_vision_model", cls_token=False))}
TEXT_FAMILIES = {f.model_type: f for f in (TextFamily("llama", mask_per_layer_type=False, window_field=None),
                                           TextFamily("mistral", mask_per_layer_type=False,
                                                      window_field="sliding_window"),
                                           TextFamily("qwen2", mask_per_layer_type=True,
                                                      window_field="sliding_window"))}


# ---------------------------------------------------------------------------------------------
# graphs
class VisionFeatures(nn.Module):
    """pixel_values (B, 3, S, S) -> image_features (B, patches, vision_dim): LLaVA's selected features.

    `layers` are `vision_feature_layer` as a list (one layer, or several concatenated on the last
    axis); `drop_first` is the `default` selection strategy, which drops the first token (CLIP's CLS).
    """

    def __init__(self, tower: nn.Module, layers: list[int], drop_first: bool):
        super().__init__()
        self.tower, self.layers, self.drop_first = tower, layers, drop_first

    def forward(self, pixel_values):
        hidden = self.tower(pixel_values, output_hidden_states=True, return_dict=True).hidden_states
        picked = [hidden[i][:, 1:] if self.drop_first else hidden[i] for i in self.layers]  # (B, N, Dv) each
        return picked[0] if len(picked) == 1 else torch.cat(picked, dim=-1)


class Projector(nn.Module):
    """image_features (B, F, N, Dv) -> visual_embeds (B, F*N, hidden): every patch of every frame a token."""

    def __init__(self, projector: nn.Module):
        super().__init__()
        self.projector = projector

    def forward(self, image_features):
        b, dv = image_features.shape[0], image_features.shape[-1]
        return self.projector(image_features.reshape(b, -1, dv))  # (B, F*N, D)


class Embed(nn.Module):
    """input_ids (B, S) -> inputs_embeds (B, S, hidden)"""

    def __init__(self, embed: nn.Module):
        super().__init__()
        self.embed = embed

    def forward(self, input_ids):
        return self.embed(input_ids)


def attention_bias(attention_mask: torch.Tensor, seq: torch.Tensor, window: int | None) -> torch.Tensor:
    """The additive mask eager attention adds to its scores, from the 2D padding mask.

        attention_mask (B, T), T = past + S      key k in 0..T-1, query q in 0..S-1 at P + q
        allowed(b, q, k) = k <= P + q                       causal
                       and attention_mask[b, k] == 1        padding (left padding stays masked)
                       and k > P + q - window               sliding layers only (transformers' rule)
        -> (B, 1, S, T): 0 where allowed, float32's lowest elsewhere (as transformers' eager mask)

    The window is transformers' (it counts cache slots). With left padding a row's real tokens are
    contiguous, so slots and the row's own positions differ by the same offset for every key and
    a padded row keeps the window it has alone. `seq` is any (S,) tensor; the shapes are read
    from tensors so the trace keeps them dynamic.
    """
    keys = torch.cumsum(torch.ones_like(attention_mask[0]), 0) - 1  # (T,)
    past = attention_mask.shape[1] - seq.shape[0]
    queries = torch.cumsum(torch.ones_like(seq, dtype=torch.long), 0) - 1 + past  # (S,)
    allowed = keys[None, :] <= queries[:, None]  # (S, T)
    if window is not None:
        allowed = allowed & (keys[None, :] > queries[:, None] - window)
    allowed = allowed[None, None] & (attention_mask[:, None, None, :] > 0)  # (B, 1, S, T)
    zeros = torch.zeros(allowed.shape, dtype=torch.float32, device=attention_mask.device)
    return zeros.masked_fill(~allowed, torch.finfo(torch.float32).min)


class Decoder(nn.Module):
    """inputs_embeds, attention_mask, position_ids, past K/V... -> logits, present K/V...

    The past tensors are handed to the language model as a transformers `DynamicCache` whose layers
    already hold them, so each attention layer's `update` concatenates this step's K/V to them and
    the layer's tensors after the forward are the presents:

        past_key_values.{i}.key (B, kv, P, Dh) -> DynamicLayer.keys -> attention: cat(past, new)
                                                                     -> present.{i}.key (B, kv, P+S, Dh)
    """

    def __init__(self, language_model: nn.Module, lm_head: nn.Module, family: TextFamily, config):
        super().__init__()
        self.language_model, self.lm_head, self.family = language_model, lm_head, family
        self.layers = int(config.num_hidden_layers)
        self.window = getattr(config, family.window_field) if family.window_field else None
        self.layer_types = list(getattr(config, "layer_types", None) or [])

    def masks(self, attention_mask, seq):
        if not self.family.mask_per_layer_type:
            return attention_bias(attention_mask, seq, self.window)
        windows = {"full_attention": None, "sliding_attention": self.window}
        return {t: attention_bias(attention_mask, seq, windows[t]) for t in sorted(set(self.layer_types))}

    def forward(self, inputs_embeds, attention_mask, position_ids, *past):
        from transformers.cache_utils import DynamicCache, DynamicLayer

        layers = []
        for i in range(self.layers):
            layer = DynamicLayer()
            layer.keys, layer.values = past[2 * i], past[2 * i + 1]
            layer.device, layer.is_initialized = inputs_embeds.device, True
            layers.append(layer)
        cache = DynamicCache()  # no config: plain layers, none sliding (the mask holds any window)
        cache.layers.extend(layers)
        seq = inputs_embeds[0, :, 0]  # (S,)
        out = self.language_model(inputs_embeds=inputs_embeds, attention_mask=self.masks(attention_mask, seq),
                                  position_ids=position_ids, cache=cache, use_cache=True)
        logits = self.lm_head(out.last_hidden_state[:, -1:])  # (B, 1, V): the last position's
        return (logits,) + tuple(t for layer in layers for t in (layer.keys, layer.values))


# ---------------------------------------------------------------------------------------------
# tensor specs (docs/contract.md section 2)
IO = tuple[list[TensorSpec], list[TensorSpec]]  # a graph's inputs and outputs


def vision_io(size: int, patches: int, vision_dim: int) -> IO:
    return ([TensorSpec(N["pixel_values"], "float32", ("batch", 3, size, size))],
            [TensorSpec(N["image_features"], "float32", ("batch", patches, vision_dim))])


def projector_io(patches: int, vision_dim: int, hidden: int) -> IO:
    return ([TensorSpec(N["image_features"], "float32", ("batch", "frames", patches, vision_dim))],
            [TensorSpec(N["visual_embeds"], "float32", ("batch", "tokens", hidden))])


def embed_io(hidden: int) -> IO:
    return ([TensorSpec(N["input_ids"], "int64", ("batch", "seq"))],
            [TensorSpec(N["inputs_embeds"], "float32", ("batch", "seq", hidden))])


def decoder_io(hidden: int, layers: int, kv_heads: int, head_dim: int, vocab: int) -> IO:
    inputs = [TensorSpec(N["inputs_embeds"], "float32", ("batch", "seq", hidden)),
              TensorSpec(N["attention_mask"], "int64", ("batch", "total")),
              TensorSpec(N["position_ids"], "int64", ("batch", "seq"))]
    outputs = [TensorSpec(N["logits"], "float32", ("batch", 1, vocab))]
    for i in range(layers):
        for kind in KV:
            inputs.append(TensorSpec(kv_name("past", i, kind), "float32", ("batch", kv_heads, "past", head_dim)))
            outputs.append(TensorSpec(kv_name("present", i, kind), "float32", ("batch", kv_heads, "total", head_dim)))
    return inputs, outputs
