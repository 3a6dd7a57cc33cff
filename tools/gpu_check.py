"""The one prepared check of the com.fqvit CUDA path (issue #11) for a machine with an NVIDIA GPU, torch (CUDA) and
onnxruntime-gpu: kernels bit for bit, whole models bit for bit on the CUDA execution provider, node placement, and
speed against FP32 / FP16, in one run that prints one summary and writes one JSON.

Why one script: a GPU machine is lent rarely and briefly (minutes of device time), so everything that needs one is
prepared here, checked as far as a CPU allows (``--cpu-only``), and run there in a single command. Every check
compares bits (``np.array_equal`` / element counts), nothing is hard-coded, and the exit status is non-zero when any
bit-exact or placement check fails (timings are reported, never judged).

Phases, with the time each takes on one H200 and 16 CPU cores (estimates from the 2-core no-GPU machine's timings
scaled by core count: about 5 minutes in all, against a budget of 8):

0. build (~40 s, a clean build's time on 2 cores; 0 with ``--no-build`` / ``--lib``): ``tools/build_custom_ops.sh``
   builds ``libfqvit_ops_cuda.so`` for sm_75/80/86/89/90 + PTX (needs cmake, ninja, nvcc and the onnxruntime
   headers in build/ort-headers/ or ``ORT_INCLUDE_DIR``: carry them to a machine without network).
1. kernels (~20 s): every case of the shared tables of ``tests/op_cases.py`` through the plain C entry points
   (``fqvit_ops/c_api.h``, ctypes on torch CUDA tensors): the CUDA kernel vs the single-threaded CPU kernel vs the
   PyTorch reference, each case in uint8 and, when the library exports the ``_i8`` entries (``hasattr`` on the
   CDLL), in its int8 form (``op_cases.as_code_type``); plus unaligned Lookup inputs and outputs. The large uint8
   cases are timed (CUDA events) against the CPU kernel and torch's float op.
2. models (~40 s; 90 s for 1,000 images on 2 cores): ``cifar10_vit`` and ``cifar10_swin`` (bundled weights),
   minmax 8/8/8 and minmax+PTS+LIS 8/8/4, calibrated on 100 bundled images; both export targets from each
   calibration. Logits on real CIFAR-10 test images (``../shared/data/cifar10/test`` if present, else
   ``tests/fixtures/cifar10_test``): the cuda-target model on the CUDA EP with the library, and on the CPU EP, must
   equal the cpu-target model's on the CPU EP, bit for bit. A static check of each cuda graph runs too: every
   ``MatMulInteger`` int8 x int8 with scalar zero points (the only one onnxruntime's CUDA EP has) and a CUDA kernel
   of the library for every ``com.fqvit`` node's input types (``fqvit_export.deploy.kernels``), with the cpu graph as the
   control the check must flag.
3. placement (~30 s): each cuda-target model in a child process (its stderr is onnxruntime's log): a CUDA-only
   session with ``session.disable_cpu_ep_fallback = 1`` must load; at verbose log level the log must report no
   Memcpy node ("N Memcpy nodes are added to the graph ..." / "Add MemcpyFromHost ...") and, where it lists the
   placement, only CUDAExecutionProvider; one profiled run must put every node on CUDAExecutionProvider. A
   cpu-target model with fallback allowed is the control (it should show Memcpy nodes: the detector works).
4. timing (~150 s, ``--skip-timing`` skips 4 and 5): ``deit_small`` and ``deit_base`` (random weights: speed only),
   calibrated on 16 bundled ImageNet photos; the integer cuda-target model vs the FP32 model (``float_onnx``) and
   FP16 (``convert_float_to_float16(keep_io_types=True)``) on the CUDA EP at batch 1, 8 and 64, each with and
   without CUDA graphs (io_binding, inputs and outputs on the device). All six variants of one batch are timed
   side by side: repetitions interleaved in rotating order, median over repetitions. A variant that cannot run
   under CUDA graphs is reported, not fatal; the int8 model's CUDA-graph logits must equal its plain ones.
5. bandwidth (~10 s): each custom kernel at deit_base batch-64 shapes (CUDA events), bytes read + written per
   second as a percentage of a device-to-device copy of a 1 GiB buffer timed the same way.

Then one summary (short tables) and ``--out`` (default ``bench/results/gpu_check.json``; ``--cpu-only`` writes
``bench/results/gpu_check_dry_run.json``): device, versions, every figure.

    PYTHONPATH=/tmp/site python3 tools/gpu_check.py [--no-build] [--lib PATH] [--quick] [--skip-timing] [--out F]
    python tools/gpu_check.py --cpu-only --no-build [--quick]   # dry run without a GPU (phases 1 and 2 on the CPU)
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
import op_cases as O  # noqa: E402  (the case tables every harness shares)

_i64p = ctypes.POINTER(ctypes.c_int64)
_i32, _i64, _f32, _int, _vp = ctypes.c_int32, ctypes.c_int64, ctypes.c_float, ctypes.c_int, ctypes.c_void_p

CPU_EP, CUDA_EP = "CPUExecutionProvider", "CUDAExecutionProvider"
NO_GPU = "skipped: no GPU"
CHILD_MARK = "GPU_CHECK_CHILD "
"""Prefix of the one JSON line a placement child process prints on stdout."""


# --- the library ------------------------------------------------------------------------------------------------------

_ENTRIES: dict[str, list] = {  # C entry base name -> argument types before the trailing isa (CPU) or stream (CUDA)
    "pts_layernorm": [_vp, _vp, _vp, _vp, _vp, _i64, _i64, _f32, _i32, _f32, _f32, _i32],
    "log_int_softmax": [_vp, _i64p, _int, _vp, _i64p, _int, _vp, _i64, _int],
    "lis_matmul": [_vp, _vp, _vp, _i64, _i64, _i64, _i64, _f32, _i32, _f32, _i32, _int],
    "lookup": [_vp, _vp, _vp, _i64, _i64],
    "requantize": [_vp, _vp, _vp, _vp, _i64, _i64, _i64, _i64, _f32, _i32],
}


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
            if target.is_file():
                print(f"build failed; falling back to the existing {target}")
            else:
                sys.exit("gpu_check: the build failed and no libfqvit_ops_cuda.so exists")
        else:
            print(f"built in {time.time() - t0:.0f} s", flush=True)
    if target.is_file():
        return target
    from fqvit_export.deploy.library import custom_ops_library
    found = custom_ops_library(cuda=True)
    if found is None or found.name != "libfqvit_ops_cuda.so":
        sys.exit(f"gpu_check: {target} not found (build it or pass --lib)")
    return found


def load(path: Path) -> ctypes.CDLL:
    """The library with argument types set on every C entry it exports (the int8 ``_i8`` ones where present, the
    CUDA ones only in libfqvit_ops_cuda.so)."""
    lib = ctypes.CDLL(str(path))
    lib.fqvit_last_error.restype = ctypes.c_char_p
    lib.fqvit_cpu_isa_name.restype = ctypes.c_char_p
    lib.fqvit_cpu_isa_name.argtypes = [_int]
    for base, argtypes in _ENTRIES.items():
        for dev, tail in (("cpu", _int), ("cuda", _vp)):
            for suffix in ("", "_i8"):
                name = f"fqvit_{base}_{dev}{suffix}"
                if hasattr(lib, name):
                    fn = getattr(lib, name)
                    fn.argtypes = argtypes + [tail]
                    fn.restype = _int
    return lib


def int8_entries(lib: ctypes.CDLL, devices: tuple[str, ...] = ("cpu", "cuda")) -> bool:
    """Whether the library exports every int8 C entry (``fqvit_<op>_<dev>_i8``) for ``devices``."""
    return all(hasattr(lib, f"fqvit_{base}_{dev}_i8") for base in _ENTRIES for dev in devices)


def _c_string(lib: ctypes.CDLL, name: str) -> str | None:
    if not hasattr(lib, name):
        return None
    fn = getattr(lib, name)
    fn.argtypes, fn.restype = [], ctypes.c_char_p
    return fn().decode()


def _check(lib: ctypes.CDLL, rc: int, what: str) -> None:
    if rc != 0:
        raise RuntimeError(f"{what} returned {rc}: {lib.fqvit_last_error().decode()}")


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _shape(shape) -> ctypes.Array:
    return (ctypes.c_int64 * max(1, len(shape)))(*shape)


def _stream() -> int:
    return torch.cuda.current_stream().cuda_stream


# --- running one op on both devices --------------------------------------------------------------------------------

class Ops:
    """The C entries as torch calls. The code type follows the tensors: int8 codes (``x`` / ``v`` / ``table`` int8,
    or ``code=torch.int8`` for Requantize, whose input is int32) call the ``_i8`` entry, uint8 the plain one."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib

    def _run(self, base: str, device: str, code: torch.dtype, args: list) -> None:
        name = f"fqvit_{base}_{device}" + ("_i8" if code == torch.int8 else "")
        if not hasattr(self.lib, name):
            raise RuntimeError(f"the library exports no {name}")
        tail = -1 if device == "cpu" else _stream()
        _check(self.lib, getattr(self.lib, name)(*args, tail), name)

    def pts_layernorm(self, device: str, x, xs, xzp, alpha, gamma, beta, ys, yzp, eps):
        y = torch.empty_like(x)
        rows, c = x.numel() // x.shape[-1], x.shape[-1]
        self._run("pts_layernorm", device, x.dtype,
                  [_ptr(x), _ptr(alpha), _ptr(gamma), _ptr(beta), _ptr(y), rows, c, xs, xzp, eps, ys, yzp])
        return y

    def log_int_softmax(self, device: str, x, mask, mult, bits):
        y = torch.empty(x.shape, dtype=torch.uint8, device=x.device)  # LIS codes are uint8 for both code types
        mshape = _shape(mask.shape) if mask is not None else None
        self._run("log_int_softmax", device, x.dtype,
                  [_ptr(x), _shape(x.shape), x.dim(), _ptr(mask), mshape, 0 if mask is None else mask.dim(), _ptr(y),
                   mult, bits])
        return y

    def lis_matmul(self, device: str, a, v, vs, vzp, ys, yzp, bits):
        m, n, d = a.shape[-2], a.shape[-1], v.shape[-1]
        batch = a.numel() // (m * n) if m * n else 0
        y = torch.empty((*a.shape[:-1], d), dtype=v.dtype, device=a.device)
        self._run("lis_matmul", device, v.dtype, [_ptr(a), _ptr(v), _ptr(y), batch, m, n, d, vs, vzp, ys, yzp, bits])
        return y

    def lookup(self, device: str, x, table, y_offset: int = 0):
        """``y_offset`` > 0 writes into a buffer at that byte offset (an unaligned output)."""
        buf = torch.empty(x.numel() + y_offset, dtype=x.dtype, device=x.device)
        y = buf[y_offset:].view(x.shape)
        self._run("lookup", device, x.dtype, [_ptr(x), _ptr(table), _ptr(y), x.numel(), table.numel()])
        return y

    def requantize(self, device: str, a, m, b, ys, yzp, code: torch.dtype = torch.uint8):
        y = torch.empty(a.shape, dtype=code, device=a.device)
        self._run("requantize", device, code,
                  [_ptr(a), _ptr(m), _ptr(b), _ptr(y), a.numel(), a.shape[-1], m.numel(), b.numel(), ys, yzp])
        return y


