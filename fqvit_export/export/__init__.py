"""ONNX export of calibrated models (graph backend, assembly, checks)."""
