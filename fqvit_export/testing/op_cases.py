"""One case table per ``com.fqvit`` op (docs/ops.md Sec. 1-5), shared by every harness that checks an
implementation against the PyTorch reference: the reference's own oracles (``tests/test_reference_ops.py``), the ONNX
function bodies (``tests/test_functions.py``), the CPU kernels through onnxruntime (``tests/test_custom_ops.py``), the
CUDA kernels through their C entry points (``tests/test_cuda_kernels.py``, ``tools/gpu_check.py``).

It lives in the package (``fqvit_export.testing``, like ``numpy.testing``) so that tests and tools import it by name,
not by editing ``sys.path``; nothing else in the package imports it.

A case is a name and a builder: ``rng -> Case`` (the op's inputs in ``ops/spec.py`` order, an optional input
possibly absent, and its attributes). The shapes are the adversarial ones (C = 1, odd C, 197 tokens, 49-token Swin
windows, masks of every broadcast form, extreme scales and zero points) plus a few at model size. ``build`` seeds
each case from its name, so every harness sees the same tensors.
"""
from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..ops import reference as R
from ..ops import spec as S

Inputs = dict[str, np.ndarray]

__all__ = ["Case", "CASES", "build", "params", "reference", "out_shape", "pts_reference", "lis_reference",
           "lis_matmul_reference", "lookup_reference", "requantize_reference", "pts_inputs", "lis_logits", "lis_mask",
           "lis_codes", "lis_matmul_inputs", "lookup_table", "requantize_inputs", "qlinear_inputs",
           "residual_add_inputs", "lis_attention_inputs", "as_code_type", "CODE_TYPES"]

CODE_TYPES = S.CODE_TYPES
"""The code types every harness runs: the uint8 cases as built, and their int8 form (:func:`as_code_type`)."""


@dataclass
class Case:
    """Inputs of one op call in spec order (an optional input may be absent) and its attributes."""

    inputs: Inputs
    attrs: dict = field(default_factory=dict)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a))  # np.array: a contiguous copy that keeps a rank-0 array rank 0


# --- input generators -------------------------------------------------------------------------------------------

def pts_inputs(rng: np.random.Generator, shape: tuple[int, ...], *, x: str = "random", alpha: str | int = "random",
               x_scale: float = 0.02, x_zero_point: int | None = None, y_scale: float = 0.05,
               y_zero_point: int | None = None, gamma: str = "random", beta: str = "random") -> Inputs:
    """Inputs of PTSLayerNorm; ``x`` picks the rows: random, const (each row one value), some_const (every other
    row), zp (all at the zero point), extremes (0 or 255 only), narrow (zero point +- 2)."""
    c = shape[-1]
    zp = int(rng.integers(0, 256)) if x_zero_point is None else x_zero_point
    rows = rng.integers(0, 256, shape)
    if x == "const":
        rows = np.broadcast_to(rng.integers(0, 256, shape[:-1] + (1,)), shape)
    elif x == "some_const":
        rows = rows.reshape(-1, c)
        rows[::2] = rows[::2, :1]
    elif x == "zp":
        rows = np.full(shape, zp)
    elif x == "extremes":
        rows = 255 * rng.integers(0, 2, shape)
    elif x == "narrow":
        rows = np.clip(zp + rng.integers(-2, 3, shape), 0, 255)
    if alpha == "random":
        al = rng.integers(0, S.MAX_ALPHA + 1, c)
    elif alpha == "mixed":
        al = np.arange(c) % 2 * S.MAX_ALPHA
    else:
        al = np.full(c, alpha)
    g = {"random": lambda: rng.standard_normal(c), "zero": lambda: np.zeros(c), "ones": lambda: np.ones(c),
         "huge": lambda: rng.choice([-3e38, 3e38], c)}[gamma]()
    if beta == "halves":  # v / y_scale = integer + 1/2 exactly: round half to even, then the clip at both ends
        bt = (rng.integers(-700, 700, c) + 0.5) * y_scale
    else:
        bt = rng.standard_normal(c) if beta == "random" else np.zeros(c)
    return {"X": np.asarray(rows, np.uint8).reshape(shape), "x_scale": np.array(x_scale, np.float32),
            "x_zero_point": np.array(zp, np.uint8), "alpha": al.astype(np.uint8), "gamma": g.astype(np.float32),
            "beta": bt.astype(np.float32), "y_scale": np.array(y_scale, np.float32),
            "y_zero_point": np.array(int(rng.integers(0, 256)) if y_zero_point is None else y_zero_point, np.uint8)}


def lis_logits(rng: np.random.Generator, shape: tuple[int, ...], kind: str = "random") -> np.ndarray:
    """random; const (all-equal rows); dominant (zeros and one 255 per row); narrow (252..255); low (0..3)."""
    if kind == "const":
        x = np.broadcast_to(rng.integers(0, 256, shape[:-1] + (1,)), shape)
    elif kind == "dominant":
        x = np.zeros(shape, np.int64)
        np.put_along_axis(x, rng.integers(0, shape[-1], shape[:-1] + (1,)), 255, axis=-1)
    elif kind == "narrow":
        x = rng.integers(252, 256, shape)
    elif kind == "low":
        x = rng.integers(0, 4, shape)
    else:
        x = rng.integers(0, 256, shape)
    return np.asarray(x, np.uint8)


def lis_mask(rng: np.random.Generator, shape: tuple[int, ...], kind: str = "none") -> np.ndarray:
    """none (one False element of X's rank); swin (Swin shift mask [1, nW, 1, N, N] from region labels: True where
    query and key come from different regions); random (30 %, shape [1, ...] for rank > 2); full_row (random plus
    every third row fully masked); all (every position masked)."""
    rank = len(shape)
    if kind == "none":
        return np.zeros((1,) * rank, np.bool_)
    if kind == "swin":  # X is [B, nW, H, N, N]
        n_w, n = shape[1], shape[-1]
        labels = rng.integers(0, 4, (n_w, n))
        labels[0] = 0  # the first window lies in one region: no mask there
        return (labels[:, :, None] != labels[:, None, :])[None, :, None]
    if kind == "all":
        return np.ones(shape, np.bool_)
    mask = rng.random((1,) + shape[1:] if rank > 2 else shape) < 0.3  # broadcast over the batch when there is one
    if kind == "full_row":
        mask.reshape(-1, shape[-1])[::3] = True
    return mask


