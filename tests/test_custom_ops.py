"""The ``com.fqvit`` onnxruntime kernels (``custom_ops/``) against the PyTorch reference, bit for bit.

Each case of the shared tables (``fqvit_export.testing.op_cases``) builds a one-node model (opset 18 + ``com.fqvit`` 1,
IR version 8, no function bodies, so only the library's kernel can run it), runs it on onnxruntime's CPU execution
provider with the library registered and two intra-op threads, and compares every output element, the dtype and the
shape with ``fqvit_export.ops.reference`` (docs/ops.md Sec. 1-5). Every CPU path
the machine offers (scalar, AVX2, AVX-512; chosen with ``FQVIT_CPU_ISA`` when the session is created) must give the same
bits. Expected outputs come from the reference only. Every case also runs in its int8 form (``op_cases.as_code_type``,
the CUDA target's code type) on the best CPU path (the int8 kernels run the uint8 bodies on flipped copies, so one path
covers the wrapping; the randomized test draws the path), and the library's kernel list
(``fqvit_export.deploy.kernels``) is checked against ``ops/spec.py``.

Skipped as a whole when the library is not built (``tools/build_custom_ops.sh``).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Collection

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from fqvit_export.deploy.library import custom_ops_library
from fqvit_export.deploy.kernels import registered_kernels
from fqvit_export.ops import reference as R
from fqvit_export.ops import spec as S
from fqvit_export.testing import op_cases as O
from fqvit_export.testing.op_cases import (
    lis_matmul_reference,
    lis_reference,
    lookup_reference,
    pts_inputs,
    pts_reference,
    requantize_inputs,
    requantize_reference,
)

LIB = custom_ops_library()
pytestmark = pytest.mark.skipif(LIB is None, reason="com.fqvit custom-op library not built: run "
                                                    "tools/build_custom_ops.sh (or set FQVIT_CUSTOM_OPS_LIB)")

DOMAIN = S.DOMAIN
_ONNX_TYPE = {np.dtype(np.uint8): TensorProto.UINT8, np.dtype(np.float32): TensorProto.FLOAT,
              np.dtype(np.bool_): TensorProto.BOOL, np.dtype(np.int32): TensorProto.INT32,
              np.dtype(np.int64): TensorProto.INT64, np.dtype(np.int8): TensorProto.INT8,
              np.dtype(np.int16): TensorProto.INT16}
# CPU paths: "auto" is the best one this CPU runs; the others are forced (lowered to what the CPU supports).
ISAS = ["auto", "scalar", "avx2", "avx512"]  # auto: AMX tiles in QLinear where the CPU has them; avx512: not
Inputs = dict[str, np.ndarray]


# --- building and running one-node models -------------------------------------------------------------------------

def _out_type(op_type: str, inputs: Inputs) -> int:
    """The output's ONNX type: T (the type of the node's T inputs) for a T output, else uint8."""
    spec = S.op(op_type)
    if spec.outputs[0].dtype != "T":
        return TensorProto.UINT8
    t = [inputs[p.name].dtype for p in spec.inputs if p.dtype == "T" and p.name in inputs]
    return _ONNX_TYPE[t[0]] if t else TensorProto.UINT8


def _model(op_type: str, inputs: Inputs, attrs: dict, constant: Collection[str] = ()) -> onnx.ModelProto:
    names, output = S.op(op_type).input_names, S.op(op_type).output_names[0]
    used = [n for n in names if n in inputs]
    node = helper.make_node(op_type, used, [output], name="op0", domain=DOMAIN, **attrs)
    graph_inputs = [helper.make_tensor_value_info(n, _ONNX_TYPE[a.dtype], a.shape)
                    for n, a in inputs.items() if n not in constant]
    graph = helper.make_graph(
        [node], f"one_{op_type}", graph_inputs,
        [helper.make_tensor_value_info(output, _out_type(op_type, inputs), None)],
        initializer=[onnx.numpy_helper.from_array(a, n) for n, a in inputs.items() if n in constant])
    return helper.make_model(graph, ir_version=S.IR_VERSION, opset_imports=[helper.make_opsetid("", S.OPSET),
                                                                            helper.make_opsetid(DOMAIN, S.OP_VERSION)])


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
    assert want.dtype in (np.uint8, np.int8), want.dtype
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, want.dtype, got.shape, want.shape)
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, (f"{bad.size} of {want.size} elements differ; first at flat index {bad[0]}: "
                           f"got {got.flat[bad[0]]}, want {want.flat[bad[0]]}")


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


# --- the shared case tables (fqvit_export.testing.op_cases), every case on every CPU path -----------------------------

# Inputs the exporter writes as initializers (the kernels may read them when the session is created).
_CONSTANT = {"PTSLayerNorm": ("alpha", "gamma", "beta"), "LogIntSoftmax": (), "LISMatMul": (),
             "Lookup": ("table",), "Requantize": ("multiplier", "bias", "y_scale", "y_zero_point"),
             "QLinear": ("W", "x_zero_point", "multiplier", "bias", "y_scale", "y_zero_point"),
             "ResidualAdd": ("a_scale", "a_zero_point", "b_scale", "b_zero_point", "y_scale", "y_zero_point",
                             "gamma"),
             "LISAttention": ("qkv_scale", "qkv_zero_point", "qk_multiplier", "logits_scale", "logits_zero_point",
                              "y_scale", "y_zero_point")}


@pytest.mark.parametrize("op_type, case", [(op, name) for op in O.CASES for name in O.params(op)])
def test_op_case(op_type: str, case: str) -> None:
    c = O.build(op_type, case)
    want = O.reference(op_type, c)
    for isa in ISAS:
        assert_same(run_op(op_type, c.inputs, c.attrs, constant=_CONSTANT[op_type], isa=isa), want)


@pytest.mark.parametrize("op_type, case", [(op, name) for op in O.CASES for name in O.params(op)])
def test_op_case_int8(op_type: str, case: str) -> None:
    """The case in int8 codes (the CUDA target's graphs) on the CPU kernels: the reference's int8 output, which is
    the uint8 case's output minus 128 (LogIntSoftmax: the same codes)."""
    c8 = O.as_code_type(op_type, O.build(op_type, case), "int8")
    want = O.reference(op_type, c8)
    assert_same(run_op(op_type, c8.inputs, c8.attrs, constant=_CONSTANT[op_type]), want)


def test_both_code_types_in_one_graph() -> None:
    """One session holds a uint8 and an int8 node of every op (same name, kernels told apart by input types)."""
    nodes, feeds, graph_inputs, outputs, wants = [], {}, [], [], []
    for op_type, case in [("PTSLayerNorm", "C7"), ("LogIntSoftmax", "N17"), ("LISMatMul", "D17"),
                          ("Lookup", "odd_3x5x7"), ("Requantize", "N17"), ("ResidualAdd", "odd_C_33"),
                          ("LISAttention", "odd_3x17_h5_d13")]:
        for dtype in S.CODE_TYPES:
            c = O.as_code_type(op_type, O.build(op_type, case), dtype)
            spec = S.op(op_type)
            names = [f"{op_type}_{dtype}_{n}" if n in c.inputs else "" for n in spec.input_names]
            out = f"{op_type}_{dtype}_out"
            nodes.append(helper.make_node(op_type, names, [out], domain=DOMAIN, **c.attrs))
            for n, a in c.inputs.items():
                feeds[f"{op_type}_{dtype}_{n}"] = a
                graph_inputs.append(helper.make_tensor_value_info(f"{op_type}_{dtype}_{n}", _ONNX_TYPE[a.dtype],
                                                                  a.shape))
            outputs.append(helper.make_tensor_value_info(out, _out_type(op_type, c.inputs), None))
            wants.append(O.reference(op_type, c))
    graph = helper.make_graph(nodes, "both", graph_inputs, outputs)
    model = helper.make_model(graph, ir_version=S.IR_VERSION, opset_imports=[
        helper.make_opsetid("", S.OPSET), helper.make_opsetid(DOMAIN, S.OP_VERSION)])
    for got, want in zip(_session(model).run(None, feeds), wants):
        assert_same(got, want)


def _spec_kernel_types(op_type: str, dtype: str) -> tuple[list[str], list[str]]:
    spec = S.op(op_type)
    t = {"float": "float"}
    ins = [dtype if p.dtype == "T" else t.get(p.dtype, p.dtype) for p in spec.inputs]
    outs = [dtype if p.dtype == "T" else t.get(p.dtype, p.dtype) for p in spec.outputs]
    return ins, outs


@pytest.mark.parametrize("cuda", [False, True], ids=["cpu_library", "cuda_library"])
def test_registered_kernels_match_spec(cuda: bool) -> None:
    """fqvit_registered_kernels lists one kernel per (op, provider, code type), typed as ops/spec.py says."""
    lib = custom_ops_library(cuda=cuda)
    if lib is None or (cuda and "FQVIT_CUSTOM_OPS_LIB" in os.environ):
        pytest.skip("library not built")
    kernels = registered_kernels(lib)
    providers = ["CPUExecutionProvider"] + (["CUDAExecutionProvider"] if cuda else [])
    want = []
    for op_type, spec in S.OPS.items():
        for provider in providers:
            for dtype in S.CODE_TYPES:
                ins, outs = _spec_kernel_types(op_type, dtype)
                want.append({"op": op_type, "provider": provider, "inputs": ins, "outputs": outs,
                             "optional": [p.optional for p in spec.inputs]})
    assert [{k: d[k] for k in ("op", "provider", "inputs", "outputs", "optional")} for d in kernels] == want


def test_error_mixed_code_types() -> None:
    """T ports of one node must share one code type: int8 X with a uint8 table has no kernel."""
    x = np.zeros((2, 8), np.int8)
    _expect_error("Lookup", {"X": x, "table": np.zeros(256, np.uint8)}, {}, "Lookup")
    inputs = O.as_code_type("PTSLayerNorm", O.build("PTSLayerNorm", "C7"), "int8").inputs
    inputs["y_zero_point"] = np.array(3, np.uint8)
    _expect_error("PTSLayerNorm", inputs, {"epsilon": 1e-5}, "PTSLayerNorm")
    _still_alive()


def lismm_inputs(rng: np.random.Generator, lead: tuple[int, ...], m: int, n: int, d: int, bits: int = 4,
                 codes: str = "lis", v_zp: int | None = None) -> Inputs:
    return O.lis_matmul_inputs(rng, (*lead, m, n), d, bits, codes, v_zero_point=v_zp)


# --- PTSLayerNorm ---------------------------------------------------------------------------------------------------

def test_pts_layernorm_max_variance_c4096() -> None:
    """Alternating 0/255 codes with alpha 3 in 4096 channels: the largest D and |C x - S1| the op allows."""
    inputs = pts_inputs(np.random.default_rng(1), (2, 4096), alpha=3, x_zero_point=128, x_scale=0.01, y_scale=0.02,
                        y_zero_point=128)
    inputs["X"][:] = np.tile(np.array([0, 255], np.uint8), 2048)
    for isa in ISAS:
        assert_same(run_op("PTSLayerNorm", inputs, {"epsilon": 0.0}, isa=isa), pts_reference(inputs, 0.0))


# --- LISMatMul ------------------------------------------------------------------------------------------------------

def test_lis_matmul_mixed_int32_int64_rows() -> None:
    """One row of zero codes (int64 accumulation) among LogIntSoftmax rows (int32) in the same tile."""
    rng = np.random.default_rng(7)
    inputs = lismm_inputs(rng, (1,), 12, 2500, 33, v_zp=255)
    inputs["A"][0, 3] = 0
    assert_same(run_op("LISMatMul", inputs, {"bits": 4}), lis_matmul_reference(inputs, 4))


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


# --- ResidualAdd -----------------------------------------------------------------------------------------------------

def _ra_random(rng: np.random.Generator, shape: tuple[int, ...]) -> Inputs:
    """Adversarial ResidualAdd inputs: codes drawn from the whole range or piled at 0 and 255, zero points at the ends
    too; every channel input per channel or one element (rank 0 or [1]), some powers of two (exact products, sums
    that land on .5 ties), y_scale small enough to saturate at both ends or large; gamma 1, random, or signed."""
    c = shape[-1]

    def codes() -> np.ndarray:
        kind = rng.integers(0, 3)
        if kind == 0:
            return rng.choice(np.array([0, 255], np.uint8), shape)
        if kind == 1:
            return rng.choice(np.array([0, 1, 127, 128, 254, 255], np.uint8), shape)
        return rng.integers(0, 256, shape, dtype=np.uint8)

    def zp() -> np.ndarray:
        return np.array(rng.choice([0, 255, 128, int(rng.integers(0, 256))]), np.uint8)

    def channel(lo: float, hi: float, signed: bool = False) -> np.ndarray:
        n = c if rng.random() < 0.6 else 1
        if rng.random() < 0.4:  # powers of two: exact steps, so the sums meet round-half-even ties
            v = 2.0 ** rng.integers(int(np.log2(lo)), int(np.log2(hi)) + 1, n)
        else:
            v = np.exp(rng.uniform(np.log(lo), np.log(hi), n))
        if signed:
            v *= rng.choice([-1.0, 1.0], n)
        v = v.astype(np.float32)
        return v.reshape(()) if n == 1 and rng.random() < 0.5 else v

    gamma_kind = rng.integers(0, 3)
    gamma = (np.ones(1, np.float32) if gamma_kind == 0 else channel(1e-3, 2.0, signed=gamma_kind == 2))
    return {"A": codes(), "a_scale": channel(1e-3, 0.5), "a_zero_point": zp(), "B": codes(),
            "b_scale": channel(1e-3, 0.5), "b_zero_point": zp(), "y_scale": channel(1e-4, 1.0),
            "y_zero_point": zp(), "gamma": gamma}


@pytest.mark.parametrize("seed", range(3))
def test_residual_add_adversarial(seed: int) -> None:
    """Random shapes (C = 1, odd C, vector-width neighbours, rank 1 .. 4) and adversarial parameters against the
    reference, every CPU path, uint8 and int8, every input fed at run time."""
    rng = np.random.default_rng(4000 + seed)
    for _ in range(8):
        c = int(rng.choice([1, 2, 3, 7, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255, 256, 257, 384, 511, 768]))
        lead = tuple(int(d) for d in rng.integers(1, 6, rng.integers(0, 3)))
        shape = (*lead, int(rng.integers(1, 40)), c) if rng.random() < 0.8 else (c * int(rng.integers(1, 50)),)
        case = O.Case(_ra_random(rng, shape))
        for dtype in S.CODE_TYPES:
            c8 = O.as_code_type("ResidualAdd", case, dtype)
            want = O.reference("ResidualAdd", c8)
            for isa in ISAS:
                assert_same(run_op("ResidualAdd", c8.inputs, {}, isa=isa), want)


def test_residual_add_ties_and_every_code() -> None:
    """Sums of (A - 128) + (B - 3) / 2 output steps (scales 2^-k, exact): a tie for every even B, where round half to
    even decides; every output code 0..255 appears, saturation at both ends included."""
    a = np.tile(np.arange(256, dtype=np.uint8), 256).reshape(256, 256)
    b = np.repeat(np.arange(256, dtype=np.uint8), 256).reshape(256, 256)
    inputs = {"A": a, "a_scale": np.array(0.5, np.float32), "a_zero_point": np.array(128, np.uint8),
              "B": b, "b_scale": np.full(256, 0.5, np.float32), "b_zero_point": np.array(3, np.uint8),
              "y_scale": np.array(0.5, np.float32), "y_zero_point": np.array(101, np.uint8),
              "gamma": np.full(256, 0.5, np.float32)}
    want = O.reference("ResidualAdd", O.Case(inputs))
    assert set(np.unique(want).tolist()) == set(range(256))
    for isa in ISAS:
        assert_same(run_op("ResidualAdd", inputs, {}, isa=isa), want)


def test_residual_add_inputs_at_run_time() -> None:
    """Two runs of one session with new codes and parameters: nothing is cached from the first."""
    rng = np.random.default_rng(23)
    inputs = O.residual_add_inputs(rng, (3, 50, 72), gamma="channel")
    session = _session(_model("ResidualAdd", inputs, {}))
    for _ in range(2):
        inputs = O.residual_add_inputs(rng, (3, 50, 72), b_scale="channel", gamma="channel")
        assert_same(session.run(None, inputs)[0], O.reference("ResidualAdd", O.Case(inputs)))


@pytest.mark.parametrize("shape", [(0,), (0, 5), (3, 0), (2, 0, 7)])
def test_residual_add_empty(shape: tuple[int, ...]) -> None:
    inputs = O.residual_add_inputs(np.random.default_rng(0), shape)
    for dtype in S.CODE_TYPES:
        c = O.as_code_type("ResidualAdd", O.Case(inputs), dtype)
        got = run_op("ResidualAdd", c.inputs, {})
        assert got.shape == shape and got.dtype == c.inputs["A"].dtype


def _ra_ok() -> Inputs:
    return O.residual_add_inputs(np.random.default_rng(0), (2, 8), gamma="channel")


def test_error_residual_add() -> None:
    for name, value, fragments in [
            ("B", np.zeros((2, 9), np.uint8), ["B must have the shape of A [2,8]", "got [2,9]"]),
            ("B", np.zeros((1, 2, 8), np.uint8), ["B must have the shape of A"]),
            ("a_scale", np.ones(5, np.float32), ["a_scale must have shape [C] = [8]", "got [5]", "A [2,8]"]),
            ("b_scale", np.ones((1, 8), np.float32), ["b_scale must have shape [C] = [8]", "got [1,8]"]),
            ("y_scale", np.ones(9, np.float32), ["y_scale must have shape [C] = [8]"]),
            ("gamma", np.ones(2, np.float32), ["gamma must have shape [C] = [8]"]),
            ("a_zero_point", np.zeros(8, np.uint8), ["a_zero_point must be a scalar"]),
            ("y_zero_point", np.zeros(2, np.uint8), ["y_zero_point must be a scalar"])]:
        inputs = _ra_ok()
        inputs[name] = value
        _expect_error("ResidualAdd", inputs, {}, "ResidualAdd", *fragments)
    inputs = _ra_ok()
    inputs["A"], inputs["B"] = np.array(5, np.uint8), np.array(6, np.uint8)
    _expect_error("ResidualAdd", inputs, {}, "ResidualAdd", "A must have rank >= 1")
    for name, dtype, onnx_name in [("A", np.float32, "tensor(float)"), ("b_scale", np.int32, "tensor(int32)"),
                                   ("gamma", np.uint8, "tensor(uint8)")]:
        inputs = _ra_ok()
        inputs[name] = inputs[name].astype(dtype)
        _expect_error("ResidualAdd", inputs, {}, onnx_name, f"({name})", "ResidualAdd")
    inputs = _ra_ok()
    inputs["B"] = inputs["B"].view(np.int8)  # T ports of one node share one code type
    _expect_error("ResidualAdd", inputs, {}, "ResidualAdd")
    _still_alive()


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
                              codes=str(rng.choice(["lis", "lis", "valid", "any"])))
        assert_same(run_op("LISMatMul", inputs, {"bits": bits}, isa=isa), lis_matmul_reference(inputs, bits))
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
        # int8 form of the last draw of each op family on the same path (kept to two ops: time)
        for op_type, case in (("Requantize", O.Case(inputs)), ("Lookup", O.Case({"X": x, "table": table}))):
            c8 = O.as_code_type(op_type, case, "int8")
            assert_same(run_op(op_type, c8.inputs, c8.attrs, isa=isa), O.reference(op_type, c8))


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
                                   ("y_zero_point", np.int16, "tensor(int16)")]:
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
            assert_same(got, lis_matmul_reference(inputs, 4))


