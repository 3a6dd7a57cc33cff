"""Backends that run one model description three ways: calibrate, quantized PyTorch, ONNX graph.

The model adapters (:mod:`fqvit_export.models.adapters`) write each network once against the small vocabulary below.
:class:`CalibrateBackend` runs it in float and feeds every quantization point's observer (FQ-ViT calibrates on float
activations); :class:`QuantBackend` runs it quantized with the reference integer ops of
:mod:`fqvit_export.ops.reference`; the ONNX exporter (:mod:`fqvit_export.backends.onnx_backend`) emits the same sequence
as QDQ and ``com.fqvit`` nodes. One description means the exported graph cannot drift from the PyTorch model.

Values are backend-specific: float tensors ("F") and quantized tensors ("Q", uint8 in :class:`QuantBackend`, the
float tensor itself while calibrating). Reshape targets use ONNX conventions: ``0`` copies the input dimension,
``-1`` is inferred.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import BackendBase, ln_affine, ln_alpha, mean_multiplier, patch_size, window_logits_shape, \
    window_mask
from ..ops import reference as R
from ..quant.primitives import quantize_weight, requant_scale
from ..quant.point import QuantConfig, QuantPoint

__all__ = ["TorchBackend", "CalibrateBackend", "QuantBackend"]


def _exact_matmul(a: torch.Tensor, b: torch.Tensor, max_term: int) -> torch.Tensor:
    """``f32(a @ b)`` of integer-valued float32 operands, computed exactly (the integer accumulator of
    MatMulInteger, rounded once to float32).

    A float32 matmul is exact whatever its summation order while every partial sum stays below 2^24, i.e. for
    ``K * max_term < 2^24``; longer reductions are split into such chunks and the chunks summed in float64 (exact).
    """
    k = a.shape[-1]
    chunk = (1 << 24) // max_term
    if k <= chunk:
        return a @ b
    acc = sum((a[..., i:i + chunk] @ b[..., i:i + chunk, :]).double() for i in range(0, k, chunk))
    return acc.float()


class TorchBackend(BackendBase):
    """The :class:`~fqvit_export.backends.base.Backend` vocabulary on PyTorch tensors; layout ops are identical for
    float and quantized values."""

    # -- layout (value-agnostic) ---------------------------------------------------------------------------------
    def reshape(self, x, shape: Sequence[int]):
        shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
        return x.reshape(shape)

    def permute(self, x, perm: Sequence[int]):
        return x.permute(*perm)

    def select(self, x, axis: int, index: int):
        return x.select(axis, index)

    def gather(self, x, index: torch.Tensor, axis: int):
        return x.index_select(axis, index)

    def prepend_token(self, x, token: torch.Tensor):
        """Float ``[1, T, C]`` prefix tokens (class, distillation, register) before the float ``[B, N, C]`` tokens."""
        return torch.cat([token.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)

    def append_zero_token(self, q, name: str, channels: int):
        """One more token holding the value 0 (the code ``zp`` of point ``name``): the padding timm's Swin adds for
        windows and patch merging, reached through a gather index."""
        return torch.cat([q, torch.zeros_like(q[:, :1])], dim=1)

    # -- float math ------------------------------------------------------------------------------------------------
    def add(self, a, b):
        return a + b

    def scale(self, x, factor: torch.Tensor, name: str):
        """``x * factor`` in float32 (LayerScale's per-channel gamma, the distilled head's 1/2): one IEEE multiply."""
        return x * factor.detach().float()

    def softmax_float(self, x, mask: torch.Tensor | None, heads: int = 0):
        """Float softmax over the last axis, Swin's shift mask added first as timm adds it (attention without
        LIS)."""
        return torch.softmax(self._masked(x, mask), dim=-1)

    @staticmethod
    def _masked(x, mask: torch.Tensor | None):
        """Add Swin's float shift mask ``[nW, N, N]`` to logits ``[B*nW, H, N, N]`` as timm does."""
        if mask is None:
            return x
        return (x.reshape(window_logits_shape(mask, x.shape[1])) + window_mask(mask)).reshape(x.shape)


