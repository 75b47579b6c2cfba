"""The zoo: the baseline `lynx` and one variant per ablation axis of the Lynx study.

Every variant is `lynx` with exactly one axis changed (`changes`), and `paper` says what Lynx
(Zeng et al. 2023, arXiv 2307.02469) reported for that axis, or that it did not test it.
"""

from __future__ import annotations

from . import config as C
from .registry import register_variant

BASELINE = C.VariantConfig(
    name="lynx",
    description="Baseline -- Perceiver resampler prefix, frozen chat LLaMA-style backbone with adapters every 2 layers.",
    changes=None,
    paper="Lynx's final recipe: prefix-finetuning through a resampler, frozen Vicuna with adapters.",
)


def variant(name: str, description: str, changes: str, paper: str, **overrides) -> C.VariantConfig:
    """`lynx` with `overrides` (nested dicts for nested configs) under a new name."""
    return C.replace(BASELINE, name=name, description=description, changes=changes, paper=paper, **overrides)


def _register(make):
    register_variant(make)
    return make


@_register
def lynx():
    return BASELINE


_DEFS = [
    # the reference points first: a partial build still has the blind margin and the int8 cost
    ("lynx-int8", "The baseline with its decoder quantised to int8 (dynamic) at export.", "quantization",
     "Not in Lynx; measures the inference cost of the baseline.",
     dict(quantization="int8_dynamic", base_variant="lynx")),
    ("lynx-blind", "Blind control: the same recipe without any image input.", "vision_input",
     "Not in Lynx; measures how much the question alone gives away.",
     dict(connector={"kind": "none"}, vision_input=False)),
    ("lynx-xattn", "Gated cross-attention every 2nd layer (Flamingo) instead of the prefix; the gated blocks replace the adapters.", "connector",
     "Prefix-finetuning with adapters beats cross-attention (Lynx Table 2).",
     dict(connector={"kind": "cross_attention"}, adapter={"kind": "none"})),
    ("lynx-projector", "MLP projector on pooled patches (LLaVA) instead of the resampler.", "connector",
     "Not ablated in Lynx (resampler only); LLaVA uses a linear projector.",
     dict(connector={"kind": "projector"})),
    ("lynx-base", "Base (corpus-only) backbone instead of the chat backbone.", "backbone.flavour",
     "Instruction-tuned Vicuna follows instructions better than LLaMA (Lynx Table 2).",
     dict(backbone={"flavour": "base"})),
    ("lynx-gpt2", "GPT-2-style backbone (LayerNorm, learned positions, GELU).", "backbone.family",
     "Not ablated in Lynx (LLaMA family only).",
     dict(backbone={"family": "gpt2"})),
    ("lynx-large", "Larger backbone (6 layers, width 160).", "backbone.size",
     "Not ablated in Lynx (7B only).",
     dict(backbone={"size": "large"})),
    ("lynx-no-adapter", "Frozen LLM without adapters: only the resampler trains (prefix only).", "adapter",
     "Adapters help over prefix-tuning alone (Lynx Table 2).",
     dict(adapter={"kind": "none"})),
    ("lynx-full-ft", "Unfrozen LLM: full fine-tune, no adapters.", "freeze.llm",
     "Freezing the LLM and training adapters matches or beats full fine-tuning, which loses language ability (Lynx).",
     dict(adapter={"kind": "none"}, recipe={"llm": "trained"})),
    ("lynx-adapter-every", "Adapters after every layer instead of every 2nd.", "adapter.every",
     "Lynx uses adapter_freq 2; denser adapters not reported.",
     dict(adapter={"every": 1})),
    ("lynx-lora", "LoRA (rank 8) on query and value instead of bottleneck adapters.", "adapter.kind",
     "Not ablated in Lynx (bottleneck adapters).",
     dict(adapter={"kind": "lora"})),
    ("lynx-vit-last", "Last ViT block and final norm train (vision partly unfrozen).", "freeze.vision",
     "Lynx keeps the ViT frozen; unfreezing not reported as helpful.",
     dict(recipe={"vision": "last_block"})),
    ("lynx-lowres", "Low resolution: 64 px images (16 patches) instead of 128 px.", "resolution",
     "Higher resolution (420 vs 224) helps, most on OCR-like questions (Lynx).",
     dict(resolution=64)),
    ("lynx-tokens-8", "Fewer visual tokens: 8 resampler latents instead of 32.", "visual_tokens",
     "Lynx uses 32 tokens; fewer tokens lose detail (counting, OCR).",
     dict(connector={"latents": 8})),
    ("lynx-tokens-64", "More visual tokens: 64 resampler latents instead of 32.", "visual_tokens",
     "More tokens than 32 brought no clear gain in Lynx's setting.",
     dict(connector={"latents": 64})),
    ("lynx-1frame", "Video as one frame (the middle one) instead of 5.", "frames",
     "Multiple frames matter for video (temporal) questions (Lynx).",
     dict(frames=1)),
    ("lynx-no-framepos", "No learned frame-position embedding for video.", "frame_positions",
     "Lynx adds a learned frame embedding per frame before resampling (`concate`).",
     dict(connector={"frame_positions": False})),
    ("lynx-no-video", "No video data in instruction tuning.", "data.video",
     "Video data is needed for video QA; image QA is barely affected (Lynx).",
     dict(recipe={"video": False})),
    ("lynx-no-text", "No text-only instruction data in instruction tuning.", "data.text_instructions",
     "Text instruction data keeps instruction following (Lynx).",
     dict(recipe={"text_instructions": False})),
    ("lynx-single-prompt", "A single phrasing per task instead of diverse prompts.", "prompts",
     "Diversified prompts improve instruction following (Lynx Table 3).",
     dict(recipe={"prompts": "single"})),
    ("lynx-noisy-captions", "Noisy alignment data: half of the caption pairs mismatched.", "data.alignment",
     "Curated data beats noisy crawled data; noise hurts (Lynx Table 3).",
     dict(recipe={"alignment": "noisy"})),
    ("lynx-half-data", "Half of the training records (quantity).", "data.fraction",
     "Data quality matters more than quantity (Lynx Table 3).",
     dict(recipe={"fraction": 0.5})),
    ("lynx-uniform-sampling", "Tasks sampled uniformly instead of by their size.", "data.sampling",
     "Lynx samples tasks size-balanced; the sampling ratio changes results (Lynx Sec. 4).",
     dict(recipe={"sampling": "uniform"})),
    ("lynx-no-align", "No alignment stage: instruction tuning only.", "stages",
     "Lynx pretrains on image-text pairs before instruction tuning.",
     dict(recipe={"alignment_steps": 0})),
]


def _make(args):
    name, description, changes, paper, overrides = args
    return lambda: variant(name, description, changes, paper, **overrides)


for _args in _DEFS:
    register_variant(_make(_args))
