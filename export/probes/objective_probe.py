"""Objective probe: which part of the ViT's pretraining objective keeps shape out of the features?

Trains an encoder (the ViT with a patch or a conv stem, or the reference's ConvEncoder) from
scratch with a variant of the ViT objective (`train.pretrain_encoder`: caption words, mean-pooled,
plus region attribute pairs, max-pooled; by default alternating 128 px and 64 px, as the zoo did
until session 5), then runs vision_probe.py's shape read-out on 600 held-out pictures. The zoo's
ViT since session 5 is `--encoder vit-conv --only-128` (2000 steps).

    PYTHONPATH=export:export/probes .venv/bin/python export/probes/objective_probe.py --encoder cnn                     # as the old zoo
    PYTHONPATH=export:export/probes .venv/bin/python export/probes/objective_probe.py --encoder cnn --only-128           # no 64 px steps
    PYTHONPATH=export:export/probes .venv/bin/python export/probes/objective_probe.py --encoder cnn --heads pairs        # region pairs only
    PYTHONPATH=export:export/probes .venv/bin/python export/probes/objective_probe.py --encoder vit --only-128
    PYTHONPATH=export:export/probes .venv/bin/python export/probes/objective_probe.py --encoder vit-conv --only-128
    PYTHONPATH=export:export/probes .venv/bin/python export/probes/objective_probe.py --encoder cnn --only-128 --heads words-max

About 5-7 minutes each on one CPU thread (2000 steps).
"""

import argparse
import dataclasses

import numpy as np
import torch.nn.functional as F

from lynx_export.config import Stem
from lynx_export.media import preprocess, read_image
from lynx_export.models.vision import VisionEncoder
from lynx_export.reference import ConvEncoder
from lynx_export.train import AttributeHead, caption_targets, optimize
from vision_probe import SHAPES, features_of, labels, probe, zoo_build


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoder", choices=["vit", "vit-conv", "cnn"], default="cnn",
                   help="vit: the zoo's config; vit-conv: with a convolutional stem; cnn: the reference's")
    p.add_argument("--only-128", action="store_true", help="every step at 128 px (as the zoo since session 5; default: alternating 128 and 64)")
    p.add_argument("--heads", choices=["words+pairs", "pairs", "words", "words-max"], default="words+pairs")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    b = zoo_build(args.threads, log=lambda m: None)
    rng = np.random.default_rng(0)
    captions = b.data().captions
    words, pairs, targets, regions = caption_targets(captions)
    images = np.stack([read_image(c.image) for c in captions])
    vit = b.vision_cfg()
    enc = {"vit": lambda: VisionEncoder(dataclasses.replace(vit, stem=Stem.PATCH)),
           "vit-conv": lambda: VisionEncoder(dataclasses.replace(vit, stem=Stem.CONV)),
           "cnn": lambda: ConvEncoder(vit.width)}[args.encoder]()
    head = AttributeHead(b.vision_cfg().width, len(words), len(pairs))

    def loss_fn(step):
        idx = rng.integers(len(images), size=64)
        size = 128 if (step % 2 == 0 or args.only_128) else 64
        tokens = enc(preprocess(list(images[idx]), size))
        word_logits, region_logits = head(tokens)
        if args.heads == "words-max":
            word_logits = head.words(tokens).amax(1)
        words_loss = F.binary_cross_entropy_with_logits(word_logits, targets[idx])
        pairs_loss = F.binary_cross_entropy_with_logits(region_logits, regions[idx])
        return {"words+pairs": words_loss + pairs_loss, "pairs": pairs_loss}.get(args.heads, words_loss)

    params = list(enc.parameters()) + list(head.parameters())
    optimize([{"params": params, "lr": 1e-3}], args.steps, loss_fn, lambda m: None, "objective", 0.05)
    caps = captions[:3000]
    x, y = features_of(enc.eval(), caps), labels(caps, SHAPES)
    name = f"{args.encoder} {args.heads}{' 128px-only' if args.only_128 else ' 128/64px'} {args.steps} steps"
    for pool in ("mean", "max"):
        acc, exact, majority = probe(x, y, int(len(caps) * 0.8), pool)
        print(f"OBJECTIVE-PROBE {name}: shape present, {pool}-pooled: per-label {100 * acc:.1f}% "
              f"(majority {100 * majority:.1f}%), every label right {100 * exact:.1f}%")


if __name__ == "__main__":
    main()
