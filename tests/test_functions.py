"""The ``com.fqvit`` ONNX function bodies run by stock onnxruntime (CPU) against the PyTorch reference, bit for bit.

Each case builds a one-node model (opset 18 + ``com.fqvit`` 1, IR version 8, the functions in ``model.functions``),
checks it with ``onnx.checker`` (full check: shape inference through the function bodies), runs it with
onnxruntime's CPU execution provider and compares every output element, the dtype and the shape with
``fqvit_export.ops.reference`` (docs/ops.md Sec. 2-4, Sec. 1 GELU table and integer matmuls): tables of random and
adversarial cases per op, randomized shapes and parameters, a large-volume run per op. ``test_body_steps`` also runs
each body as a plain graph and compares every intermediate (float32 bit patterns, int64 values) with the document's
formulas written in numpy.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Collection

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from fqvit_export.ops import functions as F
from fqvit_export.ops import reference as R
from requantize_cases import requantize_inputs, requantize_reference

_ONNX_TYPE = {np.dtype(np.uint8): TensorProto.UINT8, np.dtype(np.float32): TensorProto.FLOAT,
              np.dtype(np.bool_): TensorProto.BOOL, np.dtype(np.int32): TensorProto.INT32,
              np.dtype(np.int64): TensorProto.INT64}
_SIGNATURES = {
    "PTSLayerNorm": (["X", "x_scale", "x_zero_point", "alpha", "gamma", "beta", "y_scale", "y_zero_point"], ["Y"],
                     ["epsilon"]),
    "LogIntSoftmax": (["X", "mask"], ["codes"], ["multiplier", "bits"]),
    "LISMatMul": (["A", "V", "v_scale", "v_zero_point", "y_scale", "y_zero_point"], ["Y"], ["bits"]),
    "Lookup": (["X", "table"], ["Y"], []),
    "Requantize": (["A", "multiplier", "bias", "y_scale", "y_zero_point"], ["Y"], []),
}
Inputs = dict[str, np.ndarray]


# --- building and running one-node models -------------------------------------------------------------------------

def _model(op_type: str, inputs: Inputs, attrs: dict, out_shape: tuple[int, ...], constant: Collection[str]
           ) -> onnx.ModelProto:
    names, outputs, _ = _SIGNATURES[op_type]
    assert list(inputs) == names, "inputs must be given in the op's order"
    node = F.make_node(op_type, names, outputs, "op0", **attrs)
    graph_inputs = [helper.make_tensor_value_info(n, _ONNX_TYPE[a.dtype], a.shape)
                    for n, a in inputs.items() if n not in constant]
    graph = helper.make_graph(
        [node], f"one_{op_type}", graph_inputs,
        [helper.make_tensor_value_info(outputs[0], TensorProto.UINT8, out_shape)],
        initializer=[numpy_helper.from_array(a, n) for n, a in inputs.items() if n in constant])
    return helper.make_model(graph, ir_version=8, functions=F.function_protos(),
                             opset_imports=[helper.make_opsetid("", F.OPSET),
                                            helper.make_opsetid(F.DOMAIN, F.OP_VERSION)])


def run_op(op_type: str, inputs: Inputs, attrs: dict, out_shape: tuple[int, ...], constant: Collection[str] = (),
           optimize: bool = True) -> np.ndarray:
    """Check and run a one-node ``com.fqvit`` model; ``constant`` inputs become initializers (as the exporter writes
    parameters), so onnxruntime may fold the steps that depend on them only."""
    model = _model(op_type, inputs, attrs, out_shape, constant)
    onnx.checker.check_model(model, full_check=True)
    options = ort.SessionOptions()
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return sess.run(None, {n: a for n, a in inputs.items() if n not in constant})[0]


def assert_bit_exact(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == np.uint8 and want.dtype == np.uint8
    assert got.shape == want.shape
    bad = np.argwhere(got != want)
    assert bad.size == 0, (f"{len(bad)} of {want.size} elements differ, first at {tuple(map(int, bad[0]))}: "
                           f"onnx {got[tuple(bad[0])]} reference {want[tuple(bad[0])]}")


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


# --- PTSLayerNorm (docs/ops.md Sec. 2) ------------------------------------------------------------------------------

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
        al = rng.integers(0, 4, c)
    elif alpha == "mixed":
        al = np.arange(c) % 2 * 3
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


def pts_reference(inp: Inputs, epsilon: float) -> np.ndarray:
    return R.pts_layernorm(_t(inp["X"]), _t(inp["x_scale"]), int(inp["x_zero_point"]), _t(inp["alpha"]),
                           _t(inp["gamma"]), _t(inp["beta"]), _t(inp["y_scale"]), int(inp["y_zero_point"]),
                           epsilon).numpy()


PTS_CASES = {
    "random": ((2, 7, 16), 1e-6, {}),
    "C1": ((5, 1), 1e-6, {}),
    "C1_eps0": ((5, 1), 0.0, {}),
    "C7": ((3, 7), 1e-5, {}),
    "C193": ((2, 3, 193), 1e-6, {}),
    "C1024": ((3, 1024), 1e-6, {}),
    "C4096_extremes": ((2, 4096), 1e-6, {"x": "extremes", "alpha": 3, "x_zero_point": 0}),
    "tokens197": ((1, 197, 64), 1e-6, {}),
    "swin_windows49": ((2, 4, 49, 32), 1e-5, {}),
    "const_rows": ((4, 6, 32), 1e-6, {"x": "const"}),
    "const_rows_eps0": ((4, 6, 32), 0.0, {"x": "const"}),
    "zp_rows_eps0": ((3, 17), 0.0, {"x": "zp"}),
    "some_const_rows_eps0": ((8, 33), 0.0, {"x": "some_const"}),
    "alpha_all0": ((4, 48), 1e-6, {"alpha": 0}),
    "alpha_all3": ((4, 48), 1e-6, {"alpha": 3}),
    "alpha_mixed": ((4, 48), 1e-6, {"alpha": "mixed"}),
    "extremes_zp0_alpha3": ((6, 96), 1e-6, {"x": "extremes", "alpha": 3, "x_zero_point": 0}),
    "extremes_zp255": ((6, 96), 0.0, {"x": "extremes", "x_zero_point": 255}),
    "narrow_rows": ((6, 64), 1e-5, {"x": "narrow"}),
    "epsilon_large": ((4, 40), 1.0, {"x": "narrow"}),
    "x_scale_tiny": ((4, 24), 1e-6, {"x_scale": 1e-30}),  # x_scale^2 underflows to 0: e = inf, y = +-0
    "x_scale_tiny_eps0": ((4, 24), 0.0, {"x_scale": 1e-30}),  # e = 0/0 = NaN: den NaN, y = 0
    "x_scale_huge": ((4, 24), 1e-6, {"x_scale": 1e30}),  # x_scale^2 = inf: e = 0
    "y_scale_tiny": ((4, 24), 1e-6, {"y_scale": 1e-30}),  # saturates at 0 / 255
    "y_scale_subnormal": ((4, 24), 1e-6, {"y_scale": 1e-40}),
    "y_scale_huge": ((4, 24), 1e-6, {"y_scale": 1e30}),  # everything at y_zero_point
    "round_half_even": ((4, 24), 1e-6, {"gamma": "zero", "beta": "halves", "y_scale": 0.25}),
    "gamma_huge": ((4, 24), 1e-6, {"gamma": "huge", "beta": "zero"}),  # y * gamma overflows to +-inf
    "gamma_ones_beta_zero": ((4, 24), 1e-6, {"gamma": "ones", "beta": "zero", "y_scale": 1 / 32}),
}


@pytest.mark.parametrize("case", PTS_CASES.values(), ids=PTS_CASES.keys())
def test_pts_layernorm(case: tuple) -> None:
    shape, epsilon, kwargs = case
    inp = pts_inputs(np.random.default_rng(len(shape) * 1000 + shape[-1]), shape, **kwargs)
    got = run_op("PTSLayerNorm", inp, {"epsilon": epsilon}, shape)
    assert_bit_exact(got, pts_reference(inp, epsilon))


# --- LogIntSoftmax (docs/ops.md Sec. 3) -----------------------------------------------------------------------------

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


def lis_reference(x: np.ndarray, mask: np.ndarray, multiplier: int, bits: int) -> np.ndarray:
    return R.log_int_softmax(_t(x), multiplier, bits, _t(mask)).numpy()


LIS_CASES = {
    "random": ((2, 3, 16, 16), 0.1, 4, "random", "none"),
    "tokens197": ((1, 2, 197, 197), 0.05, 4, "random", "none"),
    "swin_windows49_mask": ((2, 4, 3, 49, 49), 0.08, 4, "random", "swin"),
    "swin_windows49_random_mask": ((2, 4, 3, 49, 49), 0.08, 4, "random", "random"),
    "fully_masked_rows": ((2, 3, 9, 9), 0.1, 4, "random", "full_row"),
    "all_masked": ((2, 5, 7), 0.1, 4, "random", "all"),
    "all_equal": ((3, 49, 49), 0.1, 4, "const", "none"),
    "all_equal_N16": ((3, 16), 0.1, 4, "const", "none"),  # p = 2^26 exactly: code 4
    "all_equal_N1": ((4, 1), 0.1, 4, "const", "none"),  # p = 2^30: code 0
    "N1_masked": ((6, 1), 0.1, 4, "random", "random"),
    "dominant_large_M": ((4, 197), 2.0, 4, "dominant", "none"),  # code 0 and many zero codes
    "dominant_M1": ((4, 64), "M1", 4, "dominant", "none"),
    "M1_random": ((4, 64), "M1", 4, "random", "none"),
    "M0": ((4, 16), "M0", 4, "random", "none"),
    "M_large_random": ((4, 3, 64), 2.0, 4, "random", "none"),
    "M_huge": ((4, 64), "M_huge", 4, "narrow", "none"),  # n_j far beyond 62
    "narrow_logits": ((4, 8, 64), 0.3, 4, "narrow", "random"),
    "low_logits_small_M": ((4, 8, 64), 0.004, 4, "low", "none"),
    "bits3": ((2, 3, 16, 16), 0.1, 3, "random", "random"),
    "bits2": ((2, 3, 16, 16), 0.1, 2, "random", "none"),
    "bits2_swin": ((1, 4, 2, 49, 49), 0.08, 2, "random", "swin"),
    "bits1": ((2, 3, 16, 16), 2.0, 1, "random", "none"),  # codes 0 (p >= 2^-1/2) and 1 (zero)
}


def _multiplier(spec: float | str) -> int:
    return {"M0": 0, "M1": 1, "M_huge": R.MAX_LIS_MULTIPLIER}[spec] if isinstance(spec, str) else R.lis_multiplier(spec)


@pytest.mark.parametrize("case", LIS_CASES.values(), ids=LIS_CASES.keys())
def test_log_int_softmax(case: tuple) -> None:
    shape, scale, bits, x_kind, mask_kind = case
    rng = np.random.default_rng(sum(shape) + bits)
    x, mask, m = lis_logits(rng, shape, x_kind), lis_mask(rng, shape, mask_kind), _multiplier(scale)
    got = run_op("LogIntSoftmax", {"X": x, "mask": mask}, {"multiplier": m, "bits": bits}, shape)
    assert_bit_exact(got, lis_reference(x, mask, m, bits))


# --- LISMatMul (docs/ops.md Sec. 4) ---------------------------------------------------------------------------------

def lis_codes(rng: np.random.Generator, shape: tuple[int, ...], bits: int, kind: str, mask: str = "none"
              ) -> np.ndarray:
    """lis (LogIntSoftmax of random logits); any (arbitrary uint8); valid (0..Z); Z (all zero codes); code0 (all
    weights 2^14, beyond the sum bound of LIS outputs: f32(acc) rounds)."""
    z = (1 << bits) - 1
    if kind == "lis":
        return lis_reference(lis_logits(rng, shape), lis_mask(rng, shape, mask), R.lis_multiplier(0.1), bits)
    if kind == "any":
        return rng.integers(0, 256, shape).astype(np.uint8)
    if kind == "valid":
        return rng.integers(0, z + 1, shape).astype(np.uint8)
    return np.full(shape, z if kind == "Z" else 0, np.uint8)


def lis_matmul_inputs(rng: np.random.Generator, a_shape: tuple[int, ...], d: int, bits: int, kind: str, *,
                      mask: str = "none", v_scale: float = 0.04, y_scale: float = 0.02, v_zero_point: int | None = None
                      ) -> Inputs:
    return {"A": lis_codes(rng, a_shape, bits, kind, mask),
            "V": rng.integers(0, 256, a_shape[:-2] + (a_shape[-1], d)).astype(np.uint8),
            "v_scale": np.array(v_scale, np.float32),
            "v_zero_point": np.array(rng.integers(0, 256) if v_zero_point is None else v_zero_point, np.uint8),
            "y_scale": np.array(y_scale, np.float32), "y_zero_point": np.array(rng.integers(0, 256), np.uint8)}


def lis_matmul_reference(inp: Inputs, bits: int) -> np.ndarray:
    return R.lis_matmul(_t(inp["A"]), _t(inp["V"]), _t(inp["v_scale"]), int(inp["v_zero_point"]), _t(inp["y_scale"]),
                        int(inp["y_zero_point"]), bits).numpy()


LIS_MATMUL_CASES = {
    "lis_codes": ((2, 3, 16, 16), 8, 4, "lis", {}),
    "tokens197": ((1, 2, 197, 197), 64, 4, "lis", {}),
    "swin_windows49_mask": ((2, 4, 3, 49, 49), 32, 4, "lis", {"mask": "swin"}),
    "any_codes": ((2, 5, 7), 3, 4, "any", {}),
    "valid_codes": ((3, 9, 40), 5, 4, "valid", {}),
    "all_zero_code": ((2, 6, 10), 4, 4, "Z", {}),
    "all_code0_N197": ((2, 6, 197), 16, 4, "code0", {"v_zero_point": 0, "y_scale": 4.0}),
    "bits3": ((2, 8, 12), 6, 3, "any", {}),
    "bits2": ((2, 8, 12), 6, 2, "valid", {}),
    "bits2_lis": ((2, 3, 16, 16), 8, 2, "lis", {}),
    "bits1": ((2, 8, 12), 6, 1, "any", {}),
    "vzp0": ((2, 8, 12), 6, 4, "lis", {"v_zero_point": 0}),
    "vzp255": ((2, 8, 12), 6, 4, "lis", {"v_zero_point": 255}),
    "M1_N1_D1": ((1, 1), 1, 4, "valid", {}),
    "v_scale_subnormal": ((2, 8, 12), 6, 4, "valid", {"v_scale": 1e-38, "y_scale": 1e-44}),
    "v_scale_huge": ((2, 8, 12), 6, 4, "code0", {"v_scale": 1e30, "y_scale": 1.0}),  # f32 overflow to inf
    "y_scale_tiny": ((2, 8, 12), 6, 4, "lis", {"y_scale": 1e-30}),
    "y_scale_huge": ((2, 8, 12), 6, 4, "lis", {"y_scale": 1e30}),
    "round_half_even": ((4, 8, 12), 6, 4, "valid", {"v_scale": 1.0, "y_scale": 2.0 ** -13}),  # acc / 2
}


@pytest.mark.parametrize("case", LIS_MATMUL_CASES.values(), ids=LIS_MATMUL_CASES.keys())
def test_lis_matmul(case: tuple) -> None:
    a_shape, d, bits, kind, kwargs = case
    inp = lis_matmul_inputs(np.random.default_rng(sum(a_shape) + d + bits), a_shape, d, bits, kind, **kwargs)
    got = run_op("LISMatMul", inp, {"bits": bits}, a_shape[:-1] + (d,))
    assert_bit_exact(got, lis_matmul_reference(inp, bits))


# --- Lookup (docs/ops.md Sec. 1, GELU table) ------------------------------------------------------------------------

def lookup_table(rng: np.random.Generator, kind: str = "random") -> np.ndarray:
    """random; reversed (255 - c); const (one value); gelu (a quantized GELU table from the exporter's helper)."""
    if kind == "reversed":
        return np.arange(255, -1, -1).astype(np.uint8)
    if kind == "const":
        return np.full(256, int(rng.integers(0, 256)), np.uint8)
    if kind == "gelu":
        from fqvit_export.quant.primitives import gelu_table
        return gelu_table(torch.tensor(0.047), torch.tensor(97), torch.tensor(0.031), torch.tensor(12)).numpy()
    return rng.integers(0, 256, 256).astype(np.uint8)


def lookup_reference(x: np.ndarray, table: np.ndarray) -> np.ndarray:
    return R.lookup(torch.from_numpy(np.array(x)), _t(table)).numpy()  # np.array keeps a rank-0 X rank 0


LOOKUP_CASES = {
    "every_code": (np.arange(256).reshape(16, 16), "random"),
    "every_code_reversed": (np.arange(256), "reversed"),
    "gelu_table": ((2, 197, 64), "gelu"),
    "const_table": ((3, 50), "const"),
    "scalar": ((), "random"),
    "one_element": ((1,), "random"),
    "odd": ((3, 5, 7), "random"),
    "empty": ((2, 0, 5), "random"),
    "swin_mlp": ((4, 49, 384), "gelu"),
}


@pytest.mark.parametrize("case", LOOKUP_CASES.values(), ids=LOOKUP_CASES.keys())
def test_lookup(case: tuple) -> None:
    spec, kind = case
    rng = np.random.default_rng(31)
    x = (spec.astype(np.uint8) if isinstance(spec, np.ndarray)
         else np.asarray(rng.integers(0, 256, spec), np.uint8).reshape(spec))
    table = lookup_table(rng, kind)
    for constant in ((), ("table",)):  # table fed at run time, and as an initializer (as the exporter writes it)
        got = run_op("Lookup", {"X": x, "table": table}, {}, x.shape, constant=constant)
        assert_bit_exact(got, lookup_reference(x, table))


def test_lookup_short_table_fails() -> None:
    """Outside the op's domain: with a 255-entry table the body's Gather rejects code 255 (the kernels reject the
    table itself)."""
    x = np.array([[0, 255]], np.uint8)
    with pytest.raises(Exception, match="out of bounds|out of range|indices"):
        run_op("Lookup", {"X": x, "table": np.zeros(255, np.uint8)}, {}, x.shape)


# --- Requantize (docs/ops.md Sec. 1, integer matmuls) -----------------------------------------------------------------

REQUANTIZE_CASES = {
    "deit_s_qkv": ((2, 197, 1152), {}),
    "large_acc": ((7, 300), {"acc": "large", "y_scale": 3.0}),
    "large_acc_small_m": ((5, 129), {"acc": "large", "m": 1e-7, "y_scale": 0.5}),
    "f32_conversion_ties": ((13, 70), {"acc": "conv_ties", "m": 1.0, "b": "conv", "y_scale": 1.0, "y_zp": 128}),
    "ties_m_half": ((11, 45), {"acc": "ties", "m": 0.5, "b": 0.0, "y_scale": 1.0, "y_zp": 128}),
    "ties_bias_half": ((11, 45), {"acc": "ties", "m": 1.0, "b": 0.5, "y_scale": 1.0, "y_zp": 128}),
    "ties_after_division": ((11, 45), {"acc": "ties", "m": 0.125, "b": 0.0, "y_scale": 0.25, "y_zp": 100}),
    "saturate_both_ends": ((6, 100), {"acc": "large", "m": 1.0, "y_scale": 0.001}),
    "saturate_zp0": ((6, 100), {"m": 1e-3, "y_scale": 0.01, "y_zp": 0}),
    "saturate_zp255": ((6, 100), {"m": 1e-3, "y_scale": 0.01, "y_zp": 255}),
    "tiny_y_scale": ((4, 50), {"acc": "large", "m": 1.0, "y_scale": 1e-30}),
    "scalar_multiplier": ((5, 97), {"m": "scalar"}),
    "one_element_bias": ((5, 97), {"b": "one"}),
    "scalar_both": ((5, 97), {"m": "scalar", "b": "scalar"}),
    "N1": ((37, 1), {}),
    "N17": ((4, 3, 17), {}),
    "rank1": ((1000,), {}),
    "empty_rows": ((0, 5), {}),
    "empty_N": ((3, 0), {}),
}


@pytest.mark.parametrize("case", REQUANTIZE_CASES.values(), ids=REQUANTIZE_CASES.keys())
def test_requantize(case: tuple) -> None:
    shape, kwargs = case
    inp = requantize_inputs(np.random.default_rng(sum(shape) + 7), shape, **kwargs)
    for constant in ((), ("multiplier", "bias", "y_scale", "y_zero_point")):
        got = run_op("Requantize", inp, {}, shape, constant=constant)
        assert_bit_exact(got, requantize_reference(inp))


def test_requantize_reference_rejects() -> None:
    a = torch.zeros((2, 8), dtype=torch.int32)
    with pytest.raises(ValueError, match="multiplier must have shape"):
        R.requantize(a, torch.ones(5), torch.zeros(8), torch.tensor(0.1), 0)
    with pytest.raises(ValueError, match="bias must have shape"):
        R.requantize(a, torch.ones(8), torch.zeros((1, 8)), torch.tensor(0.1), 0)
    with pytest.raises(ValueError, match="int32"):
        R.requantize(a.float(), torch.ones(8), torch.zeros(8), torch.tensor(0.1), 0)
    with pytest.raises(ValueError, match="rank >= 1"):
        R.requantize(torch.tensor(3, dtype=torch.int32), torch.ones(()), torch.zeros(()), torch.tensor(0.1), 0)


# --- randomized shapes and parameters --------------------------------------------------------------------------------

def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(math.log(lo), math.log(hi))))


