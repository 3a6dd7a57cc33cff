"""Where the ``com.fqvit`` onnxruntime custom-op library lies (built by ``tools/build_custom_ops.sh``).

Two builds exist: ``libfqvit_ops.so`` (CPU kernels, loads wherever onnxruntime >= 1.21 runs) and
``libfqvit_ops_cuda.so`` (CPU + CUDA kernels, CUDA runtime linked statically). ``FQVIT_CUSTOM_OPS_LIB`` overrides the
lookup, e.g. to test a sanitizer build.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ENV_VAR", "custom_ops_library"]

ENV_VAR = "FQVIT_CUSTOM_OPS_LIB"
_LIB_DIR = Path(__file__).resolve().parent / "lib"


def custom_ops_library(cuda: bool = False) -> Path | None:
    """Path of the built custom-op library, or ``None`` when it is not built.

    Args:
        cuda: look for the CUDA-enabled variant (``libfqvit_ops_cuda.so``) instead of the CPU-only one.

    Returns:
        ``$FQVIT_CUSTOM_OPS_LIB`` when set (whatever ``cuda`` says: the user chose the file), else
        ``fqvit_export/lib/libfqvit_ops[_cuda].so`` when it exists, else ``None``.

    Raises:
        FileNotFoundError: ``FQVIT_CUSTOM_OPS_LIB`` names a file that does not exist.
    """
    override = os.environ.get(ENV_VAR)
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{ENV_VAR}={override} does not exist")
        return path.resolve()
    path = _LIB_DIR / ("libfqvit_ops_cuda.so" if cuda else "libfqvit_ops.so")
    return path if path.is_file() else None
