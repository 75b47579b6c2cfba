"""Reading images and videos and turning them into normalised pixel tensors.

Preprocessing follows CLIP as Lynx does: resize the shorter side to `size` (bicubic, antialiased,
as PIL), centre crop, round to 8-bit as an image library would, rescale by 1/255, normalise with
the CLIP mean and std. Videos are folders of frame images (sorted by name) or animated GIFs, with
F frames sampled uniformly: frame i of F comes from index floor((i + 0.5) * n / F).
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

try:  # Pillow decodes PNG in C; the fallback below keeps numpy-only machines working.
    from PIL import Image as _PIL

    HAS_PILLOW = True
except ImportError:  # pragma: no cover - exercised only where Pillow is absent
    HAS_PILLOW = False

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
RESCALE = 1.0 / 255.0


def uniform_indices(n: int, frames: int) -> list[int]:
    """Indices of `frames` frames sampled uniformly (segment centres) from `n`."""
    return [min(n - 1, math.floor((i + 0.5) * n / frames)) for i in range(frames)]


BLANK_RGB = (255, 255, 255)  # the blank picture: white, the benchmark pictures' background


def blank_picture(size: int) -> np.ndarray:
    """The one blank picture the matched blind control sees in place of every picture and frame
    (`vision_input: blank`; the runtime substitutes the same, docs/manifest.md)."""
    return np.full((size, size, 3), BLANK_RGB, dtype=np.uint8)


def read_image(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB from a PNG (or any format Pillow reads)."""
    if HAS_PILLOW:
        with _PIL.open(path) as im:
            return np.asarray(im.convert("RGB"))
    return _read_png(Path(path).read_bytes(), path)


def _read_png(data: bytes, path) -> np.ndarray:
    """Minimal PNG decoder: 8-bit greyscale/RGB/RGBA, non-interlaced."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG file")
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat.append(chunk)
        pos += 12 + length
    if header is None:
        raise ValueError(f"{path}: not a PNG file (no IHDR chunk)")
    w, h, depth, ctype, _, _, interlace = header
    channels = {0: 1, 2: 3, 6: 4, 4: 2}.get(ctype)
    if depth != 8 or channels is None or interlace:
        raise ValueError(f"{path}: unsupported PNG (depth {depth}, colour type {ctype}); install pillow")
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8).reshape(h, 1 + w * channels)
    out = np.zeros((h, w * channels), dtype=np.int32)
    prior = np.zeros(w * channels, dtype=np.int32)
    bpp = channels
    for y in range(h):
        kind, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        if kind == 0:
            row = line
        elif kind == 1:
            row = line.copy()
            for x in range(bpp, len(row)):
                row[x] = (row[x] + row[x - bpp]) & 255
        elif kind == 2:
            row = (line + prior) & 255
        elif kind == 3:
            row = line.copy()
            for x in range(len(row)):
                left = row[x - bpp] if x >= bpp else 0
                row[x] = (row[x] + ((left + prior[x]) >> 1)) & 255
        else:
            row = line.copy()
            for x in range(len(row)):
                a = row[x - bpp] if x >= bpp else 0
                b = prior[x]
                c = prior[x - bpp] if x >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if (pa <= pb and pa <= pc) else (b if pb <= pc else c)
                row[x] = (row[x] + pred) & 255
        out[y] = row
        prior = row
    img = out.reshape(h, w, channels).astype(np.uint8)
    if channels == 1:
        img = np.repeat(img, 3, axis=2)
    elif channels == 2:
        img = np.repeat(img[..., :1], 3, axis=2)
    return img[..., :3]


def video_frame_paths(path: Path) -> list[Path]:
    """Frame files of a video folder, sorted by name."""
    frames = sorted(p for p in Path(path).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not frames:
        raise ValueError(f"{path}: video folder holds no frames")
    return frames


def read_video(path: Path, indices_for) -> list[np.ndarray]:
    """Frames of a video folder or animated GIF; `indices_for(n)` picks which of n frames."""
    path = Path(path)
    if path.is_dir():
        files = video_frame_paths(path)
        return [read_image(files[i]) for i in indices_for(len(files))]
    if not HAS_PILLOW:
        raise ValueError(f"{path}: reading GIF videos needs pillow")
    with _PIL.open(path) as im:
        n = getattr(im, "n_frames", 1)
        out = []
        for i in indices_for(n):
            im.seek(i)
            out.append(np.asarray(im.convert("RGB")))
        return out


def preprocess(images: list[np.ndarray], size: int) -> torch.Tensor:
    """uint8 (H, W, 3) images -> (N, 3, size, size) float32, CLIP-normalised."""
    out = []
    i = 0
    while i < len(images):  # batch runs of equally sized images through one resize
        j = i
        while j < len(images) and images[j].shape == images[i].shape:
            j += 1
        x = torch.from_numpy(np.ascontiguousarray(np.stack(images[i:j]))).permute(0, 3, 1, 2).float()  # (N, 3, H, W)
        h, w = x.shape[-2:]
        if (h, w) != (size, size):
            scale = size / min(h, w)
            nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
            x = F.interpolate(x, size=(nh, nw), mode="bicubic", antialias=True, align_corners=False)
            top, left = (nh - size) // 2, (nw - size) // 2
            # round and clamp as an 8-bit image library does after resizing
            x = x[..., top:top + size, left:left + size].round().clamp(0, 255)
        out.append(x)
        i = j
    x = torch.cat(out) * RESCALE
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (x - mean) / std
