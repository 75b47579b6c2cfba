"""The graphs' tensor names agree on both sides: the exporter's table (graphs.TENSOR_NAMES, which
names every graph it exports) against docs/tensor-names.json, written from the runtime's table
(src/manifest/tensors.rs) and kept current by a Rust test (`LYNX_BLESS=1 cargo test --release --lib
tensor_names`)."""

import json

from lynx_export import graphs
from lynx_export.data import repo_root


def runtime_names() -> dict:
    return json.loads((repo_root() / "docs" / "tensor-names.json").read_text())


def test_the_exporter_names_tensors_as_the_runtime_does():
    assert graphs.TENSOR_NAMES == runtime_names()


def test_cache_names_expand_as_the_runtime_expects():
    names = runtime_names()
    assert graphs.kv_name("past", 1, "key") == "past_key_values.1.key" == names["past"].format(i=1, kv="key")
    assert graphs.kv_name("present", 0, "value") == "present.0.value"
    assert graphs.kv_name("cross", 2, "value") == "cross_key_values.2.value"
    assert list(graphs.KV) == names["kv"]
