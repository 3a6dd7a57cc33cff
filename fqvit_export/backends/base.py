"""The vocabulary the model adapters are written in (FQ-ViT Sec. 3): the :class:`Backend` protocol, its shared base,
and the shape arithmetic that every backend uses.

Three backends implement it: calibration and the quantized PyTorch model (:mod:`fqvit_export.backends.torch_backend`)
and ONNX emission (:mod:`fqvit_export.backends.onnx_backend`). Values are backend-specific: float ("F") and quantized
("Q") tensors in PyTorch (Q is uint8 in the quantized model, the float tensor itself while calibrating), tensor names in
ONNX. Quantization points are named; ``name`` arguments say which point's scale and zero point apply. Reshape targets
use ONNX conventions: ``0`` copies the input dimension, ``-1`` is inferred.
"""
from __future__ import annotations

from typing import Any, Protocol, Sequence

import torch
from torch import nn

from ..quant.point import QuantConfig, QuantPoint
from ..quant.primitives import activation_table, requant_scale

__all__ = ["Backend", "BackendBase", "patch_size", "ln_affine", "ln_alpha", "mean_multiplier", "window_mask",
           "window_logits_shape"]

Value = Any
"""A backend's value: a tensor in PyTorch, a tensor name in ONNX."""


def patch_size(conv: nn.Conv2d) -> tuple[int, int]:
    """The patch size of a patch-embedding conv, which must be a plain patchify (kernel == stride, no padding)."""
    k, st = tuple(conv.kernel_size), tuple(conv.stride)
    if k != st or any(conv.padding) or conv.groups != 1 or tuple(conv.dilation) != (1, 1):
        raise ValueError(f"patch embedding conv must have kernel == stride, no padding (got kernel {k}, stride {st})")
    return k


