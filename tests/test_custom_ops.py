"""The ``com.fqvit`` onnxruntime kernels (``custom_ops/``) against the PyTorch reference, bit for bit.

Each case builds a one-node model (opset 18 + ``com.fqvit`` 1, IR version 8, no function bodies, so only the
library's kernel can run it), runs it on onnxruntime's CPU execution provider with the library registered and two
intra-op threads, and compares every output element, the dtype and the shape with ``fqvit_export.ops.reference``
(docs/ops.md Sec. 2-4, Sec. 1 GELU table and integer matmuls). Every CPU path the machine offers (scalar, AVX2,
AVX-512; chosen with ``FQVIT_CPU_ISA`` when the session is created) must give the same bits. Expected outputs come
from the reference only.

Skipped as a whole when the library is not built (``tools/build_custom_ops.sh``).
"""
from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Collection

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from fqvit_export._lib import custom_ops_library
from fqvit_export.ops import reference as R
from requantize_cases import requantize_inputs, requantize_reference

LIB = custom_ops_library()
pytestmark = pytest.mark.skipif(LIB is None, reason="com.fqvit custom-op library not built: run "
                                                    "tools/build_custom_ops.sh (or set FQVIT_CUSTOM_OPS_LIB)")

DOMAIN = "com.fqvit"
_ONNX_TYPE = {np.dtype(np.uint8): TensorProto.UINT8, np.dtype(np.float32): TensorProto.FLOAT,
              np.dtype(np.bool_): TensorProto.BOOL, np.dtype(np.int32): TensorProto.INT32,
              np.dtype(np.int64): TensorProto.INT64, np.dtype(np.int8): TensorProto.INT8}
_SIGNATURES = {
    "PTSLayerNorm": (["X", "x_scale", "x_zero_point", "alpha", "gamma", "beta", "y_scale", "y_zero_point"], "Y"),
    "LogIntSoftmax": (["X", "mask"], "codes"),
    "LISMatMul": (["A", "V", "v_scale", "v_zero_point", "y_scale", "y_zero_point"], "Y"),
    "Lookup": (["X", "table"], "Y"),
    "Requantize": (["A", "multiplier", "bias", "y_scale", "y_zero_point"], "Y"),
}
# CPU paths: "auto" is the best one this CPU runs; the others are forced (lowered to what the CPU supports).
ISAS = ["auto", "scalar", "avx2"]
Inputs = dict[str, np.ndarray]


# --- building and running one-node models -------------------------------------------------------------------------

def _model(op_type: str, inputs: Inputs, attrs: dict, constant: Collection[str] = ()) -> onnx.ModelProto:
    names, output = _SIGNATURES[op_type]
    used = [n for n in names if n in inputs]
    node = helper.make_node(op_type, used, [output], name="op0", domain=DOMAIN, **attrs)
    graph_inputs = [helper.make_tensor_value_info(n, _ONNX_TYPE[a.dtype], a.shape)
                    for n, a in inputs.items() if n not in constant]
    graph = helper.make_graph(
        [node], f"one_{op_type}", graph_inputs, [helper.make_tensor_value_info(output, TensorProto.UINT8, None)],
        initializer=[onnx.numpy_helper.from_array(a, n) for n, a in inputs.items() if n in constant])
    return helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 18),
                                                                 helper.make_opsetid(DOMAIN, 1)])


def _session(model: onnx.ModelProto, isa: str = "auto", lib=None) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.register_custom_ops_library(str(lib or LIB))
    so.intra_op_num_threads = 2
    so.log_severity_level = 3
    old = os.environ.get("FQVIT_CPU_ISA")
    os.environ["FQVIT_CPU_ISA"] = "" if isa == "auto" else isa  # read by the kernel when the session creates it
    try:
        return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    finally:
        if old is None:
            del os.environ["FQVIT_CPU_ISA"]
        else:
            os.environ["FQVIT_CPU_ISA"] = old


def run_op(op_type: str, inputs: Inputs, attrs: dict, constant: Collection[str] = (), isa: str = "auto",
           lib=None) -> np.ndarray:
    session = _session(_model(op_type, inputs, attrs, constant), isa, lib)
    feeds = {n: a for n, a in inputs.items() if n not in constant}
    return session.run(None, feeds)[0]


def assert_same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == np.uint8 and got.shape == want.shape, (got.dtype, got.shape, want.shape)
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, (f"{bad.size} of {want.size} elements differ; first at flat index {bad[0]}: "
                           f"got {got.flat[bad[0]]}, want {want.flat[bad[0]]}")


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


# --- PTSLayerNorm ---------------------------------------------------------------------------------------------------

def pts_inputs(rng: np.random.Generator, shape: tuple[int, ...], *, alpha: int | None = None,
               constant: int | None = None, x_scale: float | None = None, x_zp: int | None = None,
               y_scale: float | None = None, y_zp: int | None = None) -> Inputs:
    c = shape[-1]
    x = (np.full(shape, constant, np.uint8) if constant is not None
         else rng.integers(0, 256, shape, dtype=np.uint8))
    return {
        "X": x,
        "x_scale": np.array(x_scale if x_scale is not None else rng.uniform(0.002, 0.1), np.float32),
        "x_zero_point": np.array(x_zp if x_zp is not None else rng.integers(0, 256), np.uint8),
        "alpha": (np.full(c, alpha, np.uint8) if alpha is not None else rng.integers(0, 4, c, dtype=np.uint8)),
        "gamma": rng.uniform(-2.0, 2.0, c).astype(np.float32),
        "beta": rng.uniform(-1.0, 1.0, c).astype(np.float32),
        "y_scale": np.array(y_scale if y_scale is not None else rng.uniform(0.01, 0.08), np.float32),
        "y_zero_point": np.array(y_zp if y_zp is not None else rng.integers(0, 256), np.uint8),
    }


