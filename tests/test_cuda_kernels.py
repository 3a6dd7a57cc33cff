"""The ``com.fqvit`` CUDA kernels against the CPU kernels and the PyTorch reference, bit for bit, on every case of the
shared tables (``fqvit_export.testing.op_cases``).

The kernels are called through the plain C entry points of ``libfqvit_ops_cuda.so`` (``fqvit_ops/c_api.h``, bound
once in ``fqvit_export.deploy.capi``) on torch tensors (``fqvit_export.testing.c_entries``, which ``tools/gpu_check.py``
uses too), so no onnxruntime-gpu is needed. Every case also runs in its int8 form (``op_cases.as_code_type``), which
the tensors' dtype routes to the int8 entries ``fqvit_<op>_<cpu|cuda>_i8``, CUDA vs CPU vs the reference. The CPU
half of that, and the binding itself, run without a GPU. Skipped, with the reason, where torch sees no CUDA device or
the CUDA variant of the library is not built.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fqvit_export.deploy.capi import KernelError, KernelLibrary, address, entry_name
from fqvit_export.deploy.library import custom_ops_library
from fqvit_export.ops import spec as S
from fqvit_export.testing import op_cases as O
from fqvit_export.testing.c_entries import Ops, call, prepare

LIB = custom_ops_library(cuda=True)
pytestmark = pytest.mark.skipif(LIB is None, reason="libfqvit_ops_cuda.so not built (tools/build_custom_ops.sh with "
                                                    "nvcc)")
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible to torch")


@pytest.fixture(scope="module")
def ops() -> Ops:
    return Ops(KernelLibrary(LIB))


@needs_gpu
@pytest.mark.parametrize("op_type, case", [(op, name) for op in O.CASES for name in O.params(op)])
def test_cuda_vs_cpu_vs_reference(ops: Ops, op_type: str, case: str) -> None:
    c = O.build(op_type, case)
    want = O.reference(op_type, c)
    cuda = call(ops, "cuda", op_type, prepare(c.inputs, "cuda"), c.inputs, c.attrs)
    torch.cuda.synchronize()
    cpu = call(ops, "cpu", op_type, prepare(c.inputs, "cpu"), c.inputs, c.attrs)
    for name, got in (("CUDA", cuda.cpu().numpy()), ("CPU", cpu.numpy())):
        assert got.dtype == np.uint8 and got.shape == want.shape, (name, got.dtype, got.shape, want.shape)
        bad = np.flatnonzero(got != want)
        assert bad.size == 0, (f"{name}: {bad.size} of {want.size} elements differ; first at flat index {bad[0]}: "
                               f"got {got.flat[bad[0]]}, want {want.flat[bad[0]]}")


@needs_gpu
def test_cuda_rejects_alpha_above_3(ops: Ops) -> None:
    """As on the CPU, alpha > 3 is an error (checked on a host copy), not clamped."""
    c = O.build("PTSLayerNorm", "C7")
    c.inputs["alpha"][2] = 4
    with pytest.raises(KernelError, match="alpha values must be in 0..3"):
        call(ops, "cuda", "PTSLayerNorm", prepare(c.inputs, "cuda"), c.inputs, c.attrs)


# --- int8 codes: the _i8 entries of fqvit_ops/c_api.h ---------------------------------------------------------------

def _run_i8(ops: Ops, where: str, op: str, c: O.Case) -> np.ndarray:
    """One int8 case through ``fqvit_<op>_<where>_i8`` (``where``: cpu or cuda); the output as a numpy array."""
    y = call(ops, where, op, prepare(c.inputs, where), c.inputs, c.attrs)
    if where == "cuda":
        torch.cuda.synchronize()
    return y.cpu().numpy()


@needs_gpu
@pytest.mark.parametrize("op_type, case", [(op, name) for op in O.CASES for name in O.params(op)])
def test_cuda_int8_vs_cpu_vs_reference(ops: Ops, op_type: str, case: str) -> None:
    c8 = O.as_code_type(op_type, O.build(op_type, case), "int8")
    want = O.reference(op_type, c8)
    want_dtype = np.int8 if S.op(op_type).outputs[0].dtype == "T" else np.uint8
    assert want.dtype == want_dtype
    for where in ("cuda", "cpu"):
        got = _run_i8(ops, where, op_type, c8)
        assert got.dtype == want.dtype and got.shape == want.shape, (where, got.dtype, got.shape, want.shape)
        bad = np.flatnonzero(got != want)
        assert bad.size == 0, (f"{where} int8: {bad.size} of {want.size} elements differ; first at flat index "
                               f"{bad[0]}: got {got.flat[bad[0]]}, want {want.flat[bad[0]]}")


def test_cpu_int8_entries(ops: Ops) -> None:
    """No GPU needed: the CPU int8 entries on every case against the reference (and the int8 routing of
    ``c_entries``: an int8 case reaching a uint8 entry would give the wrong dtype or bits)."""
    assert ops.lib.int8_entries()
    for op_type in O.CASES:
        for case in O.params(op_type):
            c8 = O.as_code_type(op_type, O.build(op_type, case), "int8")
            want = O.reference(op_type, c8)
            got = _run_i8(ops, "cpu", op_type, c8)
            assert got.dtype == want.dtype and got.shape == want.shape, (op_type, case, got.dtype, got.shape)
            assert np.array_equal(got, want), (op_type, case)


def test_cuda_architectures_listed_without_gpu(ops: Ops) -> None:
    """The built architectures are readable without a GPU (no CUDA API call) and are the default list unless the
    build chose others (build_info.json says which)."""
    archs = ops.lib.cuda_architectures().split(",")
    assert archs and all(a.split("-")[0].isdigit() for a in archs), archs


@needs_gpu
def test_cuda_architectures_listed(ops: Ops) -> None:
    archs = ops.lib.cuda_architectures().split(",")
    major, minor = torch.cuda.get_device_capability()
    assert archs and all(a.split("-")[0].isdigit() for a in archs), archs
    assert any(int(a.split("-")[0]) <= 10 * major + minor for a in archs), (archs, major, minor)


# --- the binding itself (fqvit_export.deploy.capi), no GPU ---------------------------------------------------------

def test_binding_on_numpy_arrays(ops: Ops) -> None:
    """The binding needs no torch: numpy arrays (host memory) reach the CPU entries, a kernel error raises with the
    library's message, and the CPU build, which exports no C API, is refused with the reason."""
    lib = ops.lib
    x = np.arange(256, dtype=np.uint8)
    table, y = x[::-1].copy(), np.empty_like(x)
    lib.lookup("cpu", x, table, y, x.size, table.size)
    assert np.array_equal(y, 255 - x)
    with pytest.raises(KernelError, match="256") as err:
        lib.lookup("cpu", x, table, y, x.size, 255)
    assert err.value.entry == entry_name("Lookup", "cpu") == "fqvit_lookup_cpu" and err.value.code != 0
    cpu_build = custom_ops_library(cuda=False)
    if cpu_build is not None and cpu_build != LIB:
        with pytest.raises(OSError, match="exports no C entry points"):
            KernelLibrary(cpu_build)


def test_address_of_each_kind() -> None:
    """What may stand for a tensor argument: an int, None, a contiguous array or tensor; not a strided view."""
    a = np.zeros((4, 4), np.uint8)
    t = torch.zeros(4, 4, dtype=torch.uint8)
    assert address(None) is None and address(1234) == 1234
    assert address(a) == a.ctypes.data and address(t) == t.data_ptr()
    for strided in (a[:, ::2], t.t()):
        with pytest.raises(ValueError, match="contiguous"):
            address(strided)
    with pytest.raises(TypeError):
        address([1, 2, 3])
