"""Quantization arithmetic as pure functions (FQ-ViT, Lin et al. 2021, Sec. 3.1 and 3.2).

Every rounding rule of the project's uniform quantizers lives here; observers, quantized modules and the ONNX
exporter call these functions and never re-derive a formula. The conventions are those of ONNX
``QuantizeLinear``/``DequantizeLinear`` so that the exported graph reproduces the PyTorch model:

* quantize:   ``q = clamp(round_half_even(x / scale) + zero_point, qmin, qmax)`` with the division in float32;
* dequantize: ``x = (q - zero_point) * scale`` in float32.

See ``docs/ops.md`` for the choices that differ from the FQ-ViT reference code.
"""
from __future__ import annotations

from typing import Callable

import torch

__all__ = [
    "EPS",
    "act_range",
    "weight_range",
    "qparams_from_minmax",
    "weight_qparams",
    "quantize",
    "dequantize",
    "fake_quantize",
    "quantize_weight",
    "pts_qparams",
    "pts_select_alpha",
    "pts_channel_scale",
    "pts_fake_quantize",
    "requant_scale",
    "activation_table",
    "gelu_table",
]

EPS = torch.finfo(torch.float32).eps
"""Smallest scale a quantizer may use; guards constant or all-zero tensors."""


def act_range(bits: int) -> tuple[int, int]:
    """Unsigned activation range ``[0, 2^bits - 1]``."""
    return 0, (1 << bits) - 1


def weight_range(bits: int) -> tuple[int, int]:
    """Restricted symmetric weight range ``[-(2^(b-1) - 1), 2^(b-1) - 1]`` (no -128, so +-max both fit)."""
    m = (1 << (bits - 1)) - 1
    return -m, m