def _random_pts(rng: np.random.Generator) -> tuple[Inputs, dict, tuple[int, ...], np.ndarray]:
    c = int(rng.choice([1, 2, 3, 7, 16, 31, 64, 97, 192, 385, 768]))
    shape = tuple(int(s) for s in rng.integers(1, 6, rng.integers(0, 3))) + (int(rng.integers(1, 40)), c)
    epsilon = float(rng.choice([0.0, 1e-6, 1e-5, _log_uniform(rng, 1e-9, 1e-1)]))
    inp = pts_inputs(rng, shape, x=str(rng.choice(["random", "random", "some_const", "narrow", "extremes"])),
                     alpha=["random", "mixed", 0, 3][rng.integers(4)],
                     x_scale=_log_uniform(rng, 1e-4, 1.0), y_scale=_log_uniform(rng, 1e-3, 0.5))
    return inp, {"epsilon": epsilon}, shape, pts_reference(inp, epsilon)


def _random_lis(rng: np.random.Generator) -> tuple[Inputs, dict, tuple[int, ...], np.ndarray]:
    n = int(rng.choice([1, 2, 5, 16, 49, 64, 197]))
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 5)), int(rng.integers(1, 3)), int(rng.integers(1, 20)), n)
    bits, m = int(rng.integers(1, 5)), R.lis_multiplier(_log_uniform(rng, 1e-3, 4.0))
    x = lis_logits(rng, shape, str(rng.choice(["random", "random", "narrow", "low", "dominant", "const"])))
    mask = lis_mask(rng, shape, str(rng.choice(["none", "random", "full_row"])))
    return {"X": x, "mask": mask}, {"multiplier": m, "bits": bits}, shape, lis_reference(x, mask, m, bits)


