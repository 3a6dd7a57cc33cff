"""tools/gpu_check.py without a GPU: the pieces its GPU verdicts rest on, checked where CI runs.

The script runs on a GPU machine rarely and once, so a parser that never matches or a static check that passes
anything would go unnoticed there: each is checked here against what it must find (onnxruntime's log wording, a real
CPU profile, the cpu graph that the static CUDA check must flag) and against what it must not. The pieces live in
``fqvit_export.testing`` (the script keeps the phases), so this file imports them by name.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from fqvit_export.deploy.capi import KernelLibrary
from fqvit_export.deploy.library import custom_ops_library
from fqvit_export.deploy.session import session_options
from fqvit_export.export.onnx_export import build_onnx
from fqvit_export.testing import op_cases as O
from fqvit_export.testing.c_entries import Ops, call, prepare
from fqvit_export.testing.placement import CPU_EP, read_log, read_profile, static_cuda_check

ROOT = Path(__file__).resolve().parents[1]
LIB = custom_ops_library(cuda=True)
needs_lib = pytest.mark.skipif(LIB is None,
                               reason="libfqvit_ops_cuda.so not built (tools/build_custom_ops.sh with nvcc)")

# onnxruntime's wording (transformer_memcpy.cc, session_state.cc), one line of each kind
_LOG = (
    "[W:onnxruntime:, transformer_memcpy.cc:74 ApplyImpl] 2 Memcpy nodes are added to the graph main_graph for "
    "CUDAExecutionProvider. It might have negative impact on performance (including unable to run CUDA graph).\n"
    "[I:onnxruntime:, transformer_memcpy.cc:300 AddCopyNode] Add MemcpyFromHost after cls/Concat for "
    "CUDAExecutionProvider\n"
    "[I:onnxruntime:, transformer_memcpy.cc:300 AddCopyNode] Add MemcpyToHost before shape_out for "
    "CUDAExecutionProvider\n"
    "[V:onnxruntime:, session_state.cc:1601 VerifyEachNodeIsAssignedToAnEp]  Node(s) placed on "
    "[CUDAExecutionProvider]. Number of nodes: 560\n"
    "[V:onnxruntime:, session_state.cc:1601 VerifyEachNodeIsAssignedToAnEp]  Node(s) placed on "
    "[CPUExecutionProvider]. Number of nodes: 5\n")


def test_read_log_finds_copies_and_placement() -> None:
    got = read_log(_LOG)
    assert got["memcpy_nodes"] == 2 and len(got["memcpy_added"]) == 2
    assert got["log_placement"] == {"CUDAExecutionProvider": 560, "CPUExecutionProvider": 5}


def test_read_log_clean() -> None:
    got = read_log("[V:onnxruntime:, session_state.cc:1601]  All nodes placed on [CUDAExecutionProvider]. "
                     "Number of nodes: 565\n")
    assert got["memcpy_nodes"] == 0 and not got["memcpy_added"]
    assert got["log_placement"] == {"CUDAExecutionProvider": 565}


@needs_lib
def test_static_check_passes_cuda_graph_and_flags_cpu_graph(calibrated) -> None:
    """The cuda graphs fit the CUDA EP (a CUDA kernel for every com.fqvit node; int8 x int8 MatMulInteger, which a
    PTS+LIS ViT no longer has but a PTS-only one has for q k^T and attention @ v); the cpu graph of the PTS-only model,
    the control, is flagged on every MatMulInteger."""
    from fqvit_export.deploy.kernels import registered_kernels
    kernels = registered_kernels(LIB)
    lis = calibrated("cifar10_vit", pts=True, lis=True, attn_bits=4)
    cuda = static_cuda_check(build_onnx(lis, simplify=False, device="cuda")[0], kernels)
    assert cuda["problem_count"] == 0, cuda["problems"]
    assert cuda["nodes"]["LISAttention"] > 0 and cuda["nodes"]["QLinear"] > 0
    pts = calibrated("cifar10_vit", pts=True)
    cuda = static_cuda_check(build_onnx(pts, simplify=False, device="cuda")[0], kernels)
    cpu = static_cuda_check(build_onnx(pts, simplify=False, device="cpu")[0], kernels)
    assert cuda["problem_count"] == 0, cuda["problems"]
    assert cuda["nodes"]["MatMulInteger"] > 0
    assert cpu["problem_count"] >= cpu["nodes"]["MatMulInteger"] > 0


@needs_lib
def test_profile_nodes_per_provider(calibrated, tmp_path) -> None:
    """A real onnxruntime profile (CPU EP here): every node is counted once, on the provider that ran it."""
    cal = calibrated("cifar10_vit", pts=True, lis=True, attn_bits=4)
    path = tmp_path / "m.onnx"
    onnx.save(build_onnx(cal, simplify=False, device="cuda")[0], path)
    so = session_options(LIB, profile=True)
    so.profile_file_prefix = str(tmp_path / "prof")
    sess = ort.InferenceSession(str(path), so, providers=[CPU_EP])
    sess.run(None, {"input": np.zeros((2, 3, 32, 32), np.float32)})
    got = read_profile(sess.end_profiling())
    assert set(got["nodes"]) == {CPU_EP} and got["nodes"][CPU_EP] > 100
    assert got["op_types"][CPU_EP]["LISAttention"] > 0 and got["memcpy_nodes"] == 0


@needs_lib
@pytest.mark.parametrize("op_type, case", [("PTSLayerNorm", "C7"), ("LogIntSoftmax", "bits3"), ("LISMatMul", "D17"),
                                           ("Lookup", "every_code_random_table"), ("Requantize", "N33"),
                                           ("LISAttention", "odd_3x17_h5_d13")])
def test_ops_dispatch_int8_codes_to_the_i8_entries(op_type: str, case: str) -> None:
    """``call`` picks the ``_i8`` entry from the inputs' code type and returns the reference's dtype and bits."""
    ops = Ops(KernelLibrary(LIB))
    if not ops.lib.int8_entries(("cpu",)):
        pytest.skip("the library exports no int8 entries")
    for code_type in ("uint8", "int8"):
        c = O.as_code_type(op_type, O.build(op_type, case), code_type)
        want = O.reference(op_type, c)
        got = call(ops, "cpu", op_type, prepare(c.inputs, "cpu"), c.inputs, c.attrs).numpy()
        assert got.dtype == want.dtype and np.array_equal(got, want), (code_type, got.dtype, want.dtype)


def test_script_imports_by_name() -> None:
    """The script reaches the package and the shared tables by name: ``--help`` runs in a fresh interpreter, and no
    script of tools/ or bench/ edits ``sys.path`` to reach another file."""
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu_check.py"), "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--cpu-only" in proc.stdout
    edits = [str(f.relative_to(ROOT)) for d in ("tools", "bench") for f in sorted((ROOT / d).glob("*.py"))
             if "sys.path.insert" in f.read_text() or "sys.path.append" in f.read_text()]
    assert not edits, edits
