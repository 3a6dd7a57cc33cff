"""ONNX function bodies of the ``com.fqvit`` integer ops (FQ-ViT Sec. 3.2 PTS LayerNorm, Sec. 3.3 Log-Int-Softmax,
the GELU table, the integer-matmul epilogue).

Each custom op of ``docs/ops.md`` ships inside the exported model as a model-local ``FunctionProto`` built from
standard ONNX ops (opset 18) only, so stock onnxruntime runs the model without the custom-op library; a library that
registers the same domain/op replaces the body by its kernel. The bodies follow the numbered steps of
``docs/ops.md`` one by one and are tested bit for bit against the PyTorch reference
(``fqvit_export/ops/reference.py``):

* ``PTSLayerNorm``  -- docs/ops.md Sec. 2, steps 1-7;
* ``LogIntSoftmax`` -- docs/ops.md Sec. 3, steps 1-6;
* ``LISMatMul``     -- docs/ops.md Sec. 4, steps 1-3;
* ``Lookup``        -- docs/ops.md Sec. 1 (GELU table): ``Y = table[X]`` for a 256-entry table of codes;
* ``Requantize``    -- docs/ops.md Sec. 1 (integer matmuls): the MatMulInteger epilogue
  ``QuantizeLinear((f32(A) * multiplier) + bias)`` in one op.

How the ONNX ops reproduce the document's arithmetic exactly:

* ``>>`` and ``//`` of the document act on non-negative int64 values only, where ONNX ``Div`` (which truncates
  toward zero) equals the floor; shifts by a variable amount use ``BitShift``, which ONNX defines for unsigned types
  only, so those operands are cast to uint64 (they are non-negative, the cast is exact).
* ONNX has no Log2: the LIS code ``#{k < Z : p^2 < T_k}`` equals ``#{k < Z : p < T'_k}`` with the root thresholds
  ``T'_k`` of ``ops/spec.py`` (``k = 0 .. 14``, enough for ``bits <= 4``; 0 for ``k >= Z``), found by a 4-step binary
  search over the 16 constants (docs/ops.md Sec. 3 step 6).
* Every float32 step is a single ONNX op in the document's order (``Cast``, ``Add``, ``Sqrt``, ``Div``, ``Mul``,
  ``Add``, ``Div``, ``Round``, ``Add``, ``Clip``, ``Cast``): IEEE-754 single operations with round half to even.
  onnxruntime's CPU kernels compute them so (checked step by step in ``tests/test_functions.py``); note that
  ``Sqrt`` is the correctly rounded square root docs/ops.md requires, which torch 2.14.1's ``torch.sqrt`` (used by
  the reference) is not: the two differ by one ulp on some inputs.
* The attributes reach the body through ``Constant`` nodes whose ``value_float``/``value_int`` reference the
  function's attribute (``ref_attr_name``); the exporter writes every attribute on the node (function attribute
  defaults would not reach a kernel that replaces the body), so the functions declare no defaults.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable

import onnx
from onnx import AttributeProto, TensorProto, helper

from .reference import lis_code_thresholds
from .spec import (
    DOMAIN,
    LIS_FRAC_BITS,
    LIS_MAX_BITS,
    LIS_NORM_BITS,
    LIS_POLY_B,
    LIS_POLY_C,
    LIS_ROOT_THRESHOLDS,
    LIS_VALUE_SHIFT,
    OP_VERSION,
    OPS,
    OPSET,
)

__all__ = [
    "DOMAIN",
    "OP_VERSION",
    "OPSET",
    "LIS_MAX_BITS",
    "make_node",
    "quantize_nodes",
    "function_protos",
    "pts_layernorm_function",
    "log_int_softmax_function",
    "lis_matmul_function",
    "lookup_function",
    "requantize_function",
    "lis_attention_function",
]

# DOMAIN, OP_VERSION, OPSET and LIS_MAX_BITS are ops/spec.py's, re-exported for the exporter.
_LIS_THRESHOLDS = lis_code_thresholds(LIS_MAX_BITS)  # T_k = 2^(2P - 1 - 2k), k = 0 .. 14
assert len(_LIS_THRESHOLDS) == 15 and _LIS_THRESHOLDS[-1] == 1 << 31
# T'_k = the smallest integer whose square reaches T_k, so that p^2 < T_k <=> p < T'_k (p >= 0); a 16th entry 0
# (never above p) closes the table for the binary search of step 6.
_LIS_ROOT_THRESHOLDS = [*LIS_ROOT_THRESHOLDS, 0]
assert all(r * r >= t > (r - 1) * (r - 1) for r, t in zip(_LIS_ROOT_THRESHOLDS, _LIS_THRESHOLDS))


def make_node(op_type: str, inputs: Sequence[str], outputs: Sequence[str], name: str, **attrs: Any
              ) -> onnx.NodeProto:
    """A node of a ``com.fqvit`` op, e.g. ``make_node("LogIntSoftmax", [x, mask], [y], "lis0", multiplier=m, bits=4)``.

    Write every attribute of the op (docs/ops.md): the function body and a kernel both read it from the node.
    """
    return helper.make_node(op_type, list(inputs), list(outputs), name=name, domain=DOMAIN, **attrs)


class _Body:
    """Collects the nodes of one function body; each ``op`` call adds one node and returns its output name."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []

    def op(self, op_type: str, inputs: Sequence[str], out: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def const(self, out: str, dtype: int, value: int | float | Sequence[int | float]) -> str:
        """A constant tensor: scalar for a number, 1-D for a sequence."""
        dims = [len(value)] if isinstance(value, Sequence) else []
        vals = list(value) if isinstance(value, Sequence) else [value]
        return self.op("Constant", [], out, value=helper.make_tensor(out, dtype, dims, vals))

    def const_tensor(self, out: str, value: onnx.TensorProto) -> str:
        """A ``Constant`` holding the tensor ``value``."""
        return self.op("Constant", [], out, value=value)

    def fqvit(self, op_type: str, inputs: Sequence[str], out: str, **attr_refs: str) -> str:
        """A ``com.fqvit`` node whose attributes pass on the function's own (``bits="bits"``: by reference)."""
        node = make_node(op_type, inputs, [out], out)
        for name, ref in attr_refs.items():
            node.attribute.append(helper.make_attribute_ref(name, AttributeProto.INT, ref_attr_name=ref))
        self.nodes.append(node)
        return out

    def attr_const(self, out: str, field: str, attr_type: int, attr_name: str) -> str:
        """A scalar ``Constant`` whose ``field`` (``value_int``/``value_float``) is the attribute ``attr_name``."""
        node = helper.make_node("Constant", [], [out], name=out)
        node.attribute.append(helper.make_attribute_ref(field, attr_type, ref_attr_name=attr_name))
        self.nodes.append(node)
        return out

    def zero_code(self) -> str:
        """``Z = 2^bits - 1`` (int64 scalar) from the ``bits`` attribute, via ``1 << bits`` on uint64."""
        bits = self.attr_const("bits_i64", "value_int", AttributeProto.INT, "bits")
        bits_u = self.op("Cast", [bits], "bits_u64", to=TensorProto.UINT64)
        pow2 = self.op("BitShift", [self.const("one_u64", TensorProto.UINT64, 1), bits_u], "two_pow_bits",
                       direction="LEFT")
        pow2_i = self.op("Cast", [pow2], "two_pow_bits_i64", to=TensorProto.INT64)
        return self.op("Sub", [pow2_i, self.const("one_i64", TensorProto.INT64, 1)], "Z")

    def quantize_linear(self, v: str, y_scale: str, y_zero_point: str, out: str) -> str:
        """ONNX ``QuantizeLinear`` to the code type ``T`` of ``y_zero_point`` (uint8 or int8: one body serves both)
        in single ops (:func:`quantize_nodes`), the result cast like ``y_zero_point``."""
        names = {"Div": "q_div_scale", "Round": "q_round", "Add": "q_add_zp", "Clip": "q_clip", "CastLike": out}
        zp = self.op("Cast", [y_zero_point], "y_zero_point_f32", to=TensorProto.FLOAT)
        # The clip bounds are the range of T ([0, 255] for uint8, [-128, 127] for int8) taken from the type itself:
        # QuantizeLinear of -2^16 and 2^16 with scale 1 saturates to them exactly (any |zero point| <= 255).
        bounds = self.op("QuantizeLinear", [self.const("range_probe", TensorProto.FLOAT, [-65536.0, 65536.0]),
                                            self.const("one_f32", TensorProto.FLOAT, 1.0), y_zero_point], "T_range")
        bounds = self.op("Cast", [bounds], "T_range_f32", to=TensorProto.FLOAT)
        qmin = self.op("Gather", [bounds, self.const("idx0", TensorProto.INT64, 0)], "qmin_f32", axis=0)
        qmax = self.op("Gather", [bounds, self.const("idx1", TensorProto.INT64, 1)], "qmax_f32", axis=0)
        return quantize_nodes(lambda op, ins, out=None, **a: self.op(op, ins, out or names[op], **a), v, y_scale, zp,
                              qmin, qmax, out, like=y_zero_point)


def quantize_nodes(op: Callable[..., str], v: str, scale: str, zero_point: str, qmin: str, qmax: str,
                   out: str | None = None, *, to: int = TensorProto.UINT8, like: str | None = None) -> str:
    """``clamp(round(v / scale) + zero_point, qmin, qmax)`` cast to the code type: ONNX ``QuantizeLinear`` written as
    its IEEE float32 steps (docs/ops.md Sec. 1), for function bodies and for the exporter's PTS quantizers alike.

    ``zero_point``, ``qmin`` and ``qmax`` are float32 tensors (``qmin``/``qmax`` the code type's range); the result
    is cast to ``to`` (uint8 or int8), or like the tensor ``like`` (``CastLike``) when given;
    ``op(op_type, inputs, out=None, **attrs)`` adds one node and returns its output name. ``round(q) + zp`` in float32
    is exact unless ``|round(q)| > 2^24 - 256`` (or infinite), and there it lies beyond the same clip bound as the
    reference's int32 sum, so the results agree.
    """
    q = op("Round", [op("Div", [v, scale])])
    q = op("Clip", [op("Add", [q, zero_point]), qmin, qmax])
    if like is not None:
        return op("CastLike", [q, like], out=out)
    return op("Cast", [q], out=out, to=to)


def _function(name: str, body: _Body, doc: str, nested: bool = False) -> onnx.FunctionProto:
    """The function of op ``name``: its inputs, outputs and attributes as ops/spec.py states them. A ``nested`` body
    calls other ``com.fqvit`` ops and imports their opset too."""
    spec = OPS[name]
    opsets = [helper.make_opsetid("", OPSET)] + ([helper.make_opsetid(DOMAIN, OP_VERSION)] if nested else [])
    return helper.make_function(DOMAIN, name, spec.input_names, spec.output_names, body.nodes, opsets,
                                attributes=spec.attribute_names, doc_string=doc)


def pts_layernorm_function() -> onnx.FunctionProto:
    """``PTSLayerNorm(X, x_scale, x_zero_point, alpha, gamma, beta, y_scale, y_zero_point) -> Y``, docs/ops.md Sec. 2.

    Integer statistics over the last axis in int64 (exact), then the float32 steps in the document's order.
    """
    b = _Body()
    last = b.const("axes_last", TensorProto.INT64, [-1])
    # Step 1: x_c = (X_c - zp) << alpha_c, as (X_c - zp) * (1 << alpha_c) in int64 (|x_c| <= 2040, exact).
    x = b.op("Cast", ["X"], "X_i64", to=TensorProto.INT64)
    zp = b.op("Cast", ["x_zero_point"], "x_zero_point_i64", to=TensorProto.INT64)
    xc = b.op("Sub", [x, zp], "x_minus_zp")
    alpha_u = b.op("Cast", ["alpha"], "alpha_u64", to=TensorProto.UINT64)
    pow2 = b.op("BitShift", [b.const("one_u64", TensorProto.UINT64, 1), alpha_u], "two_pow_alpha_u64",
                direction="LEFT")
    pow2 = b.op("Cast", [pow2], "two_pow_alpha", to=TensorProto.INT64)
    xi = b.op("Mul", [xc, pow2], "x_int")
    # Step 2: S1 = sum x_c, S2 = sum x_c^2, D = C * S2 - S1 * S1 (int64; C * S2 < 2^46). C is the last dim of X.
    s1 = b.op("ReduceSum", [xi, last], "S1", keepdims=1)
    s2 = b.op("ReduceSum", [b.op("Mul", [xi, xi], "x_int_sq"), last], "S2", keepdims=1)
    c = b.op("Gather", [b.op("Shape", ["X"], "X_shape"), b.const("idx_last", TensorProto.INT64, -1)], "C", axis=0)
    d = b.op("Sub", [b.op("Mul", [c, s2], "C_S2"), b.op("Mul", [s1, s1], "S1_sq")], "D")
    # Step 3: t1 = x_scale * x_scale; t2 = f32(C * C) * epsilon; e = t2 / t1 (C * C <= 2^24: the cast is exact).
    t1 = b.op("Mul", ["x_scale", "x_scale"], "t1")
    cc = b.op("Cast", [b.op("Mul", [c, c], "C_C")], "C_C_f32", to=TensorProto.FLOAT)
    eps = b.attr_const("epsilon_f32", "value_float", AttributeProto.FLOAT, "epsilon")
    t2 = b.op("Mul", [cc, eps], "t2")
    e = b.op("Div", [t2, t1], "e")
    # Step 4: den = sqrt(f32(D) + e).
    d_f = b.op("Cast", [d], "D_f32", to=TensorProto.FLOAT)
    den = b.op("Sqrt", [b.op("Add", [d_f, e], "D_plus_e")], "den")
    # Step 5: y_c = f32(C * x_c - S1) / den (numerator exact, |.| < 2^24), y_c = 0 where den == 0 (0/0 discarded).
    num = b.op("Sub", [b.op("Mul", [c, xi], "C_x"), s1], "num")
    num = b.op("Cast", [num], "num_f32", to=TensorProto.FLOAT)
    ratio = b.op("Div", [num, den], "num_div_den")
    zero = b.const("zero_f32", TensorProto.FLOAT, 0.0)
    y = b.op("Where", [b.op("Greater", [den, zero], "den_pos"), ratio, zero], "y")
    # Step 6: v_c = (y_c * gamma_c) + beta_c, two roundings (two nodes, no fused multiply-add).
    v = b.op("Add", [b.op("Mul", [y, "gamma"], "y_gamma"), "beta"], "v")
    # Step 7: Y_c = clamp(round(v_c / y_scale) + y_zero_point, qmin, qmax), the range of T.
    b.quantize_linear(v, "y_scale", "y_zero_point", "Y")
    return _function("PTSLayerNorm", b,
                     "LayerNorm of PTS-quantized code rows, codes of the same type T (uint8 or int8) out "
                     "(docs/ops.md Sec. 2).")


def log_int_softmax_function() -> onnx.FunctionProto:
    """``LogIntSoftmax(X, mask) -> codes`` with attributes ``multiplier`` and ``bits``, docs/ops.md Sec. 3.

    All steps in int64 over the last axis; masked positions (``mask`` broadcast to ``X``) get probability 0 (code
    ``Z``), a row without unmasked positions gets ``Z`` everywhere (its sum is clamped to 1, every ``p_j`` is 0).
    Outside the document's domain (``bits`` not in 1..4, ``multiplier < 0``) the body cannot raise like the
    reference does, and its output is unspecified.
    """
    b = _Body()
    last = b.const("axes_last", TensorProto.INT64, [-1])
    zero_i = b.const("zero_i64", TensorProto.INT64, 0)
    z_code = b.zero_code()
    mult = b.attr_const("M", "value_int", AttributeProto.INT, "multiplier")
    # Step 1: d_j = X_j - max_unmasked(X), t_j = d_j * M. Masked X_j become -256, below any uint8 or int8 code, so
    # never the maximum.
    x = b.op("Cast", ["X"], "X_i64", to=TensorProto.INT64)
    x = b.op("Where", ["mask", b.const("below_codes_i64", TensorProto.INT64, -256), x], "X_masked")
    x_max = b.op("ReduceMax", [x, last], "X_max", keepdims=1)
    t = b.op("Mul", [b.op("Sub", [x, x_max], "d"), mult], "t")
    # Step 2: n_j = (-t_j) >> L (Div == floor: -t_j >= 0), r_j = t_j + (n_j << L) in (-2^L, 0].
    unit = b.const("two_pow_L", TensorProto.INT64, 1 << LIS_FRAC_BITS)
    n = b.op("Div", [b.op("Neg", [t], "minus_t"), unit], "n")
    r = b.op("Add", [t, b.op("Mul", [n, unit], "n_shl_L")], "r")
    # Step 3: z_j = r_j * (r_j + B) + Cp, 779996821 <= z_j <= Cp < 2^31.
    rb = b.op("Add", [r, b.const("poly_B", TensorProto.INT64, LIS_POLY_B)], "r_plus_B")
    z = b.op("Add", [b.op("Mul", [r, rb], "r_r_plus_B"), b.const("poly_C", TensorProto.INT64, LIS_POLY_C)], "z")
    # Step 4: e_j = z_j >> min(n_j, 62) (BitShift on uint64: z_j > 0, n_j >= 0); masked e_j = 0; S = sum_j e_j.
    shift = b.op("Min", [n, b.const("max_shift", TensorProto.INT64, 62)], "n_min_62")
    shift = b.op("Cast", [shift], "n_min_62_u64", to=TensorProto.UINT64)
    e = b.op("BitShift", [b.op("Cast", [z], "z_u64", to=TensorProto.UINT64), shift], "e_u64", direction="RIGHT")
    e = b.op("Cast", [e], "e_unmasked", to=TensorProto.INT64)
    e = b.op("Where", ["mask", zero_i, e], "e")
    s = b.op("ReduceSum", [e, last], "S_raw", keepdims=1)
    # Step 5: p_j = (e_j << P) // S (Div == floor: both >= 0); S clamped to 1 for a fully masked row (all e_j = 0).
    s = b.op("Max", [s, b.const("one_i64_S", TensorProto.INT64, 1)], "S")
    e_p = b.op("Mul", [e, b.const("two_pow_P", TensorProto.INT64, 1 << LIS_NORM_BITS)], "e_shl_P")
    p = b.op("Div", [e_p, s], "p")
    # Step 6: code_j = #{k in 0..Z-1 : p_j^2 < T_k} = #{k < Z : p_j < T'_k}. T'_k falls with k, so the set is the
    # prefix k = 0 .. code_j - 1: a 4-step binary search over the 16 entries (T'_k set to 0 for k >= Z, so any bits
    # in 1..4 works) finds its length, with no [..., N, 15] comparison tensor. Probe T'_(pos + step - 1), step 8..1.
    ks = b.const("k_range", TensorProto.INT64, list(range(len(_LIS_ROOT_THRESHOLDS))))
    roots = b.op("Where", [b.op("Less", [ks, z_code], "k_below_Z"),
                           b.const("root_thresholds", TensorProto.INT64, _LIS_ROOT_THRESHOLDS), zero_i], "T_root")

    def hit_times(step: int, probe: str) -> str:  # step * (p_j < probe_j), int64
        hit = b.op("Cast", [b.op("Less", [p, probe], f"p_below_probe{step}")], f"hit{step}", to=TensorProto.INT64)
        return b.op("Mul", [hit, b.const(f"step{step}", TensorProto.INT64, step)], f"add{step}")

    code = hit_times(8, b.op("Gather", [roots, b.const("step8_m1", TensorProto.INT64, 7)], "probe8", axis=0))
    for step in (4, 2, 1):
        idx = b.op("Add", [code, b.const(f"step{step}_m1", TensorProto.INT64, step - 1)], f"probe_idx{step}")
        code = b.op("Add", [code, hit_times(step, b.op("Gather", [roots, idx], f"probe{step}", axis=0))],
                    f"code_{step}")
    b.op("Cast", [code], "codes", to=TensorProto.UINT8)
    return _function("LogIntSoftmax", b,
                     "Log-Int-Softmax: logit codes in (type T, uint8 or int8), uint8 log2 probability codes out "
                     "(docs/ops.md Sec. 3).")


def lis_matmul_function() -> onnx.FunctionProto:
    """``LISMatMul(A, V, v_scale, v_zero_point, y_scale, y_zero_point) -> Y`` with attribute ``bits``, Sec. 4.

    The weights ``w(A)`` and ``V - zp`` are small integers held exactly in float64, so the float64 ``MatMul`` (like
    the reference's) sums them exactly in any order. Any uint8 code is accepted (codes ``>= Z`` weigh 0); ``bits``
    must lie in 1..4 as for LogIntSoftmax.
    """
    b = _Body()
    z_code = b.zero_code()
    # Step 1: w(k) = 2^(14 - k) = 2^14 >> k for k < Z (then k <= 14), w(k) = 0 for k >= Z (shift clamped to 0 there).
    a = b.op("Cast", ["A"], "A_i64", to=TensorProto.INT64)
    valid = b.op("Less", [a, z_code], "A_below_Z")
    k = b.op("Where", [valid, a, b.const("zero_i64", TensorProto.INT64, 0)], "k")
    w = b.op("BitShift", [b.const("two_pow_14_u64", TensorProto.UINT64, 1 << LIS_VALUE_SHIFT),
                          b.op("Cast", [k], "k_u64", to=TensorProto.UINT64)], "w_u64", direction="RIGHT")
    w = b.op("Cast", [w], "w_f64_unmasked", to=TensorProto.DOUBLE)
    w = b.op("Where", [valid, w, b.const("zero_f64", TensorProto.DOUBLE, 0.0)], "w")
    # Step 2: acc[m, d] = sum_n w(A[m, n]) * (V[n, d] - v_zero_point), exact in float64 (integers below 2^53).
    v = b.op("Sub", [b.op("Cast", ["V"], "V_f64", to=TensorProto.DOUBLE),
                     b.op("Cast", ["v_zero_point"], "v_zero_point_f64", to=TensorProto.DOUBLE)], "V_minus_zp")
    acc = b.op("MatMul", [w, v], "acc")
    # Step 3: t = f32(acc) * v_scale, t = t * 2^-14, Y = clamp(round(t / y_scale) + y_zero_point, qmin, qmax) in T.
    t = b.op("Mul", [b.op("Cast", [acc], "acc_f32", to=TensorProto.FLOAT), "v_scale"], "t_scaled")
    t = b.op("Mul", [t, b.const("two_pow_minus_14", TensorProto.FLOAT, 2.0 ** -LIS_VALUE_SHIFT)], "t")
    b.quantize_linear(t, "y_scale", "y_zero_point", "Y")
    return _function("LISMatMul", b,
                     "attention@V on LIS codes with shifts, codes of V's type T (uint8 or int8) out "
                     "(docs/ops.md Sec. 4).")


def lookup_function() -> onnx.FunctionProto:
    """``Lookup(X, table) -> Y``, ``Y = table[X]`` elementwise: the quantized GELU, docs/ops.md Sec. 1 (GELU table).

    ``X`` is a code tensor (uint8 or int8) of any shape, ``table`` codes of the same type of shape ``[256]``; ``Y``
    has the table's type and the shape of ``X``. Every byte index lies inside a 256-entry table. With a shorter
    table (outside the document's domain, rejected by the kernels) onnxruntime's ``Gather`` fails on an index past
    its end; the entries of a longer table beyond 255 are never read.
    """
    b = _Body()
    # Step 1: idx = byte(X) = int32(X) & 0xFF (Gather indexes with int32/int64 only): X itself for uint8, X + 256
    # for a negative int8, so 0 <= idx <= 255.
    idx = b.op("Cast", ["X"], "X_i32", to=TensorProto.INT32)
    idx = b.op("BitwiseAnd", [idx, b.const("byte_mask_i32", TensorProto.INT32, 0xFF)], "X_byte")
    # Step 2: Y = table[idx] along axis 0 of the 1-D table: the table's code type, the shape of X.
    b.op("Gather", ["table", idx], "Y", axis=0)
    return _function("Lookup", b,
                     "T -> T table lookup Y = table[X] (uint8 or int8 codes), 256-entry table "
                     "(docs/ops.md Sec. 1, GELU table).")


def requantize_function() -> onnx.FunctionProto:
    """``Requantize(A, multiplier, bias, y_scale, y_zero_point) -> Y``: docs/ops.md Sec. 1 (integer matmuls), steps
    2-3 and the next quantizer, i.e. what ``Cast -> Mul -> Add -> QuantizeLinear`` computes after a MatMulInteger.

    ``A`` is the int32 accumulator ``[..., N]``, ``multiplier`` and ``bias`` float32 ``[N]`` (or one element,
    broadcast), ``y_scale`` float32 and ``y_zero_point`` scalars; ``Y`` has the code type ``T`` of ``y_zero_point``
    (uint8 or int8) and the shape of ``A``.
    """
    b = _Body()
    _requantize_steps(b, "A")
    return _function("Requantize", b,
                     "int32 MatMulInteger accumulator -> codes of type T (uint8 or int8): "
                     "QuantizeLinear((f32(A) * multiplier) + bias) "
                     "(docs/ops.md Sec. 1, integer matmuls).")


def _requantize_steps(b: _Body, acc: str) -> str:
    """Requantize's steps 1-4 on the int32 accumulator ``acc`` into ``Y`` (docs/ops.md Sec. 1): the one spelling
    that the Requantize and QLinear bodies share."""
    # Step 1: t = f32(A) (round to nearest even: exact below 2^24).
    t = b.op("Cast", [acc], "A_f32", to=TensorProto.FLOAT)
    # Step 2: t = t * multiplier[n] (one rounding); step 3: t = t + bias[n] (one rounding, no fused multiply-add).
    t = b.op("Mul", [t, "multiplier"], "t_scaled")
    t = b.op("Add", [t, "bias"], "t")
    # Step 4: Y = clamp(round(t / y_scale) + y_zero_point, qmin, qmax), the range of T.
    return b.quantize_linear(t, "y_scale", "y_zero_point", "Y")


def qlinear_function() -> onnx.FunctionProto:
    """``QLinear(X, W, x_zero_point, multiplier, bias, y_scale, y_zero_point) -> Y``: docs/ops.md Sec. 5 (fused
    ops), ``MatMulInteger`` with the int8 weight (zero point 0) and Requantize's steps on its accumulator.

    ``X`` holds codes of type ``T`` (uint8 or int8) ``[..., K]``, ``W`` int8 ``[K, N]``; ``Y`` has ``y_zero_point``'s
    type and shape ``[..., N]``. onnxruntime's CPU ``MatMulInteger`` takes uint8 x int8 and int8 x int8 (the CUDA
    one int8 x int8 only, where the cuda target's int8 codes meet it).
    """
    b = _Body()
    # Step 1: acc = sum_k (X_k - x_zero_point) * W[k, n], exact int32 (K <= MAX_QLINEAR_K).
    acc = b.op("MatMulInteger", ["X", "W", "x_zero_point"], "A")
    _requantize_steps(b, acc)
    return _function("QLinear", b,
                     "integer linear layer, codes of type T (uint8 or int8) x int8 weight -> codes of type T: "
                     "Requantize(MatMulInteger(X, W, x_zero_point)) (docs/ops.md Sec. 5, fused ops).")


def residual_add_function() -> onnx.FunctionProto:
    """``ResidualAdd(A, a_scale, a_zero_point, B, b_scale, b_zero_point, y_scale, y_zero_point, gamma) -> Y``:
    docs/ops.md Sec. 5 (fused ops), a block's residual add on codes: dequantize both, LayerScale, add, quantize.

    ``A`` and ``B`` are codes of one type ``T`` and shape ``[..., C]``; the scales and ``gamma`` are float32 ``[C]``
    or one element (``gamma = 1`` without LayerScale); ``Y`` has ``y_zero_point``'s type and ``A``'s shape.
    """
    b = _Body()
    # Step 1: u = f32(A - a_zp) * a_scale; v = (f32(B - b_zp) * b_scale) * gamma. The differences are exact in
    # float32 (|.| <= 255), so Cast, Cast, Sub is f32(A - a_zp).
    u = b.op("Sub", [b.op("Cast", ["A"], "A_f32", to=TensorProto.FLOAT),
                     b.op("Cast", ["a_zero_point"], "a_zp_f32", to=TensorProto.FLOAT)], "A_centered")
    u = b.op("Mul", [u, "a_scale"], "u")
    v = b.op("Sub", [b.op("Cast", ["B"], "B_f32", to=TensorProto.FLOAT),
                     b.op("Cast", ["b_zero_point"], "b_zp_f32", to=TensorProto.FLOAT)], "B_centered")
    v = b.op("Mul", [b.op("Mul", [v, "b_scale"], "v_scaled"), "gamma"], "v")
    # Step 2: t = u + v (one rounding); step 3: Y = clamp(round(t / y_scale_c) + y_zero_point, qmin, qmax).
    t = b.op("Add", [u, v], "t")
    b.quantize_linear(t, "y_scale", "y_zero_point", "Y")
    return _function("ResidualAdd", b,
                     "residual add on codes of type T (uint8 or int8): QuantizeLinear(DQ(A) + DQ(B) * gamma) with "
                     "per-channel or one-element scales (docs/ops.md Sec. 5, fused ops).")


def lis_attention_function() -> onnx.FunctionProto:
    """``LISAttention(QKV, qkv_scale, qkv_zero_point, qk_multiplier, logits_scale, logits_zero_point, y_scale,
    y_zero_point) -> Y`` with attributes ``heads``, ``lis_multiplier`` and ``bits``: docs/ops.md Sec. 5 (fused ops).

    The nodes the exporter writes for a ViT's attention without the op, in one body: q, k, v taken apart from ``QKV``
    ``[B, N, 3 * heads * D]``, ``MatMulInteger(q, k^T)``, then the ``com.fqvit`` ops ``Requantize`` (bias 0),
    ``LogIntSoftmax`` (no mask) and ``LISMatMul``, which are themselves functions of the model (this body imports
    the ``com.fqvit`` opset beside the standard one), and the heads put back side by side: ``Y`` ``[B, N, heads * D]``.
    """
    b = _Body()
    # Step 0: QKV [B, N, 3, heads, D] -> [3, B, heads, N, D]; q, k, v its three parts.
    heads = b.attr_const("heads_i64", "value_int", AttributeProto.INT, "heads")
    heads = b.op("Unsqueeze", [heads, b.const("axes_0", TensorProto.INT64, [0])], "heads_1d")
    # D = QKV's last dimension / (3 * heads), stated rather than -1, which Reshape refuses for an empty batch.
    width = b.op("Slice", [b.op("Shape", ["QKV"], "qkv_dims"), b.const("dim2", TensorProto.INT64, [2]),
                           b.const("dim3", TensorProto.INT64, [3])], "qkv_width")
    three_heads = b.op("Mul", [heads, b.const("three", TensorProto.INT64, [3])], "three_heads")
    head_dim = b.op("Div", [width, three_heads], "head_dim")
    shape = b.op("Concat", [b.const("shape_head", TensorProto.INT64, [0, 0, 3]), heads, head_dim], "qkv_shape",
                 axis=0)
    parts = b.op("Transpose", [b.op("Reshape", ["QKV", shape], "qkv_5d")], "qkv_parts", perm=[2, 0, 3, 1, 4])
    q, k, v = (b.op("Gather", [parts, b.const(f"part{i}", TensorProto.INT64, i)], name, axis=0)
               for i, name in enumerate(("q", "k", "v")))
    # Step 1: acc = (q - zp) @ (k - zp)^T, exact int32 (D <= MAX_ATTENTION_HEAD_DIM).
    k_t = b.op("Transpose", [k], "k_t", perm=[0, 1, 3, 2])
    acc = b.op("MatMulInteger", [q, k_t, "qkv_zero_point", "qkv_zero_point"], "acc")
    # Steps 2-4: the com.fqvit ops, attributes passed on by reference.
    zero = b.const("zero_bias", TensorProto.FLOAT, 0.0)
    logits = b.fqvit("Requantize", [acc, "qk_multiplier", zero, "logits_scale", "logits_zero_point"], "logits")
    no_mask = b.const_tensor("no_mask", helper.make_tensor("no_mask", TensorProto.BOOL, [1, 1, 1, 1], [False]))
    codes = b.fqvit("LogIntSoftmax", [logits, no_mask], "codes", multiplier="lis_multiplier", bits="bits")
    out = b.fqvit("LISMatMul", [codes, v, "qkv_scale", "qkv_zero_point", "y_scale", "y_zero_point"], "attn_v",
                  bits="bits")
    # Step 5: [B, heads, N, D] -> [B, N, heads * D].
    out = b.op("Transpose", [out], "attn_v_tokens", perm=[0, 2, 1, 3])
    out_shape = b.op("Concat", [b.const("shape_bn", TensorProto.INT64, [0, 0]),
                                b.op("Mul", [heads, head_dim], "heads_d")], "y_shape", axis=0)
    b.op("Reshape", [out, out_shape], "Y")
    return _function("LISAttention", b,
                     "ViT attention on codes of type T (uint8 or int8): q k^T, Requantize, Log-Int-Softmax and "
                     "attention@V per head, from the qkv codes to the attention@V codes (docs/ops.md Sec. 5, fused "
                     "ops).", nested=True)


def function_protos() -> list[onnx.FunctionProto]:
    """The ``com.fqvit`` functions for ``ModelProto.functions``: PTSLayerNorm, LogIntSoftmax, LISMatMul, Lookup,
    Requantize, QLinear, ResidualAdd, LISAttention (whose body calls Requantize, LogIntSoftmax and LISMatMul)."""
    return [pts_layernorm_function(), log_int_softmax_function(), lis_matmul_function(), lookup_function(),
            requantize_function(), qlinear_function(), residual_add_function(), lis_attention_function()]
