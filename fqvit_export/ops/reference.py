"""PyTorch reference of the ``com.fqvit`` integer ops (FQ-ViT Sec. 3.2 PTS LayerNorm, Sec. 3.3 Log-Int-Softmax,
the GELU table, the integer-matmul epilogue).

This module is the executable form of ``docs/ops.md``: the quantized PyTorch model runs these functions, and the
ONNX function bodies and the C++/CUDA kernels are tested bit for bit against them. Integer steps use integer
dtypes; the few float32 steps are single IEEE operations in the order the document fixes (no fused multiply-add,
no reassociation), so any implementation that follows the order reproduces every output bit.
"""
from __future__ import annotations

import math

import torch

from ..quant.primitives import quantize
from .spec import (
    LIS_FRAC_BITS,
    LIS_MAX_BITS,
    LIS_MIN_BITS,
    LIS_NORM_BITS,
    LIS_POLY_B,
    LIS_POLY_C,
    LIS_ROOT_THRESHOLDS,
    LIS_VALUE_SHIFT,
    LOOKUP_TABLE_SIZE,
    MAX_ALPHA,
    MAX_ATTENTION_HEAD_DIM,
    MAX_ATTENTION_HEADS,
    MAX_ATTENTION_TOKENS,
    MAX_LIS_MULTIPLIER,
    MAX_LN_CHANNELS,
    MAX_QLINEAR_K,
)

__all__ = [
    "LIS_FRAC_BITS",
    "LIS_POLY_B",
    "LIS_POLY_C",
    "LIS_NORM_BITS",
    "LIS_VALUE_SHIFT",
    "MAX_LN_CHANNELS",
    "MAX_ALPHA",
    "MAX_LIS_MULTIPLIER",
    "code_type",
    "int8_codes",
    "int8_table",
    "lis_multiplier",
    "lis_code_thresholds",
    "pts_layernorm",
    "log_int_softmax",
    "lis_matmul",
    "lookup",
    "requantize",
    "qlinear",
    "residual_add",
    "lis_attention",
]

# The constants of docs/ops.md live in ops/spec.py (one statement for Python and, checked, for C++); re-exported here.

_CODE_RANGES = {torch.uint8: (0, 255), torch.int8: (-128, 127)}


def code_type(zero_point: int | torch.Tensor) -> torch.dtype:
    """The code type ``T`` an op's output takes from its zero point, as ONNX ``QuantizeLinear`` does (docs/ops.md
    Sec. 1, code types): int8 for an int8 tensor, uint8 otherwise (a Python int or a wider integer tensor holds a
    uint8 zero point)."""
    return torch.int8 if isinstance(zero_point, torch.Tensor) and zero_point.dtype == torch.int8 else torch.uint8


def int8_codes(codes: torch.Tensor) -> torch.Tensor:
    """uint8 codes (or zero points) as the int8 codes of the CUDA target: ``u - 128`` (``q - zp`` unchanged)."""
    return (codes.to(torch.int32) - 128).to(torch.int8)


def int8_table(table: torch.Tensor) -> torch.Tensor:
    """A uint8 ``Lookup`` table as the int8 one: entry ``byte(u - 128) = u ^ 0x80`` holds ``table[u] - 128``."""
    return int8_codes(table[torch.arange(LOOKUP_TABLE_SIZE) ^ 0x80])


def _quantize_code(v: torch.Tensor, scale: torch.Tensor, zero_point: int | torch.Tensor) -> torch.Tensor:
    """``QuantizeLinear(v, scale, zero_point)`` to the zero point's code type (clamped to its range)."""
    dtype = code_type(zero_point)
    lo, hi = _CODE_RANGES[dtype]
    zp = int(zero_point)
    if not lo <= zp <= hi:
        raise ValueError(f"zero point {zp} outside the {dtype} code range {lo}..{hi}")
    return quantize(v, torch.as_tensor(scale, dtype=torch.float32), torch.as_tensor(zp), lo, hi).to(dtype)


def lis_multiplier(scale: float | torch.Tensor) -> int:
    """M = round_half_even(s * 2^L / ln 2): input units to ``ln(2) / 2^L`` units, from the float32 input scale."""
    s = float(torch.as_tensor(scale, dtype=torch.float32))
    return int(round(s * (1 << LIS_FRAC_BITS) / math.log(2.0)))


def lis_code_thresholds(bits: int) -> list[int]:
    """``T_k = 2^(2P - 1 - 2k)`` for codes ``k = 0 .. 2^bits - 2``: code k needs ``p^2 >= T_k``."""
    zero_code = (1 << bits) - 1
    return [1 << (2 * LIS_NORM_BITS - 1 - 2 * k) for k in range(zero_code)]


