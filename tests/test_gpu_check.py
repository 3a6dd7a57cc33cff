"""tools/gpu_check.py without a GPU: the pieces its GPU verdicts rest on, checked where CI runs.

The script runs on a GPU machine rarely and once, so a parser that never matches or a static check that passes
anything would go unnoticed there: each is checked here against what it must find (onnxruntime's log wording, a real
CPU profile, the cpu graph that the static CUDA check must flag) and against what it must not.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

import op_cases as O
from fqvit_export.deploy.library import custom_ops_library
from fqvit_export.export.onnx_export import build_onnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import gpu_check as G  # noqa: E402

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
    got = G.read_log(_LOG)
    assert got["memcpy_nodes"] == 2 and len(got["memcpy_added"]) == 2
    assert got["log_placement"] == {"CUDAExecutionProvider": 560, "CPUExecutionProvider": 5}


def test_read_log_clean() -> None:
    got = G.read_log("[V:onnxruntime:, session_state.cc:1601]  All nodes placed on [CUDAExecutionProvider]. "
                     "Number of nodes: 565\n")
    assert got["memcpy_nodes"] == 0 and not got["memcpy_added"]
    assert got["log_placement"] == {"CUDAExecutionProvider": 565}


@needs_lib
def test_static_check_passes_cuda_graph_and_flags_cpu_graph(calibrated) -> None:
    """The cuda graph fits the CUDA EP (int8 x int8 MatMulInteger, a CUDA kernel for every com.fqvit node); the cpu
    graph, the control, is flagged on every MatMulInteger."""
    from fqvit_export.deploy.kernels import registered_kernels
    cal = calibrated("cifar10_vit", pts=True, lis=True, attn_bits=4)
    kernels = registered_kernels(LIB)
    cuda = G.static_cuda_check(build_onnx(cal, simplify=False, device="cuda")[0], kernels)
    cpu = G.static_cuda_check(build_onnx(cal, simplify=False, device="cpu")[0], kernels)
    assert cuda["problem_count"] == 0, cuda["problems"]
    assert cuda["nodes"]["MatMulInteger"] > 0 and cuda["nodes"]["LogIntSoftmax"] > 0
    assert cpu["problem_count"] >= cpu["nodes"]["MatMulInteger"] > 0


@needs_lib
def test_profile_nodes_per_provider(calibrated, tmp_path) -> None:
    """A real onnxruntime profile (CPU EP here): every node is counted once, on the provider that ran it."""
    cal = calibrated("cifar10_vit", pts=True, lis=True, attn_bits=4)
    path = tmp_path / "m.onnx"
    onnx.save(build_onnx(cal, simplify=False, device="cuda")[0], path)
    sess = G.make_session(path, [G.CPU_EP], LIB, profile_prefix=tmp_path / "prof")
    sess.run(None, {"input": np.zeros((2, 3, 32, 32), np.float32)})
    got = G.read_profile(Path(sess.end_profiling()))
    assert set(got["nodes"]) == {G.CPU_EP} and got["nodes"][G.CPU_EP] > 100
    assert got["op_types"][G.CPU_EP]["LISMatMul"] > 0 and got["memcpy_nodes"] == 0


@needs_lib
@pytest.mark.parametrize("op_type, case", [("PTSLayerNorm", "C7"), ("LogIntSoftmax", "bits3"), ("LISMatMul", "D17"),
                                           ("Lookup", "every_code_random_table"), ("Requantize", "N33")])
def test_ops_dispatch_int8_codes_to_the_i8_entries(op_type: str, case: str) -> None:
    """``call`` picks the ``_i8`` entry from the inputs' code type and returns the reference's dtype and bits."""
    ops = G.Ops(G.load(LIB))
    if not G.int8_entries(ops.lib, ("cpu",)):
        pytest.skip("the library exports no int8 entries")
    for code_type in ("uint8", "int8"):
        c = O.as_code_type(op_type, O.build(op_type, case), code_type)
        want = O.reference(op_type, c)
        got = G.call(ops, "cpu", op_type, G.prepare(c.inputs, "cpu"), c.inputs, c.attrs).numpy()
        assert got.dtype == want.dtype and np.array_equal(got, want), (code_type, got.dtype, want.dtype)
