"""Preprocessed input tensors: images -> the float32 NCHW batch an exported model takes, saved as ``.npy``.

The preprocessing is the model's own (its ``data_config`` metadata, applied with the same timm eval transform as
calibration and evaluation), so a program without Python image code (``examples/cpp/``, a Triton client) can be fed
exactly what ``fqvit_export.runtime`` sees.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["model_data_config", "preprocess_images", "save_tensor"]


def model_data_config(model: str | Path) -> dict:
    """The ``data_config`` metadata of an exported model.

    Raises:
        FileNotFoundError: no such model file.
        ValueError: the file is not an ONNX model, or carries no fqvit-export preprocessing metadata.
    """
    import onnx
    model = Path(model)
    if not model.is_file():
        raise FileNotFoundError(f"ONNX model not found: {model}")
    try:
        proto = onnx.load(str(model), load_external_data=False)
    except Exception as e:  # DecodeError and friends
        raise ValueError(f"{model} is not an ONNX model ({type(e).__name__})") from None
    meta = {p.key: p.value for p in proto.metadata_props}
    if "data_config" not in meta:
        raise ValueError(f"{model} carries no fqvit-export preprocessing metadata")
    return json.loads(meta["data_config"])


def preprocess_images(cfg: dict, images: Sequence[str | Path]) -> np.ndarray:
    """``[len(images), C, H, W]`` float32, C order: each image through the model's eval transform."""
    from PIL import Image
    from .data import eval_transform
    tf = eval_transform(cfg)
    out = []
    for path in images:
        if not Path(path).is_file():
            raise FileNotFoundError(f"image not found: {path}")
        try:
            with Image.open(path) as im:
                out.append(tf(im.convert("RGB")).numpy())
        except OSError as e:
            raise ValueError(f"cannot read image {path}: {e}") from None
    return np.ascontiguousarray(np.stack(out), dtype=np.float32)


def save_tensor(x: np.ndarray, path: str | Path, force: bool = False) -> Path:
    """Write ``x`` as a ``.npy`` file atomically (no partial file on error)."""
    from .files import atomic_write

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(x, dtype=np.float32))
    return atomic_write(path, write, force=force)