def lis_codes(rng: np.random.Generator, shape: tuple[int, ...], bits: int, kind: str, mask: str = "none"
              ) -> np.ndarray:
    """lis (LogIntSoftmax of random logits); any (arbitrary uint8); valid (0..Z); Z (all zero codes); code0 (all
    weights 2^14, beyond the sum bound of LIS outputs: f32(acc) rounds, and long rows need int64 accumulation)."""
    z = (1 << bits) - 1
    if kind == "lis":
        return R.log_int_softmax(_t(lis_logits(rng, shape)), R.lis_multiplier(0.1), bits,
                                 _t(lis_mask(rng, shape, mask))).numpy()
    if kind == "any":
        return rng.integers(0, 256, shape).astype(np.uint8)
    if kind == "valid":
        return rng.integers(0, z + 1, shape).astype(np.uint8)
    return np.full(shape, z if kind == "Z" else 0, np.uint8)


def lis_matmul_inputs(rng: np.random.Generator, a_shape: tuple[int, ...], d: int, bits: int, kind: str, *,
                      mask: str = "none", v_scale: float = 0.04, y_scale: float = 0.02,
                      v_zero_point: int | None = None, v_fill: int | None = None) -> Inputs:
    """LISMatMul inputs: codes ``A`` of ``a_shape`` (:func:`lis_codes` of ``kind``, ``mask``) and ``V`` of
    ``[..., N, d]`` (random, or all ``v_fill``), with the given scales and zero points (random where None)."""
    v_shape = a_shape[:-2] + (a_shape[-1], d)
    v = np.full(v_shape, v_fill, np.uint8) if v_fill is not None else rng.integers(0, 256, v_shape).astype(np.uint8)
    return {"A": lis_codes(rng, a_shape, bits, kind, mask), "V": v, "v_scale": np.array(v_scale, np.float32),
            "v_zero_point": np.array(rng.integers(0, 256) if v_zero_point is None else v_zero_point, np.uint8),
            "y_scale": np.array(y_scale, np.float32), "y_zero_point": np.array(rng.integers(0, 256), np.uint8)}


def lookup_table(rng: np.random.Generator, kind: str = "random") -> np.ndarray:
    """random; reversed (255 - c); const (one value); identity; gelu (a quantized GELU table from the exporter's
    helper)."""
    if kind == "reversed":
        return np.arange(255, -1, -1).astype(np.uint8)
    if kind == "identity":
        return np.arange(256).astype(np.uint8)
    if kind == "const":
        return np.full(S.LOOKUP_TABLE_SIZE, int(rng.integers(0, 256)), np.uint8)
    if kind == "gelu":
        from fqvit_export.quant.primitives import gelu_table
        return gelu_table(torch.tensor(0.047), torch.tensor(97), torch.tensor(0.031), torch.tensor(12)).numpy()
    return rng.integers(0, 256, S.LOOKUP_TABLE_SIZE).astype(np.uint8)


def requantize_inputs(rng: np.random.Generator, shape: tuple[int, ...], *, acc: str = "matmul",
                      m: float | str = "channel", b: float | str = "channel", y_scale: float | None = None,
                      y_zp: int | None = None) -> Inputs:
    """acc: matmul (|A| < 2^20, a realistic accumulator), large (any int32, +-(2^31 - 1) and -2^31 included, most
    beyond 2^24 so f32(A) rounds), odd_big (odd values in (2^24, 2^25): f32(A) rounds on every element), conv_ties
    (+-(2^24 + k), k < 128, alternating sign per channel: with m = 1 and b = "conv" (-+2^24) the output is f32(A)'s
    round half to even), ties (small A; with m = 0.5, b = 0, y_scale = 1 every odd A lands on a .5 tie).
    m, b: "channel" ([N] random), "scalar" (rank 0), "one" ([1]), "conv" (b only), or a constant ([N])."""
    n = shape[-1]
    if acc == "large":
        a = rng.integers(-2**31, 2**31, shape, dtype=np.int64)
        flat = a.reshape(-1)
        if flat.size >= 4:
            flat[:4] = [2**31 - 1, -2**31, -(2**31 - 1), 2**24 + 1]
    elif acc == "odd_big":
        a = rng.integers(2**23, 2**24, shape, dtype=np.int64) * 2 + 1
        a *= rng.choice([-1, 1], shape)
    elif acc == "conv_ties":
        a = (2**24 + rng.integers(0, 128, shape, dtype=np.int64)) * np.where(np.arange(n) % 2, -1, 1)
    elif acc == "ties":
        a = rng.integers(-600, 600, shape, dtype=np.int64)
    else:
        a = rng.integers(-2**20, 2**20, shape, dtype=np.int64)

    def param(spec: float | str, draw: Callable[[int], np.ndarray]) -> np.ndarray:
        if spec == "channel":
            return draw(n).astype(np.float32)
        if spec == "scalar":
            return draw(1).astype(np.float32).reshape(())
        if spec == "one":
            return draw(1).astype(np.float32)
        if spec == "conv":  # -2^24 on even channels, +2^24 on odd ones (the sign pattern of conv_ties)
            return np.where(np.arange(n) % 2, 2.0**24, -2.0**24).astype(np.float32)
        return np.full(n, spec, np.float32)

    return {
        "A": a.astype(np.int32),
        "multiplier": param(m, lambda k: rng.uniform(0.5, 2.0, k) * 10.0 ** rng.uniform(-6.3, -5.7, k)),
        "bias": param(b, lambda k: rng.uniform(-1.0, 1.0, k)),
        "y_scale": np.array(y_scale if y_scale is not None else rng.uniform(0.01, 0.08), np.float32),
        "y_zero_point": np.array(y_zp if y_zp is not None else rng.integers(0, 256), np.uint8),
    }


