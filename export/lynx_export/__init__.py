"""lynx_export: trains the lynx-zoo variants in PyTorch and exports them to ONNX + manifests.

Pipeline (one module each): data -> tokenizer -> models (vision, connector, decoder) ->
train (pretraining, Lynx stages) -> graphs / onnx_io (export, storage, parity) -> goldens ->
manifest. `build` ties them together; `python -m lynx_export --help` is the entry point.
"""

__version__ = "0.1.0"
