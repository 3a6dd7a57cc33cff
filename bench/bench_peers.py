"""CPU speed against the peers: onnxruntime FP32 and int8, OpenVINO FP32 and NNCF INT8, fqvit-export with its library.

For each model (``--models``, default deit_small deit_base, full depth) and batch size (``--batches``, default 1 and 8),
five engines run the same network with ``--threads`` (2) threads:

* ``ort_fp32``: onnxruntime on the FP32 ONNX (``float_onnx``: the same graph builder as the fqvit model), as
  ``bench_models.py`` runs it;
* ``ort_int8``: onnxruntime's ``quantize_static`` of that FP32 model (QDQ, per-channel s8 weights, u8 activations,
  MinMax), the route of ``bench_models.py``, calibrated on ``--calib-size`` real images from ``--data-dir``;
* ``ov_fp32``: OpenVINO on the same FP32 ONNX at the CPU plugin's default precision (bf16 where the CPU has AMX /
  AVX512_BF16; the JSON records what the plugin chose);
* ``ov_int8``: NNCF's post-training INT8 quantization of that OpenVINO model (``nncf.quantize``,
  ``ModelType.TRANSFORMER``) on the same real images as ``ort_int8``;
* ``fqvit_lib``: fqvit-export's integer model (minmax + PTS + LIS, 8/8/4), calibrated on the bundled ImageNet photos,
  with the ``com.fqvit`` kernel library, in the session ``bench_models.py`` uses.

Every model has random weights (timm's init, ``--random-init``): the numbers measure speed only, not accuracy; all
calibrations use real images so that the activation ranges are those of photos. Inputs are ``--data-dir`` photos
preprocessed with the model's timm data config.

OpenVINO gets its best case: each batch size is compiled for a static input shape, with ``INFERENCE_NUM_THREADS`` =
``--threads`` and each performance hint. ``LATENCY`` runs one synchronous request on the whole batch; ``THROUGHPUT``
splits the batch evenly over the plugin's optimal number of requests (its streams) and runs them concurrently, as
that hint is meant to be used (a batch of 1 stays one request). Both hints are timed; an engine's figure is the
faster hint's, and the JSON names it. onnxruntime sessions run with ``bench_models.SPINNING`` as in
``bench_models.py``; OpenVINO keeps its defaults (thread pinning included).

Timing is ``bench_models.time_variants``: the engines (both hints of each OpenVINO engine counted apart) take turns in
an order that rotates each of ``--reps`` repetitions; each figure is the median ms per batch. Ratios are to
``ort_fp32`` and to ``ov_int8`` (< 1: faster); fqvit's is also taken within each repetition (``paired_ratio_ov_int8``:
its quartiles, shown in the table's last column, and how many repetitions fqvit won), which shows how far the
machine's noise reaches. The models are built once and cached under ``build/bench/peers/``
(keyed on model, image counts, data folder and package versions; ``--rebuild`` forces a rebuild). The JSON (``--out``,
default bench/results/peers.json) is rewritten after each model. OpenVINO and NNCF are bench-only extras
(``pip install -e ".[bench]"``), never runtime dependencies. The README table comes from (on a 2-core machine shared
with other work, hence ``nice``):

    nice -n 15 .venv/bin/python bench/bench_peers.py [--models deit_small deit_base] [--batches 1 8] [--reps 15] \\
        [--threads 2] [--calib-size 300] [--data-dir ../shared/data/imagenet-sample] [--out bench/results/peers.json]

``--quick`` is a smoke test: deit_tiny, batches 1 and 2, 3 repetitions, 8 calibration images, JSON to
build/bench/peers_quick.json.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import platform
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

import bench_models as bm  # beside this script: run as python bench/bench_peers.py
import readme_tables
from fqvit_export import __version__ as FQVIT_VERSION
from fqvit_export.api import calibrate
from fqvit_export.data import CALIB_SETS, calibration_batches, folder_digest, image_dataset
from fqvit_export.deploy.library import custom_ops_library
from fqvit_export.export.onnx_export import export_onnx, float_onnx
from fqvit_export.models.registry import ModelSpec

ROOT = Path(__file__).resolve().parents[1]

ENGINES = ("ort_fp32", "ort_int8", "ov_fp32", "ov_int8", "fqvit_lib")
LABELS = {"ort_fp32": "ORT FP32", "ort_int8": "ORT int8 (QDQ)", "ov_fp32": "OpenVINO FP32 (default precision)",
          "ov_int8": "OpenVINO NNCF INT8", "fqvit_lib": "fqvit + lib"}
HINTS = ("LATENCY", "THROUGHPUT")
PACKAGES = ("onnxruntime", "openvino", "nncf", "torch", "timm", "onnx", "numpy")
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "imagenet-sample"
CACHE = ROOT / "build" / "bench" / "peers"
FULL = {"models": ["deit_small", "deit_base"], "batches": [1, 8], "reps": 15, "calib_size": 300, "min_rep_s": 0.3,
        "out": ROOT / "bench" / "results" / "peers.json"}
QUICK = {"models": ["deit_tiny"], "batches": [1, 2], "reps": 3, "calib_size": 8, "min_rep_s": 0.05,
         "out": ROOT / "build" / "bench" / "peers_quick.json"}
# --------------------------------------------------------------------------------------------------- machine ----
def _missing_extra() -> list[str]:
    return [m for m in ("openvino", "nncf") if importlib.util.find_spec(m) is None]


def versions() -> dict[str, str]:
    out = {"fqvit-export": FQVIT_VERSION}
    for pkg in PACKAGES:
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def machine_info() -> dict:
    """``bench_models.cpu_info`` plus the two ISA extensions an int8 / bf16 CPU engine cares most about, and what
    OpenVINO's CPU plugin reports it can use."""
    import openvino as ov
    cpu = bm.cpu_info()
    core = ov.Core()
    cpu["avx512_vnni"] = "avx512_vnni" in cpu["flags"]
    cpu["amx"] = any(f.startswith("amx_") for f in cpu["flags"])
    precision = core.get_property("CPU", "INFERENCE_PRECISION_HINT")
    cpu["openvino"] = {"device": core.get_property("CPU", "FULL_DEVICE_NAME"),
                       "optimization_capabilities": list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")),
                       "default_inference_precision": precision.get_type_name()}
    return cpu


