"""ctypes binding of the kernels' plain C entry points (``custom_ops/include/fqvit_ops/c_api.h``).

The C API calls the ``com.fqvit`` kernels without onnxruntime, so a harness can hold the CUDA kernel, the CPU kernel
and the PyTorch reference side by side on the same bytes (``tests/test_cuda_kernels.py``, ``tools/gpu_check.py``) or
time one kernel alone (``bench/bench_gpu.py``). The argument types are declared here once, as the header states them,
so that no caller repeats them.

Why no torch: ``deploy`` is what a serving process imports, and it imports numpy and onnxruntime only. Every tensor
argument is therefore an *address*: an ``int`` (a raw pointer: a device pointer for the CUDA entries), ``None`` (an
absent optional input), a C-contiguous numpy array (host memory, for the CPU entries), or any object with a
``data_ptr()`` method (a torch tensor, contiguous; the caller imports torch). Arrays are row-major and contiguous, as
the header requires; the binding checks contiguity where the object can say, and cannot check device or dtype.

Which library: the entries are exported by ``libfqvit_ops_cuda.so`` (CPU and CUDA entries; it loads without a GPU or a
driver, the CUDA runtime being linked statically and not called until a CUDA entry runs). The CPU build
``libfqvit_ops.so`` exports only ``RegisterCustomOps`` and ``fqvit_registered_kernels`` (read by
:mod:`fqvit_export.deploy.kernels`).

Code types: every op has a uint8 entry ``fqvit_<op>_<cpu|cuda>`` and an int8 one ``..._i8`` with the same arguments
(the header's top comment lists which ports change type); ``int8=True`` picks the latter. CPU entries are
single-threaded and take ``isa`` (-1 automatic, 0 scalar, 1 AVX2, 2 AVX-512); CUDA entries, only in
``libfqvit_ops_cuda.so``, take a stream (an ``int`` ``cudaStream_t``, 0 the default stream) and do not synchronise.

Example::

    lib = KernelLibrary(custom_ops_library(cuda=True))
    x = np.arange(256, dtype=np.uint8)
    table, y = x[::-1].copy(), np.empty_like(x)
    lib.lookup("cpu", x, table, y, x.size, table.size)      # y[i] = table[x[i]], here 255 - i
"""
from __future__ import annotations

import ctypes
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["KernelLibrary", "KernelError", "ENTRIES", "DEVICES", "entry_name", "address"]

_V, _I32, _I64, _F32, _INT = ctypes.c_void_p, ctypes.c_int32, ctypes.c_int64, ctypes.c_float, ctypes.c_int
_I64P = ctypes.POINTER(ctypes.c_int64)

ENTRIES: dict[str, tuple[str, list]] = {
    "PTSLayerNorm": ("pts_layernorm", [_V, _V, _V, _V, _V, _I64, _I64, _F32, _I32, _F32, _F32, _I32]),
    "LogIntSoftmax": ("log_int_softmax", [_V, _I64P, _INT, _V, _I64P, _INT, _V, _I64, _INT]),
    "LISMatMul": ("lis_matmul", [_V, _V, _V, _I64, _I64, _I64, _I64, _F32, _I32, _F32, _I32, _INT]),
    "Lookup": ("lookup", [_V, _V, _V, _I64, _I64]),
    "Requantize": ("requantize", [_V, _V, _V, _V, _I64, _I64, _I64, _I64, _F32, _I32]),
    "QLinear": ("qlinear", [_V, _V, _I32, _V, _V, _F32, _I32, _V, _I64, _I64, _I64, _I64, _I64]),
    "ResidualAdd": ("residual_add", [_V, _V, _I32, _V, _V, _I32, _V, _I32, _V, _V, _I64, _I64, _I64, _I64, _I64, _I64]),
    "LISAttention": ("lis_attention", [_V, _V, _I64, _I64, _I64, _I64, _F32, _I32, _F32, _F32, _I32, _F32, _I32, _I64,
                                       _INT]),
}
"""Op type -> (the C entry's base name, its argument types before the trailing ``isa`` or ``stream``), in the
header's order."""
DEVICES = ("cpu", "cuda")
_TAIL = {"cpu": _INT, "cuda": _V}


