"""The kernels a built ``com.fqvit`` custom-op library registers, read from the library itself (ctypes only: no
onnxruntime, no torch, no GPU needed).

Both libraries (``libfqvit_ops.so``, ``libfqvit_ops_cuda.so``) export ``fqvit_registered_kernels``, which walks the
same registration table ``RegisterCustomOps`` uses (``custom_ops/src/register.cc``) and describes every definition
by the callbacks onnxruntime reads (``GetName``, ``GetExecutionProviderType``, ``GetInputType`` ...): one line
``"<op> <provider> <input types> -> <output types>"``, types comma-separated, an optional input's followed by ``?``.
Loading ``libfqvit_ops_cuda.so`` needs no driver (the CUDA runtime is linked statically and not called).

Example::

    >>> from fqvit_export.deploy.library import custom_ops_library
    >>> registered_kernels(custom_ops_library(cuda=True))[0]
    {'op': 'PTSLayerNorm', 'provider': 'CPUExecutionProvider',
     'inputs': ['uint8', 'float', 'uint8', 'uint8', 'float', 'float', 'float', 'uint8'], 'outputs': ['uint8'],
     'optional': [False, False, False, False, False, False, False, False], 'domain': 'com.fqvit'}
"""
from __future__ import annotations

import ctypes
import os
from pathlib import Path

__all__ = ["registered_kernels", "parse_kernel_list", "find_kernel"]

DOMAIN = "com.fqvit"


def parse_kernel_list(text: str) -> list[dict]:
    """The lines of ``fqvit_registered_kernels`` as dicts (see :func:`registered_kernels`)."""
    kernels = []
    for line in text.splitlines():
        if not line.strip():
            continue
        head, _, outs = line.partition(" -> ")
        op, provider, ins = head.split(" ", 2)
        in_types = ins.split(",") if ins else []
        kernels.append({
            "op": op,
            "provider": provider,
            "inputs": [t.rstrip("?") for t in in_types],
            "outputs": outs.split(",") if outs else [],
            "optional": [t.endswith("?") for t in in_types],
            "domain": DOMAIN,
        })
    return kernels


def registered_kernels(lib_path: str | os.PathLike) -> list[dict]:
    """Every kernel the library at ``lib_path`` registers, in registration order.

    Returns:
        One dict per (op, execution provider, code type): ``op`` (e.g. ``"Lookup"``), ``provider``
        (``"CPUExecutionProvider"`` or ``"CUDAExecutionProvider"``), ``inputs`` and ``outputs`` (ONNX element type
        names in port order: ``uint8``, ``int8``, ``int32``, ``float``, ``bool``), ``optional`` (per input: may be
        left out of the node), ``domain`` (``"com.fqvit"``).

    Raises:
        OSError: the library cannot be loaded.
        AttributeError: the library predates ``fqvit_registered_kernels``.
    """
    lib = ctypes.CDLL(str(Path(lib_path)))
    fn = lib.fqvit_registered_kernels
    fn.argtypes = []
    fn.restype = ctypes.c_char_p
    return parse_kernel_list(fn().decode())


def find_kernel(kernels: list[dict], op: str, provider: str, inputs: list[str | None]) -> dict | None:
    """The kernel of ``op`` on ``provider`` whose input types match ``inputs`` (a node's input types in port order;
    ``None`` or a missing trailing entry for an omitted input, allowed only where the input is optional), or None."""
    for k in kernels:
        if k["op"] != op or k["provider"] != provider or len(inputs) > len(k["inputs"]):
            continue
        padded = list(inputs) + [None] * (len(k["inputs"]) - len(inputs))
        if all((t is None and opt) or t == want
               for t, want, opt in zip(padded, k["inputs"], k["optional"])):
            return k
    return None
