"""A tiny data set in the generator's format (docs/contract.md section 1), for tests only.

It lets the exporter's tests run without the Rust generator: coloured squares on a grey canvas,
a few question classes, 8-frame videos of a moving square, captions, a corpus and instructions.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np

COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 70, 220), "yellow": (230, 210, 40)}


def write_png(path: Path, img: np.ndarray):
    h, w, _ = img.shape
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    path.write_bytes(png)


def _canvas():
    return np.full((128, 128, 3), 128, dtype=np.uint8)


def make_split(out: Path, n: int, seed: int, split: str = "train"):
    rng = np.random.default_rng(seed)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    names = list(COLOURS)
    ann, caps = [], []
    for i in range(n):
        colour = names[rng.integers(len(names))]
        if i % 4 == 3:  # video: a square moving left or right
            right = bool(rng.integers(2))
            d = out / "videos" / f"{i:06d}"
            d.mkdir(exist_ok=True)
            for f in range(8):
                img = _canvas()
                x = 10 + f * 12 if right else 100 - f * 12
                img[50:70, x:x + 20] = COLOURS[colour]
                write_png(d / f"frame_{f:02d}.png", img)
            ans = "right" if right else "left"
            ann.append({"dataset": "lynx-synth", "question": "Which way does the square move?", "answer": [ans],
                        "index": i, "video": f"videos/{i:06d}", "class": "motion", "response": f"It moves {ans}.",
                        "instruction": None, "phrasing": "seen", "modality": "video"})
            continue
        img = _canvas()
        count = int(rng.integers(1, 4))
        for k in range(count):
            img[10 + 35 * k:30 + 35 * k, 20:40] = COLOURS[colour]
        path = f"images/{i:06d}.png"
        write_png(out / path, img)
        caps.append({"image": path, "caption": f"{count} small {colour} squares on a grey background"})
        if i % 2:
            q, a, cls = "What color are the squares?", colour, "color"
        else:
            q, a, cls = "How many squares are there?", str(count), "counting"
        ann.append({"dataset": "lynx-synth", "question": q, "answer": [a], "index": i, "image": path,
                    "class": cls, "response": f"The answer is {a}.", "instruction": None, "phrasing": "seen",
                    "modality": "image"})
    (out / "annotations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ann))
    (out / "captions.jsonl").write_text("".join(json.dumps(c) + "\n" for c in caps))
    (out / "meta.json").write_text(json.dumps({"generator": "fake", "split": split, "n": n, "seed": seed}))


def make_text(out: Path, n: int, seed: int):
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    words = ["the", "red", "green", "blue", "yellow", "square", "circle", "moves", "left", "right", "big", "small",
             "there", "are", "two", "three", "one", "on", "a", "grey", "background", "color", "is", "of"]
    corpus = [" ".join(words[j] for j in rng.integers(len(words), size=12)) + "." for _ in range(n)]
    (out / "corpus.txt").write_text("\n".join(corpus) + "\n")
    instr = []
    for i in range(n):
        c = list(COLOURS)[i % 4]
        instr.append({"instruction": f"What color is a {c} square?", "response": f"It is {c}."})
    (out / "text_instructions.jsonl").write_text("".join(json.dumps(x) + "\n" for x in instr))


def make_all(root: Path, n_train: int = 120, n_val: int = 16, n_text: int = 200, seed: int = 0) -> Path:
    make_split(root / "train", n_train, seed, "train")
    make_split(root / "val", n_val, seed + 1, "val")
    make_text(root / "text", n_text, seed)
    return root
