"""The ``com.fqvit`` op set as data: domain, version, every op's inputs, outputs and attributes, and the constants of
``docs/ops.md`` (FQ-ViT Sec. 3.2 PTS LayerNorm, Sec. 3.3 Log-Int-Softmax, the GELU table, the integer matmuls).

This module is the single statement of what the ops look like from outside; everything that names an input, checks
a limit or needs a constant reads it from here: the reference (``ops/reference.py``), the ONNX function bodies
(``ops/functions.py``), the exporter, the test harnesses and ``tools/gpu_check.py``. The C++ library states the same
facts in ``custom_ops/include/fqvit_ops/spec.h``; ``tests/test_op_spec.py`` parses that header and fails when it
drifts from this module. It imports nothing but the standard library, so anything may import it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "DOMAIN",
    "OP_VERSION",
    "OPSET",
    "IR_VERSION",
    "LIS_FRAC_BITS",
    "LIS_POLY_B",
    "LIS_POLY_C",
    "LIS_NORM_BITS",
    "LIS_VALUE_SHIFT",
    "LIS_MIN_BITS",
    "LIS_MAX_BITS",
    "LIS_DEFAULT_BITS",
    "LIS_MAX_CODES",
    "LIS_ROOT_THRESHOLDS",
    "MAX_LN_CHANNELS",
    "MAX_ALPHA",
    "MAX_LIS_MULTIPLIER",
    "MAX_RANK",
    "LOOKUP_TABLE_SIZE",
    "MAX_QLINEAR_K",
    "MAX_ATTENTION_HEADS",
    "MAX_ATTENTION_HEAD_DIM",
    "MAX_ATTENTION_TOKENS",
    "CODE_TYPES",
    "CODE_OFFSET",
    "Port",
    "Attribute",
    "OpSpec",
    "OPS",
    "op",
]

# --- domain and versions ----------------------------------------------------------------------------------------
DOMAIN = "com.fqvit"
"""Domain of the custom ops (and of their model-local functions)."""
OP_VERSION = 1
"""Version of the ``com.fqvit`` opset; the model's ``opset_import`` must name it (kernels register 1..1)."""
OPSET = 18
"""Standard ONNX opset of the function bodies (and of the exported models)."""
IR_VERSION = 8
"""ONNX IR version of the exported models and of the one-node test models (onnxruntime >= 1.14 reads it)."""

