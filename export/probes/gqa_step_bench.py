"""Times a zoo decoder traced with a concatenated cache against its GroupQueryAttention rewrite.

In onnxruntime-python, one thread, batch 1: a decode step at two contexts and a prefill, each the
median of many runs, the two graphs interleaved round by round. The former graph gets its past as
inputs and `position_ids`; the rewrite one buffer per cache tensor, sized to the context, bound as
past and present (IO binding), as the runtime runs it. docs/performance.md, "The zoo's decoders as
GroupQueryAttention".

Without `--former`, the rewritten graph alone; `--scale-one` adds, interleaved, the same graph
with every GroupQueryAttention's `scale` set to 1 (the query times K runs with alpha 1, which ONNX
Runtime's single-row GEMM path asks for; the logits change, the work does not), and the step's
arithmetic is printed: multiply-adds of the weights (every MatMul's initializer) against those of
the attention at each context (layers x heads x context x head_dim x 2), and the ratio of the two
steps if every multiply-add cost the same (docs/performance.md, "A step at context 256 against
32").

    git worktree add /tmp/former 0891315      # the zoo before the rewrite
    PYTHONPATH=export .venv/bin/python export/probes/gqa_step_bench.py \\
        --former /tmp/former/onnx/lynx.decoder.onnx --rewritten onnx/lynx.decoder.onnx
    PYTHONPATH=export .venv/bin/python export/probes/gqa_step_bench.py --scale-one --runs 500 --rounds 6
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
import onnxruntime as ort


def session(path: str) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def dims(s: ort.InferenceSession) -> tuple[int, int, int, int]:
    """(layers, kv_heads, head_dim, hidden) from the graph's inputs."""
    past = [i for i in s.get_inputs() if i.name.startswith("past_key_values.")]
    hidden = next(i for i in s.get_inputs() if i.name == "inputs_embeds").shape[-1]
    return len(past) // 2, past[0].shape[1], past[0].shape[3], hidden


def former_run(s, past: int, seq: int, rng):
    layers, heads, dh, hidden = dims(s)
    feeds = {"inputs_embeds": rng.standard_normal((1, seq, hidden)).astype(np.float32),
             "attention_mask": np.ones((1, past + seq), np.int64),
             "position_ids": np.arange(past, past + seq, dtype=np.int64)[None]}
    for i in range(layers):
        for kv in ("key", "value"):
            feeds[f"past_key_values.{i}.{kv}"] = rng.standard_normal((1, heads, past, dh)).astype(np.float32)
    return lambda: s.run(None, feeds)


def rewritten_run(s, past: int, seq: int, rng, capacity: int | None = None):
    layers, heads, dh, hidden = dims(s)
    cap = capacity or past + seq
    buffers = [ort.OrtValue.ortvalue_from_numpy(rng.standard_normal((1, heads, cap, dh)).astype(np.float32))
               for _ in range(2 * layers)]
    io = s.io_binding()
    io.bind_cpu_input("inputs_embeds", rng.standard_normal((1, seq, hidden)).astype(np.float32))
    io.bind_cpu_input("attention_mask", np.ones((1, past + seq), np.int64))
    for i in range(layers):
        for j, kv in enumerate(("key", "value")):
            io.bind_ortvalue_input(f"past_key_values.{i}.{kv}", buffers[2 * i + j])
            io.bind_ortvalue_output(f"present.{i}.{kv}", buffers[2 * i + j])
    io.bind_output("logits")
    return lambda: s.run_with_iobinding(io)


def scale_one(path: str, out: Path) -> str:
    """The graph at `path` with every GroupQueryAttention's `scale` set to 1, written to `out`
    (its weights inline)."""
    model = onnx.load(path)
    for node in model.graph.node:
        if node.op_type == "GroupQueryAttention":
            kept = [a for a in node.attribute if a.name != "scale"]
            del node.attribute[:]
            node.attribute.extend([*kept, onnx.helper.make_attribute("scale", 1.0)])
    onnx.save(model, str(out))
    return str(out)


def arithmetic(path: str, contexts: tuple[int, int]) -> str:
    """Multiply-adds of one decode step: the weights' against the attention's at each context."""
    model = onnx.load(path)
    inits = {i.name: i for i in model.graph.initializer}
    weights = sum(int(np.prod(inits[x].dims)) for n in model.graph.node if n.op_type in ("MatMul", "Gemm")
                  for x in n.input if x in inits)
    layers, heads = 0, 0
    for node in model.graph.node:
        if node.op_type == "GroupQueryAttention":
            layers += 1
            heads = next(a.i for a in node.attribute if a.name == "num_heads")
    past = [i for i in model.graph.input if i.name.startswith("past_key_values.")]
    head_dim = past[0].type.tensor_type.shape.dim[3].dim_value
    per_position = layers * heads * head_dim * 2  # q.k and p.v
    lo, hi = (weights + per_position * c for c in contexts)
    return (f"arithmetic: weights {weights} multiply-adds per step, attention {per_position} per position of "
            f"context ({per_position * contexts[0]} at {contexts[0]}, {per_position * contexts[1]} at {contexts[1]}); "
            f"step {contexts[1]} / step {contexts[0]} at one cost per multiply-add: {hi / lo:.2f}")


def median_us(fn, runs: int) -> float:
    for _ in range(20):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)) * 1e6


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--former", help="the traced decoder (concatenated cache); without it, the rewrite alone")
    p.add_argument("--rewritten", default="onnx/lynx.decoder.onnx", help="its GroupQueryAttention rewrite")
    p.add_argument("--scale-one", action="store_true",
                   help="also time the rewrite with GroupQueryAttention's scale set to 1")
    p.add_argument("--contexts", default="32,256", help="two contexts (positions after the step)")
    p.add_argument("--prefill", type=int, default=50, help="prefill positions")
    p.add_argument("--runs", type=int, default=300)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    lo, hi = (int(x) for x in a.contexts.split(","))
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="gqa-step-") as tmp:
        new = session(a.rewritten)
        graphs: list[tuple[str, Callable[..., Any], ort.InferenceSession]] = [("rewritten", rewritten_run, new)]
        if a.former:
            graphs.insert(0, ("former", former_run, session(a.former)))
        if a.scale_one:
            graphs.append(("scale 1", rewritten_run, session(scale_one(a.rewritten, Path(tmp) / "scale1.onnx"))))
        print(arithmetic(a.rewritten, (lo, hi)), flush=True)
        for r in range(a.rounds):
            row = {}
            for name, make, s in graphs:
                short, long = median_us(make(s, lo - 1, 1, rng), a.runs), median_us(make(s, hi - 1, 1, rng), a.runs)
                pre = median_us(make(s, 0, a.prefill, rng), max(20, a.runs // 3))
                row[name] = f"step@{lo} {short:.0f} us, step@{hi} {long:.0f} us ({long / short:.2f}x), prefill {pre:.0f} us"
            print(f"round {r + 1}: " + " | ".join(f"{k}: {v}" for k, v in row.items()), flush=True)
        # the rewrite at context `lo` with a buffer of `hi` positions: what capacity costs
        print(f"rewritten, step@{lo} with a {hi}-position buffer: "
              f"{median_us(rewritten_run(new, lo - 1, 1, rng, capacity=hi), a.runs):.0f} us")


if __name__ == "__main__":
    main()
