"""Training loops: ViT and LLM pretraining, chat tuning and the two Lynx stages.

All loops share `optimize`: AdamW, linear warm-up then cosine decay to 10%, gradient clipping at
1.0, seeded. Each returns the steps run and the final loss (mean of the last 20 steps).
"""

from __future__ import annotations

import collections
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .config import DecoderConfig, LlmFreeze, LmWindows, VariantConfig, VisionConfig, VisionFreeze, VisionInput
from .distributed import average_gradients, broadcast, mean, shard, world
from .features import FeatureStore
from .media import preprocess, read_image
from .models.decoder import Decoder
from .models.lynx import IGNORE, LynxModel
from .models.vision import VisionEncoder
from .recipes import Example, Sampler, alignment_examples, chat_example, collate, qa_examples, subset
from .tokenizer import TextCodec


def device() -> torch.device:
    """The CPU, or this process's GPU (torchrun: the one of its LOCAL_RANK)."""
    return torch.device(f"cuda:{world().local_rank}" if torch.cuda.is_available() else "cpu")


@dataclass
class Resume:
    """Where a long run checkpoints, so that it survives interruption: every `every` steps (and at
    the end) the `modules`' weights, the optimiser state, the step and the loss curve go to `path`
    (tensors, dicts and numbers only: loaded with weights_only=True; written to a temporary file and
    renamed, so a kill never leaves half a checkpoint). A run that finds `path` continues from it.
    Resumed runs equal uninterrupted ones bit for bit when the loss function draws its batch from
    the step alone (`step_rng`) and the thread count is the same."""

    path: Path
    every: int
    modules: dict[str, nn.Module]


def step_rng(seed: int, step: int) -> np.random.Generator:
    """The random source of one training step: a function of (seed, step) only, so a resumed run
    draws the same batches as an uninterrupted one."""
    return np.random.default_rng((seed, step))