# --- the tables -----------------------------------------------------------------------------------------------------

Builder = Callable[[np.random.Generator], Case]


def _pts(shape: tuple[int, ...], epsilon: float, **kw) -> Builder:
    return lambda g: Case(pts_inputs(g, shape, **kw), {"epsilon": epsilon})


PTS: dict[str, Builder] = {
    "vit_s_8x197x384": _pts((8, 197, 384), 1e-6, x_scale=0.011),
    "C1": _pts((5, 1), 1e-6),
    "C1_eps0": _pts((5, 1), 0.0),
    "C7": _pts((3, 7), 1e-5),
    "odd_C97": _pts((7, 97), 1e-5),
    "C33_not_vector_multiple": _pts((3, 5, 33), 1e-5),
    "C1024": _pts((3, 1024), 1e-6),
    "C4096_extremes": _pts((2, 4096), 1e-6, x="extremes", alpha=3, x_zero_point=0),
    "197_tokens_C192": _pts((1, 197, 192), 1e-6),
    "swin_49_tokens_C96": _pts((4, 49, 96), 1e-5),
    "many_rows_C16": _pts((4099, 16), 1e-5),
    "const_rows": _pts((4, 6, 32), 1e-6, x="const"),
    "const_rows_eps0": _pts((4, 6, 32), 0.0, x="const"),
    "zp_rows_eps0": _pts((3, 17), 0.0, x="zp"),
    "some_const_rows_eps0": _pts((8, 33), 0.0, x="some_const"),
    "alpha0": _pts((4, 100), 1e-5, alpha=0),
    "alpha3": _pts((4, 100), 1e-5, alpha=3),
    "alpha_mixed": _pts((4, 48), 1e-6, alpha="mixed"),
    "eps0_random_C129": _pts((16, 129), 0.0),
    "extremes_zp0_alpha3": _pts((6, 96), 1e-6, x="extremes", alpha=3, x_zero_point=0),
    "extremes_zp255": _pts((6, 96), 0.0, x="extremes", x_zero_point=255),
    "zero_points_0": _pts((4, 64), 1e-5, x_zero_point=0, y_zero_point=0),
    "narrow_rows": _pts((6, 64), 1e-5, x="narrow"),
    "epsilon_large": _pts((4, 40), 1.0, x="narrow"),
    "x_scale_tiny": _pts((4, 24), 1e-6, x_scale=1e-30),  # x_scale^2 underflows to 0: e = inf, y = +-0
    "x_scale_tiny_eps0": _pts((4, 24), 0.0, x_scale=1e-30),  # e = 0/0 = NaN: den NaN, y = 0
    "x_scale_huge": _pts((4, 24), 1e-6, x_scale=1e30),  # x_scale^2 = inf: e = 0
    "y_scale_tiny": _pts((4, 24), 1e-6, y_scale=1e-30),  # saturates at 0 / 255
    "y_scale_subnormal": _pts((4, 24), 1e-6, y_scale=1e-40),
    "y_scale_huge": _pts((4, 24), 1e-6, y_scale=1e30),  # everything at y_zero_point
    "round_half_even": _pts((4, 24), 1e-6, gamma="zero", beta="halves", y_scale=0.25),
    "gamma_huge": _pts((4, 24), 1e-6, gamma="huge", beta="zero"),  # y * gamma overflows to +-inf
}


def _multiplier(scale: float | str) -> int:
    named = {"M0": 0, "M1": 1, "M_huge": S.MAX_LIS_MULTIPLIER}
    return named[scale] if isinstance(scale, str) else R.lis_multiplier(scale)


def _lis(shape: tuple[int, ...], scale: float | str, bits: int = 4, x: str = "random", mask: str | None = "none"
         ) -> Builder:
    """mask None: the optional input left out (a harness that needs it passes the equivalent single False)."""
    def build(g: np.random.Generator) -> Case:
        inputs = {"X": lis_logits(g, shape, x)}
        if mask is not None:
            inputs["mask"] = lis_mask(g, shape, mask)
        return Case(inputs, {"multiplier": _multiplier(scale), "bits": bits})
    return build


def _lis_raw(make: Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray | None, int, int]]) -> Builder:
    def build(g: np.random.Generator) -> Case:
        x, mask, m, bits = make(g)
        return Case({"X": x} if mask is None else {"X": x, "mask": mask}, {"multiplier": m, "bits": bits})
    return build


def _u8(g: np.random.Generator, shape: tuple[int, ...], lo: int = 0, hi: int = 256) -> np.ndarray:
    return g.integers(lo, hi, shape, dtype=np.uint8)