# --- QLinear ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(3))
def test_qlinear_adversarial(seed: int) -> None:
    """Random shapes whose row count M is rarely a multiple of the CPU kernel's 64-row blocks (so the tail block and
    its own primitive run), K up to 2000, W a constant initializer or a graph input, both code types."""
    rng = np.random.default_rng(7000 + seed)
    for _ in range(5):
        rows = int(rng.choice([1, 63, 65, 127, 129, 197, 200, 333, int(rng.integers(2, 700))]))
        lead = (rows,) if rng.random() < 0.5 else (1, rows)
        k, n = int(rng.integers(1, 2000)), int(rng.integers(1, 300))
        inputs = O.qlinear_inputs(rng, (*lead, k), n, x=str(rng.choice(["random", "random", "extreme"])),
                                  w=str(rng.choice(["random", "extreme"])),
                                  m=str(rng.choice(["channel", "channel", "scalar"])))
        constant = _CONSTANT["QLinear"] if rng.random() < 0.7 else ("x_zero_point", "y_scale", "y_zero_point")
        for dtype in S.CODE_TYPES:
            c = O.as_code_type("QLinear", O.Case(inputs), dtype)
            assert_same(run_op("QLinear", c.inputs, {}, constant=constant), O.reference("QLinear", c))


# The cases where oneDNN's int8 matmul saturates without VNNI (op_cases: codes at one end, zero point at the other,
# weights +127 / -128 by column): on every CPU path, both code types.
_INT16_PAIRS = [name for name in O.params("QLinear") if name.startswith("int16_pairs_")]
# oneDNN ISAs (dnnl_cpu_isa_t) that lack VNNI, for ONEDNN_MAX_CPU_ISA: the kernel must not use oneDNN under them.
_ONEDNN_NO_VNNI = {"AVX512_CORE": 0x27, "AVX2": 0x7}