def lr_scale(step: int, steps: int, warmup: int) -> float:
    """The learning rate's share of its peak at `step`: linear warm-up over `warmup` steps, then a
    cosine down to a tenth of the peak at the last step."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.1 + 0.45 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def optimize(groups: list[dict], steps: int, loss_fn, log=print, tag: str = "", weight_decay: float = 0.01,
             resume: Resume | None = None) -> dict:
    """Runs `steps` AdamW steps on `loss_fn(step) -> loss`; returns {steps, final_loss, seconds,
    curve}: `curve` holds [step, mean loss of the last 20 steps] every 100 steps."""
    if steps <= 0:
        return {"steps": 0, "final_loss": None, "seconds": 0.0, "curve": []}
    opt = torch.optim.AdamW(groups, betas=(0.9, 0.95), weight_decay=weight_decay)
    peaks = [g["lr"] for g in opt.param_groups]
    params = [p for g in groups for p in g["params"]]
    warmup = max(1, min(50, steps // 10))
    recent: collections.deque = collections.deque(maxlen=20)
    first, curve, before = 0, [], 0.0
    if resume is not None and resume.path.exists():
        state = torch.load(resume.path, weights_only=True)
        if state["steps"] != steps:
            raise RuntimeError(f"{resume.path}: a checkpoint of a {state['steps']}-step run; this run has {steps} "
                               "steps (delete it to start over)")
        for name, module in resume.modules.items():
            module.load_state_dict(state["modules"][name])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        first, curve, before = state["step"], state["curve"], state["seconds"]
        recent.extend(state["recent"])
        log(f"  {tag} resumed at step {first}/{steps} from {resume.path}")
    broadcast(params)  # torchrun: every process starts from rank 0's weights
    start = time.time()

    def save(done: int, resume: Resume):
        state = {"steps": steps, "step": done, "modules": {n: m.state_dict() for n, m in resume.modules.items()},
                 "optimizer": opt.state_dict(), "torch_rng": torch.get_rng_state(), "curve": curve,
                 "recent": list(recent), "seconds": before + time.time() - start}
        resume.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = resume.path.with_suffix(f".{os.getpid()}.tmp")
        torch.save(state, tmp)
        tmp.rename(resume.path)

    for step in range(first, steps):
        scale = lr_scale(step, steps, warmup)
        for g, peak in zip(opt.param_groups, peaks):
            g["lr"] = peak * scale
        loss = loss_fn(step)
        if loss.requires_grad:  # a text-only batch does not reach cross-attention-only weights
            opt.zero_grad(set_to_none=True)
            loss.backward()
            average_gradients(params)  # torchrun: the mean over the processes' shares of the batch
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
        recent.append(mean(float(loss.detach())))
        if (step + 1) % 100 == 0:
            curve.append([step + 1, round(float(np.mean(recent)), 4)])
        if step % 100 == 0 or step == steps - 1:
            log(f"  {tag} step {step + 1}/{steps} loss {np.mean(recent):.3f} ({before + time.time() - start:.0f}s)")
        if resume is not None and world().is_main and ((step + 1) % resume.every == 0 or step == steps - 1):
            save(step + 1, resume)
    final = round(float(np.mean(recent)), 4) if recent else None
    return {"steps": steps, "final_loss": final, "seconds": round(before + time.time() - start, 1), "curve": curve}


def _resume(checkpoint: tuple[Path, int] | None, modules: dict) -> Resume | None:
    return None if checkpoint is None else Resume(Path(checkpoint[0]), checkpoint[1], modules)


# -- ViT pretraining -------------------------------------------------------------------------
VIT_OBJECTIVE = "words+region-pairs@128px"  # part of the ViT's cache key: change it when the objective changes
_WORD = re.compile(r"[a-z0-9]+")


def caption_vocabulary(captions: list[str], size: int = 256) -> list[str]:
    counts = collections.Counter(w for c in captions for w in set(_WORD.findall(c.lower())))
    n = len(captions)
    # words in (almost) every caption carry no information about the image; ties in count are
    # broken by the word, so the order (the ViT head's targets) does not depend on set iteration
    # order, which PYTHONHASHSEED changes from one process to the next
    ranked = sorted(counts.items(), key=lambda wk: (-wk[1], wk[0]))
    return [w for w, k in ranked if k < 0.9 * n][:size]


class AttributeHead(nn.Module):
    """Patch tokens -> (a) which caption words describe the image (multi-label, mean-pooled) and
    (b) per region of a 3 x 3 grid, which bound attribute pairs it holds ("red circle", "big circle",
    "big red"), scored per patch and max-pooled over the patches whose centres lie in the region.

    (b) is the local supervision: a patch must encode its object's colour, shape and size together,
    so that the frozen features carry bindings and positions, not only a bag of attributes.
    """

    def __init__(self, width: int, words: int, pairs: int):
        super().__init__()
        self.words = nn.Linear(width, words)
        self.pairs = nn.Linear(width, pairs)

    def forward(self, patches):  # (B, P, W) -> (B, K), (B, 9, Q)
        grid = math.isqrt(patches.shape[1])
        centres = (torch.arange(grid, device=patches.device) + 0.5) / grid
        third = (centres * 3).floor().clamp(max=2).long()  # region row / column of each patch
        region = (third[:, None] * 3 + third[None, :]).reshape(-1)  # (P,)
        member = region[None, :] == torch.arange(9, device=patches.device)[:, None]  # (9, P)
        logits = self.pairs(patches)  # (B, P, Q)
        pooled = logits.unsqueeze(1).masked_fill(~member[None, :, :, None], float("-inf")).amax(2)
        return self.words(patches.mean(1)), pooled


# The generator's position words (src/data/tasks.rs `position_words`), row-major over a 3 x 3 grid.
# A copy: the generated data do not carry them; tests/test_data.py fails when the two drift apart.
REGIONS = ("at the top left", "at the top", "at the top right", "on the left", "in the middle", "on the right",
           "at the bottom left", "at the bottom", "at the bottom right")
_REGION_INDEX = {words: i for i, words in enumerate(REGIONS)}
# longest first, so that "at the top" does not match the start of "at the top left"
_OBJECT = re.compile(r"\ba (big|small) ([a-z]+) ([a-z]+) (" + "|".join(sorted(REGIONS, key=len, reverse=True)) + ")")


def caption_objects(caption: str) -> list[tuple[str, str, str, int]]:
    """(size, colour, shape, region) of every object a caption lists, region in 0..8 row-major."""
    return [(m[1], m[2], m[3], _REGION_INDEX[m[4]]) for m in _OBJECT.finditer(caption.lower())]


def _pairs(size: str, colour: str, shape: str) -> list[str]:
    return [f"{colour} {shape}", f"{size} {shape}", f"{size} {colour}"]


def caption_targets(captions):
    """The ViT objective's targets: (caption words, attribute pairs, per-image word labels (N, K),
    per-image per-region pair labels (N, 9, Q))."""
    words = caption_vocabulary([c.caption for c in captions])
    index = {w: i for i, w in enumerate(words)}
    objects = [caption_objects(c.caption) for c in captions]
    pairs = sorted({p for objs in objects for s, c, h, _ in objs for p in _pairs(s, c, h)})
    pair_index = {p: i for i, p in enumerate(pairs)}
    targets = torch.zeros(len(captions), len(words))
    regions = torch.zeros(len(captions), 9, len(pairs))
    for i, c in enumerate(captions):
        for w in _WORD.findall(c.caption.lower()):
            if w in index:
                targets[i, index[w]] = 1.0
        for s, colour, shape, r in objects[i]:
            for p in _pairs(s, colour, shape):
                regions[i, r, pair_index[p]] = 1.0
    return words, pairs, targets, regions


def pretrain_vit(cfg: VisionConfig, captions, steps: int, batch: int, seed: int, log=print,
                 checkpoint: tuple[Path, int] | None = None):
    """Pretrains the ViT on captions at its pretraining resolution (128 px): the caption words of each
    image, and which attribute pairs lie in which region (targets parsed from the captions' "a big
    red circle at the top left" phrases).

    Returns (state_dict, stats). Lower resolutions read the same weights with a pooled position table,
    as Lynx reads its EVA-CLIP at resolutions it was not pretrained at. Earlier zoos alternated 128 and
    64 px steps; that kept shape out of the features at both (export/probes/objective_probe.py).
    """
    return pretrain_encoder(lambda: VisionEncoder(cfg), cfg.width, cfg.grid * cfg.patch, captions, steps, batch,
                            seed, log, "vit", checkpoint)


def pretrain_encoder(make_encoder, width: int, size: int, captions, steps: int, batch: int, seed: int,
                     log=print, tag: str = "vit", checkpoint: tuple[Path, int] | None = None):
    """The ViT's pretraining objective for any encoder of pixels (B, 3, H, W) -> patch tokens
    (B, P, width): caption words and region attribute pairs (`AttributeHead`) on pictures of `size`
    pixels. Returns (state_dict, stats)."""
    torch.manual_seed(seed)
    dev = device()
    words, pairs, targets, regions = caption_targets(captions)
    log(f"  {tag}: {len(captions)} images, {len(words)} caption words, {len(pairs)} attribute pairs")
    images = np.stack([read_image(c.image) for c in captions])  # (N, H, W, 3) uint8
    encoder, head = make_encoder().to(dev), AttributeHead(width, len(words), len(pairs)).to(dev)

    def loss_fn(step):
        idx = shard(step_rng(seed, step).integers(len(images), size=batch))
        pixels = preprocess(list(images[idx]), size).to(dev)
        word_logits, region_logits = head(encoder(pixels))
        return (F.binary_cross_entropy_with_logits(word_logits, targets[idx].to(dev))
                + F.binary_cross_entropy_with_logits(region_logits, regions[idx].to(dev)))

    params = list(encoder.parameters()) + list(head.parameters())
    resume = _resume(checkpoint, {"encoder": encoder, "head": head})
    stats = optimize([{"params": params, "lr": 1e-3}], steps, loss_fn, log, tag, 0.05, resume)
    return {k: v.cpu() for k, v in encoder.state_dict().items()}, stats


# -- LLM pretraining -------------------------------------------------------------------------
def lm_window_starts(rng: np.random.Generator, n_tokens: int, doc_starts: list[int], seq: int, batch: int,
                     windows: LmWindows) -> np.ndarray:
    """`batch` starts of (seq + 1)-token windows in a packed stream of `n_tokens`: anywhere
    (`random`) or at one of `doc_starts` (`documents`)."""
    last = n_tokens - seq - 1
    if windows is LmWindows.RANDOM:
        return rng.integers(0, last, size=batch)
    if windows is LmWindows.DOCUMENTS:
        starts = np.array([s for s in doc_starts if s < last])
        return starts[rng.integers(0, len(starts), size=batch)]
    raise ValueError(f"windows `{windows}`: random or documents")


def pretrain_lm(cfg: DecoderConfig, codec: TextCodec, corpus: list[str], steps: int, batch: int, seq: int,
                seed: int, log=print, tag: str = "lm", checkpoint: tuple[Path, int] | None = None, lr: float = 2e-3,
                windows: LmWindows = LmWindows.RANDOM):
    """Next-token pretraining on the corpus, packed into `seq`-token windows ("base"). `windows`:
    `random` starts each window anywhere in the packed corpus; `documents` at a document's BOS, so
    that a passage is read from its start (its picture's caption before the facts about it)."""
    torch.manual_seed(seed)
    dev = device()
    tokens: list[int] = []
    doc_starts: list[int] = []
    for ids in codec.encode_batch(corpus):
        doc_starts.append(len(tokens))
        tokens += [codec.bos] + ids + [codec.eos]
    stream = torch.tensor(tokens, dtype=torch.long)
    log(f"  {tag}: {len(stream)} corpus tokens, windows at {windows.value} starts")
    model = Decoder(cfg).to(dev)

    def loss_fn(step):
        starts = shard(lm_window_starts(step_rng(seed, step), len(stream), doc_starts, seq, batch, windows))
        x = torch.stack([stream[s:s + seq + 1] for s in starts]).to(dev)  # (B, seq+1)
        mask = torch.ones_like(x[:, :-1])
        pos = torch.arange(seq, device=dev).expand(len(starts), -1)
        logits, _ = model(model.embed(x[:, :-1]), mask, pos)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))

    stats = optimize([{"params": list(model.parameters()), "lr": lr}], steps, loss_fn, log, tag, 0.1,
                     _resume(checkpoint, {"model": model}))
    return {k: v.cpu() for k, v in model.state_dict().items()}, stats