class KernelError(RuntimeError):
    """A C entry returned non-zero; the message is ``fqvit_last_error()`` (for a failed CUDA launch it names the
    CUDA error and, for a GPU without a kernel image, its architecture and the library's)."""

    def __init__(self, entry: str, code: int, message: str) -> None:
        super().__init__(f"{entry} returned {code}: {message}")
        self.entry, self.code = entry, code


def entry_name(op: str, device: str, int8: bool = False) -> str:
    """The C symbol of ``op`` (an op type, ``"Lookup"``) on ``device`` (``cpu`` or ``cuda``) for a code type."""
    return f"fqvit_{ENTRIES[op][0]}_{device}" + ("_i8" if int8 else "")


def address(buf: Any) -> int | None:
    """The address a C entry receives for ``buf``: see the module docstring for what may be passed.

    Raises:
        ValueError: a numpy array or tensor that is not contiguous (the kernels index it as row-major).
        TypeError: anything else.
    """
    if buf is None or isinstance(buf, int):
        return buf
    if isinstance(buf, np.ndarray):
        if not buf.flags.c_contiguous:
            raise ValueError("a C entry needs a C-contiguous array")
        return buf.ctypes.data
    data_ptr = getattr(buf, "data_ptr", None)
    if callable(data_ptr):
        contiguous = getattr(buf, "is_contiguous", None)
        if callable(contiguous) and not contiguous():
            raise ValueError("a C entry needs a contiguous tensor")
        return int(data_ptr())
    raise TypeError(f"cannot pass a {type(buf).__name__} to a C entry (an int address, a numpy array or an object "
                    f"with data_ptr() is expected)")


def _shape(shape: Sequence[int]) -> ctypes.Array:
    """A host int64 array of the dims (one element at least: a rank-0 shape still needs a valid pointer)."""
    return (ctypes.c_int64 * max(1, len(shape)))(*shape)


