"""Re-quantise a shipped int8 variant's decoder from its float base variant, without a build cache.

Why: `quantize_dynamic` with signed int8 weights (QInt8) makes ONNX Runtime's x86 kernels multiply
uint8 activations by int8 weights with `vpmaddubsw`, whose 16-bit pair sums saturate on CPUs
without AVX-512 VNNI (AVX2 only): the same graph gives other logits, and other answers, on such a
machine (measured 2026-12-02 on an AMD EPYC with AVX2: logits off by up to 1.0 against goldens
made on a VNNI Xeon; a synthetic MatMul off by 5.0 against exact integer arithmetic). Unsigned
weights (QUInt8) take the u8u8 kernels, which widen to 16 bits first: exact integer arithmetic on
every x86 CPU, and closer to the float graph (0.17 vs 0.16 max error on that synthetic MatMul).

    python -m lynx_export requantize --variant lynx-int8 --base lynx

rewrites onnx/VARIANT.decoder.onnx from the base variant's float decoder, its goldens (ONNX Runtime
is the reference of a quantised graph), and the manifest's checksums and `provenance.parity.decoder`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx

from . import onnx_io as O
from .build import QUANTIZED_ATOL
from .ecosystem import GraphOwner, stamp_file
from .goldens import OrtGraphs, greedy
from .tokenizer import TextCodec

GRAPH_RE = re.compile(r"^  (vision|connector|embed|decoder):\n    path: (\S+)\n    sha256: \"?([0-9a-f]{64})\"?", re.M)


def graphs_of(manifest_text: str) -> dict[str, tuple[str, str]]:
    """role -> (path, sha256) of a manifest's graphs, from its text (the exporter has no YAML reader)."""
    return {m.group(1): (m.group(2), m.group(3)) for m in GRAPH_RE.finditer(manifest_text)}


def field(manifest_text: str, key: str) -> int:
    m = re.search(rf"^  {key}: (\d+)$", manifest_text, re.M)
    if not m:
        raise ValueError(f"manifest has no model.{key}")
    return int(m.group(1))


def quantize(float_path: Path, out: Path, tmp: Path) -> None:
    """Dynamic quantisation of every MatMul with unsigned 8-bit weights (see the module doc)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(float_path))  # resolves the external data next to the graph
    tmp.mkdir(parents=True, exist_ok=True)
    whole = tmp / f"{out.stem}.float.onnx"
    onnx.save(model, str(whole))
    # a GroupQueryAttention decoder (export revision 5): ONNX's shape inference does not type the
    # contrib operator's outputs, which are float32 like every activation here
    quantize_dynamic(str(whole), str(out), weight_type=QuantType.QUInt8,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    # and the shapes the quantiser's inference recorded are not kept: ONNX Runtime plans buffer
    # reuse by them, and they do not hold for the operator's outputs (gqa.py)
    quantized = onnx.load(str(out), load_external_data=False)
    del quantized.graph.value_info[:]
    onnx.save(quantized, str(out))
    onnx.checker.check_model(str(out))


def requantize(zoo: Path, variant: str, base: str, tmp: Path) -> dict:
    vpath, bpath = zoo / "variants" / f"{variant}.yaml", zoo / "variants" / f"{base}.yaml"
    vtext, btext = vpath.read_text(), bpath.read_text()
    vg, bg = graphs_of(vtext), graphs_of(btext)
    out = zoo / vg["decoder"][0]
    quantize(zoo / bg["decoder"][0], out, tmp)
    stamp_file(out, "decoder", GraphOwner(variant=variant))  # as the build writes it (ecosystem.py)

    # The goldens: same items and pixels, ONNX Runtime over the variant's graphs as the reference.
    golden_path = zoo / "onnx" / "goldens" / f"{variant}.json"
    doc = json.loads(golden_path.read_text())
    sessions = {role: O.ort_session(zoo / path) for role, (path, _) in vg.items()}
    codec = TextCodec.load(zoo / "onnx" / "tokenizer.json")
    layers, heads, head_dim = field(vtext, "layers"), field(vtext, "heads"), field(vtext, "head_dim")
    cross = "kind: cross_attention" in vtext
    diffs = []
    float_sessions = {**sessions, "decoder": O.ort_session(zoo / bg["decoder"][0])}
    for item in doc["items"]:
        pixels = None
        if item["pixel_values"] is not None:
            shape = item["pixel_values"]["shape"]
            pixels = np.fromfile(zoo / item["pixel_values"]["path"], dtype="<f4").reshape(shape)
        kw = dict(layers=layers, heads=heads, head_dim=head_dim, prefix=not cross, cross=cross,
                  max_new_tokens=doc["decoding"]["max_new_tokens"], eos=codec.eos)
        prompt = item["input_ids"][0]
        last, tokens = greedy(OrtGraphs(sessions), pixels, prompt, **kw)
        float_last, _ = greedy(OrtGraphs(float_sessions), pixels, prompt, **kw)
        diffs.append(float(np.max(np.abs(last - float_last))))
        item["last_logits"] = [round(float(x), 6) for x in last]
        item["greedy_tokens"] = tokens
        item["greedy_text"] = codec.decode(tokens).strip()
    doc["atol"] = QUANTIZED_ATOL
    golden_path.write_text(json.dumps(doc, separators=(",", ":")) + "\n")

    # The manifest: new checksums and the decoder's distance from its float graph.
    found = re.search(r"goldens:\n  path: \S+\n  sha256: \"?([0-9a-f]{64})", vtext)
    if found is None:
        raise ValueError(f"{vpath}: no `goldens:` block with a sha256")
    old_golden = found.group(1)
    vtext = vtext.replace(vg["decoder"][1], O.sha256_file(out)).replace(old_golden, O.sha256_file(golden_path))
    vtext = re.sub(r"^(    decoder: )\S+$", rf"\g<1>{max(diffs)}", vtext, count=1, flags=re.M)
    vpath.write_text(vtext)
    return {"decoder": str(out), "bytes": out.stat().st_size, "max_logit_diff_vs_float": max(diffs),
            "items": len(doc["items"])}
