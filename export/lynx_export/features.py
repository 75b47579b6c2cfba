"""Vision features of every training image and video frame, computed once per ViT and resolution.

A frozen ViT gives the same features to every variant, so the build encodes each frame once and
trains connectors on cached features (BRIEF: frozen components produce identical features). The
cache holds the ViT output (`final`) and the output of all blocks but the last (`trunk`, for the
variant whose last block trains), in float16, one row per frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .media import blank_picture, preprocess, read_image, read_video, uniform_indices, video_frame_paths

from .models.vision import VisionEncoder

BLANK = "<blank>"  # the row key of the blank picture's features (vision_input: blank)
LAYOUT = 3  # part of a store's cache key: 2 added the blank picture's row, 3 stored `rows` without pickles


@dataclass
class FeatureStore:
    final: np.ndarray  # (N, P, D) float16
    trunk: np.ndarray  # (N, P, D) float16
    rows: dict  # media path (str) -> list of row ids (one per stored frame)
    video_frames: int  # frames per video in the data (n)
    stored: list  # which of the n frames are stored, in order

    def lookup(self, media: Path | None, frames: int, is_video: bool, blank: bool = False) -> list[int]:
        """Row ids of `frames` uniformly sampled frames (images: one row); `blank`: the blank
        picture's row in place of each."""
        if blank:
            return self.rows[BLANK] * (frames if is_video else 1)
        if media is None:
            raise ValueError("a sample without media has no features")
        rows = self.rows[str(media)]
        if not is_video:
            return rows
        pos = {f: i for i, f in enumerate(self.stored)}
        return [rows[pos[f]] for f in uniform_indices(self.video_frames, frames)]

    def gather(self, rows: list[list[int]], trunk: bool = False) -> torch.Tensor:
        """(B, F, P, D) float32 features for per-sample row lists of equal length."""
        src = self.trunk if trunk else self.final
        idx = np.asarray(rows)
        return torch.from_numpy(src[idx.reshape(-1)].astype(np.float32)).reshape(*idx.shape, *src.shape[1:])

    def save(self, path: Path):
        """Plain arrays only, so `load` needs no pickle: `rows` as its keys (unicode), each key's
        row count, and the row ids of all keys in one flat array."""
        np.savez(path, final=self.final, trunk=self.trunk,
                 keys=np.array(list(self.rows), dtype=np.str_),
                 counts=np.array([len(v) for v in self.rows.values()], dtype=np.int64),
                 row_ids=np.array([i for v in self.rows.values() for i in v], dtype=np.int64),
                 video_frames=self.video_frames, stored=np.array(self.stored, dtype=np.int64))

    @classmethod
    def load(cls, path: Path) -> "FeatureStore":
        z = np.load(path, allow_pickle=False)
        ends = np.cumsum(z["counts"])
        ids = [int(i) for i in z["row_ids"]]
        rows = {str(k): ids[end - n:end] for k, n, end in zip(z["keys"], z["counts"], ends)}
        return cls(z["final"], z["trunk"], rows, int(z["video_frames"]), [int(i) for i in z["stored"]])


@torch.no_grad()
def extract(vit: VisionEncoder, images: list[Path], videos: list[Path], resolution: int,
            frame_counts: list[int], chunk: int = 256, log=print) -> FeatureStore:
    """Encodes every image, the union of uniformly sampled frames of every video, and the blank
    picture (row key `BLANK`)."""
    vit.eval()
    n = len(video_frame_paths(videos[0])) if videos else 8
    stored = sorted({i for f in frame_counts for i in uniform_indices(n, f)})
    jobs: list[tuple[str, Path | None]] = [(BLANK, None)] + [(str(p), p) for p in images]
    for v in videos:
        files = video_frame_paths(v)
        if len(files) != n:
            raise ValueError(f"{v}: {len(files)} frames, expected {n} like the other videos")
        jobs += [(str(v), files[i]) for i in stored]
    p = (resolution // vit.cfg.patch) ** 2
    final = np.zeros((len(jobs), p, vit.cfg.width), dtype=np.float16)
    trunk = np.zeros_like(final)
    rows: dict[str, list[int]] = {}
    for start in range(0, len(jobs), chunk):
        part = jobs[start:start + chunk]
        pixels = preprocess([blank_picture(resolution) if f is None else read_image(f) for _, f in part], resolution)
        h = vit.trunk(pixels)
        trunk[start:start + len(part)] = h.numpy().astype(np.float16)
        final[start:start + len(part)] = vit.head(h).numpy().astype(np.float16)
        for i, (key, _) in enumerate(part):
            rows.setdefault(key, []).append(start + i)
        if (start // chunk) % 20 == 0:
            log(f"  features {resolution}px: {start + len(part)}/{len(jobs)} frames")
    return FeatureStore(final, trunk, rows, n, stored)


def load_pixels(media: Path, is_video: bool, frames: int, resolution: int, blank: bool = False) -> torch.Tensor:
    """(F, 3, R, R) pixels of one record, as the runtime feeds the vision graph (`blank`: the blank
    picture in place of each frame, as the runtime does for `vision_input: blank`)."""
    if blank:
        return preprocess([blank_picture(resolution)] * (frames if is_video else 1), resolution)
    if is_video:
        imgs = read_video(media, lambda n: uniform_indices(n, frames))
    else:
        imgs = [read_image(media)]
    return preprocess(imgs, resolution)
