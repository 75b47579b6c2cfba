"""Does ONNX Runtime read an initializer's external file when the tensor is given in memory? (issue 16)

Loads a zoo graph with every external initializer handed over with `AddInitializer` (a tensor of
the caller's memory, which ONNX Runtime uses in place), built from the verified file, twice: once
with the session's external-data folder holding the real file, once with a folder where the file
at the same name holds random bytes. If ONNX Runtime never read the named file, the two outputs
would be equal. They are not (the pooled position embedding of `vit-64.onnx` is constant-folded
from the file), which is why lynx-zoo does not load weights this way (docs/performance.md).

    PYTHONPATH=export .venv/bin/python export/probes/shared_initializer_probe.py --graph onnx/vit-64.onnx
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort


def run(model_path: Path, data: np.ndarray, folder: Path, pixels: np.ndarray) -> np.ndarray:
    model = onnx.load(str(model_path), load_external_data=False)
    options = ort.SessionOptions()
    keep = []
    for t in model.graph.initializer:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        entry = {e.key: e.value for e in t.external_data}
        offset, length = int(entry.get("offset", 0)), int(entry["length"])
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.data_type)
        value = ort.OrtValue.ortvalue_from_numpy(data[offset : offset + length].view(dtype).reshape(tuple(t.dims)))
        keep.append(value)
        options.add_initializer(t.name, value)
    options.add_session_config_entry("session.model_external_initializers_file_folder_path", str(folder.resolve()))
    session = ort.InferenceSession(model.SerializeToString(), options)
    name = session.get_inputs()[0].name
    return np.asarray(session.run(None, {name: pixels})[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--graph", type=Path, default=Path("onnx/vit-64.onnx"))
    parser.add_argument("--data", default="vit.data", help="its external-data file, in the same folder")
    args = parser.parse_args()
    real = args.graph.parent / args.data
    data = np.fromfile(real, dtype=np.uint8)
    model = onnx.load(str(args.graph), load_external_data=False)
    dims = [d.dim_value or 1 for d in model.graph.input[0].type.tensor_type.shape.dim]
    pixels = np.random.default_rng(0).standard_normal(dims).astype(np.float32)
    good = run(args.graph, data, args.graph.parent, pixels)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        shutil.copy(args.graph, folder / args.graph.name)
        (folder / args.data).write_bytes(np.random.default_rng(1).integers(0, 256, data.size, dtype=np.uint8).tobytes())
        swapped = run(folder / args.graph.name, data, folder, pixels)
    diff = float(np.nanmax(np.abs(good - swapped))) if np.isfinite(swapped).all() else float("nan")
    print(f"every tensor given from {real}; only the file at the named location swapped for random bytes:")
    print(f"  outputs equal: {np.array_equal(good, swapped)}; largest difference: {diff}")


if __name__ == "__main__":
    main()
