"""Whole-model CPU speed: FP32 ONNX vs onnxruntime's own int8 quantization vs fqvit-export's integer model.

For each model (``--models``, default deit_tiny deit_small deit_base, full depth) and batch size (``--batches``, default
1 and 8), four variants of the same network run on onnxruntime's CPU execution provider with ``--threads`` (2) intra-op
threads:

* ``fp32``: ``float_onnx(cal)``, the FP32 graph from the same graph builder (LayerNormalization, Softmax, MatMul);
* ``ort_int8``: ``onnxruntime.quantization.quantize_static`` of that FP32 model after ``quant_pre_process``: QDQ
  format, per-channel QInt8 weights, QUInt8 activations, MinMax over the 4 images of tests/fixtures/imagenet
  preprocessed with the model's data config (its accuracy is not measured here);
* ``fqvit_lib``: fqvit-export's integer model (PTS + LIS, 8/8/4) with the ``com.fqvit`` kernel library registered;
* ``fqvit_fn``: the same file without the library: onnxruntime inlines the ops' ONNX function bodies.

The weights are random (timm's init; no pretrained weights are used): the numbers measure speed only. fqvit models
are calibrated on the same 4 fixture images. Sessions mirror ``fqvit_export.deploy.session.Session`` (the fqvit models keep
``session.disable_quant_qdq = 1``, as ``Session`` does) and all run with ``SPINNING``: onnxruntime's default spinning
pool, told to stop spinning when a run returns (``session.force_spinning_stop``, as ``Session`` does), so an idle
session's pool does not spin on the cores the next one needs. Repetitions are interleaved (the variants take
turns, the order rotating each repetition); each time is the median over ``--reps`` repetitions of ``inner``
back-to-back runs (``inner`` chosen so one repetition of FP32 lasts about ``--min-rep-s``). ``ratio`` = variant time /
FP32 time (< 1: faster than FP32). For ``--profile`` (default deit_small:8) the fqvit_lib, fp32 and ort_int8 models
are also run under onnxruntime's profiler: per-op-type node time and the share of the ``com.fqvit`` ops.

The JSON (``--out``, default bench/results/models.json) is rewritten after each model, so a partial run keeps its
results. The README table comes from (on a 2-core machine shared with other work, hence ``nice``):

    nice -n 15 .venv/bin/python bench/bench_models.py [--models deit_tiny deit_small deit_base] [--batches 1 8] \\
        [--reps 5] [--threads 2] [--profile deit_small:8] [--out bench/results/models.json]
"""
from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import CalibrationDataReader

from fqvit_export.deploy.library import custom_ops_library
from fqvit_export.api import Calibrated, calibrate
from fqvit_export.data import eval_transform, image_dataset
from fqvit_export.export.onnx_export import export_onnx, float_onnx
from fqvit_export.models.registry import ModelSpec
from fqvit_export.ops.spec import OPS
from fqvit_export.quant.point import QuantConfig

ROOT = Path(__file__).resolve().parents[1]

FIXTURES = ROOT / "tests" / "fixtures" / "imagenet"
_DATA = {"dir": FIXTURES}
"""Calibration images (``--data-dir``): the 4 fixture photos unless told otherwise."""
VARIANTS = ("fp32", "ort_int8", "fqvit_lib", "fqvit_fn")
LABELS = {"fp32": "FP32", "ort_int8": "ORT int8 (QDQ)", "fqvit_lib": "fqvit + lib", "fqvit_fn": "fqvit, functions"}
PROFILED = ("fqvit_lib", "fp32", "ort_int8")
FQVIT_OPS = tuple(OPS)  # every com.fqvit op
CPU_FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "avx512_bf16",
             "amx_tile", "amx_int8", "amx_bf16")
QUANT_CONFIG = QuantConfig(pts=True, lis=True, attn_bits=4)


# ---------------------------------------------------------------------------------------------------- machine ----
def cpu_info() -> dict:
    """``lscpu``'s model name and the SIMD flags that matter for int8 GEMMs (VNNI above all)."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    flags = set(fields.get("flags", "").split())
    return {"model_name": fields.get("model name", platform.processor()), "cpus": os.cpu_count(),
            "flags": [f for f in CPU_FLAGS if f in flags], "vnni": bool(flags & {"avx512_vnni", "avx_vnni"})}


def load_avg() -> float:
    return round(os.getloadavg()[0], 2)


# ----------------------------------------------------------------------------------------------------- models ----
def fixture_batch(cal: Calibrated) -> np.ndarray:
    """The fixture images through the model's eval transform, as one float32 NCHW array."""
    ds = image_dataset(_DATA["dir"], eval_transform(cal.data_cfg))
    return np.stack([ds[i][0].numpy() for i in range(len(ds))]).astype(np.float32)