def pts_reference(inputs: Inputs, epsilon: float) -> np.ndarray:
    i = {k: _t(v) for k, v in inputs.items()}
    return R.pts_layernorm(i["X"], i["x_scale"], int(inputs["x_zero_point"]), i["alpha"], i["gamma"], i["beta"],
                           i["y_scale"], int(inputs["y_zero_point"]), epsilon).numpy()


PTS_CASES: dict[str, tuple[tuple[int, ...], dict, float]] = {
    "vit_s_8x197x384": ((8, 197, 384), {}, 1e-6),
    "vit_b_197x768": ((197, 768), {}, 1e-6),
    "C1": ((5, 1), {}, 1e-5),
    "C1_eps0": ((5, 1), {}, 0.0),
    "C2": ((9, 2), {}, 1e-5),
    "odd_C97": ((7, 97), {}, 1e-5),
    "C33_not_vector_multiple": ((3, 5, 33), {}, 1e-5),
    "C1024": ((3, 1024), {}, 1e-5),
    "C4096": ((2, 4096), {}, 1e-5),
    "197_tokens_C192": ((1, 197, 192), {}, 1e-6),
    "swin_49_tokens_C96": ((4, 49, 96), {}, 1e-5),
    "many_rows_C16": ((4099, 16), {}, 1e-5),
    "constant_rows_eps0": ((6, 64), {"constant": 77}, 0.0),
    "constant_rows_eps": ((6, 64), {"constant": 77}, 1e-5),
    "constant_rows_eps0_odd": ((3, 31), {"constant": 200, "alpha": 2}, 0.0),
    "alpha0": ((4, 100), {"alpha": 0}, 1e-5),
    "alpha1": ((4, 100), {"alpha": 1}, 1e-5),
    "alpha2": ((4, 100), {"alpha": 2}, 1e-5),
    "alpha3": ((4, 100), {"alpha": 3}, 1e-5),
    "eps0_random": ((16, 129), {}, 0.0),
    "large_eps": ((4, 48), {}, 10.0),
    "saturating_y_scale": ((4, 64), {"y_scale": 1e-4}, 1e-5),
    "zero_points_0": ((4, 64), {"x_zp": 0, "y_zp": 0}, 1e-5),
    "zero_points_255": ((4, 64), {"x_zp": 255, "y_zp": 255}, 1e-5),
    "tiny_x_scale": ((4, 64), {"x_scale": 1e-6}, 1e-5),
}


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("case", list(PTS_CASES))
def test_pts_layernorm(case: str, isa: str) -> None:
    shape, kwargs, eps = PTS_CASES[case]
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    inputs = pts_inputs(rng, shape, **kwargs)
    want = pts_reference(inputs, eps)
    got = run_op("PTSLayerNorm", inputs, {"epsilon": eps}, constant=("alpha", "gamma", "beta"), isa=isa)
    assert_same(got, want)


def test_pts_layernorm_max_variance_c4096() -> None:
    """Alternating 0/255 codes with alpha 3 in 4096 channels: the largest D and |C x - S1| the op allows."""
    inputs = pts_inputs(np.random.default_rng(1), (2, 4096), alpha=3, x_zp=128, x_scale=0.01, y_scale=0.02, y_zp=128)
    inputs["X"][:] = np.tile(np.array([0, 255], np.uint8), 2048)
    for isa in ISAS:
        assert_same(run_op("PTSLayerNorm", inputs, {"epsilon": 0.0}, isa=isa), pts_reference(inputs, 0.0))


# --- LogIntSoftmax --------------------------------------------------------------------------------------------------

def lis_reference(x: np.ndarray, multiplier: int, bits: int, mask: np.ndarray | None) -> np.ndarray:
    return R.log_int_softmax(_t(x), multiplier, bits, None if mask is None else _t(mask)).numpy()


def _swin_mask(rng: np.random.Generator, nw: int, n: int) -> np.ndarray:
    mask = rng.random((1, nw, 1, n, n)) < 0.3
    mask[0, 1, 0, 3, :] = True  # a fully masked row
    return mask