def _random_lis_matmul(rng: np.random.Generator) -> tuple[Inputs, dict, tuple[int, ...], np.ndarray]:
    a_shape = tuple(int(s) for s in rng.integers(1, 4, rng.integers(0, 3))) + tuple(map(int, rng.integers(1, 60, 2)))
    d, bits = int(rng.integers(1, 40)), int(rng.integers(1, 5))
    inp = lis_matmul_inputs(rng, a_shape, d, bits, str(rng.choice(["lis", "lis", "valid", "any"])),
                            v_scale=_log_uniform(rng, 1e-4, 1.0), y_scale=_log_uniform(rng, 1e-4, 0.1))
    return inp, {"bits": bits}, a_shape[:-1] + (d,), lis_matmul_reference(inp, bits)


def _random_lookup(rng: np.random.Generator) -> tuple[Inputs, dict, tuple[int, ...], np.ndarray]:
    shape = tuple(int(s) for s in rng.integers(1, 5, rng.integers(0, 3))) + (int(rng.integers(1, 400)),)
    x = rng.integers(0, 256, shape).astype(np.uint8)
    table = lookup_table(rng, str(rng.choice(["random", "random", "reversed", "const", "gelu"])))
    return {"X": x, "table": table}, {}, shape, lookup_reference(x, table)


