"""ONNX backend: the adapters' vocabulary emitted as ONNX nodes (QDQ, int8 weights, ``com.fqvit`` ops).

Running a model adapter with :class:`OnnxBackend` records the graph of the quantized model: every quantization
point becomes ``QuantizeLinear``/``DequantizeLinear`` with the calibrated scale and zero point, Linear/Conv weights
are int8 initializers with per-output-channel scales behind a ``DequantizeLinear``, LayerNorms become
``com.fqvit::PTSLayerNorm`` (uint8 in, uint8 out) and, with LIS, the softmax and attention@V become
``com.fqvit::LogIntSoftmax`` and ``com.fqvit::LISMatMul`` (docs/ops.md Sec. 2-5). With ``quantized=False`` the
same adapter gives the FP32 graph (plain ``LayerNormalization``/``Softmax``), used as the speed baseline.

The export ``device`` picks the code type of the activations (docs/ops.md Sec. 1, code types): ``cpu`` writes uint8
codes (onnxruntime's CPU ``MatMulInteger`` is fast for uint8 x int8 only), ``cuda`` int8 codes (the CUDA execution
provider's ``MatMulInteger`` is int8 x int8 only). The int8 code of a uint8 code ``u`` with zero point ``z`` is
``u - 128`` with zero point ``z - 128``, so ``q - zp`` and every integer result are the same: the two graphs from one
calibration give bit-identical logits.
"""
from __future__ import annotations

import math

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from .base import BackendBase, ln_affine, ln_alpha, mean_multiplier, window_logits_shape, window_mask
from ..ops import reference as R
from ..ops.functions import DOMAIN, make_node, quantize_nodes
from ..ops.spec import CODE_OFFSET, MAX_ATTENTION_HEAD_DIM, MAX_ATTENTION_HEADS, MAX_ATTENTION_TOKENS
from ..quant.point import QuantConfig, QuantPoint
from ..quant.primitives import quantize_weight, requant_scale

__all__ = ["CODE_DTYPES", "OnnxBackend", "trace_graph"]

CODE_DTYPES = {"cpu": np.uint8, "cuda": np.int8}
"""Export device (``deploy.card.DEVICES``) -> element type of the activation codes."""


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