LIS_CASES: dict[str, Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray | None, int, int]]] = {
    # name: rng -> (X, mask or None, multiplier, bits)
    "deit_s_2x6x197x197": lambda g: (g.integers(0, 256, (2, 6, 197, 197), dtype=np.uint8), np.zeros(1, bool),
                                     R.lis_multiplier(0.05), 4),
    "swin_49_tokens": lambda g: (g.integers(0, 256, (4, 3, 49, 49), dtype=np.uint8), np.zeros((1, 1, 1, 1), bool),
                                 R.lis_multiplier(0.08), 4),
    "swin_broadcast_mask": lambda g: (g.integers(0, 256, (2, 4, 3, 49, 49), dtype=np.uint8), _swin_mask(g, 4, 49),
                                      R.lis_multiplier(0.06), 4),
    "swin_broadcast_mask_n16": lambda g: (g.integers(0, 256, (3, 4, 2, 16, 16), dtype=np.uint8), _swin_mask(g, 4, 16),
                                          R.lis_multiplier(0.06), 4),
    "fully_masked_rows": lambda g: (g.integers(0, 256, (3, 5, 20), dtype=np.uint8),
                                    np.array([0, 1, 0], bool).reshape(3, 1, 1), 3000, 4),
    "mask_per_element": lambda g: (g.integers(0, 256, (6, 37), dtype=np.uint8), g.random((6, 37)) < 0.5, 2000, 4),
    "mask_lower_rank": lambda g: (g.integers(0, 256, (2, 5, 40), dtype=np.uint8), g.random((5, 40)) < 0.4, 2000, 4),
    "no_mask_input": lambda g: (g.integers(0, 256, (4, 70), dtype=np.uint8), None, 2500, 4),
    "N1": lambda g: (g.integers(0, 256, (7, 1), dtype=np.uint8), np.zeros(1, bool), 2000, 4),
    "N2": lambda g: (g.integers(0, 256, (7, 2), dtype=np.uint8), np.zeros(1, bool), 2000, 4),
    "N17": lambda g: (g.integers(0, 256, (9, 17), dtype=np.uint8), np.zeros(1, bool), 2000, 4),
    "N65": lambda g: (g.integers(0, 256, (9, 65), dtype=np.uint8), np.zeros(1, bool), 2000, 4),
    "N1000": lambda g: (g.integers(0, 256, (3, 1000), dtype=np.uint8), np.zeros(1, bool), 4000, 4),
    "many_rows": lambda g: (g.integers(0, 256, (5000, 12), dtype=np.uint8), np.zeros(1, bool), 1500, 4),
    "all_equal": lambda g: (np.full((3, 197), 42, np.uint8), np.zeros(1, bool), 5000, 4),
    "all_equal_bits2": lambda g: (np.full((3, 7), 0, np.uint8), np.zeros(1, bool), 5000, 2),
    "one_dominant": lambda g: (np.eye(197, dtype=np.uint8)[:5] * 255, np.zeros(1, bool), 20000, 4),
    "one_dominant_mild": lambda g: (np.eye(64, dtype=np.uint8)[:5] * 3 + 100, np.zeros(1, bool), 6000, 4),
    "multiplier0": lambda g: (g.integers(0, 256, (4, 33), dtype=np.uint8), np.zeros(1, bool), 0, 4),
    "multiplier1": lambda g: (g.integers(0, 256, (4, 33), dtype=np.uint8), np.zeros(1, bool), 1, 4),
    "multiplier_large": lambda g: (g.integers(0, 256, (4, 70), dtype=np.uint8), np.zeros(1, bool), 2**31 - 1, 4),
    "multiplier_2pow20": lambda g: (g.integers(250, 256, (4, 70), dtype=np.uint8), np.zeros(1, bool), 2**20, 4),
    "bits4_small_range": lambda g: (g.integers(100, 110, (8, 197), dtype=np.uint8), np.zeros(1, bool), 30000, 4),
    "bits3": lambda g: (g.integers(0, 256, (8, 50), dtype=np.uint8), np.zeros(1, bool), 3000, 3),
    "bits2": lambda g: (g.integers(0, 256, (8, 197), dtype=np.uint8), np.zeros(1, bool), 3000, 2),
    "bits1": lambda g: (g.integers(0, 256, (8, 50), dtype=np.uint8), np.zeros(1, bool), 3000, 1),
}


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("case", list(LIS_CASES))
def test_log_int_softmax(case: str, isa: str) -> None:
    x, mask, multiplier, bits = LIS_CASES[case](np.random.default_rng(zlib.crc32(case.encode())))
    inputs = {"X": x} if mask is None else {"X": x, "mask": mask}
    got = run_op("LogIntSoftmax", inputs, {"multiplier": multiplier, "bits": bits}, isa=isa)
    assert_same(got, lis_reference(x, multiplier, bits, mask))


# --- LISMatMul ------------------------------------------------------------------------------------------------------

def lismm_reference(inputs: Inputs, bits: int) -> np.ndarray:
    return R.lis_matmul(_t(inputs["A"]), _t(inputs["V"]), _t(inputs["v_scale"]), int(inputs["v_zero_point"]),
                        _t(inputs["y_scale"]), int(inputs["y_zero_point"]), bits).numpy()


def lismm_inputs(rng: np.random.Generator, lead: tuple[int, ...], m: int, n: int, d: int, bits: int = 4,
                 codes: str = "lis", v_zp: int | None = None, v_fill: int | None = None) -> Inputs:
    if codes == "lis":  # as LogIntSoftmax emits them: int32 accumulation applies
        logits = rng.integers(0, 256, (*lead, m, n), dtype=np.uint8)
        a = R.log_int_softmax(_t(logits), int(rng.integers(500, 6000)), bits).numpy()
    elif codes == "zero":
        a = np.zeros((*lead, m, n), np.uint8)
    else:  # arbitrary bytes: codes above the zero code weigh 0
        a = rng.integers(0, 256 if codes == "bytes" else 16, (*lead, m, n), dtype=np.uint8)
    v = (np.full((*lead, n, d), v_fill, np.uint8) if v_fill is not None
         else rng.integers(0, 256, (*lead, n, d), dtype=np.uint8))
    return {"A": a, "V": v, "v_scale": np.array(rng.uniform(0.01, 0.2), np.float32),
            "v_zero_point": np.array(v_zp if v_zp is not None else rng.integers(0, 256), np.uint8),
            "y_scale": np.array(rng.uniform(0.005, 0.08), np.float32),
            "y_zero_point": np.array(rng.integers(0, 256), np.uint8)}