# --- cases: the shared tables of tests/op_cases.py ----------------------------------------------------------------

def prepare(inputs: dict, device) -> dict[str, torch.Tensor]:
    """The numpy inputs of one case as contiguous torch tensors on ``device``."""
    return {k: torch.from_numpy(np.array(v)).to(device) for k, v in inputs.items()}


def call(ops: Ops, where: str, op: str, t: dict[str, torch.Tensor], inputs: dict, attrs: dict,
         y_offset: int = 0) -> torch.Tensor:
    """Run ``op`` on the CPU or CUDA kernel (``where``) through its C entry point; scalars come from the host
    ``inputs`` (no device-to-host copy). The code type is the inputs' (uint8, or int8 from ``as_code_type``)."""
    if op == "PTSLayerNorm":
        return ops.pts_layernorm(where, t["X"], float(inputs["x_scale"]), int(inputs["x_zero_point"]), t["alpha"],
                                 t["gamma"], t["beta"], float(inputs["y_scale"]), int(inputs["y_zero_point"]),
                                 attrs["epsilon"])
    if op == "LogIntSoftmax":
        return ops.log_int_softmax(where, t["X"], t.get("mask"), attrs["multiplier"], attrs["bits"])
    if op == "LISMatMul":
        return ops.lis_matmul(where, t["A"], t["V"], float(inputs["v_scale"]), int(inputs["v_zero_point"]),
                              float(inputs["y_scale"]), int(inputs["y_zero_point"]), attrs["bits"])
    if op == "Lookup":
        return ops.lookup(where, t["X"], t["table"], y_offset)
    code = torch.int8 if np.asarray(inputs["y_zero_point"]).dtype == np.int8 else torch.uint8
    return ops.requantize(where, t["A"], t["multiplier"], t["bias"], float(inputs["y_scale"]),
                          int(inputs["y_zero_point"]), code)


