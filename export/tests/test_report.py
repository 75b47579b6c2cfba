"""docs/zoo.md's accuracy columns: only evals of the variant's current build count."""

import hashlib
import json

from lynx_export.report import load_eval


def _eval(folder, name, correct, manifest_sha):
    (folder / name).mkdir(parents=True)
    (folder / name / "predictions.jsonl").write_text("".join(json.dumps({"correct": c}) + "\n" for c in correct))
    (folder / name / "run.json").write_text(json.dumps({"variant": name, "manifest_sha256": manifest_sha}))


def test_an_eval_of_another_build_is_left_out(tmp_path):
    zoo, evals = tmp_path / "zoo", tmp_path / "eval"
    (zoo / "variants").mkdir(parents=True)
    for name in ("current", "old"):
        (zoo / "variants" / f"{name}.yaml").write_text(f"name: {name}\n")
    sha = hashlib.sha256(b"name: current\n").hexdigest()
    _eval(evals, "current", [True, False, True, True], sha)
    _eval(evals, "old", [True, True], hashlib.sha256(b"name: old, an earlier build\n").hexdigest())
    messages: list[str] = []
    assert load_eval({"test": evals}, zoo, messages.append) == {"current": {"test": 0.75}}
    assert len(messages) == 1 and "`old`" in messages[0]
    # without a zoo to check against, every eval counts (as before)
    assert load_eval({"test": evals}) == {"current": {"test": 0.75}, "old": {"test": 1.0}}


def test_an_imported_variant_is_a_row_beside_the_zoos_own(tmp_path, monkeypatch):
    """docs/zoo.md lists an imported variant (issue 15): its source in place of an axis, no training record."""
    import shutil
    from pathlib import Path

    from lynx_export import report

    repo = Path(__file__).resolve().parents[2]
    zoo = tmp_path / "zoo"
    (zoo / "variants").mkdir(parents=True)
    shutil.copytree(repo / "tests/fixtures/runtime/open-zoo/onnx", zoo / "onnx" / "llava-tiny")
    text = (repo / "tests/fixtures/runtime/open-zoo/variants/llava-tiny.yaml").read_text()
    (zoo / "variants" / "llava-tiny.yaml").write_text(text.replace("path: onnx/", "path: onnx/llava-tiny/"))
    shutil.copy(repo / "variants/lynx.yaml", zoo / "variants/lynx.yaml")
    for own in ("lynx.connector.onnx", "lynx.data", "lynx.decoder.onnx"):
        shutil.copy(repo / "onnx" / own, zoo / "onnx" / own)
    monkeypatch.setattr(report, "_registry_order", lambda: ["lynx"])
    text = report.render(zoo, {"llava-tiny": {"test": 0.5}}, {}, ["test"])
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| `")}
    imported = rows["| `llava-tiny`"]
    assert "| imported from `tests/fixtures/runtime/make_zoo.py (llava-tiny)` | - | 50.0 | - | - | - |" in imported
    own_mb = float(imported.rstrip(" |").rsplit("| ", 1)[1])
    assert own_mb > 0.0, imported  # its own folder, onnx/llava-tiny/, counts
    assert "| `lynx` | baseline |" in text