def tile_batch(images: np.ndarray, batch: int) -> np.ndarray:
    reps = -(-batch // len(images))
    return np.ascontiguousarray(np.concatenate([images] * reps)[:batch])


class _Reader(CalibrationDataReader):
    """Feeds the calibration images one at a time to ``quantize_static``."""

    def __init__(self, input_name: str, images: np.ndarray) -> None:
        self._feeds = iter([{input_name: images[i:i + 1]} for i in range(len(images))])

    def get_next(self) -> dict | None:
        return next(self._feeds, None)


def ort_quantize(fp32_path: Path, out: Path, images: np.ndarray) -> dict:
    """onnxruntime's static QDQ quantization (per-channel s8 weights, u8 activations, MinMax) of the FP32 model."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quant_pre_process, quantize_static
    prep = out.with_name(out.stem + "_prep.onnx")
    try:
        quant_pre_process(str(fp32_path), str(prep))
        source, pre_processed = prep, True
    except Exception as e:  # noqa: BLE001 - shape inference / optimizer failures come as many types
        print(f"  quant_pre_process failed ({type(e).__name__}: {e}); quantizing the FP32 model as is", flush=True)
        source, pre_processed = fp32_path, False
    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # one "axis out of range" warning per 1-D weight (LayerNorm gamma)
    try:
        quantize_static(str(source), str(out), _Reader("input", images), quant_format=QuantFormat.QDQ,
                        per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                        calibrate_method=CalibrationMethod.MinMax)
    finally:
        logging.getLogger().setLevel(level)
    prep.unlink(missing_ok=True)
    return {"format": "QDQ", "per_channel": True, "weights": "QInt8", "activations": "QUInt8", "calibration": "MinMax",
            "calibration_images": len(images), "quant_pre_process": pre_processed}


def build_variants(name: str, workdir: Path) -> tuple[dict[str, Path], np.ndarray, dict]:
    """Calibrate (random weights), then write the FP32, ORT int8 and fqvit models; returns paths, images, info."""
    torch.manual_seed(0)
    t0 = time.perf_counter()
    cal = calibrate(ModelSpec(name, random_init=True), QUANT_CONFIG, calib_dir=_DATA["dir"], calib_size=4, batch_size=2,
                    progress=False)
    images = fixture_batch(cal)
    paths = {"fp32": workdir / f"{name}_fp32.onnx", "ort_int8": workdir / f"{name}_ort_int8.onnx",
             "fqvit": workdir / f"{name}_fqvit.onnx"}
    onnx.save(float_onnx(cal), paths["fp32"])
    exported = export_onnx(cal, paths["fqvit"], force=True)
    ort_info = ort_quantize(paths["fp32"], paths["ort_int8"], images)
    info = {"fqvit_quant": cal.config.label(), "ort_quant": ort_info, "build_s": round(time.perf_counter() - t0, 1),
            "size_mb": {k: round(p.stat().st_size / 2**20, 1) for k, p in paths.items()},
            "fqvit_nodes": exported.ops}
    return {"fp32": paths["fp32"], "ort_int8": paths["ort_int8"], "fqvit_lib": paths["fqvit"],
            "fqvit_fn": paths["fqvit"]}, images, info


# --------------------------------------------------------------------------------------------------- sessions ----
# Every onnxruntime session of the benches: the intra-op pool spins while a run lasts (onnxruntime's default, which
# saves the wake-up of a sleeping thread at each parallel section) and stops spinning when the run returns, so that
# sessions taking turns on the same cores do not steal each other's time.
SPINNING = {"session.intra_op.allow_spinning": "1", "session.force_spinning_stop": "1"}


def make_session(path: Path, variant: str, threads: int, profile_prefix: Path | None = None,
                 library: Path | None = None) -> ort.InferenceSession:
    """``fqvit_export.deploy.session.Session``'s options (``SPINNING`` among them) and one inter-op thread;
    ``library``: the kernel library of ``fqvit_lib`` (default: the installed one)."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    for key, value in SPINNING.items():
        so.add_session_config_entry(key, value)
    if variant.startswith("fqvit"):
        so.add_session_config_entry("session.disable_quant_qdq", "1")  # as Session does, for bit-exact residual adds
    if variant == "fqvit_lib":
        so.register_custom_ops_library(str(library or custom_ops_library()))
    if profile_prefix is not None:
        so.enable_profiling = True
        so.profile_file_prefix = str(profile_prefix)
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _run_once(sess: ort.InferenceSession, feeds: dict) -> float:
    t0 = time.perf_counter()
    sess.run(None, feeds)
    return time.perf_counter() - t0


def time_variants(sessions: dict[str, ort.InferenceSession], x: np.ndarray, reps: int, min_rep_s: float,
                  warmup: int = 1) -> dict[str, dict]:
    """Interleaved repetitions (order rotating); per variant the median and min time per run, in ms, and each
    repetition's (``rep_ms``, in order, so that two variants' times of one repetition can be paired). Python's garbage
    collector is off while they run."""
    feeds = {"input": x}
    for sess in sessions.values():
        for _ in range(warmup):
            _run_once(sess, feeds)
    inner = max(1, round(min_rep_s / _run_once(sessions["fp32"], feeds))) if "fp32" in sessions else 1
    names = list(sessions)
    times: dict[str, list[float]] = defaultdict(list)
    gc_was_enabled = gc.isenabled()
    gc.disable()  # as timeit does: no collection of the (torch-sized) heap inside a timed repetition
    try:
        for rep in range(reps):
            for name in names[rep % len(names):] + names[:rep % len(names)]:
                times[name].append(sum(_run_once(sessions[name], feeds) for _ in range(inner)) / inner)
    finally:
        if gc_was_enabled:
            gc.enable()
    return {n: {"ms": round(statistics.median(t) * 1e3, 3), "min_ms": round(min(t) * 1e3, 3), "inner": inner,
                "rep_ms": [round(v * 1e3, 3) for v in t]} for n, t in times.items()}


# -------------------------------------------------------------------------------------------------- profiling ----
def node_times(trace: Path, skip_runs: int = 0) -> tuple[dict[str, float], dict[str, dict]]:
    """Kernel time (us) of the ``Node`` events of an onnxruntime profile after its first ``skip_runs`` runs (its
    ``model_run`` events): per op type, and per node (with shapes)."""
    per_op: dict[str, float] = defaultdict(float)
    per_node: dict[str, dict] = {}
    events = json.loads(trace.read_text())
    starts = sorted(ev["ts"] for ev in events if ev.get("cat") == "Session" and ev.get("name") == "model_run")
    if len(starts) <= skip_runs:
        raise ValueError(f"{trace}: {len(starts)} runs profiled, cannot skip {skip_runs}")
    first = starts[skip_runs] if skip_runs else float("-inf")
    for ev in events:
        if ev.get("cat") == "Node" and ev.get("name", "").endswith("_kernel_time") and ev["ts"] >= first:
            a = ev.get("args", {})
            per_op[a.get("op_name", "?")] += ev["dur"]
            node = per_node.setdefault(ev["name"].removesuffix("_kernel_time"), {
                "op": a.get("op_name", "?"), "us": 0.0,
                "in": [next(iter(t.values())) for t in a.get("input_type_shape", [])][:1]})
            node["us"] += ev["dur"]
    return dict(per_op), per_node


PROFILE_WARMUP = 2
"""Runs before the profiled ones, left out of the profile: the first run of a session also packs QLinear's weights
and creates oneDNN's primitives (deit_small with the library, AMX Xeon: 108 ms at batch 8 against 58 ms for a later
run, 61 against 10 ms at batch 1, the excess counted as QLinear's node time)."""


def profile_variant(path: Path, variant: str, x: np.ndarray, threads: int, runs: int, workdir: Path) -> dict:
    """Per-op-type share of node time over ``runs`` runs after :data:`PROFILE_WARMUP` warm-up runs, top op types and
    the com.fqvit share."""
    sess = make_session(path, variant, threads, profile_prefix=workdir / f"profile_{variant}")
    for _ in range(PROFILE_WARMUP + runs):
        sess.run(None, {"input": x})
    trace = Path(sess.end_profiling())
    per_op, per_node = node_times(trace, skip_runs=PROFILE_WARMUP)
    trace.unlink(missing_ok=True)
    total = sum(per_op.values()) or 1.0
    top = sorted(per_op.items(), key=lambda kv: -kv[1])
    nodes = sorted(per_node.items(), key=lambda kv: -kv[1]["us"])[:5]
    return {"node_ms_per_run": round(total / 1e3 / runs, 2), "warmup_runs_left_out": PROFILE_WARMUP,
            "fqvit_share": round(sum(per_op.get(op, 0.0) for op in FQVIT_OPS) / total, 4),
            "fqvit_ops": {op: round(per_op.get(op, 0.0) / total, 4) for op in FQVIT_OPS if op in per_op},
            "top_ops": [{"op": op, "share": round(us / total, 4), "ms_per_run": round(us / 1e3 / runs, 2)}
                        for op, us in top[:10]],
            "top_nodes": [{"node": n, "op": d["op"], "input_shape": d["in"][0] if d["in"] else None,
                           "ms_per_run": round(d["us"] / 1e3 / runs, 2)} for n, d in nodes]}


# ------------------------------------------------------------------------------------------------------ report ----
def write_json(out: Path, report: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    os.replace(tmp, out)


def markdown_table(results: list[dict]) -> str:
    head = "| model | batch | " + " | ".join(f"{LABELS[v]} ms (x FP32)" for v in VARIANTS) + " |"
    lines = [head, "|" + "---|" * (2 + len(VARIANTS))]
    for r in results:
        cells = []
        for v in VARIANTS:
            m = r["variants"].get(v)
            cells.append("-" if m is None else f"{m['ms']:.1f}" + ("" if v == "fp32" else f" ({m['ratio']:.2f})"))
        lines.append(f"| {r['model']} | {r['batch']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def profile_summary(prof: dict) -> str:
    lines = []
    for variant, p in prof["variants"].items():
        top = ", ".join(f"{t['op']} {100 * t['share']:.0f}%" for t in p["top_ops"][:6])
        share = f"; com.fqvit ops {100 * p['fqvit_share']:.1f}%" if variant == "fqvit_lib" else ""
        lines.append(f"  {LABELS[variant]}: {p['node_ms_per_run']:.1f} ms node time/run{share}; top: {top}")
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------------------- main ----
def bench_model(name: str, args: argparse.Namespace, workdir: Path, report: dict) -> None:
    print(f"{name}: building the FP32, ORT int8 and fqvit models ...", flush=True)
    paths, images, info = build_variants(name, workdir)
    report["models"][name] = info
    sessions = {v: make_session(paths[v], v, args.threads) for v in VARIANTS}
    for batch in args.batches:
        x = tile_batch(images, batch)
        load0 = load_avg()
        timed = time_variants(sessions, x, args.reps, args.min_rep_s)
        fp32 = timed["fp32"]["ms"]
        for m in timed.values():
            m["ratio"] = round(m["ms"] / fp32, 3)
        row = {"model": name, "batch": batch, "variants": timed, "load_avg_1min": [load0, load_avg()]}
        report["results"].append(row)
        print(markdown_table([row]).splitlines()[-1], flush=True)
        if args.profile == f"{name}:{batch}":
            prof = {"model": name, "batch": batch, "runs": args.profile_runs, "variants": {
                v: profile_variant(paths[v], v, x, args.threads, args.profile_runs, workdir) for v in PROFILED}}
            report["profile"] = prof
            print(f"profile {name} batch {batch}:\n{profile_summary(prof)}", flush=True)
    del sessions
    for p in set(paths.values()):
        p.unlink(missing_ok=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["deit_tiny", "deit_small", "deit_base"])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    p.add_argument("--reps", type=int, default=5, help="interleaved repetitions per variant (median reported)")
    p.add_argument("--min-rep-s", type=float, default=0.3, help="target length of one FP32 repetition (sets inner)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--profile", default="deit_small:8", help="MODEL:BATCH to profile, or 'none'")
    p.add_argument("--profile-runs", type=int, default=3)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "models.json")
    p.add_argument("--data-dir", type=Path, default=FIXTURES,
                   help="calibration images (default: the 4 photos of tests/fixtures/imagenet)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _DATA["dir"] = args.data_dir
    if custom_ops_library() is None:
        print("bench_models: the com.fqvit library is not built; run tools/build_custom_ops.sh", file=sys.stderr)
        return 1
    cpu = cpu_info()
    print(f"CPU {cpu['model_name']} ({cpu['cpus']} CPUs), flags: {' '.join(cpu['flags'])}", flush=True)
    if not cpu["vnni"]:
        print("warning: no avx512_vnni / avx_vnni: int8 GEMMs run without VNNI on this CPU", flush=True)
    report = {
        "description": "median ms per batch over interleaved repetitions; ratio = variant ms / fp32 ms (< 1: faster)",
        "weights": "random init (no pretrained weights): speed only, accuracy not measured",
        "command": "python bench/bench_models.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "threads": args.threads, "reps": args.reps, "session_config": SPINNING, "onnxruntime": ort.__version__,
        "machine": platform.machine(), "cpu": cpu, "library": custom_ops_library().name,
        "variants": {v: LABELS[v] for v in VARIANTS}, "models": {}, "results": []}
    with tempfile.TemporaryDirectory(prefix="bench_models_") as tmp:
        for name in args.models:
            bench_model(name, args, Path(tmp), report)
            write_json(args.out, report)
    print(f"\n{markdown_table(report['results'])}\n")
    if "profile" in report:
        print(f"profile {report['profile']['model']} batch {report['profile']['batch']}:\n"
              f"{profile_summary(report['profile'])}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