def _check_bits(bits: int) -> int:
    if not LIS_MIN_BITS <= bits <= LIS_MAX_BITS:
        raise ValueError(f"LIS supports {LIS_MIN_BITS}..{LIS_MAX_BITS} bits, got {bits}")
    return (1 << bits) - 1


def pts_layernorm(x: torch.Tensor, x_scale: torch.Tensor, x_zero_point: int | torch.Tensor, alpha: torch.Tensor,
                  gamma: torch.Tensor, beta: torch.Tensor, y_scale: torch.Tensor, y_zero_point: int | torch.Tensor,
                  epsilon: float) -> torch.Tensor:
    """``com.fqvit::PTSLayerNorm``: PTS-quantized rows in, quantized LayerNorm out (docs/ops.md Sec. 2).

    Codes are of type ``T`` (uint8, or int8 for the CUDA target): ``x`` and ``x_zero_point`` of one type, the output
    of ``y_zero_point``'s (:func:`code_type`); only ``q - zp`` enters the arithmetic.

    Steps per row of ``C`` channels:
      1. ``x_c = (q_c - zp) << alpha_c``                                  (int32, |x_c| <= 2040)
      2. ``S1 = sum x_c``, ``S2 = sum x_c^2``, ``D = C * S2 - S1^2``        (int64, exact, D >= 0)
      3. ``e = (f32(C * C) * eps) / (s * s)``                              (float32, per tensor)
      4. ``den = sqrt(f32(D) + e)``                                        (float32)
      5. ``y_c = f32(C * x_c - S1) / den`` or 0 when ``den == 0``          (numerator exact in float32)
      6. ``v_c = y_c * gamma_c + beta_c``                                  (two roundings, no FMA)
      7. ``out_c = clamp(round_half_even(v_c / y_scale) + y_zp, 0, 255)``  (ONNX QuantizeLinear)
    """
    C = x.shape[-1]
    if not 1 <= C <= MAX_LN_CHANNELS:
        raise ValueError(f"PTSLayerNorm supports 1..{MAX_LN_CHANNELS} channels, got {C}")
    eps32 = torch.tensor(epsilon, dtype=torch.float32)
    if not bool(torch.isfinite(eps32)) or float(eps32) < 0.0:  # the float32 attribute is what the kernels see
        raise ValueError(f"PTSLayerNorm epsilon must be a finite float32 value >= 0, got {epsilon}")
    if bool(((alpha < 0) | (alpha > MAX_ALPHA)).any()):
        raise ValueError(f"PTSLayerNorm alpha values must be in 0..{MAX_ALPHA}, got {alpha.min()}..{alpha.max()}")
    xs = torch.as_tensor(x_scale, dtype=torch.float32)
    xi = (x.to(torch.int32) - int(x_zero_point)) << alpha.to(torch.int32)
    s1 = xi.sum(dim=-1, keepdim=True, dtype=torch.int64)
    s2 = (xi * xi).sum(dim=-1, keepdim=True, dtype=torch.int64)
    d = C * s2 - s1 * s1
    e = (torch.tensor(float(C * C), dtype=torch.float32) * eps32) / (xs * xs)
    # torch's float32 sqrt is not correctly rounded (1 ulp off on ~16% of inputs here); the float64 sqrt of a
    # float32 value rounded back to float32 is (no float32 square root lies near a float32 rounding midpoint).
    den = torch.sqrt((d.to(torch.float32) + e).double()).float()
    num = (C * xi.to(torch.int64) - s1).to(torch.float32)
    y = torch.where(den > 0, num / den, torch.zeros((), dtype=torch.float32))
    v = y * gamma.to(torch.float32) + beta.to(torch.float32)
    return _quantize_code(v, y_scale, y_zero_point)