LIS: dict[str, Builder] = {
    "deit_s_2x6x197x197": _lis((2, 6, 197, 197), 0.05),
    "random_2x3x16x16": _lis((2, 3, 16, 16), 0.1),
    "swin_windows49_mask": _lis((2, 4, 3, 49, 49), 0.08, mask="swin"),
    "swin_mask_n16_full_row": _lis((3, 4, 2, 16, 16), 0.06, mask="full_row"),
    "fully_masked_rows": _lis((2, 3, 9, 9), 0.1, mask="full_row"),
    "fully_masked_rows_broadcast_N": _lis_raw(lambda g: (_u8(g, (3, 5, 20)), np.array([0, 1, 0], bool).reshape(3, 1, 1),
                                                         3000, 4)),
    "all_masked": _lis((2, 5, 7), 0.1, mask="all"),
    "mask_per_element": _lis_raw(lambda g: (_u8(g, (6, 37)), g.random((6, 37)) < 0.5, 2000, 4)),
    "mask_lower_rank": _lis_raw(lambda g: (_u8(g, (2, 5, 40)), g.random((5, 40)) < 0.4, 2000, 4)),
    "no_mask_input": _lis((4, 70), 0.1, mask=None),
    "N1": _lis((7, 1), 0.1),
    "N17": _lis((9, 17), 0.1),
    "N65": _lis((9, 65), 0.1),
    "N1000": _lis((3, 1000), 0.17),
    "many_rows": _lis((5000, 12), 0.06),
    "all_equal": _lis((3, 49, 49), 0.1, x="const"),
    "all_equal_N16": _lis((3, 16), 0.1, x="const"),  # p = 2^26 exactly: code 4
    "all_equal_N1": _lis((4, 1), 0.1, x="const"),  # p = 2^30: code 0
    "all_equal_bits2": _lis((3, 7), 0.1, bits=2, x="const"),
    "one_dominant": _lis_raw(lambda g: (np.eye(197, dtype=np.uint8)[:5] * 255, np.zeros(1, bool), 20000, 4)),
    "dominant_large_M": _lis((4, 197), 2.0, x="dominant"),  # code 0 and many zero codes
    "M0": _lis((4, 33), "M0"),
    "M1": _lis((4, 64), "M1"),
    "M_huge": _lis((4, 64), "M_huge", x="narrow"),  # n_j far beyond 62
    "M_2pow20": _lis_raw(lambda g: (_u8(g, (4, 70), 250), np.zeros(1, bool), 2**20, 4)),
    "narrow_logits": _lis((4, 8, 64), 0.3, x="narrow", mask="random"),
    "low_logits_small_M": _lis((4, 8, 64), 0.004, x="low"),
    "bits3": _lis((2, 3, 16, 16), 0.1, bits=3, mask="random"),
    "bits2": _lis((8, 197), 0.1, bits=2),
    "bits2_swin": _lis((1, 4, 2, 49, 49), 0.08, bits=2, mask="swin"),
    "bits1": _lis((2, 3, 16, 16), 2.0, bits=1),  # codes 0 (p >= 2^-1/2) and 1 (zero)
}


def _lismm(a_shape: tuple[int, ...], d: int, bits: int = 4, kind: str = "lis", **kw) -> Builder:
    return lambda g: Case(lis_matmul_inputs(g, a_shape, d, bits, kind, **kw), {"bits": bits})


LIS_MATMUL: dict[str, Builder] = {
    "deit_s_2x6x197x197x64": _lismm((2, 6, 197, 197), 64),
    "swin_windows49_mask": _lismm((2, 4, 3, 49, 49), 32, mask="swin"),
    "rank2": _lismm((13, 29), 40),
    "rank5": _lismm((2, 2, 2, 9, 11), 24),
    "D1": _lismm((2, 5, 7), 1),
    "D17": _lismm((2, 17, 33), 17),
    "D65": _lismm((2, 31, 64), 65),
    "N1": _lismm((2, 5, 1), 16, kind="valid"),
    "M1": _lismm((3, 1, 197), 64),
    "M1_N1_D1": _lismm((1, 1), 1, kind="valid"),
    "many_rows": _lismm((1, 700, 20), 16),
    "valid_codes": _lismm((2, 11, 37), 40, kind="valid"),
    "any_codes": _lismm((2, 11, 37), 40, kind="any"),
    "all_zero_code": _lismm((2, 6, 10), 4, kind="Z"),
    "all_code0_N197": _lismm((2, 6, 197), 16, kind="code0", v_zero_point=0, y_scale=4.0),
    "code0_long_N_int64": _lismm((1, 7, 3000), 24, kind="code0", v_zero_point=0, v_fill=255),
    "code0_long_N_negative": _lismm((1, 7, 3000), 24, kind="code0", v_zero_point=255, v_fill=0),
    "bits3": _lismm((2, 8, 12), 6, bits=3, kind="any"),
    "bits2": _lismm((2, 50, 50), 64, bits=2),
    "bits1": _lismm((2, 20, 30), 16, bits=1),
    "vzp255": _lismm((2, 8, 12), 6, v_zero_point=255),
    "v_scale_subnormal": _lismm((2, 8, 12), 6, kind="valid", v_scale=1e-38, y_scale=1e-44),
    "v_scale_huge": _lismm((2, 8, 12), 6, kind="code0", v_scale=1e30, y_scale=1.0),  # f32 overflow to inf
    "y_scale_tiny": _lismm((2, 8, 12), 6, y_scale=1e-30),
    "y_scale_huge": _lismm((2, 8, 12), 6, y_scale=1e30),
    "round_half_even": _lismm((4, 8, 12), 6, kind="valid", v_scale=1.0, y_scale=2.0 ** -13),  # acc / 2
}


def _lookup(x: Callable[[np.random.Generator], np.ndarray] | tuple[int, ...], table: str = "random") -> Builder:
    def build(g: np.random.Generator) -> Case:
        xs = x(g) if callable(x) else np.asarray(g.integers(0, 256, x), np.uint8).reshape(x)
        return Case({"X": xs, "table": lookup_table(g, table)})
    return build


LOOKUP: dict[str, Builder] = {
    "every_code_random_table": _lookup(lambda g: np.arange(256, dtype=np.uint8)),
    "every_code_reversed": _lookup(lambda g: np.arange(256, dtype=np.uint8).reshape(16, 16), "reversed"),
    "identity_table": _lookup((7, 129), "identity"),
    "const_table": _lookup((3, 100), "const"),
    "gelu_table": _lookup((2, 197, 64), "gelu"),
    "scalar": _lookup(()),
    "one_element": _lookup(lambda g: np.array([255], np.uint8)),
    "n2": _lookup(lambda g: np.array([0, 128], np.uint8)),
    "n33": _lookup((33,)),
    "n65": _lookup((65,)),
    "n129": _lookup((129,)),
    "odd_3x5x7": _lookup((3, 5, 7)),
    "chunked_odd_1x100003": _lookup((1, 100003)),
    "empty": _lookup((2, 0, 5)),
    "deit_s_mlp_8x197x1536": _lookup((8, 197, 1536), "gelu"),
}


