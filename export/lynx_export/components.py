"""Build stage 1: the training data and the shared components every variant starts from.

    foundation (onnx/foundation/: tokenizer, ViT, base and chat backbones; pretrained.py)
    data --> features of the frozen ViT (per resolution and frame counts)

`Components` reads the foundation, generates the data and computes the feature stores on first
use, caching them under `work/cache/PROFILE/` by a hash of everything they depend on (the
foundation files' sha256, configs, data signature), so nothing is recomputed and an interrupted
build resumes where it stopped. Probes and the reference use it directly (export/probes/,
reference.py); build.py adds variant training and export.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import BackboneRef, DecoderConfig, VisionConfig, config_hash
from .data import (Caption, DataPaths, QARecord, ensure_data, load_annotations, load_captions, load_corpus,
                   load_text_instructions, repo_root)
from .distributed import barrier, main_first, world
from .features import LAYOUT as FEATURES_LAYOUT
from .features import FeatureStore, extract
from .pretrained import Pretrained
from .profiles import Profile
from .tokenizer import TextCodec


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
        value = make()  # torchrun: every process trains (the same weights); rank 0 writes them
        if world().is_main:
            tmp = path.with_suffix(f".{os.getpid()}.tmp")  # two builds may share one cache
            torch.save(value, tmp)
            tmp.rename(path)
            self.log(f"{kind} {key}: built in {time.time() - t:.0f}s")
        barrier()
        return value


class Components:
    """The data, foundation (tokenizer, ViT, backbones) and feature stores of one profile.

    The foundation is a folder written by `python -m lynx_export foundation`: the shipped
    `onnx/foundation/` for the zoo, or one built on first use into `work/foundation-PLAN/` when the
    profile names a plan (the smoke profile: a tiny foundation in seconds), or `foundation=DIR`."""

    def __init__(self, profile: Profile, data_root: Path, work: Path, log=print, foundation: Path | None = None):
        self.profile = profile
        self.paths = DataPaths(Path(data_root))
        self.work = Path(work)
        self.cache = StepCache(self.work / "cache" / profile.name, log)
        self.log = log
        self._foundation_dir = Path(foundation) if foundation is not None else None
        self._pretrained: Pretrained | None = None
        self._data: TrainingData | None = None
        self._codec: TextCodec | None = None
        self._features: dict[str, FeatureStore] = {}  # by cache key

    # -- data --------------------------------------------------------------------------------
    def data(self) -> TrainingData:
        """The training data, generated with the Rust generator where missing (first call)."""
        if self._data is None:
            p = self.profile
            main_first(lambda: ensure_data(self.paths, p.n_train, p.n_val, p.n_text, p.data_seed, self.log))
            d = self._data = TrainingData.load(self.paths)
            n_vid = sum(r.is_video for r in d.records)
            self.log(f"data: {len(d.records)} QA records ({n_vid} video), {len(d.captions)} captions, "
                     f"{len(d.corpus)} passages, {len(d.instructions)} text instructions")
        return self._data

    # -- foundation ------------------------------------------------------------------------------
    def foundation(self) -> Pretrained:
        """The verified foundation folder every variant starts from."""
        if self._pretrained is None:
            folder = self._foundation_dir
            if folder is None:
                if self.profile.foundation_plan is None:
                    folder = repo_root() / "onnx" / "foundation"
                else:
                    from .foundation import PLANS, STAGES, Foundation
                    plan = PLANS[self.profile.foundation_plan]
                    built = self.work / f"foundation-{plan.name}"
                    folder = built / "out"
                    if not (folder / "foundation.json").exists():
                        Foundation(plan, built, folder, self.log).build(STAGES, list(plan.backbones))
                    barrier()
            self._pretrained = Pretrained.open(folder)
            self.log(f"foundation: {folder} ({', '.join(self._pretrained.backbones())})")
        return self._pretrained

    def tokenizer_key(self) -> str:
        return self.foundation().tokenizer_key()

    def tokenizer_path(self) -> Path:
        return self.foundation().tokenizer_path()

    def codec(self) -> TextCodec:
        if self._codec is None:
            self._codec = TextCodec.load(self.tokenizer_path())
        return self._codec

    def vision_cfg(self) -> VisionConfig:
        return self.foundation().vision_config()

    def vit_key(self) -> str:
        return self.foundation().vit_key()

    def vit_state(self) -> dict:
        """The pretrained ViT's weights."""
        return self.foundation().vit_state()

    def decoder_cfg(self, ref: BackboneRef) -> DecoderConfig:
        return self.foundation().decoder_config(ref)

    def backbone_key(self, ref: BackboneRef) -> str:
        return self.foundation().backbone_key(ref)

    def backbone_state(self, ref: BackboneRef) -> dict:
        """The weights of a base or chat backbone."""
        return self.foundation().backbone_state(ref)

    # -- features ----------------------------------------------------------------------------
    def features(self, resolution: int, frame_counts: list[int]) -> FeatureStore:
        """The frozen ViT's features of every training image and video at `resolution`."""
        self.data()  # loaded by every process first: data() waits for the others under torchrun
        frame_counts = sorted(set(frame_counts))
        key = config_hash("features", self.vit_key(), resolution, frame_counts, FEATURES_LAYOUT)
        if key in self._features:
            return self._features[key]
        path = self.cache.folder / f"features-{key}.npz"
        self._features[key] = main_first(lambda: self._feature_store(path, resolution, frame_counts))
        return self._features[key]

    def _feature_store(self, path: Path, resolution: int, frame_counts: list[int]) -> FeatureStore:
        data = self.data()
        if path.exists():
            store = FeatureStore.load(path)
        else:
            t = time.time()
            from .models.vision import VisionEncoder
            vit = VisionEncoder(self.vision_cfg())
            vit.load_state_dict(self.vit_state())
            recs = data.records
            images = sorted({r.media for r in recs if not r.is_video} | {c.image for c in data.captions})
            videos = sorted({r.media for r in recs if r.is_video})
            store = extract(vit, images, videos, resolution, frame_counts, log=self.log)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
            store.save(tmp)
            tmp.rename(path)
            self.log(f"features {resolution}px: {len(store.final)} frames in {time.time() - t:.0f}s")
        return store