def log_int_softmax(x: torch.Tensor, multiplier: int, bits: int = 4, mask: torch.Tensor | None = None
                    ) -> torch.Tensor:
    """``com.fqvit::LogIntSoftmax``: logits in (uint8 or int8), uint8 log2 codes out (docs/ops.md Sec. 3).

    Code ``k < Z`` (``Z = 2^bits - 1``) stands for the probability ``2^-k``; code ``Z`` stands for exactly 0.
    ``mask`` (bool, broadcastable to ``x``) marks positions that get probability 0 (Swin's shifted windows).
    The input zero point cancels in ``x - max`` and the scale enters only through ``multiplier``.

    Steps per row over unmasked positions:
      1. ``d_j = q_j - max(q)``, ``t_j = d_j * M``                            (int64, t_j <= 0)
      2. ``n_j = (-t_j) >> L``, ``r_j = t_j + (n_j << L)`` in ``(-2^L, 0]``   (exp(t u) = 2^-n exp(r u))
      3. ``z_j = r_j * (r_j + B) + C``                                        (I-BERT polynomial, 0 < z < 2^31)
      4. ``e_j = z_j >> min(n_j, 62)``, ``S = sum e_j``                       (int64, no overflow)
      5. ``p_j = floor(e_j * 2^P / S)``                                       (0 <= p_j <= 2^P)
      6. ``code_j = #{k < Z : p_j^2 < 2^(2P - 1 - 2k)}``                      (round(-log2 p) in the log domain)
    """
    zero_code = _check_bits(bits)
    if not 0 <= int(multiplier) <= MAX_LIS_MULTIPLIER:
        raise ValueError(f"LogIntSoftmax multiplier must be in 0..{MAX_LIS_MULTIPLIER}, got {multiplier}")
    q = x.to(torch.int64)
    if mask is not None:
        mask = mask.to(torch.bool).expand(q.shape)
        q = q.masked_fill(mask, -256)  # below any uint8 or int8 code, so never the maximum
    t = (q - q.amax(dim=-1, keepdim=True)) * int(multiplier)
    n = (-t) >> LIS_FRAC_BITS
    r = t + (n << LIS_FRAC_BITS)
    z = r * (r + LIS_POLY_B) + LIS_POLY_C
    e = z >> n.clamp(max=62)
    if mask is not None:
        e = e.masked_fill(mask, 0)
    s = e.sum(dim=-1, keepdim=True).clamp(min=1)
    p = torch.div(e << LIS_NORM_BITS, s, rounding_mode="floor")
    # p^2 >= 2^(2P-1-2k)  <=>  p >= T'_k, the smallest integer whose square reaches the threshold (exact ints).
    sqrt_thr = torch.tensor(sorted(LIS_ROOT_THRESHOLDS[:zero_code]), dtype=torch.int64)
    code = zero_code - torch.searchsorted(sqrt_thr, p.contiguous(), right=True)
    return code.to(torch.uint8)


def lis_matmul(codes: torch.Tensor, v: torch.Tensor, v_scale: torch.Tensor, v_zero_point: int | torch.Tensor,
               y_scale: torch.Tensor, y_zero_point: int | torch.Tensor, bits: int = 4) -> torch.Tensor:
    """``com.fqvit::LISMatMul``: attention@V on LIS codes with shifts (docs/ops.md Sec. 4).

    ``codes`` are uint8; ``v`` and the output are codes of type ``T`` (the output of ``y_zero_point``'s type).

    ``acc[m, d] = sum_n (v[n, d] - zp_v) << (14 - codes[m, n])`` over codes below the zero code (exact integer sum),
    then ``out = QuantizeLinear((f32(acc) * v_scale) * 2^-14, y_scale, y_zp)``.
    The float64 matmul is exact: every term and partial sum is an integer below 2^53.
    """
    zero_code = _check_bits(bits)
    c = codes.to(torch.int64)
    w = torch.where(c < zero_code, torch.ones_like(c) << (LIS_VALUE_SHIFT - c).clamp(min=0), torch.zeros_like(c))
    vi = v.to(torch.int64) - int(v_zero_point)
    acc = torch.matmul(w.to(torch.float64), vi.to(torch.float64))
    val = acc.to(torch.float32) * torch.as_tensor(v_scale, dtype=torch.float32)
    val = val * torch.tensor(2.0 ** -LIS_VALUE_SHIFT, dtype=torch.float32)
    return _quantize_code(val, y_scale, y_zero_point)