class OnnxBackend(BackendBase):
    """Collects nodes and initializers; values are tensor names."""

    def __init__(self, points: dict[str, QuantPoint], config: QuantConfig, quantized: bool = True,
                 device: str = "cpu") -> None:
        super().__init__(points, config)
        if device not in CODE_DTYPES:
            raise ValueError(f"unknown export device {device!r}; choose from {', '.join(CODE_DTYPES)}")
        self.quantized = quantized
        self.device = device
        self.code_dtype = CODE_DTYPES[device]
        self.code_offset = CODE_OFFSET[np.dtype(self.code_dtype).name]
        self.nodes: list[onnx.NodeProto] = []
        self.inits: dict[str, onnx.TensorProto] = {}
        self._names: set[str] = set()
        self._dq_cache: dict[tuple[str, str], str] = {}

    # -- bookkeeping -------------------------------------------------------------------------------------------
    def _unique(self, base: str) -> str:
        name, i = base, 1
        while name in self._names:
            i += 1
            name = f"{base}_{i}"
        self._names.add(name)
        return name

    def node(self, op: str, inputs: list[str], scope: str, domain: str = "", out: str | None = None,
             **attrs) -> str:
        """Add one node named ``scope/Op``; returns its (single) output name."""
        name = self._unique(f"{scope}/{op}")
        output = self._unique(out) if out else name + ":0"
        if domain == DOMAIN:
            self.nodes.append(make_node(op, inputs, [output], name, **attrs))
        else:
            self.nodes.append(helper.make_node(op, inputs, [output], name=name, domain=domain, **attrs))
        return output

    def const(self, value, name: str, dtype=None) -> str:
        """An initializer (deduplicated by name)."""
        if name not in self.inits:
            arr = np.asarray(_np(value) if isinstance(value, torch.Tensor) else value, dtype=dtype)
            self.inits[name] = numpy_helper.from_array(arr, name)
            self._names.add(name)
        return name

    def codes(self, values: torch.Tensor | np.ndarray) -> np.ndarray:
        """uint8 codes or zero points (``0..255``) in the device's code type (int8: minus 128)."""
        v = np.asarray(_np(values) if isinstance(values, torch.Tensor) else values).astype(np.int32)
        assert v.size == 0 or (v.min() >= 0 and v.max() <= 255), "codes must be uint8 values"
        return (v - self.code_offset).astype(self.code_dtype)

    def _code_const(self, values: torch.Tensor, name: str) -> str:
        return self.const(self.codes(values), name)

    def _scale(self, name: str) -> str:
        """The scale initializer ``{name}.scale`` of a point: per channel (``s * 2^alpha``) for PTS, else one value."""
        return self.const(self.point(name).channel_scale().float(), f"{name}.scale", np.float32)

    def _qparams(self, name: str) -> tuple[str, str]:
        """Scale and zero-point initializers of a point as QuantizeLinear takes them (per channel for PTS)."""
        return self._scale(name), self._code_const(self.point(name).channel_zero_point(), f"{name}.zero_point")

    def _codes_node(self, op: str, inputs: list[str], out_name: str, **attrs) -> str:
        """A ``com.fqvit`` node whose output is the codes of point ``out_name`` (``{out_name}.q``), clipped to the
        point's width when it is narrower than 8 bits (:meth:`_clip_codes`)."""
        narrow = self.point(out_name).bits < 8
        y = self.node(op, inputs, out_name, domain=DOMAIN, out=None if narrow else f"{out_name}.q", **attrs)
        return self._clip_codes(y, out_name)

    # -- layout ----------------------------------------------------------------------------------------------------
    def reshape(self, x: str, shape):
        s = self.const(np.array(shape, dtype=np.int64), self._unique("shape"))
        return self.node("Reshape", [x, s], _scope(x))

    def permute(self, x: str, perm):
        return self.node("Transpose", [x], _scope(x), perm=list(perm))

    def select(self, x: str, axis: int, index: int):
        i = self.const(np.array(index, dtype=np.int64), self._unique("index"))
        return self.node("Gather", [x, i], _scope(x), axis=axis)

    def gather(self, x: str, index: torch.Tensor, axis: int):
        i = self.const(index.to(torch.int64), self._unique(f"{_scope(x)}.order"))
        return self.node("Gather", [x, i], _scope(x), axis=axis)

    def _batch_like(self, value: str, x: str, tokens: int, scope: str, codes: bool = False) -> str:
        """float32 ``value`` ``[1, tokens, C]`` repeated over the batch of ``x`` ``[B, N, C]``, with no shape
        arithmetic: ``Where(true, value, x[:, :tokens])`` broadcasts ``value`` to ``[B, tokens, C]`` (an exact copy).
        A ``Shape -> Concat -> Expand`` chain would compute int64 shapes that onnxruntime keeps on the CPU, which a
        CUDA session with CPU fallback disabled refuses."""
        rows = self.node("Gather", [x, self.const(np.zeros(tokens, np.int64), f"token_rows{tokens}")], scope, axis=1)
        if codes:  # a slice of codes only lends its shape: as float32, the type Where takes on every provider
            rows = self.node("Cast", [rows], scope, to=TensorProto.FLOAT)
        true = self.const(np.ones((1, 1, 1), bool), "batch_like.true")
        return self.node("Where", [true, value, rows], scope)

    def _batch_codes(self, codes: torch.Tensor, name: str, q: str, scope: str, tokens: int | None = None) -> str:
        """The uint8 codes ``codes`` ``[1, T, C]`` (a constant ``name``, in the code type) repeated over the batch of
        the codes ``q`` ``[B, N, C]`` as :meth:`_batch_like` does: with ``tokens`` (T), ``q``'s first token lends
        the shape; without, ``q`` itself (``N == T``). ``Where`` takes uint8 on every provider, int8 on none: int8
        codes go through float32 and back (exact for integers)."""
        rows = q if tokens is None else self.node(
            "Gather", [q, self.const(np.zeros(tokens, np.int64), f"token_rows{tokens}")], scope, axis=1)
        true = self.const(np.ones((1, 1, 1), bool), "batch_like.true")
        if self.code_dtype == np.uint8:
            return self.node("Where", [true, self._code_const(codes, name), rows], scope)
        value = self.const(self.codes(codes).astype(np.float32), name, np.float32)
        y = self.node("Where", [true, value, self.node("Cast", [rows], scope, to=TensorProto.FLOAT)], scope)
        return self.node("Cast", [y], scope, to=helper.np_dtype_to_tensor_dtype(np.dtype(self.code_dtype)))

    def prepend_token(self, x: str, token: torch.Tensor):
        scope = "prefix_tokens"
        tok = self.const(token.float(), "prefix_tokens", np.float32)
        return self.node("Concat", [self._batch_like(tok, x, token.shape[1], scope), x], scope, axis=1)

    def append_zero_token(self, q: str, name: str, channels: int):
        scope = _scope(q)
        zeros = self.const(np.zeros((1, 1, channels), np.float32), f"zero_token{channels}")
        zero = self._batch_like(zeros, q, 1, scope, codes=self.quantized)
        if self.quantized:  # the code of 0.0 is the zero point (QuantizeLinear's output type follows it)
            one = self.const(np.array(1.0, np.float32), "one_f32")
            zero = self.node("QuantizeLinear", [zero, one, self._zp(name)], scope)
        return self.node("Concat", [q, zero], scope, axis=1)

    # -- float math ----------------------------------------------------------------------------------------------
    def add(self, a: str, b: str):
        return self.node("Add", [a, b], _scope(a))

    def scale(self, x: str, factor: torch.Tensor, name: str):
        return self.node("Mul", [x, self.const(factor.detach().float(), f"{name}.factor", np.float32)], name)

    def softmax_float(self, x: str, mask: torch.Tensor | None, heads: int = 0):
        """Float ``Softmax`` over the last axis, Swin's shift mask added first as timm adds it: the attention
        softmax without LIS and in the FP32 graph."""
        scope = _scope(x)
        if mask is not None:  # logits [B*nW, H, N, N] viewed as [B, nW, H, N, N] to broadcast the [nW, N, N] mask
            m = self.const(window_mask(mask.float()), self._unique(f"{scope}.shift_mask"), np.float32)
            y = self.node("Add", [self.reshape(x, window_logits_shape(mask, heads)), m], scope)
            x = self.reshape(y, (-1, *window_logits_shape(mask, heads)[2:]))
        return self.node("Softmax", [x], scope, axis=-1)

    # -- quantization ----------------------------------------------------------------------------------------------
    def quant(self, x: str, name: str, ln_input: bool = False):
        if not self.quantized:
            return x
        if self.point(name).pts:
            return self._pts_quant(x, name)
        s, z = self._qparams(name)
        if self.point(name).bits < 8:
            return self._clip_codes(self.node("QuantizeLinear", [x, s, z], name), name)
        return self.node("QuantizeLinear", [x, s, z], name, out=f"{name}.q")

    def _clip_codes(self, q: str, name: str) -> str:
        """Codes of a point narrower than 8 bits kept in ``0 .. 2^bits - 1`` (a ``Clip`` on the codes, output
        ``{name}.q``): QuantizeLinear, Requantize, PTSLayerNorm and LISMatMul saturate to the whole 8-bit range."""
        p = self.point(name)
        if p.bits >= 8:
            return q
        lo = self.const(self.codes(np.array(0)), f"codes.lo_{self.device}")
        hi = self.const(self.codes(np.array(p.qmax)), f"codes.hi{p.bits}_{self.device}")
        return self.node("Clip", [q, lo, hi], name, out=f"{name}.q")

    def dequant(self, q: str, name: str):
        if not self.quantized:
            return q
        key = (q, name)
        if key not in self._dq_cache:
            if self.point(name).pts:
                self._dq_cache[key] = self._pts_dequant(q, name)
            else:
                s, z = self._qparams(name)
                self._dq_cache[key] = self.node("DequantizeLinear", [q, s, z], name)
        return self._dq_cache[key]

    # A PTS quantizer (per-channel scales s * 2^alpha_c on the last axis, one zero point) is written out as its
    # formula, `clamp(round(x / s_c) + zp, 0, 255)` and `(q - zp) * s_c`: per-axis QuantizeLinear on the last axis is
    # very slow in onnxruntime, and DQ + DQ -> Add -> per-axis Q is fused by onnxruntime 1.20 into a QLinearAdd that
    # then fails type inference. Same IEEE steps as QuantizeLinear / DequantizeLinear (docs/ops.md Sec. 1).
    def _pts_params(self, name: str) -> tuple[str, str]:
        return (self._scale(name), self.const(self.codes(self.point(name).zero_point).astype(np.float32),
                                              f"{name}.zero_point_float", np.float32))

    def _pts_quant(self, x: str, name: str) -> str:
        s, z = self._pts_params(name)
        lo = self.const(np.array(-self.code_offset, np.float32), f"clip.lo_{self.device}")
        hi = self.const(np.array(float(self.point(name).qmax - self.code_offset), np.float32),
                        f"clip.hi{self.point(name).bits}_{self.device}")
        return quantize_nodes(lambda op, ins, out=None, **a: self.node(op, ins, name, out=out, **a), x, s, z, lo, hi,
                              f"{name}.q", to=helper.np_dtype_to_tensor_dtype(np.dtype(self.code_dtype)))

    def _pts_dequant(self, q: str, name: str) -> str:
        s, z = self._pts_params(name)
        f = self.node("Cast", [q], name, to=TensorProto.FLOAT)
        return self.node("Mul", [self.node("Sub", [f, z], name), s], name)

    def qconst(self, t: torch.Tensor, name: str):
        if not self.quantized:
            return self.const(t.float(), name, np.float32)
        # The dequantized values of the quantized constant, stored as float32: a DequantizeLinear of a uint8
        # initializer would let onnxruntime fuse DQ + DQ -> Add -> Q into QLinearAdd, whose arithmetic differs.
        p = self.point(name)
        return self.const(p.dequantize(p.quantize(t.float())), f"{name}.dequantized", np.float32)

    # -- integer matmuls: MatMulInteger -> Cast -> Mul(multiplier) [-> Add(bias)] (docs/ops.md Sec. 1) ------------
    def _zp(self, name: str) -> str:
        return self._code_const(self.point(name).zero_point, f"{name}.zero_point_scalar")

    def _int_epilogue(self, acc: str, multiplier: torch.Tensor, scope: str) -> str:
        f = self.node("Cast", [acc], scope, to=TensorProto.FLOAT)
        return self.node("Mul", [f, self.const(multiplier, f"{scope}.multiplier", np.float32)], scope)

    def _epilogue(self, multiplier: torch.Tensor, bias: str | None, scope: str, out_name: str) -> list[str]:
        """The inputs after the accumulator that Requantize and QLinear share: multiplier, bias (0 without one),
        and the scale and zero point of the output point ``out_name``."""
        p = self.point(out_name)
        return [self.const(multiplier, f"{scope}.multiplier", np.float32),
                bias or self.const(np.array(0.0, np.float32), "zero_bias"),
                self.const(p.scale.float(), f"{out_name}.scale", np.float32),
                self._code_const(p.zero_point, f"{out_name}.zero_point")]

    def _requantize(self, acc: str, multiplier: torch.Tensor, bias: str | None, scope: str, out_name: str) -> str:
        """``com.fqvit::Requantize``: int32 accumulator -> uint8 in one pass (Cast, Mul, Add, QuantizeLinear)."""
        return self._codes_node("Requantize", [acc, *self._epilogue(multiplier, bias, scope, out_name)], out_name)

    def qlinear_quant(self, q: str, in_name: str, mod: nn.Module, name: str, out_name: str):
        """``com.fqvit::QLinear``: codes -> int8 weight matmul -> the Requantize epilogue -> codes, one node (the
        int32 accumulator never leaves the kernel); a PTS output point takes the float path."""
        if not self.fuses_requantize(out_name):
            return super().qlinear_quant(q, in_name, mod, name, out_name)
        weight, sw, bias = self._int_weight(mod, name)
        multiplier = requant_scale(self.point(in_name).scale, sw)
        inputs = [q, weight, self._zp(in_name), *self._epilogue(multiplier, bias, name, out_name)]
        return self._codes_node("QLinear", inputs, out_name)

    def residual_add(self, q: str, name: str, branch: str, branch_name: str, gamma: torch.Tensor | None,
                     out_name: str):
        """``com.fqvit::ResidualAdd``: both codes dequantized, the branch times ``gamma``, added and quantized in
        one pass (docs/ops.md), per channel for PTS points; ``gamma`` is one element 1.0 without LayerScale."""
        if not self.quantized:
            return super().residual_add(q, name, branch, branch_name, gamma, out_name)
        g = (self.const(gamma.float().reshape(-1), f"{out_name}.gamma", np.float32) if gamma is not None
             else self.const(np.ones(1, np.float32), "residual_add.no_layer_scale"))
        inputs = [q, self._scale(name), self._zp(name), branch, self._scale(branch_name), self._zp(branch_name),
                  self._scale(out_name), self._zp(out_name), g]
        return self._codes_node("ResidualAdd", inputs, out_name)

    def embed_quant(self, q: str, in_name: str, conv: nn.Conv2d, name: str, grid: tuple[int, int],
                    tokens: torch.Tensor | None, out_name: str):
        """The patch embedding as one ``com.fqvit::QLinear`` to the codes of ``out_name``, the prefix tokens' codes
        (constants: quantizing is elementwise, so the codes of the concatenation are the concatenated codes) before
        them: the codes of MatMulInteger -> Cast -> Mul -> Add -> Concat -> QuantizeLinear."""
        if not self.fuses_requantize(out_name):
            return super().embed_quant(q, in_name, conv, name, grid, tokens, out_name)
        codes = self.qlinear_quant(self.patches(q, conv, grid), in_name, conv, name, out_name)
        if tokens is None:
            return codes
        scope = "prefix_tokens"
        prefix = self._batch_codes(self.point(out_name).quantize(tokens.float()), f"{out_name}.prefix_codes", codes,
                                   scope, tokens.shape[1])
        return self.node("Concat", [prefix, codes], scope, axis=1)

    def pos_embed_add(self, q: str, name: str, pos: torch.Tensor, pos_name: str, out_name: str):
        """``com.fqvit::ResidualAdd`` of the codes ``q`` and the position embedding's codes (a constant
        ``[1, N, C]`` repeated over the batch, :meth:`_batch_codes`), ``gamma`` 1: its steps are the dequantizers,
        ``Add`` and quantizer of :meth:`BackendBase.pos_embed_add` (``qconst`` stores ``(codes - zp) * s``, the value
        of its step 2)."""
        if not self.quantized:
            return super().pos_embed_add(q, name, pos, pos_name, out_name)
        branch = self._batch_codes(self.point(pos_name).quantize(pos.float()), f"{pos_name}.codes", q, "pos_embed")
        inputs = [q, self._scale(name), self._zp(name), branch, self._scale(pos_name), self._zp(pos_name),
                  self._scale(out_name), self._zp(out_name),
                  self.const(np.ones(1, np.float32), "residual_add.no_layer_scale")]
        return self._codes_node("ResidualAdd", inputs, out_name)

    def qmatmul_quant(self, qa: str, a_name: str, qb: str, b_name: str, multiplier: float, out_name: str):
        if not self.fuses_requantize(out_name):
            return super().qmatmul_quant(qa, a_name, qb, b_name, multiplier, out_name)
        scope = _scope(qa)
        acc = self.node("MatMulInteger", [qa, qb, self._zp(a_name), self._zp(b_name)], scope)
        m = requant_scale(self.point(a_name).scale, self.point(b_name).scale, multiplier)
        return self._requantize(acc, m, None, self._unique(f"{scope}.qk"), out_name)

    def _int_weight(self, mod: nn.Module, name: str) -> tuple[str, torch.Tensor, str | None]:
        """The int8 weight ``[K, N]`` initializer, its per-channel scales and the bias name (``None`` without)."""
        w = mod.weight.detach().float().reshape(mod.weight.shape[0], -1)
        bias = self.const(mod.bias.float(), f"{name}.bias", np.float32) if mod.bias is not None else None
        wq, sw = quantize_weight(w, self.config.w_bits)
        return self.const(wq.t(), f"{name}.weight_quantized", np.int8), sw, bias

    def _int_linear(self, q: str, in_name: str, mod: nn.Module, name: str) -> tuple[str, torch.Tensor, str | None]:
        """MatMulInteger with the int8 weight; returns the int32 accumulator, the multiplier and the bias name."""
        weight, sw, bias = self._int_weight(mod, name)
        inputs = [q, weight, self._zp(in_name), self.const(np.array(0, dtype=np.int8), "weight_zero_point")]
        return self.node("MatMulInteger", inputs, name), requant_scale(self.point(in_name).scale, sw), bias

    def qlinear(self, q: str, in_name: str, mod: nn.Module, name: str):
        if self.quantized:
            acc, multiplier, bias = self._int_linear(q, in_name, mod, name)
            y = self._int_epilogue(acc, multiplier, name)
        else:
            w = mod.weight.detach().float().reshape(mod.weight.shape[0], -1)
            bias = self.const(mod.bias.float(), f"{name}.bias", np.float32) if mod.bias is not None else None
            y = self.node("MatMul", [q, self.const(w.t(), f"{name}.weight", np.float32)], name)
        return self.node("Add", [y, bias], name) if bias else y

    def patch_embed(self, q: str, in_name: str, conv: nn.Conv2d, name: str, grid: tuple[int, int] = (0, 0)):
        return self.qlinear(self.patches(q, conv, grid), in_name, conv, name)

    def qmatmul(self, qa: str, a_name: str, qb: str, b_name: str, multiplier: float = 1.0):
        """Float ``(qa - zp_a) @ (qb - zp_b) * s_a * s_b * multiplier`` of two activations: ``MatMulInteger`` and
        its float epilogue (:meth:`qmatmul_quant` fuses that with the next quantizer where it can); a float
        ``MatMul`` in the FP32 graph."""
        scope = _scope(qa)
        if not self.quantized:
            y = self.node("MatMul", [qa, qb], scope)
            return self.node("Mul", [y, self.const(np.array(multiplier, np.float32), self._unique("const"))], scope)
        acc = self.node("MatMulInteger", [qa, qb, self._zp(a_name), self._zp(b_name)], scope)
        return self._int_epilogue(acc, requant_scale(self.point(a_name).scale, self.point(b_name).scale, multiplier),
                                  self._unique(f"{scope}.qk"))

    def act_table(self, q: str, act: nn.Module, in_name: str, out_name: str):
        """uint8 -> uint8 table of the MLP activation (``com.fqvit::Lookup``); in the FP32 graph, the activation
        from opset-18 ops."""
        if not self.quantized:
            return _float_activation(self, q, act)
        table = self.lookup_table(act, in_name, out_name).to(torch.uint8)
        if self.code_dtype == np.int8:
            table = R.int8_table(table)
        t = self.const(table, f"{out_name}.table")
        return self.node("Lookup", [q, t], out_name, domain=DOMAIN, out=f"{out_name}.q")

    def qmean(self, q: str, in_name: str, axis: int, count: int = 0):
        scope = _scope(q)
        axes = self.const(np.array([axis], dtype=np.int64), f"axes_{axis}")
        if not self.quantized:
            return self.node("ReduceMean", [q, axes], scope, keepdims=0)
        p = self.point(in_name)
        centered = self.node("Sub", [self.node("Cast", [q], scope, to=TensorProto.INT32),
                                     self.const(self.codes(p.zero_point).astype(np.int32),
                                                f"{in_name}.zero_point_int32", np.int32)],
                             scope)
        acc = self.node("ReduceSum", [centered, axes], scope, keepdims=0)
        mult = mean_multiplier(p, count)
        return self._int_epilogue(acc, mult, self._unique(f"{scope}.mean"))

    def qmax(self, q: str, in_name: str, axis: int):
        axes = self.const(np.array([axis], dtype=np.int64), f"axes_{axis}")
        if self.code_dtype == np.uint8:
            return self.dequant(self.node("ReduceMax", [q, axes], _scope(q), keepdims=0), in_name)
        # CUDA's ReduceMax has no 8-bit kernel: take the maximum of the codes in int32 (exact) and cast it back.
        wide = self.node("ReduceMax", [self.node("Cast", [q], _scope(q), to=TensorProto.INT32), axes], _scope(q),
                         keepdims=0)
        return self.dequant(self.node("Cast", [wide], _scope(q), to=TensorProto.INT8), in_name)

    def layernorm(self, q: str, ln: nn.LayerNorm, in_name: str, out_name: str, alpha_repeat: int = 1):
        g, bt = ln_affine(ln)
        gamma = self.const(g, f"{out_name}.gamma", np.float32)
        beta = self.const(bt, f"{out_name}.beta", np.float32)
        if not self.quantized:
            return self.node("LayerNormalization", [q, gamma, beta], out_name, axis=-1, epsilon=float(ln.eps))
        pin, pout = self.point(in_name), self.point(out_name)
        alpha = ln_alpha(pin, ln.normalized_shape[-1], alpha_repeat)
        inputs = [q,
                  self.const(pin.scale.float(), f"{in_name}.base_scale", np.float32),
                  self._code_const(pin.zero_point, f"{in_name}.zero_point_scalar"),
                  self.const(alpha, f"{out_name}.alpha", np.uint8),
                  gamma, beta,
                  self.const(pout.scale.float(), f"{out_name}.scale", np.float32),
                  self._code_const(pout.zero_point, f"{out_name}.zero_point")]
        return self._codes_node("PTSLayerNorm", inputs, out_name, epsilon=float(ln.eps))

    def attn_probs(self, q_logits: str, logits_name: str, probs_name: str, heads: int,
                   mask: torch.Tensor | None = None):
        scope = probs_name
        if not self.quantized or not self.config.lis:
            p = self.softmax_float(self.dequant(q_logits, logits_name), mask, heads)
            return self.quant(p, probs_name)
        m = R.lis_multiplier(self.point(logits_name).scale)
        attrs = {"multiplier": m, "bits": self.config.attn_bits}
        if mask is None:
            no_mask = self.const(np.zeros((1, 1, 1, 1), dtype=bool), "lis.no_mask")
            return self.node("LogIntSoftmax", [q_logits, no_mask], scope, domain=DOMAIN, out=f"{scope}.codes",
                             **attrs)
        bmask = self.const(_np(window_mask(mask != 0)), self._unique(f"{scope}.shift_mask"))
        x = self.reshape(q_logits, window_logits_shape(mask, heads))
        codes = self.node("LogIntSoftmax", [x, bmask], scope, domain=DOMAIN, out=f"{scope}.codes", **attrs)
        return self.reshape(codes, (-1, *window_logits_shape(mask, heads)[2:]))

    def attention(self, q_qkv: str, p: str, heads: int, head_dim: int, scale: float, tokens: int = 0,
                  q_norm: nn.Module | None = None, k_norm: nn.Module | None = None,
                  rel_bias: torch.Tensor | None = None, mask: torch.Tensor | None = None):
        """``com.fqvit::LISAttention`` where it computes what the unfused nodes compute: with ``--lis``, no q/k norm,
        bias or mask, the logits point per tensor and 8 bits wide (the op has no clip of narrower logit codes), and a
        known N, D and heads inside the op's limits; else the unfused nodes."""
        qkv, logits, out = f"{p}.qkv", f"{p}.logits", f"{p}.attn_v"
        plain = all(x is None or isinstance(x, nn.Identity) for x in (q_norm, k_norm)) and rel_bias is None \
            and mask is None
        within = 0 < tokens <= MAX_ATTENTION_TOKENS and head_dim <= MAX_ATTENTION_HEAD_DIM \
            and heads <= MAX_ATTENTION_HEADS
        if not (plain and within and self.config.lis and self.fuses_requantize(logits)
                and self.point(logits).bits == 8):
            return super().attention(q_qkv, p, heads, head_dim, scale, tokens, q_norm, k_norm, rel_bias, mask)
        pq, pl, po = self.point(qkv), self.point(logits), self.point(out)
        qk_multiplier = requant_scale(pq.scale, pq.scale, scale).reshape(())
        inputs = [q_qkv,
                  self.const(pq.scale.float(), f"{qkv}.scale", np.float32),
                  self._zp(qkv),
                  self.const(qk_multiplier, f"{p}.qk_multiplier", np.float32),
                  self.const(pl.scale.float(), f"{logits}.scale", np.float32),
                  self._code_const(pl.zero_point, f"{logits}.zero_point"),
                  self.const(po.scale.float(), f"{out}.scale", np.float32),
                  self._code_const(po.zero_point, f"{out}.zero_point")]
        return self._codes_node("LISAttention", inputs, out, heads=heads,
                                lis_multiplier=R.lis_multiplier(pl.scale), bits=self.config.attn_bits)

    def attn_apply(self, probs: str, q_v: str, v_name: str, probs_name: str, out_name: str):
        if not self.quantized or not self.config.lis:
            return self.quant(self.qmatmul(probs, probs_name, q_v, v_name), out_name)
        pv, pout = self.point(v_name), self.point(out_name)
        inputs = [probs, q_v,
                  self.const(pv.scale.float(), f"{v_name}.scale", np.float32),
                  self._code_const(pv.zero_point, f"{v_name}.zero_point"),
                  self.const(pout.scale.float(), f"{out_name}.scale", np.float32),
                  self._code_const(pout.zero_point, f"{out_name}.zero_point")]
        return self._codes_node("LISMatMul", inputs, out_name, bits=self.config.attn_bits)


