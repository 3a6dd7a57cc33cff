"""The ``com.fqvit`` kernels under AddressSanitizer + UndefinedBehaviorSanitizer.

Needs the sanitizer build (``tools/build_custom_ops.sh --sanitize`` -> ``build/custom_ops_san/``); skipped without it.
Two checks:

* ``kernel_test``: the C++ driver (``custom_ops/tests/kernel_test.cc``) runs every CPU path of every kernel on
  random and adversarial inputs against its own transcription of docs/ops.md;
* ``tests/test_custom_ops.py`` in a child Python with the sanitizer runtimes preloaded and ``FQVIT_CUSTOM_OPS_LIB``
  pointing at the sanitized library, so the onnxruntime glue (input checks, errors, threading) runs instrumented too.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAN = ROOT / "build" / "custom_ops_san"
KERNEL_TEST = SAN / "kernel_test"
SAN_LIB = SAN / "libfqvit_ops.so"

pytestmark = pytest.mark.skipif(not (KERNEL_TEST.is_file() and SAN_LIB.is_file()),
                                reason="sanitizer build missing: run tools/build_custom_ops.sh --sanitize")


def _runtime(name: str) -> str | None:
    """Full path of a GCC sanitizer runtime (libasan.so / libubsan.so), or None."""
    try:
        out = subprocess.run(["gcc", f"-print-file-name={name}"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    path = out.strip()
    return path if os.path.isabs(path) and os.path.exists(path) else None


@pytest.mark.parametrize("isa", ["", "avx512"])
def test_kernel_driver_under_sanitizers(isa: str) -> None:
    """isa: FQVIT_CPU_ISA; "" lets QLinear take AMX tiles where the CPU has them, "avx512" its oneDNN path."""
    env = {**os.environ, "FQVIT_CPU_ISA": isa}
    proc = subprocess.run([str(KERNEL_TEST)], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " 0 failures" in proc.stdout
    assert "runtime error" not in proc.stderr and "AddressSanitizer" not in proc.stderr, proc.stderr[-3000:]


def test_onnxruntime_glue_under_sanitizers() -> None:
    asan, ubsan = _runtime("libasan.so"), _runtime("libubsan.so")
    if asan is None or ubsan is None:
        pytest.skip("gcc's libasan/libubsan not found")
    env = dict(os.environ, LD_PRELOAD=f"{asan} {ubsan}", FQVIT_CUSTOM_OPS_LIB=str(SAN_LIB),
               ASAN_OPTIONS="detect_leaks=0:abort_on_error=1", UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                           str(ROOT / "tests" / "test_custom_ops.py")],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    report = proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, report
    assert "AddressSanitizer" not in proc.stderr and "runtime error" not in proc.stderr, report