def lookup(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """``com.fqvit::Lookup``: ``y = table[byte(x)]`` elementwise (docs/ops.md Sec. 1 (GELU table)).

    ``x`` and ``table`` are codes of one type ``T``; the index is the byte of ``x`` (``x mod 256``: ``x`` itself for
    uint8, ``x + 256`` for a negative int8), so the int8 table is the uint8 one with its halves swapped, minus 128.

    ``table`` holds 256 uint8 entries, ``T[c] = quantize(gelu(dequantize(c, fc1)), act)`` computed once by the
    exporter; ``y`` has the shape of ``x``. Purely integer: no rounding anywhere.
    """
    if table.dtype not in _CODE_RANGES or table.shape != (LOOKUP_TABLE_SIZE,):
        raise ValueError(f"Lookup needs a uint8 or int8 table of shape [{LOOKUP_TABLE_SIZE}], got {table.dtype} "
                         f"{list(table.shape)}")
    return table[x.long() & 0xFF]  # the byte of the code: x for uint8, x + 256 for a negative int8


def requantize(acc: torch.Tensor, multiplier: torch.Tensor, bias: torch.Tensor, y_scale: torch.Tensor,
               y_zero_point: int | torch.Tensor) -> torch.Tensor:
    """``com.fqvit::Requantize``: the integer-matmul epilogue, int32 accumulator in, codes of ``y_zero_point``'s type
    out (docs/ops.md Sec. 1).

    ``acc`` is the exact ``[..., N]`` accumulator (int32 or int64 values that fit int32), ``multiplier`` and ``bias``
    float32 ``[N]`` or one element (broadcast along the last axis):
      1. ``t = f32(acc)``                                            (round to nearest even)
      2. ``t = t * multiplier``                                      (one float32 rounding)
      3. ``t = t + bias``                                            (one rounding, no FMA)
      4. ``out = clamp(round_half_even(t / y_scale) + y_zp, 0, 255)``  (ONNX QuantizeLinear)
    """
    if acc.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"Requantize needs an int32 (or int64) accumulator, got {acc.dtype}")
    m = torch.as_tensor(multiplier, dtype=torch.float32)
    b = torch.as_tensor(bias, dtype=torch.float32)
    if acc.dim() == 0:
        raise ValueError("Requantize needs an accumulator of rank >= 1 ([..., N]), got a scalar")
    n = acc.shape[-1]
    for name, v in (("multiplier", m), ("bias", b)):
        if v.dim() > 1 or v.numel() not in (n, 1):
            raise ValueError(f"Requantize: {name} must have shape [N] = [{n}] or one element, got {list(v.shape)}")
    t = acc.to(torch.float32)
    t = t * m
    t = t + b
    return _quantize_code(t, y_scale, y_zero_point)


def qlinear(x: torch.Tensor, w: torch.Tensor, x_zero_point: int | torch.Tensor, multiplier: torch.Tensor,
            bias: torch.Tensor, y_scale: torch.Tensor, y_zero_point: int | torch.Tensor) -> torch.Tensor:
    """``com.fqvit::QLinear``: ``MatMulInteger`` with an int8 weight, then :func:`requantize`, in one op (docs/ops.md
    Sec. 5, fused ops).

    ``x`` holds codes of type ``T`` ``[..., K]``, ``w`` int8 ``[K, N]`` (weight zero point 0):
      1. ``acc = sum_k (x_k - x_zp) * w[k, n]`` (exact integer: ``K <= MAX_QLINEAR_K`` keeps it inside int32);
      2. ``y = requantize(acc, multiplier, bias, y_scale, y_zp)``.
    The float64 matmul is exact: every product and partial sum is an integer below 2^53.
    """
    if w.dtype != torch.int8 or w.dim() != 2:
        raise ValueError(f"QLinear needs an int8 weight of shape [K, N], got {w.dtype} {list(w.shape)}")
    if x.dim() == 0 or x.shape[-1] != w.shape[0]:
        raise ValueError(f"QLinear: X [..., K] and W [K, N] disagree on K: {list(x.shape)} and {list(w.shape)}")
    if w.shape[0] > MAX_QLINEAR_K:
        raise ValueError(f"QLinear: K = {w.shape[0]} exceeds {MAX_QLINEAR_K} (the int32 accumulator could overflow)")
    xi = x.to(torch.int64) - int(x_zero_point)
    acc = torch.matmul(xi.to(torch.float64), w.to(torch.float64)).to(torch.int64)
    return requantize(acc, multiplier, bias, y_scale, y_zero_point)


