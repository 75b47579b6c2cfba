"""The foundation build: every stage end to end on the smoke plan, what ships and its provenance,
and a build interrupted mid-stage resuming to the very weights of one that never stopped."""

import json

import pytest
import torch

from lynx_export.foundation import PLANS, Foundation, file_digest

SMOKE = PLANS["smoke"]


def quiet(_msg):
    pass


def test_smoke_build_ships_every_checkpoint_with_its_provenance(smoke_foundation):
    out = smoke_foundation  # every stage of every backbone, built once by conftest.py
    build = Foundation(SMOKE, out.parent / "work", out, quiet)
    doc = json.loads((out / "foundation.json").read_text())
    names = {"tokenizer.json", "vit.safetensors"} | {f"{b}-{f}.safetensors" for b in SMOKE.backbones
                                                      for f in ("base", "chat")}
    assert set(doc["files"]) == names
    for name, entry in doc["files"].items():
        assert file_digest(out / name) == entry["sha256"], name
    assert doc["settings"]["text_seed"] == SMOKE.text_seed and doc["data"]["text"]["sha256"]
    # the probe scores every image class of its split, and nothing else (video items have no caption)
    rows = [json.loads(line) for line in (build.probe_split() / "annotations.jsonl").open()]
    image_classes = {r["class"] for r in rows if "image" in r}
    assert image_classes and not image_classes & {r["class"] for r in rows if "video" in r}
    for b in SMOKE.backbones:
        chat = doc["components"][f"{b}-chat"]
        assert chat["steps"] == SMOKE.chat_steps and chat["final_loss"] > 0
        assert chat["config"]["vocab_size"] == len(json.loads((out / "tokenizer.json").read_text())["model"]["vocab"])
        probe = chat["probe"]
        assert probe["val"]["items"] > 0 and set(probe["val"]["per_class"]) == image_classes
        assert probe["test_heldout"]["items"] > 0


class Killed(Exception):
    pass


def test_an_interrupted_stage_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path):
    whole = Foundation(SMOKE, tmp_path / "whole", tmp_path / "out", quiet)
    key = whole.chat("llama-small")

    def kill_at_the_last_step(msg):  # logged after step 12's update, before its checkpoint: step 10 is saved
        if f"llama-small-chat step {SMOKE.chat_steps}/" in msg:
            raise Killed

    cut = tmp_path / "cut"
    with pytest.raises(Killed):
        Foundation(SMOKE, cut, tmp_path / "out", kill_at_the_last_step).chat("llama-small")
    assert any(p.suffix == ".ckpt" for p in (cut / "stages").iterdir())

    logs: list[str] = []
    again = Foundation(SMOKE, cut, tmp_path / "out", logs.append)
    assert again.chat("llama-small") == key
    assert any(f"resumed at step 10/{SMOKE.chat_steps}" in m for m in logs), logs
    assert not any(p.suffix == ".ckpt" for p in (cut / "stages").iterdir())
    a, b = whole.weights("llama-small-chat", key), again.weights("llama-small-chat", key)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_a_checkpoint_of_another_run_length_is_refused(tmp_path):
    f = Foundation(SMOKE, tmp_path, tmp_path / "out", quiet)
    base = f.base("llama-small")
    ckpt = f.stage_files("llama-small-chat", f.chat_key("llama-small"))[2]
    torch.save({"steps": SMOKE.chat_steps + 1}, ckpt)
    with pytest.raises(RuntimeError, match="13-step run"):
        f.chat("llama-small")
    assert base == f.base_key("llama-small")