# --- constants fixed by docs/ops.md -----------------------------------------------------------------------------
LIS_FRAC_BITS = 14
"""L: exponent arithmetic runs in units of ln(2) / 2^L, so ln(2) itself is exact (2^L units)."""
_POLY = (0.35815147, 0.96963238, 1.0)  # I-BERT's exp(r) ~ a r^2 + b r + c on (-ln 2, 0]
_UNIT = math.log(2.0) / (1 << LIS_FRAC_BITS)
LIS_POLY_B = math.floor(_POLY[1] / (_POLY[0] * _UNIT))
"""B = floor(b / (a u)) = 63993: the linear coefficient of the integer polynomial."""
LIS_POLY_C = math.floor(_POLY[2] / (_POLY[0] * _UNIT * _UNIT))
"""Cp = floor(c / (a u^2)) = 1559991451 < 2^31: the constant term of the integer polynomial."""
LIS_NORM_BITS = 30
"""P: probabilities are normalised to ``floor(e * 2^P / S)`` before the log2 rounding."""
LIS_VALUE_SHIFT = 14
"""Code k (< zero code) weighs 2^(14 - k) in the attention@V accumulator, i.e. 2^-k in units of 2^-14."""
LIS_MIN_BITS = 1
"""Smallest ``bits`` of LogIntSoftmax / LISMatMul."""
LIS_MAX_BITS = 4
"""Largest ``bits``: codes 0 .. 2^bits - 1 <= 15, so every weight 2^(14 - k) is an integer."""
LIS_DEFAULT_BITS = 4
"""Default of the ``bits`` attribute (the exporter writes it on every node anyway)."""
LIS_MAX_CODES = (1 << LIS_MAX_BITS) - 1
"""Codes that stand for a probability at the largest ``bits``: k = 0 .. 14 (code 15 is probability 0)."""
LIS_ROOT_THRESHOLDS = tuple(math.isqrt((1 << (2 * LIS_NORM_BITS - 1 - 2 * k)) - 1) + 1 for k in range(LIS_MAX_CODES))
"""T'_k = isqrt(2^(2P - 1 - 2k) - 1) + 1, k = 0 .. 14: the smallest integer whose square reaches the step-6
threshold, so ``p^2 < 2^(2P - 1 - 2k)  <=>  p < T'_k`` for p >= 0 (docs/ops.md Sec. 3 step 6)."""
MAX_LN_CHANNELS = 4096
"""Largest LayerNorm width C for which ``C * x_c - S1`` stays exact in float32 (|.| <= 4096 * 4080 < 2^24)."""
MAX_ALPHA = 3
"""K: PTS factors are 2^alpha_c with alpha_c in 0..K, so |x_c| <= 255 * 2^K = 2040 fits int16 (docs/ops.md Sec. 2)."""
MAX_LIS_MULTIPLIER = (1 << 31) - 1
"""Largest LogIntSoftmax multiplier M: t_j = d_j * M stays far inside int64 (|d_j| <= 255)."""
MAX_RANK = 8
"""Largest rank of LogIntSoftmax's X (the kernels' mask broadcasting handles up to this rank)."""
LOOKUP_TABLE_SIZE = 256
"""Entries of the Lookup table: one per uint8 code."""
MAX_QLINEAR_K = 65793
"""Largest reduction length K of QLinear: ``|x - zp| <= 255`` and ``|w| <= 128``, so ``|acc| <= 32640 K < 2^31``
(int32 accumulation is exact; docs/ops.md Sec. 5, fused ops)."""
MAX_ATTENTION_HEADS = 4096
"""Largest ``heads`` of LISAttention (a sanity bound on the attribute; ViTs have 1-64)."""
MAX_ATTENTION_HEAD_DIM = 33025
"""Largest head size D of LISAttention: ``|q - zp|, |k - zp| <= 255``, so ``|q k^T| <= 65025 D < 2^31`` (int32
accumulation of q k^T is exact; docs/ops.md Sec. 5)."""
MAX_ATTENTION_TOKENS = 16384
"""Largest N (tokens) of LISAttention: the CUDA kernel holds a row of logits and of LIS codes in shared memory
(2 N bytes per query row). ViTs have 197 (224 px) to a few thousand tokens."""

CODE_TYPES = ("uint8", "int8")
"""Element types of quantized activations (the ops' type ``T``): uint8 for the CPU target (MLAS's fast u8 x s8
MatMulInteger), int8 for the CUDA target (the CUDA execution provider's MatMulInteger is s8 x s8 only). One code
``u`` in uint8 with zero point ``z`` is the code ``u - 128`` in int8 with zero point ``z - 128``: ``q - zp`` and so
every op's arithmetic are the same integers (docs/ops.md Sec. 1, code types)."""
CODE_OFFSET = {"uint8": 0, "int8": 128}
"""What a code type subtracts from the uint8 code (and zero point): int8 = uint8 - 128."""

assert LIS_POLY_B == 63993 and LIS_POLY_C == 1559991451
assert all(r * r >= (1 << (59 - 2 * k)) > (r - 1) * (r - 1) for k, r in enumerate(LIS_ROOT_THRESHOLDS))


# --- op signatures ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Port:
    """One input or output of an op.

    Attributes:
        name: the name in the function body and in error messages (the C++ index is ``k`` + CamelCase of it).
        dtype: ONNX element type name (``uint8``, ``int32``, ``float``, ``bool``), or ``T``: the op's code type,
            one of :data:`CODE_TYPES`, the same for every ``T`` port of one node (the output follows the zero
            point's type, as for ``QuantizeLinear``).
        shape: docs/ops.md's shape, for people: ``[..., C]``, ``scalar``, ``[C]``.
        optional: the input may be left out (an empty name on the node).
        host: the CUDA kernel reads the input on the host (a scalar declared ``OrtMemTypeCPUInput``).
    """

    name: str
    dtype: str
    shape: str
    optional: bool = False
    host: bool = False


@dataclass(frozen=True)
class Attribute:
    """One attribute of an op; ``default`` is None for a required one. ``lo``/``hi`` bound int attributes."""

    name: str
    type: str  # "int" or "float"
    default: int | float | None = None
    lo: int | float | None = None
    hi: int | float | None = None


