"""PyTorch -> ONNX export, the flat storage layout of `onnx/`, and parity checks in ONNX Runtime.

Storage: every initializer of 1 KiB or more lives in external data. A tensor whose bytes already
sit in a shared data file (a frozen ViT or backbone, written once per build) is referenced there
by offset; every other tensor goes to the graph's own data file. All files stay in one flat folder
because ONNX Runtime rejects external data paths that leave the model's folder:

    onnx/llama-chat-small.data   <- frozen backbone tensors, shared by many decoder graphs
    onnx/lynx.decoder.onnx       -> references llama-chat-small.data (offsets) + lynx.decoder.data
    onnx/lynx.decoder.data       <- this variant's adapter weights
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from .graphs import TensorSpec

OPSET = 17
EXTERNAL_MIN_BYTES = 1024
ALIGN = 64


def export_graph(module: torch.nn.Module, args: tuple, inputs: list[TensorSpec], outputs: list[TensorSpec],
                 scratch: Path | None = None) -> onnx.ModelProto:
    """Traces `module(*args)` into an ONNX model with the contract's names and dynamic axes.

    With `scratch` (a folder) the graph goes through a file there instead of memory: a graph past
    protobuf's 2 GiB (an imported 7B decoder) must, torch then writes its weights as external data,
    and they are read back into the returned model.
    """
    dynamic_axes = {}
    for spec in inputs + outputs:
        axes = {i: d for i, d in enumerate(spec.shape) if isinstance(d, str)}
        if axes:
            dynamic_axes[spec.name] = axes
    buf = io.BytesIO()
    target = scratch / "graph.onnx" if scratch is not None else None
    module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # torch annotates `f` as a path, but the TorchScript exporter (dynamo=False) writes to any
        # file object, and torch itself passes `f` on under the same ignore; a buffer keeps it off disk
        torch.onnx.export(module, args, target or buf, input_names=[s.name for s in inputs],  # type: ignore[arg-type]
                          output_names=[s.name for s in outputs], dynamic_axes=dynamic_axes,
                          opset_version=OPSET, do_constant_folding=True, dynamo=False)
    if scratch is None:
        model = onnx.load_from_string(buf.getvalue())
    else:
        model = onnx.load(str(scratch / "graph.onnx"), load_external_data=True)
        for f in scratch.iterdir():
            f.unlink()  # the next graph starts from an empty folder
    got_in = [i.name for i in model.graph.input]
    got_out = [o.name for o in model.graph.output]
    if got_in != [s.name for s in inputs] or got_out != [s.name for s in outputs]:
        raise RuntimeError(f"exported names differ: inputs {got_in}, outputs {got_out}")
    # A fixed size the tracer could not prove stays a symbol there (the decoder's one logits
    # position comes from a slice): declare the spec's.
    for value, spec in zip(list(model.graph.input) + list(model.graph.output), inputs + outputs):
        for dim, want in zip(value.type.tensor_type.shape.dim, spec.shape):
            if isinstance(want, int) and dim.dim_value != want:
                dim.Clear()
                dim.dim_value = want
    return model


def _tensor_bytes(t: onnx.TensorProto) -> bytes:
    if t.HasField("raw_data") and t.raw_data:
        return t.raw_data
    return numpy_helper.to_array(t).tobytes()


def _digest(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class DataFile:
    """An external data file being written: content-addressed tensors at aligned offsets."""

    path: Path
    index: dict = field(default_factory=dict)  # tensor sha256 -> (offset, length)
    buf: bytearray = field(default_factory=bytearray)

    def add(self, data: bytes) -> tuple[int, int]:
        key = _digest(data)
        if key not in self.index:
            pad = (-len(self.buf)) % ALIGN
            self.buf.extend(b"\0" * pad)
            self.index[key] = (len(self.buf), len(data))
            self.buf.extend(data)
        return self.index[key]

    def write(self):
        self.path.write_bytes(bytes(self.buf))


def _big_initializers(model: onnx.ModelProto):
    for t in model.graph.initializer:
        if t.data_location != onnx.TensorProto.EXTERNAL and len(_tensor_bytes(t)) >= EXTERNAL_MIN_BYTES:
            yield t


def write_shared(path: Path, models: list[onnx.ModelProto]) -> DataFile:
    """Writes every large initializer of `models` (deduplicated) into one shared data file."""
    data = DataFile(path)
    for m in models:
        for t in _big_initializers(m):
            data.add(_tensor_bytes(t))
    data.write()
    return data


def place(model: onnx.ModelProto, graph_path: Path, shared: list[DataFile], own: DataFile | None) -> list[Path]:
    """Saves `model` at `graph_path` with large tensors in external data (shared first, else `own`).

    `own` may collect the tensors of several graphs of one variant; it is rewritten (append-only,
    so earlier offsets stay valid) after each graph. Returns the data files the graph references.
    """
    used: list[Path] = []
    for t in _big_initializers(model):
        data = _tensor_bytes(t)
        key = _digest(data)
        target = next((s for s in shared if key in s.index), None)
        if target is None:
            if own is None:
                continue  # stays inline
            target = own
        offset, length = target.add(data)
        t.ClearField("raw_data")
        for f in ("float_data", "int64_data", "int32_data", "double_data"):
            t.ClearField(f)
        t.data_location = onnx.TensorProto.EXTERNAL
        del t.external_data[:]
        for k, v in (("location", target.path.name), ("offset", str(offset)), ("length", str(length))):
            entry = t.external_data.add()
            entry.key, entry.value = k, v
        if target.path not in used:
            used.append(target.path)
    if own is not None and own.buf:
        own.write()
    graph_path.write_bytes(model.SerializeToString())
    onnx.checker.check_model(str(graph_path), full_check=False)
    return used


def replace_checked(path: Path, proto: onnx.ModelProto, check: Callable[[Path], float], tag: str) -> float:
    """Replaces the graph at `path` by `proto` once it passes: written beside `path` (external data
    paths are relative to the folder) as `.NAME.TAG.tmp.onnx`, held to `onnx.checker` and then to
    `check(written)`, which returns a measure (e.g. the largest difference to the former graph) or
    raises to refuse the graph. Returns that measure; a refused graph leaves `path` as it was."""
    tmp = path.with_name(f".{path.name}.{tag}.tmp.onnx")
    try:
        tmp.write_bytes(proto.SerializeToString())
        onnx.checker.check_model(str(tmp), full_check=False)
        measure = check(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return measure


def ort_session(path: Path, threads: int = 2):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """The largest absolute difference of two arrays; infinite when their shapes differ or the
    difference is not finite anywhere (a NaN would otherwise compare below every tolerance)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return float("inf")
    if not a.size:
        return 0.0
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return float(d.max()) if np.isfinite(d).all() else float("inf")


def max_abs_diff(torch_out, ort_out) -> float:
    worst = 0.0
    for a, b in zip(torch_out, ort_out):
        a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        if a.shape != b.shape:
            raise AssertionError(f"shape mismatch: torch {a.shape} vs onnxruntime {b.shape}")
        worst = max(worst, difference(a, b))
    return worst


def parity(module: torch.nn.Module, path: Path, args: tuple, names: list[str]) -> float:
    """Max abs difference between `module(*args)` and the ONNX graph at `path` on the same inputs."""
    module.eval()
    with torch.no_grad():
        ref = module(*args)
    if isinstance(ref, torch.Tensor):
        ref = (ref,)
    sess = ort_session(path)
    feeds = {n: a.detach().cpu().numpy() for n, a in zip(names, args)}
    got = sess.run(None, feeds)
    return max_abs_diff(ref, got)
