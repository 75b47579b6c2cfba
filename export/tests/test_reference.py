"""The benchmark reference: answer space, that it learns what the features show (and the blind one
cannot), and the command's predictions files."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fake_data import make_all
from lynx_export.data import QARecord
from lynx_export.features import FeatureStore
from lynx_export.reference import (CHARS, SLOTS, SPELL, AnswerSpace, ConvEncoder, ReferenceConfig, char_ids, predict,
                                   reference_name, run_reference, spelled, train_reference)
from lynx_export.tokenizer import TextCodec, train_tokenizer

COLOURS = ["red", "green", "blue", "yellow"]


def record(i: int, question: str, answer: str, cls: str) -> QARecord:
    return QARecord(question=question, response=answer, answers=[answer], cls=cls, media=Path(f"/fake/{i}.png"),
                    is_video=False, raw={"dataset": "t", "index": i})


def test_ocr_words_round_trip_through_character_slots():
    ids = char_ids("cat")
    assert len(ids) == SLOTS and ids[-1] == 0
    assert spelled(torch.nn.functional.one_hot(torch.tensor(ids), len(CHARS)).float()) == "cat"


def test_answer_space_spells_ocr_words_and_skips_unknown_answers():
    space = AnswerSpace.of([record(0, "q", "Red", "color"), record(1, "q", "owl", "ocr")])
    assert space.names == ["red", SPELL]
    assert space.target(record(2, "q", "red", "color")) == (0, [-100] * SLOTS)
    cls, chars = space.target(record(3, "q", "42", "ocr"))
    assert cls == 1 and "".join(CHARS[c] for c in chars) == "42__"
    assert space.target(record(4, "q", "blue", "color"))[0] == -100  # not a training answer
    with pytest.raises(ValueError, match="at most 4"):
        space.target(record(5, "q", "quartz", "ocr"))


def test_conv_encoder_gives_the_vit_patch_grid():
    enc = ConvEncoder(32)
    assert enc(torch.zeros(2, 3, 128, 128)).shape == (2, 64, 32)
    assert enc(torch.zeros(2, 3, 64, 64)).shape == (2, 16, 32)


def _colour_task(n: int, seed: int):
    """Records asking an image's colour; each image's 4 patch features one-hot encode it in one patch."""
    rng = np.random.default_rng(seed)
    recs, feats = [], np.zeros((n, 4, 8), dtype=np.float16)
    for i in range(n):
        c = int(rng.integers(len(COLOURS)))
        feats[i, int(rng.integers(4)), c] = 1.0
        recs.append(record(i, "What color is the square?", COLOURS[c], "color"))
    store = FeatureStore(feats, feats, {str(r.media): [i] for i, r in enumerate(recs)}, 8, [0])
    return recs, store


def test_the_reference_reads_the_features_and_the_blind_one_cannot():
    codec = TextCodec(train_tokenizer(["What color is the square?"] * 4 + COLOURS, 64))
    train, store = _colour_task(256, 0)
    cfg = ReferenceConfig(width=32, layers=1, heads=2, steps=150, batch=32, lr=3e-3)
    seeing, space, _ = train_reference(train, codec, store, cfg, frames=5, seed=0, log=lambda m: None)
    blind, blind_space, _ = train_reference(train, codec, None, cfg, frames=5, seed=0, log=lambda m: None)
    test, test_store = _colour_task(128, 1)
    truth = [r.answers[0] for r in test]
    seen = predict(seeing, space, test, codec, test_store, cfg, 5)
    guessed = predict(blind, blind_space, test, codec, None, cfg, 5)
    assert np.mean([p == t for p, t in zip(seen, truth)]) > 0.9
    assert np.mean([p == t for p, t in zip(guessed, truth)]) < 0.5  # one answer for every image


def test_reference_command_writes_scorable_predictions_and_caches_the_model(tmp_path, monkeypatch, smoke_foundation):
    from lynx_export.components import Components
    from lynx_export.profiles import PROFILES

    data = make_all(tmp_path / "data", n_train=60, n_val=8, n_text=60)
    lines: list[str] = []
    build = Components(PROFILES["smoke"], data, tmp_path / "work", log=lines.append, foundation=smoke_foundation)
    cfg = ReferenceConfig(width=32, layers=1, heads=2, steps=5, batch=8)
    out = tmp_path / "ref"
    written = run_reference(build, [data / "val"], out, cfg, False, 128, 5, log=lines.append)
    path = written[str(data / "val")]
    assert path == out / "val" / f"{reference_name(False, 128, 5)}.jsonl" == out / "val" / "reference.jsonl"
    ann = [json.loads(line) for line in (data / "val" / "annotations.jsonl").read_text().splitlines()]
    preds = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(p["id"], p["question"]) for p in preds] == [(f"{a['dataset']}/{a['index']}", a["question"]) for a in ann]
    assert all(isinstance(p["prediction"], str) for p in preds)
    assert json.loads(path.with_suffix(".train.json").read_text())["steps"] == 5
    trained = sum("reference step" in line for line in lines)
    run_reference(build, [data / "val"], out, cfg, False, 128, 5, log=lines.append)
    assert sum("reference step" in line for line in lines) == trained  # the second run loads the cached model
    assert reference_name(True, 128, 5) == "reference-blind" and reference_name(False, 64, 1) == "reference-64px-1f"

    # the reference's own conv encoder: pretrained with the ViT's objective, then read like the ViT
    monkeypatch.setattr("lynx_export.reference.CNN_STEPS", 2)
    written = run_reference(build, [data / "val"], out, cfg, False, 64, 1, log=lines.append, encoder="cnn")
    preds = [json.loads(line) for line in written[str(data / "val")].read_text().splitlines()]
    assert written[str(data / "val")].name == "reference-cnn-64px-1f.jsonl" and len(preds) == len(ann)
    assert any("cnn step" in line for line in lines)
