"""onnxruntime sessions for fqvit-export models: providers, the custom-op library, the model card, parity metrics.

``open_session`` registers the ``com.fqvit`` kernel library when it is built (or named by
``FQVIT_CUSTOM_OPS_LIB``); without it onnxruntime inlines the ops' ONNX function bodies, which compute the same
bits (docs/ops.md), only slower. Needs numpy and onnxruntime only: a deployment process imports no torch.

The execution provider follows the model's export device (its card's ``device``): a ``cpu`` model (uint8 codes)
runs on the CPU execution provider, a ``cuda`` model (int8 codes, every node placeable on CUDA) on the CUDA one when
onnxruntime-gpu offers it. A model on the other device still computes the same bits, only slowly (int8 x int8
``MatMulInteger`` on the CPU; uint8 ``MatMulInteger`` falling back to the CPU under CUDA): a :class:`DeviceWarning`
says so in one line.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort

from .card import ModelCard

__all__ = ["Session", "DeviceWarning", "InputError", "open_session", "parity", "default_providers", "providers_for",
           "model_device", "classify", "session_options"]

CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"
PROVIDER_DEVICE = {CPU: "cpu", CUDA: "cuda"}


class DeviceWarning(UserWarning):
    """A model runs on a device it was not exported for (right results, slow)."""


def default_providers() -> list[str]:
    """CUDA first when onnxruntime-gpu offers it, then CPU."""
    available = ort.get_available_providers()
    return [p for p in (CUDA, CPU) if p in available]


def providers_for(device: str | None) -> list[str]:
    """The execution providers for a model exported for ``device`` (``cpu``, ``cuda``; None: not an fqvit-export
    integer model, e.g. the FP32 baseline): CPU for ``cpu``; CUDA then CPU for ``cuda`` when onnxruntime-gpu offers
    CUDA, else CPU; :func:`default_providers` otherwise."""
    if device == "cpu":
        return [CPU]
    if device == "cuda":
        return [CUDA, CPU] if CUDA in ort.get_available_providers() else [CPU]
    return default_providers()


def model_device(model: str | Path | bytes) -> str | None:
    """The export device of an fqvit-export model (its card's ``device``: ``cpu`` for files older than the option),
    None for any other model (e.g. the FP32 baseline)."""
    card = ModelCard.read(model, strict=False)
    return card.device if card else None


def _device_mismatch(device: str | None, provider: str) -> str | None:
    """The one-line warning for a model exported for ``device`` whose session runs on ``provider`` first."""
    running = PROVIDER_DEVICE.get(provider)
    if device is None or running is None or running == device:
        return None
    if device == "cuda":
        return ("this model was exported for CUDA (--device cuda) but runs on the CPU execution provider: same "
                "results, but its int8 x int8 MatMulInteger is slow there; export with --device cpu for the CPU")
    return ("this model was exported for the CPU (--device cpu) but runs on CUDA: its uint8 MatMulInteger nodes "
            "fall back to the CPU with copies around each; export with --device cuda for GPUs")


class InputError(ValueError):
    """The batch handed to a session cannot be right (non-finite values); the message is for the user as is."""


def _library(mode: str, cuda: bool) -> Path | None:
    if mode == "off":
        return None
    from .library import custom_ops_library
    lib = custom_ops_library(cuda=cuda) or (custom_ops_library(cuda=False) if cuda else None)
    if lib is None and mode == "on":
        raise FileNotFoundError("the com.fqvit custom-op library is not built (tools/build_custom_ops.sh) and "
                                "FQVIT_CUSTOM_OPS_LIB is not set")
    return lib


def session_options(library: Path | None = None, threads: int | None = None, profile: bool = False
                    ) -> ort.SessionOptions:
    """The session options every fqvit-export model needs: the kernel library registered (when given) and
    onnxruntime's QDQ fusions off; and a pool that stops spinning between runs.

    ``session.disable_quant_qdq`` keeps DQ -> Add -> Q as written: onnxruntime's QLinearAdd fusion rounds differently
    from the PyTorch model (only per-tensor residual adds, i.e. without --pts, would be fused; the integer matmuls are
    explicit). ``session.force_spinning_stop``: the intra-op threads spin while a run lasts (onnxruntime's default,
    which a model of many short parallel ops needs: deit_small at batch 1 ran 16% faster than with spinning off) and
    stop when it returns, so an idle session does not hold the cores."""
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    so.enable_profiling = profile
    so.add_session_config_entry("session.disable_quant_qdq", "1")
    so.add_session_config_entry("session.force_spinning_stop", "1")
    if library is not None:
        so.register_custom_ops_library(str(library))
    return so


class Session:
    """A thin callable over ``onnxruntime.InferenceSession``: float32 NCHW batch in, logits out.

    Attributes:
        card: the model's :class:`~fqvit_export.deploy.card.ModelCard`, or None for a model not made by
            fqvit-export (the FP32 baseline).
        device: the card's export device (None without a card).
        providers: the execution providers asked for; ``library``: the kernel library registered, or None.
    """

    def __init__(self, path: str | Path | bytes, library: str = "auto", providers: list[str] | None = None,
                 threads: int | None = None, profile: bool = False) -> None:
        self.card = ModelCard.read(path, strict=False)
        self.device = self.card.device if self.card else None
        self.providers = providers or providers_for(self.device)
        lib = _library(library, cuda=CUDA in self.providers)
        self.library = lib
        model = str(path) if isinstance(path, Path) else path
        self.session = ort.InferenceSession(model, session_options(lib, threads, profile), providers=self.providers)
        self.input_name = self.session.get_inputs()[0].name
        self.device_warning = _device_mismatch(self.device, self.session.get_providers()[0])
        if self.device_warning:
            warnings.warn(self.device_warning, DeviceWarning, stacklevel=2)

    @property
    def custom_ops(self) -> bool:
        """Whether the kernel library is registered (else the ops' function bodies run)."""
        return self.library is not None

    def __call__(self, x) -> np.ndarray:
        """Logits of a preprocessed float32 NCHW batch (a numpy array, or anything ``np.asarray`` takes).

        Raises:
            InputError: the batch holds NaN or infinite values. The bare ONNX model would quantize them to codes
                like any other value and return finite, confident logits (README, reliability), so the wrapper refuses.
        """
        arr = np.ascontiguousarray(np.asarray(x), dtype=np.float32)
        if not np.isfinite(arr).all():
            bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
            raise InputError(f"the input batch holds {bad} non-finite value{'s' if bad != 1 else ''} (NaN or Inf) "
                             f"of {arr.size}; a quantized model would turn them into confident logits, so they are "
                             f"refused: check the image decoding and preprocessing")
        return self.session.run(None, {self.input_name: arr})[0]


def open_session(path: str | Path, library: str = "auto", providers: list[str] | None = None,
                 threads: int | None = None) -> Session:
    """A :class:`Session` for ``path``: its card's device picks the providers, ``library`` is ``auto`` (the kernel
    library when built), ``on`` (required) or ``off`` (the ops' ONNX function bodies)."""
    return Session(path, library, providers, threads)


def parity(onnx_logits, torch_logits) -> dict:
    """Agreement of two models' outputs on the same images: top-1 agreement (%), max / mean |logit difference|, and
    the share of images whose logits are identical."""
    a = np.asarray(onnx_logits, dtype=np.float32)
    b = np.asarray(torch_logits, dtype=np.float32)
    diff = np.abs(a - b)
    n = int(a.shape[0])
    return {"top1_agreement": 100.0 * float(np.mean(a.argmax(1) == b.argmax(1))) if n else 100.0,
            "max_abs_logit_diff": float(diff.max()) if diff.size else 0.0,
            "mean_abs_logit_diff": float(diff.mean()) if diff.size else 0.0,
            "identical_logits": 100.0 * float(np.mean(diff.max(1) == 0)) if diff.size else 100.0,
            "images": n}


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max()
    e = np.exp(z)
    return e / e.sum()


def classify(model: str | Path | Session, images: list[str | Path], top: int = 5, library: str = "auto"
             ) -> list[dict]:
    """Top-``top`` classes per image, with their labels when the model has them; the preprocessing is the model's
    own (its card's ``data_config``). ``model`` is a file or an open :class:`Session` (``library`` is then unused)."""
    from .preprocess import Preprocess
    sess = model if isinstance(model, Session) else open_session(model, library=library)
    if sess.card is None:
        raise ValueError(f"{model if not isinstance(model, Session) else 'the model'} carries no fqvit-export "
                         f"preprocessing metadata")
    prep, labels = Preprocess(sess.card.data_config), sess.card.labels
    results = []
    for path in images:
        probs = _softmax(sess(prep.batch([path]))[0])
        idx = np.argsort(-probs, kind="stable")[:top]
        best = [{"class": int(i), "prob": float(probs[i]), **({"label": labels[int(i)]} if labels else {})}
                for i in idx]
        results.append({"image": str(path), "top": best})
    return results
