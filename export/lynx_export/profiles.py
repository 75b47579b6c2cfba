"""Build profiles: the sizes and step counts of one whole build.

`zoo` is the shipped zoo, sized so that the full rebuild fits 120 minutes on a 2-core CPU and
`onnx/` fits 48 MB. `smoke` is a tiny build for CI (under 3 minutes) with the same code paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import BackboneRef, DecoderConfig, Family, GenerationDefaults, VisionConfig


@dataclass(frozen=True)
class Profile:
    name: str = "zoo"  # recorded in each manifest's provenance
    vocab_size: int = 1024  # BPE vocabulary (4 special tokens included)
    vision: VisionConfig = field(default_factory=VisionConfig)  # the one ViT (pretrained at 128 px, read at 64 too)
    llama_small: DecoderConfig = field(default_factory=lambda: DecoderConfig(Family.LLAMA, ffn=256))
    llama_large: DecoderConfig = field(default_factory=lambda: DecoderConfig(
        Family.LLAMA, hidden=160, layers=6, heads=5, ffn=384))
    gpt2_small: DecoderConfig = field(default_factory=lambda: DecoderConfig(Family.GPT2, ffn=384))
    gpt2_large: DecoderConfig = field(default_factory=lambda: DecoderConfig(
        Family.GPT2, hidden=160, layers=6, heads=5, ffn=480))
    n_train: int = 12000  # generated training records (train split)
    n_val: int = 600  # generated validation records (goldens come from here)
    n_text: int = 16000  # generated corpus passages / text instructions (half describe a picture in words)
    data_seed: int = 1  # seed of the generated training data
    vit_steps: int = 2000  # ViT pretraining steps at 128 px (caption words + region attribute pairs)
    vit_batch: int = 64
    lm_steps: int = 1500  # base LLM pretraining steps on the corpus
    lm_batch: int = 16
    lm_seq: int = 128  # packed sequence length in pretraining
    chat_steps: int = 600  # chat tuning steps on text instructions
    chat_batch: int = 32
    step_scale: float = 1.0  # multiplies every variant's stage steps
    goldens: int = 3  # golden items per variant (images and a video)
    max_new_tokens: int = 24  # generation default written to manifests and used by goldens
    generation: GenerationDefaults = field(default_factory=GenerationDefaults)  # the rest of the manifests' decoding

    def decoder(self, ref: BackboneRef) -> DecoderConfig:
        cfg = getattr(self, f"{ref.family.value}_{ref.size}", None)
        if cfg is None:
            raise KeyError(f"profile `{self.name}` has no backbone `{ref.family.value}-{ref.size}`")
        return cfg


def _tiny(family: Family) -> DecoderConfig:
    return DecoderConfig(family, vocab_size=512, hidden=64, layers=2, heads=2, ffn=128, max_positions=256)


PROFILES = {
    "zoo": Profile(),
    "smoke": Profile(
        name="smoke", vocab_size=512,
        vision=VisionConfig(width=64, layers=2, heads=2),
        llama_small=_tiny(Family.LLAMA), llama_large=_tiny(Family.LLAMA),
        gpt2_small=_tiny(Family.GPT2), gpt2_large=_tiny(Family.GPT2),
        n_train=300, n_val=40, n_text=300, vit_steps=30, vit_batch=32, lm_steps=60, lm_batch=16,
        lm_seq=96, chat_steps=30, chat_batch=16, step_scale=0.1, goldens=2, max_new_tokens=12),
}
