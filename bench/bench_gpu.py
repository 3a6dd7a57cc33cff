"""GPU timings of the com.fqvit CUDA path, apart from ``tools/gpu_check.py``'s checks (a check judges; this only
reports): the kernels against the CPU kernels and torch's float ops, whole models against FP32 and FP16 with and
without CUDA graphs, and each kernel's bandwidth against a device copy. Writes ``bench/results/gpu.json``.

Sections, with the time each takes on one H200 and 16 CPU cores (estimates):

1. kernels (~10 s): the large uint8 cases of :mod:`fqvit_export.testing.op_cases` (400k elements or more) through
   the C entries (CUDA events): the CUDA kernel, the single-threaded CPU kernel and torch's float op on the same
   shapes (for scale, not an equivalent computation).
2. models (~150 s): ``deit_small`` and ``deit_base`` (random weights: speed only), calibrated on 16 bundled ImageNet
   photos with PTS and LIS; the integer cuda-target model vs the FP32 model (``float_onnx``) and FP16
   (``convert_float_to_float16(keep_io_types=True)``) on the CUDA EP at batch 1, 8 and 64, each with and without
   CUDA graphs (io_binding, inputs and outputs on the device). The six variants of one batch are timed side by
   side: repetitions interleaved in rotating order, the median over repetitions. A variant that cannot run under
   CUDA graphs is reported, not fatal; the int8 model's logits under a CUDA graph are compared with its plain ones.
3. bandwidth (~10 s): each kernel at deit_base batch-64 shapes (CUDA events), bytes read + written per second as a
   percentage of a device-to-device copy of a 1 GiB buffer timed the same way.

``--cpu-only`` is a dry run of this code without a GPU (CPU kernels, ``cifar10_vit`` on the CPU EP without graphs or
FP16, batch-1 bandwidth shapes, few repetitions) that writes ``build/bench/gpu_dry_run.json``: its figures say
nothing about a GPU.

    PYTHONPATH=/tmp/site python3 bench/bench_gpu.py [--lib PATH] [--quick] [--sections kernels models bandwidth]
    python bench/bench_gpu.py --cpu-only --quick
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from fqvit_export.deploy.capi import KernelLibrary
from fqvit_export.deploy.library import custom_ops_library
from fqvit_export.deploy.session import session_options
from fqvit_export.ops import reference as R
from fqvit_export.testing import op_cases as O
from fqvit_export.testing.c_entries import Ops, call, prepare
from fqvit_export.testing.gpu import environment, onnxruntime_module, write_json

ROOT = Path(__file__).resolve().parents[1]
CPU_EP, CUDA_EP = "CPUExecutionProvider", "CUDAExecutionProvider"
SECTIONS = ("kernels", "models", "bandwidth")


# --- timers -----------------------------------------------------------------------------------------------------------

def _cuda_ms(fn: Callable[[], object], reps: int = 20) -> float:
    """Median time of ``fn`` in ms by CUDA events on torch's current stream (one warm-up call)."""
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def _cpu_ms(fn: Callable[[], object], reps: int = 5) -> float:
    """Median wall time of ``fn`` in ms (one warm-up call)."""
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _sync(gpu: bool) -> None:
    if gpu:
        torch.cuda.synchronize()


# --- 1: kernels against the CPU kernel and torch's float op -----------------------------------------------------------

