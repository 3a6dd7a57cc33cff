"""Check the com.fqvit CUDA kernels bit for bit on a GPU machine that has torch (CUDA) but no onnxruntime-gpu.

Builds ``libfqvit_ops_cuda.so`` (tools/build_custom_ops.sh; needs cmake, ninja, nvcc and the onnxruntime headers in
build/ort-headers/ or ORT_INCLUDE_DIR), loads it with ctypes and calls the plain C entry points of every kernel
(``fqvit_ops/c_api.h``): the CUDA kernels on torch CUDA tensors, the CPU kernels on the same inputs in host memory, and
the PyTorch reference (``fqvit_export.ops.reference``) on the CPU. Every output element must agree across the three.
Then it times each CUDA kernel (CUDA events) against the single-threaded CPU kernel and, for context, torch's float
op on the GPU, and prints one summary. Exit status 0 when everything matches. The cases are the shared tables of
``tests/op_cases.py`` (the ones the pytest harnesses run), plus unaligned CUDA inputs and outputs for Lookup.

    python tools/gpu_check.py [--no-build] [--lib PATH] [--quick]
    python tools/gpu_check.py --cpu-only --no-build   # dry run without a GPU: CPU kernels vs the reference only
"""
from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
import op_cases as O  # noqa: E402  (the case tables every harness shares)

_u8p = ctypes.POINTER(ctypes.c_uint8)
_f32p = ctypes.POINTER(ctypes.c_float)
_i64p = ctypes.POINTER(ctypes.c_int64)
_i32, _i64, _f32, _int, _vp = ctypes.c_int32, ctypes.c_int64, ctypes.c_float, ctypes.c_int, ctypes.c_void_p


# --- the library ------------------------------------------------------------------------------------------------------

def build(no_build: bool, lib: str | None) -> Path:
    if lib:
        return Path(lib)
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
            print(f"built in {time.time() - t0:.0f} s")
    if not target.is_file():
        sys.exit(f"gpu_check: {target} not found (build it or pass --lib)")
    return target


