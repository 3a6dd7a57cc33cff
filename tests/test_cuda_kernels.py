"""The ``com.fqvit`` CUDA kernels against the CPU kernels and the PyTorch reference, bit for bit, on every case of the
shared tables (``tests/op_cases.py``).

The kernels are called through the plain C entry points of ``libfqvit_ops_cuda.so`` (``fqvit_ops/c_api.h``) with
ctypes on torch CUDA tensors, as ``tools/gpu_check.py`` does (its ``Ops`` wrapper and ``call`` are reused here), so
no onnxruntime-gpu is needed. Every case also runs in its int8 form (``op_cases.as_code_type``) through the int8
entries ``fqvit_<op>_<cpu|cuda>_i8`` (called here with a small ctypes wrapper of their own, ``_run_i8``), CUDA vs
CPU vs the reference. Skipped, with the reason, where torch sees no CUDA device or the CUDA variant of the library
is not built.
"""
from __future__ import annotations

import ctypes
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import op_cases as O
from fqvit_export.deploy.library import custom_ops_library
from fqvit_export.ops import spec as S

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import gpu_check  # noqa: E402

LIB = custom_ops_library(cuda=True)
pytestmark = pytest.mark.skipif(LIB is None, reason="libfqvit_ops_cuda.so not built (tools/build_custom_ops.sh with "
                                                    "nvcc)")
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible to torch")


@pytest.fixture(scope="module")
def ops() -> gpu_check.Ops:
    return gpu_check.Ops(gpu_check.load(Path(LIB)))


@needs_gpu
@pytest.mark.parametrize("op_type, case", [(op, name) for op in O.CASES for name in O.params(op)])
def test_cuda_vs_cpu_vs_reference(ops: gpu_check.Ops, op_type: str, case: str) -> None:
    c = O.build(op_type, case)
    want = O.reference(op_type, c)
    cuda = gpu_check.call(ops, "cuda", op_type, gpu_check.prepare(c.inputs, "cuda"), c.inputs, c.attrs)
    torch.cuda.synchronize()
    cpu = gpu_check.call(ops, "cpu", op_type, gpu_check.prepare(c.inputs, "cpu"), c.inputs, c.attrs)
    for name, got in (("CUDA", cuda.cpu().numpy()), ("CPU", cpu.numpy())):
        assert got.dtype == np.uint8 and got.shape == want.shape, (name, got.dtype, got.shape, want.shape)
        bad = np.flatnonzero(got != want)
        assert bad.size == 0, (f"{name}: {bad.size} of {want.size} elements differ; first at flat index {bad[0]}: "
                               f"got {got.flat[bad[0]]}, want {want.flat[bad[0]]}")


@needs_gpu
def test_cuda_rejects_alpha_above_3(ops: gpu_check.Ops) -> None:
    """As on the CPU, alpha > 3 is an error (checked on a host copy), not clamped."""
    c = O.build("PTSLayerNorm", "C7")
    c.inputs["alpha"][2] = 4
    with pytest.raises(RuntimeError, match="alpha values must be in 0..3"):
        gpu_check.call(ops, "cuda", "PTSLayerNorm", gpu_check.prepare(c.inputs, "cuda"), c.inputs, c.attrs)


# --- int8 codes: the _i8 entries of fqvit_ops/c_api.h ---------------------------------------------------------------

_V, _I64, _I32, _F, _INT = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32, ctypes.c_float, ctypes.c_int
_ARGS = {  # argument types before the trailing isa (CPU, int) or stream (CUDA, void*)
    "PTSLayerNorm": ("pts_layernorm", [_V, _V, _V, _V, _V, _I64, _I64, _F, _I32, _F, _F, _I32]),
    "LogIntSoftmax": ("log_int_softmax", [_V, _V, _INT, _V, _V, _INT, _V, _I64, _INT]),
    "LISMatMul": ("lis_matmul", [_V, _V, _V, _I64, _I64, _I64, _I64, _F, _I32, _F, _I32, _INT]),
    "Lookup": ("lookup", [_V, _V, _V, _I64, _I64]),
    "Requantize": ("requantize", [_V, _V, _V, _V, _I64, _I64, _I64, _I64, _F, _I32]),
}


