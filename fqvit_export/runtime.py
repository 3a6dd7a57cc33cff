"""onnxruntime sessions for fqvit-export models: providers, the custom-op library, parity metrics.

``open_session`` registers the ``com.fqvit`` kernel library when it is built (or named by
``FQVIT_CUSTOM_OPS_LIB``); without it onnxruntime inlines the ops' ONNX function bodies, which compute the same
bits (docs/ops.md), only slower.

The execution provider follows the model's export target (metadata ``target_device``): a ``cpu`` model (uint8
codes) runs on the CPU execution provider, a ``cuda`` model (int8 codes, every node placeable on CUDA) on the CUDA
one when onnxruntime-gpu offers it. A model on the other device still computes the same bits, only slowly (int8 x int8
``MatMulInteger`` on the CPU; uint8 ``MatMulInteger`` falling back to the CPU under CUDA): a :class:`DeviceWarning`
says so in one line.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

__all__ = ["Session", "DeviceWarning", "open_session", "parity", "default_providers", "providers_for", "model_target",
           "classify"]

CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"
PROVIDER_DEVICE = {CPU: "cpu", CUDA: "cuda"}


class DeviceWarning(UserWarning):
    """A model runs on a device it was not exported for (right results, slow)."""


def default_providers() -> list[str]:
    """CUDA first when onnxruntime-gpu offers it, then CPU."""
    available = ort.get_available_providers()
    return [p for p in (CUDA, CPU) if p in available]


def providers_for(target: str | None) -> list[str]:
    """The execution providers for a model exported for ``target`` (``cpu``, ``cuda``; None: not an fqvit-export
    integer model, e.g. the FP32 baseline): CPU for ``cpu``; CUDA then CPU for ``cuda`` when onnxruntime-gpu offers
    CUDA, else CPU; :func:`default_providers` otherwise."""
    if target == "cpu":
        return [CPU]
    if target == "cuda":
        return [CUDA, CPU] if CUDA in ort.get_available_providers() else [CPU]
    return default_providers()


def model_target(model: str | Path | bytes) -> str | None:
    """The ``target_device`` metadata of an ONNX file (or serialized model), None when it has none. Models exported
    before the option existed are cpu models: their metadata has ``com.fqvit.op_version`` but no target."""
    import onnx
    proto = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(str(model),
                                                                                    load_external_data=False)
    meta = {p.key: p.value for p in proto.metadata_props}
    return meta.get("target_device", "cpu" if "com.fqvit.op_version" in meta else None)


def _device_mismatch(target: str | None, provider: str) -> str | None:
    """The one-line warning for a model exported for ``target`` whose session runs on ``provider`` first."""
    device = PROVIDER_DEVICE.get(provider)
    if target is None or device is None or device == target:
        return None
    if target == "cuda":
        return ("this model was exported for CUDA (--device cuda) but runs on the CPU execution provider: same "
                "results, but its int8 x int8 MatMulInteger is slow there; export with --device cpu for the CPU")
    return ("this model was exported for the CPU (--device cpu) but runs on CUDA: its uint8 MatMulInteger nodes "
            "fall back to the CPU with copies around each; export with --device cuda for GPUs")


def _library(mode: str, cuda: bool) -> Path | None:
    if mode == "off":
        return None
    from ._lib import custom_ops_library
    lib = custom_ops_library(cuda=cuda) or (custom_ops_library(cuda=False) if cuda else None)
    if lib is None and mode == "on":
        raise FileNotFoundError("the com.fqvit custom-op library is not built (tools/build_custom_ops.sh) and "
                                "FQVIT_CUSTOM_OPS_LIB is not set")
    return lib


class Session:
    """A thin callable over ``onnxruntime.InferenceSession``: float32 NCHW batch in, logits out."""

    def __init__(self, path: str | Path | bytes, library: str = "auto", providers: list[str] | None = None,
                 threads: int | None = None, profile: bool = False) -> None:
        if isinstance(path, (str, Path)) and not Path(path).is_file():
            raise FileNotFoundError(f"ONNX model not found: {path}")
        self.target = model_target(path)
        self.providers = providers or providers_for(self.target)
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
        so.enable_profiling = profile
        # Keep DQ -> Add -> Q as written: onnxruntime's QLinearAdd fusion rounds differently from the PyTorch model
        # (only per-tensor residual adds, i.e. without --pts, would be fused; the integer matmuls are explicit).
        so.add_session_config_entry("session.disable_quant_qdq", "1")
        lib = _library(library, cuda=CUDA in self.providers)
        if lib is not None:
            so.register_custom_ops_library(str(lib))
        self.library = lib
        model = str(path) if isinstance(path, Path) else path
        self.session = ort.InferenceSession(model, so, providers=self.providers)
        self.input_name = self.session.get_inputs()[0].name
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.device_warning = _device_mismatch(self.target, self.session.get_providers()[0])
        if self.device_warning:
            warnings.warn(self.device_warning, DeviceWarning, stacklevel=2)

    @property
    def custom_ops(self) -> bool:
        return self.library is not None

    def labels(self) -> list[str] | None:
        """The class names the exporter stored (CIFAR-10's, ImageNet's or the user's ``--labels``), if any."""
        return json.loads(self.metadata["labels"]) if "labels" in self.metadata else None

    def weights(self) -> dict | None:
        """Where the model's weights came from (``{"source": "random"}`` etc.), as the exporter recorded it."""
        return json.loads(self.metadata["weights"]) if "weights" in self.metadata else None

    def preprocessing(self) -> dict:
        return json.loads(self.metadata["data_config"]) if "data_config" in self.metadata else {}

    def __call__(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        arr = x.numpy() if isinstance(x, torch.Tensor) else x
        return self.session.run(None, {self.input_name: np.ascontiguousarray(arr, dtype=np.float32)})[0]


def open_session(path: str | Path, library: str = "auto", providers: list[str] | None = None,
                 threads: int | None = None) -> Session:
    return Session(path, library, providers, threads)


def parity(onnx_logits, torch_logits) -> dict:
    """Agreement of two models' outputs on the same images: top-1 agreement (%), max / mean |logit difference|."""
    a = torch.as_tensor(np.asarray(onnx_logits)).float()
    b = torch.as_tensor(np.asarray(torch_logits)).float()
    diff = (a - b).abs()
    return {"top1_agreement": 100.0 * (a.argmax(1) == b.argmax(1)).float().mean().item(),
            "max_abs_logit_diff": diff.max().item() if diff.numel() else 0.0,
            "mean_abs_logit_diff": diff.mean().item() if diff.numel() else 0.0,
            "identical_logits": 100.0 * (diff.amax(1) == 0).float().mean().item() if diff.numel() else 100.0,
            "images": int(a.shape[0])}


def classify(model: str | Path | Session, images: list[str | Path], top: int = 5, library: str = "auto"
             ) -> list[dict]:
    """Top-``top`` classes per image, with their labels when the model has them; the preprocessing is the model's
    own (its ``data_config`` metadata). ``model`` is a file or an open :class:`Session` (``library`` is then unused)."""
    from .preprocess import preprocess_images
    sess = model if isinstance(model, Session) else open_session(model, library=library)
    cfg = sess.preprocessing()
    if not cfg:
        raise ValueError(f"{model if not isinstance(model, Session) else 'the model'} carries no fqvit-export "
                         f"preprocessing metadata")
    labels = sess.labels()
    results = []
    for path in images:
        probs = torch.softmax(torch.from_numpy(sess(preprocess_images(cfg, [path]))[0]).float(), 0)
        p, idx = probs.topk(min(top, probs.numel()))
        best = [{"class": int(i), "prob": float(v), **({"label": labels[int(i)]} if labels else {})}
                for v, i in zip(p, idx)]
        results.append({"image": str(path), "top": best})
    return results