LISMM_CASES: dict[str, dict] = {
    "deit_s_2x6x197x197x64": dict(lead=(2, 6), m=197, n=197, d=64),
    "swin_49": dict(lead=(3, 4), m=49, n=49, d=32),
    "bits2": dict(lead=(2,), m=50, n=50, d=64, bits=2),
    "bits1": dict(lead=(2,), m=20, n=30, d=16, bits=1),
    "rank2": dict(lead=(), m=13, n=29, d=40),
    "rank5": dict(lead=(2, 2, 2), m=9, n=11, d=24),
    "D1": dict(lead=(2,), m=5, n=7, d=1),
    "D17": dict(lead=(2,), m=17, n=33, d=17),
    "D65": dict(lead=(2,), m=31, n=64, d=65),
    "D100": dict(lead=(1,), m=70, n=77, d=100),
    "N1": dict(lead=(2,), m=5, n=1, d=16, codes="nibbles"),
    "M1": dict(lead=(3,), m=1, n=197, d=64),
    "many_rows": dict(lead=(1,), m=700, n=20, d=16),
    "arbitrary_nibbles": dict(lead=(2,), m=11, n=37, d=40, codes="nibbles"),
    "arbitrary_bytes": dict(lead=(2,), m=11, n=37, d=40, codes="bytes"),
    "codes0_long_N_int64": dict(lead=(1,), m=7, n=3000, d=24, codes="zero", v_zp=0, v_fill=255),
    "codes0_long_N_negative": dict(lead=(1,), m=7, n=3000, d=24, codes="zero", v_zp=255, v_fill=0),
    "codes0_long_N_random_v": dict(lead=(2,), m=9, n=2100, d=20, codes="zero", v_zp=0),
}


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("case", list(LISMM_CASES))
def test_lis_matmul(case: str, isa: str) -> None:
    kwargs = dict(LISMM_CASES[case])
    bits = kwargs.get("bits", 4)
    inputs = lismm_inputs(np.random.default_rng(zlib.crc32(case.encode())), **kwargs)
    got = run_op("LISMatMul", inputs, {"bits": bits}, isa=isa)
    assert_same(got, lismm_reference(inputs, bits))


def test_lis_matmul_mixed_int32_int64_rows() -> None:
    """One row of zero codes (int64 accumulation) among LogIntSoftmax rows (int32) in the same tile."""
    rng = np.random.default_rng(7)
    inputs = lismm_inputs(rng, (1,), 12, 2500, 33, v_zp=255)
    inputs["A"][0, 3] = 0
    assert_same(run_op("LISMatMul", inputs, {"bits": 4}), lismm_reference(inputs, 4))


