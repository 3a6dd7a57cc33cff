"""Check the com.fqvit CUDA kernels bit for bit on a GPU machine that has torch (CUDA) but no onnxruntime-gpu.

Builds ``libfqvit_ops_cuda.so`` (tools/build_custom_ops.sh; needs cmake, ninja, nvcc and the onnxruntime headers in
build/ort-headers/ or ORT_INCLUDE_DIR), loads it with ctypes and calls the plain C entry points of every kernel
(``fqvit_ops/c_api.h``): the CUDA kernels on torch CUDA tensors, the CPU kernels on the same inputs in host memory, and
the PyTorch reference (``fqvit_export.ops.reference``) on the CPU. Every output element must agree across the three.
Then it times each CUDA kernel (CUDA events) against the single-threaded CPU kernel and, for context, torch's float
op on the GPU, and prints one summary. Exit status 0 when everything matches.

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

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from fqvit_export.ops import reference as R  # noqa: E402

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


# --- cases ------------------------------------------------------------------------------------------------------------

def _u8(g: torch.Generator, shape, lo: int = 0, hi: int = 256) -> torch.Tensor:
    return torch.randint(lo, hi, shape, generator=g, dtype=torch.uint8)


def pts_cases(g: torch.Generator, quick: bool):
    shapes = [((8, 197, 384), None, 1e-6), ((8, 197, 768), None, 1e-6), ((5, 1), None, 1e-5), ((7, 97), None, 0.0),
              ((3, 1024), None, 1e-5), ((2, 4096), None, 1e-5), ((4, 49, 96), None, 1e-5), ((70000, 16), None, 1e-5),
              ((6, 64), 77, 0.0), ((6, 64), 77, 1e-5), ((3, 33), 200, 0.0)]
    if quick:
        shapes = shapes[:4] + shapes[-2:]
    for shape, const, eps in shapes:
        for alpha_mode in ("random", 0, 3):
            c = shape[-1]
            x = torch.full(shape, const, dtype=torch.uint8) if const is not None else _u8(g, shape)
            alpha = _u8(g, (c,), 0, 4) if alpha_mode == "random" else torch.full((c,), alpha_mode, dtype=torch.uint8)
            gamma = torch.rand(c, generator=g) * 4 - 2
            beta = torch.rand(c, generator=g) * 2 - 1
            xs = float(torch.rand(1, generator=g) * 0.1 + 0.002)
            ys = float(torch.rand(1, generator=g) * 0.07 + 0.01)
            xzp, yzp = int(torch.randint(0, 256, (1,), generator=g)), int(torch.randint(0, 256, (1,), generator=g))
            yield f"{list(shape)} alpha={alpha_mode} eps={eps}" + (f" const={const}" if const is not None else ""), \
                (x, xs, xzp, alpha, gamma, beta, ys, yzp, eps)


def lis_cases(g: torch.Generator, quick: bool):
    swin_mask = torch.rand((1, 4, 1, 49, 49), generator=g) < 0.3
    swin_mask[0, 1, 0, 3, :] = True
    cases = [
        ("deit [8,6,197,197]", _u8(g, (8, 6, 197, 197)), torch.zeros(1, dtype=torch.bool), R.lis_multiplier(0.05), 4),
        ("vit-b [8,12,197,197]", _u8(g, (8, 12, 197, 197)), None, R.lis_multiplier(0.05), 4),
        ("swin mask [2,4,3,49,49]", _u8(g, (2, 4, 3, 49, 49)), swin_mask, R.lis_multiplier(0.06), 4),
        ("all equal", torch.full((3, 197), 42, dtype=torch.uint8), None, 5000, 4),
        ("one dominant", torch.eye(197, dtype=torch.uint8)[:5] * 255, None, 20000, 4),
        ("multiplier 0", _u8(g, (4, 33)), None, 0, 4),
        ("multiplier 1", _u8(g, (4, 33)), None, 1, 4),
        ("multiplier 2^31-1", _u8(g, (4, 70)), None, 2**31 - 1, 4),
        ("bits 2", _u8(g, (8, 197)), None, 3000, 2),
        ("bits 1", _u8(g, (8, 50)), None, 3000, 1),
        ("N=1000", _u8(g, (3, 1000)), None, 4000, 4),
        ("many rows [100000,7]", _u8(g, (100000, 7)), torch.rand((100000, 7), generator=g) < 0.3, 2000, 3),
    ]
    return cases[:6] if quick else cases


def lismm_cases(g: torch.Generator, quick: bool):
    def lis_codes(shape, bits=4):
        return R.log_int_softmax(_u8(g, shape), int(torch.randint(500, 6000, (1,), generator=g)), bits)

    cases = [
        ("deit [8,6,197,197]x64", lis_codes((8, 6, 197, 197)), _u8(g, (8, 6, 197, 64)), 4),
        ("vit-b [8,12,197,197]x64", lis_codes((8, 12, 197, 197)), _u8(g, (8, 12, 197, 64)), 4),
        ("swin [32,4,49,49]x32", lis_codes((32, 4, 49, 49)), _u8(g, (32, 4, 49, 32)), 4),
        ("bits 2", lis_codes((2, 50, 50), 2), _u8(g, (2, 50, 64)), 2),
        ("D=65 N=77", lis_codes((2, 31, 77)), _u8(g, (2, 77, 65)), 4),
        ("arbitrary bytes", _u8(g, (2, 11, 37)), _u8(g, (2, 37, 40)), 4),
        ("codes 0, N=3000 (int64)", torch.zeros((1, 7, 3000), dtype=torch.uint8),
         torch.full((1, 3000, 24), 255, dtype=torch.uint8), 4),
    ]
    return cases[:3] + cases[-2:] if quick else cases


def lookup_cases(g: torch.Generator, quick: bool):
    """(name, X, table, y_offset); X may be an unaligned view (``[1:]``) to exercise the byte-wise CUDA loop."""
    from fqvit_export.quant.primitives import gelu_table

    gelu = gelu_table(torch.tensor(0.047), torch.tensor(97), torch.tensor(0.031), torch.tensor(12))
    cases = [
        ("deit-s mlp [8,197,1536] gelu", _u8(g, (8, 197, 1536)), gelu, 0),
        ("[8,197,768] random table", _u8(g, (8, 197, 768)), _u8(g, (256,)), 0),
        ("every code", torch.arange(256, dtype=torch.uint8), _u8(g, (256,)), 0),
        ("every code, reversed table", torch.arange(256, dtype=torch.uint8),
         torch.arange(255, -1, -1, dtype=torch.uint8), 0),
        ("one element", torch.tensor([255], dtype=torch.uint8), _u8(g, (256,)), 0),
        ("odd 1000003", _u8(g, (1000003,)), _u8(g, (256,)), 0),
        ("unaligned x [1:] 100001", _u8(g, (100002,))[1:], _u8(g, (256,)), 0),
        ("unaligned y +3, 100001", _u8(g, (100001,)), _u8(g, (256,)), 3),
        ("empty", torch.empty(0, dtype=torch.uint8), _u8(g, (256,)), 0),
    ]
    return cases[:1] + cases[2:5] + cases[6:] if quick else cases


def requantize_cases(g: torch.Generator, quick: bool):
    """(name, A int32, multiplier, bias, y_scale, y_zero_point)."""

    def acc(shape, lo=-2**20, hi=2**20):
        return torch.randint(lo, hi, shape, generator=g, dtype=torch.int64).to(torch.int32)

    def mult(n):
        return (torch.rand(n, generator=g) * 1.5 + 0.5) * 1e-6

    def bias(n):
        return torch.rand(n, generator=g) * 2 - 1

    big = acc((3000,), -2**31, 2**31)
    big[:3] = torch.tensor([2**31 - 1, -2**31, 2**24 + 1], dtype=torch.int32)
    k = torch.randint(0, 128, (13, 70), generator=g) + 2**24
    sign = torch.where(torch.arange(70) % 2 == 1, -1, 1)
    conv_bias = torch.where(torch.arange(70) % 2 == 1, 2.0**24, -2.0**24)
    small = acc((11, 45), -600, 600)
    one = torch.ones(1)
    cases = [
        ("deit-s qkv [8,197,1152] per-channel", acc((8, 197, 1152)), mult(1152), bias(1152), 0.02, 128),
        ("[8,197,384] scalar m and b", acc((8, 197, 384)), mult(1), bias(1), 0.02, 100),
        ("any int32, saturating", big.view(30, 100), torch.ones(100), torch.zeros(1), 1e-3, 7),
        ("any int32, m 1e-7", big.view(30, 100), torch.full((100,), 1e-7), bias(100), 0.5, 128),
        ("f32(A) conversion ties", (k * sign).to(torch.int32), one, conv_bias, 1.0, 128),
        (".5 ties m=0.5", small, 0.5 * one, 0 * one, 1.0, 128),
        (".5 ties after division", small, 0.125 * one, 0 * one, 0.25, 100),
        ("N=1, 70001 rows", acc((70001, 1)), mult(1), bias(1), 0.03, 9),
        ("odd N=97", acc((3, 7, 97)), mult(97), bias(97), 0.05, 200),
        ("empty", torch.empty((0, 16), dtype=torch.int32), mult(16), bias(16), 0.1, 0),
    ]
    return cases[:1] + cases[2:7] + cases[-1:] if quick else cases


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
    g = torch.Generator().manual_seed(0)
    rows, failures = [], 0

    def record(op: str, name: str, cuda_out, cpu_out, ref_out, t_cuda: float | None, t_cpu: float | None,
               t_float: float | None) -> None:
        nonlocal failures
        d_cpu, d_ref, d_cpu_ref = _diff(cuda_out, cpu_out), _diff(cuda_out, ref_out), _diff(cpu_out, ref_out)
        ok = d_cpu == 0 and d_ref == 0 and d_cpu_ref == 0
        failures += not ok
        rows.append((op, name, ok, d_cpu, d_ref, d_cpu_ref, t_cuda, t_cpu, t_float))

    for name, (x, xs, xzp, alpha, gamma, beta, ys, yzp, eps) in pts_cases(g, args.quick):
        dx, da, dg, db = (t.to(dev) for t in (x, alpha, gamma, beta))
        cuda_out = ops.pts_layernorm("cuda", dx, xs, xzp, da, dg, db, ys, yzp, eps)
        torch.cuda.synchronize()
        cpu_out = ops.pts_layernorm("cpu", x, xs, xzp, alpha, gamma, beta, ys, yzp, eps)
        ref = R.pts_layernorm(x, torch.tensor(xs), xzp, alpha, gamma, beta, torch.tensor(ys), yzp, eps)
        big = x.numel() >= 500_000
        xf = dx.float()
        record("PTSLayerNorm", name, cuda_out, cpu_out, ref,
               _cuda_ms(lambda: ops.pts_layernorm("cuda", dx, xs, xzp, da, dg, db, ys, yzp, eps)) if big else None,
               _cpu_ms(lambda: ops.pts_layernorm("cpu", x, xs, xzp, alpha, gamma, beta, ys, yzp, eps)) if big else None,
               _cuda_ms(lambda: torch.nn.functional.layer_norm(xf, (x.shape[-1],), dg, db, eps)) if big else None)

    for name, x, mask, mult, bits in lis_cases(g, args.quick):
        dx, dm = x.to(dev), (mask.to(dev) if mask is not None else None)
        cuda_out = ops.log_int_softmax("cuda", dx, dm, mult, bits)
        torch.cuda.synchronize()
        cpu_out = ops.log_int_softmax("cpu", x, mask, mult, bits)
        ref = R.log_int_softmax(x, mult, bits, mask)
        big = x.numel() >= 1_000_000
        xf = dx.float()
        record("LogIntSoftmax", name, cuda_out, cpu_out, ref,
               _cuda_ms(lambda: ops.log_int_softmax("cuda", dx, dm, mult, bits)) if big else None,
               _cpu_ms(lambda: ops.log_int_softmax("cpu", x, mask, mult, bits)) if big else None,
               _cuda_ms(lambda: torch.softmax(xf, -1)) if big else None)

    for name, a, v, bits in lismm_cases(g, args.quick):
        vs, vzp, ys, yzp = 0.05, int(torch.randint(0, 256, (1,), generator=g)), 0.02, 128
        if "int64" in name:
            vzp = 0
        da, dv = a.to(dev), v.to(dev)
        cuda_out = ops.lis_matmul("cuda", da, dv, vs, vzp, ys, yzp, bits)
        torch.cuda.synchronize()
        cpu_out = ops.lis_matmul("cpu", a, v, vs, vzp, ys, yzp, bits)
        ref = R.lis_matmul(a, v, torch.tensor(vs), vzp, torch.tensor(ys), yzp, bits)
        big = a.numel() >= 1_000_000
        af, vf = da.float(), dv.float()
        record("LISMatMul", name, cuda_out, cpu_out, ref,
               _cuda_ms(lambda: ops.lis_matmul("cuda", da, dv, vs, vzp, ys, yzp, bits)) if big else None,
               _cpu_ms(lambda: ops.lis_matmul("cpu", a, v, vs, vzp, ys, yzp, bits)) if big else None,
               _cuda_ms(lambda: torch.matmul(af, vf)) if big else None)

    for name, x, table, y_off in lookup_cases(g, args.quick):
        dx, dt = x.to(dev), table.to(dev)
        if "unaligned x" in name:  # keep the odd offset on the device too
            dx = torch.cat([torch.zeros(1, dtype=torch.uint8), x]).to(dev)[1:]
        cuda_out = ops.lookup("cuda", dx, dt, y_off)
        torch.cuda.synchronize()
        cpu_out = ops.lookup("cpu", x, table, y_off)
        ref = R.lookup(x, table)
        big = x.numel() >= 1_000_000
        xf = dx.float()
        record("Lookup", name, cuda_out, cpu_out, ref,
               _cuda_ms(lambda: ops.lookup("cuda", dx, dt)) if big else None,
               _cpu_ms(lambda: ops.lookup("cpu", x, table)) if big else None,
               _cuda_ms(lambda: torch.nn.functional.gelu(xf)) if big else None)

    for name, a, m, b, ys, yzp in requantize_cases(g, args.quick):
        da, dm, db = a.to(dev), m.to(dev), b.to(dev)
        cuda_out = ops.requantize("cuda", da, dm, db, ys, yzp)
        torch.cuda.synchronize()
        cpu_out = ops.requantize("cpu", a, m, b, ys, yzp)
        ref = R.requantize(a, m, b, torch.tensor(ys), yzp)
        big = a.numel() >= 1_000_000
        af = da.float()
        record("Requantize", name, cuda_out, cpu_out, ref,
               _cuda_ms(lambda: ops.requantize("cuda", da, dm, db, ys, yzp)) if big else None,
               _cpu_ms(lambda: ops.requantize("cpu", a, m, b, ys, yzp)) if big else None,
               _cuda_ms(lambda: torch.clamp(torch.round((af * dm + db) / ys) + yzp, 0, 255).to(torch.uint8))
               if big else None)

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