def tune_chat(cfg: DecoderConfig, base_state: dict, codec: TextCodec, instructions, corpus: list[str],
              steps: int, batch: int, seed: int, log=print, tag: str = "chat",
              checkpoint: tuple[Path, int] | None = None, lr: float = 1e-3):
    """Tunes a base LLM on text instructions in the chat template ("chat", the Vicuna analogue)."""
    torch.manual_seed(seed)
    dev = device()
    model = Decoder(cfg)
    model.load_state_dict(base_state)
    model.to(dev)
    examples = [chat_example(codec, q, a) for q, a in instructions]

    def loss_fn(step):
        batch_ex = [examples[i] for i in shard(step_rng(seed, step).integers(len(examples), size=batch))]
        ids, mask, labels = (t.to(dev) for t in collate(batch_ex, codec.pad))
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        logits, _ = model(model.embed(ids), mask, pos)
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                               ignore_index=IGNORE)

    stats = optimize([{"params": list(model.parameters()), "lr": lr}], steps, loss_fn, log, tag, 0.1,
                     _resume(checkpoint, {"model": model}))
    return {k: v.cpu() for k, v in model.state_dict().items()}, stats


# -- the two Lynx stages ---------------------------------------------------------------------
def _features(model: LynxModel, store: FeatureStore | None, batch: list[Example], dev):
    v = model.variant
    if not v.has_vision or batch[0].media is None:
        return None
    if store is None:
        raise ValueError(f"variant `{v.name}` sees pictures but was given no feature store")
    frames = v.frames if batch[0].is_video else 1
    blank = v.vision_input is VisionInput.BLANK  # the matched blind control: the blank picture's features
    rows = [store.lookup(e.media, frames, e.is_video, blank) for e in batch]
    trunk = model.variant.recipe.vision is VisionFreeze.LAST_BLOCK
    return store.gather(rows, trunk=trunk).to(dev)