def _rq(shape: tuple[int, ...], **kw) -> Builder:
    return lambda g: Case(requantize_inputs(g, shape, **kw))


REQUANTIZE: dict[str, Builder] = {
    "deit_s_qkv_197x1152": _rq((197, 1152)),
    "large_acc": _rq((7, 300), acc="large", y_scale=3.0),
    "large_acc_small_m": _rq((5, 129), acc="large", m=1e-7, y_scale=0.5),
    "f32_conversion_ties": _rq((13, 70), acc="conv_ties", m=1.0, b="conv", y_scale=1.0, y_zp=128),
    "f32_rounds_m_1e-6": _rq((9, 67), acc="odd_big", m=1e-6, y_scale=0.5, y_zp=128),
    "ties_m_half": _rq((11, 45), acc="ties", m=0.5, b=0.0, y_scale=1.0, y_zp=128),
    "ties_bias_half": _rq((11, 45), acc="ties", m=1.0, b=0.5, y_scale=1.0, y_zp=128),
    "ties_after_division": _rq((11, 45), acc="ties", m=0.125, b=0.0, y_scale=0.25, y_zp=100),
    "saturate_both_ends": _rq((6, 100), acc="large", m=1.0, y_scale=0.001),
    "saturate_zp0": _rq((6, 100), m=1e-3, y_scale=0.01, y_zp=0),
    "tiny_y_scale_2^30_clamp": _rq((4, 50), acc="large", m=1.0, y_scale=1e-30),
    "scalar_multiplier": _rq((5, 97), m="scalar"),
    "one_element_bias": _rq((5, 97), b="one"),
    "scalar_both": _rq((5, 97), m="scalar", b="scalar"),
    "scalar_both_long": _rq((1, 100003), m="scalar", b="scalar"),
    "N1": _rq((37, 1)),
    "N1_many_rows": _rq((70001, 1)),
    "N17": _rq((4, 3, 17)),
    "N33": _rq((5, 33)),
    "odd_N97": _rq((3, 7, 97)),
    "N197": _rq((2, 197), b="one"),
    "rank1": _rq((1000,)),
    "chunked_odd_rows_N999": _rq((211, 999)),
    "empty_rows": _rq((0, 5)),
    "empty_N": _rq((3, 0)),
}



def qlinear_inputs(rng: np.random.Generator, shape: tuple[int, ...], n: int, *, x: str = "random",
                   w: str = "random", **rq) -> Inputs:
    """QLinear's inputs: codes X ``shape`` = ``[..., K]``, int8 W ``[K, n]``, and Requantize's parameters drawn by
    :func:`requantize_inputs` (``rq``: m, b, y_scale, y_zp) with a multiplier sized to the accumulator.
    x: random, extreme (codes 0 and 255 drawn, zero point 0 or 255 drawn), all_max (every code 255, zero point 0:
    ``x - zp = 255``), all_min (every code 0, zero point 255: ``x - zp = -255``);
    w: random ([-127, 127]), extreme (+-127 and -128 only, the largest |acc|), columns (+127 in even columns, -128 in
    odd ones: with all_max every pair of adjacent products along K sums to 64770 or -65280, beyond the int16 that x86's
    ``vpmaddubsw`` saturates to, as oneDNN's int8 matmul does on CPUs without VNNI)."""
    k = shape[-1]
    if x == "extreme":
        codes = rng.choice(np.array([0, 255], np.uint8), shape)
        zp = np.array(rng.choice([0, 255]), np.uint8)
    elif x in ("all_max", "all_min"):
        codes = np.full(shape, 255 if x == "all_max" else 0, np.uint8)
        zp = np.array(0 if x == "all_max" else 255, np.uint8)
    else:
        codes = _u8(rng, shape)
        zp = np.array(rng.integers(0, 256), np.uint8)
    if w == "extreme":
        weights = rng.choice(np.array([-128, -127, 127], np.int8), (k, n))
    elif w == "columns":
        weights = np.broadcast_to(np.where(np.arange(n) % 2, -128, 127).astype(np.int8), (k, n)).copy()
    else:
        weights = rng.integers(-127, 128, (k, n)).astype(np.int8)
    rq.setdefault("m", "channel")
    params = requantize_inputs(rng, (1, n), **rq)
    if rq["m"] == "channel":  # sized to the accumulator, so the codes spread over the range
        params["multiplier"] = (params["multiplier"] * (2.0 ** 20 / max(1.0, 128.0 * 64.0 * np.sqrt(k)))
                                ).astype(np.float32)
    inputs = {"X": codes, "W": weights, "x_zero_point": zp, "multiplier": params["multiplier"],
              "bias": params["bias"], "y_scale": params["y_scale"], "y_zero_point": params["y_zero_point"]}
    return inputs


def _ql(shape: tuple[int, ...], n: int, **kw) -> Builder:
    return lambda g: Case(qlinear_inputs(g, shape, n, **kw))


