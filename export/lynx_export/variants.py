"""The zoo: the baseline `lynx` and one variant per ablation axis of the Lynx study.

Every variant is a named `Variant` record: `lynx` with one axis changed (`changes`, a manifest axis,
checked against the overrides by `check_changes`), and `paper` says what Lynx (Zeng et al. 2023,
arXiv 2307.02469) reported for that axis, or that it did not test it. Adding a variant is adding a
record to `VARIANTS`.
"""

from __future__ import annotations

import dataclasses
import typing

from . import config as C
from .registry import register_variant

BASELINE = C.VariantConfig(
    name="lynx",
    description="Baseline -- Perceiver resampler prefix, frozen chat LLaMA-style backbone with adapters every 2 layers.",
    changes=None,
    paper="Lynx's final recipe: prefix-finetuning through a resampler, frozen Vicuna with adapters.",
)


# `changes` names a manifest axis (`axes` in variants/NAME.yaml, dotted for nested ones); these
# names are the zoo's older words for an axis that the manifest spells otherwise.
AXIS_ALIASES = {"stages": "data.alignment"}  # no alignment stage shows as data.alignment: none


@dataclasses.dataclass(frozen=True)
class Variant:
    """One ablation: `lynx` with `overrides` (nested dicts for nested configs) under a new name.
    `changes` is the axis it changes; `check_changes` holds it to that."""

    name: str  # registry name, file stem of variants/NAME.yaml
    changes: str  # the manifest axis changed from `lynx` (a key of `axes`, dotted; or an AXIS_ALIASES name)
    description: str  # one sentence for `lynx-zoo list`
    paper: str  # what Lynx reported for that axis
    overrides: dict[str, typing.Any] = dataclasses.field(default_factory=dict)
    found: typing.Optional[C.PaperFinding] = None  # the direction of `paper`'s finding, where it states one

    def config(self) -> C.VariantConfig:
        return variant(self.name, self.description, self.changes, self.paper, paper_finding=self.found,
                       **self.overrides)


def variant(name: str, description: str, changes: str, paper: str, **overrides) -> C.VariantConfig:
    """`lynx` with `overrides` under a new name; the axis `changes` must differ from `lynx`'s."""
    cfg = C.replace(BASELINE, name=name, description=description, changes=changes, paper=paper, **overrides)
    check_changes(cfg)
    return cfg


def check_changes(v: C.VariantConfig):
    """Raises ConfigError unless the axis `v.changes` names exists in the manifest and has another
    value than in `lynx` (an override that touches a different axis, or sets the baseline's value,
    fails). Coupled settings may change too (lynx-xattn drops the adapters its gated blocks replace)."""
    from .foundation import PLANS
    from .manifest import axes

    if v.changes is None:
        raise C.ConfigError(f"variant `{v.name}` names no changed axis")
    path = AXIS_ALIASES.get(v.changes, v.changes)
    for patch in sorted({plan.vision.patch for plan in PLANS.values()}):  # the ViT patch sides a build uses
        _check_axis(v, path, axes(v, patch), axes(BASELINE, patch))


def _check_axis(v: C.VariantConfig, path: str, mine: typing.Any, base: typing.Any):
    """`mine` and `base` are the manifest axes of `v` and `lynx`; walks both down `path`."""
    for part in path.split("."):
        if not isinstance(mine, dict) or part not in mine:
            raise C.ConfigError(f"variant `{v.name}`: changes `{v.changes}` is not a manifest axis")
        mine, base = mine[part], base[part]
    if mine == base:
        raise C.ConfigError(f"variant `{v.name}`: declares that it changes `{v.changes}`, but its overrides "
                            f"leave it as in `lynx` (`{mine}`)")


def _register(make):
    register_variant(make)
    return make


@_register
def lynx():
    return BASELINE


