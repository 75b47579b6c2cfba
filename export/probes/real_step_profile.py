"""One decode step of an onnxruntime-genai decoder, timed and profiled by operator type.

docs/performance.md ("The real-size benchmark after the head's index fix") explains why the int4
decode stays far from the memory-bandwidth floor with this probe: a decode step at a given context
over one K/V buffer bound as both past and present (as lynx-zoo and onnxruntime-genai run it), 2
intra-op threads, spinning; the median of 40 steps after 5 untimed, and with `--profile` the share
of each operator type from ONNX Runtime's profiler. Variants of the graph are written beside it
(same external data) and removed afterwards:

    --accuracy-level N    every MatMulNBits' accuracy_level set to N (4: int8 activations)
    --prescale-queries    GroupQueryAttention's scale folded into the query columns' scales
                          (exact for a power of two) and its `scale` set to 1
    --config KEY=VALUE    a session config entry (e.g. mlas.use_lut_gemm=1)

    bash scripts/bench-real --work /tmp/bench-real --build-only --groups text
    PYTHONPATH=export .venv/bin/python export/probes/real_step_profile.py \\
        /tmp/bench-real/genai-int4/model.onnx --context 1024 --profile
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

WARMUP, STEPS = 5, 40  # untimed, then timed decode steps


def variant(path: Path, accuracy_level: int | None, prescale: bool) -> onnx.ModelProto:
    """The graph with the asked changes (the external data stays where it is)."""
    model = onnx.load(path, load_external_data=False)
    if accuracy_level is not None:
        for node in model.graph.node:
            if node.op_type == "MatMulNBits":
                for a in node.attribute:
                    if a.name == "accuracy_level":
                        a.i = accuracy_level
    if prescale:
        inits = {i.name: i for i in model.graph.initializer}
        producer = {o: n for n in model.graph.node for o in n.output}
        for node in model.graph.node:
            if node.op_type != "GroupQueryAttention":
                continue
            attrs = {a.name: a for a in node.attribute}
            heads, kv_heads, scale = attrs["num_heads"].i, attrs["kv_num_heads"].i, attrs["scale"].f
            qkv = producer[node.input[0]]
            if qkv.op_type != "MatMulNBits" or len(qkv.input) != 3:
                raise SystemExit(f"{node.name}: queries not from a bias-free MatMulNBits ({qkv.op_type})")
            tensor = onnx.TensorProto()
            tensor.CopyFrom(inits[qkv.input[2]])  # to_array loads external data into the tensor it reads
            scales = numpy_helper.to_array(tensor, base_dir=str(path.parent)).copy()
            head_dim = scales.shape[0] // (heads + 2 * kv_heads)
            scales[: heads * head_dim] *= np.float32(scale)
            name = qkv.input[2] + "_queries_prescaled"
            model.graph.initializer.append(numpy_helper.from_array(scales, name))
            qkv.input[2] = name
            attrs["scale"].f = 1.0
    return model


def step(path: Path, context: int, config: list[str], profile: bool) -> None:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "1")
    for entry in config:
        key, value = entry.split("=", 1)
        so.add_session_config_entry(key, value)
    if profile:
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(tempfile.gettempdir()) / "real_step_profile")
    session = ort.InferenceSession(str(path), so)
    decoder = json.loads((path.parent / "genai_config.json").read_text())["model"]["decoder"]
    kv_heads, head_dim = decoder["num_key_value_heads"], decoder["head_size"]
    rng = np.random.default_rng(0)
    binding = session.io_binding()
    buffers = []
    for i in session.get_inputs():
        name = i.name
        if name.startswith("past_key_values"):
            buf = np.zeros((1, kv_heads, context + 16, head_dim), np.float32)
            buf[:, :, :context] = rng.standard_normal((1, kv_heads, context, head_dim))
            value = ort.OrtValue.ortvalue_from_numpy(buf)
            buffers.append(value)
            binding.bind_ortvalue_input(name, value)
            binding.bind_ortvalue_output(name.replace("past_key_values", "present"), value)
        elif name == "input_ids":
            binding.bind_cpu_input(name, np.array([[42]], dtype=np.int64))
        elif name == "attention_mask":
            binding.bind_cpu_input(name, np.ones((1, context + 1), dtype=np.int64))
        else:
            raise SystemExit(f"unexpected input `{name}` (an onnxruntime-genai text decoder is expected)")
    binding.bind_output("logits")
    for _ in range(WARMUP):
        session.run_with_iobinding(binding)
    times = []
    for _ in range(STEPS):
        t = time.perf_counter()
        session.run_with_iobinding(binding)
        times.append(time.perf_counter() - t)
    print(f"{path.name} context {context}: median {np.median(times) * 1e3:.2f} ms, min {min(times) * 1e3:.2f} ms")
    if profile:
        trace = session.end_profiling()
        events = json.loads(Path(trace).read_text())
        os.remove(trace)
        total: collections.Counter[str] = collections.Counter()
        for e in events:
            if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
                total[e["args"]["op_name"]] += e["dur"]
        runs = WARMUP + STEPS  # the profiler records the untimed steps too
        share = sum(total.values())
        for op, us in total.most_common(6):
            print(f"  {op:34s} {us / runs / 1e3:7.3f} ms/step {100 * us / share:5.1f}%")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="an onnxruntime-genai decoder (model.onnx)")
    p.add_argument("--context", type=int, default=128)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--accuracy-level", type=int)
    p.add_argument("--prescale-queries", action="store_true")
    p.add_argument("--config", action="append", default=[])
    a = p.parse_args()
    if a.accuracy_level is None and not a.prescale_queries:
        step(a.model, a.context, a.config, a.profile)
        return
    edited = a.model.with_name(f".probe-{os.getpid()}-{a.model.name}")
    try:
        onnx.save(variant(a.model, a.accuracy_level, a.prescale_queries), edited)
        step(edited, a.context, a.config, a.profile)
    finally:
        edited.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