def _random_requantize(rng: np.random.Generator) -> tuple[Inputs, dict, tuple[int, ...], np.ndarray]:
    shape = tuple(int(s) for s in rng.integers(1, 5, rng.integers(0, 3))) + (int(rng.integers(1, 40)),
                                                                           int(rng.integers(1, 400)))
    kinds = ["channel", "channel", "channel", "scalar", "one"]
    inp = requantize_inputs(rng, shape, acc=str(rng.choice(["matmul", "matmul", "large", "ties"])),
                            m=str(rng.choice(kinds)), b=str(rng.choice(kinds)), y_scale=_log_uniform(rng, 1e-3, 1.0))
    return inp, {}, shape, requantize_reference(inp)


_RANDOM: dict[str, Callable] = {"PTSLayerNorm": _random_pts, "LogIntSoftmax": _random_lis,
                                "LISMatMul": _random_lis_matmul, "Lookup": _random_lookup,
                                "Requantize": _random_requantize}
_PARAMS = {"PTSLayerNorm": ["x_scale", "x_zero_point", "alpha", "gamma", "beta", "y_scale", "y_zero_point"],
           "LogIntSoftmax": ["mask"], "LISMatMul": ["v_scale", "v_zero_point", "y_scale", "y_zero_point"],
           "Lookup": ["table"], "Requantize": ["multiplier", "bias", "y_scale", "y_zero_point"]}


