"""OCR probe: can the `ocr` class be read from 128 px pixels at all, and from the zoo's frozen ViT?

Trains a spelling read-out (the reference's four character slots, `reference.CHARS`) on the training
split's OCR items only, then scores exact words on the val and `data/test` OCR items:

- `--encoder cnn`: the reference's ConvEncoder trained end to end from pixels (is the text legible?)
- `--encoder vit`: the zoo's frozen ViT features (do they hold the letters?)

The read-out is one transformer layer over the 64 patch tokens (with learned positions) and four
slot queries. About 5 minutes on two CPU threads.

    PYTHONPATH=export:export/probes .venv/bin/python export/probes/ocr_probe.py --encoder cnn
    PYTHONPATH=export:export/probes .venv/bin/python export/probes/ocr_probe.py --encoder vit
"""

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lynx_export.data import load_annotations, repo_root
from lynx_export.media import preprocess, read_image
from lynx_export.models.vision import VisionEncoder
from lynx_export.reference import CHARS, SLOTS, ConvEncoder, canonical, char_ids, spelled
from lynx_export.train import optimize
from vision_probe import zoo_build


class Speller(nn.Module):
    """Patch tokens (B, P, W) -> character logits (B, SLOTS, len(CHARS))."""

    def __init__(self, width: int, patches: int):
        super().__init__()
        self.pos = nn.Parameter(torch.randn(1, patches, width) * 0.02)
        self.mix = nn.TransformerEncoderLayer(width, 4, 2 * width, dropout=0.0, batch_first=True)
        self.slots = nn.Parameter(torch.randn(1, SLOTS, width) * 0.02)
        self.read = nn.MultiheadAttention(width, 4, batch_first=True)
        self.chars = nn.Linear(width, len(CHARS))

    def forward(self, tokens):
        x = self.mix(tokens + self.pos)
        q = self.slots.expand(len(x), -1, -1)
        return self.chars(self.read(q, x, x)[0])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoder", choices=["cnn", "vit"], default="cnn")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    b = zoo_build(args.threads, log=lambda m: None)
    rng = np.random.default_rng(0)
    train = [r for r in b.data().records if r.cls == "ocr"]
    width = b.vision_cfg().width
    enc: nn.Module
    if args.encoder == "vit":
        enc = VisionEncoder(b.vision_cfg())
        enc.load_state_dict(b.vit_state())
        enc.eval().requires_grad_(False)
    else:
        enc = ConvEncoder(width)
    head = Speller(width, 64)
    pixels = preprocess([read_image(r.media) for r in train], 128)
    y = torch.tensor([char_ids(canonical(r)) for r in train])

    def loss_fn(step):
        idx = torch.from_numpy(rng.integers(len(train), size=64))
        logits = head(enc(pixels[idx]))
        return F.cross_entropy(logits.reshape(-1, len(CHARS)), y[idx].reshape(-1))

    params = list(head.parameters()) + ([] if args.encoder == "vit" else list(enc.parameters()))
    optimize([{"params": params, "lr": 1e-3}], args.steps, loss_fn, lambda m: None, "ocr", 0.05)
    enc.eval()
    head.eval()
    seen = {canonical(r) for r in train}
    for name, split in (("val", b.paths.val), ("data/test", repo_root() / "data" / "test")):
        recs = [r for r in load_annotations(split) if r.cls == "ocr"]
        with torch.no_grad():
            words = [spelled(row) for row in head(enc(preprocess([read_image(r.media) for r in recs], 128)))]
        right = [w == canonical(r) for w, r in zip(words, recs)]
        new = [ok for ok, r in zip(right, recs) if canonical(r) not in seen]
        print(f"OCR-PROBE {args.encoder} {args.steps} steps, {name}: {100 * np.mean(right):.1f}% of {len(recs)} "
              f"words exact ({sum(new)}/{len(new)} of the words never seen in training)")


if __name__ == "__main__":
    main()
