"""Deploy: what serving an exported model needs, apart from calibration and export.

The model card (:mod:`.card`), sessions with the kernel library (:mod:`.session`, :mod:`.library`), the model's own
preprocessing (:mod:`.preprocess`), the C API binding of the kernels (:mod:`.capi`), the hand-off bundle
(:mod:`.bundle`), and what onnxruntime can place where (:mod:`.kernels`, :mod:`.placement`). Importing this package
and running a model needs numpy, onnxruntime and Pillow only (no torch, timm or onnx: ``tests/test_deploy.py`` runs it
in a fresh process with those blocked); writing a bundle or checking placement also needs ``onnx``.
"""
from __future__ import annotations

from .card import CardError, ModelCard
from .library import custom_ops_library
from .preprocess import ImageError, Preprocess, load_image
from .session import DeviceWarning, InputError, Session, classify, open_session, parity

__all__ = ["ModelCard", "CardError", "Session", "open_session", "classify", "parity", "DeviceWarning", "InputError",
           "Preprocess", "load_image", "ImageError", "custom_ops_library", "write_bundle"]


def __getattr__(name: str):
    if name == "write_bundle":  # needs onnx and tritonclient: loaded on first use
        from .bundle import write_bundle
        return write_bundle
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
