"""The foundation: the shared pretraining every Lynx variant starts from, built once and shipped.

Lynx downloads EVA-CLIP and Vicuna; nothing can be downloaded here, so this command builds their
analogues -- the tokenizer, the ViT and the base and chat backbones -- from the synthetic world's
pictures and an English text far wider than the benchmark's templates (`lynx-zoo data text
--foundation`), longer and larger than a zoo build's budget allows.

    python -m lynx_export foundation                      # build or resume; ships into onnx/foundation/
    python -m lynx_export foundation --stages vit         # one stage (and what it needs)
    python -m lynx_export foundation --plan smoke --out DIR --work DIR   # tiny, for tests

Stages, each cached in WORK under a key of everything it depends on (plan settings, upstream keys,
data digests), and each training stage checkpointed every `checkpoint_every` steps, so a build that
is interrupted -- killed, out of session time, a reboot -- resumes where it stopped and ends with
the same weights as one that never stopped (same threads and versions):

    text ----------> tokenizer --> base backbones --> chat backbones --> probe (gate 1)
    pictures ------> ViT
                                         \\------------------------------------> ship: OUT/*.safetensors,
                                                                                 OUT/tokenizer.json,
                                                                                 OUT/foundation.json (provenance)

The shipped weights are safetensors (tensors only, nothing runs on load), one file per checkpoint,
named by component; `foundation.json` records the command, plan, seeds, data digests, steps, loss
curves and the probe's results, and each file's sha256.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import __version__
from .config import BackboneRef, DecoderConfig, Family, Flavour, LmWindows, VisionConfig, config_hash
from .data import DataError, load_captions, repo_root
from .models.decoder import Decoder
from .models.lynx import IGNORE
from .onnx_io import sha256_file as file_digest
from .recipes import chat_example, collate, prompt_ids
from .tokenizer import TextCodec, train_tokenizer
from .distributed import alone, barrier, main_first, shard, world
from .train import VIT_OBJECTIVE, Resume, device, optimize, pretrain_lm, pretrain_vit, step_rng

FORMAT = 1  # foundation.json's layout (pretrained.FORMAT reads it)


@dataclass(frozen=True)
class Plan:
    """Sizes, seeds and step counts of one foundation build (nanoGPT style: every field commented)."""

    name: str = "foundation"
    text_n: int = 300_000  # corpus passages and text instructions (`lynx-zoo data text --foundation`)
    text_seed: int = 100  # apart from every benchmark split's seed (train 1, val 2, fresh 7)
    pictures_n: int = 24_000  # records of a generated train split whose images (and captions) train the ViT
    pictures_seed: int = 101
    vocab_size: int = 1536  # BPE vocabulary, 4 special tokens included
    vision: VisionConfig = field(default_factory=VisionConfig)
    vit_steps: int = 4000
    vit_batch: int = 64
    # by "{family}-{size}"; vocab_size is replaced by the tokenizer's. Scaled embeddings and an
    # untied head: without them neither family learns in-context recall (docs/zoo.md).
    backbones: dict[str, DecoderConfig] = field(default_factory=lambda: {
        "llama-small": _backbone(Family.LLAMA, ffn=256),
        "llama-large": _backbone(Family.LLAMA, hidden=160, layers=6, heads=5, ffn=384),
        "gpt2-small": _backbone(Family.GPT2, ffn=384),
    })
    lm_steps: int = 3000  # base: next-token pretraining on the corpus
    lm_batch: int = 32
    lm_seq: int = 128
    # where base windows start (a key part only when not `random`, so older builds keep their keys)
    lm_windows: LmWindows = LmWindows.RANDOM
    lm_lr: float = 2e-3
    chat_steps: int = 8000  # chat: tuning on text instructions (the Vicuna analogue)
    chat_batch: int = 64
    chat_lr: float = 1e-3
    checkpoint_every: int = 200  # steps between checkpoints of a training stage
    probe_val_n: int = 600  # gate 1: a val split (seed 2) answered from its captions
    probe_val_seed: int = 2
    probe_heldout_n: int | None = None  # held-out phrasings of data/test probed (None: all 194 of them)
    seed: int = 0  # training seed of every stage

    def decoder(self, key: str, vocab_size: int) -> DecoderConfig:
        if key not in self.backbones:
            raise KeyError(f"plan `{self.name}` has no backbone `{key}` (has {', '.join(self.backbones)})")
        return dataclasses.replace(self.backbones[key], vocab_size=vocab_size)


def _backbone(family: Family, **sizes) -> DecoderConfig:
    return DecoderConfig(family, scaled_embedding=True, tie_word_embeddings=False, **sizes)


def _tiny(family: Family) -> DecoderConfig:
    return _backbone(family, hidden=32, layers=2, heads=2, ffn=64, max_positions=256)


PLANS = {
    "foundation": Plan(),
    "smoke": Plan(name="smoke", text_n=400, pictures_n=120, vocab_size=384,
                  vision=VisionConfig(width=32, layers=1, heads=2), vit_steps=12, vit_batch=8,
                  backbones={"llama-small": _tiny(Family.LLAMA), "llama-large": _tiny(Family.LLAMA),
                             "gpt2-small": _tiny(Family.GPT2)},
                  lm_steps=12, lm_batch=4, lm_seq=32, chat_steps=12, chat_batch=4, checkpoint_every=5,
                  probe_val_n=30, probe_heldout_n=24),
}


def folder_digest(folder: Path, names: list[str]) -> str:
    """sha256 over the named files of a generated data folder (and every picture they list)."""
    h = hashlib.sha256()
    for name in names:
        h.update(name.encode() + b"\0" + file_digest(folder / name).encode())
    return h.hexdigest()


class Foundation:
    """One foundation build: WORK holds data, caches and checkpoints; OUT receives what ships."""

    def __init__(self, plan: Plan, work: Path, out: Path, log=print, generator: list[str] | None = None):
        self.plan = plan
        self.work = Path(work)
        self.out = Path(out)
        self.log = log
        self.generator = generator or _generator()
        self.work.mkdir(parents=True, exist_ok=True)
        self.stats: dict[str, dict] = {}

    # -- data --------------------------------------------------------------------------------
    def _generate(self, folder: Path, args: list[str], expect: str) -> Path:
        return main_first(lambda: self._generate_here(folder, args, expect))  # torchrun: rank 0 writes it

    def _generate_here(self, folder: Path, args: list[str], expect: str) -> Path:
        """A generated data folder, made once: a finished one (it holds `expect` and the stamp of
        these arguments) is kept even if the generator's sources changed since, so a build that
        spans days keeps its data; the digests in the provenance say which data it was."""
        stamp = folder / "foundation-args.json"

        def finished() -> bool:
            return (folder / expect).exists() and stamp.exists() and json.loads(stamp.read_text()) == args

        if finished():
            return folder
        # A folder of this process's own: builds of single backbones may run side by side
        # (scripts/foundation-device), and each may reach the same data first.
        tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}-{threading.get_ident()}")
        shutil.rmtree(tmp, ignore_errors=True)
        cmd = self.generator + args + ["--out", str(tmp)]
        self.log(f"generating {folder.name}: {' '.join(cmd)}")
        done = subprocess.run(cmd, cwd=repo_root(), stdout=subprocess.DEVNULL)
        if done.returncode != 0:
            raise DataError(f"data generator failed (exit {done.returncode}): {' '.join(cmd)}")
        (tmp / stamp.name).write_text(json.dumps(args))
        if not finished():  # else another process finished first: the same arguments, the same data
            shutil.rmtree(folder, ignore_errors=True)
            try:
                tmp.rename(folder)
            except OSError:
                if not finished():
                    raise
        shutil.rmtree(tmp, ignore_errors=True)
        return folder

    def text(self) -> Path:
        p = self.plan
        return self._generate(self.work / "text", ["data", "text", "--foundation", "--n", str(p.text_n),
                                                   "--seed", str(p.text_seed)], "text_instructions.jsonl")

    def pictures(self) -> Path:
        p = self.plan
        return self._generate(self.work / "pictures", ["data", "generate", "--split", "train", "--n",
                                                       str(p.pictures_n), "--seed", str(p.pictures_seed)],
                              "captions.jsonl")

    def probe_split(self) -> Path:
        p = self.plan
        return self._generate(self.work / "probe-val", ["data", "generate", "--split", "val", "--n",
                                                        str(p.probe_val_n), "--seed", str(p.probe_val_seed)],
                              "captions.jsonl")

    def text_digest(self) -> str:
        return self._memo("text_digest", lambda: folder_digest(self.text(), ["corpus.txt", "text_instructions.jsonl"]))

    def pictures_digest(self) -> str:
        def digest():
            folder = self.pictures()
            h = hashlib.sha256(folder_digest(folder, ["captions.jsonl"]).encode())
            for c in load_captions(folder):
                h.update(file_digest(c.image).encode())
            return h.hexdigest()
        return self._memo("pictures_digest", digest)

    def _memo(self, name: str, make):
        cache = self.__dict__.setdefault("_memos", {})
        if name not in cache:
            cache[name] = make()
        return cache[name]

    # -- stage files ---------------------------------------------------------------------------
    def stage_files(self, name: str, key: str) -> tuple[Path, Path, Path]:
        """(weights, stats, checkpoint) paths of a stage under its key."""
        base = self.work / "stages" / f"{name}-{key}"
        return base.with_suffix(".safetensors"), base.with_suffix(".json"), base.with_suffix(".ckpt")

    def _finish(self, name: str, key: str, state: dict, stats: dict):
        self.stats[name] = stats
        if world().is_main:  # torchrun: every process holds the same weights; one writes them
            self._write_stage(name, key, state, stats)
        barrier()

    def _write_stage(self, name: str, key: str, state: dict, stats: dict):
        from safetensors.torch import save_file
        weights, stats_path, ckpt = self.stage_files(name, key)
        weights.parent.mkdir(parents=True, exist_ok=True)
        tmp = weights.with_suffix(".tmp")
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
        tmp.rename(weights)
        stats_path.write_text(json.dumps({"stage": name, "key": key, **stats}, indent=1) + "\n")
        ckpt.unlink(missing_ok=True)

    def _done(self, name: str, key: str) -> dict | None:
        weights, stats_path, _ = self.stage_files(name, key)
        if weights.exists() and stats_path.exists():
            self.stats[name] = json.loads(stats_path.read_text())
            return self.stats[name]
        return None

    def weights(self, name: str, key: str) -> dict:
        from safetensors.torch import load_file
        return load_file(str(self.stage_files(name, key)[0]))

    # -- tokenizer -------------------------------------------------------------------------------
    def tokenizer_key(self) -> str:
        return config_hash("tokenizer", self.plan.vocab_size, self.text_digest(), self.pictures_digest())

    def tokenizer_path(self) -> Path:
        path = self.work / "stages" / f"tokenizer-{self.tokenizer_key()}.json"
        return main_first(lambda: self._train_tokenizer(path))

    def _train_tokenizer(self, path: Path) -> Path:
        if not path.exists():
            from .data import load_corpus, load_text_instructions
            texts = load_corpus(self.text())
            texts += [t for pair in load_text_instructions(self.text()) for t in pair]
            texts += [c.caption for c in load_captions(self.pictures())]
            tok = train_tokenizer(texts, self.plan.vocab_size)
            path.parent.mkdir(parents=True, exist_ok=True)
            tok.save(str(path.with_suffix(".tmp")))
            path.with_suffix(".tmp").rename(path)
            self.log(f"tokenizer: {tok.get_vocab_size()} tokens from {len(texts)} texts")
        return path

    def codec(self) -> TextCodec:
        return self._memo("codec", lambda: TextCodec.load(self.tokenizer_path()))

    # -- ViT -----------------------------------------------------------------------------------
    def vit_key(self) -> str:
        p = self.plan
        return config_hash("vit", VIT_OBJECTIVE, p.vision, p.vit_steps, p.vit_batch, p.seed, self.pictures_digest())

    def vit(self) -> str:
        key = self.vit_key()
        if self._done("vit", key) is None:
            p = self.plan
            ckpt = self.stage_files("vit", key)[2]
            state, stats = pretrain_vit(p.vision, load_captions(self.pictures()), p.vit_steps, p.vit_batch,
                                        p.seed, self.log, (ckpt, p.checkpoint_every))
            self._finish("vit", key, state, stats)
        return key

    # -- backbones -------------------------------------------------------------------------------
    def base_key(self, backbone: str) -> str:
        p = self.plan
        windows = () if p.lm_windows is LmWindows.RANDOM else (p.lm_windows,)
        return config_hash("base", p.decoder(backbone, 0), p.lm_steps, p.lm_batch, p.lm_seq, p.lm_lr, p.seed,
                           self.tokenizer_key(), *windows)

    def chat_key(self, backbone: str) -> str:
        p = self.plan
        return config_hash("chat", self.base_key(backbone), p.chat_steps, p.chat_batch, p.chat_lr, p.seed)

    def base(self, backbone: str) -> str:
        key = self.base_key(backbone)
        name = f"{backbone}-base"
        if self._done(name, key) is None:
            from .data import load_corpus
            p = self.plan
            cfg = p.decoder(backbone, self.codec().vocab_size)
            ckpt = self.stage_files(name, key)[2]
            state, stats = pretrain_lm(cfg, self.codec(), load_corpus(self.text()), p.lm_steps, p.lm_batch,
                                       p.lm_seq, p.seed, self.log, name, (ckpt, p.checkpoint_every), p.lm_lr,
                                       p.lm_windows)
            self._finish(name, key, state, stats)
        return key

    def chat(self, backbone: str) -> str:
        key = self.chat_key(backbone)
        name = f"{backbone}-chat"
        if self._done(name, key) is None:
            from .data import load_text_instructions
            p = self.plan
            cfg = p.decoder(backbone, self.codec().vocab_size)
            base = self.weights(f"{backbone}-base", self.base(backbone))
            pairs = load_text_instructions(self.text())
            ckpt = self.stage_files(name, key)[2]
            state, stats = tune_on_instructions(cfg, base, self.codec(), pairs, p.chat_steps, p.chat_batch,
                                                p.seed, p.chat_lr, self.log, name, (ckpt, p.checkpoint_every))
            self._finish(name, key, state, stats)
        return key

    # -- probe (gate 1) --------------------------------------------------------------------------
    def probe(self, backbone: str) -> dict:
        """The chat backbone answers the image items of a val split from their captions, and the
        held-out phrasings of data/test's image items, scored by `lynx-zoo data score`."""
        key = self.chat(backbone)
        path = self.work / "stages" / f"{backbone}-probe-{key}.json"
        if path.exists():
            return json.loads(path.read_text())
        cfg = self.plan.decoder(backbone, self.codec().vocab_size)
        model = Decoder(cfg)
        model.load_state_dict(self.weights(f"{backbone}-chat", key))
        t = time.time()
        scratch = self.work / "probe" / backbone  # its own: backbones may be probed side by side
        result: dict[str, object] = {"val": caption_probe(model, self.codec(), self.probe_split(), self.generator, scratch)}
        test = repo_root() / "data" / "test"
        if (test / "captions.jsonl").exists():
            result["test_heldout"] = caption_probe(model, self.codec(), test, self.generator, scratch,
                                                   phrasing="heldout", limit=self.plan.probe_heldout_n)
        result["seconds"] = round(time.time() - t, 1)
        path.write_text(json.dumps(result) + "\n")
        self.log(f"{backbone} probe: {json.dumps(result)}")
        return result

    # -- all -------------------------------------------------------------------------------------
    def build(self, stages: list[str], backbones: list[str]) -> None:
        """Runs `stages` in order. Under torchrun every process trains; rank 0 alone generates data,
        writes stages, probes and ships, the others waiting at barriers."""
        unknown = [s for s in stages if s not in STAGES]
        if unknown:
            raise KeyError(f"unknown stage `{unknown[0]}` (stages: {', '.join(STAGES)})")
        for stage in stages:
            if stage == "vit":
                self.vit()
            elif stage == "tokenizer":
                self.tokenizer_path()
            elif stage in ("base", "chat"):
                for b in backbones:
                    getattr(self, stage)(b)
            else:  # probe, ship: after training, on rank 0 (their inputs are its files)
                if stage == "ship":
                    self.vit()
                for b in backbones:
                    self.chat(b)
                if world().is_main:
                    with alone():
                        if stage == "probe":
                            for b in backbones:
                                self.probe(b)
                        else:
                            self.ship(backbones)
                barrier()

    def ship(self, backbones: list[str]) -> Path:
        """Writes OUT: tokenizer.json, vit.safetensors, BACKBONE-{base,chat}.safetensors and
        foundation.json (provenance with each file's sha256)."""
        self.out.mkdir(parents=True, exist_ok=True)
        files = {}

        def put(src: Path, name: str):
            dst = self.out / name
            shutil.copyfile(src, dst)
            files[name] = {"sha256": file_digest(dst), "bytes": dst.stat().st_size}

        put(self.tokenizer_path(), "tokenizer.json")
        components = {"vit": {"key": self.vit(), "config": dataclasses.asdict(self.plan.vision),
                              "objective": VIT_OBJECTIVE, **self._public_stats("vit")}}
        put(self.stage_files("vit", self.vit_key())[0], "vit.safetensors")
        for b in backbones:
            cfg = dataclasses.asdict(self.plan.decoder(b, self.codec().vocab_size))
            for flavour, make in (("base", self.base), ("chat", self.chat)):
                name = f"{b}-{flavour}"
                key = make(b)
                put(self.stage_files(name, key)[0], f"{name}.safetensors")
                components[name] = {"key": key, "config": cfg, **self._public_stats(name)}
            components[f"{b}-chat"]["probe"] = self.probe(b)
        doc = {
            "format": FORMAT, "plan": self.plan.name, "command": "python -m lynx_export " + " ".join(sys.argv[1:]),
            "settings": _plain(dataclasses.asdict(self.plan)),
            "data": {"text": {"generator": ["data", "text", "--foundation"], "n": self.plan.text_n,
                              "seed": self.plan.text_seed, "sha256": self.text_digest()},
                     "pictures": {"generator": ["data", "generate", "--split", "train"], "n": self.plan.pictures_n,
                                  "seed": self.plan.pictures_seed, "sha256": self.pictures_digest()}},
            "components": components, "files": files,
            "versions": {"exporter": __version__, "torch": torch.__version__.split("+")[0],
                         "threads": torch.get_num_threads(),
                         "device": "cuda" if torch.cuda.is_available() else "cpu"},
            "date": datetime.date.today().isoformat(),
        }
        (self.out / "foundation.json").write_text(json.dumps(doc, indent=1) + "\n")
        self.log(f"foundation shipped to {self.out}")
        return self.out

    def _public_stats(self, name: str) -> dict:
        s = self.stats.get(name, {})
        return {k: s[k] for k in ("steps", "final_loss", "seconds", "curve") if k in s}


