"""Typed configuration of every component and of a Lynx variant.

Each field has a default and a comment (nanoGPT style). `from_dict` builds a config from plain
data and rejects unknown keys and unknown enum values, naming them, so a typo in a variant
definition is an error instead of a silently ignored option.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import typing
from dataclasses import dataclass, field


class ConfigError(ValueError):
    """A configuration names an unknown key, an unknown enum value or an inconsistent setting."""


class Family(str, enum.Enum):
    """LLM decoder family."""

    LLAMA = "llama"  # RMSNorm, rotary positions, SwiGLU
    GPT2 = "gpt2"  # LayerNorm, learned positions, GELU


class Flavour(str, enum.Enum):
    """Which checkpoint of a backbone: pretrained on the corpus, or tuned on text instructions."""

    BASE = "base"  # the LLaMA analogue
    CHAT = "chat"  # the Vicuna analogue


class ConnectorKind(str, enum.Enum):
    """How vision reaches the LLM."""

    RESAMPLER = "resampler"  # Perceiver resampler -> prefix tokens (Lynx)
    PROJECTOR = "projector"  # MLP projector on pooled patches -> prefix tokens (LLaVA)
    CROSS_ATTENTION = "cross_attention"  # gated cross-attention layers (Flamingo)
    NONE = "none"  # text-only: no vision at all


class VisionInput(str, enum.Enum):
    """What the model is shown of a picture."""

    PICTURE = "picture"  # the picture itself
    BLANK = "blank"  # the matched blind control: the graphs of a seeing variant, every picture replaced by one blank picture
    NONE = "none"  # nothing: no vision graph, no connector (text-only)


class AdapterKind(str, enum.Enum):
    """Trainable additions to a frozen LLM."""

    NONE = "none"
    BOTTLENECK = "bottleneck"  # Houlsby-style down/up adapter after the MLP (Lynx adapter_freq)
    LORA = "lora"  # low-rank updates of the query and value projections


class VisionFreeze(str, enum.Enum):
    FROZEN = "frozen"  # the pretrained ViT as is
    LAST_BLOCK = "last_block"  # last transformer block and final norm train


class LlmFreeze(str, enum.Enum):
    FROZEN = "frozen"  # only adapters (if any) train inside the LLM
    TRAINED = "trained"  # full fine-tune of every LLM weight


class CaptionQuality(str, enum.Enum):
    CLEAN = "clean"  # captions as generated
    NOISY = "noisy"  # half of the caption pairs mismatched (crawled-data analogue)


class Sampling(str, enum.Enum):
    SIZE_BALANCED = "size_balanced"  # every training record equally likely (tasks by their size)
    UNIFORM = "uniform"  # every task (question class) equally likely


class Prompts(str, enum.Enum):
    DIVERSE = "diverse"  # the questions as generated, with all their phrasings
    SINGLE = "single"  # one fixed phrasing per task


class LmWindows(str, enum.Enum):
    """Where the foundation's base pretraining starts its windows in the packed corpus."""
    RANDOM = "random"  # anywhere
    DOCUMENTS = "documents"  # at a passage's start, so that its facts keep their caption


class Quantization(str, enum.Enum):
    NONE = "none"
    INT8_DYNAMIC = "int8_dynamic"  # onnxruntime.quantization.quantize_dynamic on the decoder


class Stem(str, enum.Enum):
    PATCH = "patch"  # one patch x patch convolution with stride patch (the original ViT)
    CONV = "conv"  # log2(patch) 3x3 stride-2 convolutions with GELU (Xiao et al. 2021, "early convolutions")