def _float_op(op: str, t: dict[str, torch.Tensor], inputs: dict, attrs: dict) -> Callable[[], torch.Tensor]:
    """torch's float op on the same shapes, for scale in the table."""
    if op == "PTSLayerNorm":
        xf = t["X"].float()
        return lambda: torch.nn.functional.layer_norm(xf, xf.shape[-1:], t["gamma"], t["beta"], attrs["epsilon"])
    if op == "LogIntSoftmax":
        xf = t["X"].float()
        return lambda: torch.softmax(xf, -1)
    if op == "LISMatMul":
        af, vf = t["A"].float(), t["V"].float()
        return lambda: torch.matmul(af, vf)
    if op == "Lookup":
        xf = t["X"].float()
        return lambda: torch.nn.functional.gelu(xf)
    if op == "QLinear":
        xf, wf = t["X"].float(), t["W"].float()
        return lambda: torch.matmul(xf, wf)
    if op == "ResidualAdd":
        af, bf = t["A"].float(), t["B"].float()
        return lambda: af * t["a_scale"] + bf * t["b_scale"]
    if op == "LISAttention":
        b, n, c3 = t["QKV"].shape
        heads = attrs["heads"]
        q, k, v = t["QKV"].float().reshape(b, n, 3, heads, c3 // (3 * heads)).permute(2, 0, 3, 1, 4)
        return lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v)
    if op != "Requantize":
        raise ValueError(f"bench_gpu: no float counterpart for {op}")
    af, ys = t["A"].float(), float(inputs["y_scale"])
    return lambda: torch.clamp(torch.round((af * t["multiplier"] + t["bias"]) / ys), 0, 255).to(torch.uint8)


def kernel_times(ops: Ops, gpu: bool, quick: bool) -> dict:
    """Every uint8 case of 400k elements or more: CUDA kernel, CPU kernel, torch float op, ms (median)."""
    rows = []
    dev = "cuda" if gpu else "cpu"
    timer = _cuda_ms if gpu else _cpu_ms
    for op in O.CASES:
        for name in O.params(op):
            case = O.build(op, name)
            numel = max(a.size for a in case.inputs.values())
            if numel < 400_000 or (quick and numel > 1_000_000):
                continue
            host, t = prepare(case.inputs, "cpu"), prepare(case.inputs, dev)
            row = {"op": op, "case": name, "elements": numel}
            if gpu:
                row["cuda_ms"] = round(_cuda_ms(lambda: call(ops, "cuda", op, t, case.inputs, case.attrs)), 4)
            row["cpu_ms"] = round(_cpu_ms(lambda: call(ops, "cpu", op, host, case.inputs, case.attrs),
                                          reps=2 if quick else 5), 4)
            row["torch_fp32_ms"] = round(timer(_float_op(op, t, case.inputs, case.attrs)), 4)
            rows.append(row)
    return {"rows": rows}


# --- 2: whole models, int8 vs FP32 vs FP16, with and without CUDA graphs ----------------------------------------------

class Bound:
    """A session with its input and output bound to buffers on ``device`` (io_binding): what CUDA graphs need, and
    for the plain sessions the same measurement without host copies."""

    def __init__(self, sess, x: np.ndarray, ort, device: str) -> None:
        self.sess = sess
        out = sess.get_outputs()[0]
        n_out = out.shape[-1] if isinstance(out.shape[-1], int) else None
        self.x = ort.OrtValue.ortvalue_from_numpy(x, device, 0)
        self.y = ort.OrtValue.ortvalue_from_shape_and_type([x.shape[0], n_out], np.float32, device, 0)
        self.io = sess.io_binding()
        self.io.bind_ortvalue_input(sess.get_inputs()[0].name, self.x)
        self.io.bind_ortvalue_output(out.name, self.y)

    def __call__(self) -> None:
        self.sess.run_with_iobinding(self.io)

    def logits(self) -> np.ndarray:
        """The bound output copied to the host (IOBinding's own device-to-host copy)."""
        return self.io.copy_outputs_to_cpu()[0]


def _timed(fn: Callable[[], None], inner: int, gpu: bool) -> float:
    """ms per call of ``inner`` back-to-back calls, the device drained before and after."""
    _sync(gpu)
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    _sync(gpu)
    return (time.perf_counter() - t0) * 1e3 / inner


