"""Build stage 1: the training data and the shared components every variant starts from.

    data --> tokenizer --> base LLMs --> chat LLMs
        \\--> ViT --> features (per resolution and frame counts)

`Components` builds each on first use and caches it under `work/cache/PROFILE/` by a hash of
everything it depends on (configs, step counts, upstream hashes, data signature), so a finished
component is never retrained and an interrupted build resumes where it stopped. Probes and the
reference use it directly (export/probes/, reference.py); build.py adds variant training and export.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import BackboneRef, DecoderConfig, Flavour, config_hash
from .data import (Caption, DataPaths, QARecord, ensure_data, load_annotations, load_captions, load_corpus,
                   load_text_instructions)
from .features import FeatureStore, extract
from .profiles import Profile
from .tokenizer import TextCodec, train_tokenizer
from .train import VIT_OBJECTIVE, pretrain_lm, pretrain_vit, tune_chat


@dataclass(frozen=True)
class TrainingData:
    """One build's data, loaded once: the train split's QA records and captions, the val split's
    records, the text corpus and the text instructions, and their signature (for cache keys)."""

    records: list[QARecord]  # train split, Open-VQA records
    captions: list[Caption]  # train split, image captions (ViT pretraining, alignment stage)
    val: list[QARecord]  # val split
    corpus: list[str]  # text passages (LLM pretraining)
    instructions: list[tuple[str, str]]  # (instruction, response) text-only pairs (chat tuning)
    signature: str  # DataPaths.signature(): identifies the generated data

    @classmethod
    def load(cls, paths: DataPaths) -> "TrainingData":
        return cls(records=load_annotations(paths.train), captions=load_captions(paths.train),
                   val=load_annotations(paths.val), corpus=load_corpus(paths.text),
                   instructions=load_text_instructions(paths.text), signature=paths.signature())

    def tokenizer_texts(self) -> list[str]:
        """Every text the tokenizer learns from, in a fixed order."""
        return (self.corpus + [c.caption for c in self.captions] + [r.question for r in self.records]
                + [r.response for r in self.records] + [t for pair in self.instructions for t in pair])


class StepCache:
    """Files `work/cache/PROFILE/KIND-KEY.pt` holding (state_dict, stats)-like values: tensors,
    dicts, lists and scalars only, so loading one cannot run code (weights_only=True)."""

    def __init__(self, folder: Path, log=print):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.log = log

    def get(self, kind: str, key: str, make):
        """The cached value of step `kind` under `key`, or `make()` saved there first."""
        path = self.folder / f"{kind}-{key}.pt"
        if path.exists():
            return torch.load(path, weights_only=True)
        t = time.time()
        value = make()
        tmp = path.with_suffix(f".{os.getpid()}.tmp")  # two builds may share one cache
        torch.save(value, tmp)
        tmp.rename(path)
        self.log(f"{kind} {key}: built in {time.time() - t:.0f}s")
        return value


class Components:
    """The data, tokenizer, ViT, backbones and feature stores of one profile (each built once)."""

    def __init__(self, profile: Profile, data_root: Path, work: Path, log=print):
        self.profile = profile
        self.paths = DataPaths(Path(data_root))
        self.cache = StepCache(Path(work) / "cache" / profile.name, log)
        self.log = log
        self._data: TrainingData | None = None
        self._codec: TextCodec | None = None
        self._features: dict[str, FeatureStore] = {}  # by cache key

    # -- data --------------------------------------------------------------------------------
    def data(self) -> TrainingData:
        """The training data, generated with the Rust generator where missing (first call)."""
        if self._data is None:
            p = self.profile
            ensure_data(self.paths, p.n_train, p.n_val, p.n_text, p.data_seed, self.log)
            d = self._data = TrainingData.load(self.paths)
            n_vid = sum(r.is_video for r in d.records)
            self.log(f"data: {len(d.records)} QA records ({n_vid} video), {len(d.captions)} captions, "
                     f"{len(d.corpus)} passages, {len(d.instructions)} text instructions")
        return self._data

    # -- tokenizer ---------------------------------------------------------------------------
    def tokenizer_key(self) -> str:
        return config_hash("tokenizer", self.profile.vocab_size, self.data().signature)

    def tokenizer_path(self) -> Path:
        path = self.cache.folder / f"tokenizer-{self.tokenizer_key()}.json"
        if not path.exists():
            tok = train_tokenizer(self.data().tokenizer_texts(), self.profile.vocab_size)
            tok.save(str(path))
            self.log(f"tokenizer: {tok.get_vocab_size()} tokens")
        return path

    def codec(self) -> TextCodec:
        if self._codec is None:
            self._codec = TextCodec.load(self.tokenizer_path())
        return self._codec

    # -- ViT ---------------------------------------------------------------------------------
    def vit_key(self) -> str:
        p = self.profile
        return config_hash("vit", VIT_OBJECTIVE, p.vision, p.vit_steps, p.vit_batch, self.data().signature)

    def vit(self) -> tuple[dict, dict]:
        """(state_dict, stats) of the pretrained ViT."""
        p = self.profile
        captions = self.data().captions
        return self.cache.get("vit", self.vit_key(), lambda: pretrain_vit(
            p.vision, captions, p.vit_steps, p.vit_batch, seed=0, log=self.log))

    # -- backbones ---------------------------------------------------------------------------
    def decoder_cfg(self, ref: BackboneRef) -> DecoderConfig:
        """The profile's backbone config with the vocabulary the tokenizer actually learned (a small
        corpus can yield fewer merges than the profile asks for)."""
        return dataclasses.replace(self.profile.decoder(ref), vocab_size=self.codec().vocab_size)

    def backbone_key(self, ref: BackboneRef) -> str:
        p = self.profile
        base = config_hash("base", p.decoder(ref), p.lm_steps, p.lm_batch, p.lm_seq, self.tokenizer_key())
        if ref.flavour is Flavour.BASE:
            return base
        return config_hash("chat", base, p.chat_steps, p.chat_batch)

    def backbone(self, ref: BackboneRef) -> tuple[dict, dict]:
        """(state_dict, stats) of a pretrained (base) or chat-tuned backbone."""
        data = self.data()
        p = self.profile
        cfg = self.decoder_cfg(ref)
        codec = self.codec()
        base_ref = BackboneRef(ref.family, Flavour.BASE, ref.size)
        base = self.cache.get("llm", self.backbone_key(base_ref), lambda: pretrain_lm(
            cfg, codec, data.corpus, p.lm_steps, p.lm_batch, p.lm_seq, seed=0, log=self.log,
            tag=base_ref.name))
        if ref.flavour is Flavour.BASE:
            return base
        return self.cache.get("llm", self.backbone_key(ref), lambda: tune_chat(
            cfg, base[0], codec, data.instructions, data.corpus, p.chat_steps, p.chat_batch,
            seed=0, log=self.log, tag=ref.name))

    # -- features ----------------------------------------------------------------------------
    def features(self, resolution: int, frame_counts: list[int]) -> FeatureStore:
        """The frozen ViT's features of every training image and video at `resolution`."""
        data = self.data()
        frame_counts = sorted(set(frame_counts))
        key = config_hash("features", self.vit_key(), resolution, frame_counts)
        if key in self._features:
            return self._features[key]
        path = self.cache.folder / f"features-{key}.npz"
        if path.exists():
            store = FeatureStore.load(path)
        else:
            t = time.time()
            from .models.vision import VisionEncoder
            vit = VisionEncoder(self.profile.vision)
            vit.load_state_dict(self.vit()[0])
            recs = data.records
            images = sorted({r.media for r in recs if not r.is_video} | {c.image for c in data.captions})
            videos = sorted({r.media for r in recs if r.is_video})
            store = extract(vit, images, videos, resolution, frame_counts, log=self.log)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
            store.save(tmp)
            tmp.rename(path)
            self.log(f"features {resolution}px: {len(store.final)} frames in {time.time() - t:.0f}s")
        self._features[key] = store
        return store
