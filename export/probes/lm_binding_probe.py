"""LM binding probe (issue 13, gate 1): does a causal backbone learn to bind attributes in its
context when its pretraining text is dense in such facts?

Trains a decoder from scratch (or continues a foundation build's base backbone) by next-token
prediction on the foundation corpus's picture passages alone ("Picture: {caption}. The red
object is a circle. ..."), one passage per row (never cut from its caption), and every
`--eval-every` steps measures on held-out passages how often the next token after "The {colour}
object is a" is the shape the caption gives that colour -- the binding the caption probe needs.
The foundation's base stage reads such passages as 40% of a corpus packed into random windows.
With `--from-base` the base backbone is measured first (step 0); its corpus held the measured
passages too, so that number is of passages it has read.

    PYTHONPATH=export .venv/bin/python export/probes/lm_binding_probe.py --steps 2000 \\
        --log /tmp/lm-binding.jsonl
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lynx_export.data import repo_root
from lynx_export.foundation import PLANS, Foundation
from lynx_export.models.decoder import Decoder
from lynx_export.train import lr_scale
from lynx_export.models.lynx import IGNORE
from lynx_export.recipes import Example, collate

COLOURS = "red|green|blue|yellow|purple|orange|white"
SHAPES = "circle|square|triangle|diamond|hexagon"
FACT = re.compile(rf"The ({COLOURS}) object is a ({SHAPES})\.")


def binding_accuracy(model: Decoder, codec, passages: list[str]) -> tuple[float, int]:
    model.eval()
    ok = n = 0
    with torch.no_grad():
        for p in passages:
            for m in FACT.finditer(p):
                ids = [codec.bos] + codec.encode(p[:m.start(2)].rstrip())
                x = torch.tensor([ids])
                logits, _ = model(model.embed(x), torch.ones_like(x), torch.arange(x.shape[1]).unsqueeze(0))
                ok += codec.decode([int(logits[0, -1].argmax())]).strip() == m.group(2)
                n += 1
    model.train()
    return ok / max(n, 1), n


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=None, help="a foundation build's --work folder "
                   "(default export/work/foundation): its tokenizer and corpus")
    p.add_argument("--backbone", default="llama-small", help="the plan's backbone whose config is trained")
    p.add_argument("--from-base", action="store_true", help="continue the build's base backbone")
    p.add_argument("--embedding", choices=["plan", "tied-unscaled", "tied-scaled", "untied-scaled"], default="plan",
                   help="the plan's backbone config (default), or with its token embedding and LM head set: "
                   "`tied-unscaled` is the backbone as before the embedding fix (0.02-std rows tied to the head)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--heldout", type=int, default=200, help="passages kept out of training for the measure")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log", type=Path, required=True, help="JSON lines: one per evaluation")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    build = Foundation(PLANS["foundation"], args.work or repo_root() / "export" / "work" / "foundation",
                       Path("/nonexistent"))
    codec = build.codec()
    cfg = build.plan.decoder(args.backbone, codec.vocab_size)
    if args.embedding != "plan":
        tied, scaled = args.embedding.startswith("tied"), args.embedding.endswith("-scaled")
        cfg = dataclasses.replace(cfg, scaled_embedding=scaled, tie_word_embeddings=tied)
    model = Decoder(cfg)
    if args.from_base:
        model.load_state_dict(build.weights(f"{args.backbone}-base", build.base_key(args.backbone)))
    scenes = [line for line in (build.text() / "corpus.txt").open() if line.startswith("Picture:")]
    heldout = [s for s in scenes[-args.heldout:] if FACT.search(s)]
    rows = [[codec.bos] + ids + [codec.eos] for ids in codec.encode_batch(scenes[:-args.heldout])]
    if args.from_base:  # the base backbone as built, before this probe trains it further
        acc, n = binding_accuracy(model, codec, heldout)
        print(json.dumps({"backbone": args.backbone, "from_base": True, "step": 0, "object_binding": round(acc, 3),
                          "facts": n}), flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    warmup, start = min(200, args.steps // 10), time.time()
    recent: list[float] = []
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = args.lr * lr_scale(step, args.steps, warmup)
        picks = np.random.default_rng([args.seed, step]).integers(len(rows), size=args.batch)
        ids, mask, labels = collate([Example(rows[i], rows[i]) for i in picks], codec.pad)
        logits, _ = model(model.embed(ids), mask, (mask.cumsum(-1) - 1).clamp(min=0))
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                               ignore_index=IGNORE)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        recent = (recent + [float(loss.detach())])[-100:]
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            acc, n = binding_accuracy(model, codec, heldout)
            record = {"backbone": args.backbone, "from_base": args.from_base,
                      "scaled_embedding": cfg.scaled_embedding, "tied": cfg.tie_word_embeddings, "step": step + 1,
                      "batch": args.batch, "lr": args.lr, "loss": round(float(np.mean(recent)), 4),
                      "object_binding": round(acc, 3), "facts": n, "seconds": round(time.time() - start)}
            print(json.dumps(record), flush=True)
            with args.log.open("a") as f:
                f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