def train_variant(model: LynxModel, codec: TextCodec, store: FeatureStore | None, records, captions,
                  instructions, step_scale: float = 1.0, log=print) -> dict:
    """Stage 1 (alignment on captions) then stage 2 (instruction tuning), by the variant's recipe."""
    v: VariantConfig = model.variant
    r = v.recipe
    torch.manual_seed(r.seed)
    dev = device()
    model.to(dev)
    trainable = model.apply_freeze()
    llm_ids = model.llm_parameters() if r.llm is LlmFreeze.TRAINED else set()
    groups = [{"params": [p for p in trainable if id(p) not in llm_ids], "lr": r.lr}]
    if llm_ids:
        groups.append({"params": [p for p in trainable if id(p) in llm_ids], "lr": r.lr_llm})
    groups = [g for g in groups if g["params"]]
    model.train()

    def run(sampler: Sampler, steps: int, tag: str):
        def loss_fn(step):
            _, batch = sampler.batch(r.batch)  # the same global batch on every process
            batch = shard(batch)
            ids, mask, labels = (t.to(dev) for t in collate(batch, codec.pad))
            return model.loss(ids, mask, labels, _features(model, store, batch, dev))
        return optimize(groups, steps, loss_fn, log, f"{v.name} {tag}")

    captions = subset(captions, r.fraction, r.seed)
    records = subset(records, r.fraction, r.seed + 1)
    align = alignment_examples(codec, captions, r)
    if not v.has_vision:  # text-only: captions are text
        align = [Example(e.ids, e.labels, None, False, "caption") for e in align]
        s1 = Sampler([], r.sampling, align, 1.0, r.seed)
    else:
        s1 = Sampler(align, r.sampling, [], 0.0, r.seed)
    stage1 = run(s1, int(round(r.alignment_steps * step_scale)), "alignment")

    qa = qa_examples(codec, records, r)
    if not v.has_vision:
        qa = [Example(e.ids, e.labels, None, False, e.task) for e in qa]
    text = [chat_example(codec, q, a) for q, a in instructions] if r.text_instructions else []
    if v.has_vision:
        s2 = Sampler(qa, r.sampling, text, r.text_share, r.seed + 2)
    else:  # text-only: QA and text are all text; keep the task sampling over QA
        s2 = Sampler([], r.sampling, qa + text, 1.0, r.seed + 2)
    stage2 = run(s2, int(round(r.instruction_steps * step_scale)), "instruction")
    model.eval().cpu()
    return {"steps": {"alignment": stage1["steps"], "instruction": stage2["steps"]},
            "final_loss": {"alignment": stage1["final_loss"], "instruction": stage2["final_loss"]},
            "train_seconds": round(stage1["seconds"] + stage2["seconds"], 1),
            "examples": {"captions": len(align), "qa": len(qa), "text": len(text)}}
