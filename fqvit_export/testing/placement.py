"""Where onnxruntime put a model's nodes, read three ways: its session log, its profile, and the graph itself.

A GPU machine is lent rarely and briefly, so ``tools/gpu_check.py`` must not find out there that a parser matches
nothing or that a static check passes anything. These readers live here, apart from the script, so that
``tests/test_gpu_check.py`` can hold each against what it must find (onnxruntime's own wording, a real CPU profile,
the cpu-target graph the static check must flag) on a machine without a GPU.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import onnx

from ..deploy.kernels import find_kernel
from ..deploy.placement import value_type_strings

__all__ = ["CPU_EP", "CUDA_EP", "read_log", "read_profile", "static_cuda_check", "element_types"]

CPU_EP, CUDA_EP = "CPUExecutionProvider", "CUDAExecutionProvider"

# onnxruntime's wording: transformer_memcpy.cc (copies it inserts) and session_state.cc (placement, verbose level)
_MEMCPY_WARN = re.compile(r"(\d+) Memcpy nodes are added to the graph (\S+) for (\w+)")
_MEMCPY_ADD = re.compile(r"Add (MemcpyFromHost|MemcpyToHost) (?:after|before) (\S+) for (\w+)")
_PLACED = re.compile(r"(?:All nodes|Node\(s\)) placed on \[(\w+)\]\. Number of nodes: (\d+)")


def read_log(log: str) -> dict:
    """What a session's log (verbose level) says about copies and placement.

    Returns:
        ``memcpy_nodes`` (the count onnxruntime warns about), ``memcpy_warnings``, ``memcpy_added`` (the first 20
        copies it names), ``log_placement`` (nodes per execution provider, where the log lists them) and
        ``log_lines``.
    """
    warns = [{"count": int(n), "graph": g, "provider": p} for n, g, p in _MEMCPY_WARN.findall(log)]
    adds = [f"{op} {arg} ({p})" for op, arg, p in _MEMCPY_ADD.findall(log)]
    placed: Counter = Counter()
    for p, n in _PLACED.findall(log):
        placed[p] += int(n)
    return {"memcpy_nodes": sum(w["count"] for w in warns), "memcpy_warnings": warns, "memcpy_added": adds[:20],
            "log_placement": dict(placed), "log_lines": log.count("\n")}


def read_profile(path: str | Path) -> dict:
    """Nodes per execution provider in an onnxruntime profile: each ``Node`` event carries ``args.provider``, and a
    node counts once however often it ran.

    Returns:
        ``nodes`` (provider -> node count), ``op_types`` (provider -> op type -> count) and ``memcpy_nodes``.
    """
    nodes: dict[str, tuple[str, str]] = {}  # node name -> (provider, op type)
    for ev in json.loads(Path(path).read_text()):
        if ev.get("cat") == "Node" and ev.get("name", "").endswith("_kernel_time"):
            a = ev.get("args", {})
            nodes[ev["name"].removesuffix("_kernel_time")] = (a.get("provider", "?"), a.get("op_name", "?"))
    per_provider = Counter(prov for prov, _ in nodes.values())
    op_types: dict[str, Counter] = {}
    for prov, op in nodes.values():
        op_types.setdefault(prov, Counter())[op] += 1
    return {"nodes": dict(per_provider), "op_types": {p: dict(c.most_common()) for p, c in op_types.items()},
            "memcpy_nodes": sum(1 for _, op in nodes.values() if op.startswith("Memcpy"))}


def element_types(model: onnx.ModelProto) -> dict[str, str]:
    """The element type of every value of the main graph, named as the kernel list names them (``int8``,
    ``float``, ``bool``): :func:`~fqvit_export.deploy.placement.value_type_strings` without its ``tensor(...)``."""
    return {name: t.removeprefix("tensor(").removesuffix(")") for name, t in value_type_strings(model).items()
            if t.startswith("tensor(")}


def static_cuda_check(model: onnx.ModelProto, kernels: list[dict] | None) -> dict:
    """What onnxruntime's CUDA EP needs of an integer graph, read from the file alone.

    Every ``MatMulInteger`` must be int8 x int8 with scalar zero points (the only one the CUDA EP has), and, when
    ``kernels`` (:func:`~fqvit_export.deploy.kernels.registered_kernels`) is given, the library must have a CUDA
    kernel for every ``com.fqvit`` node's input types. Run on the cpu-target graph it must find problems: that graph
    is the control that shows the check can fail.

    Returns:
        ``nodes`` (op type -> count of the nodes checked), ``problems`` (the first 20) and ``problem_count`` (0: the
        graph fits), ``kernel_list`` (whether the com.fqvit nodes were checked), and ``shape_nodes``: information,
        not a problem, the nodes fed by int64 values computed at run time, which onnxruntime may keep on the CPU and
        a failed placement check would then point at.
    """
    types = element_types(model)
    inits = {i.name: list(i.dims) for i in model.graph.initializer}
    produced = {o for n in model.graph.node for o in n.output}
    problems: list[str] = []
    counts: Counter = Counter()
    shape_nodes: list[str] = []
    for n in model.graph.node:
        ins = [types.get(i) if i else None for i in n.input]
        if any(t == "int64" and i in produced for i, t in zip(n.input, ins)):
            shape_nodes.append(f"{n.op_type} {n.name}")
        if n.op_type == "MatMulInteger" and not n.domain:
            counts["MatMulInteger"] += 1
            if ins[:2] != ["int8", "int8"]:
                problems.append(f"{n.name}: MatMulInteger {ins[0]} x {ins[1]} (CUDA has int8 x int8 only)")
            for zp in n.input[2:4]:
                if zp and (zp not in inits or int(np.prod(inits[zp])) != 1):
                    problems.append(f"{n.name}: zero point {zp} is not a scalar initializer")
        elif n.domain == "com.fqvit":
            counts[n.op_type] += 1
            if kernels is not None and find_kernel(kernels, n.op_type, CUDA_EP, ins) is None:
                problems.append(f"{n.name}: no CUDA kernel for {n.op_type}({', '.join(str(t) for t in ins)})")
    return {"nodes": dict(counts), "problems": problems[:20], "problem_count": len(problems),
            "kernel_list": kernels is not None, "shape_nodes": shape_nodes}