def ln_affine(ln: nn.LayerNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """LayerNorm ``gamma`` and ``beta`` in float32; ones and zeros where the norm has none (``bias=False``,
    ``elementwise_affine=False``)."""
    c = ln.normalized_shape[-1]
    gamma = ln.weight.detach().float() if ln.weight is not None else torch.ones(c)
    beta = ln.bias.detach().float() if getattr(ln, "bias", None) is not None else torch.zeros(c)
    return gamma, beta


def ln_alpha(point: QuantPoint, channels: int, repeat: int = 1) -> torch.Tensor:
    """The PTSLayerNorm ``alpha`` input for a norm over ``channels``: the input point's per-channel alpha, tiled
    ``repeat`` times where the norm sees several tokens' channels side by side (Swin's patch merging: 4C)."""
    return point.ln_alpha(channels // repeat).repeat(repeat)


def mean_multiplier(point: QuantPoint, count: int) -> torch.Tensor:
    """The float32 multiplier of a token average on the codes: ``f32(s_c) / f32(n)`` (``s_c`` per channel for PTS),
    applied to the exact integer sum of ``q - zp``."""
    return requant_scale(point.channel_scale()) / torch.tensor(float(count))


def window_mask(mask: torch.Tensor) -> torch.Tensor:
    """Swin's ``[nW, N, N]`` shift mask as ``[1, nW, 1, N, N]``, to broadcast over logits viewed with
    :func:`window_logits_shape`."""
    nw, n = mask.shape[0], mask.shape[-1]
    return mask.reshape(1, nw, 1, n, n)


def window_logits_shape(mask: torch.Tensor, heads: int) -> tuple[int, ...]:
    """Logits ``[B * nW, H, N, N]`` viewed as ``[B, nW, H, N, N]``: windows of one image side by side, as timm adds
    the mask."""
    nw, n = mask.shape[0], mask.shape[-1]
    return (-1, nw, heads, n, n)


class Backend(Protocol):
    """What an adapter may call. Every method returns a new value; none changes its inputs."""

    points: dict[str, QuantPoint]
    config: QuantConfig

    # -- layout: the same for float and quantized values -----------------------------------------------------------
    def reshape(self, x: Value, shape: Sequence[int]) -> Value:
        """``x`` with a new shape (ONNX conventions: ``0`` copies a dimension, ``-1`` is inferred)."""

    def permute(self, x: Value, perm: Sequence[int]) -> Value:
        """``x`` with its axes in the order ``perm``."""

    def select(self, x: Value, axis: int, index: int) -> Value:
        """The slice ``index`` of ``axis``, that axis removed."""

    def gather(self, x: Value, index: torch.Tensor, axis: int) -> Value:
        """The slices ``index`` (int64, 1-D) of ``axis``, in that order."""

    def patches(self, x: Value, conv: nn.Conv2d, grid: tuple[int, int]) -> Value:
        """``[B, C, H, W] -> [B, H/p * W/p, C * p * p]``: the patch-embedding conv's input patches, tokens in timm's
        row-major order, features in the conv weight's ``(c, kh, kw)`` order; ``grid`` is ``(H/p, W/p)``."""

    def prepend_token(self, x: Value, token: torch.Tensor) -> Value:
        """Float ``[1, T, C]`` prefix tokens (class, distillation, register) before the float ``[B, N, C]`` tokens."""

    def append_zero_token(self, q: Value, name: str, channels: int) -> Value:
        """One more token ``[B, 1, C]`` holding the value 0 (code ``zp`` of point ``name``): the padding timm's Swin
        adds for windows and patch merging, reached through a gather index."""

    # -- float math ------------------------------------------------------------------------------------------------
    def add(self, a: Value, b: Value) -> Value:
        """Float ``a + b`` (residual adds, position embedding), broadcasting."""

    def scale(self, x: Value, factor: torch.Tensor, name: str) -> Value:
        """Float ``x * factor`` in float32, one IEEE multiply (LayerScale's gamma, the distilled head's 1/2)."""

    # -- quantizers ------------------------------------------------------------------------------------------------
    def quant(self, x: Value, name: str, ln_input: bool = False) -> Value:
        """Quantize float ``x`` at point ``name`` (uint8 codes); ``ln_input`` marks a LayerNorm input, a PTS point
        with ``--pts``. While calibrating: observe ``x`` and return it."""

    def dequant(self, q: Value, name: str) -> Value:
        """Float ``(q - zp) * s`` of point ``name``."""

    def qconst(self, t: torch.Tensor, name: str) -> Value:
        """A float constant (position embedding, relative position bias) through its own quantizer ``name``."""

    # -- integer ops -----------------------------------------------------------------------------------------------
    def qlinear(self, q: Value, in_name: str, mod: nn.Linear, name: str) -> Value:
        """Float output of ``mod`` on the codes of point ``in_name``: exact integer matmul with the int8 per-channel
        weight, then Requantize (``f32(acc) * f32(s_x * s_w) + bias``)."""

    def qlinear_quant(self, q: Value, in_name: str, mod: nn.Linear, name: str, out_name: str) -> Value:
        """:meth:`qlinear` then :meth:`quant` at ``out_name`` (one fused epilogue in the ONNX graph)."""

    def qmatmul_quant(self, qa: Value, a_name: str, qb: Value, b_name: str, multiplier: float, out_name: str
                      ) -> Value:
        """Codes ``qa @ qb`` (exact integers), times ``s_a * s_b * multiplier``, quantized at ``out_name``."""

    def residual_add(self, q: Value, name: str, branch: Value, branch_name: str, gamma: torch.Tensor | None,
                     out_name: str) -> Value:
        """A block's residual add on codes: the stream ``q`` (point ``name``) plus the branch codes (point
        ``branch_name``) times LayerScale ``gamma`` (per channel; ``None`` without one), quantized at ``out_name``, a
        LayerNorm input (one ``com.fqvit::ResidualAdd`` in the ONNX graph)."""

    def patch_embed(self, q: Value, in_name: str, conv: nn.Conv2d, name: str, grid: tuple[int, int]) -> Value:
        """Float patch embedding: :meth:`patches` then :meth:`qlinear` with the conv as a linear layer."""

    def embed_quant(self, q: Value, in_name: str, conv: nn.Conv2d, name: str, grid: tuple[int, int],
                    tokens: torch.Tensor | None, out_name: str) -> Value:
        """:meth:`patch_embed`, the float prefix ``tokens`` ``[1, T, C]`` before it (``None``: none), quantized at
        ``out_name``: the codes of the embedded tokens (one ``com.fqvit::QLinear`` and the tokens' constant codes in
        the ONNX graph)."""

    def pos_embed_add(self, q: Value, name: str, pos: torch.Tensor, pos_name: str, out_name: str) -> Value:
        """The codes ``q`` of point ``name`` dequantized, plus the position embedding ``pos`` ``[1, N, C]`` through
        its quantizer ``pos_name`` (:meth:`qconst`), quantized at ``out_name``, a LayerNorm input (one
        ``com.fqvit::ResidualAdd`` in the ONNX graph)."""

    def act_table(self, q: Value, act: nn.Module, in_name: str, out_name: str) -> Value:
        """An elementwise activation as a 256-entry uint8 table from point ``in_name`` to ``out_name`` (Lookup)."""

    def qmean(self, q: Value, in_name: str, axis: int, count: int = 0) -> Value:
        """Float token average of ``count`` tokens along ``axis``: exact integer sum times
        :func:`mean_multiplier`."""

    def qmax(self, q: Value, in_name: str, axis: int) -> Value:
        """Float token maximum along ``axis``, taken on the codes (dequantization is increasing per channel)."""

    def layernorm(self, q: Value, ln: nn.LayerNorm, in_name: str, out_name: str, alpha_repeat: int = 1) -> Value:
        """LayerNorm from the codes of ``in_name`` to codes of ``out_name``: PTSLayerNorm with :func:`ln_alpha`."""

    def attn_probs(self, q_logits: Value, logits_name: str, probs_name: str, heads: int,
                   mask: torch.Tensor | None = None) -> Value:
        """Softmax over the last axis of quantized logits ``[B*nW, H, N, N]`` (Swin's shift ``mask`` applied as timm
        does): 4-bit LogIntSoftmax codes with ``--lis``, else uint8 codes of point ``probs_name``."""

    def attn_apply(self, probs: Value, q_v: Value, v_name: str, probs_name: str, out_name: str) -> Value:
        """Attention @ V quantized at ``out_name``: LISMatMul on LIS codes, else an integer matmul."""

    def attention(self, q_qkv: Value, p: str, heads: int, head_dim: int, scale: float, tokens: int = 0,
                  q_norm: nn.Module | None = None, k_norm: nn.Module | None = None,
                  rel_bias: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> Value:
        """Attention from the qkv codes ``[B, N, 3 * heads * head_dim]`` (point ``{p}.qkv``) to the attention@V
        codes ``[B, N, heads * head_dim]`` (point ``{p}.attn_v``): [q/k norm ->] scaled ``q k^T`` at ``{p}.logits``
        [-> + Swin's relative-position bias at ``{p}.bias_add``] -> softmax at ``{p}.softmax`` (Swin's shift ``mask``)
        -> attention @ V. ``tokens`` is N where the caller knows it (0: unknown). One
        ``com.fqvit::LISAttention`` in the ONNX graph where it computes the same (``--lis``, no norm, bias or mask)."""


class BackendBase:
    """What every backend shares: the points, the composite steps, and :meth:`patches` in the layout vocabulary."""

    quantized: bool = True
    """False only for the ONNX backend's FP32 graph (the speed baseline)."""

    def __init__(self, points: dict[str, QuantPoint], config: QuantConfig) -> None:
        self.points = points
        self.config = config

    def point(self, name: str) -> QuantPoint:
        """The calibrated point ``name``; a name the calibration lacks says that the calibration does not match this
        model, rather than raising a bare key."""
        try:
            return self.points[name]
        except KeyError:
            raise KeyError(f"no calibrated quantization point {name!r}; the calibration does not match this model"
                           ) from None

    def fuses_requantize(self, out_name: str) -> bool:
        """Whether an integer matmul quantized at ``out_name`` ends in one ``com.fqvit::Requantize`` (a per-tensor
        point, any width: a narrower one clips its codes afterwards; PTS points take the float path through
        :meth:`Backend.quant`)."""
        return self.quantized and not self.point(out_name).pts

    def lookup_table(self, act: nn.Module, in_name: str, out_name: str) -> torch.Tensor:
        """The ``com.fqvit::Lookup`` table of an elementwise activation, 256 uint8 entries (codes at or above
        ``2^bits`` of a narrower input never occur: they repeat the last entry)."""
        pin, pout = self.point(in_name), self.point(out_name)
        table = activation_table(act, pin.scale, pin.zero_point, pout.scale, pout.zero_point, pin.bits, pout.bits)
        return torch.cat([table, table[-1:].expand(256 - len(table))])

    def patches(self, x, conv: nn.Conv2d, grid: tuple[int, int]):
        ph, pw = patch_size(conv)
        y = self.permute(self.reshape(x, (0, 0, grid[0], ph, grid[1], pw)), (0, 2, 4, 1, 3, 5))
        return self.reshape(y, (0, grid[0] * grid[1], conv.in_channels * ph * pw))

    def qlinear_quant(self, q, in_name: str, mod: nn.Linear, name: str, out_name: str):
        return self.quant(self.qlinear(q, in_name, mod, name), out_name)

    def qmatmul_quant(self, qa, a_name: str, qb, b_name: str, multiplier: float, out_name: str):
        return self.quant(self.qmatmul(qa, a_name, qb, b_name, multiplier), out_name)

    def attention(self, q_qkv, p: str, heads: int, head_dim: int, scale: float, tokens: int = 0,
                  q_norm: nn.Module | None = None, k_norm: nn.Module | None = None,
                  rel_bias: torch.Tensor | None = None, mask: torch.Tensor | None = None):
        q, k, v = self.split_qkv(q_qkv, heads, head_dim)
        q, q_name = self.qk_norm(q, f"{p}.qkv", q_norm, f"{p}.q_norm")
        k, k_name = self.qk_norm(k, f"{p}.qkv", k_norm, f"{p}.k_norm")
        logits_name = f"{p}.logits"
        q_logits = self.qmatmul_quant(q, q_name, self.permute(k, (0, 1, 3, 2)), k_name, scale, logits_name)
        if rel_bias is not None:
            biased = self.add(self.dequant(q_logits, logits_name), self.qconst(rel_bias, f"{p}.rel_bias"))
            logits_name = f"{p}.bias_add"
            q_logits = self.quant(biased, logits_name)
        probs = self.attn_probs(q_logits, logits_name, f"{p}.softmax", heads, mask)
        return self.merge_heads(self.attn_apply(probs, v, f"{p}.qkv", f"{p}.softmax", f"{p}.attn_v"), heads,
                                head_dim)

    def qk_norm(self, t, qkv_name: str, norm: nn.Module | None, name: str):
        """timm's ``q_norm``/``k_norm`` (a LayerNorm over ``head_dim``) on one of q, k: requantized with a PTS
        quantizer (channels = ``head_dim``), then PTS LayerNorm. Returns the codes and their point name (unchanged
        without a norm)."""
        if norm is None or isinstance(norm, nn.Identity):
            return t, qkv_name
        q_in = self.quant(self.dequant(t, qkv_name), f"{name}_in", ln_input=True)
        return self.layernorm(q_in, norm, f"{name}_in", name), name

    def split_qkv(self, q_qkv, heads: int, head_dim: int):
        """q, k, v ``[B, heads, N, head_dim]`` of the qkv codes ``[B, N, 3 * heads * head_dim]`` (timm's layout)."""
        q_qkv = self.permute(self.reshape(q_qkv, (0, 0, 3, heads, head_dim)), (2, 0, 3, 1, 4))
        return tuple(self.select(q_qkv, 0, i) for i in range(3))

    def merge_heads(self, x, heads: int, head_dim: int):
        """``[B, heads, N, head_dim]`` -> ``[B, N, heads * head_dim]``."""
        return self.reshape(self.permute(x, (0, 2, 1, 3)), (0, 0, heads * head_dim))

    def embed_quant(self, q, in_name: str, conv: nn.Conv2d, name: str, grid: tuple[int, int],
                    tokens: torch.Tensor | None, out_name: str):
        x = self.patch_embed(q, in_name, conv, name, grid)
        return self.quant(self.prepend_token(x, tokens) if tokens is not None else x, out_name)

    def pos_embed_add(self, q, name: str, pos: torch.Tensor, pos_name: str, out_name: str):
        return self.quant(self.add(self.dequant(q, name), self.qconst(pos, pos_name)), out_name, ln_input=True)

    def residual_add(self, q, name: str, branch, branch_name: str, gamma: torch.Tensor | None, out_name: str):
        v = self.dequant(branch, branch_name)
        if gamma is not None:
            v = self.scale(v, gamma, f"{out_name}.layer_scale")
        return self.quant(self.add(self.dequant(q, name), v), out_name, ln_input=True)
