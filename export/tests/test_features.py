"""The feature cache on disk: plain arrays that load without pickles, giving back every row list."""

from pathlib import Path

import numpy as np
import pytest

from lynx_export.features import BLANK, FeatureStore


def store() -> FeatureStore:
    rng = np.random.default_rng(0)
    final = rng.standard_normal((6, 4, 3)).astype(np.float16)
    rows = {BLANK: [0], "/d/a.png": [1], "/d/clip": [2, 3, 4], "/d/é.png": [5]}
    return FeatureStore(final, final * 2, rows, 8, [2, 4, 6])  # the frames of 2 and 3 sampled of 8


def test_a_saved_store_loads_without_pickles_to_the_same_rows(tmp_path: Path):
    path = tmp_path / "features.npz"
    store().save(path)
    with np.load(path, allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)
    back = FeatureStore.load(path)
    assert back.rows == store().rows and all(type(i) is int for v in back.rows.values() for i in v)
    assert back.video_frames == 8 and back.stored == [2, 4, 6]
    assert np.array_equal(back.final, store().final) and np.array_equal(back.trunk, store().trunk)
    assert back.lookup(Path("/d/clip"), 2, is_video=True) == [2, 4]  # frames 2 and 6
    assert back.lookup(None, 3, is_video=True, blank=True) == [0, 0, 0]


def test_a_store_of_the_pickled_layout_is_refused_not_misread(tmp_path: Path):
    """Layout 2 kept `rows` as object arrays; loading one now fails (its cache key differs too)."""
    s = store()
    path = tmp_path / "old.npz"
    np.savez(path, final=s.final, trunk=s.trunk, keys=np.array(list(s.rows), dtype=object),
             values=np.array([np.array(v) for v in s.rows.values()], dtype=object),
             video_frames=s.video_frames, stored=np.array(s.stored))
    with pytest.raises((KeyError, ValueError)):
        FeatureStore.load(path)
