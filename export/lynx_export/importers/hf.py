"""A Hugging Face LLaVA checkpoint as a zoo variant (issue 15): `python -m lynx_export import hf DIR --name NAME`.

DIR is a folder as `save_pretrained` writes it (or a hub cache snapshot): `config.json` of a
`LlavaForConditionalGeneration` (CLIP or SigLIP vision tower, the multimodal projector, a Llama,
Mistral or Qwen2 language model), its weights, `tokenizer.json` with `tokenizer_config.json`, a chat
template (`chat_template.jinja`, `chat_template.json`, `processor_config.json` or
`tokenizer_config.json`), `preprocessor_config.json` and optionally `generation_config.json`.
Nothing is downloaded. The importer writes, under the zoo root ROOT:

    ROOT/onnx/NAME/vision.onnx      pixel_values -> image_features (LLaVA's selected layer(s))
    ROOT/onnx/NAME/projector.onnx   image_features -> visual_embeds (the `projector` connector)
    ROOT/onnx/NAME/embed.onnx       input_ids -> inputs_embeds
    ROOT/onnx/NAME/decoder.onnx     Optimum's names: inputs_embeds, attention_mask, position_ids,
                                    past_key_values.{i}.key|value -> logits, present.{i}.key|value
    ROOT/onnx/NAME/*.data           their weights (ONNX external data)
    ROOT/onnx/NAME/tokenizer.json   the checkpoint's, byte for byte, with tokenizer_config.json and
                                    special_tokens_map.json made from the manifest's tokens and prompt
                                    (ecosystem.py: AutoTokenizer renders the runtime's prompt)
    ROOT/variants/NAME.yaml         `origin: {kind: imported, ...}`, the prompt from the chat
                                    template with `<image>` as its placeholder, the preprocessing,
                                    the decoding defaults of generation_config.json, every checksum

Every graph carries its producer and `lynx.*` metadata (variant, role, I/O roles). The importer
checks every graph against transformers in ONNX Runtime (and the whole prefill against
`LlavaForConditionalGeneration`'s logits) before the manifest is written. What the runtime cannot
reproduce exactly is refused with a `CheckpointError` that names the file and the field: another
architecture (LLaVA-NeXT's tiling, Pixtral), a pad-to-square or crop size the manifest cannot
express, a tokenizer that adds more than one BOS token, a rope scaling that changes with length.
"""

from __future__ import annotations

import datetime
import json
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
import torch

from .. import __version__, yaml_io
from .. import onnx_io as O
from ..data import repo_root
from ..ecosystem import TOKENIZER_FILES, GraphOwner, stamp, write_tokenizer_files
from ..graphs import N, TensorSpec
from ..manifest import SCHEMA_VERSION, graph_entry
from . import CheckpointError
from . import hf_graphs as G

ARCHITECTURE = "LlavaForConditionalGeneration"
WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
# where transformers looks for a chat template, in the order a processor reads them
CHAT_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json", "processor_config.json", "tokenizer_config.json")
# where the image processor's settings are, in the order transformers reads them
IMAGE_PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
# PIL's resampling codes, as preprocessor_config.json writes them, that the runtime has
RESAMPLE = {3: "bicubic", 2: "bilinear"}
# rope types whose frequencies change with the sequence length (a traced graph would freeze one)
LENGTH_DEPENDENT_ROPE = ("dynamic", "longrope")
# the question's stand-in while the chat template is rendered (plain letters: no template escapes them)
SENTINEL = "lynxzooquestion"
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
DEFAULT_MAX_NEW_TOKENS = 64
# what the importer writes into onnx/NAME/ (and replaces with --force)
GRAPHS = ("vision", "projector", "embed", "decoder")
OUTPUT_FILES = tuple(f"{g}.{ext}" for g in GRAPHS for ext in ("onnx", "data")) + ("tokenizer.json",) + TOKENIZER_FILES
ROLE = {"vision": "vision", "projector": "connector", "embed": "embed", "decoder": "decoder"}  # file stem -> graph role


@dataclass(frozen=True)
class ImportOptions:
    """What `import hf` is asked for, beside the checkpoint folder."""

    name: str  # the variant's name: variants/NAME.yaml and onnx/NAME/
    zoo: Path  # the zoo root receiving variants/ and onnx/
    source: str | None = None  # `origin.source` (default: the hub repo id of a cache snapshot, else the folder name)
    revision: str | None = None  # `origin.revision` (default: a cache snapshot's commit, else unknown)
    template: str | None = None  # the prompt template in place of the chat template's ({question} and `<image>` once)
    max_new_tokens: int | None = None  # decoding default (else generation_config.json's, else 64)
    atol: float = 1e-4  # the largest difference to transformers a graph (and the prefill logits) may show
    force: bool = False  # replace an existing variant of that name