def _run_i8(lib: ctypes.CDLL, where: str, op: str, c: O.Case) -> np.ndarray:
    """One int8 case through fqvit_<op>_<where>_i8 (``where``: cpu or cuda); the output as a numpy array."""
    base, argtypes = _ARGS[op]
    fn = getattr(lib, f"fqvit_{base}_{where}_i8")
    fn.argtypes = argtypes + [_V if where == "cuda" else _INT]
    fn.restype = ctypes.c_int
    dev = "cuda" if where == "cuda" else "cpu"
    i, a = c.inputs, c.attrs
    t = {k: torch.from_numpy(np.array(v)).to(dev) for k, v in i.items()}  # np.array keeps rank 0
    p = {k: v.data_ptr() for k, v in t.items()}
    keep = []  # host arrays whose pointers are passed

    def host_shape(shape) -> int:
        arr = (ctypes.c_int64 * max(len(shape), 1))(*shape)
        keep.append(arr)
        return ctypes.addressof(arr)

    tail = torch.cuda.current_stream().cuda_stream if where == "cuda" else -1
    if op == "PTSLayerNorm":
        x = t["X"]
        y = torch.empty_like(x)
        ch = x.shape[-1]
        rc = fn(p["X"], p["alpha"], p["gamma"], p["beta"], y.data_ptr(), x.numel() // ch, ch, float(i["x_scale"]),
                int(i["x_zero_point"]), float(a["epsilon"]), float(i["y_scale"]), int(i["y_zero_point"]), tail)
    elif op == "LogIntSoftmax":
        x = t["X"]
        y = torch.empty(x.shape, dtype=torch.uint8, device=dev)
        m = t.get("mask")
        rc = fn(p["X"], host_shape(x.shape), x.dim(), m.data_ptr() if m is not None else None,
                host_shape(m.shape) if m is not None else None, m.dim() if m is not None else 0, y.data_ptr(),
                int(a["multiplier"]), int(a["bits"]), tail)
    elif op == "LISMatMul":
        av, v = t["A"], t["V"]
        mm, n, d = av.shape[-2], av.shape[-1], v.shape[-1]
        batch = int(np.prod(av.shape[:-2], dtype=np.int64))
        y = torch.empty((*av.shape[:-1], d), dtype=torch.int8, device=dev)
        rc = fn(p["A"], p["V"], y.data_ptr(), batch, mm, n, d, float(i["v_scale"]), int(i["v_zero_point"]),
                float(i["y_scale"]), int(i["y_zero_point"]), int(a["bits"]), tail)
    elif op == "Lookup":
        y = torch.empty_like(t["X"])
        rc = fn(p["X"], p["table"], y.data_ptr(), t["X"].numel(), t["table"].numel(), tail)
    else:
        av = t["A"]
        y = torch.empty(av.shape, dtype=torch.int8, device=dev)
        rc = fn(p["A"], p["multiplier"], p["bias"], y.data_ptr(), av.numel(), av.shape[-1], t["multiplier"].numel(),
                t["bias"].numel(), float(i["y_scale"]), int(i["y_zero_point"]), tail)
    if rc != 0:
        lib.fqvit_last_error.restype = ctypes.c_char_p
        raise RuntimeError(lib.fqvit_last_error().decode())
    if where == "cuda":
        torch.cuda.synchronize()
    return y.cpu().numpy()


@pytest.fixture(scope="module")
def lib_i8() -> ctypes.CDLL:
    return ctypes.CDLL(str(LIB))


@needs_gpu
@pytest.mark.parametrize("op_type, case", [(op, name) for op in O.CASES for name in O.params(op)])
def test_cuda_int8_vs_cpu_vs_reference(lib_i8: ctypes.CDLL, op_type: str, case: str) -> None:
    c8 = O.as_code_type(op_type, O.build(op_type, case), "int8")
    want = O.reference(op_type, c8)
    want_dtype = np.int8 if S.op(op_type).outputs[0].dtype == "T" else np.uint8
    assert want.dtype == want_dtype
    for where in ("cuda", "cpu"):
        got = _run_i8(lib_i8, where, op_type, c8)
        assert got.dtype == want.dtype and got.shape == want.shape, (where, got.dtype, got.shape, want.shape)
        bad = np.flatnonzero(got != want)
        assert bad.size == 0, (f"{where} int8: {bad.size} of {want.size} elements differ; first at flat index "
                               f"{bad[0]}: got {got.flat[bad[0]]}, want {want.flat[bad[0]]}")


def test_cpu_int8_entries(lib_i8: ctypes.CDLL) -> None:
    """No GPU needed: the CPU int8 entries (and this file's ctypes wrapper) on every case against the reference."""
    for op_type in O.CASES:
        for case in O.params(op_type):
            c8 = O.as_code_type(op_type, O.build(op_type, case), "int8")
            want = O.reference(op_type, c8)
            got = _run_i8(lib_i8, "cpu", op_type, c8)
            assert got.dtype == want.dtype and got.shape == want.shape, (op_type, case, got.dtype, got.shape)
            assert np.array_equal(got, want), (op_type, case)


def test_cuda_architectures_listed_without_gpu(lib_i8: ctypes.CDLL) -> None:
    """The built architectures are readable without a GPU (no CUDA API call) and are the default list unless the
    build chose others (build_info.json says which)."""
    lib_i8.fqvit_cuda_architectures.restype = ctypes.c_char_p
    archs = lib_i8.fqvit_cuda_architectures().decode().split(",")
    assert archs and all(a.split("-")[0].isdigit() for a in archs), archs


@needs_gpu
def test_cuda_architectures_listed(lib_i8: ctypes.CDLL) -> None:
    lib_i8.fqvit_cuda_architectures.restype = ctypes.c_char_p
    archs = lib_i8.fqvit_cuda_architectures().decode().split(",")
    major, minor = torch.cuda.get_device_capability()
    assert archs and all(a.split("-")[0].isdigit() for a in archs), archs
    assert any(int(a.split("-")[0]) <= 10 * major + minor for a in archs), (archs, major, minor)