@dataclass(frozen=True)
class GenerationDefaults:
    """The decoding a manifest recommends (its `generation` block; docs/manifest.md): the exporter's
    one place for them. The runtime reads them as `Model::default_generation`; flags override them.
    `max_new_tokens` comes from the build profile (it also bounds the goldens' greedy decoding)."""

    strategy: str = "beam"  # greedy | beam | sample
    beams: int = 5  # beam width (Lynx decodes with 5; docs/cli.md)
    min_new_tokens: int = 2
    length_penalty: float = -2.0  # hypotheses scored sum / length ^ length_penalty (docs/architecture.md)
    no_repeat_ngram_size: int = 2
    temperature: float = 1.0  # sample only
    top_k: int = 3  # sample only
    top_p: float = 0.9  # sample only

    def manifest(self, max_new_tokens: int) -> dict:
        """The manifest's `generation` block (fixed key order)."""
        return {"strategy": self.strategy, "beams": self.beams, "max_new_tokens": max_new_tokens,
                "min_new_tokens": self.min_new_tokens, "length_penalty": self.length_penalty,
                "no_repeat_ngram_size": self.no_repeat_ngram_size, "temperature": self.temperature,
                "top_k": self.top_k, "top_p": self.top_p}


@dataclass(frozen=True)
class VisionConfig:
    """ViT vision encoder (patch embedding, pre-LN blocks, final LayerNorm)."""

    patch: int = 16  # patch side in pixels (a power of two for the conv stem)
    stem: Stem = Stem.CONV  # how pixels become patch tokens (conv: reads shape, export/probes/objective_probe.py)
    grid: int = 8  # position-embedding grid at the pretraining resolution (128 px / 16)
    width: int = 128  # token width = vision_dim handed to the connector
    layers: int = 4  # transformer blocks
    heads: int = 4  # attention heads
    mlp_ratio: int = 2  # MLP hidden = width * mlp_ratio


@dataclass(frozen=True)
class DecoderConfig:
    """Decoder-only LLM with KV cache, LLaMA-style or GPT-2-style."""

    family: Family = Family.LLAMA  # llama | gpt2
    vocab_size: int = 1024  # must equal the tokenizer's vocabulary
    hidden: int = 128  # model width
    layers: int = 4  # decoder layers
    heads: int = 4  # attention heads (kv_heads == heads: no grouped-query attention)
    ffn: int = 256  # MLP hidden width (SwiGLU: per gate)
    max_positions: int = 256  # learned positions (gpt2); context limit for both families
    norm_eps: float = 1e-5  # RMSNorm / LayerNorm epsilon
    rope_theta: float = 10000.0  # rotary base (llama)
    # Token embeddings scaled by sqrt(hidden), rows drawn N(0, 1/hidden) (as Gemma and the original
    # Transformer), so that tokens enter the residual stream as loud as the blocks write to it.
    # Unscaled 0.02-std rows are drowned by the blocks' outputs, and a 4x128 backbone then fails
    # associative recall (docs/zoo.md, "Foundation probes: the embedding").
    scaled_embedding: bool = False
    # The LM head is the token embedding (GPT-2) or its own matrix (LLaMA). Tied, the gpt2 family
    # fails associative recall even with scaled embeddings; untied, both families learn it.
    tie_word_embeddings: bool = True

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


@dataclass(frozen=True)
class BackboneRef:
    """Which pretrained LLM a variant builds on."""

    family: Family = Family.LLAMA  # llama | gpt2
    flavour: Flavour = Flavour.CHAT  # base | chat
    size: str = "small"  # small | large (a key of the build profile's backbones)

    @property
    def name(self) -> str:
        return f"{self.family.value}-{self.flavour.value}-{self.size}"


@dataclass(frozen=True)
class ConnectorConfig:
    """Bridge from vision features to the LLM: the flat settings of every kind as variant overrides
    write them and cache keys hash them. Each kind reads its own typed subset
    (`connectors.settings`), and a variant that sets a field its kind does not read is an error."""

    kind: ConnectorKind = ConnectorKind.RESAMPLER  # resampler | projector | cross_attention | none
    depth: int = 2  # Perceiver resampler layers (Lynx: 3 at full scale)
    latents: int = 32  # resampler latent tokens = visual tokens (Lynx: 32)
    width: int = 64  # resampler width (projected in from vision_dim, out to hidden)
    heads: int = 4  # resampler attention heads
    pool: int = 2  # projector: average-pool patches pool x pool before the MLP
    frame_positions: bool = True  # learned frame-position embedding added per frame (Lynx)
    max_frames: int = 8  # rows of the frame-position table
    cross_attention_every: int = 2  # cross_attention: one gated block before every k-th layer