@pytest.mark.parametrize("seed", range(30))
@pytest.mark.parametrize("op_type", _RANDOM)
def test_random(op_type: str, seed: int) -> None:
    """Random shapes and parameters; odd seeds pass the parameters as initializers (as the exporter does), every
    third seed runs without graph optimizations."""
    inp, attrs, shape, want = _RANDOM[op_type](np.random.default_rng([seed, len(op_type)]))
    got = run_op(op_type, inp, attrs, shape, constant=_PARAMS[op_type] if seed % 2 else (), optimize=seed % 3 != 0)
    assert_bit_exact(got, want)


# --- the torch.sqrt regression case, and large volume -------------------------------------------------------------

def _sqrt_row() -> Inputs:
    """One row with ``D = 7526`` (eps 0): ``den`` is 86.75252532958984 with the IEEE sqrt and 86.75251770019531 with
    torch's float32 sqrt (exact 86.7525215771853), and ``y_scale`` puts channel 0 on the rounding boundary between
    them: 129 per docs/ops.md. The reference once used torch's float32 sqrt and gave 130 here."""
    c = 5
    return {"X": np.array([[160, 126, 170, 173, 169]], np.uint8), "x_scale": np.array(0.02, np.float32),
            "x_zero_point": np.array(128, np.uint8), "alpha": np.zeros(c, np.uint8),
            "gamma": np.ones(c, np.float32), "beta": np.zeros(c, np.float32),
            "y_scale": np.array(0.01536939013749361, np.float32), "y_zero_point": np.array(128, np.uint8)}