class CalibrateBackend(TorchBackend):
    """Float forward that feeds each point's observer; ``last`` marks the final calibration batch."""

    def __init__(self, points: dict[str, QuantPoint], config: QuantConfig, last: bool = False) -> None:
        super().__init__(points, config)
        self.last = last

    def _observe(self, x: torch.Tensor, name: str, ln_input: bool = False, bits: int | None = None) -> None:
        if name not in self.points:
            c = self.config
            self.points[name] = QuantPoint(bits or c.a_bits, c.method, pts=ln_input and c.pts,
                                           max_alpha=c.pts_max_alpha)
        self.points[name].observe(x, self.last)

    def quant(self, x, name: str, ln_input: bool = False):
        self._observe(x, name, ln_input)
        return x

    def dequant(self, q, name: str):
        return q

    def qconst(self, t: torch.Tensor, name: str):
        self._observe(t, name)
        return t

    def qlinear(self, x, in_name: str, mod: nn.Linear, name: str):
        return F.linear(x, mod.weight, mod.bias)

    def patch_embed(self, x, in_name: str, conv: nn.Conv2d, name: str, grid: tuple[int, int] = (0, 0)):
        patch_size(conv)
        return conv(x).flatten(2).transpose(1, 2)

    def qmatmul(self, a, a_name: str, b, b_name: str, multiplier: float = 1.0):
        """Float ``(a @ b) * multiplier``: calibration observes the float activations, as FQ-ViT does."""
        return (a @ b) * multiplier

    def act_table(self, x, act: nn.Module, in_name: str, out_name: str):
        y = act(x)
        self._observe(y, out_name)
        return y

    def qmean(self, x, in_name: str, axis: int, count: int = 0):
        return x.mean(dim=axis)

    def qmax(self, x, in_name: str, axis: int):
        return x.amax(dim=axis)

    def layernorm(self, q, ln: nn.LayerNorm, in_name: str, out_name: str, alpha_repeat: int = 1):
        y = F.layer_norm(q, ln.normalized_shape, *ln_affine(ln), ln.eps)
        self._observe(y, out_name)
        return y

    def attn_probs(self, q_logits, logits_name: str, probs_name: str, heads: int, mask: torch.Tensor | None = None):
        p = self.softmax_float(q_logits, mask)
        if not self.config.lis:
            self._observe(p, probs_name, bits=self.config.attn_bits)
        return p

    def attn_apply(self, probs, q_v, v_name: str, probs_name: str, out_name: str):
        y = probs @ q_v
        self._observe(y, out_name)
        return y