@dataclass(frozen=True)
class AdapterConfig:
    """Trainable additions inside a frozen LLM."""

    kind: AdapterKind = AdapterKind.BOTTLENECK  # none | bottleneck | lora
    every: int = 2  # bottleneck: after every `every`-th layer (Lynx adapter_freq)
    dim: int = 32  # bottleneck width
    rank: int = 8  # lora rank
    alpha: float = 16.0  # lora scale numerator (scale = alpha / rank)


@dataclass(frozen=True)
class RecipeConfig:
    """Freeze policy, data recipe and the two Lynx training stages."""

    vision: VisionFreeze = VisionFreeze.FROZEN  # frozen | last_block
    llm: LlmFreeze = LlmFreeze.FROZEN  # frozen | trained
    alignment: CaptionQuality = CaptionQuality.CLEAN  # caption quality in stage 1
    fraction: float = 1.0  # share of the training records used (quantity)
    video: bool = True  # video QA in instruction tuning
    text_instructions: bool = True  # text-only instructions in instruction tuning
    sampling: Sampling = Sampling.SIZE_BALANCED  # task sampling in instruction tuning
    prompts: Prompts = Prompts.DIVERSE  # prompt recipe
    alignment_steps: int = 100  # stage 1 optimizer steps (0: no alignment stage)
    instruction_steps: int = 1200  # stage 2 optimizer steps
    batch: int = 32  # sequences per step
    lr: float = 3e-3  # peak learning rate (AdamW, warm-up then cosine)
    lr_llm: float = 2e-4  # peak learning rate of LLM weights when the LLM is trained
    text_share: float = 0.2  # share of instruction steps on text-only instructions
    video_share: float = 0.25  # share of instruction steps on video QA (of the visual steps)
    seed: int = 0  # seeds data order and initialisation


class PaperFinding(str, enum.Enum):
    """Which way the Lynx paper found a variant against the baseline (manifest `paper_finding`)."""

    BETTER = "better"
    WORSE = "worse"
    NOT_BETTER = "not_better"  # "matches or beats", "no clear gain"
    NOT_WORSE = "not_worse"


