"""The variant manifest `variants/NAME.yaml` (docs/contract.md section 3, docs/manifest.md).

Every path is relative to the zoo root and every referenced file carries its sha256.
"""

from __future__ import annotations

from pathlib import Path

from . import connectors, yaml_io
from .config import AdapterKind, Quantization, VariantConfig, VisionConfig
from .media import CLIP_MEAN, CLIP_STD, RESCALE
from .onnx_io import sha256_file
from .profiles import Profile
from .recipes import PROMPT_TEMPLATE
from .tokenizer import BOS, EOS, PAD

SCHEMA_VERSION = 1
# The manifest's `tokenizer` special tokens and `prompt` of every zoo variant: also what the
# tokenizer files beside onnx/tokenizer.json say (ecosystem.py).
TOKENS = {"bos": BOS, "eos": EOS, "pad": PAD}
# `padding: right`: the decoders are GroupQueryAttention over one K/V buffer (gqa.py), which reads a
# row's tokens from the buffer's start to its own length (the mask's row sum), so a batch's rows
# are padded on the right and the LM head reads each row's own last position
PROMPT = {"template": PROMPT_TEMPLATE, "padding": "right"}


def prompt(v: VariantConfig) -> dict:
    """The manifest's `prompt` of variant `v`: [`PROMPT`], but `padding: none` for a dynamically
    quantised decoder, which quantises a batch's activations with one scale, so a row in a batch
    answers otherwise than alone (gqa.ATOL_QUANTISED_BATCH): answered one at a time, its answers do
    not depend on what else is in the batch."""
    return {**PROMPT, "padding": "none"} if v.quantization is not Quantization.NONE else dict(PROMPT)


def axes(v: VariantConfig, patch: int) -> dict:
    """The manifest's `axes` block; `patch` is the profile's ViT patch side."""
    c, a, r = v.connector, v.adapter, v.recipe
    kind = connectors.spec(c.kind)
    fields = kind.manifest_fields(kind.settings(c))
    return {
        "backbone": {"family": v.backbone.family.value, "flavour": v.backbone.flavour.value, "size": v.backbone.size},
        "connector": {"kind": c.kind.value, "depth": fields.get("depth"), "latents": fields.get("latents")},
        "cross_attention_every": fields.get("cross_attention_every"),
        "adapter": {"kind": a.kind.value,
                    "every": a.every if a.kind is AdapterKind.BOTTLENECK else None,
                    "dim": a.dim if a.kind is AdapterKind.BOTTLENECK else None,
                    "rank": a.rank if a.kind is AdapterKind.LORA else None},
        "freeze": {"vision": r.vision.value, "llm": r.llm.value},
        "resolution": v.resolution if v.has_vision else None,
        "visual_tokens": v.visual_tokens(patch),
        "frames": v.frames if v.has_vision else None,
        "frame_positions": c.frame_positions if v.has_vision else None,
        "data": {"alignment": r.alignment.value if r.alignment_steps > 0 else "none", "fraction": r.fraction,
                 "video": r.video, "text_instructions": r.text_instructions, "sampling": r.sampling.value},
        "prompts": r.prompts.value,
        "quantization": v.quantization.value,
        "vision_input": v.vision_input.value,
    }


def _file(zoo: Path, path: Path) -> dict:
    return {"path": path.relative_to(zoo).as_posix(), "sha256": sha256_file(path)}


def graph_entry(zoo: Path, g) -> dict:
    entry = _file(zoo, g.path)
    entry["external_data"] = [_file(zoo, p) for p in g.data]
    entry["inputs"] = [s.as_dict() for s in g.inputs]
    entry["outputs"] = [s.as_dict() for s in g.outputs]
    return entry


def write_manifest(path: Path, v: VariantConfig, zoo: Path, profile: Profile, vision: VisionConfig, model, stats: dict,
                   graphs: dict, goldens: Path, provenance: dict) -> Path:
    """Writes variants/NAME.yaml for `v` exported into `zoo` (graphs: name -> build.Exported)."""
    dec = model.decoder.cfg
    doc = {
        "schema_version": SCHEMA_VERSION,
        "name": v.name,
        "description": v.description,
        "axes": axes(v, vision.patch),
        "changes": v.changes,
        "paper": v.paper,
        **({"paper_finding": v.paper_finding.value} if v.paper_finding else {}),
        **({"seed_of": v.seed_of} if v.seed_of else {}),
        "model": {
            "hidden": dec.hidden, "layers": dec.layers, "heads": dec.heads, "kv_heads": dec.heads,
            "head_dim": dec.head_dim, "vocab_size": dec.vocab_size, "max_positions": dec.max_positions,
            "cross_attention_layers": model.decoder.cross_layers,
            "vision_dim": vision.width if v.has_vision else None,
            "patches": (v.resolution // vision.patch) ** 2 if v.has_vision else None,
            # the decoder is GroupQueryAttention over one K/V buffer (gqa.py); LLaMA derives positions
            **({"position_ids": "derived"} if dec.family.value == "llama" else {}),
            "kv_cache": {"update": "shared_buffer"},
        },
        "graphs": {name: graph_entry(zoo, g) for name, g in graphs.items()},
        "preprocess": ({"size": v.resolution, "resize": "bicubic", "crop": "center", "rescale": RESCALE,
                        "mean": list(CLIP_MEAN), "std": list(CLIP_STD)} if v.has_vision else None),
        "video": {"frames": v.frames, "sampling": "uniform"} if v.has_vision else None,
        "tokenizer": {**_file(zoo, zoo / "onnx" / "tokenizer.json"), **TOKENS},
        "prompt": prompt(v),
        "generation": profile.generation.manifest(profile.max_new_tokens),
        "parameters": stats["parameters"],
        "provenance": provenance,
        "goldens": _file(zoo, goldens),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml_io.dump(doc))
    return path