class QuantBackend(TorchBackend):
    """Quantized forward: QDQ at every point, int8 weights, the reference integer ops for LayerNorm and softmax."""

    def __init__(self, points: dict[str, QuantPoint], config: QuantConfig) -> None:
        super().__init__(points, config)
        self._weights: dict = {}

    def quant(self, x, name: str, ln_input: bool = False):
        return self.point(name).quantize(x)

    def dequant(self, q, name: str):
        return self.point(name).dequantize(q)

    def append_zero_token(self, q, name: str, channels: int):
        pad = torch.full_like(q[:, :1], int(self.point(name).zero_point))
        return torch.cat([q, pad], dim=1)

    def qconst(self, t: torch.Tensor, name: str):
        p = self.point(name)
        return p.dequantize(p.quantize(t))

    def _int_weight(self, mod: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """int8 weight as float32 ``[out, in]`` (exact integers) and its per-channel scale, cached per module."""
        w = self._weights.get(id(mod))
        if w is None:
            q, s = quantize_weight(mod.weight.detach().float(), self.config.w_bits)
            w = self._weights[id(mod)] = (q.reshape(q.shape[0], -1).float(), s)
        return w

    def _centered(self, q, name: str) -> torch.Tensor:
        """``q - zp`` as float32 holding exact integers in ``[-255, 255]``."""
        return q.float() - float(self.point(name).zero_point)

    def qlinear(self, q, in_name: str, mod: nn.Linear, name: str):
        """``f32(sum (q - zp) * w_q) * f32(s_x * s_w) + bias``: exact integer accumulation, then two float32 steps
        (docs/ops.md Sec. 1) — what MatMulInteger -> Cast -> Mul -> Add computes in the exported graph."""
        acc, multiplier, bias = self._linear_acc(q, in_name, mod)
        y = acc * multiplier
        return y + bias if mod.bias is not None else y

    def _linear_acc(self, q, in_name: str, mod: nn.Module) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``f32(sum (q - zp) * w_q)``, the Requantize multiplier ``f32(s_x * s_w)`` and the float32 bias."""
        w, sw = self._int_weight(mod)
        acc = _exact_matmul(self._centered(q, in_name), w.t(), 255 * 127)
        bias = mod.bias.detach().float() if mod.bias is not None else torch.zeros(())
        return acc, requant_scale(self.point(in_name).scale, sw), bias

    def _requantize(self, acc: torch.Tensor, multiplier: torch.Tensor, bias: torch.Tensor, out_name: str):
        """The reference ``com.fqvit::Requantize`` on the exact accumulator (``f32(int(f32(acc))) == f32(acc)``)."""
        p = self.point(out_name)
        q = R.requantize(acc.to(torch.int64), multiplier.reshape(-1), bias.reshape(-1), p.scale, p.zero_point)
        return self._clip_codes(q, out_name)

    def _clip_codes(self, q: torch.Tensor, name: str) -> torch.Tensor:
        """Codes of a point narrower than 8 bits kept in ``0 .. 2^bits - 1``: Requantize, PTSLayerNorm and LISMatMul
        saturate to the whole uint8 range (the exported graph adds the same ``Clip``)."""
        p = self.point(name)
        return q if p.bits >= 8 else q.clamp(max=p.qmax)

    def qlinear_quant(self, q, in_name: str, mod: nn.Linear, name: str, out_name: str):
        if not self.fuses_requantize(out_name):
            return super().qlinear_quant(q, in_name, mod, name, out_name)
        return self._requantize(*self._linear_acc(q, in_name, mod), out_name)

    def qmatmul_quant(self, qa, a_name: str, qb, b_name: str, multiplier: float, out_name: str):
        if not self.fuses_requantize(out_name):
            return super().qmatmul_quant(qa, a_name, qb, b_name, multiplier, out_name)
        acc = _exact_matmul(self._centered(qa, a_name), self._centered(qb, b_name), 255 * 255)
        m = requant_scale(self.point(a_name).scale, self.point(b_name).scale, multiplier)
        return self._requantize(acc, m, torch.zeros(()), out_name)

    def patch_embed(self, q, in_name: str, conv: nn.Conv2d, name: str, grid: tuple[int, int] = (0, 0)):
        return self.qlinear(self.patches(q, conv, grid), in_name, conv, name)

    def qmatmul(self, qa, a_name: str, qb, b_name: str, multiplier: float = 1.0):
        """Float product of two activations' codes: the exact integer ``(qa - zp_a) @ (qb - zp_b)`` times
        ``f32(s_a * s_b * multiplier)``, what MatMulInteger and its epilogue compute in the exported graph."""
        acc = _exact_matmul(self._centered(qa, a_name), self._centered(qb, b_name), 255 * 255)
        return acc * requant_scale(self.point(a_name).scale, self.point(b_name).scale, multiplier)

    def act_table(self, q, act: nn.Module, in_name: str, out_name: str):
        key = ("act", in_name)
        if key not in self._weights:
            self._weights[key] = self.lookup_table(act, in_name, out_name)
        return R.lookup(q, self._weights[key])

    def qmean(self, q, in_name: str, axis: int, count: int = 0):
        """Token average: exact integer sum, then ``f32(acc) * f32(s_c / n)`` (``s_c`` per channel for PTS)."""
        acc = (q.to(torch.int64) - int(self.point(in_name).zero_point)).sum(dim=axis).float()
        return acc * mean_multiplier(self.point(in_name), q.shape[axis])

    def qmax(self, q, in_name: str, axis: int):
        """Token maximum on the codes (dequantization is increasing in every channel), then dequantized."""
        return self.dequant(q.amax(dim=axis), in_name)

    def layernorm(self, q, ln: nn.LayerNorm, in_name: str, out_name: str, alpha_repeat: int = 1):
        pin, pout = self.point(in_name), self.point(out_name)
        alpha = ln_alpha(pin, q.shape[-1], alpha_repeat)
        y = R.pts_layernorm(q, pin.scale, pin.zero_point, alpha, *ln_affine(ln), pout.scale, pout.zero_point, ln.eps)
        return self._clip_codes(y, out_name)

    def attn_probs(self, q_logits, logits_name: str, probs_name: str, heads: int, mask: torch.Tensor | None = None):
        if self.config.lis:
            m = R.lis_multiplier(self.point(logits_name).scale)
            if mask is None:
                return R.log_int_softmax(q_logits, m, self.config.attn_bits)
            x = q_logits.reshape(window_logits_shape(mask, q_logits.shape[1]))
            return R.log_int_softmax(x, m, self.config.attn_bits, window_mask(mask != 0)).reshape(q_logits.shape)
        p = self.softmax_float(self.dequant(q_logits, logits_name), mask)
        return self.quant(p, probs_name)

    def attn_apply(self, probs, q_v, v_name: str, probs_name: str, out_name: str):
        if self.config.lis:
            pv, pout = self.point(v_name), self.point(out_name)
            y = R.lis_matmul(probs, q_v, pv.scale, pv.zero_point, pout.scale, pout.zero_point, self.config.attn_bits)
            return self._clip_codes(y, out_name)
        return self.qmatmul_quant(probs, probs_name, q_v, v_name, 1.0, out_name)
