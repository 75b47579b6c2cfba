"""Seeded random-init LLaVA checkpoints, built offline with transformers (nothing downloaded):
the import tests' tiny ones and issue 16's real-size benchmark model.

Each is a `LlavaForConditionalGeneration` saved with its processor as `save_pretrained` does: a
CLIP or SigLIP tower, LLaVA's projector and a Llama, Mistral or Qwen2 language model, with the
zoo's BPE (onnx/tokenizer.json) plus `<image>` as its tokenizer. The weights are random, so what
they say is noise; their shapes, graphs and cost are those of the model the sizes describe.

    python -m lynx_export seeded-llava --out DIR            # the real-size benchmark model (~0.6B)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..data import repo_root

# LLaVA-1.5's chat template (llava-hf/llava-1.5-7b-hf), and LLaVA-Interleave's ChatML (Qwen2)
LLAVA_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}"
    "{% endfor %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}")
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + ' ' }}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ '\n' + content['text'] }}"
    "{% endfor %}{{ '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}")


@dataclass(frozen=True)
class Sizes:
    """The tower's and the language model's shapes (transformers' config names in the comments)."""

    side: int = 32  # image_size
    patch: int = 8  # patch_size
    vision_hidden: int = 32  # hidden_size
    vision_ffn: int = 64  # intermediate_size
    vision_layers: int = 3  # num_hidden_layers
    vision_heads: int = 4  # num_attention_heads
    hidden: int = 48
    ffn: int = 96
    layers: int = 2
    heads: int = 4
    vocab: int = 1040  # the zoo's 1024-token BPE and the added tokens, rounded up as checkpoints do
    max_positions: int = 128
    # a wider init than transformers' 0.02, so that a tiny random model's logits are far apart
    init_range: float = 0.2


# A ViT-B/16 tower at 224 px and a Qwen2-0.5B-shaped decoder (24 x 896, 14 heads, 2 K/V heads,
# MLP 4864, its 151 936-entry vocabulary): about 0.58B parameters, 2.3 GB in float32.
REAL_SIZE = Sizes(side=224, patch=16, vision_hidden=768, vision_ffn=3072, vision_layers=12, vision_heads=12,
                  hidden=896, ffn=4864, layers=24, heads=14, vocab=151_936, max_positions=2048, init_range=0.02)


@dataclass(frozen=True)
class Spec:
    """One checkpoint."""

    name: str
    vision: str  # clip | siglip
    text: str  # llama | qwen2 | mistral
    feature_layer: int | list[int]
    strategy: Literal["default", "full"]
    kv_heads: int
    window: int | None = None  # Mistral's sliding window
    sizes: Sizes = field(default_factory=Sizes)


REAL_SIZE_SPEC = Spec("llava-qwen2-0.5b-random", "clip", "qwen2", -2, "default", kv_heads=2, sizes=REAL_SIZE)


def tokenizer(spec: Spec):
    """The zoo's BPE (onnx/tokenizer.json) with `<image>` added as LLaVA's tokenizers have it, as a
    transformers fast tokenizer: Llama-style with a BOS post-processor, or Qwen2-style (ChatML, no
    BOS). Returns it and its chat template."""
    from tokenizers import AddedToken, Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer.from_file(str(repo_root() / "onnx" / "tokenizer.json"))
    chatml = spec.text == "qwen2"
    extra = ["<image>"] + (["<|im_start|>", "<|im_end|>"] if chatml else [])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in extra])
    if chatml:
        return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<pad>"), \
            CHATML_TEMPLATE
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>"), LLAVA_TEMPLATE


def build_checkpoint(spec: Spec, folder: Path, seed: int = 15) -> Path:
    """A seeded random-init LlavaForConditionalGeneration with its processor in FOLDER/NAME."""
    import torch
    from transformers import (CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration,
                              LlavaProcessor, MistralConfig, Qwen2Config, SiglipVisionConfig)
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    torch.manual_seed(seed)
    z = spec.sizes
    tok, template = tokenizer(spec)
    image_id = tok.convert_tokens_to_ids("<image>")
    vision_kw: dict[str, Any] = dict(hidden_size=z.vision_hidden, intermediate_size=z.vision_ffn,
                                     num_hidden_layers=z.vision_layers, num_attention_heads=z.vision_heads,
                                     image_size=z.side, patch_size=z.patch, initializer_range=z.init_range)
    vision: Any
    images: Any
    if spec.vision == "clip":
        vision = CLIPVisionConfig(projection_dim=z.vision_hidden, **vision_kw)
        images = CLIPImageProcessorPil(size={"shortest_edge": z.side}, crop_size={"height": z.side, "width": z.side})
    else:
        vision = SiglipVisionConfig(**vision_kw)
        images = SiglipImageProcessorPil(size={"height": z.side, "width": z.side})
    text_kw: dict[str, Any] = dict(hidden_size=z.hidden, intermediate_size=z.ffn, num_hidden_layers=z.layers,
                                   num_attention_heads=z.heads, num_key_value_heads=spec.kv_heads, vocab_size=z.vocab,
                                   max_position_embeddings=z.max_positions, initializer_range=z.init_range,
                                   bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                   pad_token_id=tok.pad_token_id)
    text = {"llama": lambda: LlamaConfig(**text_kw),
            "qwen2": lambda: Qwen2Config(**text_kw),
            "mistral": lambda: MistralConfig(sliding_window=spec.window, **text_kw)}[spec.text]()
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=image_id,
                         vision_feature_layer=spec.feature_layer, vision_feature_select_strategy=spec.strategy,
                         image_seq_length=(z.side // z.patch) ** 2)
    model = LlavaForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    out = folder / spec.name
    model.save_pretrained(out)
    processor = LlavaProcessor(image_processor=images, tokenizer=tok, patch_size=z.patch,
                               vision_feature_select_strategy=spec.strategy, chat_template=template,
                               num_additional_image_tokens=1 if spec.vision == "clip" else 0)
    processor.save_pretrained(out)
    return out