@dataclass(frozen=True)
class VariantConfig:
    """One zoo variant: architecture axes plus recipe; everything a build needs."""

    name: str = "lynx"  # registry name, file stem of variants/NAME.yaml
    description: str = ""  # one sentence for `lynx-zoo list`
    changes: typing.Optional[str] = None  # the single axis changed from `lynx` (None for lynx)
    paper: str = ""  # what Lynx reported for that axis
    paper_finding: typing.Optional[PaperFinding] = None  # its direction, where Lynx reports one
    backbone: BackboneRef = field(default_factory=BackboneRef)
    connector: ConnectorConfig = field(default_factory=ConnectorConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    recipe: RecipeConfig = field(default_factory=RecipeConfig)
    resolution: int = 128  # image side in pixels fed to the ViT
    frames: int = 5  # video frames sampled uniformly per clip
    quantization: Quantization = Quantization.NONE  # none | int8_dynamic (export-time only)
    vision_input: VisionInput = VisionInput.PICTURE  # blank: the matched blind control (media.blank_picture)
    base_variant: typing.Optional[str] = None  # quantised variants: whose weights they export
    seed_of: typing.Optional[str] = None  # seed replicates: the variant repeated with recipe.seed (`NAME-seedK`)

    @property
    def has_vision(self) -> bool:
        """The variant has a vision graph and a connector (it sees pictures or the blank one)."""
        return self.vision_input is not VisionInput.NONE

    def validate(self) -> "VariantConfig":
        if self.has_vision != (self.connector.kind is not ConnectorKind.NONE):
            raise ConfigError(f"variant `{self.name}`: vision_input `{self.vision_input.value}` "
                              f"but connector kind `{self.connector.kind.value}`")
        if self.adapter.kind is not AdapterKind.NONE and self.recipe.llm is LlmFreeze.TRAINED:
            raise ConfigError(f"variant `{self.name}`: adapters on a fully trained LLM")
        if self.quantization is not Quantization.NONE and not self.base_variant:
            raise ConfigError(f"variant `{self.name}`: quantization needs base_variant")
        if self.seed_of is not None and self.seed_of == self.name:
            raise ConfigError(f"variant `{self.name}`: seed_of names the variant itself")
        if not 0.0 < self.recipe.fraction <= 1.0:
            raise ConfigError(f"variant `{self.name}`: fraction `{self.recipe.fraction}` not in (0, 1]")
        if self.frames < 1 or self.frames > self.connector.max_frames:
            raise ConfigError(f"variant `{self.name}`: frames `{self.frames}` outside 1..{self.connector.max_frames}")
        from . import connectors
        connectors.settings(self.connector, f"variant `{self.name}`.connector")  # no setting the kind ignores
        return self

    def visual_tokens(self, patch: int) -> typing.Optional[int]:
        """Prefix tokens per image (projector: per frame), memory length for cross-attention; `patch`
        is the ViT's patch side (the build profile's `vision.patch`)."""
        from . import connectors
        kind = connectors.spec(self.connector.kind)
        return kind.visual_tokens(kind.settings(self.connector), self.resolution, patch)


def from_dict(cls, data: dict, where: str = ""):
    """Builds dataclass `cls` from plain data; unknown keys and enum values are errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got `{data!r}`")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where or cls.__name__}: unknown key `{unknown[0]}`; "
                          f"known keys: {', '.join(sorted(names))}")
    kwargs = {}
    for key, value in data.items():
        kwargs[key] = _convert(hints[key], value, f"{where or cls.__name__}.{key}")
    return cls(**kwargs)


def _convert(tp, value, where):
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(args[0], value, where)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return from_dict(tp, value, where)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if isinstance(value, tp):
            return value
        try:
            return tp(value)
        except ValueError:
            allowed = ", ".join(m.value for m in tp)
            raise ConfigError(f"{where}: unknown value `{value}`; expected one of {allowed}") from None
    if tp is float and isinstance(value, int):
        return float(value)
    if tp in (int, float, str, bool) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {tp.__name__}, got `{value!r}`")
    return value


def to_dict(cfg) -> dict:
    """Plain-data form of a config (enums as their values), the inverse of `from_dict`."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            v = to_dict(v)
        elif isinstance(v, enum.Enum):
            v = v.value
        out[f.name] = v
    return out


def replace(cfg, **changes):
    """`dataclasses.replace` that accepts nested dicts for nested configs: replace(c, recipe={...})."""
    kwargs = {}
    for key, value in changes.items():
        current = getattr(cfg, key)
        if isinstance(value, dict) and dataclasses.is_dataclass(current):
            merged = to_dict(current)
            unknown = sorted(set(value) - set(merged))
            if unknown:
                raise ConfigError(f"{type(current).__name__}: unknown key `{unknown[0]}`")
            merged.update({k: (v.value if isinstance(v, enum.Enum) else v) for k, v in value.items()})
            kwargs[key] = from_dict(type(current), merged)
        else:
            kwargs[key] = value
    names = {f.name for f in dataclasses.fields(cfg)}
    hints = typing.get_type_hints(type(cfg))
    kwargs = {k: (_convert(hints[k], v, f"{type(cfg).__name__}.{k}") if k in hints else v) for k, v in kwargs.items()}
    unknown = sorted(set(kwargs) - names)
    if unknown:
        raise ConfigError(f"{type(cfg).__name__}: unknown key `{unknown[0]}`")
    return dataclasses.replace(cfg, **kwargs)


def config_hash(*parts) -> str:
    """Stable short hash of configs and strings: the cache key of a build step."""
    def norm(p):
        if dataclasses.is_dataclass(p):
            return to_dict(p)
        if isinstance(p, enum.Enum):
            return p.value
        return p
    blob = json.dumps([norm(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
