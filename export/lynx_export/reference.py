"""Benchmark reference models: how far a supervised model gets on the zoo's frozen vision features.

The zoo's variants answer through a small frozen LLM, so their scores mix two questions: is the
benchmark answerable from what the vision encoder sees, and can the LLM use it? The reference
answers the first. It is a supervised VQA classifier in the style of the CLEVR baselines: the
frozen ViT's patch features (the same encoder, resolution and frame sampling the zoo uses) and the
question's tokens go through a small bidirectional transformer; a [CLS] read-out picks one of the
training answers, and an OCR read-out spells words it never saw as training answers (four
character slots). A `blind` reference sees only the question: the answer prior a model can learn
from wording alone.

It calibrates the benchmark's difficulty knobs (docs/benchmark.md): a strong model should score
well but not perfectly, and resolution and frames should matter. It is not a zoo variant -- it
cannot chat or follow format instructions -- and its predictions are plain answers, scored with
the benchmark's scorer (`lynx-zoo data score`).

`encoder="cnn"` swaps the zoo's ViT for the reference's own `ConvEncoder`, pretrained with the
ViT's objective on the same captions: whether a better encoder changes what the benchmark asks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import VisionConfig, config_hash
from .data import QARecord, load_annotations
from .features import FeatureStore, extract
from .models.vision import VisionEncoder, conv_stem
from .tokenizer import TextCodec
from .train import VIT_OBJECTIVE, device, optimize, pretrain_encoder

SPELL = "<spell>"  # the answer class of OCR questions: the answer is read from the character slots
CHARS = "_abcdefghijklmnopqrstuvwxyz0123456789"  # "_" ends a word
SLOTS = 4  # longest OCR answer the generator renders


class ConvEncoder(nn.Module):
    """Four 3x3 stride-2 convolutions with GELU (the ViT's 16-pixel patch grid: 8 x 8 tokens at
    128 px, 4 x 4 at 64 px), then a per-position projection and LayerNorm. The same interface as
    `VisionEncoder` (`trunk`, `head`, `cfg.patch`, `cfg.width`), so `features.extract` reads it."""

    def __init__(self, width: int = 128):
        super().__init__()
        self.cfg = VisionConfig(patch=16, width=width)
        self.convs = nn.Sequential(*conv_stem(16, width), nn.GELU())  # the ViT's conv stem, activated
        self.proj = nn.Linear(width, width)
        self.norm = nn.LayerNorm(width)

    def trunk(self, pixel_values):  # (B, 3, H, W) -> (B, P, width)
        return self.convs(pixel_values).flatten(2).transpose(1, 2)

    def head(self, hidden):  # (B, P, width) -> (B, P, width)
        return self.norm(self.proj(hidden))

    def forward(self, pixel_values):
        return self.head(self.trunk(pixel_values))


def canonical(record: QARecord) -> str:
    """The first accepted answer, lower case (the generator's answers are single words)."""
    return record.answers[0].strip().lower()


@dataclass(frozen=True)
class ReferenceConfig:
    width: int = 128
    layers: int = 3
    heads: int = 4
    max_question: int = 48  # question tokens kept (the generator's questions are shorter)
    max_frames: int = 8
    video_pool: int = 2  # video frames are average-pooled over pool x pool patches (cost; motion needs little)
    steps: int = 6000
    batch: int = 32
    lr: float = 1e-3


def char_ids(word: str) -> list[int]:
    """An OCR word as SLOTS character ids, "_"-padded."""
    if len(word) > SLOTS or any(c not in CHARS[1:] for c in word):
        raise ValueError(f"OCR answer {word!r}: expected at most {SLOTS} letters or digits")
    return [CHARS.index(c) for c in word] + [0] * (SLOTS - len(word))


def spelled(char_logits: torch.Tensor) -> str:
    """The word that (SLOTS, len(CHARS)) character logits spell: up to the first "_"."""
    return "".join(CHARS[int(c)] for c in char_logits.argmax(-1)).split("_")[0]


class AnswerSpace:
    """Training answers as classes; OCR answers map to `<spell>` and the character slots."""

    def __init__(self, names: list[str]):
        self.names = names
        self.index = {a: i for i, a in enumerate(names)}

    @classmethod
    def of(cls, records: list[QARecord]) -> "AnswerSpace":
        return cls(sorted({canonical(r) for r in records if r.cls != "ocr"}) + [SPELL])

    def __len__(self) -> int:
        return len(self.names)

    def target(self, record: QARecord) -> tuple[int, list[int]]:
        """(class id, character ids per slot); -100 where a record gives no target."""
        word = canonical(record)
        if record.cls == "ocr":
            return self.index[SPELL], char_ids(word)
        return self.index.get(word, -100), [-100] * SLOTS


class ReferenceModel(nn.Module):
    """[CLS] + question tokens (+ per-frame visual tokens) -> transformer encoder -> answer."""

    def __init__(self, cfg: ReferenceConfig, vocab_size: int, vision_dim: int, patches: int,
                 n_answers: int, blind: bool):
        super().__init__()
        w = cfg.width
        self.blind = blind
        self.tok = nn.Embedding(vocab_size, w)
        self.q_pos = nn.Parameter(torch.randn(cfg.max_question, w) * 0.02)
        self.cls = nn.Parameter(torch.randn(1, 1, w) * 0.02)
        self.vis = nn.Linear(vision_dim, w)
        self.pool = cfg.video_pool
        self.patch_pos = nn.Parameter(torch.randn(patches, w) * 0.02)
        self.video_patch_pos = nn.Parameter(torch.randn(max(1, patches // self.pool ** 2), w) * 0.02)
        self.frame_pos = nn.Parameter(torch.zeros(cfg.max_frames, w))
        layer = nn.TransformerEncoderLayer(w, cfg.heads, 2 * w, dropout=0.1, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(w)
        self.answer = nn.Linear(w, n_answers)
        self.spell = nn.Linear(w, SLOTS * len(CHARS))

    def forward(self, ids, pad, features=None):
        """ids, pad (B, S) (pad True where padding); features (B, F, P, D) or None.
        Returns answer logits (B, A) and character logits (B, SLOTS, len(CHARS))."""
        b, s = ids.shape
        parts = [self.cls.expand(b, -1, -1), self.tok(ids) + self.q_pos[:s]]
        masks = [torch.zeros(b, 1, dtype=torch.bool, device=ids.device), pad]
        if not self.blind:
            f = features.shape[1]
            if f > 1:
                features, pos = self._pooled(features), self.video_patch_pos
            else:
                pos = self.patch_pos
            v = self.vis(features) + pos + self.frame_pos[:f].unsqueeze(1)  # (B, F, P, W)
            parts.append(v.reshape(b, -1, v.shape[-1]))
            masks.append(torch.zeros(b, v.shape[1] * v.shape[2], dtype=torch.bool, device=ids.device))
        h = self.encoder(torch.cat(parts, 1), src_key_padding_mask=torch.cat(masks, 1))
        head = self.norm(h[:, 0])
        return self.answer(head), self.spell(head).reshape(b, SLOTS, len(CHARS))

    def _pooled(self, features):
        """(B, F, P, D) -> (B, F, P / pool^2, D): average over pool x pool patch squares."""
        b, f, p, d = features.shape
        g = int(round(p ** 0.5))
        x = features.reshape(b * f, g, g, d).permute(0, 3, 1, 2)
        x = F.avg_pool2d(x, self.pool)
        return x.permute(0, 2, 3, 1).reshape(b, f, -1, d)


def reference_model(cfg: ReferenceConfig, vocab_size: int, store: FeatureStore | None, n_answers: int):
    """A ReferenceModel sized for `store`'s features (None: the blind reference)."""
    if store is None:
        return ReferenceModel(cfg, vocab_size, 1, 1, n_answers, blind=True)
    return ReferenceModel(cfg, vocab_size, store.final.shape[-1], store.final.shape[1], n_answers, blind=False)


class Batches:
    """Question ids and feature rows of a record list; images and videos batch separately."""

    def __init__(self, records: list[QARecord], codec: TextCodec, store: FeatureStore | None,
                 cfg: ReferenceConfig, frames: int):
        self.records = records
        self.store = store
        self.frames = frames
        self.ids = [codec.encode(r.question)[: cfg.max_question] for r in records]
        self.pad_id = codec.pad
        self.groups = [[i for i, r in enumerate(records) if r.is_video == video] for video in (False, True)]

    def tensors(self, idx: list[int], dev):
        s = max(len(self.ids[i]) for i in idx)
        ids = torch.full((len(idx), s), self.pad_id, dtype=torch.long)
        pad = torch.ones(len(idx), s, dtype=torch.bool)
        for row, i in enumerate(idx):
            ids[row, : len(self.ids[i])] = torch.tensor(self.ids[i])
            pad[row, : len(self.ids[i])] = False
        feats = None
        if self.store is not None:
            rows = [self.store.lookup(self.records[i].media, self.frames, self.records[i].is_video) for i in idx]
            feats = self.store.gather(rows).to(dev)
        return ids.to(dev), pad.to(dev), feats


def train_reference(records: list[QARecord], codec: TextCodec, store: FeatureStore | None,
                    cfg: ReferenceConfig, frames: int, seed: int, log=print):
    """Trains a reference on `records` (store None: blind). Returns (model, answers, stats)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    dev = device()
    space = AnswerSpace.of(records)
    targets = [space.target(r) for r in records]
    data = Batches(records, codec, store, cfg, frames)
    groups = [[i for i in g if targets[i][0] >= 0] for g in data.groups]
    groups = [g for g in groups if g]
    sizes = np.array([len(g) for g in groups], dtype=float)
    model = reference_model(cfg, codec.vocab_size, store, len(space)).to(dev)
    model.train()

    def loss_fn(step):
        g = groups[rng.choice(len(groups), p=sizes / sizes.sum())]
        idx = [g[j] for j in rng.integers(len(g), size=cfg.batch)]
        ids, pad, feats = data.tensors(idx, dev)
        answer, spell = model(ids, pad, feats)
        a = torch.tensor([targets[i][0] for i in idx], device=dev)
        c = torch.tensor([targets[i][1] for i in idx], device=dev)
        loss = F.cross_entropy(answer, a)
        spelled = c.reshape(-1) >= 0
        if spelled.any():  # a batch without OCR items has no character targets
            loss = loss + F.cross_entropy(spell.reshape(-1, len(CHARS))[spelled], c.reshape(-1)[spelled])
        return loss

    stats = optimize([{"params": list(model.parameters()), "lr": cfg.lr}], cfg.steps, loss_fn, log,
                     "reference-blind" if store is None else "reference", weight_decay=0.05)
    model.eval()
    return model, space, stats


@torch.no_grad()
def predict(model: ReferenceModel, space: AnswerSpace, records: list[QARecord], codec: TextCodec,
            store: FeatureStore | None, cfg: ReferenceConfig, frames: int, batch: int = 64) -> list[str]:
    """One answer per record, in order."""
    dev = next(model.parameters()).device
    data = Batches(records, codec, store, cfg, frames)
    out: list[str] = [""] * len(records)
    for g in data.groups:
        for start in range(0, len(g), batch):
            idx = g[start:start + batch]
            answer, spell = model(*data.tensors(idx, dev))
            for row, i in enumerate(idx):
                name = space.names[int(answer[row].argmax())]
                out[i] = spelled(spell[row]) if name == SPELL else name
    return out


def write_predictions(path: Path, records: list[QARecord], answers: list[str], model_name: str):
    """`{"id", "question", "prediction"}` lines keyed by the Open-VQA `dataset/index` id (`lynx-zoo data score`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for r, a in zip(records, answers):
            f.write(json.dumps({"id": f"{r.raw['dataset']}/{r.raw['index']}", "question": r.question,
                                "prediction": a, "model": model_name}) + "\n")


ENCODERS = ("vit", "cnn")
CNN_STEPS = 2000  # ConvEncoder pretraining steps (batch 64), about 5 minutes on 2 CPU threads


def reference_name(blind: bool, resolution: int, frames: int, encoder: str = "vit") -> str:
    """`reference`, `reference-blind`, or the settings that differ from the zoo baseline's."""
    if blind:
        return "reference-blind"
    parts = ["reference"] + ([encoder] if encoder != "vit" else []) + \
        ([f"{resolution}px"] if resolution != 128 else []) + ([f"{frames}f"] if frames != 5 else [])
    return "-".join(parts)


def frozen_encoder(components, encoder: str, log):
    """The frozen encoder whose features the reference reads: the zoo's ViT or a ConvEncoder."""
    if encoder == "vit":
        vit = VisionEncoder(components.vision_cfg())
        vit.load_state_dict(components.vit_state())
        return vit.eval(), components.vit_key()
    if encoder != "cnn":
        raise ValueError(f"encoder: expected one of {ENCODERS}, got `{encoder}`")
    width = components.vision_cfg().width
    data = components.data()
    key = config_hash("cnn-encoder", VIT_OBJECTIVE, width, CNN_STEPS, data.signature)
    state, _ = components.cache.get("encoder", key, lambda: pretrain_encoder(
        lambda: ConvEncoder(width), width, 128, data.captions, CNN_STEPS, 64, 0, log, "cnn"))
    cnn = ConvEncoder(width)
    cnn.load_state_dict(state)
    return cnn.eval(), key


def _extract(enc, records: list[QARecord], resolution: int, frame_counts: list[int]):
    images = sorted({r.media for r in records if not r.is_video})
    videos = sorted({r.media for r in records if r.is_video})
    return extract(enc, images, videos, resolution, frame_counts, log=lambda m: None)


def run_reference(components, splits: list[Path], out: Path, cfg: ReferenceConfig, blind: bool, resolution: int,
                  frames: int, seed: int = 0, log=print, encoder: str = "vit") -> dict:
    """Trains (or loads from the build cache) a reference on the build's train split and writes its
    predictions on each of `splits` to OUT/SPLIT/NAME.jsonl. Returns {split dir: predictions file}.
    `components`: a components.Components (data, tokenizer, ViT and features of a profile)."""
    records = components.data().records
    codec = components.codec()
    frame_counts = sorted({1, frames})
    enc, enc_key = (None, None) if blind else frozen_encoder(components, encoder, log)
    if enc is None:
        store = None
    elif encoder == "vit":
        store = components.features(resolution, frame_counts)  # the zoo's cached features
    else:
        store = _extract(enc, records, resolution, frame_counts)
    key = config_hash("reference", cfg, seed, blind, resolution, frames, components.tokenizer_key(), enc_key)

    def make():
        model, space, stats = train_reference(records, codec, store, cfg, frames, seed, log)
        return {k: v.cpu() for k, v in model.state_dict().items()}, space.names, stats

    state, names, stats = components.cache.get("reference", key, make)
    space = AnswerSpace(names)
    model = reference_model(cfg, codec.vocab_size, store, len(names))
    model.load_state_dict(state)
    model.eval()
    name = reference_name(blind, resolution, frames, encoder)
    written = {}
    for split in splits:
        recs = load_annotations(split)
        split_store = None if enc is None else _extract(enc, recs, resolution, frame_counts)
        answers = predict(model, space, recs, codec, split_store, cfg, frames)
        path = out / Path(split).name / f"{name}.jsonl"
        write_predictions(path, recs, answers, name)
        (path.with_suffix(".train.json")).write_text(json.dumps(stats) + "\n")
        written[str(split)] = path
        log(f"{name}: {len(recs)} predictions on {split} -> {path}")
    return written