def residual_add(a: torch.Tensor, a_scale: torch.Tensor, a_zero_point: int | torch.Tensor, b: torch.Tensor,
                 b_scale: torch.Tensor, b_zero_point: int | torch.Tensor, y_scale: torch.Tensor,
                 y_zero_point: int | torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """``com.fqvit::ResidualAdd``: the residual add of a block on codes, dequantize both, add, quantize, in one op
    (docs/ops.md Sec. 5, fused ops).

    ``a`` (the residual stream) and ``b`` (the branch) are codes of one type ``T`` and one shape ``[..., C]``; the
    scales (and ``gamma``) are float32 ``[C]`` or one element along the last axis:
      1. ``u = f32(a - a_zp) * a_scale``;  ``v = f32(b - b_zp) * b_scale``;  ``v = v * gamma`` (timm's LayerScale;
         the exporter writes ``gamma = 1`` for a block without one: ``v * 1 == v`` exactly);
      2. ``t = u + v``;
      3. ``out = clamp(round_half_even(t / y_scale) + y_zp, qmin_T, qmax_T)`` (QuantizeLinear, per channel).
    """
    if a.shape != b.shape or a.dim() == 0:
        raise ValueError(f"ResidualAdd needs A and B of one shape [..., C], got {list(a.shape)} and {list(b.shape)}")
    c = a.shape[-1]
    params = {k: torch.as_tensor(v, dtype=torch.float32)
              for k, v in {"a_scale": a_scale, "b_scale": b_scale, "y_scale": y_scale, "gamma": gamma}.items()}
    for name, v in params.items():
        if v.dim() > 1 or v.numel() not in (c, 1):
            raise ValueError(f"ResidualAdd: {name} must have shape [C] = [{c}] or one element, got {list(v.shape)}")
    u = (a.to(torch.int32) - int(a_zero_point)).to(torch.float32) * params["a_scale"].reshape(-1)
    v = (b.to(torch.int32) - int(b_zero_point)).to(torch.float32) * params["b_scale"].reshape(-1)
    v = v * params["gamma"].reshape(-1)
    return _quantize_code(u + v, params["y_scale"].reshape(-1), y_zero_point)


def lis_attention(qkv: torch.Tensor, qkv_scale: torch.Tensor, qkv_zero_point: int | torch.Tensor,
                  qk_multiplier: torch.Tensor, logits_scale: torch.Tensor, logits_zero_point: int | torch.Tensor,
                  y_scale: torch.Tensor, y_zero_point: int | torch.Tensor, heads: int, lis_multiplier: int,
                  bits: int = 4) -> torch.Tensor:
    """``com.fqvit::LISAttention``: a ViT's attention from the qkv codes to the attention@V codes, one op (docs/ops.md
    Sec. 5, fused ops).

    ``qkv`` holds codes of type ``T`` ``[B, N, 3 * heads * D]`` (q, k, v of one point, timm's layout); with
    ``q, k, v`` its ``[B, heads, N, D]`` parts:
      1. ``acc = (q - zp) @ (k - zp)^T``        (exact integer: ``D <= MAX_ATTENTION_HEAD_DIM`` keeps it in int32);
      2. ``logits = requantize(acc, qk_multiplier, 0.0, logits_scale, logits_zp)``;
      3. ``codes = log_int_softmax(logits, lis_multiplier, bits)``  (no mask);
      4. ``out = lis_matmul(codes, v, qkv_scale, zp, y_scale, y_zp, bits)``;
      5. ``y = out`` as ``[B, N, heads * D]`` (heads outer, D inner: timm's ``transpose(1, 2).reshape``).
    """
    if qkv.dim() != 3:
        raise ValueError(f"LISAttention needs QKV of shape [B, N, 3 * heads * D], got {list(qkv.shape)}")
    if not 1 <= int(heads) <= MAX_ATTENTION_HEADS:
        raise ValueError(f"LISAttention: heads = {heads} must lie in 1..{MAX_ATTENTION_HEADS}")
    if qkv.shape[-1] % (3 * int(heads)):
        raise ValueError(f"LISAttention: QKV's last dimension {qkv.shape[-1]} is not 3 * heads * D for heads = "
                         f"{heads}")
    b, n, c3 = qkv.shape
    d = c3 // (3 * int(heads))
    if d > MAX_ATTENTION_HEAD_DIM:
        raise ValueError(f"LISAttention: D = {d} exceeds {MAX_ATTENTION_HEAD_DIM} (the int32 accumulator could "
                         "overflow)")
    if n > MAX_ATTENTION_TOKENS:
        raise ValueError(f"LISAttention: N = {n} tokens exceeds {MAX_ATTENTION_TOKENS}")
    q, k, v = qkv.reshape(b, n, 3, int(heads), d).permute(2, 0, 3, 1, 4)
    zp = int(qkv_zero_point)
    qi, ki = (t.to(torch.float64) - zp for t in (q, k))
    acc = torch.matmul(qi, ki.transpose(-1, -2)).to(torch.int64)  # exact: integers below 2^53
    logits = requantize(acc, torch.as_tensor(qk_multiplier, dtype=torch.float32).reshape(1),
                        torch.zeros(1, dtype=torch.float32), logits_scale, logits_zero_point)
    codes = log_int_softmax(logits, lis_multiplier, bits)
    out = lis_matmul(codes, v, qkv_scale, qkv_zero_point, y_scale, y_zero_point, bits)
    return out.transpose(1, 2).reshape(b, n, int(heads) * d)