class KernelLibrary:
    """A built ``libfqvit_ops_cuda.so`` with the argument types of every entry it exports set.

    Entries the library lacks (``_i8`` ones in a build that predates them) are simply absent: :meth:`has` and
    :meth:`int8_entries` say which are there, and calling a missing one raises :class:`KernelError` naming it.

    Attributes:
        path: the library file.
        cdll: the loaded ``ctypes.CDLL``, for entries this class does not wrap.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        """Load the library at ``path``.

        Raises:
            OSError: the file cannot be loaded, or it exports no C API (the CPU build ``libfqvit_ops.so``).
        """
        self.path = Path(path)
        self.cdll = ctypes.CDLL(str(self.path))
        if not self.has("fqvit_last_error"):
            raise OSError(f"{self.path} exports no C entry points (fqvit_ops/c_api.h): only libfqvit_ops_cuda.so "
                          f"does, and it loads without a GPU")
        self.cdll.fqvit_last_error.argtypes, self.cdll.fqvit_last_error.restype = [], ctypes.c_char_p
        self.cdll.fqvit_cpu_isa_name.argtypes, self.cdll.fqvit_cpu_isa_name.restype = [_INT], ctypes.c_char_p
        for op, (_, argtypes) in ENTRIES.items():
            for device in DEVICES:
                for int8 in (False, True):
                    name = entry_name(op, device, int8)
                    if hasattr(self.cdll, name):
                        fn = getattr(self.cdll, name)
                        fn.argtypes, fn.restype = argtypes + [_TAIL[device]], ctypes.c_int

    def has(self, name: str) -> bool:
        """Whether the library exports the C symbol ``name``."""
        return hasattr(self.cdll, name)

    def int8_entries(self, devices: Sequence[str] = DEVICES) -> bool:
        """Whether every op has its int8 entry on every device of ``devices``."""
        return all(self.has(entry_name(op, d, True)) for op in ENTRIES for d in devices)

    def last_error(self) -> str:
        """The message of the last failed call on this thread (``""`` if none)."""
        return self.cdll.fqvit_last_error().decode()

    def cpu_isa_name(self, isa: int = -1) -> str:
        """The CPU path ``isa`` resolves to on this machine (``"avx512"``, ...)."""
        return self.cdll.fqvit_cpu_isa_name(isa).decode()

    def cuda_architectures(self) -> str | None:
        """The architectures the CUDA build was compiled for (``"75-real,...,90-virtual"``; no CUDA API call, no GPU
        needed), or None for the CPU build."""
        if not self.has("fqvit_cuda_architectures"):
            return None
        fn = self.cdll.fqvit_cuda_architectures
        fn.argtypes, fn.restype = [], ctypes.c_char_p
        return fn().decode()

    def _call(self, op: str, device: str, int8: bool, args: list, isa: int, stream: int | None) -> None:
        name = entry_name(op, device, int8)
        if not self.has(name):
            raise KernelError(name, -1, f"{self.path.name} exports no {name}")
        rc = getattr(self.cdll, name)(*args, isa if device == "cpu" else stream)
        if rc != 0:
            raise KernelError(name, rc, self.last_error())

    def pts_layernorm(self, device: str, x: Any, alpha: Any, gamma: Any, beta: Any, y: Any, rows: int, channels: int,
                      x_scale: float, x_zero_point: int, epsilon: float, y_scale: float, y_zero_point: int, *,
                      int8: bool = False, isa: int = -1, stream: int | None = 0) -> None:
        """PTSLayerNorm over ``x`` [rows, channels] into ``y`` (docs/ops.md Sec. 2); alpha uint8, gamma and beta
        float32 per channel."""
        self._call("PTSLayerNorm", device, int8,
                   [address(x), address(alpha), address(gamma), address(beta), address(y), rows, channels, x_scale,
                    x_zero_point, epsilon, y_scale, y_zero_point], isa, stream)

    def log_int_softmax(self, device: str, x: Any, x_shape: Sequence[int], mask: Any, mask_shape: Sequence[int] | None,
                        codes: Any, multiplier: int, bits: int, *, int8: bool = False, isa: int = -1,
                        stream: int | None = 0) -> None:
        """LogIntSoftmax over the last axis of ``x`` into uint8 ``codes`` (docs/ops.md Sec. 3), with an optional
        bool ``mask`` broadcast to ``x``. The shapes are host values (the binding passes them as int64 arrays)."""
        m_shape = _shape(mask_shape) if mask is not None and mask_shape is not None else None
        m_rank = len(mask_shape) if m_shape is not None else 0
        self._call("LogIntSoftmax", device, int8,
                   [address(x), _shape(x_shape), len(x_shape), address(mask), m_shape, m_rank, address(codes),
                    multiplier, bits], isa, stream)

    def lis_matmul(self, device: str, a: Any, v: Any, y: Any, batch: int, m: int, n: int, d: int, v_scale: float,
                   v_zero_point: int, y_scale: float, y_zero_point: int, bits: int, *, int8: bool = False,
                   isa: int = -1, stream: int | None = 0) -> None:
        """LISMatMul: uint8 LIS codes ``a`` [batch, m, n] times ``v`` [batch, n, d] into ``y`` [batch, m, d]."""
        self._call("LISMatMul", device, int8,
                   [address(a), address(v), address(y), batch, m, n, d, v_scale, v_zero_point, y_scale, y_zero_point,
                    bits], isa, stream)

    def lookup(self, device: str, x: Any, table: Any, y: Any, n: int, table_size: int, *, int8: bool = False,
               isa: int = -1, stream: int | None = 0) -> None:
        """Lookup: ``y[i] = table[x[i]]`` for ``i < n``; ``table_size`` must be 256."""
        self._call("Lookup", device, int8, [address(x), address(table), address(y), n, table_size], isa, stream)

    def requantize(self, device: str, a: Any, multiplier: Any, bias: Any, y: Any, numel: int, n: int,
                   multiplier_size: int, bias_size: int, y_scale: float, y_zero_point: int, *, int8: bool = False,
                   isa: int = -1, stream: int | None = 0) -> None:
        """Requantize: int32 ``a`` [numel / n, n] into codes ``y``, channel ``i % n``; ``multiplier_size`` and
        ``bias_size`` are ``n`` or 1 (broadcast)."""
        self._call("Requantize", device, int8,
                   [address(a), address(multiplier), address(bias), address(y), numel, n, multiplier_size, bias_size,
                    y_scale, y_zero_point], isa, stream)

    def qlinear(self, device: str, x: Any, w: Any, x_zero_point: int, multiplier: Any, bias: Any, y_scale: float,
                y_zero_point: int, y: Any, m: int, k: int, n: int, multiplier_size: int, bias_size: int, *,
                int8: bool = False, isa: int = -1, stream: int | None = 0) -> None:
        """QLinear: codes ``x`` [m, k] times int8 ``w`` [k, n] into codes ``y`` [m, n] through Requantize's epilogue;
        ``multiplier_size`` and ``bias_size`` are ``n`` or 1 (broadcast)."""
        self._call("QLinear", device, int8,
                   [address(x), address(w), x_zero_point, address(multiplier), address(bias), y_scale, y_zero_point,
                    address(y), m, k, n, multiplier_size, bias_size], isa, stream)

    def residual_add(self, device: str, a: Any, a_scale: Any, a_zero_point: int, b: Any, b_scale: Any,
                     b_zero_point: int, y_scale: Any, y_zero_point: int, gamma: Any, y: Any, numel: int, channels: int,
                     a_scale_size: int, b_scale_size: int, y_scale_size: int, gamma_size: int, *, int8: bool = False,
                     isa: int = -1, stream: int | None = 0) -> None:
        """ResidualAdd: codes ``a``, ``b`` [numel / channels, channels] into ``y``, channel ``i % channels``; the
        float32 scales and ``gamma`` have ``channels`` or 1 elements (their ``*_size``), ``gamma`` may be None with
        ``gamma_size`` 0 (no LayerScale)."""
        self._call("ResidualAdd", device, int8,
                   [address(a), address(a_scale), a_zero_point, address(b), address(b_scale), b_zero_point,
                    address(y_scale), y_zero_point, address(gamma), address(y), numel, channels, a_scale_size,
                    b_scale_size, y_scale_size, gamma_size], isa, stream)

    def lis_attention(self, device: str, qkv: Any, y: Any, batch: int, tokens: int, heads: int, head_dim: int,
                      qkv_scale: float, qkv_zero_point: int, qk_multiplier: float, logits_scale: float,
                      logits_zero_point: int, y_scale: float, y_zero_point: int, lis_multiplier: int, bits: int, *,
                      int8: bool = False, isa: int = -1, stream: int | None = 0) -> None:
        """LISAttention: codes ``qkv`` [batch, tokens, 3 * heads * head_dim] into codes ``y`` [batch, tokens,
        heads * head_dim] (q k^T, Requantize, LogIntSoftmax and LISMatMul in one kernel; docs/ops.md Sec. 5)."""
        self._call("LISAttention", device, int8,
                   [address(qkv), address(y), batch, tokens, heads, head_dim, qkv_scale, qkv_zero_point, qk_multiplier,
                    logits_scale, logits_zero_point, y_scale, y_zero_point, lis_multiplier, bits], isa, stream)
