"""Backbone probe: trains a small LLaMA-style backbone with other step counts or text data than the
zoo's, and saves it for `text_probe.py --checkpoint` and `recipe_probe.py --chat`.

    # chat tuning only, 2400 steps from the zoo's cached base, on 64k generated texts
    ./target/release/lynx-zoo data text --n 64000 --seed 1 --out /tmp/text64
    PYTHONPATH=export .venv/bin/python export/probes/backbone_probe.py --chat-steps 2400 --text /tmp/text64 \\
        --out /tmp/chat64.pt
    # base pretraining too (4500 steps), then 600 chat steps
    PYTHONPATH=export .venv/bin/python export/probes/backbone_probe.py --lm-steps 4500 --out /tmp/lm4500.pt

Without `--lm-steps` the base comes from the build cache. Without `--text` the build's text data are
used. Needs a finished `build` (tokenizer in export/work/cache/zoo).
"""

import argparse
import time
from pathlib import Path

import torch

from lynx_export.components import Components
from lynx_export.config import BackboneRef, Family, Flavour
from lynx_export.data import load_corpus, load_text_instructions, repo_root
from lynx_export.profiles import PROFILES
from lynx_export.train import pretrain_lm, tune_chat


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lm-steps", type=int, help="pretrain the base this long (default: the cached base)")
    p.add_argument("--chat-steps", type=int, default=600)
    p.add_argument("--text", type=Path, help="a `lynx-zoo data text` folder (default: the build's)")
    p.add_argument("--out", type=Path, required=True, help="where the chat checkpoint goes (base: OUT.base)")
    args = p.parse_args()
    torch.set_num_threads(1)
    root = repo_root()
    profile = PROFILES["zoo"]
    b = Components(profile, root / "export/work/data", root / "export/work", log=lambda m: None)
    codec = b.codec()
    corpus, instructions = b.data().corpus, b.data().instructions
    if args.text:
        corpus, instructions = load_corpus(args.text), load_text_instructions(args.text)
    ref = BackboneRef(Family.LLAMA, Flavour.BASE, "small")
    cfg = b.decoder_cfg(ref)
    t = time.time()
    if args.lm_steps:
        base, stats = pretrain_lm(cfg, codec, corpus, args.lm_steps, 16, 128, seed=0)
        torch.save((base, stats), args.out.with_name(args.out.name + ".base"))
    else:
        base = b.backbone_state(ref)
    state, stats = tune_chat(cfg, base, codec, instructions, corpus, args.chat_steps, 32, seed=0)
    torch.save((state, stats), args.out)
    print(f"saved {args.out} after {time.time() - t:.0f}s: {stats}")


if __name__ == "__main__":
    main()
