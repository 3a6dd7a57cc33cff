"""The kernels' C entry points (:mod:`fqvit_export.deploy.capi`) called on torch tensors, CPU or CUDA alike.

Harnesses that hold a kernel against the reference (``tests/test_cuda_kernels.py``, ``tools/gpu_check.py``) or time it
(``bench/bench_gpu.py``) think in tensors: the inputs of one case of :mod:`.op_cases` on a device, an output the
size the op gives. :class:`Ops` allocates that output beside the inputs, passes the tensors' addresses to the binding
(which imports no torch) and returns the output; :func:`call` runs one case by op type, with the scalars read from
the host inputs so that no device-to-host copy happens between kernels. The code type follows the tensors: int8
codes call the ``_i8`` entries, uint8 the plain ones.
"""
from __future__ import annotations

import numpy as np
import torch

from ..deploy.capi import KernelLibrary

__all__ = ["Ops", "prepare", "call"]


def _stream(device: str) -> int | None:
    """The stream a CUDA entry runs on: torch's current one, so that torch's events and synchronisation see it."""
    return torch.cuda.current_stream().cuda_stream if device == "cuda" else None


class Ops:
    """The C entries as torch calls; ``device`` (``cpu`` or ``cuda``) picks the entry, and the tensors must be there.

    Attributes:
        lib: the :class:`~fqvit_export.deploy.capi.KernelLibrary` called.
    """

    def __init__(self, lib: KernelLibrary) -> None:
        self.lib = lib

    def pts_layernorm(self, device: str, x: torch.Tensor, xs: float, xzp: int, alpha: torch.Tensor,
                      gamma: torch.Tensor, beta: torch.Tensor, ys: float, yzp: int, eps: float) -> torch.Tensor:
        """PTSLayerNorm through its C entry on ``device`` (``cpu`` or ``cuda``); the code type follows ``x``."""
        y = torch.empty_like(x)
        c = x.shape[-1]
        self.lib.pts_layernorm(device, x, alpha, gamma, beta, y, x.numel() // c if c else 0, c, xs, xzp, eps, ys, yzp,
                               int8=x.dtype == torch.int8, stream=_stream(device))
        return y

    def log_int_softmax(self, device: str, x: torch.Tensor, mask: torch.Tensor | None, mult: int, bits: int
                        ) -> torch.Tensor:
        """LogIntSoftmax through its C entry; the output codes are uint8 for both input code types."""
        y = torch.empty(x.shape, dtype=torch.uint8, device=x.device)  # LIS codes are uint8 for both code types
        self.lib.log_int_softmax(device, x, tuple(x.shape), mask, None if mask is None else tuple(mask.shape), y, mult,
                                 bits, int8=x.dtype == torch.int8, stream=_stream(device))
        return y

    def lis_matmul(self, device: str, a: torch.Tensor, v: torch.Tensor, vs: float, vzp: int, ys: float, yzp: int,
                   bits: int) -> torch.Tensor:
        """LISMatMul through its C entry; the output code type follows ``v``."""
        m, n, d = a.shape[-2], a.shape[-1], v.shape[-1]
        batch = a.numel() // (m * n) if m * n else 0
        y = torch.empty((*a.shape[:-1], d), dtype=v.dtype, device=a.device)
        self.lib.lis_matmul(device, a, v, y, batch, m, n, d, vs, vzp, ys, yzp, bits, int8=v.dtype == torch.int8,
                            stream=_stream(device))
        return y

    def lookup(self, device: str, x: torch.Tensor, table: torch.Tensor, y_offset: int = 0) -> torch.Tensor:
        """``y_offset`` > 0 writes into a buffer at that byte offset: an unaligned output."""
        buf = torch.empty(x.numel() + y_offset, dtype=x.dtype, device=x.device)
        y = buf[y_offset:].view(x.shape)
        self.lib.lookup(device, x, table, y, x.numel(), table.numel(), int8=x.dtype == torch.int8,
                        stream=_stream(device))
        return y

    def requantize(self, device: str, a: torch.Tensor, m: torch.Tensor, b: torch.Tensor, ys: float, yzp: int,
                   code: torch.dtype = torch.uint8) -> torch.Tensor:
        """``code`` is the output's code type: the input is int32 either way."""
        y = torch.empty(a.shape, dtype=code, device=a.device)
        self.lib.requantize(device, a, m, b, y, a.numel(), a.shape[-1], m.numel(), b.numel(), ys, yzp,
                            int8=code == torch.int8, stream=_stream(device))
        return y

    def qlinear(self, device: str, x: torch.Tensor, w: torch.Tensor, xzp: int, m: torch.Tensor, b: torch.Tensor,
                ys: float, yzp: int) -> torch.Tensor:
        """QLinear through its C entry; ``x`` [..., K] codes, ``w`` int8 [K, N]; the code type follows ``x``."""
        k, n = w.shape
        y = torch.empty((*x.shape[:-1], n), dtype=x.dtype, device=x.device)
        self.lib.qlinear(device, x, w, xzp, m, b, ys, yzp, y, x.numel() // k if k else 0, k, n, m.numel(), b.numel(),
                         int8=x.dtype == torch.int8, stream=_stream(device))
        return y

    def residual_add(self, device: str, a: torch.Tensor, a_scale: torch.Tensor, azp: int, b: torch.Tensor,
                     b_scale: torch.Tensor, bzp: int, y_scale: torch.Tensor, yzp: int, gamma: torch.Tensor | None
                     ) -> torch.Tensor:
        """ResidualAdd through its C entry; the scales and ``gamma`` (None: left out) on ``device``, the code type
        follows ``a``."""
        y = torch.empty_like(a)
        c = a.shape[-1]
        self.lib.residual_add(device, a, a_scale, azp, b, b_scale, bzp, y_scale, yzp, gamma, y, a.numel(), c,
                              a_scale.numel(), b_scale.numel(), y_scale.numel(), 0 if gamma is None else gamma.numel(),
                              int8=a.dtype == torch.int8, stream=_stream(device))
        return y

    def lis_attention(self, device: str, qkv: torch.Tensor, qkv_scale: float, qkv_zp: int, qk_multiplier: float,
                      logits_scale: float, logits_zp: int, ys: float, yzp: int, heads: int, lis_multiplier: int,
                      bits: int) -> torch.Tensor:
        """LISAttention through its C entry; ``qkv`` [B, N, 3 * heads * D] codes, the output [B, N, heads * D] of
        the same code type."""
        b, n, c3 = qkv.shape
        d = c3 // (3 * heads)
        y = torch.empty((b, n, heads * d), dtype=qkv.dtype, device=qkv.device)
        self.lib.lis_attention(device, qkv, y, b, n, heads, d, qkv_scale, qkv_zp, qk_multiplier, logits_scale,
                               logits_zp, ys, yzp, lis_multiplier, bits, int8=qkv.dtype == torch.int8,
                               stream=_stream(device))
        return y


