"""End to end on a tiny fake data set: train, export, manifest, goldens (the smoke path's code)."""

import dataclasses
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from fake_data import make_all
from lynx_export import onnx_io as O
from lynx_export.data import repo_root
from lynx_export.build import EXPORT_REVISION
from lynx_export.ecosystem import read_metadata
from lynx_export.__main__ import run_build
from lynx_export.media import blank_picture, preprocess
from lynx_export.profiles import PROFILES
from test_manifest_schema import validate


def _tiny_smoke_profile(monkeypatch, **steps):
    """The smoke profile with `steps` overriding its step counts."""
    monkeypatch.setitem(PROFILES, "smoke", dataclasses.replace(PROFILES["smoke"], **steps))


def test_build_writes_verifiable_manifests_and_goldens(tmp_path, monkeypatch, smoke_foundation):
    data = make_all(tmp_path / "data", n_train=80, n_val=8, n_text=120)
    _tiny_smoke_profile(monkeypatch, step_scale=0.05, max_new_tokens=4)
    zoo = tmp_path / "zoo"
    run_build(["lynx-int8", "lynx-blind", "lynx-seed1"], "smoke", zoo, data, tmp_path / "work", threads=2,
              foundation=smoke_foundation)
    names = sorted(p.stem for p in (zoo / "variants").iterdir())
    assert names == ["lynx", "lynx-blind", "lynx-int8", "lynx-seed1"]
    for name in names:
        doc = yaml.safe_load((zoo / "variants" / f"{name}.yaml").read_text())
        assert doc["name"] == name and doc["schema_version"] == 1
        validate(doc)  # the runtime's contract (docs/manifest.schema.json)
        files = [doc["tokenizer"], doc["goldens"]]
        for g in doc["graphs"].values():
            files += [g] + g["external_data"]
        for f in files:  # every referenced file exists inside the zoo with its checksum
            assert not f["path"].startswith("/") and ".." not in f["path"]
            assert O.sha256_file(zoo / f["path"]) == f["sha256"], f["path"]
        gold = json.loads((zoo / doc["goldens"]["path"]).read_text())
        assert gold["variant"] == name and gold["items"]
        for item in gold["items"]:
            assert len(item["last_logits"]) == doc["model"]["vocab_size"]
            assert item["input_ids"][0][0] == 1  # <s>
            if doc["axes"]["vision_input"] != "none":
                shape = item["pixel_values"]["shape"]
                raw = np.fromfile(zoo / item["pixel_values"]["path"], dtype="<f4")
                assert raw.size == np.prod(shape) and shape[-1] == doc["preprocess"]["size"]
                if doc["axes"]["vision_input"] == "blank":  # every frame is the blank picture
                    size = doc["preprocess"]["size"]
                    blank = preprocess([blank_picture(size)], size).numpy().ravel()
                    assert np.array_equal(raw.reshape(-1, blank.size), np.tile(blank, (raw.size // blank.size, 1)))
            else:
                assert item["pixel_values"] is None
    blind = yaml.safe_load((zoo / "variants" / "lynx-blind.yaml").read_text())
    base = yaml.safe_load((zoo / "variants" / "lynx.yaml").read_text())
    assert blind["axes"]["vision_input"] == "blank" and set(blind["graphs"]) == set(base["graphs"])
    # the seed replicate: lynx's axes, another seed, its own trained connector, and the runtime accepts it
    rep = yaml.safe_load((zoo / "variants" / "lynx-seed1.yaml").read_text())
    assert rep["seed_of"] == "lynx" and "seed_of" not in base
    assert rep["axes"] == base["axes"] and (rep["provenance"]["seed"], base["provenance"]["seed"]) == (1, 0)
    assert rep["graphs"]["connector"]["sha256"] != base["graphs"]["connector"]["sha256"]
    exe = Path(os.environ.get("LYNX_ZOO_BIN") or repo_root() / "target" / "release" / "lynx-zoo")
    if exe.exists():  # scripts/test builds it first
        subprocess.run([str(exe), "check", "--zoo", str(zoo)], check=True, capture_output=True)
    int8 = yaml.safe_load((zoo / "variants" / "lynx-int8.yaml").read_text())
    # the frozen backbone and the baseline's connector are stored once and shared
    assert int8["graphs"]["connector"]["path"] == base["graphs"]["connector"]["path"]
    shared = {e["path"] for e in base["graphs"]["decoder"]["external_data"]}
    assert "onnx/llama-chat-small.data" in shared
    assert "onnx/llama-chat-small.data" in {e["path"] for e in blind["graphs"]["decoder"]["external_data"]}
    assert base["provenance"]["parity"]["decoder"] <= 1e-4
    # the ecosystem's tools read the folder (ecosystem.py): every graph says what it is, and
    # AutoTokenizer renders the goldens' prompts
    for name in names:
        doc = yaml.safe_load((zoo / "variants" / f"{name}.yaml").read_text())
        for role, g in doc["graphs"].items():
            meta = read_metadata(zoo / g["path"])
            assert meta["lynx.role"] == role and meta["lynx.producer"].startswith("lynx-zoo exporter "), g["path"]
            owner = meta.get("lynx.variant") or meta["lynx.shared"]
            assert owner == Path(g["path"]).name.removesuffix(".onnx").rsplit(".", 1)[0], (g["path"], meta)
        assert doc["provenance"]["export_revision"] == EXPORT_REVISION
    assert read_metadata(zoo / int8["graphs"]["decoder"]["path"])["lynx.variant"] == "lynx-int8"
    assert read_metadata(zoo / int8["graphs"]["connector"]["path"])["lynx.variant"] == "lynx"
    from transformers import AutoTokenizer
    tok: Any = AutoTokenizer.from_pretrained(str(zoo / "onnx"))  # apply_chat_template's return type is a union
    for item in json.loads((zoo / base["goldens"]["path"]).read_text())["items"]:
        chat = [{"role": "user", "content": item["question"]}]
        assert tok.apply_chat_template(chat, add_generation_prompt=True)["input_ids"] == item["input_ids"][0]
    # a second run finds everything up to date and rewrites nothing
    before = {p.name: p.stat().st_mtime_ns for p in (zoo / "variants").iterdir()}
    run_build(["lynx-int8", "lynx-blind", "lynx-seed1"], "smoke", zoo, data, tmp_path / "work", threads=2,
              foundation=smoke_foundation)
    assert before == {p.name: p.stat().st_mtime_ns for p in (zoo / "variants").iterdir()}


def test_parallel_jobs_train_every_step_into_the_shared_cache(tmp_path, monkeypatch, smoke_foundation):
    data = make_all(tmp_path / "data", n_train=60, n_val=8, n_text=80)
    _tiny_smoke_profile(monkeypatch, step_scale=0.02, max_new_tokens=2)
    work, zoo = tmp_path / "work", tmp_path / "zoo"
    run_build(["lynx", "lynx-blind"], "smoke", zoo, data, work, threads=1, jobs=2, foundation=smoke_foundation)
    cache = work / "cache" / "smoke"
    kinds = sorted(p.name.split("-")[0] for p in cache.iterdir() if p.suffix in (".pt", ".npz"))
    # one feature store (the blind control reads its blank row), two variants; the foundation is read, not trained
    assert kinds == ["features", "variant", "variant"], kinds
    assert sorted(p.stem for p in (zoo / "variants").iterdir()) == ["lynx", "lynx-blind"]
    record = json.loads((work / "logs" / "build-times.json").read_text())
    assert record["jobs"] == 2
