"""Where the ``com.fqvit`` onnxruntime custom-op library lies, and which onnxruntime versions load it.

Two builds exist: ``libfqvit_ops.so`` (CPU kernels, loads wherever onnxruntime >= 1.21 runs) and
``libfqvit_ops_cuda.so`` (CPU + CUDA kernels, CUDA runtime linked statically). ``pip install .`` builds them through
the package's build backend (scikit-build-core driving ``custom_ops/CMakeLists.txt``) into ``fqvit_export/lib/`` of
the installed package; ``tools/build_custom_ops.sh`` builds them into the source tree's ``fqvit_export/lib/``.
``FQVIT_CUSTOM_OPS_LIB`` overrides the lookup, e.g. to test a sanitizer build.

Both link oneDNN's ``libdnnl.so.3`` (QLinear's CPU int8 GEMM), which the ``onednn-cpu-gomp`` wheel installs into
``<prefix>/lib``. The installed libraries find it through their RPATH (``$ORIGIN/../../../..``, from
``<prefix>/lib/python3.X/site-packages/fqvit_export/lib``); :func:`custom_ops_library` also loads it into the process
first, for layouts where that relative path leads elsewhere (``pip install --target``, a copied library).
"""
from __future__ import annotations

import ctypes
import functools
import importlib.metadata
import os
from pathlib import Path

__all__ = ["ENV_VAR", "ORT_VERSIONS", "custom_ops_library", "library_dirs", "runtime_dependencies"]

ENV_VAR = "FQVIT_CUSTOM_OPS_LIB"
ORT_VERSIONS = ("1.21", "1.32")
"""onnxruntime versions the library loads in: built against the first's headers (``ORT_API_VERSION`` 21, accepted by
every later runtime), checked up to the second (../shared/FIELD-NOTES.md s2)."""
_LIB_DIR = Path(__file__).resolve().parent.parent / "lib"


def library_dirs() -> list[Path]:
    """``lib/`` of every directory the package is imported from.

    A regular install has one; an editable scikit-build-core install has the source tree (Python files) and the
    install folder in site-packages (the built libraries) both on the package's ``__path__``.
    """
    from .. import __path__ as pkg_path
    dirs = [_LIB_DIR]
    for p in pkg_path:
        d = Path(p).resolve() / "lib"
        if d not in dirs:
            dirs.append(d)
    return dirs


def custom_ops_library(cuda: bool = False) -> Path | None:
    """Path of the built custom-op library, or ``None`` when it is not built.

    Args:
        cuda: look for the CUDA-enabled variant (``libfqvit_ops_cuda.so``) instead of the CPU-only one.

    Returns:
        ``$FQVIT_CUSTOM_OPS_LIB`` when set (whatever ``cuda`` says: the user chose the file), else the first
        ``lib/libfqvit_ops[_cuda].so`` of ``library_dirs()`` that exists, else ``None``.

    Raises:
        FileNotFoundError: ``FQVIT_CUSTOM_OPS_LIB`` names a file that does not exist.
    """
    override = os.environ.get(ENV_VAR)
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{ENV_VAR}={override} does not exist")
        _preload_onednn()
        return path.resolve()
    name = "libfqvit_ops_cuda.so" if cuda else "libfqvit_ops.so"
    for d in library_dirs():
        if (d / name).is_file():
            _preload_onednn()
            return d / name
    return None


def runtime_dependencies() -> list[Path]:
    """Shared libraries the kernel library needs beside onnxruntime and the system's: the ``onednn-cpu-gomp`` wheel's
    ``libdnnl.so.3`` when installed. A copy of the library elsewhere (a hand-off bundle) finds them in its own
    directory (its RPATH starts with ``$ORIGIN``)."""
    try:
        dist = importlib.metadata.distribution("onednn-cpu-gomp")
        path = next(f for f in dist.files or () if f.name == "libdnnl.so.3")
    except (importlib.metadata.PackageNotFoundError, StopIteration):
        return []
    found = Path(dist.locate_file(path)).resolve()
    return [found] if found.is_file() else []


@functools.lru_cache(maxsize=None)
def _preload_onednn() -> None:
    """Load :func:`runtime_dependencies` (``RTLD_GLOBAL``) once, so that the dynamic loader satisfies the library's
    dependency by its soname whatever the RPATH finds. Nothing when they are absent or do not load: the library then
    reports the missing dependency itself when onnxruntime loads it."""
    for dep in runtime_dependencies():
        try:
            ctypes.CDLL(str(dep), mode=ctypes.RTLD_GLOBAL)
        except OSError:
            pass