def _float_op(op: str, t: dict[str, torch.Tensor], inputs: dict, attrs: dict):
    """torch's float op on the same tensors, for scale in the timing table."""
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
    af, ys = t["A"].float(), float(inputs["y_scale"])
    return lambda: torch.clamp(torch.round((af * t["multiplier"] + t["bias"]) / ys), 0, 255).to(torch.uint8)


# --- timing helpers ---------------------------------------------------------------------------------------------------

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
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _diff(a: torch.Tensor, b: torch.Tensor) -> int:
    """Elements that differ (dtype and shape must match too: a mismatch counts every element)."""
    a, b = a.cpu(), b.cpu()
    if a.shape != b.shape or a.dtype != b.dtype:
        return max(a.numel(), b.numel(), 1)
    return int((a != b).sum())


# --- phase 1: the C entries ---------------------------------------------------------------------------------------

def kernel_checks(ops: Ops, gpu: bool, quick: bool, timing: bool) -> dict:
    """Every case, uint8 and (when the entries exist) int8: CUDA vs CPU kernel vs reference. Without a GPU the
    CUDA column is the CPU kernel run again on separate tensors (a dry run of this code, not of CUDA)."""
    code_types = ["uint8"] + (["int8"] if int8_entries(ops.lib, ("cpu", "cuda") if gpu else ("cpu",)) else [])
    dev = torch.device("cuda" if gpu else "cpu")
    first = "cuda" if gpu else "cpu"
    rows: list[dict] = []

    def record(op: str, name: str, ct: str, first_out, cpu_out, ref_out, t_cuda=None, t_cpu=None, t_float=None):
        d1, d2, d3 = _diff(first_out, cpu_out), _diff(first_out, ref_out), _diff(cpu_out, ref_out)
        rows.append({"op": op, "case": name, "code_type": ct, "ok": d1 == d2 == d3 == 0, "cuda_vs_cpu": d1,
                     "cuda_vs_ref": d2, "cpu_vs_ref": d3, "cuda_ms": t_cuda, "cpu_ms": t_cpu, "torch_fp32_ms": t_float})

    for op in O.CASES:
        for name in O.params(op):
            base = O.build(op, name)
            numel = max(a.size for a in base.inputs.values())
            if quick and numel > 1_000_000:
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
                        timed = gpu and timing and ct == "uint8" and numel >= 400_000 and y_off == 0
                        record(op, name + (f" y+{y_off}" if y_off else ""), ct, out, cpu_out, ref,
                               _cuda_ms(lambda: call(ops, "cuda", op, dev_t, case.inputs, case.attrs))
                               if timed else None,
                               _cpu_ms(lambda: call(ops, "cpu", op, host, case.inputs, case.attrs)) if timed else None,
                               _cuda_ms(_float_op(op, dev_t, case.inputs, case.attrs)) if timed else None)
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


# --- onnxruntime --------------------------------------------------------------------------------------------------

_ORT: dict = {}


def ort_module(gpu: bool):
    """onnxruntime, imported once; on a GPU run ``preload_dlls()`` first loads the CUDA / cuDNN libraries of the
    nvidia-* pip packages, which onnxruntime-gpu 1.31 links against but does not find by itself."""
    if "m" not in _ORT:
        import onnxruntime as ort
        if gpu and hasattr(ort, "preload_dlls"):
            try:
                ort.preload_dlls()
            except Exception as e:  # noqa: BLE001 - the session's own error then says what is missing
                print(f"onnxruntime.preload_dlls() failed: {e}", flush=True)
        _ORT["m"] = ort
    return _ORT["m"]


def make_session(path: Path, providers: list, lib: Path | None, *, fallback: bool = True, cuda_graph: bool = False,
                 profile_prefix: Path | None = None, log_level: int | None = None, fqvit: bool = True):
    """An InferenceSession as ``fqvit_export.deploy.session.Session`` makes one (``session.disable_quant_qdq = 1`` for
    fqvit models: onnxruntime's QLinearAdd fusion rounds differently), with the knobs the checks need."""
    ort = ort_module(CUDA_EP in providers)
    so = ort.SessionOptions()
    if fqvit:
        so.add_session_config_entry("session.disable_quant_qdq", "1")
    if not fallback:
        so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    if lib is not None:
        so.register_custom_ops_library(str(lib))
    if profile_prefix is not None:
        so.enable_profiling = True
        so.profile_file_prefix = str(profile_prefix)
    if log_level is not None:
        so.log_severity_level = log_level
    provs = [(CUDA_EP, {"device_id": "0", **({"enable_cuda_graph": "1"} if cuda_graph else {})}) if p == CUDA_EP
             else p for p in providers]
    return ort.InferenceSession(str(path), so, providers=provs)


def run_batches(sess, x: np.ndarray, batch: int = 100) -> np.ndarray:
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i:i + batch]})[0] for i in range(0, len(x), batch)])


# --- phase 2: models --------------------------------------------------------------------------------------------------

def _simplify() -> bool:
    """onnxsim where installed (the README's default export); the GPU machine's image may lack it, and both
    targets are then compared unsimplified, which changes no bit."""
    import importlib.util
    return importlib.util.find_spec("onnxsim") is not None


def test_images(cal, limit: int) -> tuple[np.ndarray, np.ndarray, str]:
    """``limit`` CIFAR-10 test images spread evenly over the set (all classes), preprocessed per the model."""
    from fqvit_export.data import eval_transform, image_dataset
    shared = ROOT.parent / "shared" / "data" / "cifar10" / "test"
    root = shared if shared.is_dir() else ROOT / "tests" / "fixtures" / "cifar10_test"
    ds = image_dataset(root, eval_transform(cal.data_cfg))
    idx = np.unique(np.linspace(0, len(ds) - 1, min(limit, len(ds))).round().astype(int))
    items = [ds[int(i)] for i in idx]
    x = np.stack([it[0].numpy() for it in items]).astype(np.float32)
    return x, np.array([int(it[1]) for it in items]), str(root.relative_to(ROOT.parent) if shared.is_dir()
                                                          else root.relative_to(ROOT))


def graph_types(model) -> dict[str, str]:
    """Element type names of every value of the graph (shape inference through the com.fqvit function bodies)."""
    import onnx
    inferred = onnx.shape_inference.infer_shapes(model)
    types: dict[str, int] = {}
    for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        types[vi.name] = vi.type.tensor_type.elem_type
    for init in inferred.graph.initializer:
        types[init.name] = init.data_type
    return {k: onnx.helper.tensor_dtype_to_np_dtype(v).name.replace("bool_", "bool").replace("float32", "float")
            for k, v in types.items() if v}


