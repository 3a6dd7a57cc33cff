"""Throughput of the ``com.fqvit`` CPU kernels against onnxruntime's float ops on the same shapes.

Pairs, each on onnxruntime's CPU execution provider with ``--threads`` (2) intra-op threads, batch ``--batch`` (8):

* ``PTSLayerNorm`` (uint8 in/out) vs float ``LayerNormalization`` (opset 18) on ``[batch, 197, C]``, C = 384, 768;
* ``LogIntSoftmax -> LISMatMul`` (uint8 logits and V in, uint8 out) vs float ``Softmax -> MatMul`` on attention of
  ``heads`` = 6, 12 heads, N = 197 tokens, head dim 64;
* ``LogIntSoftmax`` alone (uint8 logits in, uint8 codes out) vs float ``Softmax`` alone, 12 heads;
* ``QLinear`` vs the unfused ``MatMulInteger -> com.fqvit::Requantize`` it replaces, on the deit_small and deit_base
  linears (qkv, fc1, fc2: ``[batch * 197, K] x [K, N]``), uint8 codes (the cpu target); and once with int8 codes,
  ``MatMulInteger`` then taking int8 A (the cuda target's graph run on the CPU). W, the zero points, multiplier, bias
  and scales are initializers, as in an exported model (so both sides may pack W once);
* ``ResidualAdd`` vs the ten float nodes the exporter emitted for a residual add before it had the op: the stream's
  PTS dequantizer ``Cast -> Sub -> Mul``, the branch's ``DequantizeLinear``, ``Add``, and the PTS quantizer
  ``Div -> Round -> Add -> Clip -> Cast``; uint8 codes of the stream and of the branch in, the new stream's codes out,
  per-channel (PTS) stream scales, on ``[batch, 197, C]``, C = 384, 768;
* ``LISAttention`` vs the twelve nodes it replaces (q, k, v split, ``MatMulInteger -> Requantize -> LogIntSoftmax ->
  LISMatMul``, heads merged), on the qkv codes of 6 and 12 heads (deit_small, deit_base), N = 197, head dim 64.

The first three pairs time the integer kernel against onnxruntime's float op on random data of the same shape; the
last three time the same work twice, so their two sides get the same inputs and must give the same codes bit for bit
(checked before timing; the bench stops otherwise). Repetitions are interleaved (custom, baseline, custom,
baseline, ...) so both sides see the same machine state; each side's time is the median over ``--reps`` repetitions of
``--inner`` back-to-back runs. Both sessions run with ``bench_models.SPINNING``: their pools spin during a run and stop
when it returns, so that the idle session's pool does not spin on the cores the other needs. ``ratio`` = baseline
time / custom time (> 1: the ``com.fqvit`` kernel is faster); the baseline's time is ``float_ms`` in every row,
``baseline`` says whether it is onnxruntime's float op (``float``) or the unfused chain (``unfused``). The CPU's ISA flags (AVX2, AVX-512 VNNI, AMX, ...) go in the
results: they pick the integer kernels on both sides. Results go to ``bench/results/ops.json``.

    python bench/bench_ops.py [--reps 30] [--inner 5] [--threads 2] [--batch 8] [--out bench/results/ops.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from bench_models import SPINNING
from fqvit_export.deploy.library import custom_ops_library
from fqvit_export.testing.op_cases import (Case, as_code_type, lis_attention_inputs, qlinear_inputs,
                                           residual_add_inputs)

DOMAIN = "com.fqvit"
TOKENS = 197
HEAD_DIM = 64
LINEARS = {  # (K, N) of the block's linears: qkv, fc1, fc2
    "deit_small": {"qkv": (384, 1152), "fc1": (384, 1536), "fc2": (1536, 384)},
    "deit_base": {"qkv": (768, 2304), "fc1": (768, 3072), "fc2": (3072, 768)},
}
ISA_FLAGS = ("sse4_1", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile",
             "amx_int8", "amx_bf16")
"""The /proc/cpuinfo flags that decide which integer kernels oneDNN (QLinear) and MLAS (MatMulInteger) dispatch."""

Pair = tuple[tuple[bytes, dict], tuple[bytes, dict]]


def _model(nodes: list, inputs: dict[str, np.ndarray], consts: dict[str, np.ndarray], custom: bool,
           y: np.dtype | type | None = None) -> bytes:
    """One-graph model: ``inputs`` as graph inputs, ``consts`` as initializers, output ``Y`` of element type ``y``
    (uint8 for a custom graph, float32 otherwise, unless given)."""
    types = {np.dtype(np.uint8): TensorProto.UINT8, np.dtype(np.int8): TensorProto.INT8,
             np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.bool_): TensorProto.BOOL}
    y_type = types[np.dtype(y if y is not None else np.uint8 if custom else np.float32)]
    graph = helper.make_graph(
        nodes, "bench", [helper.make_tensor_value_info(n, types[a.dtype], a.shape) for n, a in inputs.items()],
        [helper.make_tensor_value_info("Y", y_type, None)],
        initializer=[onnx.numpy_helper.from_array(a, n) for n, a in consts.items()])
    opsets = [helper.make_opsetid("", 18)] + ([helper.make_opsetid(DOMAIN, 1)] if custom else [])
    return helper.make_model(graph, ir_version=8, opset_imports=opsets).SerializeToString()


def layernorm_pair(rng: np.random.Generator, batch: int, c: int) -> Pair:
    shape = (batch, TOKENS, c)
    x_u8 = rng.integers(0, 256, shape, dtype=np.uint8)
    gamma = rng.uniform(0.5, 1.5, c).astype(np.float32)
    beta = rng.uniform(-0.5, 0.5, c).astype(np.float32)
    custom = _model(
        [helper.make_node("PTSLayerNorm", ["X", "xs", "xzp", "alpha", "gamma", "beta", "ys", "yzp"], ["Y"],
                          domain=DOMAIN, epsilon=1e-6)],
        {"X": x_u8},
        {"xs": np.array(0.01, np.float32), "xzp": np.array(128, np.uint8),
         "alpha": rng.integers(0, 4, c, dtype=np.uint8), "gamma": gamma, "beta": beta,
         "ys": np.array(0.03, np.float32), "yzp": np.array(128, np.uint8)}, custom=True)
    fp = _model([helper.make_node("LayerNormalization", ["X", "gamma", "beta"], ["Y"], axis=-1, epsilon=1e-6)],
                {"X": rng.standard_normal(shape).astype(np.float32)}, {"gamma": gamma, "beta": beta}, custom=False)
    return (custom, {"X": x_u8}), (fp, {"X": rng.standard_normal(shape).astype(np.float32)})


def attention_pair(rng: np.random.Generator, batch: int, heads: int) -> Pair:
    s_shape, v_shape = (batch, heads, TOKENS, TOKENS), (batch, heads, TOKENS, HEAD_DIM)
    x_u8 = rng.integers(0, 256, s_shape, dtype=np.uint8)
    v_u8 = rng.integers(0, 256, v_shape, dtype=np.uint8)
    custom = _model(
        [helper.make_node("LogIntSoftmax", ["X", "mask"], ["codes"], domain=DOMAIN, multiplier=1400, bits=4),
         helper.make_node("LISMatMul", ["codes", "V", "vs", "vzp", "ys", "yzp"], ["Y"], domain=DOMAIN, bits=4)],
        {"X": x_u8, "V": v_u8},
        {"mask": np.zeros(1, bool), "vs": np.array(0.05, np.float32), "vzp": np.array(128, np.uint8),
         "ys": np.array(0.02, np.float32), "yzp": np.array(128, np.uint8)}, custom=True)
    fp = _model([helper.make_node("Softmax", ["X"], ["P"], axis=-1), helper.make_node("MatMul", ["P", "V"], ["Y"])],
                {"X": rng.standard_normal(s_shape).astype(np.float32),
                 "V": rng.standard_normal(v_shape).astype(np.float32)}, {}, custom=False)
    feeds_fp = {"X": rng.standard_normal(s_shape).astype(np.float32),
                "V": rng.standard_normal(v_shape).astype(np.float32)}
    return (custom, {"X": x_u8, "V": v_u8}), (fp, feeds_fp)


def softmax_pair(rng: np.random.Generator, batch: int, heads: int) -> Pair:
    shape = (batch, heads, TOKENS, TOKENS)
    x_u8 = rng.integers(0, 256, shape, dtype=np.uint8)
    custom = _model([helper.make_node("LogIntSoftmax", ["X", "mask"], ["Y"], domain=DOMAIN, multiplier=1400, bits=4)],
                    {"X": x_u8}, {"mask": np.zeros(1, bool)}, custom=True)
    fp = _model([helper.make_node("Softmax", ["X"], ["Y"], axis=-1)],
                {"X": rng.standard_normal(shape).astype(np.float32)}, {}, custom=False)
    return (custom, {"X": x_u8}), (fp, {"X": rng.standard_normal(shape).astype(np.float32)})


def gelu_codes(rng: np.random.Generator, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """uint8 codes and zero point of a GELU output as an MLP's fc2 reads them: GELU of standard normal values on an
    asymmetric grid from -0.17 to 4 (zero point 10), so most codes lie near the zero point (uniform codes would put
    the rows outside the bound under which the CPU kernel fuses its epilogue into oneDNN, custom_ops/README.md)."""
    z = rng.standard_normal(shape).astype(np.float32)
    gelu = 0.5 * z * (1.0 + np.tanh(0.7978845608 * (z + 0.044715 * z ** 3)))
    scale, zp = 4.17 / 255.0, 10
    return np.clip(np.round(gelu / scale) + zp, 0, 255).astype(np.uint8), np.array(zp, np.uint8)


def qlinear_pair(rng: np.random.Generator, batch: int, k: int, n: int, code: str = "uint8", gelu: bool = False
                 ) -> Pair:
    """``QLinear`` vs ``MatMulInteger -> Requantize`` on codes ``[batch, 197, K]`` of type ``code`` and the same
    constants; both graphs take the same X. ``gelu``: X as :func:`gelu_codes` (an fc2 input), else uniform codes."""
    inputs = qlinear_inputs(rng, (batch, TOKENS, k), n)
    if gelu:
        inputs["X"], inputs["x_zero_point"] = gelu_codes(rng, (batch, TOKENS, k))
    case = as_code_type("QLinear", Case(inputs), code)
    i = case.inputs
    consts = {name: i[name] for name in ("W", "x_zero_point", "multiplier", "bias", "y_scale", "y_zero_point")}
    y = i["y_zero_point"].dtype
    fused = _model([helper.make_node("QLinear", ["X", "W", "x_zero_point", "multiplier", "bias", "y_scale",
                                                 "y_zero_point"], ["Y"], domain=DOMAIN)],
                   {"X": i["X"]}, consts, custom=True, y=y)
    unfused = _model(
        [helper.make_node("MatMulInteger", ["X", "W", "x_zero_point", "w_zero_point"], ["acc"]),
         helper.make_node("Requantize", ["acc", "multiplier", "bias", "y_scale", "y_zero_point"], ["Y"],
                          domain=DOMAIN)],
        {"X": i["X"]}, {**consts, "w_zero_point": np.array(0, np.int8)}, custom=True, y=y)
    return (fused, {"X": i["X"]}), (unfused, {"X": i["X"]})


def residual_add_pair(rng: np.random.Generator, batch: int, c: int) -> Pair:
    """``ResidualAdd`` vs the exporter's former float chain on uint8 codes ``[batch, 197, C]``: PTS scales of the
    stream (A) and of the sum (Y), one scale for the branch (B, a linear's output), no LayerScale (``gamma`` = 1).

    The chain is what ``OnnxBackend`` built around ``add``: ``_pts_dequant`` of the stream (Cast, Sub, Mul), a
    per-tensor ``DequantizeLinear`` of the branch, ``Add``, and ``_pts_quant`` (``quantize_nodes``: Div, Round, Add,
    Clip, Cast). In a model the stream's dequantizer follows the previous add's Cast; here it starts the chain, so
    both graphs map the same two code tensors to the same codes."""
    i = residual_add_inputs(rng, (batch, TOKENS, c))
    feeds = {"A": i["A"], "B": i["B"]}
    fused = _model([helper.make_node("ResidualAdd", ["A", "a_scale", "a_zero_point", "B", "b_scale", "b_zero_point",
                                                     "y_scale", "y_zero_point", "gamma"], ["Y"], domain=DOMAIN)],
                   feeds, {k: v for k, v in i.items() if k not in feeds}, custom=True)
    chain = _model(
        [helper.make_node("Cast", ["A"], ["a_f"], to=TensorProto.FLOAT),
         helper.make_node("Sub", ["a_f", "a_zp_f"], ["a_c"]),
         helper.make_node("Mul", ["a_c", "a_scale"], ["x"]),
         helper.make_node("DequantizeLinear", ["B", "b_scale", "b_zero_point"], ["branch"]),
         helper.make_node("Add", ["x", "branch"], ["t"]),
         helper.make_node("Div", ["t", "y_scale"], ["q"]),
         helper.make_node("Round", ["q"], ["r"]),
         helper.make_node("Add", ["r", "y_zp_f"], ["z"]),
         helper.make_node("Clip", ["z", "lo", "hi"], ["c"]),
         helper.make_node("Cast", ["c"], ["Y"], to=TensorProto.UINT8)],
        feeds, {"a_scale": i["a_scale"], "a_zp_f": i["a_zero_point"].astype(np.float32), "b_scale": i["b_scale"],
                "b_zero_point": i["b_zero_point"], "y_scale": i["y_scale"],
                "y_zp_f": i["y_zero_point"].astype(np.float32), "lo": np.array(0.0, np.float32),
                "hi": np.array(255.0, np.float32)}, custom=False, y=np.uint8)
    return (fused, feeds), (chain, feeds)


def lis_attention_pair(rng: np.random.Generator, batch: int, heads: int) -> Pair:
    """``LISAttention`` vs the twelve nodes the exporter wrote for a ViT attention before it had the op, on the qkv
    codes ``[batch, 197, 3 * heads * 64]`` (uint8): ``Reshape -> Transpose -> Gather`` x3 (q, k, v), ``Transpose``
    (k^T), ``MatMulInteger -> Requantize -> LogIntSoftmax -> LISMatMul``, ``Transpose -> Reshape``; the scalars are
    initializers, as in an exported model."""
    case = lis_attention_inputs(rng, batch, TOKENS, heads, HEAD_DIM)
    i, a = case.inputs, case.attrs
    feeds = {"QKV": i["QKV"]}
    consts = {k: v for k, v in i.items() if k != "QKV"}
    fused = _model([helper.make_node("LISAttention", list(i), ["Y"], domain=DOMAIN, **a)], feeds, consts,
                   custom=True)
    lis, bits = a["lis_multiplier"], a["bits"]
    chain = _model(
        [helper.make_node("Reshape", ["QKV", "split_shape"], ["qkv5"]),
         helper.make_node("Transpose", ["qkv5"], ["parts"], perm=[2, 0, 3, 1, 4]),
         *(helper.make_node("Gather", ["parts", f"i{j}"], [x], axis=0) for j, x in enumerate("qkv")),
         helper.make_node("Transpose", ["k"], ["kT"], perm=[0, 1, 3, 2]),
         helper.make_node("MatMulInteger", ["q", "kT", "qkv_zero_point", "qkv_zero_point"], ["acc"]),
         helper.make_node("Requantize", ["acc", "qk_multiplier", "zero_bias", "logits_scale", "logits_zero_point"],
                          ["logits"], domain=DOMAIN),
         helper.make_node("LogIntSoftmax", ["logits", "no_mask"], ["codes"], domain=DOMAIN, multiplier=lis,
                          bits=bits),
         helper.make_node("LISMatMul", ["codes", "v", "qkv_scale", "qkv_zero_point", "y_scale", "y_zero_point"],
                          ["out"], domain=DOMAIN, bits=bits),
         helper.make_node("Transpose", ["out"], ["tokens"], perm=[0, 2, 1, 3]),
         helper.make_node("Reshape", ["tokens", "merge_shape"], ["Y"])],
        feeds, {**consts, "split_shape": np.array([0, 0, 3, heads, HEAD_DIM], np.int64),
                "merge_shape": np.array([0, 0, heads * HEAD_DIM], np.int64),
                **{f"i{j}": np.array(j, np.int64) for j in range(3)},
                "zero_bias": np.array(0.0, np.float32), "no_mask": np.zeros((1, 1, 1, 1), bool)}, custom=True)
    return (fused, feeds), (chain, feeds)


def _uses_domain(model: bytes) -> bool:
    return any(o.domain == DOMAIN for o in onnx.load_from_string(model).opset_import)


def _session(model: bytes, threads: int, lib: Path | None) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    # Two sessions alternate on the same cores: a pool that kept spinning after its run would steal the other's time.
    for key, value in SPINNING.items():
        so.add_session_config_entry(key, value)
    if lib is not None:
        so.register_custom_ops_library(str(lib))
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def measure(pair: Pair, threads: int, lib: Path, reps: int, inner: int, exact: bool = False) -> dict:
    """Median ms per run of each side of ``pair``; ``exact``: first require the two sides' outputs to be equal (same
    dtype, shape and every element), as they must be where both compute the same codes from the same inputs."""
    (custom, custom_feeds), (fp, fp_feeds) = pair
    sessions = [(_session(custom, threads, lib), custom_feeds),
                (_session(fp, threads, lib if _uses_domain(fp) else None), fp_feeds)]
    if exact:
        (y_custom,), (y_base,) = (s.run(None, feeds) for s, feeds in sessions)
        if y_custom.dtype != y_base.dtype or y_custom.shape != y_base.shape or not np.array_equal(y_custom, y_base):
            bad = int(np.count_nonzero(y_custom != y_base)) if y_custom.shape == y_base.shape else -1
            raise RuntimeError(f"the two sides disagree: {y_custom.dtype}{list(y_custom.shape)} vs "
                               f"{y_base.dtype}{list(y_base.shape)}, {bad} elements differ")
    for s, feeds in sessions:  # warm-up
        for _ in range(3):
            s.run(None, feeds)
    times: list[list[float]] = [[], []]
    for _ in range(reps):
        for i, (s, feeds) in enumerate(sessions):
            t0 = time.perf_counter()
            for _ in range(inner):
                s.run(None, feeds)
            times[i].append((time.perf_counter() - t0) / inner)
    custom_ms, fp_ms = (statistics.median(t) * 1e3 for t in times)
    return {"custom_ms": round(custom_ms, 4), "float_ms": round(fp_ms, 4), "ratio": round(fp_ms / custom_ms, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--inner", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "ops.json")
    args = parser.parse_args(argv)
    lib = custom_ops_library()
    if lib is None:
        print("bench_ops: the com.fqvit library is not built; run tools/build_custom_ops.sh", file=sys.stderr)
        return 1
    rng = np.random.default_rng(0)
    isa = _cpu_flags()
    print(f"{_cpu_name()}: {' '.join(isa) or 'no ISA flags found'}", flush=True)
    load_before = os.getloadavg()[0]
    results: list[dict] = []
    b = args.batch

    def run(op: str, label: str, shape: list[int], pair: Pair, baseline: str = "float", **extra) -> None:
        r = measure(pair, args.threads, lib, args.reps, args.inner, exact=baseline == "unfused")
        results.append({"op": op, "shape": shape, **extra, "baseline": baseline, **r})
        print(f"{label:<44} {r['custom_ms']:8.3f} ms  {baseline} {r['float_ms']:8.3f} ms  ratio {r['ratio']:.2f}",
              flush=True)

    for c in (384, 768):
        run("PTSLayerNorm vs LayerNormalization", f"PTSLayerNorm [{b},{TOKENS},{c}]", [b, TOKENS, c],
            layernorm_pair(rng, b, c))
    for heads in (6, 12):
        run("LogIntSoftmax+LISMatMul vs Softmax+MatMul", f"LIS+LISMatMul [{b},{heads},{TOKENS},{TOKENS}]x{HEAD_DIM}",
            [b, heads, TOKENS, TOKENS, HEAD_DIM], attention_pair(rng, b, heads))
    run("LogIntSoftmax vs Softmax", f"LogIntSoftmax [{b},12,{TOKENS},{TOKENS}]", [b, 12, TOKENS, TOKENS],
        softmax_pair(rng, b, 12))
    linears = [(m, layer, "uint8") for m in LINEARS for layer in LINEARS[m]] + [("deit_small", "fc1", "int8")]
    for model, layer, code in linears:
        k, n = LINEARS[model][layer]
        run(f"QLinear vs MatMulInteger+Requantize ({code})", f"QLinear {code} {model}.{layer} [{b * TOKENS},{k}]x{n}",
            [b, TOKENS, k, n], qlinear_pair(rng, b, k, n, code, gelu=layer == "fc2"), "unfused",
            layer=f"{model}.{layer}", x="GELU codes" if layer == "fc2" else "uniform codes")
    for heads in (6, 12):
        run("LISAttention vs its twelve unfused nodes", f"LISAttention [{b},{TOKENS},3x{heads}x{HEAD_DIM}]",
            [b, TOKENS, 3 * heads * HEAD_DIM], lis_attention_pair(rng, b, heads), "unfused", heads=heads)
    for c in (384, 768):
        run("ResidualAdd vs DQ+Add+Q float chain", f"ResidualAdd [{b},{TOKENS},{c}]", [b, TOKENS, c],
            residual_add_pair(rng, b, c), "unfused")
    report = {
        "description": "median time per run, interleaved repetitions; float_ms = the baseline's time (baseline: float "
                       "= onnxruntime's float op, unfused = the chain the com.fqvit op replaces, checked bit-exact "
                       "against it); ratio = float_ms / custom_ms (> 1: the com.fqvit op is faster)",
        "threads": args.threads, "batch": args.batch, "reps": args.reps, "inner": args.inner,
        "onnxruntime": ort.__version__, "machine": platform.machine(), "processor": _cpu_name(), "isa": isa,
        "library": lib.name, "load_avg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({k: v for k, v in report.items() if k != "results"}, indent=2)[:-2]
    rows = ",\n".join("    " + json.dumps(r) for r in results)
    args.out.write_text(f'{text},\n  "results": [\n{rows}\n  ]\n}}\n')
    print(f"wrote {args.out}")
    return 0


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _cpu_flags() -> list[str]:
    """The :data:`ISA_FLAGS` this CPU reports in /proc/cpuinfo (empty where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return [f for f in ISA_FLAGS if f in have]
    except OSError:
        pass
    return []


if __name__ == "__main__":
    sys.exit(main())
