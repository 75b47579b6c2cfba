"""Recall probe (issue 13, gate 1): can the zoo's decoder learn in-context associative recall at all?

The caption probe fails on exactly the questions that need an attribute bound to its object in the
context. This probe strips the question to its core: a sequence of key-value pairs and then one of
the keys, `<bos> k1 v1 k2 v2 k3 v3 k4 v4 <sep> k3` -> `v3`, 16 keys and 16 values as their own
tokens, loss on the answer only. A textbook transformer (torch.nn.TransformerEncoder, learned
positions, its own output layer) learns it in a few hundred steps; a model that only learns which
values are present stays at the 25% that guessing among the four gives.

Each configuration of the zoo's `Decoder` (models/decoder.py) is trained from the same seed:

    PYTHONPATH=export .venv/bin/python export/probes/recall_probe.py --family llama --embedding tied-unscaled
    PYTHONPATH=export .venv/bin/python export/probes/recall_probe.py --reference

`--embedding`: `tied-unscaled` is the backbone as it was (0.02-std rows, tied LM head);
`tied-scaled` and `untied-scaled` scale the rows by sqrt(hidden) (`DecoderConfig.scaled_embedding`)
and `untied-*` gives the LM head its own matrix (`tie_word_embeddings: false`).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lynx_export.config import DecoderConfig, Family
from lynx_export.models.decoder import Decoder

KEYS, VALUES = 16, 16
BOS, SEP = KEYS + VALUES, KEYS + VALUES + 1
VOCAB = KEYS + VALUES + 2
EMBEDDINGS = {"tied-unscaled": (True, False), "tied-scaled": (True, True),
              "untied-unscaled": (False, False), "untied-scaled": (False, True)}


def recall_batch(rng: np.random.Generator, b: int, pairs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 2 * pairs + 3) token ids and (B,) the value each sequence asks for."""
    keys = np.stack([rng.permutation(KEYS)[:pairs] for _ in range(b)])
    values = rng.integers(KEYS, KEYS + VALUES, size=(b, pairs))
    asked = rng.integers(pairs, size=b)
    rows = np.arange(b)
    seq = np.concatenate([np.full((b, 1), BOS), np.stack([keys, values], -1).reshape(b, -1), np.full((b, 1), SEP),
                          keys[rows, asked][:, None]], 1)
    return torch.tensor(seq), torch.tensor(values[rows, asked])


class Reference(nn.Module):
    """A textbook pre-norm causal transformer: learned positions, its own output layer."""

    def __init__(self, hidden: int, layers: int, heads: int, length: int):
        super().__init__()
        self.tokens = nn.Embedding(VOCAB, hidden)
        self.positions = nn.Embedding(length, hidden)
        layer = nn.TransformerEncoderLayer(hidden, heads, 2 * hidden, 0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = nn.Linear(hidden, VOCAB)

    def forward(self, x):
        h = self.tokens(x) + self.positions(torch.arange(x.shape[1]))
        mask = nn.Transformer.generate_square_subsequent_mask(x.shape[1])
        return self.out(self.blocks(h, mask=mask, is_causal=True))


class ZooDecoder(nn.Module):
    """The zoo's decoder, called as the training loop calls it."""

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.decoder = Decoder(cfg)

    def forward(self, x):
        ones = torch.ones_like(x)
        logits, _ = self.decoder(self.decoder.embed(x), ones, torch.arange(x.shape[1]).expand_as(x))
        return logits


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--family", choices=[f.value for f in Family], default="llama")
    p.add_argument("--embedding", choices=list(EMBEDDINGS), default="untied-scaled")
    p.add_argument("--reference", action="store_true", help="train the textbook transformer instead")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--pairs", type=int, default=4)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.reference:
        model: nn.Module = Reference(args.hidden, args.layers, args.heads, 2 * args.pairs + 3)
        name = "reference"
    else:
        tied, scaled = EMBEDDINGS[args.embedding]
        cfg = DecoderConfig(Family(args.family), vocab_size=VOCAB, hidden=args.hidden, layers=args.layers,
                            heads=args.heads, ffn=2 * args.hidden, scaled_embedding=scaled,
                            tie_word_embeddings=tied)
        model = ZooDecoder(cfg)
        name = f"{args.family} {args.embedding}"
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    rng = np.random.default_rng(args.seed)
    held_out = recall_batch(np.random.default_rng([args.seed, 1]), 1024, args.pairs)
    start = time.time()
    for step in range(args.steps):
        x, y = recall_batch(rng, args.batch, args.pairs)
        loss = F.cross_entropy(model(x)[:, -1], y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            with torch.no_grad():
                x, y = held_out
                accuracy = float((model(x)[:, -1].argmax(-1) == y).float().mean())
            print(json.dumps({"model": name, "step": step + 1, "loss": round(float(loss.detach()), 3),
                              "recall": round(accuracy, 3), "seconds": round(time.time() - start)}), flush=True)


if __name__ == "__main__":
    main()