def prepare(inputs: dict[str, np.ndarray], device: str | torch.device) -> dict[str, torch.Tensor]:
    """The numpy inputs of one case as contiguous torch tensors on ``device`` (``np.array`` keeps rank 0)."""
    return {k: torch.from_numpy(np.array(v)).to(device) for k, v in inputs.items()}


def call(ops: Ops, device: str, op: str, t: dict[str, torch.Tensor], inputs: dict[str, np.ndarray], attrs: dict,
         y_offset: int = 0) -> torch.Tensor:
    """Run one case of ``op`` on the CPU or CUDA kernel (``device``) through its C entry.

    Args:
        t: the case's tensors on that device (:func:`prepare`).
        inputs: the same inputs on the host, where the scalars are read (no device-to-host copy).
        attrs: the case's attributes.
        y_offset: Lookup only: write the output that many bytes into a buffer (an unaligned output).
    """
    if op == "PTSLayerNorm":
        return ops.pts_layernorm(device, t["X"], float(inputs["x_scale"]), int(inputs["x_zero_point"]), t["alpha"],
                                 t["gamma"], t["beta"], float(inputs["y_scale"]), int(inputs["y_zero_point"]),
                                 attrs["epsilon"])
    if op == "LogIntSoftmax":
        return ops.log_int_softmax(device, t["X"], t.get("mask"), attrs["multiplier"], attrs["bits"])
    if op == "LISMatMul":
        return ops.lis_matmul(device, t["A"], t["V"], float(inputs["v_scale"]), int(inputs["v_zero_point"]),
                              float(inputs["y_scale"]), int(inputs["y_zero_point"]), attrs["bits"])
    if op == "Lookup":
        return ops.lookup(device, t["X"], t["table"], y_offset)
    if op == "QLinear":
        return ops.qlinear(device, t["X"], t["W"], int(inputs["x_zero_point"]), t["multiplier"], t["bias"],
                           float(inputs["y_scale"]), int(inputs["y_zero_point"]))
    if op == "ResidualAdd":
        return ops.residual_add(device, t["A"], t["a_scale"], int(inputs["a_zero_point"]), t["B"], t["b_scale"],
                                int(inputs["b_zero_point"]), t["y_scale"], int(inputs["y_zero_point"]), t.get("gamma"))
    if op == "LISAttention":
        return ops.lis_attention(device, t["QKV"], float(inputs["qkv_scale"]), int(inputs["qkv_zero_point"]),
                                 float(inputs["qk_multiplier"]), float(inputs["logits_scale"]),
                                 int(inputs["logits_zero_point"]), float(inputs["y_scale"]),
                                 int(inputs["y_zero_point"]), attrs["heads"], attrs["lis_multiplier"], attrs["bits"])
    code = torch.int8 if np.asarray(inputs["y_zero_point"]).dtype == np.int8 else torch.uint8
    return ops.requantize(device, t["A"], t["multiplier"], t["bias"], float(inputs["y_scale"]),
                          int(inputs["y_zero_point"]), code)
