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


def test_requantize_works_on_a_zoo_of_groupqueryattention_decoders(tmp_path):
    """The shipped decoders are GroupQueryAttention graphs (export revision 5): the quantiser must
    type the contrib operator's outputs, and the goldens' greedy loop feed a decoder without
    `position_ids`."""
    import shutil

    import yaml

    from lynx_export.requantize import requantize

    zoo = tmp_path / "zoo"
    (zoo / "variants").mkdir(parents=True)
    shutil.copytree(ROOT / "onnx" / "goldens", zoo / "onnx" / "goldens")  # the goldens' pixels too
    for name in ("lynx", "lynx-int8"):
        text = (ROOT / "variants" / f"{name}.yaml").read_text()
        (zoo / "variants" / f"{name}.yaml").write_text(text)
        doc = yaml.safe_load(text)
        files = [doc["tokenizer"], doc["goldens"]] + [f for g in doc["graphs"].values() for f in [g] + g["external_data"]]
        for rel in (f["path"] for f in files):
            if not (zoo / rel).exists():
                shutil.copyfile(ROOT / rel, zoo / rel)
    out = requantize(zoo, "lynx-int8", "lynx", tmp_path / "tmp")
    assert out["max_logit_diff_vs_float"] < 0.25 and out["items"] >= 1, out
    model = onnx.load(str(zoo / "onnx" / "lynx-int8.decoder.onnx"), load_external_data=False)
    ops = {n.op_type for n in model.graph.node}
    assert {"GroupQueryAttention", "MatMulInteger"} <= ops and not model.graph.value_info