@dataclass(frozen=True)
class OpSpec:
    """The outside of one ``com.fqvit`` op (docs/ops.md section ``section``)."""

    name: str
    section: str
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    attributes: tuple[Attribute, ...] = ()

    @property
    def input_names(self) -> list[str]:
        """Input names in order: the function body's and the kernel's input list."""
        return [p.name for p in self.inputs]

    @property
    def output_names(self) -> list[str]:
        """Output names in order: the function body's and the kernel's output list."""
        return [p.name for p in self.outputs]

    @property
    def attribute_names(self) -> list[str]:
        """Attribute names: the function declares them without defaults, so the exporter writes every one."""
        return [a.name for a in self.attributes]


def _scalar(name: str, dtype: str) -> Port:
    return Port(name, dtype, "scalar", host=True)


_BITS = Attribute("bits", "int", LIS_DEFAULT_BITS, LIS_MIN_BITS, LIS_MAX_BITS)

OPS: dict[str, OpSpec] = {s.name: s for s in (
    OpSpec("PTSLayerNorm", "2",
           (Port("X", "T", "[..., C]"), _scalar("x_scale", "float"), _scalar("x_zero_point", "T"),
            Port("alpha", "uint8", "[C]"), Port("gamma", "float", "[C]"), Port("beta", "float", "[C]"),
            _scalar("y_scale", "float"), _scalar("y_zero_point", "T")),
           (Port("Y", "T", "shape of X"),),
           (Attribute("epsilon", "float", None, 0.0, math.inf),)),
    OpSpec("LogIntSoftmax", "3",
           (Port("X", "T", "[..., N]"), Port("mask", "bool", "broadcastable to X", optional=True)),
           (Port("codes", "uint8", "shape of X"),),
           (Attribute("multiplier", "int", None, 0, MAX_LIS_MULTIPLIER), _BITS)),
    OpSpec("LISMatMul", "4",
           (Port("A", "uint8", "[..., M, N]"), Port("V", "T", "[..., N, D]"), _scalar("v_scale", "float"),
            _scalar("v_zero_point", "T"), _scalar("y_scale", "float"), _scalar("y_zero_point", "T")),
           (Port("Y", "T", "[..., M, D]"),),
           (_BITS,)),
    OpSpec("Lookup", "1",
           (Port("X", "T", "any"), Port("table", "T", f"[{LOOKUP_TABLE_SIZE}]")),
           (Port("Y", "T", "shape of X"),)),
    OpSpec("Requantize", "1",
           (Port("A", "int32", "[..., N]"), Port("multiplier", "float", "[N] or one element"),
            Port("bias", "float", "[N] or one element"), _scalar("y_scale", "float"), _scalar("y_zero_point", "T")),
           (Port("Y", "T", "shape of A"),)),
    OpSpec("QLinear", "5",
           (Port("X", "T", "[..., K]"), Port("W", "int8", "[K, N]"), _scalar("x_zero_point", "T"),
            Port("multiplier", "float", "[N] or one element"), Port("bias", "float", "[N] or one element"),
            _scalar("y_scale", "float"), _scalar("y_zero_point", "T")),
           (Port("Y", "T", "[..., N]"),)),
    OpSpec("ResidualAdd", "5",
           (Port("A", "T", "[..., C]"), Port("a_scale", "float", "[C] or one element"), _scalar("a_zero_point", "T"),
            Port("B", "T", "shape of A"), Port("b_scale", "float", "[C] or one element"),
            _scalar("b_zero_point", "T"), Port("y_scale", "float", "[C] or one element"),
            _scalar("y_zero_point", "T"), Port("gamma", "float", "[C] or one element")),
           (Port("Y", "T", "shape of A"),)),
    OpSpec("LISAttention", "5",
           (Port("QKV", "T", "[B, N, 3 * heads * D]"), _scalar("qkv_scale", "float"),
            _scalar("qkv_zero_point", "T"), _scalar("qk_multiplier", "float"), _scalar("logits_scale", "float"),
            _scalar("logits_zero_point", "T"), _scalar("y_scale", "float"), _scalar("y_zero_point", "T")),
           (Port("Y", "T", "[B, N, heads * D]"),),
           (Attribute("heads", "int", None, 1, MAX_ATTENTION_HEADS),
            Attribute("lis_multiplier", "int", None, 0, MAX_LIS_MULTIPLIER), _BITS)),
)}
"""Every op of the domain by name, in the order the C++ registration table lists them."""


def op(name: str) -> OpSpec:
    """The spec of op ``name`` (KeyError names the known ops)."""
    try:
        return OPS[name]
    except KeyError:
        raise KeyError(f"no com.fqvit op {name!r}; known: {', '.join(OPS)}") from None
