"""Binding probe (issue 13, first gate): how large a causal backbone, trained how long, answers the
benchmark's image questions when the picture is given as its caption in words?

Trains a decoder from scratch on scene instructions ("Picture: {caption}. {question}" -> response,
from `lynx-zoo data text`, drawn without repeating until the pool is used up), loss on the
response only, in the chat template; every `--eval-every` steps answers the image items of a val
split with greedy decoding from "Picture: {caption}. {question}" and scores them with the
benchmark's scorer (`lynx-zoo data score`; video items get an empty answer and are left out of
the figures). Gate 1 of issue 13 asks >= 90% overall and >= 80% per class but OCR.

    lynx-zoo data generate --split val --n 600 --seed 2 --out data/val-2
    lynx-zoo data text --n 400000 --seed 11 --out /tmp/binding-text
    PYTHONPATH=export .venv/bin/python export/probes/binding_probe.py --text /tmp/binding-text \\
        --val data/val-2 --layers 4 --hidden 128 --steps 20000 --log /tmp/binding-4x128.jsonl

Or continue a foundation build's chat backbone on the scene instructions alone (the "more
instruction steps" lever), in the foundation's own tokenizer:

    PYTHONPATH=export .venv/bin/python export/probes/binding_probe.py --from-chat llama-small \
        --text export/work/foundation/text --val export/work/foundation/probe-val --steps 4000 --lr 5e-4 \
        --eval-every 1000 --log /tmp/binding-continue.jsonl

From scratch, it uses the shipped tokenizer (onnx/tokenizer.json) and the exporter's LLaMA-style decoder.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lynx_export.config import DecoderConfig, Family
from lynx_export.data import repo_root
from lynx_export.models.decoder import Decoder
from lynx_export.train import lr_scale
from lynx_export.recipes import chat_example, collate
from lynx_export.tokenizer import TextCodec
from lynx_export.foundation import greedy_answer
from lynx_export.models.lynx import IGNORE


def scene_pool(text_dir: Path) -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in (text_dir / "text_instructions.jsonl").open()]
    return [(r["instruction"], r["response"]) for r in rows if r["instruction"].startswith("Picture: ")]


def evaluate(model: Decoder, codec: TextCodec, val: Path, bin_path: Path, work: Path) -> dict:
    model.eval()
    rows = [json.loads(line) for line in (val / "captions.jsonl").open()]
    captions = {r["image"]: r["caption"] for r in rows}
    lines = []
    image: list[str] = []  # the image classes, in the order the data gives them
    for line in (val / "annotations.jsonl").open():
        r = json.loads(line)
        pred = ""
        if "image" in r:
            pred = greedy_answer(model, codec, f"Picture: {captions[r['image']]}. {r['question']}")
            if r["class"] not in image:
                image.append(r["class"])
        lines.append(json.dumps({"id": f"{r['dataset']}/{r['index']}", "prediction": pred}))
    model.train()
    preds = work / "predictions.jsonl"
    preds.write_text("\n".join(lines) + "\n")
    out = subprocess.run([str(bin_path), "data", "score", "--bench", str(val / "annotations.jsonl"), str(preds),
                          "--format", "json", "--table", "per-class"], capture_output=True, text=True, check=True)
    row = json.loads(out.stdout)[0]
    per = {c: row[f"{c}_pct"] for c in image}
    overall = float(np.mean([per[c] for c in image]))  # classes are balanced in a generated split
    return {"image_pct": round(overall, 1), "per_class": {c: round(v, 1) for c, v in per.items()}}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--text", type=Path, required=True, help="a `lynx-zoo data text` folder (the training pool)")
    p.add_argument("--val", type=Path, required=True, help="a generated val split (annotations + captions)")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--ffn", type=int, default=0, help="MLP width (default 2 x hidden)")
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--eval-every", type=int, default=2500)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log", type=Path, required=True, help="JSON lines: one per evaluation")
    p.add_argument("--from-chat", metavar="BACKBONE", help="start from this backbone's chat stage of the foundation "
                   "build in --foundation-work (its tokenizer, config and weights) instead of from scratch")
    p.add_argument("--foundation-work", type=Path, default=None, help="a foundation build's --work folder "
                   "(default export/work/foundation)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    root = repo_root()
    if args.from_chat:
        from lynx_export.foundation import PLANS, Foundation
        build = Foundation(PLANS["foundation"], args.foundation_work or root / "export" / "work" / "foundation",
                           Path("/nonexistent"))
        codec = build.codec()
        cfg = build.plan.decoder(args.from_chat, codec.vocab_size)
        model = Decoder(cfg)
        model.load_state_dict(build.weights(f"{args.from_chat}-chat", build.chat_key(args.from_chat)))
        args.layers, args.hidden, args.heads = cfg.layers, cfg.hidden, cfg.heads
    else:
        codec = TextCodec.load(root / "onnx" / "tokenizer.json")
        cfg = DecoderConfig(Family.LLAMA, vocab_size=codec.vocab_size, hidden=args.hidden, layers=args.layers,
                            heads=args.heads, ffn=args.ffn or 2 * args.hidden, max_positions=256)
        model = Decoder(cfg)
    pool = scene_pool(args.text)
    order = np.random.default_rng(args.seed).permutation(len(pool))
    work = args.log.with_suffix(".work")
    work.mkdir(parents=True, exist_ok=True)
    bin_path = root / "target" / "release" / "lynx-zoo"
    params = sum(x.numel() for x in model.parameters())
    start = time.time()

    def log(msg):
        print(msg, flush=True)

    def loss_fn(step):
        picks = [pool[order[(step * args.batch + k) % len(pool)]] for k in range(args.batch)]
        ids, mask, labels = collate([chat_example(codec, q, a) for q, a in picks], codec.pad)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        logits, _ = model(model.embed(ids), mask, pos)
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                               ignore_index=IGNORE)

    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    warmup = min(500, args.steps // 10)
    recent: list[float] = []
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = args.lr * lr_scale(step, args.steps, warmup)
        loss = loss_fn(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        recent = (recent + [float(loss.detach())])[-100:]
        if (step + 1) % 500 == 0:
            log(f"  step {step + 1}/{args.steps} loss {np.mean(recent):.3f} ({time.time() - start:.0f}s)")
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            result = evaluate(model, codec, args.val, bin_path, work)
            record = {"from_chat": args.from_chat, "layers": args.layers, "hidden": args.hidden, "heads": args.heads, "params": params,
                      "lr": args.lr, "batch": args.batch, "step": step + 1, "examples_seen": (step + 1) * args.batch,
                      "pool": len(pool), "loss": round(float(np.mean(recent)), 4),
                      "seconds": round(time.time() - start), **result}
            log(json.dumps(record))
            with args.log.open("a") as f:
                f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
