"""`bash scripts/bench-real` (export/lynx_export/bench_real.py) end to end on a tiny seeded LLaVA:
the models built (seeded checkpoint, its language model as a folder, onnxruntime-genai's int4 build
imported by `lynx-zoo import`, the LLaVA by `import hf`), every engine run in its own worker, the
report's structure, and the same greedy tokens from lynx-zoo and onnxruntime-genai on their shared
graph (and from lynx-zoo and transformers on the float32 LLaVA). Speed is never asserted here: the
numbers are docs/performance.md's, from the real-size run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("onnxruntime_genai")

from lynx_export.bench_real import BenchError, Settings, Worker, run, thread_env  # noqa: E402
from lynx_export.data import repo_root  # noqa: E402

NEW = 3


def binaries() -> tuple[Path, Path]:
    s = Settings(work=Path("."))
    for exe in (s.lynx_worker, s.lynx_zoo):
        if not exe.is_file():
            pytest.skip(f"no `{exe}`: build it with `cargo build --release --examples`")
    if not os.environ.get("ORT_DYLIB_PATH"):
        pytest.skip("ORT_DYLIB_PATH is not set (scripts/setup-ort)")
    return s.lynx_worker, s.lynx_zoo


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    binaries()
    work = tmp_path_factory.mktemp("bench-real")
    s = Settings(work=work, size="tiny", threads=1, repeats=2, warmup=0, new_tokens=NEW, ttft_tokens=20,
                 contexts=(40, 64), precisions=("int4", "int4-b64"), parallel_load=True, command="bash scripts/bench-real --size tiny")
    result = run(s)
    return work, result


def test_the_report_has_every_engine_case_and_the_machine(report):
    work, r = report
    saved = json.loads((work / "results" / "bench-real.json").read_text())
    assert saved["command"] == "bash scripts/bench-real --size tiny" and saved["groups"]
    md = (work / "results" / "bench-real.md").read_text()
    assert "bash scripts/bench-real --size tiny" in md and "| engine | graph | TTFT ms" in md
    assert "step / floor @ 40, its round | step / floor @ 40, strict" in md and "Bandwidth around the rounds" in md
    m = r["machine"]
    assert m["cores"] and m["onnxruntime"] and m["onnxruntime_genai"] and m["execution_provider"] == "CPU"
    assert len(r["bandwidth"]["runs"]) == 3  # before, between and after the two groups
    for bw in r["bandwidth"]["runs"]:
        assert bw["read_gbps"] > 0 and bw["triad_gbps"] > 0 and bw["threads"] == 1
    rounds = [b for g in r["groups"] for b in g["round_bandwidth"]]
    assert r["bandwidth"]["best"] in r["bandwidth"]["runs"] + rounds
    assert all(bw["read_gbps"] > 0 for bw in rounds)
    groups = {g["group"]: g for g in r["groups"]}
    assert set(groups) == {"text", "llava"}
    assert [(x["engine"], x["graph"]) for x in groups["text"]["rows"]] == [
        ("lynx-zoo", "genai int4 graph"), ("onnxruntime-genai", "genai int4 graph"),
        ("lynx-zoo", "genai int4-b64 graph"), ("onnxruntime-genai", "genai int4-b64 graph"),
        ("transformers", "fp32 checkpoint")]
    assert [x["precision"] for x in groups["text"]["rows"]] == ["int4", "int4", "int4-b64", "int4-b64", "fp32"]
    assert [x["precision"] for x in groups["llava"]["rows"]] == ["fp32", "fp32"]
    assert [x["engine"] for x in groups["llava"]["rows"]] == ["lynx-zoo", "transformers"]
    assert [c["name"] for c in groups["text"]["cases"]] == ["ttft", "ctx40", "ctx64"]
    assert [c["name"] for c in groups["llava"]["cases"]] == ["ttft", "ctx40", "ctx64"]
    for g in groups.values():
        # before each of the 2 timed rounds and after the last; a round's floor: the better around it
        assert len(g["round_bandwidth"]) == 3 and len(g["round_floor_gbps"]) == 2
        assert g["round_floor_gbps"][0] == max(max(b["read_gbps"], b["triad_gbps"]) for b in g["round_bandwidth"][:2])
        for row in g["rows"]:
            assert row["peak_rss_bytes"] > 0 and row["load_s"] >= 0, row
            assert row["decoder_weight_bytes"] > 0 and row["step_floor_ms"] > 0, row
            for name, c in row["cases"].items():
                assert c["ttft_ms"]["n"] == 2 and 0 < c["ttft_ms"]["min"] <= c["ttft_ms"]["median"] <= c["ttft_ms"]["max"]
                assert c["step_ms"]["n"] == 2 and c["tokens_per_s"]["median"] > 0 and c["step_over_floor"] > 0
                # a round's floor divides by no more than the run's best bandwidth: never stricter
                assert c["step_over_round_floor"]["n"] == 2
                assert c["step_over_round_floor"]["max"] <= c["step_ms"]["max"] / row["step_floor_ms"] + 1e-9
        # each sample: NEW tokens, and the prompt the case asked for
        for x in g["samples"]:
            assert len(x["tokens"]) == NEW, x
        for c in g["cases"]:
            ids = g["prompts"][c["name"]]["ids"]
            image = 1 if c["image"] else 0
            assert len(ids) == c["text_tokens"] + image
            assert c["context"] == c["text_tokens"] + g["image_tokens"] + NEW // 2


def test_engines_that_share_a_graph_give_the_same_greedy_tokens(report):
    _, r = report
    groups = {g["group"]: g for g in r["groups"]}
    shared = groups["text"]["shared_graph_agreement"]
    assert len(shared) == 6 and all(x["same_tokens"] for x in shared), shared
    assert shared[0]["engines"] == ["lynx-zoo/lm-int4", "onnxruntime-genai/int4"]
    assert shared[-1]["engines"] == ["lynx-zoo/lm-int4-b64", "onnxruntime-genai/int4-b64"]
    # the float32 LLaVA: the imported graphs answer as transformers does (a wide init keeps the
    # tiny model's logits apart)
    tokens = groups["llava"]["tokens"]
    assert all(t["lynx-zoo/llava"] == t["transformers/llava"] for t in tokens.values()), tokens
    # different prompts, different answers: the engines were not handed one cached answer
    assert len({tuple(t["lynx-zoo/lm-int4"]) for t in groups["text"]["tokens"].values()}) > 1


def test_int4_precisions_are_built_in_the_blocks_they_name(report):
    import onnx

    work, _ = report
    for name, block in (("int4", 32), ("int4-b64", 64)):
        graph = onnx.load(work / f"genai-{name}" / "model.onnx", load_external_data=False)
        blocks = {a.i for n in graph.graph.node if n.op_type == "MatMulNBits" for a in n.attribute
                  if a.name == "block_size"}
        assert blocks == {block}, (name, blocks)


def test_bad_settings_and_requests_are_refused_naming_the_field(report):
    work, _ = report
    with pytest.raises(BenchError, match="`--precisions`: `int3`"):
        Settings(work=work, precisions=("int3",)).check()
    with pytest.raises(BenchError, match="`--precisions`: `int4-b48` is none of .*int4-b128"):
        Settings(work=work, precisions=("int4", "int4-b48")).check()
    with pytest.raises(BenchError, match="`--contexts`"):
        Settings(work=work, contexts=(4,), new_tokens=16).check()
    with pytest.raises(BenchError, match="`--image`: `/nonexistent.png` is not a file"):
        Settings(work=work, image=Path("/nonexistent.png")).check()
    with pytest.raises(BenchError, match="`--contexts`: case ctx4096 needs 4104 positions; `lm-int4` holds 256"):
        run(Settings(work=work, size="tiny", threads=1, repeats=1, warmup=0, new_tokens=16, contexts=(4096,),
                     precisions=("int4",), groups=("text",)))
    worker_exe, _ = binaries()
    env = thread_env(1)
    with pytest.raises(BenchError, match="did not load: .*nope"):
        Worker("lynx-zoo/nope", [str(worker_exe), "--zoo", str(work / "zoo"), "--variant", "nope"], env)
    w = Worker("lynx-zoo/lm-int4", [str(worker_exe), "--zoo", str(work / "zoo"), "--variant", "lm-int4"], env)
    try:
        with pytest.raises(BenchError, match="field `question`"):
            w.ask({"op": "run", "new_tokens": 2})
        with pytest.raises(BenchError, match="field `tokens`: 3 is too short"):
            w.ask({"op": "prompt", "tokens": 3})
        with pytest.raises(BenchError, match="field `op`"):
            w.ask({"op": "fly"})
        assert len(w.ask({"op": "run", "question": "the the", "new_tokens": 2, "image": None})["tokens"]) == 2
    finally:
        w.close()
    genai = Worker("onnxruntime-genai/int4", [*python_worker_argv(work)], env)
    try:
        with pytest.raises(BenchError, match="field `ids`"):
            genai.ask({"op": "run", "ids": "12", "new_tokens": 2})
    finally:
        genai.close()
    assert repo_root().joinpath("scripts", "bench-real").is_file()


def python_worker_argv(work: Path) -> list[str]:
    from lynx_export.bench_real import python_worker

    return python_worker("genai", work / "genai-int4", 1)


def test_the_paired_floor_holds_each_quantised_step_to_the_float32_step_of_its_round():
    from lynx_export.bench_real import paired_floor

    # the float32 graph is found by its precision, not by its label
    rows = [{"engine": "lynx-zoo", "graph": g, "precision": p, "worker": f"lynx-zoo/lm-{p}", "decoder_weight_bytes": b,
             "cases": {"ctx128": {}}} for g, p, b in (("genai int4 graph", "int4", 300), ("genai float graph", "fp32", 2000))]
    rows.append({"engine": "transformers", "graph": "fp32 checkpoint", "precision": "fp32", "worker": "transformers/lm",
                 "decoder_weight_bytes": 2000, "cases": {"ctx128": {}}})

    def sample(worker, rnd, ms):
        return {"worker": worker, "case": "ctx128", "round": rnd, "step_ms": ms}

    # round 0: fp32 reads 2000 bytes in 20 ms, so 300 bytes take 3 ms at that rate and a 6 ms int4 step
    # is 2x its floor; round 1 the machine is slower (40 ms): 4.5 ms is 0.75x of a 6 ms floor; the
    # warm-up round (-1) and transformers (another engine, no float32 graph of lynx-zoo's own) count for nothing
    samples = [sample("lynx-zoo/lm-fp32", 0, 20.0), sample("lynx-zoo/lm-int4", 0, 6.0),
               sample("lynx-zoo/lm-fp32", 1, 40.0), sample("lynx-zoo/lm-int4", 1, 4.5),
               sample("lynx-zoo/lm-fp32", -1, 1.0), sample("lynx-zoo/lm-int4", -1, 100.0),
               sample("transformers/lm", 0, 50.0)]
    (only,) = paired_floor(rows, samples)
    assert (only["worker"], only["reference"], only["case"]) == ("lynx-zoo/lm-int4", "lynx-zoo/lm-fp32", "ctx128")
    assert only["step_over_floor"] == {"median": 1.375, "min": 0.75, "max": 2.0, "n": 2}
    # no float32 row of that engine: nothing to pair with
    assert paired_floor(rows[:1] + rows[2:], samples) == []