@dataclass
class Checkpoint:
    """What the importer read of the checkpoint folder, checked."""

    folder: Path
    config: dict
    config_sha256: str
    vision: G.VisionFamily
    text: G.TextFamily
    feature_layers: list[int]  # vision_feature_layer as a list
    drop_first: bool  # vision_feature_select_strategy == "default"
    image_size: int
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256 of what was read


def _file(folder: Path, name: str, what: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise CheckpointError(path, None, f"missing: {what}")
    return path


def _json(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(path, None, f"cannot read it as JSON: {e}") from e
    if not isinstance(doc, dict):
        raise CheckpointError(path, None, "expected a JSON object")
    return doc


def _pick(path: Path, field_name: str, value, allowed, hint: str):
    if value not in allowed:
        expected = ", ".join(f"`{a}`" for a in allowed)
        raise CheckpointError(path, field_name, f"`{value}` is not supported; expected {expected}. {hint}")
    return value


def read_checkpoint(folder: Path) -> Checkpoint:
    """Reads and checks config.json (and that the weights are there)."""
    path = _file(folder, "config.json", "a checkpoint folder as `save_pretrained` writes it holds config.json")
    config = _json(path)
    archs = config.get("architectures") or []
    if ARCHITECTURE not in archs and config.get("model_type") != "llava":
        raise CheckpointError(path, "architectures", f"`{archs or config.get('model_type')}` is not supported; "
                              f"expected `{ARCHITECTURE}` (LLaVA-1.5, LLaVA-Interleave and other one-image "
                              "LLaVA checkpoints); LLaVA-NeXT's tiles, Pixtral and other architectures are not")
    hint = "the importer knows LLaVA's CLIP or SigLIP tower and a Llama, Mistral or Qwen2 language model"
    vision_cfg, text_cfg = config.get("vision_config") or {}, config.get("text_config") or {}
    vision = G.VISION_FAMILIES[_pick(path, "vision_config.model_type", vision_cfg.get("model_type"),
                                     list(G.VISION_FAMILIES), hint)]
    text = G.TEXT_FAMILIES[_pick(path, "text_config.model_type", text_cfg.get("model_type", "llama"),
                                 list(G.TEXT_FAMILIES), hint)]
    strategy = _pick(path, "vision_feature_select_strategy", config.get("vision_feature_select_strategy", "default"),
                     ["default", "full"], "as LLaVA's configuration allows")
    layers = config.get("vision_feature_layer", -2)
    layers = [layers] if isinstance(layers, int) else list(layers)
    if not layers or not all(isinstance(i, int) for i in layers):
        raise CheckpointError(path, "vision_feature_layer", f"`{layers}`: expected a layer index or a list of them")
    rope = text_cfg.get("rope_parameters") or text_cfg.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default")) if isinstance(rope, dict) else "default"
    if any(kind in str(rope_type) for kind in LENGTH_DEPENDENT_ROPE):
        raise CheckpointError(path, "text_config.rope_parameters.rope_type",
                              f"`{rope_type}` changes the rotary frequencies with the sequence length, which an "
                              "exported graph cannot follow; supported: default, linear, llama3, yarn")
    if not any((folder / w).is_file() for w in WEIGHTS):
        raise CheckpointError(folder / WEIGHTS[0], None, f"missing: no weights ({', '.join(WEIGHTS)})")
    image_size = vision_cfg.get("image_size")
    if not isinstance(image_size, int):
        raise CheckpointError(path, "vision_config.image_size", f"`{image_size}`: expected the tower's input side")
    return Checkpoint(folder, config, O.sha256_file(path), vision, text, layers, strategy == "default", image_size,
                      {"config.json": O.sha256_file(path)})


def hub_identity(folder: Path) -> tuple[str, str | None]:
    """(source, revision): `org/name` and the commit of a hub cache snapshot
    (`.../models--org--name/snapshots/COMMIT`), else the folder's name and no revision."""
    folder = folder.resolve()
    if folder.parent.name == "snapshots" and folder.parent.parent.name.startswith("models--"):
        return folder.parent.parent.name[len("models--"):].replace("--", "/"), folder.name
    return folder.name, None


# ---------------------------------------------------------------------------------------------
# preprocessing: preprocessor_config.json -> the manifest's `preprocess`
def preprocess_spec(ckpt: Checkpoint) -> dict:
    """The image processor's resize, crop, rescale and normalisation as the manifest's `preprocess`.

    CLIP-style (`size: {shortest_edge: S}`, centre crop S x S) -> `crop: center`; SigLIP-style
    (`size: {height: S, width: S}`, no crop) -> `crop: none`. Everything else is refused.
    """
    from transformers import AutoImageProcessor

    # transformers 4 writes preprocessor_config.json; 5 nests the image processor in processor_config.json
    path = next((ckpt.folder / n for n in IMAGE_PROCESSOR_FILES if (ckpt.folder / n).is_file()
                 and (n == IMAGE_PROCESSOR_FILES[0] or "image_processor" in _json(ckpt.folder / n))), None)
    if path is None:
        raise CheckpointError(ckpt.folder / IMAGE_PROCESSOR_FILES[0], None, "missing: the image processor's settings "
                              "(size, mean, std, crop), here or as `image_processor` in processor_config.json")
    ckpt.files[path.name] = O.sha256_file(path)
    try:
        proc = AutoImageProcessor.from_pretrained(str(ckpt.folder), local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise CheckpointError(path, None, f"transformers cannot load the image processor: {e}") from e

    def get(name, default=None):
        return getattr(proc, name, default)

    if get("do_pad"):
        raise CheckpointError(path, "do_pad", "`true`: pad-to-square before the resize is not a preprocessing "
                              "the manifest has (docs/manifest.md, `preprocess`)")
    size, crop = get("size"), get("crop_size")
    side = ckpt.image_size
    short = getattr(size, "shortest_edge", None) if size is not None else None
    square = (getattr(size, "height", None), getattr(size, "width", None)) if size is not None else (None, None)
    do_crop = bool(get("do_center_crop"))
    crop_hw = (getattr(crop, "height", None), getattr(crop, "width", None)) if crop is not None else (None, None)
    if not get("do_resize", True):
        raise CheckpointError(path, "do_resize", "`false`: the runtime always resizes to the tower's input side")
    if short is not None and getattr(size, "longest_edge", None) is None:
        if not do_crop or crop_hw != (side, side) or short != side:
            raise CheckpointError(path, "crop_size", f"resize the shortest side to {short} then crop {crop_hw}: the "
                                  f"manifest's `crop: center` resizes to the crop side; expected both {side} "
                                  "(the vision tower's `image_size`)")
        mode = "center"
    elif square == (side, side):
        if do_crop and crop_hw != (side, side):
            raise CheckpointError(path, "crop_size", f"{crop_hw} after a {side} x {side} resize is not a "
                                  "preprocessing the manifest has")
        mode = "none"
    else:
        raise CheckpointError(path, "size", f"`{ {k: v for k, v in dict(size or {}).items() if v is not None} }`: "
                              f"expected `{{shortest_edge: {side}}}` with a {side} x {side} centre crop, or "
                              f"`{{height: {side}, width: {side}}}` (the vision tower's `image_size` is {side})")
    resample = int(get("resample", 3))
    if resample not in RESAMPLE:
        raise CheckpointError(path, "resample", f"`{resample}`: expected 3 (bicubic) or 2 (bilinear)")
    normalize = get("do_normalize", True)
    mean = [float(x) for x in (get("image_mean") if normalize else (0.0, 0.0, 0.0))]
    std = [float(x) for x in (get("image_std") if normalize else (1.0, 1.0, 1.0))]
    if len(mean) != 3 or len(std) != 3:
        raise CheckpointError(path, "image_mean", f"`{mean}`, `{std}`: expected three values each (RGB)")
    rescale = float(get("rescale_factor", 1 / 255)) if get("do_rescale", True) else 1.0
    spec = {"size": side, "resize": RESAMPLE[resample], "crop": mode, "rescale": rescale, "mean": mean, "std": std}
    if mode == "center":  # transformers rounds the longer side down: int(size * long / short)
        spec["size_rounding"] = "floor"
    return spec


# ---------------------------------------------------------------------------------------------
# tokenizer and prompt: tokenizer.json and the chat template -> `tokenizer` and `prompt`
@dataclass
class TextSpec:
    tokenizer: dict  # the manifest's `tokenizer` without path and sha256
    prompt: dict  # the manifest's `prompt`
    eos_ids: list[int]  # every id transformers' generate stops at (the first is the manifest's)
    notes: list[str]  # what the runtime does differently, for provenance and the log


def _chat_template(folder: Path) -> tuple[str, str]:
    """(template, file) as transformers finds it: the processor's files first, then the tokenizer's."""
    for name in CHAT_TEMPLATE_FILES:
        path = folder / name
        if not path.is_file():
            continue
        if name.endswith(".jinja"):
            return path.read_text(encoding="utf-8"), name
        template = _json(path).get("chat_template")
        if isinstance(template, list):  # named templates: the default one
            template = next((t.get("template") for t in template if t.get("name") == "default"), None)
        if isinstance(template, str) and template.strip():
            return template, name
    raise CheckpointError(folder / "chat_template.jinja", None,
                          "missing: no chat template in " + ", ".join(CHAT_TEMPLATE_FILES)
                          + "; pass the prompt yourself with --template \"USER: <image>\\n{question} ASSISTANT:\"")


def _render(tok, template: str, image_token: str, path: Path) -> str:
    """The chat template rendered for one user turn (the picture, then the question) and the
    assistant's turn to answer, with `{question}` in the question's place."""
    turns = ([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": SENTINEL}]}],
             [{"role": "user", "content": f"{image_token}\n{SENTINEL}"}])  # templates of text-only content
    tried = []
    for conversation in turns:
        try:
            text = tok.apply_chat_template(conversation, chat_template=template, tokenize=False,
                                           add_generation_prompt=True)
        except Exception as e:  # jinja raises its own errors; any of them means this form does not fit
            tried.append(f"{type(e).__name__}: {e}")
            continue
        if isinstance(text, str) and text.count(SENTINEL) == 1 and text.count(image_token) == 1:
            return text.replace(SENTINEL, "{question}")
        tried.append(repr(text))
    raise CheckpointError(path, "chat_template", f"rendering one user turn (`{image_token}` and a question) did not "
                          f"give a prompt holding each once: {tried}; pass it with --template")


def text_spec(ckpt: Checkpoint, template_override: str | None) -> TextSpec:
    """The tokenizer's special tokens, whether the runtime must add BOS, and the prompt template,
    held to what transformers' processor encodes for the same prompt."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    folder = ckpt.folder
    tok_path = _file(folder, "tokenizer.json", "the runtime reads a Hugging Face tokenizer.json (save the checkpoint "
                     "with a fast tokenizer: `AutoTokenizer.from_pretrained(..).save_pretrained(DIR)`)")
    ckpt.files["tokenizer.json"] = O.sha256_file(tok_path)
    try:
        hf = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise CheckpointError(folder / "tokenizer_config.json", None, f"transformers cannot load the tokenizer: {e}") \
            from e
    raw = Tokenizer.from_file(str(tok_path))
    config_path = folder / "config.json"
    image_id = ckpt.config.get("image_token_index", ckpt.config.get("image_token_id"))
    if not isinstance(image_id, int):
        raise CheckpointError(config_path, "image_token_index", f"`{image_id}`: expected the id of `<image>`")
    image_token = raw.id_to_token(image_id)
    if image_token is None or image_id not in raw.get_added_tokens_decoder():
        raise CheckpointError(tok_path, "added_tokens", f"the image token id {image_id} (config.json "
                              f"`image_token_index`) is not an added token (`{image_token}`); LLaVA's tokenizers "
                              "add `<image>` as a special token")
    vocab = int(ckpt.config["text_config"].get("vocab_size", 32000))
    if raw.get_vocab_size(with_added_tokens=True) > vocab:
        raise CheckpointError(tok_path, None, f"{raw.get_vocab_size(with_added_tokens=True)} tokens, more than the "
                              f"language model's `text_config.vocab_size` {vocab}")

    if template_override is not None:
        template, source = template_override, "--template"
        if template.count("{question}") != 1 or template.count(image_token) != 1:
            raise CheckpointError("--template", None, f"`{template}` must hold `{{question}}` and `{image_token}` "
                                  "once each")
    else:
        body, source = _chat_template(folder)
        ckpt.files[source] = O.sha256_file(folder / source)
        template = _render(hf, body, image_token, folder / source)

    # BOS as transformers' processor encodes the rendered prompt: with the tokenizer's own special
    # tokens unless the template starts with the BOS text itself (ProcessorMixin.apply_chat_template)
    notes: list[str] = []
    bos_text = hf.bos_token
    sample = template.replace("{question}", "what is in the picture?")
    writes_bos = bool(bos_text) and sample.startswith(bos_text)
    want = hf(sample, add_special_tokens=not writes_bos)["input_ids"]
    plain = raw.encode(sample, add_special_tokens=False).ids
    if want == plain:
        add_bos, bos = False, bos_text
    elif len(want) == len(plain) + 1 and want[1:] == plain:
        add_bos, bos = True, raw.id_to_token(want[0])
    else:
        raise CheckpointError(tok_path, "post_processor", f"transformers encodes the prompt as {want}, which is not "
                              f"the tokenizer's plain encoding {plain} with at most one token before it (the runtime's "
                              "`prompt.add_bos`)")
    eos_ids = _eos_ids(ckpt, hf)
    eos = raw.id_to_token(eos_ids[0]) if eos_ids else None
    if eos is None:
        raise CheckpointError(folder / "generation_config.json", "eos_token_id", "no end-of-sequence token in "
                              "generation_config.json or the tokenizer")
    if len(eos_ids) > 1:
        notes.append(f"transformers stops at any of {eos_ids}; the runtime stops at `{eos}` ({eos_ids[0]}) only")
    pad = hf.pad_token or eos
    bos = bos or eos  # no BOS (Qwen2): add_bos is false and the field only has to name a token
    tokenizer = {"bos": bos, "eos": eos, "pad": pad}
    prompt: dict[str, Any] = {"template": template, "padding": "left", "image_placeholder": image_token}
    if not add_bos:
        prompt["add_bos"] = False
    notes.append(f"prompt from {source}")
    return TextSpec(tokenizer, prompt, eos_ids, notes)


def _generation_config(folder: Path) -> dict:
    path = folder / "generation_config.json"
    return _json(path) if path.is_file() else {}


def _eos_ids(ckpt: Checkpoint, hf) -> list[int]:
    """generate's stop ids: generation_config.json's `eos_token_id`, else the tokenizer's EOS;
    the tokenizer's EOS first when it is among them."""
    eos = _generation_config(ckpt.folder).get("eos_token_id")
    ids = [eos] if isinstance(eos, int) else list(eos or [])
    if hf.eos_token_id is not None:
        ids = [hf.eos_token_id] + [i for i in ids if i != hf.eos_token_id] if (not ids or hf.eos_token_id in ids) \
            else ids
    return ids


def generation_spec(ckpt: Checkpoint, max_new_tokens: int | None) -> tuple[dict, list[str]]:
    """generation_config.json's decoding (transformers' defaults where it is silent) as `generation`."""
    g = _generation_config(ckpt.folder)
    if (ckpt.folder / "generation_config.json").is_file():
        ckpt.files["generation_config.json"] = O.sha256_file(ckpt.folder / "generation_config.json")
    beams = int(g.get("num_beams") or 1)
    sample = bool(g.get("do_sample"))
    notes = []
    for key, neutral in (("repetition_penalty", 1.0), ("encoder_repetition_penalty", 1.0), ("typical_p", 1.0),
                         ("min_p", None), ("epsilon_cutoff", 0.0), ("eta_cutoff", 0.0)):
        if g.get(key) not in (None, neutral):
            notes.append(f"generation_config.json `{key}: {g[key]}` has no runtime counterpart and is ignored")
    out = {
        "strategy": "sample" if sample else ("beam" if beams > 1 else "greedy"),
        "beams": beams,
        "max_new_tokens": int(max_new_tokens or g.get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS),
        "min_new_tokens": int(g.get("min_new_tokens") or 0),
        "length_penalty": float(g.get("length_penalty", 1.0) if g.get("length_penalty") is not None else 1.0),
        "no_repeat_ngram_size": int(g.get("no_repeat_ngram_size") or 0),
        "temperature": float(g.get("temperature") or 1.0),
        "top_k": int(g["top_k"]) if g.get("top_k") is not None else 50,
        "top_p": float(g.get("top_p") or 1.0),
    }
    return out, notes


# ---------------------------------------------------------------------------------------------
# graphs
@dataclass
class Exported:
    """One written graph: its file, the data files it references, its I/O and its parity."""

    path: Path
    data: list
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    parity: float | None = None


def _write(module, args: tuple, io: G.IO, path: Path, scratch: Path) -> Exported:
    """Exports `module` to `path` (onnx/NAME/ROLE.onnx), its producer and roles stamped (ecosystem.py)."""
    inputs, outputs = io
    proto = O.export_graph(module, args, inputs, outputs, scratch=scratch)
    stamp(proto, ROLE[path.stem], GraphOwner(variant=path.parent.name))
    data = O.DataFile(path.with_suffix(".data"))
    used = O.place(proto, path, [], data)
    return Exported(path, used, inputs, outputs)


def _check(exported: Exported, module, cases: list[tuple], atol: float, log) -> float:
    """The largest difference between `module` and the written graph over `cases` (each a tuple of
    inputs in graph order); above `atol` the import fails."""
    names = [s.name for s in exported.inputs]
    worst = max(O.parity(module, exported.path, args, names) for args in cases)
    log(f"  {exported.path.name}: max |onnxruntime - torch| = {worst:.2e}")
    if not worst <= atol:
        raise RuntimeError(f"graph `{exported.path}` differs from transformers by {worst:.2e} > --atol {atol:g}")
    exported.parity = float(f"{worst:.3e}")
    return worst


def _decoder_case(rng: torch.Generator, batch: int, seq: int, past: int, hidden: int, layers: int, kv_heads: int,
                  head_dim: int, pad: int = 0) -> tuple:
    """Decoder inputs: random embeddings and cache, the first row left-padded by `pad`."""
    emb = torch.randn(batch, seq, hidden, generator=rng)
    mask = torch.ones(batch, past + seq, dtype=torch.long)
    mask[0, :pad] = 0
    positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, past:]
    caches = [torch.randn(batch, kv_heads, past, head_dim, generator=rng) for _ in range(2 * layers)]
    return (emb, mask, positions, *caches)


def export_graphs(model, ckpt: Checkpoint, out: Path, atol: float, log) -> tuple[dict[str, Exported], dict]:
    """Writes the four graphs into `out` and checks each against the module it came from."""
    text_cfg = model.config.text_config
    hidden, layers = int(text_cfg.hidden_size), int(text_cfg.num_hidden_layers)
    heads = int(text_cfg.num_attention_heads)
    kv_heads = int(getattr(text_cfg, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(text_cfg, "head_dim", None) or hidden // heads)
    vocab = int(text_cfg.vocab_size)
    side = ckpt.image_size
    rng = torch.Generator().manual_seed(0)
    inner = model.model

    vision = G.VisionFeatures(inner.vision_tower, ckpt.feature_layers, ckpt.drop_first).eval()
    pixels = torch.randn(1, 3, side, side, generator=rng)
    with torch.no_grad():
        feats = vision(pixels)  # (1, N, Dv)
    patches, vision_dim = int(feats.shape[1]), int(feats.shape[2])
    projector = G.Projector(inner.multi_modal_projector).eval()
    embed = G.Embed(inner.get_input_embeddings()).eval()
    decoder = G.Decoder(inner.language_model, model.lm_head, ckpt.text, text_cfg).eval()

    graphs: dict[str, Exported] = {}
    with tempfile.TemporaryDirectory(prefix="lynx-import-") as tmp:
        scratch = Path(tmp)
        t = time.time()
        graphs["vision"] = _write(vision, (pixels,), G.vision_io(side, patches, vision_dim), out / "vision.onnx",
                                  scratch)
        graphs["connector"] = _write(projector, (feats[:, None],), G.projector_io(patches, vision_dim, hidden),
                                     out / "projector.onnx", scratch)
        graphs["embed"] = _write(embed, (torch.tensor([[1, 2, 3]]),), G.embed_io(hidden), out / "embed.onnx",
                                 scratch)
        trace = _decoder_case(rng, 2, 5, 3, hidden, layers, kv_heads, head_dim, pad=2)
        graphs["decoder"] = _write(decoder, trace, G.decoder_io(hidden, layers, kv_heads, head_dim, vocab),
                                   out / "decoder.onnx", scratch)
        log(f"exported 4 graphs in {time.time() - t:.1f}s; checking them in onnxruntime")
    # other shapes than the traced ones: batch, frames, sequence and past lengths are free axes
    ids = torch.randint(0, vocab, (3, 7), generator=rng)
    _check(graphs["vision"], vision, [(torch.randn(2, 3, side, side, generator=rng),)], atol, log)
    _check(graphs["connector"], projector, [(torch.randn(2, 3, patches, vision_dim, generator=rng),)], atol, log)
    _check(graphs["embed"], embed, [(ids,)], atol, log)
    _check(graphs["decoder"], decoder, [_decoder_case(rng, 3, 9, 0, hidden, layers, kv_heads, head_dim, pad=4),
                                        _decoder_case(rng, 3, 1, 9, hidden, layers, kv_heads, head_dim, pad=4)],
           atol, log)
    dims = {"hidden": hidden, "layers": layers, "heads": heads, "kv_heads": kv_heads, "head_dim": head_dim,
            "vocab_size": vocab, "max_positions": int(getattr(text_cfg, "max_position_embeddings", 4096)),
            "cross_attention_layers": [], "vision_dim": vision_dim, "patches": patches}
    return graphs, dims


def prefill_parity(model, graphs: dict[str, Exported], text: TextSpec, tokenizer_path: Path, dims: dict,
                   side: int) -> float:
    """The whole prefill, graph by graph as the runtime runs it (placeholder layout), against
    `LlavaForConditionalGeneration` on the same prompt with `<image>` expanded to the visual tokens:
    the largest difference of the last position's logits."""
    from tokenizers import Tokenizer

    raw = Tokenizer.from_file(str(tokenizer_path))
    prompt = text.prompt["template"].replace("{question}", "what is in the picture?")
    ids = ([raw.token_to_id(text.tokenizer["bos"])] if text.prompt.get("add_bos", True) else []) \
        + raw.encode(prompt, add_special_tokens=False).ids
    image_id = raw.token_to_id(text.prompt["image_placeholder"])
    k = ids.index(image_id)
    pixels = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(1))
    s = {name: O.ort_session(g.path) for name, g in graphs.items()}
    feats = s["vision"].run(None, {N["pixel_values"]: pixels.numpy()})[0]
    visual = s["connector"].run(None, {N["image_features"]: feats[:, None]})[0]  # (1, V, D)
    embeds = s["embed"].run(None, {N["input_ids"]: np.array([ids[:k] + ids[k + 1:]], np.int64)})[0]
    seq = np.concatenate([embeds[:, :k], visual, embeds[:, k:]], axis=1)
    total = seq.shape[1]
    feed: dict[str, Any] = {N["inputs_embeds"]: seq, N["attention_mask"]: np.ones((1, total), np.int64),
                            N["position_ids"]: np.arange(total, dtype=np.int64)[None]}
    for spec in graphs["decoder"].inputs[3:]:
        feed[spec.name] = np.zeros((1, dims["kv_heads"], 0, dims["head_dim"]), np.float32)
    got = s["decoder"].run([N["logits"]], feed)[0][0, -1]
    full = torch.tensor([ids[:k] + [image_id] * visual.shape[1] + ids[k + 1:]])
    with torch.no_grad():
        want = model(input_ids=full, pixel_values=pixels, attention_mask=torch.ones_like(full)).logits[0, -1].numpy()
    return float(np.max(np.abs(got - want)))


# ---------------------------------------------------------------------------------------------
# the whole import
def _size_name(params: int) -> str:
    """A size class from the language model's parameter count: `7.2b`, `0.5b`, `3.1m`."""
    return f"{params / 1e9:.1f}b" if params >= 1e8 else f"{params / 1e6:.1f}m"


def validate_manifest(doc: dict) -> None:
    """Holds `doc` to docs/manifest.schema.json (the runtime's serde types), when jsonschema is installed."""
    try:
        import jsonschema
    except ImportError:  # the exporter's minimal environment (docs/exporter.md): `lynx-zoo check` still checks
        return
    schema = json.loads((repo_root() / "docs" / "manifest.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(doc)


def import_hf(folder: Path, opts: ImportOptions, log: Callable[[str], None] = print) -> Path:
    """Imports the LLaVA checkpoint in `folder` as variant `opts.name` of the zoo at `opts.zoo`;
    returns the manifest's path."""
    try:
        import transformers
        from transformers import LlavaForConditionalGeneration
    except ImportError as e:
        raise RuntimeError(f"importing a Hugging Face checkpoint needs transformers ({e}); install the exporter's "
                           "pinned environment: bash scripts/setup-python") from e
    if not NAME_RE.match(opts.name):
        raise KeyError(f"variant name `{opts.name}`: use letters, digits, `-`, `_` and `.`")
    if not folder.is_dir():
        raise KeyError(f"`{folder}` is not a folder; pass a checkpoint folder as `save_pretrained` writes it")
    zoo = opts.zoo.resolve()
    manifest_path = zoo / "variants" / f"{opts.name}.yaml"
    out = zoo / "onnx" / opts.name
    if (manifest_path.exists() or out.exists()) and not opts.force:
        raise KeyError(f"variant `{opts.name}` exists in `{zoo}` (variants/{opts.name}.yaml or onnx/{opts.name}/); "
                       "pass --force to replace it")
    t0 = time.time()
    ckpt = read_checkpoint(folder)
    prep = preprocess_spec(ckpt)
    text = text_spec(ckpt, opts.template)
    generation, gen_notes = generation_spec(ckpt, opts.max_new_tokens)
    source, revision = hub_identity(folder)
    source, revision = opts.source or source, opts.revision if opts.revision is not None else revision

    log(f"loading {folder} ({ckpt.vision.model_type} + {ckpt.text.model_type})")
    transformers.utils.logging.disable_progress_bar()
    model = LlavaForConditionalGeneration.from_pretrained(str(folder), dtype=torch.float32, attn_implementation="eager",
                                                          local_files_only=True).eval()
    for name in OUTPUT_FILES:  # --force: what an earlier import wrote, nothing else of the folder
        (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    graphs, dims = export_graphs(model, ckpt, out, opts.atol, log)
    tokenizer_path = out / "tokenizer.json"
    shutil.copyfile(folder / "tokenizer.json", tokenizer_path)
    write_tokenizer_files(tokenizer_path, text.tokenizer, text.prompt)  # AutoTokenizer, the manifest's prompt
    prefill = prefill_parity(model, graphs, text, tokenizer_path, dims, ckpt.image_size)
    log(f"  prefill: max |onnxruntime - transformers| of the last logits = {prefill:.2e}")
    if not prefill <= opts.atol:
        raise RuntimeError(f"the exported prefill differs from transformers by {prefill:.2e} > --atol {opts.atol:g}")

    lm_params = sum(p.numel() for p in model.model.language_model.parameters())
    notes = text.notes + gen_notes
    for n in notes:
        log(f"  note: {n}")
    import onnxruntime

    rel = lambda p: p.relative_to(zoo).as_posix()  # noqa: E731
    doc = {
        "schema_version": SCHEMA_VERSION,
        "name": opts.name,
        "description": f"Imported {source}: LLaVA, {ckpt.vision.model_type.split('_')[0]} vision tower, projector, "
                       f"{ckpt.text.model_type} language model ({_size_name(lm_params)}).",
        "origin": {"kind": "imported", "source": source, "revision": revision, "config_sha256": ckpt.config_sha256},
        "axes": {"backbone": {"family": ckpt.text.model_type, "size": _size_name(lm_params)},
                 "connector": {"kind": "projector"}, "resolution": ckpt.image_size, "visual_tokens": dims["patches"],
                 "frames": 1, "vision_input": "picture"},
        "changes": None,
        "paper": None,
        "model": {**dims, "position_ids": "input",
                  "kv_cache": {"past": N["past"], "present": N["present"], "layout": "bnsh", "update": "concat"}},
        "graphs": {name: graph_entry(zoo, g) for name, g in graphs.items()},
        "preprocess": prep,
        "video": {"frames": 1, "sampling": "uniform"},
        "tokenizer": {"path": rel(tokenizer_path), "sha256": O.sha256_file(tokenizer_path), **text.tokenizer},
        "prompt": text.prompt,
        "generation": generation,
        "parameters": {"total": sum(p.numel() for p in model.parameters()), "trainable": 0},
        "provenance": {
            "importer": "python -m lynx_export import hf", "exporter": __version__,
            "checkpoint": dict(sorted(ckpt.files.items())),
            "vision_feature_layer": ckpt.feature_layers,
            "vision_feature_select_strategy": "default" if ckpt.drop_first else "full",
            "eos_token_ids": text.eos_ids,
            "parity": {**{k: g.parity for k, g in graphs.items()}, "prefill_logits": float(f"{prefill:.3e}")},
            "parity_reference": f"transformers {transformers.__version__} (eager attention, float32)",
            "notes": notes,
            "transformers": transformers.__version__, "torch": torch.__version__.split("+")[0],
            "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "opset": O.OPSET,
            "wall_seconds": round(time.time() - t0, 1), "date": datetime.date.today().isoformat(),
        },
        "goldens": None,
    }
    validate_manifest(doc)
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(yaml_io.dump(doc))
    log(f"wrote {manifest_path} ({time.time() - t0:.0f}s); try `lynx-zoo ask {opts.name} --zoo {zoo} "
        "--image PICTURE --question ...`")
    return manifest_path
