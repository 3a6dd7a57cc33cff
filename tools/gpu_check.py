"""The one prepared check of the com.fqvit CUDA path (issue #11) for a machine with an NVIDIA GPU, torch (CUDA) and
onnxruntime-gpu: kernels bit for bit, whole models bit for bit on the CUDA execution provider, and node placement,
in one run that prints one summary, writes one JSON and exits non-zero when any check fails.

Why one script: a GPU machine is lent rarely and briefly (minutes of device time), so everything that needs one is
prepared here, checked as far as a CPU allows (``--cpu-only``), and run there in a single command. Every check
compares bits (``np.array_equal`` / element counts), nothing is hard-coded. The speed figures (models against FP32
and FP16, CUDA graphs, kernel bandwidth) are measured apart, by ``bench/bench_gpu.py``: a check judges, a benchmark
only reports.

``main`` builds (or finds) the library, then runs :data:`PHASES` in order, each one a function of the :class:`Run`
that returns its rows and failures; one phase crashing is a failure of that phase, and the next still runs. Times on
one H200 and 16 CPU cores (estimated from the 2-core no-GPU machine, scaled by core count):

0. build (~40 s on 2 cores; 0 with ``--no-build`` / ``--lib``): ``tools/build_custom_ops.sh`` builds
   ``libfqvit_ops_cuda.so`` for sm_75/80/86/89/90 + PTX (needs cmake, ninja, nvcc and the onnxruntime headers in
   build/ort-headers/ or ``ORT_INCLUDE_DIR``: carry them to a machine without network).
1. kernels (~20 s): every case of :mod:`fqvit_export.testing.op_cases` through the plain C entry points
   (:mod:`fqvit_export.deploy.capi`, on torch tensors by :mod:`fqvit_export.testing.c_entries`): the CUDA kernel vs
   the single-threaded CPU kernel vs the PyTorch reference, each case in uint8 and, when the library exports the
   ``_i8`` entries, in its int8 form (``op_cases.as_code_type``); plus unaligned Lookup inputs and outputs.
2. models (~40 s; 90 s for 1,000 images on 2 cores): ``cifar10_vit`` and ``cifar10_swin`` (bundled weights), minmax
   8/8/8 and minmax+PTS+LIS 8/8/4, calibrated on 100 bundled images; both export targets from each calibration, each
   file's card naming its device. Logits on real CIFAR-10 test images (``../shared/data/cifar10/test`` if present,
   else ``tests/fixtures/cifar10_test``): the cuda-target model on the CUDA EP with the library, and on the CPU EP,
   must equal the cpu-target model's on the CPU EP, bit for bit. A static check of each cuda graph runs too
   (:func:`fqvit_export.testing.placement.static_cuda_check`), with the cpu graph as the control it must flag.
3. placement (~30 s): each cuda-target model in a child process (its stderr is onnxruntime's log): a CUDA-only session
   with ``session.disable_cpu_ep_fallback = 1`` must load; at verbose log level the log must report no Memcpy node
   and, where it lists the placement, only CUDAExecutionProvider; one profiled run must put every node on
   CUDAExecutionProvider. A cpu-target model with fallback allowed is the control (it should show Memcpy nodes).

Every session registers the library under test: ``main`` names it in ``FQVIT_CUSTOM_OPS_LIB``, which the package's
:class:`~fqvit_export.deploy.session.Session` and the placement children read. ``--out`` (default
``bench/results/gpu_check.json``; ``--cpu-only``: ``bench/results/gpu_check_dry_run.json``) gets the device, the
versions and every row. The package must be importable (``pip install -e .``, or ``PYTHONPATH=.`` from the
repository root):

    PYTHONPATH=/tmp/site:. python3 tools/gpu_check.py [--no-build] [--lib PATH] [--quick] [--out F]
    python tools/gpu_check.py --cpu-only --no-build [--quick]   # dry run without a GPU (phases 1 and 2 on the CPU)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

try:
    from fqvit_export.deploy.capi import KernelLibrary
except ModuleNotFoundError as e:  # a bare checkout: the script is not run from inside the package
    sys.exit(f"gpu_check: {e}; install the package (pip install -e .) or run from the repository root with "
             f"PYTHONPATH=.")
from fqvit_export.deploy.card import ModelCard
from fqvit_export.deploy.library import ENV_VAR, custom_ops_library
from fqvit_export.deploy.session import DeviceWarning, Session, session_options
from fqvit_export.testing import op_cases as O
from fqvit_export.testing.c_entries import Ops, call, prepare
from fqvit_export.testing.gpu import environment, onnxruntime_module, write_json
from fqvit_export.testing.placement import CPU_EP, CUDA_EP, read_log, read_profile, static_cuda_check

ROOT = Path(__file__).resolve().parents[1]
NO_GPU = "skipped: no GPU"
CHILD_MARK = "GPU_CHECK_CHILD "
"""Prefix of the one JSON line a placement child process prints on stdout."""


@dataclass
class Run:
    """What every phase reads: the library under test, the options, a scratch folder, and what earlier phases left
    for later ones (``models``: the files phase 2 exported, by (model, config) and target)."""
    lib_path: Path
    lib: KernelLibrary
    gpu: bool
    quick: bool
    images: int
    workdir: Path
    models: dict[tuple[str, str], dict[str, Path]] = field(default_factory=dict)

    @property
    def ops(self) -> Ops:
        return Ops(self.lib)


# --- 0: the library ---------------------------------------------------------------------------------------------------

def build(no_build: bool, lib: str | None) -> Path:
    """The CUDA library to check: ``--lib``, else a fresh build into fqvit_export/lib/ (unless ``--no-build``),
    else the one ``fqvit_export.deploy.library`` finds (the source tree's lib/ or an installed package's)."""
    if lib:
        return Path(lib).resolve()
    target = ROOT / "fqvit_export" / "lib" / "libfqvit_ops_cuda.so"
    if not no_build:
        print("building the CUDA variant (tools/build_custom_ops.sh) ...", flush=True)
        t0 = time.time()
        proc = subprocess.run(["bash", str(ROOT / "tools" / "build_custom_ops.sh")], capture_output=True, text=True)
        if proc.returncode != 0 or not target.is_file():
            print(proc.stdout[-4000:], proc.stderr[-4000:], sep="\n")
            if not target.is_file():
                sys.exit("gpu_check: the build failed and no libfqvit_ops_cuda.so exists")
            print(f"build failed; falling back to the existing {target}")
        else:
            print(f"built in {time.time() - t0:.0f} s", flush=True)
    if target.is_file():
        return target
    found = custom_ops_library(cuda=True)
    if found is None or found.name != "libfqvit_ops_cuda.so":
        sys.exit(f"gpu_check: {target} not found (build it or pass --lib)")
    return found


# --- 1: the kernels through their C entries -----------------------------------------------------------------------

def _diff(a: torch.Tensor, b: torch.Tensor) -> int:
    """Elements that differ (dtype and shape must match too: a mismatch counts every element)."""
    a, b = a.cpu(), b.cpu()
    if a.shape != b.shape or a.dtype != b.dtype:
        return max(a.numel(), b.numel(), 1)
    return int((a != b).sum())


def kernel_checks(run: Run) -> dict:
    """Every case, uint8 and (when the entries exist) int8: CUDA vs CPU kernel vs reference. Without a GPU the CUDA
    column is the CPU kernel run again on separate tensors (a dry run of this code, not of CUDA)."""
    gpu, ops = run.gpu, run.ops
    code_types = ["uint8"] + (["int8"] if run.lib.int8_entries(("cpu", "cuda") if gpu else ("cpu",)) else [])
    dev = torch.device("cuda" if gpu else "cpu")
    first = "cuda" if gpu else "cpu"
    rows: list[dict] = []

    def record(op: str, name: str, ct: str, first_out, cpu_out, ref_out) -> None:
        d1, d2, d3 = _diff(first_out, cpu_out), _diff(first_out, ref_out), _diff(cpu_out, ref_out)
        rows.append({"op": op, "case": name, "code_type": ct, "ok": d1 == d2 == d3 == 0, "cuda_vs_cpu": d1,
                     "cuda_vs_ref": d2, "cpu_vs_ref": d3})

    for op in O.CASES:
        for name in O.params(op):
            base = O.build(op, name)
            numel = max(a.size for a in base.inputs.values())
            if run.quick and numel > 1_000_000:
                continue
            for ct in code_types:
                case = O.as_code_type(op, base, ct)
                try:
                    ref = torch.from_numpy(O.reference(op, case))
                    host, dev_t = prepare(case.inputs, "cpu"), prepare(case.inputs, dev)
                    offsets = (0, 3) if op == "Lookup" and numel > 50_000 else (0,)  # 3: an unaligned output
                    for y_off in offsets:
                        out = call(ops, first, op, dev_t, case.inputs, case.attrs, y_off)
                        if gpu:
                            torch.cuda.synchronize()
                        cpu_out = call(ops, "cpu", op, host, case.inputs, case.attrs, y_off)
                        record(op, name + (f" y+{y_off}" if y_off else ""), ct, out, cpu_out, ref)
                    if op == "Lookup" and numel > 50_000:  # an unaligned input: a view one byte into a buffer
                        x = host["X"].reshape(-1)
                        dx = torch.cat([torch.zeros(1, dtype=x.dtype), x]).to(dev)[1:]
                        out = call(ops, first, op, {"X": dx, "table": dev_t["table"]}, case.inputs, case.attrs)
                        cpu_out = call(ops, "cpu", op, {"X": x, "table": host["table"]}, case.inputs, case.attrs)
                        record(op, name + " x+1", ct, out, cpu_out, ref.reshape(-1))
                except Exception as e:  # noqa: BLE001 - a kernel error is a failed case, reported with its message
                    rows.append({"op": op, "case": name, "code_type": ct, "ok": False, "error": f"{e}"[:300]})
    by_op: dict[str, dict] = {}
    for r in rows:
        s = by_op.setdefault(f"{r['op']} {r['code_type']}", {"op": r["op"], "code_type": r["code_type"], "cases": 0,
                                                                "ok": 0, "failed": []})
        s["cases"] += 1
        s["ok"] += r["ok"]
        if not r["ok"]:
            s["failed"].append(r["case"])
    failures = [f"kernel {r['op']} {r['code_type']} {r['case']}" for r in rows if not r["ok"]]
    return {"code_types": code_types, "dry_run": not gpu, "rows": rows, "by_op": list(by_op.values()),
            "failures": failures}


# --- 2: models, both targets, bit for bit -------------------------------------------------------------------------

def _simplify() -> bool:
    """onnxsim where installed (the README's default export); the GPU machine's image may lack it, and both targets
    are then compared unsimplified, which changes no bit."""
    import importlib.util
    return importlib.util.find_spec("onnxsim") is not None


def cifar10_images(cal, limit: int) -> tuple[np.ndarray, np.ndarray, str]:
    """``limit`` CIFAR-10 test images spread evenly over the set (all classes), preprocessed per the model."""
    from fqvit_export.data import eval_transform, image_dataset
    shared = ROOT.parent / "shared" / "data" / "cifar10" / "test"
    root = shared if shared.is_dir() else ROOT / "tests" / "fixtures" / "cifar10_test"
    ds = image_dataset(root, eval_transform(cal.data_cfg))
    idx = np.unique(np.linspace(0, len(ds) - 1, min(limit, len(ds))).round().astype(int))
    items = [ds[int(i)] for i in idx]
    x = np.stack([it[0].numpy() for it in items]).astype(np.float32)
    return x, np.array([int(it[1]) for it in items]), str(root.relative_to(ROOT.parent if shared.is_dir() else ROOT))


def _logits(path: Path, providers: list[str], x: np.ndarray, batch: int = 100) -> tuple[np.ndarray, list[str]]:
    """The logits of ``x`` from the package's own :class:`Session` (the library under test registered), and the
    providers the session got. A cuda model on the CPU EP is what phase 2 asks for: its warning is expected."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeviceWarning)
        sess = Session(path, library="on", providers=providers)
    out = np.concatenate([sess(x[i:i + batch]) for i in range(0, len(x), batch)])
    return out, sess.session.get_providers()


def model_checks(run: Run) -> dict:
    """For each bundled model and config, one calibration, both targets, logits compared bit for bit."""
    import onnx
    from fqvit_export.api import calibrate
    from fqvit_export.deploy.kernels import registered_kernels
    from fqvit_export.export.onnx_export import build_onnx
    from fqvit_export.models.registry import ModelSpec
    from fqvit_export.quant.point import QuantConfig
    kernels = registered_kernels(run.lib_path)
    configs = {"minmax": QuantConfig(), "minmax+pts+lis": QuantConfig(pts=True, lis=True, attn_bits=4)}
    simplify = _simplify()
    results, failures = [], []
    for name in ("cifar10_vit", "cifar10_swin"):
        for label, cfg in configs.items():
            t0 = time.perf_counter()
            row: dict = {"model": name, "config": label, "simplified": simplify}
            try:
                cal = calibrate(ModelSpec(name), cfg, calib_size=100, batch_size=50, progress=False)
                paths = {}
                for target in ("cpu", "cuda"):
                    proto = build_onnx(cal, simplify=simplify, device=target)[0]
                    device = ModelCard.read(proto).device
                    row[f"{target}_export_device"] = device
                    if device != target:
                        failures.append(f"model {name} {label}: the {target} export's card says {device!r}")
                    paths[target] = run.workdir / f"{name}_{label}_{target}.onnx"
                    onnx.save(proto, paths[target])
                    row[f"static_{target}"] = static_cuda_check(proto, kernels)
                run.models[(name, label)] = paths
                if row["static_cuda"]["problem_count"]:
                    failures.append(f"static {name} {label}: {row['static_cuda']['problems'][0]}")
                if not row["static_cpu"]["problem_count"]:
                    failures.append(f"static {name} {label}: the control (cpu graph) was not flagged")
                x, y, src = cifar10_images(cal, run.images)
                row.update(images=len(x), images_from=src)
                ref, _ = _logits(paths["cpu"], [CPU_EP], x)
                outs = {"cuda_target_cpu_ep": _logits(paths["cuda"], [CPU_EP], x)[0]}
                if run.gpu:
                    outs["cuda_target_cuda_ep"], row["cuda_session_providers"] = _logits(paths["cuda"],
                                                                                         [CUDA_EP, CPU_EP], x)
                row["top1"] = {"cpu_target_cpu_ep": round(100.0 * float((ref.argmax(1) == y).mean()), 2)}
                for k, out in outs.items():
                    same = out.shape == ref.shape and np.array_equal(out, ref)
                    differ = int((np.abs(out - ref).max(1) > 0).sum()) if out.shape == ref.shape else len(x)
                    row[k] = {"identical": same, "images_differing": differ,
                              "max_abs_diff": float(np.abs(out - ref).max()) if out.shape == ref.shape else None}
                    row["top1"][k] = round(100.0 * float((out.argmax(1) == y).mean()), 2)
                    if not same:
                        failures.append(f"model {name} {label}: {k} logits differ from the cpu target's on the CPU "
                                        f"EP ({differ} of {len(x)} images)")
            except Exception as e:  # noqa: BLE001 - a crash is a failed check, with its message
                row["error"] = f"{type(e).__name__}: {e}"[:500]
                failures.append(f"model {name} {label}: {row['error']}")
                traceback.print_exc()
            row["seconds"] = round(time.perf_counter() - t0, 1)
            results.append(row)
            print(f"  {name} {label}: {_model_line(row)} ({row['seconds']} s)", flush=True)
    return {"rows": results, "failures": failures,
            "paths": {f"{m} {c}": {t: str(p) for t, p in v.items()} for (m, c), v in run.models.items()}}


def _model_line(row: dict) -> str:
    if "error" in row:
        return f"ERROR {row['error'][:100]}"
    parts = []
    for k, short in (("cuda_target_cpu_ep", "cuda-target@CPU"), ("cuda_target_cuda_ep", "cuda-target@CUDA")):
        if k in row:
            parts.append(f"{short} {'identical' if row[k]['identical'] else 'DIFFERENT'}")
    parts.append(f"static {'ok' if not row['static_cuda']['problem_count'] else 'PROBLEMS'}")
    return ", ".join(parts)


# --- 3: placement, in child processes ---------------------------------------------------------------------------------

def placement_child(path: str, allow_fallback: bool, profile_dir: str) -> int:
    """In a fresh process (its stderr is onnxruntime's log, read by the parent): a CUDA-only session at verbose log
    level, fallback to the CPU disabled unless ``allow_fallback``, one profiled run; one JSON line on stdout. The
    library is the one ``FQVIT_CUSTOM_OPS_LIB`` names (set by the parent)."""
    ort = onnxruntime_module(True)
    ort.set_default_logger_severity(0)
    result: dict = {"model": path, "allow_fallback": allow_fallback}
    try:
        so = session_options(custom_ops_library(cuda=True), profile=True)
        so.profile_file_prefix = str(Path(profile_dir) / Path(path).stem)
        so.log_severity_level = 0
        if not allow_fallback:
            so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
        sess = ort.InferenceSession(path, so, providers=[CUDA_EP, CPU_EP] if allow_fallback else [CUDA_EP])
        result["providers"] = sess.get_providers()
        inp = sess.get_inputs()[0]
        shape = [2 if not isinstance(d, int) else d for d in inp.shape]
        sess.run(None, {inp.name: np.zeros(shape, np.float32)})
        result["profile"] = sess.end_profiling()
        result["loaded"] = True
    except Exception as e:  # noqa: BLE001 - the parent reports it
        result.update(loaded=False, error=f"{type(e).__name__}: {e}"[:1000])
    print(CHILD_MARK + json.dumps(result), flush=True)
    return 0


def _placement_problems(row: dict) -> list[str]:
    """Why a cuda-target model's placement fails (none: it loads CUDA-only, no copies, every node on CUDA)."""
    nodes = row.get("profile_nodes", {})
    problems = []
    if not row.get("loaded"):
        problems.append(f"does not load CUDA-only with CPU fallback disabled: {row.get('error')}")
    if row.get("memcpy_nodes") or row.get("memcpy_added"):
        problems.append(f"the log reports {row.get('memcpy_nodes')} Memcpy nodes")
    if set(row.get("log_placement", {})) - {CUDA_EP}:
        problems.append(f"the log places nodes on {row['log_placement']}")
    if row.get("loaded") and (not nodes or set(nodes) != {CUDA_EP} or row.get("profile_memcpy_nodes")):
        problems.append(f"profiled nodes per provider: {nodes}")
    return problems


def placement_checks(run: Run, timeout: float = 120.0) -> dict | str:
    """Every cuda-target model must load CUDA-only with fallback disabled, with no Memcpy node and every profiled
    node on CUDA; a cpu-target model with fallback allowed is the detector's control."""
    if not run.gpu:
        return NO_GPU
    if not run.models:
        return {"rows": [], "failures": ["placement: not run, no exported models (phase 2 failed)"]}
    runs = [(key, p["cuda"], False) for key, p in run.models.items()]
    control = next(iter(run.models.items()))
    runs.append((control[0], control[1]["cpu"], True))
    rows, failures = [], []
    for (name, label), path, allow in runs:
        t0 = time.perf_counter()
        cmd = [sys.executable, str(Path(__file__).resolve()), "--placement-child", str(path), "--profile-dir",
               str(run.workdir)] + (["--allow-fallback"] if allow else [])
        row: dict = {"model": name, "config": label, "target": "cpu" if allow else "cuda", "control": allow}
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(CHILD_MARK)), None)
            child = json.loads(line[len(CHILD_MARK):]) if line else {"loaded": False,
                                                                     "error": (proc.stderr or "no output")[-500:]}
            row.update(loaded=child["loaded"], error=child.get("error"), providers=child.get("providers"),
                       **read_log(proc.stderr))
            if child.get("profile"):
                prof = read_profile(child["profile"])
                row.update(profile_nodes=prof["nodes"], profile_op_types=prof["op_types"],
                           profile_memcpy_nodes=prof["memcpy_nodes"])
                Path(child["profile"]).unlink(missing_ok=True)
        except subprocess.TimeoutExpired:
            row.update(loaded=False, error=f"timed out after {timeout:.0f} s")
        nodes = row.get("profile_nodes", {})
        if allow:
            row["ok"] = None
            row["detector_saw_copies"] = bool(row.get("memcpy_nodes") or row.get("profile_memcpy_nodes")
                                              or set(nodes) - {CUDA_EP})
        else:
            problems = _placement_problems(row)
            row["ok"], row["problems"] = not problems, problems
            failures += [f"placement {name} {label}: {p}" for p in problems]
        row["seconds"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        print(f"  {name} {label} {row['target']}-target{' (control)' if allow else ''}: "
              f"{'loaded' if row.get('loaded') else 'NOT loaded'}, memcpy {row.get('memcpy_nodes')}, "
              f"nodes {nodes} ({row['seconds']} s)", flush=True)
    return {"rows": rows, "failures": failures}


# --- the summary ------------------------------------------------------------------------------------------------------

def _show_kernels(k: dict) -> None:
    if k["dry_run"]:
        print("  (dry run: the CUDA column is the CPU kernel run again)")
    print(f"  {'op':<14} {'code':<6} {'bit-exact':>10}  failed")
    for s in k["by_op"]:
        print(f"  {s['op']:<14} {s['code_type']:<6} {s['ok']:>4}/{s['cases']:<5}  {', '.join(s['failed'][:4])}")
    if "int8" not in k["code_types"]:
        print("  int8: the library exports no _i8 entries (they are checked as soon as it does)")


def _show_models(m: dict) -> None:
    print(f"  {'model':<13} {'config':<15} {'images':>6}  {'cuda-target@CPU':<16} {'cuda-target@CUDA':<17} "
          f"{'static':<7} top-1")
    for r in m["rows"]:
        if "error" in r:
            print(f"  {r['model']:<13} {r['config']:<15} ERROR {r['error'][:70]}")
            continue

        def same(key: str) -> str:
            if key not in r:
                return NO_GPU
            return "identical" if r[key]["identical"] else f"DIFF {r[key]['images_differing']}"
        static = "ok" if not r["static_cuda"]["problem_count"] else "FAIL"
        print(f"  {r['model']:<13} {r['config']:<15} {r['images']:>6}  {same('cuda_target_cpu_ep'):<16} "
              f"{same('cuda_target_cuda_ep'):<17} {static:<7} {r['top1']['cpu_target_cpu_ep']}")


def _show_placement(p: dict) -> None:
    for r in p["rows"]:
        verdict = "control" if r["control"] else ("ok" if r["ok"] else "FAIL")
        print(f"  {r['model']:<13} {r['config']:<15} {r['target']}-target  loaded {str(r.get('loaded')):<5} "
              f"memcpy {r.get('memcpy_nodes')}  nodes {r.get('profile_nodes')}  {verdict}")


@dataclass(frozen=True)
class Phase:
    """One step of the check: ``check`` turns the :class:`Run` into a dict with ``failures`` (or a string saying
    why it was skipped); ``show`` prints its table in the summary."""
    name: str
    title: str
    check: Callable[[Run], dict | str]
    show: Callable[[dict], None]


PHASES = [
    Phase("kernels", "kernels through the C entries: CUDA vs CPU vs reference", kernel_checks, _show_kernels),
    Phase("models", "models: logits vs the cpu-target model on the CPU EP (np.array_equal); top-1 % of the cpu "
                    "target", model_checks, _show_models),
    Phase("placement", "placement: CUDA-only session, CPU fallback disabled, verbose log, one profiled run",
          placement_checks, _show_placement),
]
"""The checks, in the order they run (a later phase may read what an earlier one left in the :class:`Run`)."""


def run_phase(phase: Phase, run: Run) -> dict | str:
    """One phase; a crash becomes a failure of that phase (its traceback printed), never the end of the run."""
    print(f"\n--- {phase.name} ---", flush=True)
    try:
        return phase.check(run)
    except Exception as e:  # noqa: BLE001 - one phase's crash is reported; the others still run
        traceback.print_exc()
        return {"error": f"{type(e).__name__}: {e}"[:1000],
                "failures": [f"{phase.name}: crashed: {type(e).__name__}: {e}"[:300]]}


def print_summary(report: dict) -> None:
    """One summary: a short table per phase (or the line saying why it was skipped), the failures, the verdict."""
    env, results = report["environment"], report["phases"]
    print(f"\n==== gpu_check summary: {env.get('device')}, torch {env['torch']} (CUDA {env['torch_cuda']}), "
          f"onnxruntime {env.get('onnxruntime')}, {Path(env['library']).name} "
          f"({env.get('library_cuda_architectures')}) ====")
    for num, phase in enumerate(PHASES, 1):
        result = results.get(phase.name)
        if isinstance(result, str):
            print(f"\n[{num}] {phase.name}: {result}")
        elif "error" in result:
            print(f"\n[{num}] {phase.name}: CRASHED: {result['error'][:200]}")
        else:
            print(f"\n[{num}] {phase.title}")
            phase.show(result)
    print("\nphase seconds: " + ", ".join(f"{k} {v}" for k, v in report["seconds"].items()))
    fails = report["failures"]
    if fails:
        print(f"\nFAILED ({len(fails)}):")
        for f in fails[:30]:
            print(f"  {f}")
    print(f"\nRESULT: {'ALL CHECKS PASSED' if not fails else f'{len(fails)} CHECK(S) FAILED'}"
          f"{' (dry run without a GPU: phases 1-2 on the CPU only)' if report['dry_run'] else ''}")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-build", action="store_true",
                        help="use the existing libfqvit_ops_cuda.so (fqvit_export/lib/ or the installed package's)")
    parser.add_argument("--lib", help="path of libfqvit_ops_cuda.so to load")
    parser.add_argument("--quick", action="store_true", help="fewer kernel cases and images")
    parser.add_argument("--cpu-only", action="store_true",
                        help="dry run without a GPU: kernels and both export targets on the CPU; GPU parts skipped")
    parser.add_argument("--images", type=int, help="CIFAR-10 test images per model (default 1000, --quick 200)")
    parser.add_argument("--out", type=Path, help="JSON report (default bench/results/gpu_check.json; "
                                                 "--cpu-only: bench/results/gpu_check_dry_run.json)")
    parser.add_argument("--placement-child", help=argparse.SUPPRESS)
    parser.add_argument("--allow-fallback", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profile-dir", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _gpu_ready() -> str | None:
    """Why this machine cannot run the GPU phases, or None."""
    if not torch.cuda.is_available():
        return "torch sees no CUDA device (use --cpu-only for a dry run)"
    ort = onnxruntime_module(True)
    if CUDA_EP not in ort.get_available_providers():
        return (f"onnxruntime {ort.__version__} ({ort.__file__}) has no {CUDA_EP}: install onnxruntime-gpu (e.g. pip "
                f"install --no-deps --target /tmp/site onnxruntime-gpu==1.31.1 and run with PYTHONPATH=/tmp/site:.)")
    return None


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.placement_child:
        return placement_child(args.placement_child, args.allow_fallback, args.profile_dir)
    gpu = not args.cpu_only
    if gpu and (why := _gpu_ready()):
        print(f"gpu_check: {why}")
        return 2
    t_start = time.perf_counter()
    path = build(args.no_build, args.lib)
    seconds: dict[str, float] = {"build": round(time.perf_counter() - t_start, 1)}
    os.environ[ENV_VAR] = str(path)  # every session of this run, children included, registers the library under test
    lib = KernelLibrary(path)
    env = environment(gpu, lib)
    print(f"library {path}\nGPU {env.get('device')} (torch {torch.__version__}, CUDA {torch.version.cuda}); "
          f"onnxruntime {env.get('onnxruntime')}; CPU kernels {env['cpu_kernel_isa']}; "
          f"int8 entries {'yes' if env['int8_entries'] else 'no'}", flush=True)
    results: dict[str, dict | str] = {}
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        run = Run(path, lib, gpu, args.quick, args.images or (200 if args.quick else 1000), Path(tmp))
        for phase in PHASES:
            t0 = time.perf_counter()
            results[phase.name] = result = run_phase(phase, run)
            failures += result.get("failures", []) if isinstance(result, dict) else []
            seconds[phase.name] = round(time.perf_counter() - t0, 1)
    seconds["total"] = round(time.perf_counter() - t_start, 1)
    report = {"description": "tools/gpu_check.py: com.fqvit CUDA kernels and cuda-target models, bit-exact checks "
                             "and placement (issue #11); timings: bench/bench_gpu.py",
              "command": "python tools/gpu_check.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "dry_run": not gpu, "environment": env, "phases": results, "seconds": seconds, "failures": failures,
              "ok": not failures}
    out = args.out or ROOT / "bench" / "results" / ("gpu_check.json" if gpu else "gpu_check_dry_run.json")
    print_summary(report)
    write_json(out, report)
    print(f"wrote {out}")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