def qparams_from_minmax(min_val: torch.Tensor, max_val: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Asymmetric per-tensor parameters covering ``[min(min_val, 0), max(max_val, 0)]``.

    The range always includes zero so that zero is exact (padding, masked values, ReLU-like outputs); FQ-ViT's code
    does not extend the range and clamps the zero point instead, which loses the top of all-positive ranges.

    Returns:
        ``scale`` (float32 scalar) and ``zero_point`` (int64 scalar).
    """
    qmin, qmax = act_range(bits)
    lo = torch.clamp(min_val.detach().double(), max=0.0)
    hi = torch.clamp(max_val.detach().double(), min=0.0)
    scale = ((hi - lo) / (qmax - qmin)).clamp(min=EPS).float()
    zero_point = (qmin - torch.round(lo / scale.double())).clamp(qmin, qmax).long()
    return scale, zero_point


def weight_qparams(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-output-channel symmetric scale ``max|w_c| / (2^(b-1) - 1)`` (dim 0 is the output channel).

    FQ-ViT divides by 127.5, which clips the largest weight of each channel by half a step; dividing by 127 keeps
    every weight inside the grid.
    """
    _, qmax = weight_range(bits)
    amax = weight.detach().abs().reshape(weight.shape[0], -1).amax(dim=1)
    return (amax.double() / qmax).clamp(min=EPS).float()


def _bshape(scale: torch.Tensor, x: torch.Tensor, axis: int) -> torch.Tensor:
    if scale.ndim == 0:
        return scale
    shape = [1] * x.ndim
    shape[axis] = -1
    return scale.reshape(shape)


def quantize(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, qmin: int, qmax: int,
             axis: int = -1) -> torch.Tensor:
    """ONNX ``QuantizeLinear``: ``clamp(round_half_even(x / scale) + zp, qmin, qmax)``, returned as int32.

    ``scale``/``zero_point`` are scalars or 1-D along ``axis``.
    """
    s = _bshape(scale.float(), x, axis)
    zp = _bshape(zero_point, x, axis).float()
    # round(x / s) + zp in float32 is exact whenever the result can land inside [qmin, qmax]; beyond 2^24 it may
    # round, but it is clamped to the same bound either way.
    q = torch.round(x.float() / s).add_(zp).clamp_(qmin, qmax)
    return q.to(torch.int32)


def dequantize(q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """ONNX ``DequantizeLinear``: ``(q - zp) * scale`` in float32."""
    s = _bshape(scale.float(), q, axis)
    zp = _bshape(zero_point, q, axis).float()
    return (q.float() - zp).mul_(s)  # q - zp is an exact integer in float32


def fake_quantize(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, qmin: int, qmax: int,
                  axis: int = -1) -> torch.Tensor:
    """``dequantize(quantize(x))``: the float value a QDQ pair in the exported graph produces."""
    return dequantize(quantize(x, scale, zero_point, qmin, qmax, axis), scale, zero_point, axis)


def quantize_weight(weight: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-channel int8 weight: returns ``(q int8, scale float32 [C_out])``."""
    qmin, qmax = weight_range(bits)
    scale = weight_qparams(weight, bits)
    q = quantize(weight, scale, torch.zeros_like(scale, dtype=torch.int64), qmin, qmax, axis=0)
    return q.to(torch.int8), scale


# --- Powers-of-Two Scale (FQ-ViT Sec. 3.2, Eq. 9-10) -------------------------------------------------------------

def pts_qparams(min_val: torch.Tensor, max_val: torch.Tensor, bits: int, max_alpha: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Base scale ``s`` and the shared zero point of a PTS quantizer from the global range over all channels.

    The widest channel scale ``s * 2^K`` covers the global range, so ``s = (max - min) / (2^b - 1) / 2^K``. The one
    zero point is computed with that widest scale (FQ-ViT's code does the same; the paper's Eq. 10 writes it with the
    base scale, which would put it outside ``[0, 2^b - 1]``). Every channel's grid therefore keeps the same share of
    negative and positive codes.
    """
    wide_scale, zero_point = qparams_from_minmax(min_val, max_val, bits)
    return (wide_scale.double() / (1 << max_alpha)).float(), zero_point


def pts_select_alpha(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, bits: int, max_alpha: int
                     ) -> torch.Tensor:
    """Per-channel ``alpha_c`` in ``{0..K}`` minimising the squared quantization error of ``x[..., c]``.

    Ties go to the smallest alpha (finest grid), as in FQ-ViT. ``x`` has channels last.
    """
    qmin, qmax = act_range(bits)
    xc = x.detach().float().reshape(-1, x.shape[-1])
    errors = []
    for alpha in range(max_alpha + 1):
        s = (scale.double() * (1 << alpha)).float()
        err = (fake_quantize(xc, s, zero_point, qmin, qmax) - xc).double().pow(2).sum(dim=0)
        errors.append(err)
    return torch.stack(errors).argmin(dim=0).to(torch.uint8)


def pts_channel_scale(scale: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Per-channel scale ``s * 2^alpha_c`` (exact in float32: a power-of-two multiple)."""
    return scale.float() * torch.pow(2.0, alpha.float())


def pts_fake_quantize(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, alpha: torch.Tensor, bits: int
                      ) -> torch.Tensor:
    """Fake-quantize channels-last ``x`` with per-channel scales ``s * 2^alpha_c`` and one zero point."""
    qmin, qmax = act_range(bits)
    zp = zero_point.expand(alpha.shape)
    return fake_quantize(x, pts_channel_scale(scale, alpha), zp, qmin, qmax, axis=-1)


# --- integer matmul epilogue and table functions (docs/ops.md Sec. 1) ---------------------------------------------

def requant_scale(*factors: float | torch.Tensor) -> torch.Tensor:
    """Product of scales in float32, left to right, one rounding per multiply: the multiplier that turns an exact
    integer accumulator into a real value (``f32(acc) * (s_x * s_w)``). The exporter stores this very tensor, so
    the ONNX graph and PyTorch use the same bits."""
    out = torch.as_tensor(factors[0], dtype=torch.float32)
    for f in factors[1:]:
        out = out * torch.as_tensor(f, dtype=torch.float32)
    return out


def activation_table(fn: Callable[[torch.Tensor], torch.Tensor], in_scale: torch.Tensor,
                     in_zero_point: torch.Tensor, out_scale: torch.Tensor, out_zero_point: torch.Tensor,
                     in_bits: int = 8, out_bits: int = 8) -> torch.Tensor:
    """uint8 -> uint8 lookup table ``T[c] = quantize(fn(dequantize(c)))`` for every input code (docs/ops.md Sec. 1).

    ``fn`` is an elementwise activation (the MLP's own module: GELU, tanh-GELU, QuickGELU, SiLU, ...) evaluated in
    float32 on the ``2^in_bits`` dequantized codes; elementwise means the table is exact for any tensor of codes."""
    codes = torch.arange(1 << in_bits, dtype=torch.int32)
    x = dequantize(codes, in_scale, in_zero_point).float()
    with torch.no_grad():
        y = fn(x.clone()).float()  # clone: an in-place activation must not touch x
    return quantize(y, out_scale, out_zero_point, 0, (1 << out_bits) - 1).to(torch.uint8)


def gelu_table(in_scale: torch.Tensor, in_zero_point: torch.Tensor, out_scale: torch.Tensor,
               out_zero_point: torch.Tensor, in_bits: int = 8, out_bits: int = 8) -> torch.Tensor:
    """:func:`activation_table` of the exact (erf) GELU."""
    return activation_table(torch.nn.functional.gelu, in_scale, in_zero_point, out_scale, out_zero_point, in_bits,
                            out_bits)
