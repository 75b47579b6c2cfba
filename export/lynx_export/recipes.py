"""Data recipes of the Lynx stages: prompts, caption quality, quantity and task sampling.

Sequences are built exactly as the runtime builds prompts (docs/contract.md section 2):
`<s>` + "User: {question}\\nBot:" and, for training, the target " {response}" + `</s>`, with the
loss on the target only. Pieces are tokenized separately so that a prompt tokenizes the same in
training and at inference.
"""

from __future__ import annotations

import collections
import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import CaptionQuality, Prompts, RecipeConfig, Sampling
from .data import Caption, QARecord
from .models.lynx import IGNORE
from .tokenizer import TextCodec

PROMPT_TEMPLATE = "User: {question}\nBot:"


@dataclass
class Example:
    """One training sequence: token ids with labels, and its media (None for text-only)."""

    ids: list
    labels: list
    media: Path | None = None  # the image / video, or None
    is_video: bool = False
    task: str = "text"


def prompt_ids(codec: TextCodec, question: str) -> list[int]:
    return [codec.bos] + codec.encode(PROMPT_TEMPLATE.format(question=question))


def chat_example(codec: TextCodec, question: str, response: str, **kw) -> Example:
    prompt = prompt_ids(codec, question)
    target = codec.encode(" " + response.strip()) + [codec.eos]
    return Example(prompt + target, [IGNORE] * len(prompt) + target, **kw)


def caption_example(codec: TextCodec, caption: str, media) -> Example:
    target = codec.encode(caption.strip()) + [codec.eos]
    return Example([codec.bos] + target, [IGNORE] + target, media=media, task="caption")


def subset(items: list, fraction: float, seed: int) -> list:
    """A seeded random `fraction` of `items` (quantity axis)."""
    if fraction >= 1.0:
        return list(items)
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.permutation(len(items))[: max(1, int(round(len(items) * fraction)))])
    return [items[i] for i in keep]


def noisy_captions(captions: list[Caption], seed: int, share: float = 0.5) -> list[Caption]:
    """Mismatches a random `share` of image-caption pairs (crawled-data noise)."""
    rng = np.random.default_rng(seed + 7)
    out = list(captions)
    chosen = rng.permutation(len(out))[: int(len(out) * share)]
    shuffled = rng.permutation(chosen)
    for i, j in zip(chosen, shuffled):
        out[i] = Caption(image=captions[i].image, caption=captions[j].caption)
    return out


_WORD = re.compile(r"[a-z]+")


def phrasing_key(question: str) -> str:
    """The phrasing of a question: its first three words, lower-cased (content words follow)."""
    return " ".join(_WORD.findall(question.lower())[:3])


def single_prompt(records: list[QARecord]) -> list[QARecord]:
    """Every record asked with its task's one fixed template.

    The generator writes `canonical_question` / `canonical_response` (the task's fixed template)
    next to the diverse phrasing; data without them keep, per task, only the records asked with
    the task's most common phrasing.
    """
    if all("canonical_question" in r.raw for r in records):
        return [dataclasses.replace(r, question=r.raw["canonical_question"],
                                    response=r.raw.get("canonical_response") or r.response) for r in records]
    by_task: collections.defaultdict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for r in records:
        by_task[r.cls][phrasing_key(r.question)] += 1
    top = {task: counts.most_common(1)[0][0] for task, counts in by_task.items()}
    return [r for r in records if phrasing_key(r.question) == top[r.cls]]


def qa_examples(codec: TextCodec, records: list[QARecord], recipe: RecipeConfig) -> list[Example]:
    if recipe.prompts is Prompts.SINGLE:
        records = single_prompt(records)
    if not recipe.video:
        records = [r for r in records if not r.is_video]
    return [chat_example(codec, r.question, r.response, media=r.media, is_video=r.is_video, task=r.cls)
            for r in records]


def alignment_examples(codec: TextCodec, captions: list[Caption], recipe: RecipeConfig) -> list[Example]:
    if recipe.alignment is CaptionQuality.NOISY:
        captions = noisy_captions(captions, recipe.seed)
    return [caption_example(codec, c.caption, c.image) for c in captions]


class Sampler:
    """Draws training batches from pools (image QA, video QA, text) by the recipe's sampling.

    size_balanced: every record equally likely, so tasks (and image vs video) weigh by size;
    uniform: every task equally likely, then a record of that task. A batch never mixes pools,
    because images (1 frame), videos (F frames) and text (no media) have different shapes.
    """

    def __init__(self, examples: list[Example], sampling: Sampling, text: list[Example], text_share: float, seed: int):
        self.rng = np.random.default_rng(seed)
        self.pools = {"image": [e for e in examples if e.media is not None and not e.is_video],
                      "video": [e for e in examples if e.is_video]}
        self.pools = {k: v for k, v in self.pools.items() if v}
        self.sampling = sampling
        self.by_task = {k: self._group(v) for k, v in self.pools.items()}
        if sampling is Sampling.UNIFORM:
            weights = {k: float(len(self.by_task[k])) for k in self.pools}
        else:
            weights = {k: float(len(v)) for k, v in self.pools.items()}
        total = sum(weights.values())
        self.pool_p = {k: w / total * (1.0 - (text_share if text else 0.0)) for k, w in weights.items()}
        if text:
            self.pools["text"] = text
            self.by_task["text"] = {"text": text}
            self.pool_p["text"] = text_share if self.pool_p else 1.0

    @staticmethod
    def _group(examples):
        groups = collections.defaultdict(list)
        for e in examples:
            groups[e.task].append(e)
        return dict(groups)

    def batch(self, size: int) -> tuple[str, list[Example]]:
        names = list(self.pool_p)
        p = np.array([self.pool_p[n] for n in names])
        pool = names[self.rng.choice(len(names), p=p / p.sum())]
        if self.sampling is Sampling.UNIFORM and pool != "text":
            tasks = list(self.by_task[pool])
            picks = self.rng.integers(len(tasks), size=size)
            out = []
            for t in picks:
                group = self.by_task[pool][tasks[t]]
                out.append(group[self.rng.integers(len(group))])
            return pool, out
        items = self.pools[pool]
        return pool, [items[i] for i in self.rng.integers(len(items), size=size)]


def collate(examples: list[Example], pad: int):
    """Right-padded (B, T) input_ids, attention_mask, labels."""
    t = max(len(e.ids) for e in examples)
    ids = torch.full((len(examples), t), pad, dtype=torch.long)
    mask = torch.zeros((len(examples), t), dtype=torch.long)
    labels = torch.full((len(examples), t), IGNORE, dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e.ids)
        ids[i, :n] = torch.tensor(e.ids)
        mask[i, :n] = 1
        labels[i, :n] = torch.tensor(e.labels)
    return ids, mask, labels