def time_side_by_side(variants: dict[str, Bound], reps: int, min_rep_ms: float, gpu: bool) -> dict[str, dict]:
    """Interleaved repetitions (the order rotating each time); per variant the median and min ms per run."""
    inner = {k: max(1, round(min_rep_ms / max(_timed(b, 1, gpu), 1e-3))) for k, b in variants.items()}
    names = list(variants)
    times: dict[str, list[float]] = {k: [] for k in names}
    for rep in range(reps):
        for k in names[rep % len(names):] + names[:rep % len(names)]:
            times[k].append(_timed(variants[k], inner[k], gpu))
    return {k: {"ms": round(statistics.median(t), 4), "min_ms": round(min(t), 4), "inner": inner[k], "reps": reps}
            for k, t in times.items()}


def _session(path: Path, lib: Path | None, gpu: bool, cuda_graph: bool):
    """An onnxruntime session with the package's options (``session_options``: the library for the int8 model, QDQ
    fusions off) on the CUDA EP, CUDA graphs on request; the CPU EP in a dry run."""
    ort = onnxruntime_module(gpu)
    providers = ([(CUDA_EP, {"device_id": "0", **({"enable_cuda_graph": "1"} if cuda_graph else {})}), CPU_EP]
                 if gpu else [CPU_EP])
    return ort.InferenceSession(str(path), session_options(lib), providers=providers)


def _simplify() -> bool:
    """onnxsim where installed (the README's default export); the GPU machine's image may lack it."""
    import importlib.util
    return importlib.util.find_spec("onnxsim") is not None


def _export(name: str, workdir: Path, gpu: bool) -> tuple[dict[str, Path], np.ndarray, dict]:
    """Calibrate ``name`` (PTS, LIS, 4-bit attention) on 16 bundled photos and write its int8 (cuda target), FP32
    and, on a GPU, FP16 files; returns the paths, the photos preprocessed, and the build figures."""
    import onnx
    from fqvit_export.api import calibrate
    from fqvit_export.data import CALIB_SETS, eval_transform, image_dataset
    from fqvit_export.export.onnx_export import build_onnx, float_onnx
    from fqvit_export.models.registry import ModelSpec
    from fqvit_export.quant.point import QuantConfig
    t0 = time.perf_counter()
    simplify = _simplify()
    torch.manual_seed(0)
    cal = calibrate(ModelSpec(name, random_init=name.startswith("deit")), QuantConfig(pts=True, lis=True, attn_bits=4),
                    calib_size=16, batch_size=16, progress=False)
    paths = {"fqvit_int8": workdir / f"{name}_cuda.onnx", "fp32": workdir / f"{name}_fp32.onnx"}
    onnx.save(build_onnx(cal, simplify=simplify, device="cuda")[0], paths["fqvit_int8"])
    fp32 = float_onnx(cal, simplify=simplify)
    onnx.save(fp32, paths["fp32"])
    if gpu:
        from onnxruntime.transformers.float16 import convert_float_to_float16
        paths["fp16"] = workdir / f"{name}_fp16.onnx"
        onnx.save(convert_float_to_float16(fp32, keep_io_types=True), paths["fp16"])
    del fp32
    ds = image_dataset(CALIB_SETS["imagenet-sample"], eval_transform(cal.data_cfg))
    photos = np.stack([ds[i][0].numpy() for i in range(16)]).astype(np.float32)
    info = {"build_s": round(time.perf_counter() - t0, 1), "simplified": simplify,
            "size_mb": {k: round(p.stat().st_size / 2**20, 1) for k, p in paths.items()}}
    return paths, photos, info