def test_a_damaged_or_incomplete_foundation_is_refused_by_name(tmp_path, smoke_foundation):
    import shutil

    from lynx_export.config import BackboneRef, Family, Flavour
    from lynx_export.pretrained import FoundationError, Pretrained

    with pytest.raises(FoundationError, match="no foundation here"):
        Pretrained.open(tmp_path / "nowhere")
    folder = tmp_path / "f"
    shutil.copytree(smoke_foundation, folder)
    ok = Pretrained.open(folder)
    chat = BackboneRef(Family.LLAMA, Flavour.CHAT, "small")
    assert ok.decoder_config(chat).vocab_size == len(json.loads(ok.tokenizer_path().read_text())["model"]["vocab"])
    assert set(ok.backbone_state(chat)) and ok.backbone_key(chat) != ok.vit_key()
    with pytest.raises(FoundationError, match="no backbone `gpt2-large-chat`"):  # no plan has one
        ok.decoder_config(BackboneRef(Family.GPT2, Flavour.CHAT, "large"))
    weights = folder / "llama-small-chat.safetensors"
    raw = weights.read_bytes()
    weights.write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))
    with pytest.raises(FoundationError, match="llama-small-chat.safetensors: sha256 differs"):
        Pretrained.open(folder)
    weights.unlink()
    with pytest.raises(FoundationError, match="lists `llama-small-chat.safetensors`, which is missing"):
        Pretrained.open(folder)


def test_base_windows_start_anywhere_or_at_a_document():
    """`lm_windows: documents` starts every base window at a passage's BOS (its caption first);
    `random` draws as the plan always has, so a running build keeps its key and its batches."""
    import numpy as np

    from lynx_export.config import LmWindows
    from lynx_export.foundation import PLANS
    from lynx_export.train import lm_window_starts

    doc_starts = [0, 7, 19, 40, 41, 90]
    got = lm_window_starts(np.random.default_rng(3), 100, doc_starts, 16, 200, LmWindows.DOCUMENTS)
    assert set(got) == {0, 7, 19, 40, 41}  # 90 leaves no room for a window
    want = np.random.default_rng(3).integers(0, 100 - 16 - 1, size=200)
    assert np.array_equal(lm_window_starts(np.random.default_rng(3), 100, doc_starts, 16, 200, LmWindows.RANDOM), want)
    with pytest.raises(ValueError, match="is not a valid LmWindows"):
        LmWindows("passages")
    assert PLANS["foundation"].lm_windows is LmWindows.RANDOM


def test_builds_side_by_side_generate_shared_data_once_each_into_its_own_folder(tmp_path):
    """scripts/foundation-device trains the backbones in parallel processes over one work folder;
    each may reach the same data first. A slow fake generator makes them overlap: both end with
    the one finished folder, and no half-written one is left."""
    import sys
    import threading

    fake = tmp_path / "gen.py"
    fake.write_text("import sys, time, pathlib\n"
                    "out = pathlib.Path(sys.argv[sys.argv.index('--out') + 1])\n"
                    "(out / 'images').mkdir(parents=True)\n"
                    "time.sleep(0.5)\n"
                    "(out / 'captions.jsonl').write_text(' '.join(sys.argv[1:sys.argv.index('--out')]))\n")
    work = tmp_path / "work"
    found = [Foundation(PLANS["smoke"], work, tmp_path / "out", lambda m: None, [sys.executable, str(fake)])
             for _ in range(3)]
    results: list = []
    threads = [threading.Thread(target=lambda f=f: results.append(f.probe_split())) for f in found]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [work / "probe-val"] * 3
    assert (work / "probe-val" / "captions.jsonl").read_text().startswith("data generate --split val")
    assert sorted(p.name for p in work.iterdir()) == ["probe-val"]


def test_the_shipped_foundation_verifies_and_holds_every_variants_backbone():
    """onnx/foundation/ is what every zoo build starts from: each file matches its sha256 in
    foundation.json, it was built by the `foundation` plan, and it holds the backbone and ViT of
    every registered variant at the plan's sizes."""
    from lynx_export.data import repo_root
    from lynx_export.pretrained import Pretrained
    from lynx_export.registry import create_variant, list_variants

    shipped = Pretrained.open(repo_root() / "onnx" / "foundation")  # verifies every file's sha256
    assert shipped.doc["plan"] == "foundation"
    plan = PLANS["foundation"]
    vocab = len(json.loads(shipped.tokenizer_path().read_text())["model"]["vocab"])
    assert vocab == plan.vocab_size
    assert shipped.vision_config() == plan.vision
    for name in list_variants():
        ref = create_variant(name).backbone
        cfg = shipped.decoder_config(ref)
        assert cfg == plan.decoder(f"{ref.family.value}-{ref.size}", vocab), name
        state = shipped.backbone_state(ref)
        assert state["embed_tokens.weight"].shape == (vocab, cfg.hidden), name