def static_cuda_check(model, kernels: list[dict] | None) -> dict:
    """What onnxruntime's CUDA EP needs of an integer graph, read from the file: every MatMulInteger int8 x int8
    with scalar zero points (FIELD-NOTES s7), and a CUDA kernel of the library for every com.fqvit node's input
    types. ``problems`` empty means it fits; run on the cpu graph it must not be (the control). ``shape_nodes``
    (information, not a problem) lists the nodes fed by int64 values computed at run time: onnxruntime may prefer
    the CPU for such shape computations, which a failed placement check would then point at."""
    types = graph_types(model)
    inits = {i.name: list(i.dims) for i in model.graph.initializer}
    produced = {o for n in model.graph.node for o in n.output}
    problems: list[str] = []
    counts: Counter = Counter()
    shape_nodes: list[str] = []
    for n in model.graph.node:
        ins = [types.get(i) if i else None for i in n.input]
        if any(t == "int64" and i in produced for i, t in zip(n.input, ins)):
            shape_nodes.append(f"{n.op_type} {n.name}")
        if n.op_type == "MatMulInteger" and not n.domain:
            counts["MatMulInteger"] += 1
            if ins[:2] != ["int8", "int8"]:
                problems.append(f"{n.name}: MatMulInteger {ins[0]} x {ins[1]} (CUDA has int8 x int8 only)")
            for zp in n.input[2:4]:
                if zp and (zp not in inits or int(np.prod(inits[zp])) != 1):
                    problems.append(f"{n.name}: zero point {zp} is not a scalar initializer")
        elif n.domain == "com.fqvit":
            counts[n.op_type] += 1
            if kernels is not None and _find_kernel(kernels, n.op_type, CUDA_EP, ins) is None:
                problems.append(f"{n.name}: no CUDA kernel for {n.op_type}({', '.join(str(t) for t in ins)})")
    return {"nodes": dict(counts), "problems": problems[:20], "problem_count": len(problems),
            "kernel_list": kernels is not None, "shape_nodes": shape_nodes}


def _find_kernel(kernels: list[dict], op: str, provider: str, inputs: list[str | None]) -> dict | None:
    from fqvit_export.deploy.kernels import find_kernel
    return find_kernel(kernels, op, provider, inputs)


def model_checks(lib: Path, gpu: bool, images: int, workdir: Path) -> dict:
    """Phase 2: for each bundled model and config, one calibration, both targets, logits compared bit for bit."""
    import onnx
    from fqvit_export.api import calibrate
    from fqvit_export.export.onnx_export import build_onnx
    from fqvit_export.models.registry import ModelSpec
    from fqvit_export.quant.point import QuantConfig
    try:
        from fqvit_export.deploy.kernels import registered_kernels
        kernels = registered_kernels(lib)
    except (ImportError, AttributeError, OSError) as e:
        print(f"  (no kernel list from the library: {e}; the static check covers MatMulInteger only)", flush=True)
        kernels = None
    configs = {"minmax": QuantConfig(), "minmax+pts+lis": QuantConfig(pts=True, lis=True, attn_bits=4)}
    simplify = _simplify()
    results, failures, models = [], [], {}
    for name in ("cifar10_vit", "cifar10_swin"):
        for label, cfg in configs.items():
            t0 = time.perf_counter()
            row: dict = {"model": name, "config": label, "simplified": simplify}
            try:
                cal = calibrate(ModelSpec(name), cfg, calib_size=100, batch_size=50, progress=False)
                paths = {}
                for target in ("cpu", "cuda"):
                    proto = build_onnx(cal, simplify=simplify, device=target)[0]
                    meta = {p.key: p.value for p in proto.metadata_props}
                    row[f"{target}_target_metadata"] = meta.get("device")
                    if meta.get("device") != target:
                        failures.append(f"model {name} {label}: device metadata {meta.get('device')!r}"
                                        f" in the {target} export")
                    paths[target] = workdir / f"{name}_{label}_{target}.onnx"
                    onnx.save(proto, paths[target])
                    row[f"static_{target}"] = static_cuda_check(proto, kernels)
                models[(name, label)] = paths
                if row["static_cuda"]["problem_count"]:
                    failures.append(f"static {name} {label}: {row['static_cuda']['problems'][0]}")
                if not row["static_cpu"]["problem_count"]:
                    failures.append(f"static {name} {label}: the control (cpu graph) was not flagged")
                x, y, src = test_images(cal, images)
                row.update(images=len(x), images_from=src)
                ref = run_batches(make_session(paths["cpu"], [CPU_EP], lib), x)
                outs = {"cuda_target_cpu_ep": run_batches(make_session(paths["cuda"], [CPU_EP], lib), x)}
                if gpu:
                    sess = make_session(paths["cuda"], [CUDA_EP, CPU_EP], lib)
                    row["cuda_session_providers"] = sess.get_providers()
                    outs["cuda_target_cuda_ep"] = run_batches(sess, x)
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
    return {"rows": results, "failures": failures, "paths": models, "kernel_list": kernels is not None}


def _model_line(row: dict) -> str:
    if "error" in row:
        return f"ERROR {row['error'][:100]}"
    parts = []
    for k, short in (("cuda_target_cpu_ep", "cuda-target@CPU"), ("cuda_target_cuda_ep", "cuda-target@CUDA")):
        if k in row:
            parts.append(f"{short} {'identical' if row[k]['identical'] else 'DIFFERENT'}")
    parts.append(f"static {'ok' if not row['static_cuda']['problem_count'] else 'PROBLEMS'}")
    return ", ".join(parts)


# --- phase 3: placement (child processes) --------------------------------------------------------------------------

def placement_child(path: str, lib: str, allow_fallback: bool, profile_dir: str) -> int:
    """In a fresh process (its stderr is onnxruntime's log, read by the parent): a CUDA-only session at verbose log
    level, fallback to the CPU disabled unless ``allow_fallback``, one profiled run; one JSON line on stdout."""
    ort = ort_module(True)
    ort.set_default_logger_severity(0)
    result: dict = {"model": path, "allow_fallback": allow_fallback}
    try:
        sess = make_session(Path(path), [CUDA_EP] if not allow_fallback else [CUDA_EP, CPU_EP], Path(lib),
                            fallback=allow_fallback, profile_prefix=Path(profile_dir) / Path(path).stem, log_level=0)
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