def test_pts_layernorm_ieee_sqrt() -> None:
    inp = _sqrt_row()
    got = run_op("PTSLayerNorm", inp, {"epsilon": 0.0}, (1, 5))
    assert got[0, 0] == 129
    assert_bit_exact(got, pts_reference(inp, 0.0))


@pytest.mark.parametrize("op_type", _RANDOM)
def test_large_volume(op_type: str) -> None:
    """About a million outputs per op at realistic sizes. A one-ulp difference in a float intermediate changes a
    uint8 output only a few times per ten million elements, so ``test_body_steps`` is the sharper check of the
    float steps; this one guards the whole pipeline at scale."""
    rng = np.random.default_rng(2024)
    if op_type == "PTSLayerNorm":
        shape, epsilon = (2, 1366, 384), 1e-6
        inp = pts_inputs(rng, shape, x_scale=0.0113, y_scale=0.0137)
        got, want = run_op(op_type, inp, {"epsilon": epsilon}, shape), pts_reference(inp, epsilon)
    elif op_type == "LogIntSoftmax":
        shape, m = (4, 6, 197, 197), R.lis_multiplier(0.061)
        x, mask = lis_logits(rng, shape), lis_mask(rng, shape, "full_row")
        got, want = run_op(op_type, {"X": x, "mask": mask}, {"multiplier": m, "bits": 4}, shape), \
            lis_reference(x, mask, m, 4)
    elif op_type == "LISMatMul":
        inp = lis_matmul_inputs(rng, (2, 6, 197, 197), 64, 4, "lis", v_scale=0.0291, y_scale=0.0077)
        got, want = run_op(op_type, inp, {"bits": 4}, (2, 6, 197, 64)), lis_matmul_reference(inp, 4)
    elif op_type == "Lookup":
        x, table = rng.integers(0, 256, (8, 197, 768)).astype(np.uint8), lookup_table(rng, "gelu")
        got, want = run_op(op_type, {"X": x, "table": table}, {}, x.shape), lookup_reference(x, table)
    else:
        inp = requantize_inputs(rng, (4, 197, 1152), y_scale=0.0213)
        got, want = run_op(op_type, inp, {}, (4, 197, 1152)), requantize_reference(inp)
    assert_bit_exact(got, want)


# --- every intermediate of the bodies against the document's formulas -----------------------------------------------

def run_body(func: onnx.FunctionProto, inputs: Inputs, attrs: dict, values: list[str]) -> list[np.ndarray]:
    """Run a function body as a plain graph (attribute references replaced by ``attrs``) and return the named
    intermediate values: a one-ulp difference in a float step shows there on every element, whereas in the uint8
    output it shows only where a value sits on a rounding boundary (a few per ten million)."""
    nodes = []
    for node in func.node:
        node = onnx.NodeProto.FromString(node.SerializeToString())
        for attr in node.attribute:
            if attr.ref_attr_name:
                attr.CopyFrom(helper.make_attribute(attr.name, attrs[attr.ref_attr_name]))
        nodes.append(node)
    graph = helper.make_graph(nodes, func.name, [helper.make_tensor_value_info(n, _ONNX_TYPE[a.dtype], a.shape)
                                                 for n, a in inputs.items()],
                              [helper.make_value_info(v, onnx.TypeProto()) for v in values])
    model = helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", F.OPSET)])
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(values, inputs)


def _pts_steps(inp: Inputs, epsilon: float) -> dict[str, np.ndarray]:
    """docs/ops.md Sec. 2 steps 2-7 in numpy (IEEE float32 operations, one per step)."""
    f32, c = np.float32, inp["X"].shape[-1]
    xi = (inp["X"].astype(np.int64) - int(inp["x_zero_point"])) << inp["alpha"].astype(np.int64)
    s1, s2 = xi.sum(-1, keepdims=True), (xi * xi).sum(-1, keepdims=True)
    d = (c * s2 - s1 * s1).astype(f32)
    with np.errstate(divide="ignore", invalid="ignore"):  # e = 0/0 and y = 0/0 are legitimate (then y = 0)
        e = (f32(c * c) * f32(epsilon)) / (inp["x_scale"] * inp["x_scale"])
        den = np.sqrt(d + e)
        y = np.where(den > 0, (c * xi - s1).astype(f32) / den, f32(0))
    v = y * inp["gamma"] + inp["beta"]
    return {"D_f32": d, "e": e, "den": den, "y": y, "v": v, "q_div_scale": v / inp["y_scale"]}