# ----------------------------------------------------------------------------------------------------- models ----
def _images(root: Path, data_cfg: dict, size: int, seed: int = 0) -> np.ndarray:
    """``size`` photos (seeded draw) through the model's eval transform, float32 NCHW."""
    batches = calibration_batches(root, data_cfg, size, batch_size=max(1, size), seed=seed)
    return np.concatenate([b.numpy() for b in batches]).astype(np.float32)


class _Collect(logging.Handler):
    """Keeps the WARNING and higher records of a logger (NNCF's go to the log, not to ``warnings``)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.levelname}: {record.getMessage()}")


def _nncf_quantize(fp32: Path, out: Path, images: np.ndarray) -> dict:
    """NNCF INT8 of the OpenVINO model read from the FP32 ONNX, saved as IR; NNCF's warnings are kept."""
    import nncf
    import openvino as ov
    model = ov.Core().read_model(str(fp32))
    data = nncf.Dataset([images[i:i + 1] for i in range(len(images))])
    logged = _Collect()
    logging.getLogger("nncf").addHandler(logged)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            q = nncf.quantize(model, data, model_type=nncf.ModelType.TRANSFORMER, subset_size=len(images))
    finally:
        logging.getLogger("nncf").removeHandler(logged)
    ov.save_model(q, str(out), compress_to_fp16=False)
    return {"api": "nncf.quantize", "model_type": "TRANSFORMER", "preset": "default (MIXED for TRANSFORMER)",
            "subset_size": len(images), "calibration_images": len(images),
            "warnings": sorted({f"{w.category.__name__}: {w.message}" for w in caught} | set(logged.messages))}


def _sources_digest() -> str:
    """sha256 of the fqvit_export package's Python sources (names and contents), 12 hex digits."""
    h = hashlib.sha256()
    package = ROOT / "fqvit_export"
    for path in sorted(package.rglob("*.py")):
        h.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:12]


def _fqvit_model(name: str, path: Path, args: argparse.Namespace):
    """Calibrate ``name`` (random weights, seed 0) on the bundled photos and export it to ``path``; returns the
    calibration, the export record and the seconds taken."""
    t0 = time.perf_counter()
    print(f"{name}: fqvit calibration (random weights, bundled ImageNet photos) and export ...", flush=True)
    torch.manual_seed(0)
    cal = calibrate(ModelSpec(name, random_init=True), bm.QUANT_CONFIG, calib_size=args.calib_size, progress=False)
    exported = export_onnx(cal, path, force=True)
    return cal, exported, round(time.perf_counter() - t0, 1)


