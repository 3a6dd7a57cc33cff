"""Throughput of the ``com.fqvit`` CPU kernels against onnxruntime's float ops on the same shapes.

Pairs, each on onnxruntime's CPU execution provider with ``--threads`` (2) intra-op threads, batch ``--batch`` (8):

* ``PTSLayerNorm`` (uint8 in/out) vs float ``LayerNormalization`` (opset 18) on ``[batch, 197, C]``, C = 384, 768;
* ``LogIntSoftmax -> LISMatMul`` (uint8 logits and V in, uint8 out) vs float ``Softmax -> MatMul`` on attention of
  ``heads`` = 6, 12 heads, N = 197 tokens, head dim 64;
* ``LogIntSoftmax`` alone (uint8 logits in, uint8 codes out) vs float ``Softmax`` alone, 12 heads.

Repetitions are interleaved (custom, float, custom, float, ...) so both sides see the same machine state; each side's
time is the median over ``--reps`` repetitions of ``--inner`` back-to-back runs. Both sessions run with
``session.intra_op.allow_spinning = 0``: otherwise the idle pool of one session spins on the cores the other needs.
``ratio`` = float time / custom time (> 1: the integer kernel is faster). Results go to ``bench/results/ops.json``.

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

from fqvit_export.deploy.library import custom_ops_library

DOMAIN = "com.fqvit"
TOKENS = 197
HEAD_DIM = 64


def _model(nodes: list, inputs: dict[str, np.ndarray], consts: dict[str, np.ndarray], custom: bool) -> bytes:
    types = {np.dtype(np.uint8): TensorProto.UINT8, np.dtype(np.float32): TensorProto.FLOAT,
             np.dtype(np.bool_): TensorProto.BOOL}
    graph = helper.make_graph(
        nodes, "bench", [helper.make_tensor_value_info(n, types[a.dtype], a.shape) for n, a in inputs.items()],
        [helper.make_tensor_value_info("Y", TensorProto.UINT8 if custom else TensorProto.FLOAT, None)],
        initializer=[onnx.numpy_helper.from_array(a, n) for n, a in consts.items()])
    opsets = [helper.make_opsetid("", 18)] + ([helper.make_opsetid(DOMAIN, 1)] if custom else [])
    return helper.make_model(graph, ir_version=8, opset_imports=opsets).SerializeToString()


def layernorm_pair(rng: np.random.Generator, batch: int, c: int) -> tuple[tuple[bytes, dict], tuple[bytes, dict]]:
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


def attention_pair(rng: np.random.Generator, batch: int, heads: int) -> tuple[tuple[bytes, dict], tuple[bytes, dict]]:
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


def softmax_pair(rng: np.random.Generator, batch: int, heads: int) -> tuple[tuple[bytes, dict], tuple[bytes, dict]]:
    shape = (batch, heads, TOKENS, TOKENS)
    x_u8 = rng.integers(0, 256, shape, dtype=np.uint8)
    custom = _model([helper.make_node("LogIntSoftmax", ["X", "mask"], ["Y"], domain=DOMAIN, multiplier=1400, bits=4)],
                    {"X": x_u8}, {"mask": np.zeros(1, bool)}, custom=True)
    fp = _model([helper.make_node("Softmax", ["X"], ["Y"], axis=-1)],
                {"X": rng.standard_normal(shape).astype(np.float32)}, {}, custom=False)
    return (custom, {"X": x_u8}), (fp, {"X": rng.standard_normal(shape).astype(np.float32)})


def _session(model: bytes, threads: int, lib: Path | None) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    # Two sessions alternate on the same cores: a pool that keeps spinning after its run would steal the other's time.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if lib is not None:
        so.register_custom_ops_library(str(lib))
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def measure(pair, threads: int, lib: Path, reps: int, inner: int) -> dict:
    (custom, custom_feeds), (fp, fp_feeds) = pair
    sessions = [(_session(custom, threads, lib), custom_feeds), (_session(fp, threads, None), fp_feeds)]
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
    load_before = os.getloadavg()[0]
    results = []
    for c in (384, 768):
        r = measure(layernorm_pair(rng, args.batch, c), args.threads, lib, args.reps, args.inner)
        results.append({"op": "PTSLayerNorm vs LayerNormalization", "shape": [args.batch, TOKENS, c], **r})
        print(f"PTSLayerNorm       [{args.batch},{TOKENS},{c}]: {r['custom_ms']:.3f} ms  float {r['float_ms']:.3f} ms"
              f"  ratio {r['ratio']:.2f}", flush=True)
    for heads in (6, 12):
        r = measure(attention_pair(rng, args.batch, heads), args.threads, lib, args.reps, args.inner)
        results.append({"op": "LogIntSoftmax+LISMatMul vs Softmax+MatMul",
                        "shape": [args.batch, heads, TOKENS, TOKENS, HEAD_DIM], **r})
        print(f"LIS+LISMatMul  [{args.batch},{heads},{TOKENS},{TOKENS}]x{HEAD_DIM}: {r['custom_ms']:.3f} ms  float "
              f"{r['float_ms']:.3f} ms  ratio {r['ratio']:.2f}", flush=True)
    r = measure(softmax_pair(rng, args.batch, 12), args.threads, lib, args.reps, args.inner)
    results.append({"op": "LogIntSoftmax vs Softmax", "shape": [args.batch, 12, TOKENS, TOKENS], **r})
    print(f"LogIntSoftmax  [{args.batch},12,{TOKENS},{TOKENS}]: {r['custom_ms']:.3f} ms  float {r['float_ms']:.3f} ms"
          f"  ratio {r['ratio']:.2f}", flush=True)
    report = {
        "description": "median time per run, interleaved repetitions; ratio = float_ms / custom_ms (> 1: faster)",
        "threads": args.threads, "batch": args.batch, "reps": args.reps, "inner": args.inner,
        "onnxruntime": ort.__version__, "machine": platform.machine(), "processor": _cpu_name(),
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


if __name__ == "__main__":
    sys.exit(main())
