"""The ``com.fqvit`` CUDA kernels against the CPU kernels and the PyTorch reference, bit for bit, on every case of the
shared tables (``tests/op_cases.py``).

The kernels are called through the plain C entry points of ``libfqvit_ops_cuda.so`` (``fqvit_ops/c_api.h``) with
ctypes on torch CUDA tensors, as ``tools/gpu_check.py`` does (its ``Ops`` wrapper and ``call`` are reused here), so
no onnxruntime-gpu is needed. Skipped, with the reason, where torch sees no CUDA device or the CUDA variant of the
library is not built.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import op_cases as O
from fqvit_export._lib import custom_ops_library

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import gpu_check  # noqa: E402

LIB = custom_ops_library(cuda=True)
pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible to torch"),
    pytest.mark.skipif(LIB is None, reason="libfqvit_ops_cuda.so not built (tools/build_custom_ops.sh with nvcc)"),
]


@pytest.fixture(scope="module")
def ops() -> gpu_check.Ops:
    return gpu_check.Ops(gpu_check.load(Path(LIB)))


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


def test_cuda_rejects_alpha_above_3(ops: gpu_check.Ops) -> None:
    """As on the CPU, alpha > 3 is an error (checked on a host copy), not clamped."""
    c = O.build("PTSLayerNorm", "C7")
    c.inputs["alpha"][2] = 4
    with pytest.raises(RuntimeError, match="alpha values must be in 0..3"):
        gpu_check.call(ops, "cuda", "PTSLayerNorm", gpu_check.prepare(c.inputs, "cuda"), c.inputs, c.attrs)