VARIANTS = [
    # the reference points first: a partial build still has the blind margin and the int8 cost
    Variant("lynx-int8", changes="quantization",
            description="The baseline with its decoder quantised to int8 (dynamic) at export.",
            paper="Not in Lynx; measures the inference cost of the baseline.",
            overrides=dict(quantization="int8_dynamic", base_variant="lynx")),
    Variant("lynx-blind", changes="vision_input",
            description="Matched blind control: lynx's graphs, data mix, steps and trainable parameters, "
                        "with every picture replaced by one blank picture.",
            paper="Not in Lynx; measures how much the question alone gives away.",
            overrides=dict(vision_input="blank")),
    Variant("lynx-xattn", changes="connector",
            description="Gated cross-attention every 2nd layer (Flamingo) instead of the prefix; the gated blocks replace the adapters.",
            paper="Prefix-finetuning with adapters beats cross-attention (Lynx Table 2).",
            overrides=dict(connector={"kind": "cross_attention"}, adapter={"kind": "none"}),
            found=C.PaperFinding.WORSE),
    Variant("lynx-projector", changes="connector",
            description="MLP projector on pooled patches (LLaVA) instead of the resampler.",
            paper="Not ablated in Lynx (resampler only); LLaVA uses a linear projector.",
            overrides=dict(connector={"kind": "projector"})),
    Variant("lynx-base", changes="backbone.flavour",
            description="Base (corpus-only) backbone instead of the chat backbone.",
            paper="Instruction-tuned Vicuna follows instructions better than LLaMA (Lynx Table 2).",
            overrides=dict(backbone={"flavour": "base"}),
            found=C.PaperFinding.WORSE),
    Variant("lynx-gpt2", changes="backbone.family",
            description="GPT-2-style backbone (LayerNorm, learned positions, GELU).",
            paper="Not ablated in Lynx (LLaMA family only).",
            overrides=dict(backbone={"family": "gpt2"})),
    Variant("lynx-large", changes="backbone.size",
            description="Larger backbone (6 layers, width 160).",
            paper="Not ablated in Lynx (7B only).",
            overrides=dict(backbone={"size": "large"})),
    Variant("lynx-no-adapter", changes="adapter",
            description="Frozen LLM without adapters: only the resampler trains (prefix only).",
            paper="Adapters help over prefix-tuning alone (Lynx Table 2).",
            overrides=dict(adapter={"kind": "none"}),
            found=C.PaperFinding.WORSE),
    Variant("lynx-full-ft", changes="freeze.llm",
            description="Unfrozen LLM: full fine-tune, no adapters.",
            paper="Freezing the LLM and training adapters matches or beats full fine-tuning, which loses language ability (Lynx).",
            overrides=dict(adapter={"kind": "none"}, recipe={"llm": "trained"}),
            found=C.PaperFinding.NOT_BETTER),
    Variant("lynx-adapter-every", changes="adapter.every",
            description="Adapters after every layer instead of every 2nd.",
            paper="Lynx uses adapter_freq 2; denser adapters not reported.",
            overrides=dict(adapter={"every": 1})),
    Variant("lynx-lora", changes="adapter.kind",
            description="LoRA (rank 8) on query and value instead of bottleneck adapters.",
            paper="Not ablated in Lynx (bottleneck adapters).",
            overrides=dict(adapter={"kind": "lora"})),
    Variant("lynx-vit-last", changes="freeze.vision",
            description="Last ViT block and final norm train (vision partly unfrozen).",
            paper="Lynx keeps the ViT frozen; unfreezing not reported as helpful.",
            overrides=dict(recipe={"vision": "last_block"})),
    Variant("lynx-lowres", changes="resolution",
            description="Low resolution: 64 px images (16 patches) instead of 128 px.",
            paper="Higher resolution (420 vs 224) helps, most on OCR-like questions (Lynx).",
            overrides=dict(resolution=64),
            found=C.PaperFinding.WORSE),
    Variant("lynx-tokens-8", changes="visual_tokens",
            description="Fewer visual tokens: 8 resampler latents instead of 32.",
            paper="Lynx uses 32 tokens; fewer tokens lose detail (counting, OCR).",
            overrides=dict(connector={"latents": 8})),
    Variant("lynx-tokens-64", changes="visual_tokens",
            description="More visual tokens: 64 resampler latents instead of 32.",
            paper="More tokens than 32 brought no clear gain in Lynx's setting.",
            overrides=dict(connector={"latents": 64}),
            found=C.PaperFinding.NOT_BETTER),
    Variant("lynx-1frame", changes="frames",
            description="Video as one frame (the middle one) instead of 5.",
            paper="Multiple frames matter for video (temporal) questions (Lynx).",
            overrides=dict(frames=1),
            found=C.PaperFinding.WORSE),
    Variant("lynx-no-framepos", changes="frame_positions",
            description="No learned frame-position embedding for video.",
            paper="Lynx adds a learned frame embedding per frame before resampling (`concate`).",
            overrides=dict(connector={"frame_positions": False})),
    Variant("lynx-no-video", changes="data.video",
            description="No video data in instruction tuning.",
            paper="Video data is needed for video QA; image QA is barely affected (Lynx).",
            overrides=dict(recipe={"video": False}),
            found=C.PaperFinding.WORSE),
    Variant("lynx-no-text", changes="data.text_instructions",
            description="No text-only instruction data in instruction tuning.",
            paper="Text instruction data keeps instruction following (Lynx).",
            overrides=dict(recipe={"text_instructions": False}),
            found=C.PaperFinding.WORSE),
    Variant("lynx-single-prompt", changes="prompts",
            description="A single phrasing per task instead of diverse prompts.",
            paper="Diversified prompts improve instruction following (Lynx Table 3).",
            overrides=dict(recipe={"prompts": "single"}),
            found=C.PaperFinding.WORSE),
    Variant("lynx-noisy-captions", changes="data.alignment",
            description="Noisy alignment data: half of the caption pairs mismatched.",
            paper="Curated data beats noisy crawled data; noise hurts (Lynx Table 3).",
            overrides=dict(recipe={"alignment": "noisy"}),
            found=C.PaperFinding.WORSE),
    Variant("lynx-half-data", changes="data.fraction",
            description="Half of the training records (quantity).",
            paper="Data quality matters more than quantity (Lynx Table 3).",
            overrides=dict(recipe={"fraction": 0.5})),
    Variant("lynx-uniform-sampling", changes="data.sampling",
            description="Tasks sampled uniformly instead of by their size.",
            paper="Lynx samples tasks size-balanced; the sampling ratio changes results (Lynx Sec. 4).",
            overrides=dict(recipe={"sampling": "uniform"})),
    Variant("lynx-no-align", changes="stages",
            description="No alignment stage: instruction tuning only.",
            paper="Lynx pretrains on image-text pairs before instruction tuning.",
            overrides=dict(recipe={"alignment_steps": 0})),
]


for _v in VARIANTS:
    register_variant(_v.config)

# Seed replicates the zoo ships (`NAME-seedK`, registry.py): none until the zoo is rebuilt on the
# current foundation; a build or `create_variant` takes any `NAME-seedK` by name meanwhile.
REPLICATES: list[str] = []
