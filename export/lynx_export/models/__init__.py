"""Model components, one module per component (mirroring one ONNX graph per component)."""