_MEMCPY_WARN = re.compile(r"(\d+) Memcpy nodes are added to the graph (\S+) for (\w+)")
_MEMCPY_ADD = re.compile(r"Add (MemcpyFromHost|MemcpyToHost) (?:after|before) (\S+) for (\w+)")
_PLACED = re.compile(r"(?:All nodes|Node\(s\)) placed on \[(\w+)\]\. Number of nodes: (\d+)")


def read_log(log: str) -> dict:
    """What onnxruntime's session log says about copies and placement (wording of onnxruntime's
    transformer_memcpy.cc and session_state.cc)."""
    warns = [{"count": int(n), "graph": g, "provider": p} for n, g, p in _MEMCPY_WARN.findall(log)]
    adds = [f"{op} {arg} ({p})" for op, arg, p in _MEMCPY_ADD.findall(log)]
    placed: Counter = Counter()
    for p, n in _PLACED.findall(log):
        placed[p] += int(n)
    return {"memcpy_nodes": sum(w["count"] for w in warns), "memcpy_warnings": warns, "memcpy_added": adds[:20],
            "log_placement": dict(placed), "log_lines": log.count("\n")}


def read_profile(path: Path) -> dict:
    """Nodes per execution provider in an onnxruntime profile (each Node event carries args.provider)."""
    nodes: dict[str, tuple[str, str]] = {}  # node name -> (provider, op type); one entry per node, runs or not
    for ev in json.loads(path.read_text()):
        if ev.get("cat") == "Node" and ev.get("name", "").endswith("_kernel_time"):
            a = ev.get("args", {})
            nodes[ev["name"].removesuffix("_kernel_time")] = (a.get("provider", "?"), a.get("op_name", "?"))
    per_provider = Counter(prov for prov, _ in nodes.values())
    op_types: dict[str, Counter] = {}
    for prov, op in nodes.values():
        op_types.setdefault(prov, Counter())[op] += 1
    return {"nodes": dict(per_provider), "op_types": {p: dict(c.most_common()) for p, c in op_types.items()},
            "memcpy_nodes": sum(1 for _, op in nodes.values() if op.startswith("Memcpy"))}


def placement_checks(paths: dict, lib: Path, workdir: Path, timeout: float = 120.0) -> dict:
    """Phase 3: every cuda-target model must load CUDA-only with fallback disabled, with no Memcpy node and every
    profiled node on CUDA; a cpu-target model with fallback allowed is the detector's control."""
    runs = [(key, p["cuda"], False) for key, p in paths.items()]
    control = next(iter(paths.items()), None)
    if control is not None:
        runs.append((control[0], control[1]["cpu"], True))
    rows, failures = [], []
    for (name, label), path, allow in runs:
        t0 = time.perf_counter()
        cmd = [sys.executable, str(Path(__file__).resolve()), "--placement-child", str(path), "--lib", str(lib),
               "--profile-dir", str(workdir)] + (["--allow-fallback"] if allow else [])
        row: dict = {"model": name, "config": label, "target": "cpu" if allow else "cuda", "control": allow}
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(CHILD_MARK)), None)
            child = json.loads(line[len(CHILD_MARK):]) if line else {"loaded": False,
                                                                     "error": (proc.stderr or "no output")[-500:]}
            row.update(loaded=child["loaded"], error=child.get("error"), providers=child.get("providers"),
                       **read_log(proc.stderr))
            if child.get("profile"):
                prof = read_profile(Path(child["profile"]))
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
            problems = []
            if not row.get("loaded"):
                problems.append(f"does not load CUDA-only with CPU fallback disabled: {row.get('error')}")
            if row.get("memcpy_nodes") or row.get("memcpy_added"):
                problems.append(f"the log reports {row.get('memcpy_nodes')} Memcpy nodes")
            if set(row.get("log_placement", {})) - {CUDA_EP}:
                problems.append(f"the log places nodes on {row['log_placement']}")
            if row.get("loaded") and (not nodes or set(nodes) != {CUDA_EP} or row.get("profile_memcpy_nodes")):
                problems.append(f"profiled nodes per provider: {nodes}")
            row["ok"], row["problems"] = not problems, problems
            failures += [f"placement {name} {label}: {p}" for p in problems]
        row["seconds"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        print(f"  {name} {label} {row['target']}-target{' (control)' if allow else ''}: "
              f"{'loaded' if row.get('loaded') else 'NOT loaded'}, memcpy {row.get('memcpy_nodes')}, "
              f"nodes {nodes} ({row['seconds']} s)", flush=True)
    return {"rows": rows, "failures": failures}


# --- phase 4: whole-model timing -------------------------------------------------------------------------------------

class Bound:
    """A session with its input and output bound to device buffers (io_binding): what CUDA graphs need, and for
    the plain sessions the same measurement without host copies. ``device`` is "cuda" (a test may set "cpu")."""

    device = "cuda"

    def __init__(self, sess, x: np.ndarray, ort) -> None:
        self.sess = sess
        out = sess.get_outputs()[0]
        n_out = out.shape[-1] if isinstance(out.shape[-1], int) else None
        self.x = ort.OrtValue.ortvalue_from_numpy(x, self.device, 0)
        self.y = ort.OrtValue.ortvalue_from_shape_and_type([x.shape[0], n_out], np.float32, self.device, 0)
        self.io = sess.io_binding()
        self.io.bind_ortvalue_input(sess.get_inputs()[0].name, self.x)
        self.io.bind_ortvalue_output(out.name, self.y)

    def __call__(self) -> None:
        self.sess.run_with_iobinding(self.io)

    def logits(self) -> np.ndarray:
        """The bound output copied to the host (IOBinding's own device-to-host copy)."""
        return self.io.copy_outputs_to_cpu()[0]


def _timed(fn: Callable[[], None], inner: int) -> float:
    """ms per call of ``inner`` back-to-back calls, the device drained before and after."""
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) * 1e3 / inner


def time_side_by_side(variants: dict[str, Bound], reps: int, min_rep_ms: float) -> dict[str, dict]:
    """Interleaved repetitions (order rotating each time); per variant the median and min ms per run."""
    inner = {k: max(1, round(min_rep_ms / max(_timed(b, 1), 1e-3))) for k, b in variants.items()}
    names = list(variants)
    times: dict[str, list[float]] = {k: [] for k in names}
    for rep in range(reps):
        for k in names[rep % len(names):] + names[:rep % len(names)]:
            times[k].append(_timed(variants[k], inner[k]))
    return {k: {"ms": round(statistics.median(t), 4), "min_ms": round(min(t), 4), "inner": inner[k], "reps": reps}
            for k, t in times.items()}


