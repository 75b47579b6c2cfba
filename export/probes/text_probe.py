"""Text probe: can a backbone answer the benchmark's image questions when the picture is given as
its caption in words? An upper bound for what a frozen backbone can do with perfect visual tokens.

Each val image item becomes the text prompt "Picture: {caption}. {question}" in the chat template;
greedy answers are scored with a contains-match (not the benchmark scorer, so the numbers compare
with each other and with recipe_probe.py, not with docs/results.md).

    PYTHONPATH=export .venv/bin/python export/probes/text_probe.py                 # llama-chat-small
    PYTHONPATH=export .venv/bin/python export/probes/text_probe.py --backbone llama-base-small
    PYTHONPATH=export .venv/bin/python export/probes/text_probe.py --checkpoint state.pt

Needs a finished `build` (tokenizer and backbones in export/work/cache/zoo) or `--checkpoint`, a
`torch.save((state_dict, stats))` of a decoder with the zoo's small llama config.
"""

import argparse
import re
from pathlib import Path

import numpy as np
import torch

from lynx_export.components import Components
from lynx_export.config import BackboneRef, ConnectorKind, Family, Flavour, replace
from lynx_export.data import load_captions, repo_root
from lynx_export.goldens import TorchGraphs, greedy
from lynx_export.models.lynx import LynxModel
from lynx_export.profiles import PROFILES
from lynx_export.recipes import prompt_ids
from lynx_export.registry import create_variant
from lynx_export.tokenizer import TextCodec


def normalise(s: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", s.lower()))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="llama-chat-small", help="FAMILY-FLAVOUR-SIZE from the build cache")
    p.add_argument("--checkpoint", type=Path, help="a saved (state_dict, stats) instead of the cache")
    p.add_argument("--tokenizer", type=Path, help="the tokenizer.json the checkpoint was trained with")
    p.add_argument("--n", type=int, default=400, help="val items read (videos are skipped)")
    args = p.parse_args()
    torch.set_num_threads(1)
    root = repo_root()
    b = Components(PROFILES["zoo"], root / "export/work/data", root / "export/work", log=lambda m: None)
    codec = TextCodec.load(args.tokenizer) if args.tokenizer else b.codec()
    family, flavour, size = args.backbone.split("-")
    ref = BackboneRef(Family(family), Flavour(flavour), size)
    v = replace(create_variant("lynx-blind"), backbone=ref)
    assert v.connector.kind is ConnectorKind.NONE
    model = LynxModel(v, b.vision_cfg(), b.decoder_cfg(ref))
    state = torch.load(args.checkpoint, weights_only=True)[0] if args.checkpoint else b.backbone_state(ref)
    model.load_pretrained(None, state)
    model.eval()
    graphs = TorchGraphs(model)
    captions = {str(c.image): c.caption for c in load_captions(b.paths.val)}
    cfg = model.decoder.cfg
    correct: dict[str, list[bool]] = {}
    for r in b.data().val[: args.n]:
        if r.is_video:
            continue
        question = f"Picture: {captions[str(r.media)]}. {r.question}"
        _, tokens = greedy(graphs, None, prompt_ids(codec, question), cfg.layers, cfg.heads, cfg.head_dim,
                           False, False, 16, codec.eos)
        pred = f" {normalise(codec.decode(tokens))} "
        correct.setdefault(r.cls, []).append(any(f" {normalise(a)} " in pred for a in r.answers))
    every = [x for xs in correct.values() for x in xs]
    print(f"TEXT-ACC {args.checkpoint or args.backbone}: {100 * np.mean(every):.1f} on {len(every)} items",
          {k: round(100 * float(np.mean(xs))) for k, xs in correct.items()})


if __name__ == "__main__":
    main()
