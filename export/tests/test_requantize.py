"""The shipped int8 variants use unsigned int8 weights: exact integer kernels on every x86 CPU
(signed weights saturate without AVX-512 VNNI and change the answers: lynx_export/requantize.py)."""

from pathlib import Path

import onnx
from onnx import numpy_helper

from lynx_export.requantize import graphs_of

ROOT = Path(__file__).resolve().parents[2]


def test_graphs_of_reads_the_manifest():
    text = (ROOT / "variants" / "lynx.yaml").read_text()
    graphs = graphs_of(text)
    assert set(graphs) == {"vision", "connector", "embed", "decoder"}
    assert graphs["decoder"][0] == "onnx/lynx.decoder.onnx" and len(graphs["decoder"][1]) == 64


def test_shipped_int8_weights_are_unsigned():
    quantized = [p for p in (ROOT / "variants").glob("*.yaml") if "quantization: int8" in p.read_text()]
    assert quantized, "the zoo ships an int8 variant"
    for manifest in quantized:
        model = onnx.load(str(ROOT / graphs_of(manifest.read_text())["decoder"][0]))
        inits = {i.name: i for i in model.graph.initializer}
        weights = [n.input[1] for n in model.graph.node if n.op_type == "MatMulInteger"]
        assert weights, f"{manifest.name}: no MatMulInteger"
        for w in weights:
            assert numpy_helper.to_array(inits[w]).dtype.name == "uint8", f"{manifest.name}: {w} is signed"
