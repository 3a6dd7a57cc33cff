"""The ``com.fqvit`` ONNX function bodies run by stock onnxruntime (CPU) against the PyTorch reference, bit for bit.

Each case builds a one-node model (opset 18 + ``com.fqvit`` 1, IR version 8, the functions in ``model.functions``),
checks it with ``onnx.checker`` (full check: shape inference through the function bodies), runs it with onnxruntime's
CPU execution provider and compares every output element, the dtype and the shape with ``fqvit_export.ops.reference``
(docs/ops.md Sec. 1-5): the shared tables of random and adversarial cases per op
(``fqvit_export.testing.op_cases``), randomized shapes and parameters. ``test_body_steps`` also runs each body as a
plain graph and compares every intermediate (float32 bit patterns, int64 values) with the document's formulas written in
numpy.
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
from fqvit_export.ops import spec as S
from fqvit_export.testing import op_cases as O
from fqvit_export.testing.op_cases import (
    lis_logits,
    lis_mask,
    lis_matmul_inputs,
    lis_matmul_reference,
    lis_reference,
    lookup_reference,
    lookup_table,
    pts_inputs,
    pts_reference,
    requantize_inputs,
    requantize_reference,
)

_ONNX_TYPE = {np.dtype(np.uint8): TensorProto.UINT8, np.dtype(np.float32): TensorProto.FLOAT,
              np.dtype(np.bool_): TensorProto.BOOL, np.dtype(np.int32): TensorProto.INT32,
              np.dtype(np.int64): TensorProto.INT64, np.dtype(np.int8): TensorProto.INT8}
Inputs = dict[str, np.ndarray]


# --- building and running one-node models -------------------------------------------------------------------------

def _model(op_type: str, inputs: Inputs, attrs: dict, out_shape: tuple[int, ...], constant: Collection[str],
           out_type: int = TensorProto.UINT8) -> onnx.ModelProto:
    names, outputs = S.op(op_type).input_names, S.op(op_type).output_names
    assert list(inputs) == names, "inputs must be given in the op's order"
    node = F.make_node(op_type, names, outputs, "op0", **attrs)
    graph_inputs = [helper.make_tensor_value_info(n, _ONNX_TYPE[a.dtype], a.shape)
                    for n, a in inputs.items() if n not in constant]
    graph = helper.make_graph(
        [node], f"one_{op_type}", graph_inputs,
        [helper.make_tensor_value_info(outputs[0], out_type, out_shape)],
        initializer=[numpy_helper.from_array(a, n) for n, a in inputs.items() if n in constant])
    return helper.make_model(graph, ir_version=S.IR_VERSION, functions=F.function_protos(),
                             opset_imports=[helper.make_opsetid("", F.OPSET),
                                            helper.make_opsetid(F.DOMAIN, F.OP_VERSION)])


def run_op(op_type: str, inputs: Inputs, attrs: dict, out_shape: tuple[int, ...], constant: Collection[str] = (),
           optimize: bool = True, out_dtype: type = np.uint8) -> np.ndarray:
    """Check and run a one-node ``com.fqvit`` model; ``constant`` inputs become initializers (as the exporter writes
    parameters), so onnxruntime may fold the steps that depend on them only."""
    model = _model(op_type, inputs, attrs, out_shape, constant, _ONNX_TYPE[np.dtype(out_dtype)])
    onnx.checker.check_model(model, full_check=True)
    options = ort.SessionOptions()
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return sess.run(None, {n: a for n, a in inputs.items() if n not in constant})[0]


def assert_bit_exact(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype and want.dtype in (np.uint8, np.int8)
    assert got.shape == want.shape
    bad = np.argwhere(got != want)
    assert bad.size == 0, (f"{len(bad)} of {want.size} elements differ, first at {tuple(map(int, bad[0]))}: "
                           f"onnx {got[tuple(bad[0])]} reference {want[tuple(bad[0])]}")


# --- the shared case tables (fqvit_export.testing.op_cases) -----------------------------------------------------------

# Lookup and Requantize run twice: parameters fed at run time, and as initializers (as the exporter writes them).
_CONSTANT_VARIANTS = {"PTSLayerNorm": [()], "LogIntSoftmax": [()], "LISMatMul": [()],
                      "Lookup": [(), ("table",)], "Requantize": [(), ("multiplier", "bias", "y_scale", "y_zero_point")],
                      "QLinear": [("W",), ("W", "multiplier", "bias", "y_scale", "y_zero_point")],
                      "ResidualAdd": [(), ("a_scale", "b_scale", "y_scale", "gamma")],
                      "LISAttention": [(), ("qkv_scale", "qkv_zero_point", "qk_multiplier", "logits_scale",
                                            "logits_zero_point", "y_scale", "y_zero_point")]}


@pytest.mark.parametrize("code_type", O.CODE_TYPES)
@pytest.mark.parametrize("op_type, case", [(op, name) for op in O.CASES for name in O.params(op)])
def test_op_case(op_type: str, case: str, code_type: str) -> None:
    """Every shared case, in both code types: one body serves uint8 and int8 (the output follows the zero point)."""
    c = O.as_code_type(op_type, O.build(op_type, case), code_type)
    want = O.reference(op_type, c)
    inputs = dict(c.inputs)
    if op_type == "LogIntSoftmax" and "mask" not in inputs:  # the body needs the optional mask: one False element
        inputs["mask"] = np.zeros((1,) * inputs["X"].ndim, np.bool_)
    for constant in _CONSTANT_VARIANTS[op_type]:
        assert_bit_exact(run_op(op_type, inputs, c.attrs, O.out_shape(op_type, c), constant=constant,
                                out_dtype=want.dtype), want)


def test_lookup_short_table_fails() -> None:
    """Outside the op's domain: with a 255-entry table the body's Gather rejects code 255 (the kernels reject the
    table itself)."""
    x = np.array([[0, 255]], np.uint8)
    with pytest.raises(Exception, match="out of bounds|out of range|indices"):
        run_op("Lookup", {"X": x, "table": np.zeros(255, np.uint8)}, {}, x.shape)


# --- Requantize (docs/ops.md Sec. 1, integer matmuls) -----------------------------------------------------------------

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
    return {"X": x, "mask": mask}, {"multiplier": m, "bits": bits}, shape, lis_reference(x, m, bits, mask)


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


# --- the torch.sqrt regression case -------------------------------------------------------------------------

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
    q = np.where(mask, -256, x.astype(np.int64))
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
    """Names, input/output order and attributes as docs/ops.md states them; standard ops only, opset 18, except
    LISAttention's body, which calls three other com.fqvit ops (and imports their opset)."""
    funcs = F.function_protos()
    assert [f.name for f in funcs] == ["PTSLayerNorm", "LogIntSoftmax", "LISMatMul", "Lookup", "Requantize",
                                          "QLinear", "ResidualAdd", "LISAttention"]
    for f in funcs:
        inputs, outputs, attributes = S.op(f.name).input_names, S.op(f.name).output_names, \
            S.op(f.name).attribute_names
        assert f.domain == F.DOMAIN == "com.fqvit"
        assert (list(f.input), list(f.output), list(f.attribute)) == (inputs, outputs, attributes)
        nested = {n.op_type for n in f.node if n.domain == F.DOMAIN}
        assert nested == ({"Requantize", "LogIntSoftmax", "LISMatMul"} if f.name == "LISAttention" else set())
        assert [(o.domain, o.version) for o in f.opset_import] == \
            [("", F.OPSET)] + ([(F.DOMAIN, F.OP_VERSION)] if nested else [])
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
