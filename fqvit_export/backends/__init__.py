"""One forward per model family, replayed by three backends: ``base`` (the vocabulary every backend speaks, and the
steps they share), ``torch_backend`` (calibration and the quantized PyTorch reference) and ``onnx_backend`` (the ONNX
graph)."""