def load(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    lib.fqvit_last_error.restype = ctypes.c_char_p
    lib.fqvit_cpu_isa_name.restype = ctypes.c_char_p
    lib.fqvit_cpu_isa_name.argtypes = [_int]
    ln = [_vp, _vp, _vp, _vp, _vp, _i64, _i64, _f32, _i32, _f32, _f32, _i32]
    lib.fqvit_pts_layernorm_cpu.argtypes = ln + [_int]
    lib.fqvit_pts_layernorm_cuda.argtypes = ln + [_vp]
    lis = [_vp, _i64p, _int, _vp, _i64p, _int, _vp, _i64, _int]
    lib.fqvit_log_int_softmax_cpu.argtypes = lis + [_int]
    lib.fqvit_log_int_softmax_cuda.argtypes = lis + [_vp]
    mm = [_vp, _vp, _vp, _i64, _i64, _i64, _i64, _f32, _i32, _f32, _i32, _int]
    lib.fqvit_lis_matmul_cpu.argtypes = mm + [_int]
    lib.fqvit_lis_matmul_cuda.argtypes = mm + [_vp]
    lk = [_vp, _vp, _vp, _i64, _i64]
    lib.fqvit_lookup_cpu.argtypes = lk + [_int]
    lib.fqvit_lookup_cuda.argtypes = lk + [_vp]
    rq = [_vp, _vp, _vp, _vp, _i64, _i64, _i64, _i64, _f32, _i32]
    lib.fqvit_requantize_cpu.argtypes = rq + [_int]
    lib.fqvit_requantize_cuda.argtypes = rq + [_vp]
    for name in ("pts_layernorm", "log_int_softmax", "lis_matmul", "lookup", "requantize"):
        for dev in ("cpu", "cuda"):
            getattr(lib, f"fqvit_{name}_{dev}").restype = _int
    return lib


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
    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib

    def pts_layernorm(self, device: str, x, xs, xzp, alpha, gamma, beta, ys, yzp, eps):
        y = torch.empty_like(x)
        rows, c = x.numel() // x.shape[-1], x.shape[-1]
        args = [_ptr(x), _ptr(alpha), _ptr(gamma), _ptr(beta), _ptr(y), rows, c, xs, xzp, eps, ys, yzp]
        if device == "cpu":
            _check(self.lib, self.lib.fqvit_pts_layernorm_cpu(*args, -1), "fqvit_pts_layernorm_cpu")
        else:
            _check(self.lib, self.lib.fqvit_pts_layernorm_cuda(*args, _stream()), "fqvit_pts_layernorm_cuda")
        return y

    def log_int_softmax(self, device: str, x, mask, mult, bits):
        y = torch.empty_like(x)
        mshape = _shape(mask.shape) if mask is not None else None
        args = [_ptr(x), _shape(x.shape), x.dim(), _ptr(mask), mshape, 0 if mask is None else mask.dim(), _ptr(y),
                mult, bits]
        if device == "cpu":
            _check(self.lib, self.lib.fqvit_log_int_softmax_cpu(*args, -1), "fqvit_log_int_softmax_cpu")
        else:
            _check(self.lib, self.lib.fqvit_log_int_softmax_cuda(*args, _stream()), "fqvit_log_int_softmax_cuda")
        return y

    def lis_matmul(self, device: str, a, v, vs, vzp, ys, yzp, bits):
        m, n, d = a.shape[-2], a.shape[-1], v.shape[-1]
        batch = a.numel() // (m * n) if m * n else 0
        y = torch.empty((*a.shape[:-1], d), dtype=torch.uint8, device=a.device)
        args = [_ptr(a), _ptr(v), _ptr(y), batch, m, n, d, vs, vzp, ys, yzp, bits]
        if device == "cpu":
            _check(self.lib, self.lib.fqvit_lis_matmul_cpu(*args, -1), "fqvit_lis_matmul_cpu")
        else:
            _check(self.lib, self.lib.fqvit_lis_matmul_cuda(*args, _stream()), "fqvit_lis_matmul_cuda")
        return y

    def lookup(self, device: str, x, table, y_offset: int = 0):
        """``y_offset`` > 0 writes into a buffer at that byte offset (an unaligned output)."""
        buf = torch.empty(x.numel() + y_offset, dtype=torch.uint8, device=x.device)
        y = buf[y_offset:].view(x.shape)
        args = [_ptr(x), _ptr(table), _ptr(y), x.numel(), table.numel()]
        if device == "cpu":
            _check(self.lib, self.lib.fqvit_lookup_cpu(*args, -1), "fqvit_lookup_cpu")
        else:
            _check(self.lib, self.lib.fqvit_lookup_cuda(*args, _stream()), "fqvit_lookup_cuda")
        return y

    def requantize(self, device: str, a, m, b, ys, yzp):
        y = torch.empty(a.shape, dtype=torch.uint8, device=a.device)
        args = [_ptr(a), _ptr(m), _ptr(b), _ptr(y), a.numel(), a.shape[-1], m.numel(), b.numel(), ys, yzp]
        if device == "cpu":
            _check(self.lib, self.lib.fqvit_requantize_cpu(*args, -1), "fqvit_requantize_cpu")
        else:
            _check(self.lib, self.lib.fqvit_requantize_cuda(*args, _stream()), "fqvit_requantize_cuda")
        return y


# --- cases: the shared tables of tests/op_cases.py ----------------------------------------------------------------

def prepare(inputs: dict, device) -> dict[str, torch.Tensor]:
    """The numpy inputs of one case as contiguous torch tensors on ``device``."""
    return {k: torch.from_numpy(np.array(v)).to(device) for k, v in inputs.items()}


def call(ops: Ops, where: str, op: str, t: dict[str, torch.Tensor], inputs: dict, attrs: dict,
         y_offset: int = 0) -> torch.Tensor:
    """Run ``op`` on the CPU or CUDA kernel (``where``) through its C entry point; scalars come from the host
    ``inputs`` (no device-to-host copy)."""
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
    return ops.requantize(where, t["A"], t["multiplier"], t["bias"], float(inputs["y_scale"]),
                          int(inputs["y_zero_point"]))


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


# --- checking and timing ----------------------------------------------------------------------------------------------

def _cuda_ms(fn, reps: int = 20) -> float:
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


def _cpu_ms(fn, reps: int = 5) -> float:
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _diff(a: torch.Tensor, b: torch.Tensor) -> int:
    a, b = a.cpu(), b.cpu()
    if a.shape != b.shape or a.dtype != b.dtype:
        return max(a.numel(), b.numel(), 1)
    return int((a != b).sum())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-build", action="store_true",
                        help="use the existing fqvit_export/lib/libfqvit_ops_cuda.so")
    parser.add_argument("--lib", help="path of libfqvit_ops_cuda.so to load")
    parser.add_argument("--quick", action="store_true", help="fewer cases")
    parser.add_argument("--cpu-only", action="store_true",
                        help="dry run without a GPU: the CUDA column repeats the CPU kernel (checks this script)")
    args = parser.parse_args(argv)
    cpu_only = args.cpu_only
    if not cpu_only and not torch.cuda.is_available():
        print("gpu_check: torch sees no CUDA device (use --cpu-only for a dry run)")
        return 2
    path = build(args.no_build, args.lib)
    ops = Ops(load(path))
    dev = torch.device("cpu" if cpu_only else "cuda")
    gpu = "none (--cpu-only dry run)" if cpu_only else torch.cuda.get_device_name()
    print(f"library {path}\nGPU {gpu} (torch {torch.__version__}, CUDA {torch.version.cuda}); "
          f"CPU kernels: {ops.lib.fqvit_cpu_isa_name(-1).decode()}, single thread")
    if cpu_only:  # route the "cuda" calls to the CPU kernels and time nothing on a GPU
        real = ops

        class _CpuOnly:
            def __getattr__(self, name):
                fn = getattr(real, name)
                return lambda device, *a: fn("cpu", *a)

        ops = _CpuOnly()  # type: ignore[assignment]
        globals()["_cuda_ms"] = lambda fn, reps=20: None
        torch.cuda.synchronize = lambda: None  # type: ignore[assignment]
    rows, failures = [], 0

    def record(op: str, name: str, cuda_out, cpu_out, ref_out, t_cuda: float | None, t_cpu: float | None,
               t_float: float | None) -> None:
        nonlocal failures
        d_cpu, d_ref, d_cpu_ref = _diff(cuda_out, cpu_out), _diff(cuda_out, ref_out), _diff(cpu_out, ref_out)
        ok = d_cpu == 0 and d_ref == 0 and d_cpu_ref == 0
        failures += not ok
        rows.append((op, name, ok, d_cpu, d_ref, d_cpu_ref, t_cuda, t_cpu, t_float))

    for op in O.CASES:
        for name in O.params(op):
            case = O.build(op, name)
            numel = max(a.size for a in case.inputs.values())
            if args.quick and numel > 1_000_000:
                continue
            host, dev_t = prepare(case.inputs, "cpu"), prepare(case.inputs, dev)
            ref = torch.from_numpy(O.reference(op, case))
            offsets = (0, 3) if op == "Lookup" and numel > 50_000 else (0,)  # 3: an unaligned CUDA output
            for y_off in offsets:
                cuda_out = call(ops, "cuda", op, dev_t, case.inputs, case.attrs, y_off)
                torch.cuda.synchronize()
                cpu_out = call(ops, "cpu", op, host, case.inputs, case.attrs, y_off)
                big = numel >= 400_000 and y_off == 0
                record(op, name + (f" y+{y_off}" if y_off else ""), cuda_out, cpu_out, ref,
                       _cuda_ms(lambda: call(ops, "cuda", op, dev_t, case.inputs, case.attrs)) if big else None,
                       _cpu_ms(lambda: call(ops, "cpu", op, host, case.inputs, case.attrs)) if big else None,
                       _cuda_ms(_float_op(op, dev_t, case.inputs, case.attrs)) if big else None)
            if op == "Lookup" and numel > 50_000:  # an unaligned CUDA input: a view one byte into a buffer
                x = host["X"].reshape(-1)
                dx = torch.cat([torch.zeros(1, dtype=torch.uint8), x]).to(dev)[1:]
                t_unaligned = {"X": dx, "table": dev_t["table"]}
                record(op, name + " x+1", call(ops, "cuda", op, t_unaligned, case.inputs, case.attrs),
                       call(ops, "cpu", op, {"X": x, "table": host["table"]}, case.inputs, case.attrs),
                       ref.reshape(-1), None, None, None)

    def fmt(t: float | None) -> str:
        return f"{t:9.3f}" if t is not None else " " * 9

    print(f"\n{'op':<14} {'case':<44} {'ok':<4} {'cuda!=cpu':>9} {'cuda!=ref':>9} {'cpu!=ref':>8}"
          f" {'cuda ms':>9} {'cpu ms':>9} {'torch fp32':>10}")
    for op, name, ok, d1, d2, d3, t1, t2, t3 in rows:
        print(f"{op:<14} {name[:44]:<44} {'yes' if ok else 'NO':<4} {d1:>9} {d2:>9} {d3:>8} {fmt(t1)} {fmt(t2)} "
              f"{fmt(t3):>10}")
    if cpu_only:
        print("(dry run: the CUDA column is the CPU kernel again)")
    print(f"\nSUMMARY: {len(rows) - failures}/{len(rows)} cases bit-exact (CUDA vs CPU kernel vs PyTorch reference); "
          f"{'ALL OK' if failures == 0 else f'{failures} FAILED'}. Times: median, CUDA events for the GPU, "
          "one CPU thread for the CPU kernels; 'torch fp32' is the float op on the GPU for scale.")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