def qlinear_compensation_inputs(rng: np.random.Generator, rows: int, n: int, wide: int) -> Inputs:
    """Accumulators far beyond 2^24 (odd ones, which float32 rounds to even) with Y sensitive to that rounding, for the
    CPU kernel's fused epilogue (``custom_ops/README.md``, QLinear): weights 100..127 at the first 600 of K = 1503
    positions and -120..-100 at the next 900, codes 250..253 at the first ``wide`` positions and 0 elsewhere,
    x_zero_point 255, multiplier 1/32 and y_scale 1 (acc rounded by one moves t by 1/32), each channel's bias centring
    its outputs on y_zero_point 128. ``wide`` 500: every row within the kernel's bounds (the fused path); 600: every
    row beyond them (sum_k x W itself beyond 2^24); 0 (codes 0..3 everywhere, every weight 100..127): x_zero_point *
    sum_k W beyond 2^24."""
    k1, k2, k = 600, 900, 1503
    codes = np.zeros((rows, k), np.uint8)
    if wide:
        codes[:, :wide] = rng.integers(250, 254, (rows, wide))
    else:
        codes[:] = rng.integers(0, 4, (rows, k))
    weights = np.zeros((k, n), np.int8)
    weights[:k1] = rng.integers(100, 128, (k1, n))
    weights[k1:k1 + k2] = rng.integers(100, 128, (k2, n)) if not wide else rng.integers(-120, -99, (k2, n))
    zp = 255
    acc = (codes.astype(np.int64) - zp) @ weights.astype(np.int64)
    return {"X": codes, "W": weights, "x_zero_point": np.array(zp, np.uint8),
            "multiplier": np.full(n, 1.0 / 32.0, np.float32),
            "bias": (-(acc.mean(axis=0) / 32.0)).astype(np.float32),
            "y_scale": np.array(1.0, np.float32), "y_zero_point": np.array(128, np.uint8)}


QLINEAR: dict[str, Builder] = {
    "deit_s_qkv_197x384x1152": _ql((197, 384), 1152),
    "deit_s_fc1_2x197x384x1536": _ql((2, 197, 384), 1536),
    "deit_s_fc2_197x1536x384": _ql((197, 1536), 384),
    "head_1x384x10": _ql((1, 384), 10),
    "extreme_acc_K4096": _ql((3, 4096), 17, x="extreme", w="extreme", m=1e-8, y_scale=0.004),
    "saturate_both_ends": _ql((5, 64), 33, m=1.0, y_scale=0.001),
    "ties_m_half": _ql((7, 3), 45, m=0.5, b=0.0, y_scale=1.0, y_zp=128),
    "M_block_tail_131x40x24": _ql((131, 40), 24),
    "scalar_multiplier": _ql((5, 20), 97, m="scalar"),
    "one_element_bias": _ql((5, 20), 97, b="one"),
    "K1": _ql((37, 1), 19),
    "N1": _ql((37, 8), 1),
    "odd_K_N_3x5x7x13": _ql((3, 5, 7), 13),
    "M1": _ql((1, 200), 300),
    # int16 pair saturation (oneDNN without VNNI: custom_ops/README.md, QLinear): the exact |acc| (up to 255 * 128 K)
    # maps to about 100 codes from y_zp, a saturated one (at most 32767 K / 2) about 50 codes nearer.
    **{f"int16_pairs_{x}_{rows}x{k}x{n}": _ql((rows, k), n, x=x, w="columns", m=100.0 / (255 * 128 * k), b=0.0,
                                              y_scale=1.0, y_zp=128)
       for x in ("all_max", "all_min") for rows, k, n in ((130, 4093, 64), (3, S.MAX_QLINEAR_K, 16))},
    # the CPU kernel's fused epilogue and its bounds (qlinear_compensation_inputs)
    **{f"acc_beyond_2p24_{label}_{rows}x1503x{n}": (lambda g, rows=rows, n=n, wide=wide:
                                                    Case(qlinear_compensation_inputs(g, rows, n, wide)))
       for label, wide in (("rows_within", 500), ("rows_beyond", 600), ("zp_term_beyond", 0))
       for rows, n in ((70, 80), (5, 200))},
    "rank1_x": _ql((64,), 48),
    "many_rows_1000x24x8": _ql((1000, 24), 8),
    "empty_rows": _ql((0, 5), 6),
    "empty_N": _ql((3, 5), 0),
}


def residual_add_inputs(rng: np.random.Generator, shape: tuple[int, ...], *, a_scale: str = "pts",
                        b_scale: str = "scalar", y_scale: str = "pts", gamma: str = "unit",
                        extreme: bool = False) -> Inputs:
    """ResidualAdd's inputs: codes A, B of ``shape`` = ``[..., C]``; scales "pts" ([C]: s * 2^alpha_c, alpha_c in
    0..3), "channel" ([C] random), "scalar" (rank 0) or "one" ([1]); gamma "unit" (a single 1.0: no LayerScale), "channel" or "one";
    extreme: codes 0 and 255 and scales that saturate both ends."""
    c = shape[-1]

    def scale(kind: str, base: float) -> np.ndarray:
        if kind == "pts":
            return (base * 2.0 ** rng.integers(0, S.MAX_ALPHA + 1, c)).astype(np.float32)
        if kind == "channel":
            return (base * rng.uniform(0.5, 2.0, c)).astype(np.float32)
        v = np.array(base * rng.uniform(0.5, 2.0), np.float32)
        return v if kind == "scalar" else v.reshape(1)

    if extreme:
        a, b = (rng.choice(np.array([0, 255], np.uint8), shape) for _ in range(2))
    else:
        a, b = _u8(rng, shape), _u8(rng, shape)
    inputs = {"A": a, "a_scale": scale(a_scale, 0.02), "a_zero_point": np.array(rng.integers(0, 256), np.uint8),
              "B": b, "b_scale": scale(b_scale, 0.01), "b_zero_point": np.array(rng.integers(0, 256), np.uint8),
              "y_scale": scale(y_scale, 0.001 if extreme else 0.03),
              "y_zero_point": np.array(rng.integers(0, 256), np.uint8)}
    inputs["gamma"] = np.ones(1, np.float32) if gamma == "unit" else scale(gamma, 0.1)
    return inputs


def _ra(shape: tuple[int, ...], **kw) -> Builder:
    return lambda g: Case(residual_add_inputs(g, shape, **kw))