def _lis_steps(x: np.ndarray, mask: np.ndarray, multiplier: int) -> dict[str, np.ndarray]:
    """docs/ops.md Sec. 3 steps 1-5 in numpy int64."""
    q = np.where(mask, -1, x.astype(np.int64))
    t = (q - q.max(-1, keepdims=True)) * multiplier
    n = (-t) >> R.LIS_FRAC_BITS
    r = t + (n << R.LIS_FRAC_BITS)
    z = r * (r + R.LIS_POLY_B) + R.LIS_POLY_C
    e = np.where(mask, 0, z >> np.minimum(n, 62))
    p = (e << R.LIS_NORM_BITS) // np.maximum(e.sum(-1, keepdims=True), 1)
    return {"n": n, "r": r, "z": z, "e": e, "p": p}


def _requantize_steps(inp: Inputs) -> dict[str, np.ndarray]:
    """docs/ops.md Sec. 1 (integer matmuls) in numpy: one IEEE float32 operation per step."""
    t = inp["A"].astype(np.float32)
    ts = t * inp["multiplier"]
    tb = ts + inp["bias"]
    q = tb / inp["y_scale"]
    return {"A_f32": t, "t_scaled": ts, "t": tb, "q_div_scale": q, "q_round": np.round(q)}


def _lis_matmul_steps(inp: Inputs, bits: int) -> dict[str, np.ndarray]:
    """docs/ops.md Sec. 4 steps 1-3 in numpy (float64 sums of integers, then IEEE float32)."""
    a = inp["A"].astype(np.int64)
    w = np.where(a < (1 << bits) - 1, 2.0 ** (R.LIS_VALUE_SHIFT - np.minimum(a, R.LIS_VALUE_SHIFT)), 0.0)
    acc = w @ (inp["V"].astype(np.float64) - float(inp["v_zero_point"]))
    t = acc.astype(np.float32) * inp["v_scale"] * np.float32(2.0 ** -R.LIS_VALUE_SHIFT)
    return {"acc": acc, "t": t, "q_div_scale": t / inp["y_scale"]}


BODY_CASES = {
    "pts_197": ("PTSLayerNorm", {"shape": (3000, 197), "x": "some_const", "x_scale": 0.0113, "y_scale": 0.0137,
                                 "epsilon": 1e-6}),
    "pts_768_mixed_alpha": ("PTSLayerNorm", {"shape": (400, 768), "alpha": "mixed", "x_scale": 0.37, "y_scale": 0.05,
                                             "epsilon": 1e-5}),
    "pts_const_rows_eps": ("PTSLayerNorm", {"shape": (64, 7), "x": "const", "x_scale": 3e-3, "epsilon": 0.1}),
    "pts_e_nan": ("PTSLayerNorm", {"shape": (64, 7), "x": "narrow", "x_scale": 1e-30, "epsilon": 0.0}),
    "lis_swin": ("LogIntSoftmax", {"shape": (2, 4, 3, 49, 49), "multiplier": R.lis_multiplier(0.083), "mask": "swin"}),
    "lis_M_odd": ("LogIntSoftmax", {"shape": (64, 197), "multiplier": 16383, "mask": "full_row"}),
    "lis_M3": ("LogIntSoftmax", {"shape": (64, 197), "multiplier": 3, "mask": "none"}),
    "lis_M_large": ("LogIntSoftmax", {"shape": (64, 197), "multiplier": R.lis_multiplier(2.0), "mask": "random"}),
    "lis_matmul_valid": ("LISMatMul", {"shape": (2, 3, 197, 197), "kind": "valid", "bits": 4, "v_scale": 0.0291,
                                       "y_scale": 0.0077}),
    "lis_matmul_any_bits2": ("LISMatMul", {"shape": (2, 49, 49), "kind": "any", "bits": 2, "v_scale": 0.5,
                                           "y_scale": 0.003}),
    "lis_matmul_subnormal": ("LISMatMul", {"shape": (2, 49, 49), "kind": "valid", "bits": 4, "v_scale": 1e-38,
                                           "y_scale": 1e-41}),
    "lookup_every_code": ("Lookup", {"shape": (4, 256)}),
    "requantize_deit": ("Requantize", {"shape": (300, 1152)}),
    "requantize_large_acc": ("Requantize", {"shape": (200, 97), "acc": "large", "y_scale": 3.0}),
    "requantize_conv_ties": ("Requantize", {"shape": (200, 70), "acc": "conv_ties", "m": 1.0, "b": "conv",
                                            "y_scale": 1.0}),
    "requantize_scalar_params": ("Requantize", {"shape": (64, 33), "m": "scalar", "b": "one"}),
}


