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