def _ra_ties(g: np.random.Generator) -> Case:
    """Every sum lands on a .5 tie: scales 0.5 and 1, y_scale 1 (round half to even decides each output)."""
    shape = (11, 45)
    return Case({"A": _u8(g, shape), "a_scale": np.array(0.5, np.float32), "a_zero_point": np.array(128, np.uint8),
                 "B": _u8(g, shape), "b_scale": np.array(1.0, np.float32), "b_zero_point": np.array(7, np.uint8),
                 "y_scale": np.array(1.0, np.float32), "y_zero_point": np.array(100, np.uint8),
                 "gamma": np.ones(1, np.float32)})


RESIDUAL_ADD: dict[str, Builder] = {
    "deit_s_pts_8x197x384": _ra((8, 197, 384)),
    "deit_b_pts_197x768_gamma": _ra((197, 768), gamma="channel"),
    "per_tensor_all_scalar": _ra((5, 97), a_scale="scalar", y_scale="scalar"),
    "one_element_everything": _ra((5, 97), a_scale="one", b_scale="one", y_scale="one", gamma="one"),
    "channel_b_scale": _ra((4, 3, 17), b_scale="channel"),
    "saturate_both_ends": _ra((6, 100), extreme=True),
    "ties_half_even": _ra_ties,
    "C1": _ra((37, 1)),
    "odd_C_33": _ra((5, 33)),
    "rank1": _ra((1000,)),
    "chunked_odd_1x100003": _ra((1, 100003), a_scale="scalar", y_scale="scalar"),
    "empty_rows": _ra((0, 5)),
}

def lis_attention_inputs(rng: np.random.Generator, b: int, n: int, heads: int, d: int, *, x: str = "random",
                         spread: float = 1.0, bits: int = 4) -> Case:
    """LISAttention's inputs and attributes: QKV codes ``[b, n, 3 * heads * d]`` and the scalars of a calibrated
    attention, the logits scale fitted to this QKV's ``q k^T`` (times ``spread``: below 1 the logits saturate, above
    1 they crowd a few codes).
    x: random; extreme (codes 0 and 255 drawn, zero point 0 or 255: the largest |q k^T|, beyond 2^24 for d > 258, so
    step 2's f32(acc) rounds); all_max (every code 255, zero point 0: |q k^T| = 65025 d, just under 2^31 at the largest d);
    equal (one code everywhere: every logit the same, uniform attention)."""
    shape = (b, n, 3 * heads * d)
    if x == "extreme":
        codes = rng.choice(np.array([0, 255], np.uint8), shape)
        zp = int(rng.choice([0, 255]))
    elif x == "all_max":
        codes, zp = np.full(shape, 255, np.uint8), 0
    elif x == "equal":
        codes, zp = np.full(shape, int(rng.integers(0, 256)), np.uint8), int(rng.integers(0, 256))
    else:
        codes, zp = _u8(rng, shape), int(rng.integers(0, 256))
    qkv_scale = np.float32(rng.uniform(0.01, 0.1))
    qk_multiplier = np.float32(qkv_scale * qkv_scale * np.float32(d ** -0.5))
    parts = codes.reshape(b, n, 3, heads, d).astype(np.float64) - zp
    acc = np.einsum("bihd,bjhd->bhij", parts[:, :, 0], parts[:, :, 1]) if b * n else np.zeros(1)
    t_max = max(float(np.abs(acc).max()) * float(qk_multiplier), 1e-3)
    logits_scale = np.float32(spread * t_max / 127.0)
    inputs = {"QKV": codes, "qkv_scale": np.array(qkv_scale, np.float32), "qkv_zero_point": np.array(zp, np.uint8),
              "qk_multiplier": np.array(qk_multiplier, np.float32),
              "logits_scale": np.array(logits_scale, np.float32),
              "logits_zero_point": np.array(rng.integers(100, 156), np.uint8),
              "y_scale": np.array(qkv_scale * rng.uniform(1.0, 2.5), np.float32),
              "y_zero_point": np.array(rng.integers(64, 192), np.uint8)}
    return Case(inputs, {"heads": heads, "lis_multiplier": R.lis_multiplier(torch.tensor(logits_scale)), "bits": bits})


def _la(b: int, n: int, heads: int, d: int, **kw) -> Builder:
    return lambda g: lis_attention_inputs(g, b, n, heads, d, **kw)


LIS_ATTENTION: dict[str, Builder] = {
    "deit_s_1x197_h6_d64": _la(1, 197, 6, 64),
    "deit_s_2x197_h6_d64": _la(2, 197, 6, 64),
    "deit_t_1x197_h3_d64": _la(1, 197, 3, 64),
    "odd_3x17_h5_d13": _la(3, 17, 5, 13),
    "narrow_logits_spread_0.25": _la(2, 33, 2, 16, spread=0.25),
    "wide_logits_spread_8": _la(2, 33, 2, 16, spread=8.0),
    "bits3": _la(1, 40, 2, 24, bits=3),
    "bits1": _la(1, 40, 2, 24, bits=1),
    "extreme_d512": _la(1, 9, 1, 512, x="extreme"),
    "all_max_largest_d": _la(1, 2, 1, S.MAX_ATTENTION_HEAD_DIM, x="all_max"),
    "extreme_largest_d": _la(1, 5, 1, S.MAX_ATTENTION_HEAD_DIM, x="extreme"),
    "equal_codes_uniform": _la(2, 50, 2, 8, x="equal"),
    "N1": _la(4, 1, 3, 16),
    "D1": _la(2, 29, 4, 1),
    "heads1_N300": _la(1, 300, 1, 32),
    "empty_batch": _la(0, 7, 2, 8),
}


