"""Training data folders: generated where missing or stamped with other generator arguments."""

import json
import stat

from lynx_export.data import STAMP, DataPaths, ensure_data, generator_revision


def _fake_generator(tmp_path):
    """A stand-in for `lynx-zoo` that records its arguments and writes the expected file."""
    log = tmp_path / "calls.txt"
    exe = tmp_path / "fake-lynx-zoo"
    exe.write_text(f"""#!/bin/sh
echo "$@" >> {log}
while [ $# -gt 0 ]; do if [ "$1" = "--out" ]; then out="$2"; fi; shift; done
mkdir -p "$out"
touch "$out/annotations.jsonl" "$out/corpus.txt"
""")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return exe, log


def test_stamped_folders_are_regenerated_only_when_their_arguments_change(tmp_path, monkeypatch):
    exe, log = _fake_generator(tmp_path)
    monkeypatch.setenv("LYNX_ZOO_BIN", str(exe))
    paths = DataPaths(tmp_path / "data")
    ensure_data(paths, n_train=10, n_val=4, n_text=6, seed=1, log=lambda m: None)
    assert len(log.read_text().splitlines()) == 3  # train, val, text
    stamp = json.loads((paths.text / STAMP).read_text())
    assert stamp == {"args": ["data", "text", "--n", "6", "--seed", "1"], "generator": generator_revision()}

    ensure_data(paths, n_train=10, n_val=4, n_text=6, seed=1, log=lambda m: None)
    assert len(log.read_text().splitlines()) == 3  # same arguments: nothing regenerated

    ensure_data(paths, n_train=10, n_val=4, n_text=8, seed=1, log=lambda m: None)
    calls = log.read_text().splitlines()
    assert len(calls) == 4 and calls[-1].startswith("data text --n 8")

    (paths.val / STAMP).unlink()  # a hand-made folder (no stamp) is used as it is
    ensure_data(paths, n_train=10, n_val=5, n_text=8, seed=1, log=lambda m: None)
    assert len(log.read_text().splitlines()) == 4


def test_a_changed_generator_regenerates_its_folders(tmp_path, monkeypatch):
    exe, log = _fake_generator(tmp_path)
    monkeypatch.setenv("LYNX_ZOO_BIN", str(exe))
    paths = DataPaths(tmp_path / "data")
    ensure_data(paths, n_train=10, n_val=4, n_text=6, seed=1, log=lambda m: None)
    monkeypatch.setattr("lynx_export.data.generator_revision", lambda: "another-revision")
    ensure_data(paths, n_train=10, n_val=4, n_text=6, seed=1, log=lambda m: None)
    assert len(log.read_text().splitlines()) == 6  # train, val and text once more
    assert json.loads((paths.train / STAMP).read_text())["generator"] == "another-revision"


def test_the_generator_revision_follows_its_sources(tmp_path):
    (tmp_path / "src" / "data").mkdir(parents=True)
    (tmp_path / "src" / "benchmark").mkdir()
    (tmp_path / "src" / "data" / "text.rs").write_text("fn a() {}")
    (tmp_path / "src" / "benchmark" / "classes.rs").write_text("const WORDS: &[&str] = &[\"CAT\"];")
    before = generator_revision(tmp_path)
    assert generator_revision(tmp_path) == before
    (tmp_path / "src" / "data" / "text.rs").write_text("fn b() {}")
    assert generator_revision(tmp_path) != before
    after_text = generator_revision(tmp_path)
    (tmp_path / "src" / "benchmark" / "classes.rs").write_text("const WORDS: &[&str] = &[\"DOG\"];")
    assert generator_revision(tmp_path) != after_text


def test_position_words_match_the_generator():
    """train.REGIONS copies the generator's `position_words` grid (src/data/tasks.rs; the generated data
    do not carry it): the copy must not drift."""
    import re

    from lynx_export.data import repo_root
    from lynx_export.train import REGIONS

    src = (repo_root() / "src" / "data" / "tasks.rs").read_text()
    grid = re.search(r"const GRID: \[\[&str; 3\]; 3\] = \[(.*?)\];", src, re.S)
    assert grid, "position_words' GRID not found in src/data/tasks.rs"
    assert tuple(re.findall(r'"([^"]+)"', grid[1])) == REGIONS