@pytest.mark.parametrize("case", _INT16_PAIRS)
def test_qlinear_int16_pairs(case: str) -> None:
    """Every adjacent pair of products along K lies beyond int16: exact on every path, uint8 and int8 codes."""
    c = O.build("QLinear", case)
    for dtype in S.CODE_TYPES:
        c8 = O.as_code_type("QLinear", c, dtype)
        want = O.reference("QLinear", c8)
        for isa in ISAS:
            assert_same(run_op("QLinear", c8.inputs, {}, constant=_CONSTANT["QLinear"], isa=isa), want)


_CAPPED_CHILD = r"""
import ctypes, json, os, sys
import numpy as np
import onnxruntime as ort
from fqvit_export.deploy.library import custom_ops_library

data = np.load(sys.argv[1])
bad = {}
for name in data["names"]:
    for isa in ("", "scalar", "avx2", "avx512"):
        so = ort.SessionOptions()
        so.register_custom_ops_library(str(custom_ops_library()))
        so.intra_op_num_threads = 2
        os.environ["FQVIT_CPU_ISA"] = isa
        session = ort.InferenceSession(data[f"{name}/model"].tobytes(), so, providers=["CPUExecutionProvider"])
        got = session.run(None, {"X": data[f"{name}/X"]})[0]
        bad[f"{name} [{isa or 'auto'}]"] = int((got != data[f"{name}/want"]).sum())
isa = ctypes.CDLL("libdnnl.so.3").dnnl_get_effective_cpu_isa()  # the instance the library loaded (same soname)
print(json.dumps({"onednn_isa": isa, "mismatches": bad}))
"""