def test_softmax_then_matmul_chain() -> None:
    """LogIntSoftmax -> LISMatMul in one graph, as the exporter writes attention."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (2, 3, 197, 197), dtype=np.uint8)
    v = rng.integers(0, 256, (2, 3, 197, 64), dtype=np.uint8)
    mult = R.lis_multiplier(0.07)
    nodes = [helper.make_node("LogIntSoftmax", ["X", "mask"], ["codes"], domain=DOMAIN, multiplier=mult, bits=4),
             helper.make_node("LISMatMul", ["codes", "V", "vs", "vzp", "ys", "yzp"], ["Y"], domain=DOMAIN, bits=4)]
    consts = {"mask": np.zeros(1, bool), "vs": np.array(0.05, np.float32), "vzp": np.array(120, np.uint8),
              "ys": np.array(0.02, np.float32), "yzp": np.array(128, np.uint8)}
    graph = helper.make_graph(
        nodes, "attn", [helper.make_tensor_value_info("X", TensorProto.UINT8, x.shape),
                        helper.make_tensor_value_info("V", TensorProto.UINT8, v.shape)],
        [helper.make_tensor_value_info("Y", TensorProto.UINT8, None)],
        initializer=[onnx.numpy_helper.from_array(a, n) for n, a in consts.items()])
    model = helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 18),
                                                                 helper.make_opsetid(DOMAIN, 1)])
    got = _session(model).run(None, {"X": x, "V": v})[0]
    codes = R.log_int_softmax(_t(x), mult, 4)
    want = R.lis_matmul(codes, _t(v), torch.tensor(0.05), 120, torch.tensor(0.02), 128, 4).numpy()
    assert_same(got, want)


# --- Lookup ----------------------------------------------------------------------------------------------------------

def lookup_reference(x: np.ndarray, table: np.ndarray) -> np.ndarray:
    return R.lookup(torch.from_numpy(np.array(x)), _t(table)).numpy()  # np.array keeps a rank-0 X rank 0


def _gelu_like_table(g: np.random.Generator) -> np.ndarray:
    """Monotone after a dip, saturating at both ends: the shape of a quantized GELU table."""
    c = np.arange(256, dtype=np.float64)
    v = (c - 100) * 0.5 * (1 + np.tanh((c - 100) / 30)) + float(g.integers(0, 30))
    return np.clip(np.round(v), 0, 255).astype(np.uint8)


LOOKUP_CASES: dict[str, Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]]] = {
    # name: rng -> (X, table)
    "every_code_random_table": lambda g: (np.arange(256, dtype=np.uint8), g.integers(0, 256, 256, dtype=np.uint8)),
    "every_code_reversed": lambda g: (np.arange(256, dtype=np.uint8).reshape(16, 16),
                                      np.arange(255, -1, -1).astype(np.uint8)),
    "identity_table": lambda g: (g.integers(0, 256, (7, 129), dtype=np.uint8), np.arange(256, dtype=np.uint8)),
    "constant_table": lambda g: (g.integers(0, 256, (3, 100), dtype=np.uint8), np.full(256, 201, np.uint8)),
    "gelu_like_table": lambda g: (g.integers(0, 256, (2, 197, 64), dtype=np.uint8), _gelu_like_table(g)),
    "scalar": lambda g: (np.array(200, np.uint8), g.integers(0, 256, 256, dtype=np.uint8)),
    "one_element": lambda g: (np.array([255], np.uint8), g.integers(0, 256, 256, dtype=np.uint8)),
    "n2": lambda g: (np.array([0, 128], np.uint8), g.integers(0, 256, 256, dtype=np.uint8)),
    "n31": lambda g: (g.integers(0, 256, 31, dtype=np.uint8), g.integers(0, 256, 256, dtype=np.uint8)),
    "n33": lambda g: (g.integers(0, 256, 33, dtype=np.uint8), g.integers(0, 256, 256, dtype=np.uint8)),
    "n63": lambda g: (g.integers(0, 256, 63, dtype=np.uint8), g.integers(0, 256, 256, dtype=np.uint8)),
    "n65": lambda g: (g.integers(0, 256, 65, dtype=np.uint8), g.integers(0, 256, 256, dtype=np.uint8)),
    "n127": lambda g: (g.integers(0, 256, 127, dtype=np.uint8), g.integers(0, 256, 256, dtype=np.uint8)),
    "n129": lambda g: (g.integers(0, 256, 129, dtype=np.uint8), g.integers(0, 256, 256, dtype=np.uint8)),
    "odd_3x5x7": lambda g: (g.integers(0, 256, (3, 5, 7), dtype=np.uint8), g.integers(0, 256, 256, dtype=np.uint8)),
    "odd_65537": lambda g: (g.integers(0, 256, 65537, dtype=np.uint8), g.integers(0, 256, 256, dtype=np.uint8)),
    "chunked_odd_1x100003": lambda g: (g.integers(0, 256, (1, 100003), dtype=np.uint8),
                                       g.integers(0, 256, 256, dtype=np.uint8)),
    "deit_s_mlp_8x197x1536": lambda g: (g.integers(0, 256, (8, 197, 1536), dtype=np.uint8), _gelu_like_table(g)),
}


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("case", list(LOOKUP_CASES))
def test_lookup(case: str, isa: str) -> None:
    x, table = LOOKUP_CASES[case](np.random.default_rng(zlib.crc32(case.encode())))
    got = run_op("Lookup", {"X": x, "table": table}, {}, constant=("table",), isa=isa)
    assert_same(got, lookup_reference(x, table))


def test_lookup_table_as_graph_input() -> None:
    """The table fed at run time (not an initializer), and a new table on a second run of the same session."""
    rng = np.random.default_rng(9)
    x = rng.integers(0, 256, (4, 300), dtype=np.uint8)
    session = _session(_model("Lookup", {"X": x, "table": np.zeros(256, np.uint8)}, {}))
    for _ in range(2):
        table = rng.integers(0, 256, 256, dtype=np.uint8)
        assert_same(session.run(None, {"X": x, "table": table})[0], lookup_reference(x, table))


@pytest.mark.parametrize("shape", [(0,), (3, 0), (2, 0, 7)])
def test_lookup_empty(shape: tuple[int, ...]) -> None:
    x = np.zeros(shape, np.uint8)
    got = run_op("Lookup", {"X": x, "table": np.arange(256, dtype=np.uint8)}, {}, constant=("table",))
    assert got.shape == shape and got.dtype == np.uint8


# --- Requantize ------------------------------------------------------------------------------------------------------

RQ_CASES: dict[str, tuple[tuple[int, ...], dict]] = {
    "deit_s_fc1_2x197x1536": ((2, 197, 1536), {}),
    "deit_s_qkv_197x1152": ((197, 1152), {}),
    "large_acc": ((7, 300), {"acc": "large", "y_scale": 3.0}),
    "large_acc_small_m": ((5, 129), {"acc": "large", "m": 1e-7, "y_scale": 0.5}),
    "f32_conversion_ties": ((13, 70), {"acc": "conv_ties", "m": 1.0, "b": "conv", "y_scale": 1.0, "y_zp": 128}),
    "f32_conversion_ties_N33": ((7, 33), {"acc": "conv_ties", "m": 1.0, "b": "conv", "y_scale": 4.0, "y_zp": 128}),
    "f32_rounds_m_1e-6": ((9, 67), {"acc": "odd_big", "m": 1e-6, "y_scale": 0.5, "y_zp": 128}),
    "ties_m_half": ((11, 45), {"acc": "ties", "m": 0.5, "b": 0.0, "y_scale": 1.0, "y_zp": 128}),
    "ties_bias_half": ((11, 45), {"acc": "ties", "m": 1.0, "b": 0.5, "y_scale": 1.0, "y_zp": 128}),
    "ties_after_division": ((11, 45), {"acc": "ties", "m": 0.125, "b": 0.0, "y_scale": 0.25, "y_zp": 100}),
    "saturate_both_ends": ((6, 100), {"acc": "large", "m": 1.0, "y_scale": 0.001}),
    "saturate_zp0": ((6, 100), {"m": 1e-3, "y_scale": 0.01, "y_zp": 0}),
    "saturate_zp255": ((6, 100), {"m": 1e-3, "y_scale": 0.01, "y_zp": 255}),
    "tiny_y_scale_2^30_clamp": ((4, 50), {"acc": "large", "m": 1.0, "y_scale": 1e-30}),
    "scalar_multiplier": ((5, 97), {"m": "scalar"}),
    "one_element_bias": ((5, 97), {"b": "one"}),
    "one_element_multiplier_scalar_bias": ((5, 97), {"m": "one", "b": "scalar"}),
    "scalar_both_long": ((1, 100003), {"m": "scalar", "b": "scalar"}),
    "N1": ((37, 1), {}),
    "N1_many_rows": ((70001, 1), {}),
    "N2": ((9, 2), {}),
    "N15": ((4, 3, 15), {}),
    "N17": ((4, 3, 17), {}),
    "N31": ((5, 31), {}),
    "N33": ((5, 33), {}),
    "odd_N97": ((3, 7, 97), {}),
    "N197": ((2, 197), {"b": "one"}),
    "rank1": ((1000,), {}),
    "chunked_odd_rows_N999": ((211, 999), {}),
}


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("case", list(RQ_CASES))
def test_requantize(case: str, isa: str) -> None:
    shape, kw = RQ_CASES[case]
    inputs = requantize_inputs(np.random.default_rng(zlib.crc32(case.encode())), shape, **kw)
    got = run_op("Requantize", inputs, {}, constant=("multiplier", "bias", "y_scale", "y_zero_point"), isa=isa)
    assert_same(got, requantize_reference(inputs))


def test_requantize_inputs_at_run_time() -> None:
    """Every input fed at run time; two runs of one session with new parameters."""
    rng = np.random.default_rng(21)
    inputs = requantize_inputs(rng, (3, 64, 72))
    session = _session(_model("Requantize", inputs, {}))
    for _ in range(2):
        inputs = requantize_inputs(rng, (3, 64, 72))
        assert_same(session.run(None, inputs)[0], requantize_reference(inputs))


def test_requantize_covers_every_code() -> None:
    """A ramp of accumulators across the whole uint8 range: every output code 0..255 appears, saturation included."""
    a = np.arange(-5000, 5000, dtype=np.int32).reshape(10, 1000)
    inputs = {"A": a, "multiplier": np.array(0.01, np.float32), "bias": np.array(0.0, np.float32),
              "y_scale": np.array(0.25, np.float32), "y_zero_point": np.array(128, np.uint8)}
    for isa in ISAS:
        got = run_op("Requantize", inputs, {}, isa=isa)
        assert_same(got, requantize_reference(inputs))
    assert set(np.unique(got).tolist()) == set(range(256))


@pytest.mark.parametrize("shape", [(0,), (0, 5), (3, 0), (2, 0, 7)])
def test_requantize_empty(shape: tuple[int, ...]) -> None:
    n = shape[-1]
    inputs = {"A": np.zeros(shape, np.int32), "multiplier": np.ones(n, np.float32),
              "bias": np.zeros(n, np.float32), "y_scale": np.array(0.1, np.float32),
              "y_zero_point": np.array(3, np.uint8)}
    got = run_op("Requantize", inputs, {})
    assert got.shape == shape and got.dtype == np.uint8
    inputs["multiplier"], inputs["bias"] = np.array(1.0, np.float32), np.array([0.0], np.float32)
    assert run_op("Requantize", inputs, {}).shape == shape


# --- randomized shapes and parameters -------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(4))
def test_randomized(seed: int) -> None:
    """Many random shapes/parameters per op, each on every CPU path."""
    rng = np.random.default_rng(1000 + seed)
    for _ in range(6):
        lead = tuple(int(d) for d in rng.integers(1, 4, rng.integers(0, 3)))
        isa = ISAS[int(rng.integers(0, len(ISAS)))]
        # PTSLayerNorm
        c = int(rng.choice([1, 2, 3, 8, 15, 16, 17, 31, 32, 33, 48, 63, 64, 65, 96, 127, 128, 129, 200, 384, 500]))
        eps = float(rng.choice([0.0, 1e-6, 1e-5, 1e-3]))
        inputs = pts_inputs(rng, (*lead, int(rng.integers(1, 40)), c))
        assert_same(run_op("PTSLayerNorm", inputs, {"epsilon": eps}, isa=isa), pts_reference(inputs, eps))
        # LogIntSoftmax
        n = int(rng.integers(1, 260))
        shape = (*lead, int(rng.integers(1, 30)), n)
        x = rng.integers(int(rng.integers(0, 200)), 256, shape, dtype=np.uint8)
        mshape = tuple(int(d) if rng.random() < 0.5 else 1 for d in shape)
        mask = rng.random(mshape) < float(rng.uniform(0, 0.6))
        mult, bits = int(rng.integers(0, 60000)), int(rng.integers(1, 5))
        got = run_op("LogIntSoftmax", {"X": x, "mask": mask}, {"multiplier": mult, "bits": bits}, isa=isa)
        assert_same(got, lis_reference(x, mult, bits, mask))
        # LISMatMul
        inputs = lismm_inputs(rng, lead, int(rng.integers(1, 80)), int(rng.integers(1, 120)),
                              int(rng.integers(1, 100)), bits=bits,
                              codes=str(rng.choice(["lis", "lis", "nibbles", "bytes"])))
        assert_same(run_op("LISMatMul", inputs, {"bits": bits}, isa=isa), lismm_reference(inputs, bits))
        # Lookup
        x = rng.integers(0, 256, (*lead, int(rng.integers(0, 300)), int(rng.integers(1, 300))), dtype=np.uint8)
        table = rng.integers(0, 256, 256, dtype=np.uint8)
        assert_same(run_op("Lookup", {"X": x, "table": table}, {}, isa=isa), lookup_reference(x, table))
        # Requantize
        shape = (*lead, int(rng.integers(0, 50)), int(rng.integers(1, 300)))
        mb = ["channel" if rng.random() < 0.7 else str(rng.choice(["scalar", "one"])) for _ in range(2)]
        inputs = requantize_inputs(rng, shape, acc=str(rng.choice(["matmul", "matmul", "large", "odd_big", "ties"])),
                                   m=mb[0], b=mb[1], y_scale=float(np.exp(rng.uniform(np.log(1e-3), np.log(1.0)))))
        assert_same(run_op("Requantize", inputs, {}, isa=isa), requantize_reference(inputs))


def test_cuda_variant_loads_on_cpu() -> None:
    """libfqvit_ops_cuda.so registers CUDA kernels too, yet runs on the CPU provider of a CPU-only onnxruntime."""
    lib = custom_ops_library(cuda=True)
    if lib is None or "FQVIT_CUSTOM_OPS_LIB" in os.environ:
        pytest.skip("CUDA variant not built")
    inputs = pts_inputs(np.random.default_rng(5), (3, 50))
    assert_same(run_op("PTSLayerNorm", inputs, {"epsilon": 1e-5}, lib=lib), pts_reference(inputs, 1e-5))


# --- errors: clear messages, no crash -------------------------------------------------------------------------------

_ORT_ERRORS = tuple(getattr(ort.capi.onnxruntime_pybind11_state, name)
                    for name in ("Fail", "InvalidArgument", "InvalidGraph", "RuntimeException", "NotImplemented"))


def _expect_error(op_type: str, inputs: Inputs, attrs: dict, *fragments: str) -> None:
    with pytest.raises(_ORT_ERRORS) as info:
        run_op(op_type, inputs, attrs)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message


def _still_alive() -> None:
    inputs = pts_inputs(np.random.default_rng(0), (2, 8))
    assert_same(run_op("PTSLayerNorm", inputs, {"epsilon": 1e-5}), pts_reference(inputs, 1e-5))


def test_error_float_input() -> None:
    inputs = pts_inputs(np.random.default_rng(0), (2, 8))
    inputs["X"] = inputs["X"].astype(np.float32)
    _expect_error("PTSLayerNorm", inputs, {"epsilon": 1e-5}, "tensor(float)", "(X)", "PTSLayerNorm")
    _still_alive()


def test_error_alpha_length() -> None:
    inputs = pts_inputs(np.random.default_rng(0), (2, 8))
    inputs["alpha"] = inputs["alpha"][:5]
    _expect_error("PTSLayerNorm", inputs, {"epsilon": 1e-5}, "PTSLayerNorm", "alpha must have shape [C] = [8]",
                  "got [5]")
    _still_alive()


def test_error_gamma_length() -> None:
    inputs = pts_inputs(np.random.default_rng(0), (2, 8))
    inputs["gamma"] = np.ones(9, np.float32)
    _expect_error("PTSLayerNorm", inputs, {"epsilon": 1e-5}, "gamma must have shape [C] = [8]")


def test_error_too_many_channels() -> None:
    inputs = pts_inputs(np.random.default_rng(0), (2, 4097))
    _expect_error("PTSLayerNorm", inputs, {"epsilon": 1e-5}, "1..4096", "4097")
    _still_alive()


def test_error_alpha_value() -> None:
    inputs = pts_inputs(np.random.default_rng(0), (2, 8))
    inputs["alpha"][3] = 4
    _expect_error("PTSLayerNorm", inputs, {"epsilon": 1e-5}, "alpha values must be in 0..3", "alpha[3] = 4")


def test_error_scale_not_scalar() -> None:
    inputs = pts_inputs(np.random.default_rng(0), (2, 8))
    inputs["x_scale"] = np.array([0.1, 0.2], np.float32)
    _expect_error("PTSLayerNorm", inputs, {"epsilon": 1e-5}, "x_scale must be a scalar")


def test_error_missing_epsilon() -> None:
    _expect_error("PTSLayerNorm", pts_inputs(np.random.default_rng(0), (2, 8)), {}, "epsilon", "required")


def test_error_negative_epsilon() -> None:
    _expect_error("PTSLayerNorm", pts_inputs(np.random.default_rng(0), (2, 8)), {"epsilon": -1.0}, "epsilon")


def test_error_bits() -> None:
    x = np.zeros((2, 8), np.uint8)
    _expect_error("LogIntSoftmax", {"X": x, "mask": np.zeros(1, bool)}, {"multiplier": 100, "bits": 5},
                  "LogIntSoftmax", "bits must be in 1..4, got 5")
    _expect_error("LISMatMul", lismm_inputs(np.random.default_rng(0), (1,), 4, 5, 6), {"bits": 0},
                  "LISMatMul", "bits must be in 1..4, got 0")
    _still_alive()


def test_error_multiplier() -> None:
    x = np.zeros((2, 8), np.uint8)
    _expect_error("LogIntSoftmax", {"X": x, "mask": np.zeros(1, bool)}, {"multiplier": -3, "bits": 4}, "multiplier")
    _expect_error("LogIntSoftmax", {"X": x, "mask": np.zeros(1, bool)}, {"bits": 4}, "multiplier", "required")


def test_error_mask_not_broadcastable() -> None:
    x = np.zeros((2, 3, 8), np.uint8)
    _expect_error("LogIntSoftmax", {"X": x, "mask": np.zeros((2, 2, 8), bool)}, {"multiplier": 100, "bits": 4},
                  "mask shape [2,2,8] does not broadcast to X shape [2,3,8]")
    _expect_error("LogIntSoftmax", {"X": x, "mask": np.zeros((1, 2, 3, 8), bool)}, {"multiplier": 100, "bits": 4},
                  "mask rank 4 exceeds")


def test_error_mask_dtype() -> None:
    x = np.zeros((2, 8), np.uint8)
    _expect_error("LogIntSoftmax", {"X": x, "mask": np.zeros(1, np.uint8)}, {"multiplier": 100, "bits": 4},
                  "tensor(uint8)", "(mask)", "LogIntSoftmax")


def test_error_lis_matmul_dims() -> None:
    rng = np.random.default_rng(0)
    inputs = lismm_inputs(rng, (2,), 4, 5, 6)
    inputs["V"] = rng.integers(0, 256, (2, 7, 6), dtype=np.uint8)
    _expect_error("LISMatMul", inputs, {"bits": 4}, "LISMatMul", "N = 5 must equal V's rows 7")
    inputs = lismm_inputs(rng, (2,), 4, 5, 6)
    inputs["V"] = rng.integers(0, 256, (3, 5, 6), dtype=np.uint8)
    _expect_error("LISMatMul", inputs, {"bits": 4}, "same leading dimensions", "A [2,4,5]", "V [3,5,6]")
    inputs = lismm_inputs(rng, (2,), 4, 5, 6)
    inputs["V"] = rng.integers(0, 256, (5, 6), dtype=np.uint8)
    _expect_error("LISMatMul", inputs, {"bits": 4}, "same rank >= 2")
    _still_alive()


def test_error_lookup_table_length() -> None:
    x = np.zeros((2, 8), np.uint8)
    for n in (255, 257, 0):
        _expect_error("Lookup", {"X": x, "table": np.zeros(n, np.uint8)}, {}, "Lookup",
                      "table must have shape [256]", f"got [{n}]")
    _expect_error("Lookup", {"X": x, "table": np.zeros((1, 256), np.uint8)}, {}, "table must have shape [256]",
                  "got [1,256]")
    _expect_error("Lookup", {"X": x, "table": np.zeros((), np.uint8)}, {}, "table must have shape [256]", "got []")
    _still_alive()


def test_error_lookup_dtype() -> None:
    x = np.zeros((2, 8), np.uint8)
    _expect_error("Lookup", {"X": x, "table": np.zeros(256, np.float32)}, {}, "tensor(float)", "(table)", "Lookup")
    _expect_error("Lookup", {"X": x.astype(np.float32), "table": np.zeros(256, np.uint8)}, {}, "tensor(float)", "(X)",
                  "Lookup")
    _still_alive()


def _rq_ok() -> Inputs:
    return requantize_inputs(np.random.default_rng(0), (2, 8))


def test_error_requantize_shapes() -> None:
    inputs = _rq_ok()
    inputs["multiplier"] = np.ones(5, np.float32)
    _expect_error("Requantize", inputs, {}, "Requantize", "multiplier must have shape [N] = [8]", "got [5]",
                  "A [2,8]")
    inputs = _rq_ok()
    inputs["bias"] = np.ones((1, 8), np.float32)
    _expect_error("Requantize", inputs, {}, "Requantize", "bias must have shape [N] = [8]", "got [1,8]")
    inputs = _rq_ok()
    inputs["bias"] = np.ones(9, np.float32)
    _expect_error("Requantize", inputs, {}, "bias must have shape [N] = [8]", "got [9]")
    inputs = _rq_ok()
    inputs["y_scale"] = np.array([0.1, 0.2], np.float32)
    _expect_error("Requantize", inputs, {}, "Requantize", "y_scale must be a scalar")
    inputs = _rq_ok()
    inputs["y_zero_point"] = np.zeros(8, np.uint8)
    _expect_error("Requantize", inputs, {}, "y_zero_point must be a scalar")
    inputs = _rq_ok()
    inputs["A"] = np.array(5, np.int32)
    inputs["multiplier"], inputs["bias"] = np.array(1.0, np.float32), np.array(0.0, np.float32)
    _expect_error("Requantize", inputs, {}, "Requantize", "A must have rank >= 1")
    _still_alive()


def test_error_requantize_dtypes() -> None:
    for name, dtype, onnx_name in [("A", np.int64, "tensor(int64)"), ("A", np.float32, "tensor(float)"),
                                   ("multiplier", np.uint8, "tensor(uint8)"),
                                   ("y_zero_point", np.int8, "tensor(int8)")]:
        inputs = _rq_ok()
        inputs[name] = inputs[name].astype(dtype)
        _expect_error("Requantize", inputs, {}, onnx_name, f"({name})", "Requantize")
    _still_alive()


def test_empty_tensors() -> None:
    """Zero-size dimensions give correctly shaped empty (or, for N = 0 in LISMatMul, zero-sum) outputs."""
    rng = np.random.default_rng(0)
    inputs = pts_inputs(rng, (0, 8))
    assert run_op("PTSLayerNorm", inputs, {"epsilon": 1e-5}).shape == (0, 8)
    for shape in [(0, 5), (3, 0), (2, 0, 7)]:
        x = np.zeros(shape, np.uint8)
        got = run_op("LogIntSoftmax", {"X": x, "mask": np.zeros(1, bool)}, {"multiplier": 100, "bits": 4})
        assert got.shape == shape and got.dtype == np.uint8
    for lead, m, n, d in [((0,), 4, 5, 6), ((2,), 0, 5, 6), ((2,), 4, 5, 0), ((2,), 4, 0, 6)]:
        inputs = lismm_inputs(rng, lead, m, max(n, 1), d)
        inputs["A"] = np.zeros((*lead, m, n), np.uint8)
        inputs["V"] = np.zeros((*lead, n, d), np.uint8)
        got = run_op("LISMatMul", inputs, {"bits": 4})
        assert got.shape == (*lead, m, d)
        if got.size:
            assert_same(got, lismm_reference(inputs, 4))