def model_times(lib: Path, gpu: bool, quick: bool, workdir: Path, names: tuple[str, ...],
                batches: tuple[int, ...]) -> dict:
    """int8 (cuda target) vs FP32 vs FP16 per model and batch, with and without CUDA graphs (GPU only)."""
    ort = onnxruntime_module(gpu)
    reps = 3 if quick else 7
    rows, models = [], {}
    for name in names:
        paths, photos, models[name] = _export(name, workdir, gpu)
        print(f"  {name}: calibrated and exported in {models[name]['build_s']} s", flush=True)
        plain = {k: _session(p, lib if k == "fqvit_int8" else None, gpu, False) for k, p in paths.items()}
        for batch in batches:
            x = np.ascontiguousarray(np.concatenate([photos] * -(-batch // len(photos)))[:batch])
            variants: dict[str, Bound] = {}
            row: dict = {"model": name, "batch": batch, "graph_errors": {}}
            for kind, path in paths.items():
                variants[kind] = Bound(plain[kind], x, ort, "cuda" if gpu else "cpu")
                if not gpu:
                    continue
                try:
                    g = Bound(_session(path, lib if kind == "fqvit_int8" else None, gpu, True), x, ort, "cuda")
                    for _ in range(3):  # onnxruntime captures the graph within the first runs
                        g()
                    variants[kind + "+graph"] = g
                except Exception as e:  # noqa: BLE001 - reported, not fatal
                    row["graph_errors"][kind] = f"{type(e).__name__}: {e}"[:400]
            for b in variants.values():
                b()
            if "fqvit_int8+graph" in variants:
                row["int8_graph_logits_identical"] = bool(np.array_equal(variants["fqvit_int8+graph"].logits(),
                                                                         variants["fqvit_int8"].logits()))
            if "fp16" in variants:
                row["fp16_vs_fp32_max_abs_logit_diff"] = float(np.abs(variants["fp16"].logits()
                                                                      - variants["fp32"].logits()).max())
            timed = time_side_by_side(variants, reps, min_rep_ms=100.0 if gpu else 10.0, gpu=gpu)
            for m in timed.values():
                m["x_fp32"] = round(m["ms"] / timed["fp32"]["ms"], 3)
                if "fp32+graph" in timed:
                    m["x_fp32_graph"] = round(m["ms"] / timed["fp32+graph"]["ms"], 3)
            row["variants"] = timed
            rows.append(row)
            print("  " + _model_line(row), flush=True)
            del variants
        del plain
        for p in paths.values():
            p.unlink(missing_ok=True)
    return {"rows": rows, "models": models}


def _model_line(row: dict) -> str:
    v = row["variants"]

    def cell(k: str) -> str:
        return f"{v[k]['ms']:.2f}" if k in v else "-"
    return (f"{row['model']} b{row['batch']}: int8 {cell('fqvit_int8')} / graph {cell('fqvit_int8+graph')} ms, "
            f"fp32 {cell('fp32')} / {cell('fp32+graph')}, fp16 {cell('fp16')} / {cell('fp16+graph')}")


# --- 3: kernel bandwidth ----------------------------------------------------------------------------------------------

def bandwidth(ops: Ops, gpu: bool, batch: int = 64, reps: int = 50) -> dict:
    """Each kernel at deit_base shapes for ``batch``, (bytes read + written) / time against a device copy (on the
    CPU in a dry run: a test of this code, no GPU figure)."""
    dev = "cuda" if gpu else "cpu"
    timer = _cuda_ms if gpu else _cpu_ms
    g = torch.Generator(device=dev).manual_seed(0)
    buf = torch.zeros(2**30 if gpu else 2**26, dtype=torch.uint8, device=dev)
    dst = torch.empty_like(buf)
    copy_ms = timer(lambda: dst.copy_(buf), reps=min(reps, 20))
    copy = {"bytes": 2 * buf.numel(), "ms": round(copy_ms, 4), "GB_per_s": round(2 * buf.numel() / copy_ms / 1e6, 1)}
    del buf, dst
    code_types = [torch.uint8] + ([torch.int8] if ops.lib.int8_entries((dev,)) else [])
    rows = []

    def codes(shape: tuple[int, ...], dtype: torch.dtype, hi: int = 256) -> torch.Tensor:
        t = torch.randint(0, hi, shape, device=dev, generator=g, dtype=torch.int32)
        return (t - (128 if dtype == torch.int8 else 0)).to(dtype)

    tokens, c, heads, hidden = 197, 768, 12, 3072
    for ct in code_types:
        zp = 0 if ct == torch.int8 else 128
        x = codes((batch, tokens, c), ct)
        alpha = codes((c,), torch.uint8, 4)
        gamma, beta = torch.randn(c, device=dev, generator=g), torch.randn(c, device=dev, generator=g)
        cases = [("PTSLayerNorm", x.shape, 2 * x.numel() + 9 * c,
                  lambda: ops.pts_layernorm(dev, x, 0.02, zp, alpha, gamma, beta, 0.05, zp, 1e-6))]
        s = codes((batch, heads, tokens, tokens), ct)
        cases.append(("LogIntSoftmax", s.shape, 2 * s.numel(),
                      lambda: ops.log_int_softmax(dev, s, None, R.lis_multiplier(0.05), 4)))
        a = codes((batch, heads, tokens, tokens), torch.uint8, 16)
        v = codes((batch, heads, tokens, 64), ct)
        cases.append(("LISMatMul", (*a.shape, 64), a.numel() + 2 * v.numel(),
                      lambda: ops.lis_matmul(dev, a, v, 0.04, zp, 0.02, zp, 4)))
        h = codes((batch, tokens, hidden), ct)
        table = codes((256,), ct)
        cases.append(("Lookup", h.shape, 2 * h.numel() + 256, lambda: ops.lookup(dev, h, table)))
        acc = torch.randint(-2**20, 2**20, (batch, tokens, hidden), device=dev, generator=g, dtype=torch.int32)
        m = torch.rand(hidden, device=dev, generator=g) * 1e-5
        b = torch.randn(hidden, device=dev, generator=g)
        cases.append(("Requantize", acc.shape, 5 * acc.numel() + 8 * hidden,
                      lambda: ops.requantize(dev, acc, m, b, 0.03, zp, ct)))
        for op, shape, nbytes, fn in cases:
            ms = timer(fn, reps)
            gbs = nbytes / ms / 1e6
            rows.append({"op": op, "shape": list(shape), "code_type": str(ct).removeprefix("torch."),
                         "ms": round(ms, 4), "bytes": nbytes, "GB_per_s": round(gbs, 1),
                         "pct_of_copy": round(100 * gbs / copy["GB_per_s"], 1)})
        del x, s, a, v, h, acc
    return {"batch": batch, "copy": copy, "rows": rows}


# --- the summary ------------------------------------------------------------------------------------------------------

def _show_kernels(k: dict) -> None:
    print(f"  {'case (uint8)':<40} {'cuda ms':>9} {'cpu ms':>9} {'torch fp32':>10}")
    for r in k["rows"]:
        cuda = f"{r['cuda_ms']:>9.3f}" if "cuda_ms" in r else f"{'-':>9}"
        print(f"  {r['op'] + ' ' + r['case']:<40.40} {cuda} {r['cpu_ms']:>9.3f} {r['torch_fp32_ms']:>10.3f}")


def _show_models(t: dict) -> None:
    kinds = ("fqvit_int8", "fqvit_int8+graph", "fp32", "fp32+graph", "fp16", "fp16+graph")
    heads = "".join(f"{k.replace('fqvit_', '').replace('+graph', '+g'):>9}" for k in kinds)
    print(f"  {'model':<12} {'batch':>5}{heads}{'int8/fp32':>13}{'int8/fp16':>13}")
    for r in t["rows"]:
        v = r["variants"]

        def ratio(a: str, b: str) -> str:
            return f"{v[a]['ms'] / v[b]['ms']:.2f}" if a in v and b in v else "-"
        cells = "".join(f"{v[k]['ms']:>9.2f}" if k in v else f"{'n/a':>9}" for k in kinds)
        ratios = "".join(f"{ratio('fqvit_int8', f) + ' | ' + ratio('fqvit_int8+graph', f + '+graph'):>13}"
                         for f in ("fp32", "fp16"))
        print(f"  {r['model']:<12} {r['batch']:>5}{cells}{ratios}")
    for r in t["rows"]:
        for kind, e in list(r["graph_errors"].items())[:2]:
            print(f"  no CUDA graph for {r['model']} {kind}: {e[:150]}")


def _show_bandwidth(b: dict) -> None:
    print(f"  device-to-device copy {b['copy']['GB_per_s']:.0f} GB/s")
    for r in b["rows"]:
        print(f"  {r['op']:<14} {r['code_type']:<6} {'x'.join(map(str, r['shape'])):<18} {r['ms']:>8.3f} ms "
              f"{r['GB_per_s']:>8.1f} GB/s {r['pct_of_copy']:>6.1f}% of copy")


_SHOW = {"kernels": ("kernels: ms per call, median", _show_kernels),
         "models": ("models, io_binding: median ms per batch ('+g': under a CUDA graph); ratios int8 / float, plain "
                    "| +g", _show_models),
         "bandwidth": ("kernel bandwidth (bytes read + written / time)", _show_bandwidth)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lib", type=Path, help="libfqvit_ops_cuda.so to time (default: the one the package finds)")
    parser.add_argument("--quick", action="store_true", help="fewer cases and repetitions")
    parser.add_argument("--cpu-only", action="store_true", help="dry run of this code on the CPU (no GPU figure)")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--out", type=Path, help="JSON (default bench/results/gpu.json; --cpu-only: "
                                                 "build/bench/gpu_dry_run.json)")
    args = parser.parse_args(argv)
    gpu = not args.cpu_only
    if gpu and not torch.cuda.is_available():
        print("bench_gpu: torch sees no CUDA device (use --cpu-only for a dry run)", file=sys.stderr)
        return 2
    if gpu and CUDA_EP not in onnxruntime_module(True).get_available_providers():
        print("bench_gpu: onnxruntime has no CUDAExecutionProvider: install onnxruntime-gpu (README, GPU)",
              file=sys.stderr)
        return 2
    path = args.lib or custom_ops_library(cuda=True)
    if path is None or not Path(path).is_file():
        print("bench_gpu: libfqvit_ops_cuda.so not found (tools/build_custom_ops.sh, or --lib)", file=sys.stderr)
        return 2
    lib = KernelLibrary(path)
    ops = Ops(lib)
    env = environment(gpu, lib)
    print(f"library {path}; device {env.get('device')}; onnxruntime {env.get('onnxruntime')}", flush=True)
    results: dict[str, dict] = {}
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench_gpu_") as tmp:
        runs: dict[str, Callable[[], dict]] = {
            "kernels": lambda: kernel_times(ops, gpu, args.quick),
            "models": lambda: model_times(Path(path), gpu, args.quick, Path(tmp),
                                          ("deit_small", "deit_base") if gpu else ("cifar10_vit",),
                                          (1, 8, 64) if gpu else (1, 4)),
            "bandwidth": lambda: bandwidth(ops, gpu, batch=64 if gpu else 1,
                                           reps=(10 if args.quick else 50) if gpu else 3),
        }
        for name in args.sections:
            print(f"\n--- {name} ---", flush=True)
            t0 = time.perf_counter()
            results[name] = runs[name]()
            seconds[name] = round(time.perf_counter() - t0, 1)
    print(f"\n==== bench_gpu: {env.get('device')}, torch {env['torch']}, onnxruntime {env.get('onnxruntime')} ====")
    for name, result in results.items():
        title, show = _SHOW[name]
        print(f"\n{title}")
        show(result)
    print("\nsection seconds: " + ", ".join(f"{k} {v}" for k, v in seconds.items()))
    out = args.out or (ROOT / "bench" / "results" / "gpu.json" if gpu
                       else ROOT / "build" / "bench" / "gpu_dry_run.json")
    write_json(out, {"description": "bench/bench_gpu.py: com.fqvit CUDA kernels and cuda-target models, timings "
                                    "(checks: tools/gpu_check.py)",
                     "command": "python bench/bench_gpu.py " + " ".join(sys.argv[1:] if argv is None else argv),
                     "dry_run": not gpu, "environment": env, "sections": results, "seconds": seconds})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
