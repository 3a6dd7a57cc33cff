"""What a run on a lent GPU machine records and needs first, shared by ``tools/gpu_check.py`` (the checks) and
``bench/bench_gpu.py`` (the timings): onnxruntime with its CUDA libraries loaded, the machine and versions for the
JSON report, and a report written whole or not at all.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path
from types import ModuleType

import torch

from ..deploy.capi import KernelLibrary

__all__ = ["onnxruntime_module", "environment", "write_json"]

_ORT: dict[str, ModuleType] = {}


def onnxruntime_module(gpu: bool) -> ModuleType:
    """onnxruntime, imported once; on a GPU run ``preload_dlls()`` first loads the CUDA / cuDNN libraries of the
    nvidia-* pip packages, which onnxruntime-gpu links against but does not find by itself."""
    if "m" not in _ORT:
        import onnxruntime as ort
        if gpu and hasattr(ort, "preload_dlls"):
            try:
                ort.preload_dlls()
            except Exception as e:  # noqa: BLE001 - the session's own error then says what is missing
                print(f"onnxruntime.preload_dlls() failed: {e}", flush=True)
        _ORT["m"] = ort
    return _ORT["m"]


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def environment(gpu: bool, lib: KernelLibrary) -> dict:
    """Device, driver, versions and the library under test, for a report's JSON (``gpu`` False: a dry run)."""
    env: dict = {"python": platform.python_version(), "torch": torch.__version__, "torch_cuda": torch.version.cuda,
                 "cpus": os.cpu_count(), "machine": platform.machine(), "library": str(lib.path),
                 "library_cuda_architectures": lib.cuda_architectures(), "cpu_kernel_isa": lib.cpu_isa_name(),
                 "int8_entries": lib.int8_entries()}
    try:
        import onnx
        env["onnx"] = onnx.__version__
        ort = onnxruntime_module(gpu)
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
        env["device"] = "none (dry run on the CPU)"
    env["git_commit"] = _git_commit()
    return env


def write_json(out: Path, report: dict) -> None:
    """Write ``report`` to ``out`` through a temporary sibling: a crash leaves the previous report, never half one."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(report, indent=1, default=str) + "\n")
    os.replace(tmp, out)