def build_models(name: str, args: argparse.Namespace) -> dict:
    """The four model files of ``name`` (FP32 ONNX, ORT int8, NNCF IR, fqvit), cached; returns the build record."""
    data_digest = folder_digest(image_dataset(args.data_dir, None))
    key = {"model": name, "calib_size": args.calib_size, "data": data_digest, "quant": bm.QUANT_CONFIG.label(),
           "versions": versions()}
    folder = CACHE / f"{name}-{hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]}"
    record_path = folder / "build.json"
    # The fqvit model is named after the exporter's sources: one from an older exporter would time old work, while
    # the peers' files (FP32, ORT int8, NNCF) depend on the model and the photos only and stay cached.
    fqvit_file = f"fqvit-{_sources_digest()}.onnx"
    if record_path.is_file() and not args.rebuild:
        record = json.loads(record_path.read_text())
        peers = [f for k, f in record["files"].items() if k != "fqvit"]
        if all((folder / f).is_file() for f in peers):
            if not (folder / fqvit_file).is_file():
                for old in folder.glob("fqvit*.onnx"):  # the models of older exporters
                    old.unlink()
                _, exported, seconds = _fqvit_model(name, folder / fqvit_file, args)
                record["fqvit"]["nodes"], record["build_s"]["fqvit_s"] = exported.ops, seconds
                record["size_mb"]["fqvit"] = round((folder / fqvit_file).stat().st_size / 2**20, 1)
            record["files"]["fqvit"] = fqvit_file
            bm.write_json(record_path, record)
            print(f"{name}: cached models in {folder.relative_to(ROOT)} ({fqvit_file})", flush=True)
            return {**record, "folder": folder, "cached": True}
    folder.mkdir(parents=True, exist_ok=True)
    files = {"fp32": "fp32.onnx", "ort_int8": "ort_int8.onnx", "ov_int8": "nncf_int8.xml", "fqvit": fqvit_file}
    steps = {}
    cal, exported, steps["fqvit_s"] = _fqvit_model(name, folder / files["fqvit"], args)
    onnx.save(float_onnx(cal), folder / files["fp32"])
    images = _images(args.data_dir, cal.data_cfg, args.calib_size)
    t0 = time.perf_counter()
    print(f"{name}: onnxruntime quantize_static on {len(images)} photos ...", flush=True)
    ort_info = bm.ort_quantize(folder / files["fp32"], folder / files["ort_int8"], images)
    steps["ort_int8_s"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    print(f"{name}: NNCF INT8 on {len(images)} photos ...", flush=True)
    nncf_info = _nncf_quantize(folder / files["fp32"], folder / files["ov_int8"], images)
    steps["ov_int8_s"] = round(time.perf_counter() - t0, 1)
    record = {"key": key, "files": files, "data_cfg": cal.data_cfg, "build_s": steps,
              "fqvit": {"quant": cal.config.label(), "calibration": {k: cal.calib_info[k] for k in ("set", "images")},
                        "nodes": exported.ops},
              "ort_int8": ort_info, "ov_int8": nncf_info,
              "size_mb": {k: round(sum(p.stat().st_size for p in folder.glob(Path(f).stem + ".*")) / 2**20, 1)
                          for k, f in files.items()}}
    bm.write_json(record_path, record)
    return {**record, "folder": folder, "cached": False}


# ---------------------------------------------------------------------------------------------------- engines ----
class _OVRunner:
    """An OpenVINO compiled model behind ``InferenceSession.run``'s signature (what ``time_variants`` calls): the
    batch goes whole to one request, or split evenly over concurrent requests."""

    def __init__(self, compiled, requests: int) -> None:
        self.requests = [compiled.create_infer_request() for _ in range(requests)]

    def run(self, _outputs, feeds: dict) -> None:
        x = feeds["input"]
        if len(self.requests) == 1:
            self.requests[0].infer({0: x}, share_inputs=True)
            return
        parts = np.split(x, len(self.requests))  # contiguous views along the batch axis
        for req, part in zip(self.requests, parts):
            req.start_async({0: part}, share_inputs=True)
        for req in self.requests:
            req.wait()


def _ov_compile(core, path: Path, shape: list[int], hint: str, threads: int):
    model = core.read_model(str(path))
    model.reshape(shape)
    return core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": hint})


def ov_runner(core, path: Path, chw: list[int], batch: int, hint: str, threads: int) -> tuple[_OVRunner, dict]:
    """Compile for a static batch; under THROUGHPUT, recompile for ``batch / requests`` when the plugin wants several
    requests and the batch splits evenly."""
    compiled = _ov_compile(core, path, [batch, *chw], hint, threads)
    requests = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")) if hint == "THROUGHPUT" else 1
    if requests > 1 and batch % requests == 0 and batch > 1:
        compiled = _ov_compile(core, path, [batch // requests, *chw], hint, threads)
    else:
        requests = 1
    info = {"requests": requests, "request_batch": batch // requests}
    for prop in ("NUM_STREAMS", "INFERENCE_NUM_THREADS", "INFERENCE_PRECISION_HINT", "ENABLE_CPU_PINNING"):
        value = compiled.get_property(prop)
        info[prop] = value.get_type_name() if hasattr(value, "get_type_name") else str(value)
    return _OVRunner(compiled, requests), info


def _timed_key(engine: str, hint: str | None = None) -> str:
    """``time_variants`` sets its inner count from the variant called ``fp32``: onnxruntime FP32 here."""
    return "fp32" if engine == "ort_fp32" else f"{engine}/{hint}" if hint else engine


def bench_model(name: str, args: argparse.Namespace, report: dict) -> None:
    import openvino as ov
    built = build_models(name, args)
    folder, files = built["folder"], built["files"]
    report["models"][name] = {k: v for k, v in built.items() if k not in ("folder", "key")}
    sessions = {_timed_key("ort_fp32"): bm.make_session(folder / files["fp32"], "fp32", args.threads),
                _timed_key("ort_int8"): bm.make_session(folder / files["ort_int8"], "ort_int8", args.threads),
                _timed_key("fqvit_lib"): bm.make_session(folder / files["fqvit"], "fqvit_lib", args.threads)}
    images = _images(args.data_dir, built["data_cfg"], max(args.batches), seed=1)
    core = ov.Core()
    for batch in args.batches:
        runners, ov_info = dict(sessions), {}
        for engine, file in (("ov_fp32", files["fp32"]), ("ov_int8", files["ov_int8"])):
            for hint in HINTS:
                runners[_timed_key(engine, hint)], ov_info[_timed_key(engine, hint)] = ov_runner(
                    core, folder / file, list(built["data_cfg"]["input_size"]), batch, hint, args.threads)
        x = bm.tile_batch(images, batch)
        load0 = bm.load_avg()
        timed = bm.time_variants(runners, x, args.reps, args.min_rep_s, warmup=2)
        engines = {}
        for engine in ENGINES:
            if engine.startswith("ov_"):
                by_hint = {h: timed[_timed_key(engine, h)] for h in HINTS}
                hint = min(HINTS, key=lambda h: by_hint[h]["ms"])
                engines[engine] = {**by_hint[hint], "hint": hint,
                                   "ms_by_hint": {h: m["ms"] for h, m in by_hint.items()},
                                   "openvino": {h: ov_info[_timed_key(engine, h)] for h in HINTS}}
            else:
                engines[engine] = dict(timed[_timed_key(engine)])
        for m in engines.values():
            m["ratio_ort_fp32"] = round(m["ms"] / engines["ort_fp32"]["ms"], 3)
            m["ratio_ov_int8"] = round(m["ms"] / engines["ov_int8"]["ms"], 3)
        engines["fqvit_lib"]["paired_ratio_ov_int8"] = paired_ratios(engines["fqvit_lib"]["rep_ms"],
                                                                     engines["ov_int8"]["rep_ms"])
        row = {"model": name, "batch": batch, "engines": engines, "load_avg_1min": [load0, bm.load_avg()]}
        report["results"].append(row)
        print(markdown_table([row]).splitlines()[-1], flush=True)
        del runners


# ----------------------------------------------------------------------------------------------------- report ----
def paired_ratios(a_ms: list[float], b_ms: list[float]) -> dict:
    """The ratios a / b of one repetition at a time (both engines timed within it, so a slow spell of the machine
    moves both): their quartiles, extremes, and in how many repetitions a was the faster."""
    r = sorted(x / y for x, y in zip(a_ms, b_ms))
    q1, median, q3 = np.quantile(r, [0.25, 0.5, 0.75])
    return {"median": round(float(median), 3), "q1": round(float(q1), 3), "q3": round(float(q3), 3),
            "min": round(r[0], 3), "max": round(r[-1], 3), "faster": sum(x < 1 for x in r), "reps": len(r)}


def markdown_table(results: list[dict]) -> str:
    """The README's table (readme_tables.peers_table) of these results."""
    return readme_tables.peers_table(LABELS, results)


# ------------------------------------------------------------------------------------------------------- main ----
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", help=f"default: {' '.join(FULL['models'])}")
    p.add_argument("--batches", nargs="+", type=int, help="default: 1 8")
    p.add_argument("--reps", type=int, help=f"interleaved repetitions per engine (median reported; {FULL['reps']})")
    p.add_argument("--min-rep-s", type=float, help="target length of one ORT FP32 repetition (sets inner; 0.3)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--calib-size", type=int,
                   help="calibration images for quantize_static, NNCF and fqvit (300; the bundled set has 250)")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA,
                   help="photos for NNCF / quantize_static calibration and the inputs (default: ../shared/data/"
                        "imagenet-sample, else the bundled 250 ImageNet photos)")
    p.add_argument("--out", type=Path, help="JSON (default bench/results/peers.json)")
    p.add_argument("--rebuild", action="store_true", help="rebuild the cached models under build/bench/peers")
    p.add_argument("--quick", action="store_true", help="smoke test: deit_tiny, batches 1 2, 3 reps, 8 images")
    args = p.parse_args(argv)
    for k, v in (QUICK if args.quick else FULL).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if not args.data_dir.is_dir() and args.data_dir == DEFAULT_DATA:
        args.data_dir = CALIB_SETS["imagenet-sample"]
    return args


def main(argv: list[str] | None = None) -> int:
    missing = _missing_extra()
    if missing:
        print(f"bench_peers: {' and '.join(missing)} not installed; run pip install -e \".[bench]\"", file=sys.stderr)
        return 1
    args = parse_args(argv)
    if custom_ops_library() is None:
        print("bench_peers: the com.fqvit library is not built; run tools/build_custom_ops.sh", file=sys.stderr)
        return 1
    cpu = machine_info()
    print(f"CPU {cpu['model_name']} ({cpu['cpus']} CPUs), flags: {' '.join(cpu['flags'])}; "
          f"avx512_vnni: {'yes' if cpu['avx512_vnni'] else 'no'}, AMX: {'yes' if cpu['amx'] else 'no'}; OpenVINO "
          f"default precision {cpu['openvino']['default_inference_precision']}", flush=True)
    print(f"data: {args.data_dir}", flush=True)
    report = {
        "description": "median ms per batch over interleaved repetitions; ratio_ort_fp32 = engine ms / ORT FP32 ms, "
                       "ratio_ov_int8 = engine ms / OpenVINO NNCF INT8 ms (< 1: faster); paired_ratio_ov_int8: "
                       "fqvit's ms / NNCF INT8's (its reported hint) within each repetition, quartiles and the "
                       "repetitions where fqvit was faster",
        "weights": "random init for every engine (no pretrained weights): speed only, accuracy not measured; "
                   "calibrations on real photos (fqvit: the bundled ImageNet photos; quantize_static and NNCF: "
                   "--data-dir)",
        "openvino_settings": "static input shape per batch, INFERENCE_NUM_THREADS = threads, default precision; both "
                             "performance hints timed (THROUGHPUT splits the batch over the plugin's optimal number "
                             "of concurrent requests), the faster reported as 'hint'",
        "command": "python bench/bench_peers.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "threads": args.threads, "reps": args.reps, "calib_size": args.calib_size, "data_dir": args.data_dir.name,
        "onnxruntime_session_config": bm.SPINNING, "machine": platform.machine(), "cpu": cpu, "versions": versions(),
        "library": custom_ops_library().name, "engines": {e: LABELS[e] for e in ENGINES}, "models": {},
        "results": []}
    for name in args.models:
        bench_model(name, args, report)
        bm.write_json(args.out, report)
    print(f"\n{markdown_table(report['results'])}\n\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