def _float_activation(b: OnnxBackend, x: str, act: nn.Module) -> str:
    """The FP32 graph's MLP activation from opset-18 ops (the speed baseline); the quantized graph uses a table."""
    scope = _scope(x)

    def c(v: float) -> str:
        return b.const(np.array(v, dtype=np.float32), f"act.const_{v!r}")

    def mul(*xs: str) -> str:
        y = xs[0]
        for z in xs[1:]:
            y = b.node("Mul", [y, z], scope)
        return y
    approximate = getattr(act, "approximate", "none")
    kind = type(act).__name__
    if kind == "GELUTanh" or (kind == "GELU" and approximate == "tanh"):
        # 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
        inner = b.node("Add", [x, mul(x, x, x, c(0.044715))], scope)
        t = b.node("Tanh", [mul(inner, c(math.sqrt(2 / math.pi)))], scope)
        return mul(mul(x, c(0.5)), b.node("Add", [t, c(1.0)], scope))
    if kind == "GELU":
        e = b.node("Erf", [mul(x, c(1 / math.sqrt(2)))], scope)
        return mul(mul(x, c(0.5)), b.node("Add", [e, c(1.0)], scope))
    if kind == "QuickGELU":
        return mul(x, b.node("Sigmoid", [mul(x, c(1.702))], scope))
    if kind in ("SiLU", "Swish"):
        return mul(x, b.node("Sigmoid", [x], scope))
    simple = {"ReLU": "Relu", "Tanh": "Tanh", "Sigmoid": "Sigmoid", "Hardswish": "HardSwish", "HardSwish": "HardSwish",
              "Mish": "Mish", "Identity": "Identity", "Softplus": "Softplus"}
    if kind in simple:
        return b.node(simple[kind], [x], scope)
    raise ValueError(f"no FP32 ONNX form for the activation {kind} (the quantized export uses a table)")


def _scope(tensor: str) -> str:
    """The module path a tensor belongs to (``blocks.3.attn.qkv/MatMul:0`` -> ``blocks.3.attn.qkv``)."""
    return tensor.split("/")[0].removesuffix(".q")


def trace_graph(model: nn.Module, adapter, points: dict[str, QuantPoint], config: QuantConfig,
                quantized: bool = True, device: str = "cpu") -> tuple[OnnxBackend, str]:
    """Run ``adapter`` symbolically; returns the backend (nodes, initializers) and the output tensor name."""
    b = OnnxBackend(points, config, quantized, device)
    b._names.add("input")
    with torch.no_grad():
        out = adapter(b, model, "input")
    return b, out