STAGES = ["vit", "tokenizer", "base", "chat", "probe", "ship"]


def _plain(x):
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x.value if hasattr(x, "value") else x


def _generator() -> list[str]:
    import os
    exe = os.environ.get("LYNX_ZOO_BIN")
    binary = repo_root() / "target" / "release" / "lynx-zoo"
    if exe:
        return [exe]
    if binary.exists():
        return [str(binary)]
    return ["cargo", "run", "--quiet", "--release", "--"]


# -- chat tuning on a large instruction pool ---------------------------------------------------------
def tune_on_instructions(cfg: DecoderConfig, base_state: dict, codec: TextCodec, pairs: list[tuple[str, str]],
                         steps: int, batch: int, seed: int, lr: float, log=print, tag: str = "chat",
                         checkpoint: tuple[Path, int] | None = None):
    """Chat tuning (loss on the response, in the chat template) on a pool too large to tokenise up
    front: each step tokenises its own batch, drawn from (seed, step)."""
    torch.manual_seed(seed)
    dev = device()
    model = Decoder(cfg)
    model.load_state_dict(base_state)
    model.to(dev)

    def loss_fn(step):
        picks = shard(step_rng(seed, step).integers(len(pairs), size=batch))
        ids, mask, labels = (t.to(dev) for t in collate([chat_example(codec, *pairs[i]) for i in picks], codec.pad))
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        logits, _ = model(model.embed(ids), mask, pos)
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                               ignore_index=IGNORE)

    resume = None if checkpoint is None else Resume(Path(checkpoint[0]), checkpoint[1], {"model": model})
    stats = optimize([{"params": list(model.parameters()), "lr": lr}], steps, loss_fn, log, tag, 0.1, resume)
    return {k: v.cpu() for k, v in model.state_dict().items()}, stats


