"""Loading the benchmark data of docs/contract.md section 1.

`lynx-zoo data generate` writes a split folder (annotations.jsonl, captions.jsonl, images/,
videos/, meta.json); `lynx-zoo data text` writes corpus.txt and text_instructions.jsonl. Loaders
keep unknown keys and name the file and line of any malformed record.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path


class DataError(ValueError):
    """Malformed or missing benchmark data."""


IMAGE_CLASSES = ("object", "color", "size", "counting", "spatial", "ocr", "compare", "more")
VIDEO_CLASSES = ("motion", "order", "count_time")


@dataclass
class QARecord:
    """One Open-VQA record with its media resolved to an absolute path."""

    question: str
    response: str
    answers: list[str]
    cls: str
    media: Path  # image file, video folder or GIF
    is_video: bool
    raw: dict = field(repr=False)


@dataclass
class Caption:
    image: Path
    caption: str


def read_jsonl(path: Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    out = []
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{line_no}: bad JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{line_no}: expected a JSON object")
            out.append((line_no, obj))
    return out


def _require(obj: dict, key: str, where: str):
    if key not in obj:
        raise DataError(f"{where}: missing key `{key}`")
    return obj[key]


def load_annotations(split_dir: Path) -> list[QARecord]:
    path = Path(split_dir) / "annotations.jsonl"
    records = []
    for line_no, obj in read_jsonl(path):
        where = f"{path}:{line_no}"
        question = _require(obj, "question", where)
        answers = _require(obj, "answer", where)
        if "image" in obj and obj["image"] is not None:
            media, is_video = obj["image"], False
        elif "video" in obj and obj["video"] is not None:
            media, is_video = obj["video"], True
        else:
            raise DataError(f"{where}: missing key `image` or `video`")
        response = obj.get("response") or (answers[0] if answers else "")
        records.append(QARecord(question=question, response=response, answers=list(answers),
                                cls=obj.get("class") or "unknown", media=(path.parent / media).resolve(),
                                is_video=is_video, raw=obj))
    return records


def load_captions(split_dir: Path) -> list[Caption]:
    path = Path(split_dir) / "captions.jsonl"
    out = []
    for line_no, obj in read_jsonl(path):
        where = f"{path}:{line_no}"
        out.append(Caption(image=(path.parent / _require(obj, "image", where)).resolve(),
                           caption=_require(obj, "caption", where)))
    return out


def load_corpus(text_dir: Path) -> list[str]:
    path = Path(text_dir) / "corpus.txt"
    if not path.exists():
        raise DataError(f"{path}: no such file")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_text_instructions(text_dir: Path) -> list[tuple[str, str]]:
    path = Path(text_dir) / "text_instructions.jsonl"
    out = []
    for line_no, obj in read_jsonl(path):
        where = f"{path}:{line_no}"
        out.append((_require(obj, "instruction", where), _require(obj, "response", where)))
    return out


@dataclass
class DataPaths:
    """Where one build's data live: a train split, a val split and the text data."""

    root: Path

    @property
    def train(self) -> Path:
        return self.root / "train"

    @property
    def val(self) -> Path:
        return self.root / "val"

    @property
    def text(self) -> Path:
        return self.root / "text"

    def signature(self) -> str:
        """Identifies the generated data (generator meta of each split) for cache keys."""
        parts = []
        for d in (self.train, self.val):
            meta = d / "meta.json"
            parts.append(meta.read_text() if meta.exists() else str(d))
        corpus = self.text / "corpus.txt"
        parts.append(str(corpus.stat().st_size) if corpus.exists() else "")
        return json.dumps(parts)


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def ensure_data(paths: DataPaths, n_train: int, n_val: int, n_text: int, seed: int, log=print) -> DataPaths:
    """Generates missing splits with the Rust generator (`lynx-zoo data ...`)."""
    jobs = [
        (paths.train, ["data", "generate", "--split", "train", "--n", str(n_train), "--seed", str(seed)]),
        (paths.val, ["data", "generate", "--split", "val", "--n", str(n_val), "--seed", str(seed + 1)]),
        (paths.text, ["data", "text", "--n", str(n_text), "--seed", str(seed)]),
    ]
    missing = [(d, args) for d, args in jobs
               if not ((d / "annotations.jsonl").exists() or (d / "corpus.txt").exists())]
    if not missing:
        return paths
    root = repo_root()
    binary = root / "target" / "release" / "lynx-zoo"
    if shutil.which("cargo") is None and not binary.exists():
        raise DataError(f"no data in `{paths.root}` and no generator: build it with `cargo build --release`")
    for out, args in missing:
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        # A built release binary is used as is (set LYNX_ZOO_BIN to choose another); otherwise cargo builds it.
        exe = os.environ.get("LYNX_ZOO_BIN") or (str(binary) if binary.exists() else None)
        cmd = ([exe] if exe else ["cargo", "run", "--quiet", "--release", "--"]) + args + ["--out", str(tmp)]
        log(f"generating {out}: {' '.join(cmd)}")
        done = subprocess.run(cmd, cwd=root, stdout=subprocess.DEVNULL)
        if done.returncode != 0:
            raise DataError(f"data generator failed (exit {done.returncode}): {' '.join(cmd)}")
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    return paths
