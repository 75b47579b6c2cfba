"""Image reading and preprocessing."""

from pathlib import Path

import numpy as np
import pytest
import torch

from fake_data import write_png
from lynx_export.media import CLIP_MEAN, CLIP_STD, _read_png, preprocess, read_image, uniform_indices

REPO = Path(__file__).resolve().parents[2]


def test_uniform_sampling_takes_segment_centres():
    assert uniform_indices(8, 5) == [0, 2, 4, 5, 7]
    assert uniform_indices(8, 1) == [4]
    assert uniform_indices(3, 5) == [0, 0, 1, 2, 2]


def test_numpy_png_decoder_matches_pillow_on_generated_images():
    pytest.importorskip("PIL")
    images = sorted((REPO / "data" / "test" / "images").glob("*.png"))[:5]
    if not images:
        pytest.skip("no committed test split")
    for path in images:
        assert np.array_equal(_read_png(path.read_bytes(), path), read_image(path))


def test_png_round_trip(tmp_path):
    img = np.random.default_rng(0).integers(0, 255, (9, 7, 3), dtype=np.uint8)
    write_png(tmp_path / "a.png", img)
    assert np.array_equal(_read_png((tmp_path / "a.png").read_bytes(), "a.png"), img)


def test_preprocess_resizes_and_normalises():
    white = np.full((128, 128, 3), 255, dtype=np.uint8)
    x = preprocess([white], 64)
    assert x.shape == (1, 3, 64, 64)
    expected = (1.0 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    assert torch.allclose(x[0, :, 10, 10], expected, atol=1e-5)