# -- gate 1: answering from captions -----------------------------------------------------------------
@torch.no_grad()
def greedy_answer(model: Decoder, codec: TextCodec, question: str, max_new: int = 16) -> str:
    ids = prompt_ids(codec, question)
    out: list[int] = []
    for _ in range(max_new):
        x = torch.tensor([ids + out])
        logits, _ = model(model.embed(x), torch.ones_like(x), torch.arange(x.shape[1]).unsqueeze(0))
        tok = int(logits[0, -1].argmax())
        if tok == codec.eos:
            break
        out.append(tok)
    return codec.decode(out).strip()


def caption_probe(model: Decoder, codec: TextCodec, split: Path, generator: list[str], work: Path,
                  phrasing: str | None = None, limit: int | None = None) -> dict:
    """Answers each image item of `split` (optionally only those of one phrasing pool, and only the
    first `limit`) from "Picture: {caption}. {question}" and scores them with `lynx-zoo data
    score`: the mean over the image classes and each class's accuracy."""
    model.eval()
    captions = {}
    for line in (split / "captions.jsonl").open():
        r = json.loads(line)
        captions[r["image"]] = r["caption"]
    rows: list[str] = []
    preds: list[str] = []
    classes: list[str] = []  # the image classes of the split, in the order the data gives them
    for line in (split / "annotations.jsonl").open():
        r = json.loads(line)
        if "image" not in r or r["image"] not in captions:
            continue
        if r["class"] not in classes:
            classes.append(r["class"])
        if (phrasing is not None and r.get("phrasing") != phrasing) or (limit is not None and len(rows) >= limit):
            continue
        rows.append(json.dumps({**r, "image": str((split / r["image"]).resolve())}))
        pred = greedy_answer(model, codec, f"Picture: {captions[r['image']]}. {r['question']}")
        preds.append(json.dumps({"id": f"{r['dataset']}/{r['index']}", "prediction": pred}))
    if not rows:
        raise DataError(f"{split}: no image items with captions to probe")
    work.mkdir(parents=True, exist_ok=True)
    bench, pred_path = work / "bench.jsonl", work / "predictions.jsonl"
    bench.write_text("\n".join(rows) + "\n")
    pred_path.write_text("\n".join(preds) + "\n")
    out = subprocess.run(generator + ["data", "score", "--bench", str(bench), str(pred_path), "--format", "json",
                                      "--table", "per-class"], capture_output=True, text=True, cwd=repo_root())
    if out.returncode != 0:
        raise RuntimeError(f"lynx-zoo data score failed: {out.stderr.strip()}")
    row = json.loads(out.stdout)[0]
    per = {c: row[f"{c}_pct"] for c in classes if row.get(f"{c}_pct") is not None}
    return {"items": len(rows), "image_pct": round(float(np.mean(list(per.values()))), 1),
            "per_class": {c: round(v, 1) for c, v in per.items()}}


def backbone_refs_of(variants) -> list[str]:
    """The plan's backbone keys ("llama-small") the given variants build on."""
    return sorted({f"{v.backbone.family.value}-{v.backbone.size}" for v in variants})


def shipped_name(ref: BackboneRef) -> str:
    """The shipped file of a backbone checkpoint: "llama-small-chat"."""
    flavour = "chat" if ref.flavour is Flavour.CHAT else "base"
    return f"{ref.family.value}-{ref.size}-{flavour}"