@pytest.mark.parametrize("case", BODY_CASES.values(), ids=BODY_CASES.keys())
def test_body_steps(case: tuple[str, dict]) -> None:
    """Every float32 and int64 intermediate of a body equals docs/ops.md's formula bit for bit."""
    op_type, prm = case
    rng = np.random.default_rng(11)
    if op_type == "PTSLayerNorm":
        inp = pts_inputs(rng, prm["shape"], **{k: v for k, v in prm.items() if k not in ("shape", "epsilon")})
        attrs, want = {"epsilon": prm["epsilon"]}, _pts_steps(inp, prm["epsilon"])
    elif op_type == "LogIntSoftmax":
        inp = {"X": lis_logits(rng, prm["shape"]), "mask": lis_mask(rng, prm["shape"], prm["mask"])}
        attrs, want = {"multiplier": prm["multiplier"], "bits": 4}, _lis_steps(inp["X"], inp["mask"], prm["multiplier"])
    elif op_type == "LISMatMul":
        inp = lis_matmul_inputs(rng, prm["shape"], 32, prm["bits"], prm["kind"], v_scale=prm["v_scale"],
                                y_scale=prm["y_scale"])
        attrs, want = {"bits": prm["bits"]}, _lis_matmul_steps(inp, prm["bits"])
    elif op_type == "Requantize":
        inp = requantize_inputs(rng, **prm)
        attrs, want = {}, _requantize_steps(inp)
    else:  # step 1: X_i32 = int32(X); step 2: Y = table[X_i32]
        x = np.tile(np.arange(256, dtype=np.uint8), (prm["shape"][0], 1))
        inp, attrs = {"X": rng.permuted(x, axis=1), "table": lookup_table(rng)}, {}
        want = {"X_i32": inp["X"].astype(np.int32), "Y": inp["table"][inp["X"]]}
    got = run_body(next(f for f in F.function_protos() if f.name == op_type), inp, attrs, list(want))
    for (name, w), g in zip(want.items(), got):
        assert g.dtype == w.dtype and g.shape == np.broadcast_shapes(g.shape, w.shape), name
        assert np.array_equal(g.view(f"u{g.itemsize}"), np.broadcast_to(w, g.shape).view(f"u{w.itemsize}")), name


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_lis_code_step_at_every_threshold(bits: int) -> None:
    """Step 6 alone, fed ``p`` at and next to every threshold: ``code = #{k < Z : p^2 < T_k}`` exactly at the
    boundaries, where random logits almost never land (an off-by-one threshold passes every other test)."""
    func = onnx.FunctionProto.FromString(F.log_int_softmax_function().SerializeToString())
    producer = next(n for n in func.node if "p" in n.output)
    func.node.remove(producer)  # "p" becomes an input of the graph run_body builds
    roots = [math.isqrt(t - 1) + 1 for t in R.lis_code_thresholds(4)]
    p = np.array(sorted({v for r in roots for v in (r - 1, r, r + 1)} | {0, 1, (1 << 30) - 1, 1 << 30}), np.int64)
    z = (1 << bits) - 1
    want = np.array([sum(int(v) * int(v) < t for t in R.lis_code_thresholds(bits)) for v in p], np.uint8)
    inputs = {"X": np.zeros(p.shape, np.uint8), "mask": np.zeros(p.shape, bool), "p": p}
    (got,) = run_body(func, inputs, {"multiplier": 1, "bits": bits}, ["codes"])
    assert got.dtype == np.uint8 and np.array_equal(got, want), (bits, p[got != want], got[got != want])
    assert want.max() == z and want.min() == 0


def test_pts_epsilon_term() -> None:
    """Step 3, ``e = (f32(C * C) * epsilon) / (x_scale * x_scale)``, over many widths, epsilons and scales."""
    rng = np.random.default_rng(12)
    for _ in range(40):
        c, epsilon = int(rng.integers(1, 4097)), float(rng.choice([1e-6, 1e-5, _log_uniform(rng, 1e-12, 1.0)]))
        inp = pts_inputs(rng, (1, c), x_scale=_log_uniform(rng, 1e-6, 10.0))
        (e,) = run_body(F.pts_layernorm_function(), inp, {"epsilon": epsilon}, ["e"])
        assert e.view(np.uint32) == _pts_steps(inp, epsilon)["e"].view(np.uint32), (c, epsilon, inp["x_scale"])


# --- the FunctionProtos themselves ------------------------------------------------------------------------------------

def test_function_signatures() -> None:
    """Names, input/output order and attributes as docs/ops.md states them; standard ops only, opset 18."""
    funcs = F.function_protos()
    assert [f.name for f in funcs] == ["PTSLayerNorm", "LogIntSoftmax", "LISMatMul", "Lookup", "Requantize"]
    for f in funcs:
        inputs, outputs, attributes = _SIGNATURES[f.name]
        assert f.domain == F.DOMAIN == "com.fqvit"
        assert (list(f.input), list(f.output), list(f.attribute)) == (inputs, outputs, attributes)
        assert [(o.domain, o.version) for o in f.opset_import] == [("", F.OPSET)]
        assert all(n.domain == "" for n in f.node), "no nested custom ops"
        assert {a.ref_attr_name for n in f.node for a in n.attribute if a.ref_attr_name} == set(attributes)


@pytest.mark.parametrize("func", F.function_protos(), ids=lambda f: f.name)
def test_check_function(func: onnx.FunctionProto) -> None:
    onnx.checker.check_function(func)
    ctx = onnx.checker.C.CheckerContext()
    ctx.ir_version = 8
    ctx.opset_imports = {"": F.OPSET, F.DOMAIN: F.OP_VERSION}
    onnx.checker.check_function(func, ctx)


def test_make_node() -> None:
    node = F.make_node("LogIntSoftmax", ["x", "m"], ["y"], "lis", multiplier=5, bits=4)
    assert (node.domain, node.op_type, node.name, list(node.input), list(node.output)) == (
        F.DOMAIN, "LogIntSoftmax", "lis", ["x", "m"], ["y"])
    assert {a.name: helper.get_attribute_value(a) for a in node.attribute} == {"multiplier": 5, "bits": 4}
