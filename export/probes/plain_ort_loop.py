"""The peer a user writes: a plain onnxruntime-python loop over a zoo variant's graphs.

Issue 16 holds lynx-zoo to "end to end >= 1.5x the plain onnxruntime-python loop over the unfused
graphs, identical answers". This is that loop, for a prefix variant (`lynx`) and image items:
Pillow + NumPy preprocessing (the pictures are already at the variant's size), `tokenizers`, the
vision, connector, embed and decoder graphs in onnxruntime with one intra-op thread each (or
`--threads`), greedy
decoding of at most 24 new tokens with the traced decoder's concatenated cache (the exporter's own
loop, `goldens.greedy`). It times every
item whole and writes each answer, so that lynx-zoo's `eval` answers on the same items can be
compared (docs/performance.md, "The zoo's decoders as GroupQueryAttention").

    git worktree add /tmp/former 0891315            # the zoo with the traced decoders
    PYTHONPATH=export .venv/bin/python export/probes/plain_ort_loop.py --zoo /tmp/former \\
        --bench /tmp/img/annotations.jsonl --limit 128 --out /tmp/plain.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import yaml
from PIL import Image
from tokenizers import Tokenizer

from lynx_export.goldens import OrtGraphs, greedy


def session(path: Path, threads: int = 1) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


class PlainLoop:
    def __init__(self, zoo: Path, variant: str, threads: int = 1):
        m = yaml.safe_load((zoo / "variants" / f"{variant}.yaml").read_text())
        if m["model"].get("kv_cache", {}).get("update", "concat") != "concat":
            raise SystemExit(f"{variant}: this loop runs decoders with a concatenated cache (a zoo before export revision 5)")
        self.graphs = OrtGraphs({k: session(zoo / v["path"], threads) for k, v in m["graphs"].items()})
        self.tok = Tokenizer.from_file(str(zoo / m["tokenizer"]["path"]))
        special = {k: self.tok.token_to_id(m["tokenizer"][k]) for k in ("bos", "eos")}
        missing = [m["tokenizer"][k] for k, i in special.items() if i is None]
        if missing:
            raise SystemExit(f"{variant}: the tokenizer has no {missing}")
        self.bos: int = special["bos"] or 0
        self.eos: int = special["eos"] or 0
        self.template = m["prompt"]["template"]
        p = m["preprocess"]
        self.size = p["size"]
        self.scale = np.float32(p["rescale"])
        self.mean = np.array(p["mean"], np.float32).reshape(3, 1, 1)
        self.std = np.array(p["std"], np.float32).reshape(3, 1, 1)
        self.layers, self.heads, self.head_dim = m["model"]["layers"], m["model"]["kv_heads"], m["model"]["head_dim"]

    def pixels(self, path: Path) -> np.ndarray:
        img = np.asarray(Image.open(path).convert("RGB"))
        if img.shape[:2] != (self.size, self.size):
            raise SystemExit(f"{path}: {img.shape[:2]}; this loop takes pictures at the variant's size")
        x = img.transpose(2, 0, 1).astype(np.float32) * self.scale
        return ((x - self.mean) / self.std)[None]  # (1, 3, S, S)

    def answer(self, image: Path, question: str, max_new: int = 24) -> str:
        # the exporter's own numpy greedy loop over ONNX Runtime sessions (goldens.py)
        ids = [self.bos] + self.tok.encode(self.template.replace("{question}", question), add_special_tokens=False).ids
        _, tokens = greedy(self.graphs, self.pixels(image)[None], ids, self.layers, self.heads, self.head_dim,
                           prefix=True, cross=False, max_new_tokens=max_new, eos=self.eos)
        return self.tok.decode(tokens, skip_special_tokens=True).strip()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--zoo", type=Path, required=True, help="a zoo whose decoders concatenate their cache")
    p.add_argument("--variant", default="lynx")
    p.add_argument("--bench", type=Path, required=True, help="annotations.jsonl of image items")
    p.add_argument("--limit", type=int, default=128)
    p.add_argument("--out", type=Path, required=True, help="one line per item: id, answer, ms")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads per session (default 1)")
    a = p.parse_args()
    loop = PlainLoop(a.zoo, a.variant, a.threads)
    root = a.bench.parent
    records = [json.loads(line) for line in a.bench.read_text().splitlines() if line.strip()][:a.limit]
    rows = []
    for r in records:
        t = time.perf_counter()
        text = loop.answer(root / r["image"], r["question"])
        rows.append({"id": r["index"], "answer": text, "ms": (time.perf_counter() - t) * 1e3})
    a.out.write_text("".join(json.dumps(x) + "\n" for x in rows))
    print(f"{len(rows)} items, {sum(x['ms'] for x in rows):.0f} ms in all")


if __name__ == "__main__":
    main()
