"""Vision probe: which attributes can a linear read-out find in a frozen encoder's patch features?

For 3000 training images (2400 to fit, 600 held out) a linear layer scores every patch and the
scores are pooled over the picture -- mean-pooled (exactly the form of the ViT's own caption-word
head) or max-pooled ("somewhere in the picture", fairer to small objects) -- to predict which
colours and which shapes the picture holds (multi-label, from its caption). Per-label accuracy is
compared with the majority baseline (always "absent" or always "present", whichever is more often
right).

    PYTHONPATH=export .venv/bin/python export/probes/vision_probe.py                  # the zoo's ViT
    PYTHONPATH=export .venv/bin/python export/probes/vision_probe.py --encoder cnn    # reference's ConvEncoder
    PYTHONPATH=export .venv/bin/python export/probes/vision_probe.py --encoder shapes-cnn
        # control: the same ConvEncoder trained from scratch on shape presence alone (1500 steps)

Needs the build cache (export/work/cache/zoo); a missing encoder is trained first.
"""

import argparse
import re

import numpy as np
import torch
import torch.nn.functional as F

from lynx_export.components import Components
from lynx_export.data import repo_root
from lynx_export.features import extract
from lynx_export.profiles import PROFILES
from lynx_export.media import preprocess, read_image
from lynx_export.reference import ConvEncoder, frozen_encoder

COLOURS = "red green blue yellow purple orange white".split()
SHAPES = "circle square triangle diamond hexagon".split()


def probe(x: torch.Tensor, y: torch.Tensor, fit: int, pool: str, seed: int = 0) -> tuple[float, float, float]:
    """(per-label accuracy, whole-picture exact match, majority baseline) on the held-out rows."""
    torch.manual_seed(seed)
    lin = torch.nn.Linear(x.shape[-1], y.shape[1])
    opt = torch.optim.Adam(lin.parameters(), 1e-2)

    def score(rows):
        z = lin(rows)  # (N, P, labels)
        return z.mean(1) if pool == "mean" else z.amax(1)

    for _ in range(300):
        idx = torch.randint(0, fit, (256,))
        loss = F.binary_cross_entropy_with_logits(score(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        hit = (score(x[fit:]) > 0) == (y[fit:] > 0)
    share = y[fit:].mean(0)
    majority = torch.maximum(share, 1 - share).mean()
    return float(hit.float().mean()), float(hit.all(1).float().mean()), float(majority)


def features_of(enc, caps, resolution: int = 128) -> torch.Tensor:
    """(N, P, D) frozen features of the captioned pictures."""
    store = extract(enc, [c.image for c in caps], [], resolution, [1], log=lambda m: None)
    return torch.tensor(np.stack([store.final[store.rows[str(c.image)][0]].astype(np.float32) for c in caps]))


def labels(caps, names: list[str]) -> torch.Tensor:
    """(N, len(names)): which of `names` each picture's caption mentions."""
    return torch.tensor([[w in re.findall("[a-z]+", c.caption) for w in names] for c in caps], dtype=torch.float32)


def shapes_cnn(caps, steps: int = 1500, seed: int = 0) -> ConvEncoder:
    """A ConvEncoder trained on nothing but which shapes a picture holds (max-pooled linear head)."""
    torch.manual_seed(seed)
    enc, head = ConvEncoder(128), torch.nn.Linear(128, len(SHAPES))
    x = preprocess([read_image(c.image) for c in caps], 128)
    y = labels(caps, SHAPES)
    opt = torch.optim.AdamW(list(enc.parameters()) + list(head.parameters()), 2e-3)
    for step in range(steps):
        idx = torch.randint(0, len(caps), (64,))
        loss = F.binary_cross_entropy_with_logits(head(enc(x[idx])).amax(1), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 500 == 0:
            print(f"  shapes-cnn step {step + 1}/{steps} loss {loss.item():.3f}", flush=True)
    return enc.eval()


def zoo_build(threads: int, log=print) -> Components:
    """The zoo profile's components over export/work (data prepared), torch on `threads` threads, seed 0."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    root = repo_root()
    b = Components(PROFILES["zoo"], root / "export/work/data", root / "export/work", log=log)
    b.data()
    return b


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoder", choices=["vit", "cnn", "shapes-cnn"], default="vit")
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--n", type=int, default=3000)
    args = p.parse_args()
    b = zoo_build(2)
    caps = b.data().captions[: args.n]
    fit = int(len(caps) * 0.8)
    enc = shapes_cnn(caps[:fit]) if args.encoder == "shapes-cnn" else frozen_encoder(b, args.encoder, print)[0]
    x = features_of(enc, caps, args.resolution)
    for name, names in (("colour", COLOURS), ("shape", SHAPES)):
        y = labels(caps, names)
        for pool in ("mean", "max"):
            acc, exact, majority = probe(x, y, fit, pool)
            print(f"VISION-PROBE {args.encoder} {args.resolution}px {name} present, {pool}-pooled: per-label "
                  f"{100 * acc:.1f}% (majority {100 * majority:.1f}%), every label of a picture right {100 * exact:.1f}%")


if __name__ == "__main__":
    main()