CASES: dict[str, dict[str, Builder]] = {"PTSLayerNorm": PTS, "LogIntSoftmax": LIS, "LISMatMul": LIS_MATMUL,
                                        "Lookup": LOOKUP, "Requantize": REQUANTIZE, "QLinear": QLINEAR,
                                        "ResidualAdd": RESIDUAL_ADD, "LISAttention": LIS_ATTENTION}
"""Every op's case table, by op name (the keys of ``ops/spec.py``'s ``OPS``)."""
assert list(CASES) == list(S.OPS)


def build(op: str, name: str) -> Case:
    """Case ``name`` of ``op``, its random draws seeded by the name (the same tensors in every harness)."""
    return CASES[op][name](np.random.default_rng(zlib.crc32(f"{op}/{name}".encode())))


def params(op: str) -> list[str]:
    """The case names of ``op``, for ``pytest.mark.parametrize``."""
    return list(CASES[op])


# --- the reference and the output shape -----------------------------------------------------------------------------

def reference(op: str, case: Case) -> np.ndarray:
    """The PyTorch reference's output (``fqvit_export.ops.reference``) for one case."""
    i, a = case.inputs, case.attrs
    if op == "PTSLayerNorm":
        return R.pts_layernorm(_t(i["X"]), _t(i["x_scale"]), _t(i["x_zero_point"]), _t(i["alpha"]), _t(i["gamma"]),
                               _t(i["beta"]), _t(i["y_scale"]), _t(i["y_zero_point"]), a["epsilon"]).numpy()
    if op == "LogIntSoftmax":
        mask = _t(i["mask"]) if "mask" in i else None
        return R.log_int_softmax(_t(i["X"]), a["multiplier"], a["bits"], mask).numpy()
    if op == "LISMatMul":
        return R.lis_matmul(_t(i["A"]), _t(i["V"]), _t(i["v_scale"]), _t(i["v_zero_point"]), _t(i["y_scale"]),
                            _t(i["y_zero_point"]), a["bits"]).numpy()
    if op == "Lookup":
        return R.lookup(_t(i["X"]), _t(i["table"])).numpy()
    if op == "QLinear":
        return R.qlinear(_t(i["X"]), _t(i["W"]), _t(i["x_zero_point"]), _t(i["multiplier"]), _t(i["bias"]),
                         _t(i["y_scale"]), _t(i["y_zero_point"])).numpy()
    if op == "ResidualAdd":
        return R.residual_add(_t(i["A"]), _t(i["a_scale"]), _t(i["a_zero_point"]), _t(i["B"]), _t(i["b_scale"]),
                              _t(i["b_zero_point"]), _t(i["y_scale"]), _t(i["y_zero_point"]),
                              _t(i["gamma"])).numpy()
    if op == "LISAttention":
        return R.lis_attention(_t(i["QKV"]), _t(i["qkv_scale"]), _t(i["qkv_zero_point"]), _t(i["qk_multiplier"]),
                               _t(i["logits_scale"]), _t(i["logits_zero_point"]), _t(i["y_scale"]),
                               _t(i["y_zero_point"]), a["heads"], a["lis_multiplier"], a["bits"]).numpy()
    return R.requantize(_t(i["A"]), _t(i["multiplier"]), _t(i["bias"]), _t(i["y_scale"]),
                        _t(i["y_zero_point"])).numpy()


def as_code_type(op: str, case: Case, dtype: str) -> Case:
    """The case with its code ports (``T`` in ``ops/spec.py``) in code type ``dtype``: for int8, every uint8 code and
    zero point ``u`` becomes ``u - 128`` and Lookup's table is :func:`~fqvit_export.ops.reference.int8_table`, so the
    int8 case's output is the uint8 case's output minus 128 (LogIntSoftmax's codes: the same)."""
    if dtype == "uint8":
        return case
    if dtype != "int8":
        raise ValueError(f"no code type {dtype!r}; known: {', '.join(S.CODE_TYPES)}")
    inputs = dict(case.inputs)
    for port in S.OPS[op].inputs:
        if port.dtype == "T" and port.name in inputs:
            assert inputs[port.name].dtype == np.uint8, (op, port.name)
            convert = R.int8_table if port.name == "table" else R.int8_codes
            inputs[port.name] = convert(_t(inputs[port.name])).numpy()
    return Case(inputs, dict(case.attrs))


def pts_reference(inputs: Inputs, epsilon: float) -> np.ndarray:
    """PTSLayerNorm's reference output for one case's inputs (shorthand for :func:`reference`)."""
    return reference("PTSLayerNorm", Case(inputs, {"epsilon": epsilon}))


def lis_reference(x: np.ndarray, multiplier: int, bits: int, mask: np.ndarray | None = None) -> np.ndarray:
    """LogIntSoftmax's reference codes for ``x`` (and the optional mask)."""
    return reference("LogIntSoftmax", Case({"X": x} if mask is None else {"X": x, "mask": mask},
                                           {"multiplier": multiplier, "bits": bits}))


def lis_matmul_reference(inputs: Inputs, bits: int) -> np.ndarray:
    """LISMatMul's reference output for one case's inputs."""
    return reference("LISMatMul", Case(inputs, {"bits": bits}))


def lookup_reference(x: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Lookup's reference output: ``table`` indexed by the codes of ``x``."""
    return reference("Lookup", Case({"X": x, "table": table}))


def requantize_reference(inputs: Inputs) -> np.ndarray:
    """Requantize's reference codes for one case's inputs."""
    return reference("Requantize", Case(inputs))


def out_shape(op: str, case: Case) -> tuple[int, ...]:
    """The shape of the op's one output."""
    i = case.inputs
    if op == "LISMatMul":
        return i["A"].shape[:-1] + i["V"].shape[-1:]
    if op == "QLinear":
        return i["X"].shape[:-1] + i["W"].shape[-1:]
    if op == "LISAttention":
        return i["QKV"].shape[:-1] + (i["QKV"].shape[-1] // 3,)
    return i["A" if op in ("Requantize", "ResidualAdd") else "X"].shape