@pytest.mark.skipif(LIB is None or b"libdnnl.so" not in LIB.read_bytes(), reason="library built without oneDNN")
@pytest.mark.parametrize("cap", list(_ONEDNN_NO_VNNI))
def test_qlinear_exact_when_onednn_lacks_vnni(cap: str, tmp_path) -> None:
    """With oneDNN held below VNNI (``ONEDNN_MAX_CPU_ISA``, read once per process: a child process) its int8 matmul
    saturates int16 pairs, so the kernel must take its portable loop on every path; the int16-pair cases stay
    bit-exact in both code types. The child also reports oneDNN's effective ISA, to show the cap took hold."""
    arrays: dict[str, np.ndarray] = {}
    names = []
    for case in _INT16_PAIRS:
        c = O.build("QLinear", case)
        for dtype in S.CODE_TYPES:
            c8 = O.as_code_type("QLinear", c, dtype)
            name = f"{case}/{dtype}"
            names.append(name)
            model = _model("QLinear", c8.inputs, {}, constant=_CONSTANT["QLinear"])
            arrays[f"{name}/model"] = np.frombuffer(model.SerializeToString(), np.uint8)
            arrays[f"{name}/X"] = c8.inputs["X"]
            arrays[f"{name}/want"] = O.reference("QLinear", c8)
    np.savez(tmp_path / "cases.npz", names=np.array(names), **arrays)
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": cap, "FQVIT_CUSTOM_OPS_LIB": str(LIB)}
    env.pop("FQVIT_CPU_ISA", None)
    proc = subprocess.run([sys.executable, "-c", _CAPPED_CHILD, str(tmp_path / "cases.npz")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["onednn_isa"] & ~_ONEDNN_NO_VNNI[cap] == 0, f"ONEDNN_MAX_CPU_ISA={cap} did not hold: {result}"
    bad = {k: v for k, v in result["mismatches"].items() if v}
    assert not bad, f"ONEDNN_MAX_CPU_ISA={cap}: elements differing from the reference per case and path: {bad}"


def test_qlinear_runtime_weight_changes() -> None:
    """A W fed at run time is read on every run: new values under an unchanged shape give new outputs."""
    rng = np.random.default_rng(11)
    inputs = O.qlinear_inputs(rng, (70, 33), 21)
    session = _session(_model("QLinear", inputs, {}, constant=("x_zero_point", "y_scale", "y_zero_point")))
    feeds = {n: a for n, a in inputs.items() if n not in ("x_zero_point", "y_scale", "y_zero_point")}
    for _ in range(3):
        feeds["W"] = rng.integers(-128, 128, feeds["W"].shape).astype(np.int8)
        want = O.reference("QLinear", O.Case({**inputs, "W": feeds["W"]}))
        assert_same(session.run(None, feeds)[0], want)


def test_error_qlinear() -> None:
    rng = np.random.default_rng(3)
    base = O.qlinear_inputs(rng, (4, 6), 5)
    for change, fragments in [({"W": np.zeros((7, 5), np.int8)}, ("disagree on K",)),
                              ({"W": np.zeros(6, np.int8)}, ("W must have shape [K, N]",)),
                              ({"multiplier": np.ones(4, np.float32)}, ("multiplier must have shape [N] = [5]",)),
                              ({"bias": np.ones((1, 5), np.float32)}, ("bias must have shape",)),
                              ({"X": np.zeros((2, S.MAX_QLINEAR_K + 1), np.uint8),
                                "W": np.zeros((S.MAX_QLINEAR_K + 1, 1), np.int8),
                                "multiplier": np.ones(1, np.float32), "bias": np.ones(1, np.float32)},
                               (f"exceeds {S.MAX_QLINEAR_K}",))]:
        _expect_error("QLinear", {**base, **change}, {}, "QLinear", *fragments)
    _expect_error("QLinear", {**base, "X": np.array(3, np.uint8)}, {}, "QLinear", "X must have rank >= 1")
    _still_alive()