def timing_phase(lib: Path, quick: bool, workdir: Path, names: tuple[str, ...] = ("deit_small", "deit_base"),
                 batches: tuple[int, ...] = (1, 8, 64)) -> dict:
    """Phase 4: fqvit int8 (cuda target) vs FP32 vs FP16 on the CUDA EP, with and without CUDA graphs."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from fqvit_export.api import calibrate
    from fqvit_export.data import CALIB_SETS, eval_transform, image_dataset
    from fqvit_export.export.onnx_export import build_onnx, float_onnx
    from fqvit_export.models.registry import ModelSpec
    from fqvit_export.quant.point import QuantConfig
    ort = ort_module(True)
    reps = 3 if quick else 7
    simplify = _simplify()
    rows, failures, models = [], [], {}
    for name in names:
        t0 = time.perf_counter()
        torch.manual_seed(0)
        cal = calibrate(ModelSpec(name, random_init=True), QuantConfig(pts=True, lis=True, attn_bits=4),
                        calib_size=16, batch_size=16, progress=False)
        paths = {"fqvit_int8": workdir / f"{name}_cuda.onnx", "fp32": workdir / f"{name}_fp32.onnx",
                 "fp16": workdir / f"{name}_fp16.onnx"}
        onnx.save(build_onnx(cal, simplify=simplify, device="cuda")[0], paths["fqvit_int8"])
        fp32 = float_onnx(cal, simplify=simplify)
        onnx.save(fp32, paths["fp32"])
        onnx.save(convert_float_to_float16(fp32, keep_io_types=True), paths["fp16"])
        del fp32
        ds = image_dataset(CALIB_SETS["imagenet-sample"], eval_transform(cal.data_cfg))
        photos = np.stack([ds[i][0].numpy() for i in range(16)]).astype(np.float32)
        models[name] = {"build_s": round(time.perf_counter() - t0, 1), "simplified": simplify,
                        "size_mb": {k: round(p.stat().st_size / 2**20, 1) for k, p in paths.items()}}
        print(f"  {name}: calibrated and exported in {models[name]['build_s']} s", flush=True)

        def session(kind: str, graph: bool):
            return make_session(paths[kind], [CUDA_EP, CPU_EP], lib if kind == "fqvit_int8" else None,
                                cuda_graph=graph, fqvit=kind == "fqvit_int8")
        plain = {k: session(k, False) for k in paths}
        models[name]["provider_options"] = plain["fp32"].get_provider_options().get(CUDA_EP, {})
        for batch in batches:
            x = np.ascontiguousarray(np.concatenate([photos] * -(-batch // len(photos)))[:batch])
            variants: dict[str, Bound] = {}
            row: dict = {"model": name, "batch": batch, "graph_errors": {}}
            for kind in paths:
                variants[kind] = Bound(plain[kind], x, ort)
                try:
                    g = Bound(session(kind, True), x, ort)
                    for _ in range(3):  # onnxruntime captures the graph within the first runs
                        g()
                    variants[kind + "+graph"] = g
                except Exception as e:  # noqa: BLE001 - reported, not fatal
                    row["graph_errors"][kind] = f"{type(e).__name__}: {e}"[:400]
            for b in variants.values():
                b()
            if "fqvit_int8+graph" in variants:
                same = np.array_equal(variants["fqvit_int8+graph"].logits(), variants["fqvit_int8"].logits())
                row["int8_graph_logits_identical"] = same
                if not same:
                    failures.append(f"timing {name} batch {batch}: int8 logits under CUDA graphs differ")
            row["fp16_vs_fp32_max_abs_logit_diff"] = float(np.abs(variants["fp16"].logits()
                                                                  - variants["fp32"].logits()).max())
            timed = time_side_by_side(variants, reps, min_rep_ms=100.0)
            for k, m in timed.items():
                m["x_fp32"] = round(m["ms"] / timed["fp32"]["ms"], 3)
                if "fp32+graph" in timed:
                    m["x_fp32_graph"] = round(m["ms"] / timed["fp32+graph"]["ms"], 3)
            row["variants"] = timed
            rows.append(row)
            print("  " + _timing_line(row), flush=True)
            del variants
        del plain
        for p in paths.values():
            p.unlink(missing_ok=True)
    return {"rows": rows, "models": models, "failures": failures}


def _timing_line(row: dict) -> str:
    v = row["variants"]

    def cell(k: str) -> str:
        return f"{v[k]['ms']:.2f}" if k in v else "-"
    return (f"{row['model']} b{row['batch']}: int8 {cell('fqvit_int8')} / graph {cell('fqvit_int8+graph')} ms, "
            f"fp32 {cell('fp32')} / {cell('fp32+graph')}, fp16 {cell('fp16')} / {cell('fp16+graph')}")


# --- phase 5: kernel bandwidth ------------------------------------------------------------------------------------

def bandwidth_phase(ops: Ops, reps: int = 50, dev: str = "cuda") -> dict:
    """Phase 5: each kernel at deit_base batch-64 shapes, (bytes read + written) / time against a device copy
    (``dev`` "cpu" times the CPU kernels the same way: a test of this code, no GPU figure)."""
    from fqvit_export.ops import reference as R
    timer = _cuda_ms if dev == "cuda" else _cpu_ms
    g = torch.Generator(device=dev).manual_seed(0)
    buf = torch.zeros(2**30, dtype=torch.uint8, device=dev)
    dst = torch.empty_like(buf)
    copy_ms = timer(lambda: dst.copy_(buf), reps=min(reps, 20))
    copy_gbs = 2 * buf.numel() / copy_ms / 1e6
    del buf, dst
    code_types = [torch.uint8] + ([torch.int8] if int8_entries(ops.lib, (dev,)) else [])
    rows = []

    def codes(shape, dtype, hi=256):
        t = torch.randint(0, hi, shape, device=dev, generator=g, dtype=torch.int32)
        return (t - (128 if dtype == torch.int8 else 0)).to(dtype)

    for ct in code_types:
        zp = 0 if ct == torch.int8 else 128
        rows_, c = 64 * 197, 768
        x = codes((64, 197, c), ct)
        alpha = codes((c,), torch.uint8, 4)
        gamma, beta = torch.randn(c, device=dev, generator=g), torch.randn(c, device=dev, generator=g)
        cases = [("PTSLayerNorm", (64, 197, 768), 2 * rows_ * c + 9 * c,
                  lambda: ops.pts_layernorm(dev, x, 0.02, zp, alpha, gamma, beta, 0.05, zp, 1e-6))]
        s = codes((64, 12, 197, 197), ct)
        cases.append(("LogIntSoftmax", (64, 12, 197, 197), 2 * s.numel(),
                      lambda: ops.log_int_softmax(dev, s, None, R.lis_multiplier(0.05), 4)))
        a = codes((64, 12, 197, 197), torch.uint8, 16)
        v = codes((64, 12, 197, 64), ct)
        cases.append(("LISMatMul", (64, 12, 197, 197, 64), a.numel() + 2 * v.numel(),
                      lambda: ops.lis_matmul(dev, a, v, 0.04, zp, 0.02, zp, 4)))
        h = codes((64, 197, 3072), ct)
        table = codes((256,), ct)
        cases.append(("Lookup", (64, 197, 3072), 2 * h.numel() + 256, lambda: ops.lookup(dev, h, table)))
        acc = torch.randint(-2**20, 2**20, (64, 197, 3072), device=dev, generator=g, dtype=torch.int32)
        m = torch.rand(3072, device=dev, generator=g) * 1e-5
        b = torch.randn(3072, device=dev, generator=g)
        cases.append(("Requantize", (64, 197, 3072), 5 * acc.numel() + 8 * 3072,
                      lambda: ops.requantize(dev, acc, m, b, 0.03, zp, ct)))
        for op, shape, nbytes, fn in cases:
            ms = timer(fn, reps)
            gbs = nbytes / ms / 1e6
            rows.append({"op": op, "shape": list(shape), "code_type": str(ct).removeprefix("torch."),
                         "ms": round(ms, 4), "bytes": nbytes, "GB_per_s": round(gbs, 1),
                         "pct_of_copy": round(100 * gbs / copy_gbs, 1)})
        del x, s, a, v, h, acc
    return {"copy": {"bytes": 2 * 2**30, "ms": round(copy_ms, 4), "GB_per_s": round(copy_gbs, 1)}, "rows": rows}


# --- report -------------------------------------------------------------------------------------------------------

def environment(gpu: bool, lib_path: Path, lib: ctypes.CDLL) -> dict:
    """Device, driver and versions, for the JSON."""
    env: dict = {"python": platform.python_version(), "torch": torch.__version__, "torch_cuda": torch.version.cuda,
                 "cpus": os.cpu_count(), "machine": platform.machine(), "library": str(lib_path),
                 "library_cuda_architectures": _c_string(lib, "fqvit_cuda_architectures"),
                 "cpu_kernel_isa": lib.fqvit_cpu_isa_name(-1).decode(), "int8_entries": int8_entries(lib)}
    try:
        import onnx
        env["onnx"] = onnx.__version__
        ort = ort_module(gpu)
        env.update(onnxruntime=ort.__version__, onnxruntime_file=ort.__file__,
                   onnxruntime_providers=ort.get_available_providers())
    except ImportError as e:
        env["onnxruntime"] = f"not importable: {e}"
    if gpu:
        props = torch.cuda.get_device_properties(0)
        env.update(device=torch.cuda.get_device_name(),
                   capability=".".join(map(str, torch.cuda.get_device_capability())),
                   sm_count=props.multi_processor_count, memory_gib=round(props.total_memory / 2**30, 1))
        try:
            env["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                           capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            env["driver"] = None
    else:
        env["device"] = "none (--cpu-only dry run)"
    try:
        env["git_commit"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                                           text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        env["git_commit"] = None
    return env


def _summary_kernels(k: dict) -> None:
    how = "dry run: the CUDA column is the CPU kernel again" if k["dry_run"] else "CUDA vs CPU vs reference"
    print(f"\n[1] kernels through the C entries ({how})")
    print(f"  {'op':<14} {'code':<6} {'bit-exact':>10}  failed")
    for s in k["by_op"]:
        print(f"  {s['op']:<14} {s['code_type']:<6} {s['ok']:>4}/{s['cases']:<5}  {', '.join(s['failed'][:4])}")
    if "int8" not in k["code_types"]:
        print("  int8: the library exports no _i8 entries (they are checked as soon as hasattr finds them)")
    timed = [r for r in k["rows"] if r.get("cuda_ms") is not None]
    if timed:
        print(f"  {'timed case (uint8)':<40} {'cuda ms':>9} {'cpu ms':>9} {'torch fp32':>10}")
        for r in timed:
            print(f"  {r['op'] + ' ' + r['case']:<40.40} {r['cuda_ms']:>9.3f} {r['cpu_ms']:>9.3f} "
                  f"{r['torch_fp32_ms']:>10.3f}")


def _summary_models(m: dict) -> None:
    print("\n[2] models: logits vs the cpu-target model on the CPU EP (np.array_equal); top-1 % of the cpu target")
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


def _summary_placement(p: dict) -> None:
    print("\n[3] placement: CUDA-only session, CPU fallback disabled, verbose log, one profiled run")
    for r in p["rows"]:
        verdict = "control" if r["control"] else ("ok" if r["ok"] else "FAIL")
        print(f"  {r['model']:<13} {r['config']:<15} {r['target']}-target  loaded {str(r.get('loaded')):<5} "
              f"memcpy {r.get('memcpy_nodes')}  nodes {r.get('profile_nodes')}  {verdict}")


def _summary_timing(t: dict) -> None:
    print("\n[4] timing, CUDA EP, io_binding on the device: median ms per batch ('+g': under a CUDA graph); "
          "ratios int8 / float, plain and +g")
    kinds = ("fqvit_int8", "fqvit_int8+graph", "fp32", "fp32+graph", "fp16", "fp16+graph")
    heads = "".join(f"{k.replace('fqvit_', '').replace('+graph', '+g'):>9}" for k in kinds)
    print(f"  {'model':<11} {'batch':>5}{heads}{'int8/fp32':>13}{'int8/fp16':>13}")
    for r in t["rows"]:
        v = r["variants"]

        def ratio(a: str, b: str) -> str:
            return f"{v[a]['ms'] / v[b]['ms']:.2f}" if a in v and b in v else "-"
        cells = "".join(f"{v[k]['ms']:>9.2f}" if k in v else f"{'n/a':>9}" for k in kinds)
        ratios = "".join(f"{ratio('fqvit_int8', f) + ' | ' + ratio('fqvit_int8+graph', f + '+graph'):>13}"
                         for f in ("fp32", "fp16"))
        print(f"  {r['model']:<11} {r['batch']:>5}{cells}{ratios}")
    errs = {(r["model"], k): e for r in t["rows"] for k, e in r["graph_errors"].items()}
    for (model, kind), e in list(errs.items())[:6]:
        print(f"  no CUDA graph for {model} {kind}: {e[:150]}")


def _summary_bandwidth(b: dict) -> None:
    print(f"\n[5] kernel bandwidth at deit_base batch-64 shapes (bytes read + written / time); device-to-device "
          f"copy {b['copy']['GB_per_s']:.0f} GB/s")
    for r in b["rows"]:
        print(f"  {r['op']:<14} {r['code_type']:<6} {'x'.join(map(str, r['shape'])):<18} {r['ms']:>8.3f} ms "
              f"{r['GB_per_s']:>8.1f} GB/s {r['pct_of_copy']:>6.1f}% of copy")


def print_summary(report: dict) -> None:
    """One summary: a short table per phase (or the line saying why it was skipped), the failures, the verdict."""
    env, ph = report["environment"], report["phases"]
    print(f"\n==== gpu_check summary: {env.get('device')}, torch {env['torch']} (CUDA {env['torch_cuda']}), "
          f"onnxruntime {env.get('onnxruntime')}, {Path(env['library']).name} "
          f"({env.get('library_cuda_architectures')}) ====")
    printers = (("kernels", "1", "kernels", _summary_kernels), ("models", "2", "models", _summary_models),
                ("placement", "3", "placement", _summary_placement), ("timing", "4", "timing", _summary_timing),
                ("bandwidth", "5", "kernel bandwidth", _summary_bandwidth))
    for key, num, title, show in printers:
        v = ph.get(key)
        if isinstance(v, str):
            print(f"\n[{num}] {title}: {v}")
        elif isinstance(v, dict) and "error" in v:
            print(f"\n[{num}] {title}: CRASHED: {v['error'][:200]}")
        elif isinstance(v, dict):
            show(v)
    print("\nphase seconds: " + ", ".join(f"{k} {v}" for k, v in report["seconds"].items()))
    fails = report["failures"]
    if fails:
        print(f"\nFAILED ({len(fails)}):")
        for f in fails[:30]:
            print(f"  {f}")
    print(f"\nRESULT: {'ALL CHECKS PASSED' if not fails else f'{len(fails)} CHECK(S) FAILED'}"
          f"{' (dry run without a GPU: phases 1-2 on the CPU only)' if report['dry_run'] else ''}")


def write_json(out: Path, report: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(report, indent=1, default=str) + "\n")
    os.replace(tmp, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-build", action="store_true",
                        help="use the existing libfqvit_ops_cuda.so (fqvit_export/lib/ or the installed package's)")
    parser.add_argument("--lib", help="path of libfqvit_ops_cuda.so to load")
    parser.add_argument("--quick", action="store_true", help="fewer kernel cases, images and repetitions")
    parser.add_argument("--cpu-only", action="store_true",
                        help="dry run without a GPU: kernels and both export targets on the CPU; GPU parts skipped")
    parser.add_argument("--skip-timing", action="store_true", help="no timing (phases 4 and 5, kernel times)")
    parser.add_argument("--images", type=int, help="CIFAR-10 test images per model (default 1000, --quick 200)")
    parser.add_argument("--out", type=Path, help="JSON report (default bench/results/gpu_check.json; "
                                                 "--cpu-only: bench/results/gpu_check_dry_run.json)")
    parser.add_argument("--placement-child", help=argparse.SUPPRESS)
    parser.add_argument("--allow-fallback", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profile-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.placement_child:
        return placement_child(args.placement_child, args.lib, args.allow_fallback, args.profile_dir)
    gpu = not args.cpu_only
    if gpu and not torch.cuda.is_available():
        print("gpu_check: torch sees no CUDA device (use --cpu-only for a dry run)")
        return 2
    if gpu:
        ort = ort_module(True)
        if CUDA_EP not in ort.get_available_providers():
            print(f"gpu_check: onnxruntime {ort.__version__} ({ort.__file__}) has no {CUDA_EP}: install "
                  "onnxruntime-gpu (e.g. pip install --no-deps --target /tmp/site onnxruntime-gpu==1.31.1 and run "
                  "with PYTHONPATH=/tmp/site)")
            return 2
    t_start = time.perf_counter()
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    path = build(args.no_build, args.lib)
    seconds["build"] = round(time.perf_counter() - t0, 1)
    lib = load(path)
    ops = Ops(lib)
    env = environment(gpu, path, lib)
    print(f"library {path}\nGPU {env.get('device')} (torch {torch.__version__}, CUDA {torch.version.cuda}); "
          f"onnxruntime {env.get('onnxruntime')}; CPU kernels {env['cpu_kernel_isa']}; "
          f"int8 entries {'yes' if env['int8_entries'] else 'no'}", flush=True)
    images = args.images or (200 if args.quick else 1000)
    timing = gpu and not args.skip_timing
    phases: dict[str, object] = {}
    failures: list[str] = []

    def phase(key: str, fn: Callable[[], dict]) -> dict | None:
        t = time.perf_counter()
        print(f"\n--- {key} ---", flush=True)
        try:
            result = fn()
            failures.extend(result.get("failures", []))
            phases[key] = result
        except Exception as e:  # noqa: BLE001 - one phase's crash is reported; the others still run
            traceback.print_exc()
            phases[key] = {"error": f"{type(e).__name__}: {e}"[:1000]}
            failures.append(f"{key}: crashed: {type(e).__name__}: {e}"[:300])
            result = None
        seconds[key] = round(time.perf_counter() - t, 1)
        return result

    phase("kernels", lambda: kernel_checks(ops, gpu, args.quick, timing))
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        workdir = Path(tmp)
        models = phase("models", lambda: model_checks(path, gpu, images, workdir))
        if not gpu:
            phases["placement"] = NO_GPU
        elif models and models["paths"]:
            phase("placement", lambda: placement_checks(models["paths"], path, workdir))
        else:
            phases["placement"] = "skipped: no exported models (phase 2 failed)"
            failures.append("placement: not run, no exported models")
        if models:
            models["paths"] = {f"{k[0]} {k[1]}": {t: str(p) for t, p in v.items()} for k, v in models["paths"].items()}
        if timing:
            phase("timing", lambda: timing_phase(path, args.quick, workdir))
            phase("bandwidth", lambda: bandwidth_phase(ops))
        else:
            phases["timing"] = phases["bandwidth"] = NO_GPU if not gpu else "skipped: --skip-timing"
    seconds["total"] = round(time.perf_counter() - t_start, 1)
    report = {"description": "tools/gpu_check.py: com.fqvit CUDA kernels and cuda-target models, bit-exact checks, "
                             "placement, timing (issue #11)",
              "command": "python tools/gpu_check.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "dry_run": not gpu, "environment": env, "phases": phases, "seconds": seconds, "failures": failures,
              "ok": not failures}
    out = args.out or ROOT / "bench" / "results" / ("gpu_check.json" if gpu else "gpu_check_dry_run.json")
    print_summary(report)
    write_json(out, report)
    print(f"wrote {out}")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
