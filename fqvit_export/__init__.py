"""fqvit-export: FQ-ViT post-training quantization of timm ViT/DeiT/Swin, exported to integer ONNX.

The public API, importable from here (each name loads its module on first use, so that ``fqvit-export`` starts
without importing torch when it can answer at once)::

    from fqvit_export import ModelSpec, QuantConfig, calibrate, export_onnx, open_session
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "calibrate": "api", "evaluate": "api", "save_calibration": "api", "load_calibration": "api",
    "parity_check": "api", "Calibrated": "models.quantized",
    "ModelSpec": "models.registry", "create": "models.registry",
    "QuantConfig": "quant.point", "DataOptions": "data",
    "export_onnx": "export.onnx_export", "build_onnx": "export.onnx_export",
    "open_session": "deploy.session", "classify": "deploy.session", "parity": "deploy.session",
    "ModelCard": "deploy.card", "write_bundle": "deploy.bundle",
}
__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
