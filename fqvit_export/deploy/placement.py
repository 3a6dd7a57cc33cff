"""Would onnxruntime's CUDA execution provider take every standard node of an ONNX graph? A CPU-only check against
the CUDA EP's kernel table (op, opset range, type constraints); no onnxruntime-gpu, no GPU, no torch.

The table is ``fqvit_export/assets/ort_cuda_kernels.md``: the "Operators implemented by CUDAExecutionProvider" section
of onnxruntime's generated ``docs/OperatorKernels.md`` (microsoft/onnxruntime, commit
001d12d2623fd411ce0f83d05abb5e82304a3389), stored verbatim. It is the stored snapshot nearest to the GPU release we
pin, :data:`ORT_GPU_RELEASE`, and was not verified against that release's tag (see the file's header).

What the check is, and is not:

* A node is placed on CUDA when a kernel entry of its domain and op covers the node's version and admits its
  element types. The version is the ``since_version`` of the ONNX schema the model's opset selects (what
  onnxruntime matches kernels against; the model's opset itself where onnx knows no schema, e.g. com.microsoft),
  and the entry that applies is the newest one whose first version is <= it; an entry with an upper bound
  (``[6, 12]``, ``10``) covers nothing past it.
* Type constraints are checked per symbol (``T1`` = the types listed), as the table gives them; a symbol the entry
  does not constrain is taken as unconstrained. The table cannot say which combinations of symbols are
  registered, nor anything about attributes, shapes or constant-ness a kernel also requires (onnxruntime may also
  keep small shape computations on the CPU on purpose); so an empty result is necessary, not sufficient, for an
  all-CUDA session. Run the session on a GPU for the last word.
* An op with no CUDA kernel that onnx defines as a function (``CastLike``, ...) is reported with a note: onnxruntime
  expands such a node into its function body when no provider has a kernel for it; the body is not checked here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import onnx
from onnx import defs, helper, shape_inference

__all__ = ["ORT_GPU_RELEASE", "KERNEL_TABLE", "TABLE_COMMIT", "Param", "KernelEntry", "load_cuda_kernels",
           "parse_kernel_table", "cuda_fallbacks", "value_type_strings"]

ORT_GPU_RELEASE = "1.31.1"
"""The onnxruntime-gpu release fqvit-export pins for GPUs (the CUDA kernel table is the nearest stored snapshot)."""
KERNEL_TABLE = Path(__file__).resolve().parent.parent / "assets" / "ort_cuda_kernels.md"
TABLE_COMMIT = "001d12d2623fd411ce0f83d05abb5e82304a3389"
"""The microsoft/onnxruntime commit whose ``docs/OperatorKernels.md`` the table was taken from."""

STANDARD_DOMAINS = ("", "ai.onnx")
MS_DOMAIN = "com.microsoft"


@dataclass(frozen=True)
class Param:
    """A formal input or output of a kernel signature: its name and its type, a symbol (``T1``) or a concrete type
    (``tensor(int64)``)."""
    name: str
    type: str

    @property
    def concrete(self) -> bool:
        """A fixed type such as ``tensor(int64)``, not a constrained symbol such as ``T``."""
        return "(" in self.type

    @property
    def variadic(self) -> bool:
        """The table writes a variadic parameter with a trailing ``...`` (``inputs...``)."""
        return self.name.endswith("...")


@dataclass(frozen=True)
class KernelEntry:
    """One row of the table: ``op`` of ``domain`` for opsets ``since`` .. ``until`` (inclusive; ``None``: open, as in
    ``13+``), the allowed types of each constrained symbol, and the op's parameter signatures (several where the
    table lists alternatives, ``... or ...``: the formal parameters of the op's schema versions)."""
    domain: str
    op: str
    since: int
    until: int | None
    constraints: dict[str, frozenset[str]]
    signatures: tuple[tuple[tuple[Param, ...], tuple[Param, ...]], ...]

    def covers(self, version: int) -> bool:
        """Whether the row's opset range holds ``version``."""
        return self.since <= version and (self.until is None or version <= self.until)

    @property
    def range_text(self) -> str:
        """The range as the table writes it: ``13+``, ``7`` or ``[6, 12]``."""
        if self.until is None:
            return f"{self.since}+"
        return str(self.since) if self.until == self.since else f"[{self.since}, {self.until}]"


_DOMAIN_RE = re.compile(r"^\|\*\*Operator Domain:\*\* \*([^*]+)\*\|")
_PARAM_RE = re.compile(r"\*(in|out)\*\s+([^:]+):\*\*([^*]+)\*\*")
_CONSTRAINT_RE = re.compile(r"\*\*([^*]+)\*\* = (.*)")


def _parse_version(text: str) -> tuple[int, int | None]:
    text = text.strip()
    if text.endswith("+"):
        return int(text[:-1]), None
    if text.startswith("["):
        lo, hi = text.strip("[]").split(",")
        return int(lo), int(hi)
    return int(text), int(text)


def _parse_signatures(text: str) -> tuple[tuple[tuple[Param, ...], tuple[Param, ...]], ...]:
    sigs = []
    for alt in text.split("<br><br>or<br><br>"):
        ins, outs = [], []
        for kind, name, typ in _PARAM_RE.findall(alt):
            (ins if kind == "in" else outs).append(Param(name.strip(), typ.strip()))
        sigs.append((tuple(ins), tuple(outs)))
    return tuple(sigs)


def _parse_constraints(text: str) -> dict[str, frozenset[str]]:
    out = {}
    for part in text.split("<br/>"):
        m = _CONSTRAINT_RE.match(part.strip())
        if m:
            out[m.group(1)] = frozenset(t.strip() for t in _split_types(m.group(2)))
    return out


def _split_types(text: str) -> list[str]:
    """``tensor(a), seq(tensor(b))`` -> the items, splitting on top-level commas only."""
    items, depth, cur = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    if cur.strip():
        items.append(cur)
    return items


def parse_kernel_table(text: str) -> dict[tuple[str, str], list[KernelEntry]]:
    """Parse the rows of an ``OperatorKernels.md`` provider section: ``{(domain, op): [entries, newest first]}``.
    The domain ``ai.onnx`` is keyed as ``""``. Continuation rows (``|||[6, 12]|...``) reuse the op and parameters
    of the row above them."""
    table: dict[tuple[str, str], list[KernelEntry]] = {}
    domain = None
    op = sigs = None
    for line in text.splitlines():
        m = _DOMAIN_RE.match(line)
        if m:
            domain = "" if m.group(1) == "ai.onnx" else m.group(1)
            op = sigs = None
            continue
        if domain is None or not line.startswith("|") or line.strip() == "| |":
            continue
        cells = line.split("|")
        if len(cells) != 6:
            raise ValueError(f"unexpected kernel table row: {line[:120]!r}")
        _, name, params, version, types, _ = cells
        if name:
            op, sigs = name.strip(), _parse_signatures(params)
        elif op is None:
            raise ValueError(f"continuation row without an op: {line[:120]!r}")
        since, until = _parse_version(version)
        table.setdefault((domain, op), []).append(
            KernelEntry(domain, op, since, until, _parse_constraints(types), sigs))
    for entries in table.values():
        entries.sort(key=lambda e: e.since, reverse=True)
    return table


@lru_cache(maxsize=None)
def _load(path: str) -> dict[tuple[str, str], list[KernelEntry]]:
    return parse_kernel_table(Path(path).read_text(encoding="utf-8"))


def load_cuda_kernels(path: str | Path | None = None) -> dict[tuple[str, str], list[KernelEntry]]:
    """The CUDA EP's kernels, ``{(domain, op): [KernelEntry, ...]}`` (newest first; ``""`` is ai.onnx), parsed from
    the stored table (or ``path``). Cached: do not mutate the result."""
    return _load(str(path or KERNEL_TABLE))


# -- types of a model's values ------------------------------------------------------------------------------------

def _type_string(tp: onnx.TypeProto) -> str | None:
    kind = tp.WhichOneof("value")
    if kind == "tensor_type":
        if not tp.tensor_type.elem_type:
            return None
        return f"tensor({helper.tensor_dtype_to_string(tp.tensor_type.elem_type).split('.')[-1].lower()})"
    if kind == "sparse_tensor_type":
        if not tp.sparse_tensor_type.elem_type:
            return None
        name = helper.tensor_dtype_to_string(tp.sparse_tensor_type.elem_type).split(".")[-1].lower()
        return f"sparse_tensor({name})"
    if kind == "sequence_type":
        inner = _type_string(tp.sequence_type.elem_type)
        return f"seq({inner})" if inner else None
    if kind == "optional_type":
        inner = _type_string(tp.optional_type.elem_type)
        return f"optional({inner})" if inner else None
    return None


def _collect(graph: onnx.GraphProto, types: dict[str, str]) -> None:
    for init in graph.initializer:
        types.setdefault(init.name, f"tensor({helper.tensor_dtype_to_string(init.data_type).split('.')[-1].lower()})")
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        t = _type_string(vi.type)
        if t:
            types.setdefault(vi.name, t)
    for node in graph.node:  # Constant nodes, in case inference left them out
        if node.op_type == "Constant" and node.domain in STANDARD_DOMAINS:
            for a in node.attribute:
                if a.name == "value" and a.t is not None:
                    name = helper.tensor_dtype_to_string(a.t.data_type).split(".")[-1].lower()
                    types.setdefault(node.output[0], f"tensor({name})")


def value_type_strings(model: onnx.ModelProto) -> dict[str, str]:
    """The type of every value of the main graph that can be inferred, as the table writes types
    (``tensor(int8)``). onnx's inference (``strict_mode=False``) first; values it leaves untyped (outputs of
    custom-domain nodes whose model-local functions inference does not enter) are typed from a copy with the local
    functions inlined, inferred without data propagation; the names of the main graph's values survive inlining."""
    types: dict[str, str] = {}
    try:
        inferred = shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # noqa: BLE001 - a model inference rejects is still checked with what it declares
        inferred = model
    _collect(inferred.graph, types)
    needed = {n for node in model.graph.node for n in list(node.input) + list(node.output) if n}
    if needed - types.keys() and model.functions:
        from onnx import inliner
        try:
            inlined = shape_inference.infer_shapes(inliner.inline_local_functions(model), strict_mode=False,
                                                   data_prop=False)
            _collect(inlined.graph, types)
        except Exception:  # noqa: BLE001 - fall back to what the first pass typed
            pass
    return types


# -- the check ----------------------------------------------------------------------------------------------------

def _opset(model: onnx.ModelProto, domain: str) -> int | None:
    for imp in model.opset_import:
        if imp.domain == domain or (domain in STANDARD_DOMAINS and imp.domain in STANDARD_DOMAINS):
            return imp.version
    return None


def _schema(op: str, version: int, domain: str):
    try:
        return defs.get_schema(op, version, "" if domain in STANDARD_DOMAINS else domain)
    except Exception:  # noqa: BLE001 - onnx has no such schema (a contrib op, an unknown op)
        return None


def _bind(params: tuple[Param, ...], names, variadic_last: bool):
    """Pair the node's value names with formal params; None if they do not fit."""
    if len(names) > len(params) and not (params and (variadic_last or params[-1].variadic)):
        return None
    return [(i, name, params[min(i, len(params) - 1)]) for i, name in enumerate(names) if name]


def _check_signature(entry: KernelEntry, sig, node, types: dict[str, str], variadic: tuple[bool, bool]):
    """(problems, unknown) of one signature against the node; None if the node's arity does not fit it."""
    bad: dict[tuple[str, str], list[str]] = {}  # (symbol or concrete type, actual) -> where
    unknown = []
    for kind, params, names, var in (("input", sig[0], node.input, variadic[0]),
                                     ("output", sig[1], node.output, variadic[1])):
        bound = _bind(params, list(names), var)
        if bound is None:
            return None
        for i, name, param in bound:
            actual = types.get(name)
            if actual is None:
                unknown.append(f"{kind} {i} '{name}'")
            elif param.concrete and actual != param.type:
                bad.setdefault((param.type, actual), []).append(f"{kind} {i} '{name}'")
            elif (not param.concrete and param.type in entry.constraints
                  and actual not in entry.constraints[param.type]):
                bad.setdefault((param.type, actual), []).append(f"{kind} {i} '{name}'")
    problems = []
    for (want, actual), where in bad.items():
        if "(" in want:
            problems.append(f"{actual} where it takes {want} only ({', '.join(where)})")
        else:
            allowed = ", ".join(sorted(t.removeprefix("tensor(").removesuffix(")") for t in entry.constraints[want]))
            problems.append(f"type {want}={actual} ({', '.join(where)}; CUDA {want} = {allowed})")
    return problems, unknown


def _rank(entry: KernelEntry, sig, schema) -> tuple[int, int]:
    """Prefer the signature of the ONNX schema in use, then the one whose symbols the entry constrains best."""
    if schema is not None:
        sch = ([p.type_str for p in schema.inputs], [p.type_str for p in schema.outputs])
        ours = ([p.type for p in sig[0]], [p.type for p in sig[1]])
        if ours == sch:
            return (0, 0)
    symbols = [p.type for p in sig[0] + sig[1] if not p.concrete]
    return (1, sum(s not in entry.constraints for s in symbols))


def _node_problem(node: onnx.NodeProto, model: onnx.ModelProto, kernels, types) -> str | None:
    domain = "" if node.domain in STANDARD_DOMAINS else node.domain
    label = f"{node.name or '<unnamed>'} ({(domain or 'ai.onnx')}::{node.op_type}"
    opset = _opset(model, domain)
    if opset is None:
        opset = 1 if domain == MS_DOMAIN else defs.onnx_opset_version()
    schema = _schema(node.op_type, opset, domain)
    version = schema.since_version if schema is not None else opset
    label += f", opset {opset}" + (f", schema {version}" if version != opset else "") + ")"
    entries = kernels.get((domain, node.op_type))
    if not entries:
        note = ""
        if schema is not None and (schema.has_function or schema.has_context_dependent_function):
            note = ("; an ONNX function op: onnxruntime expands it into its function body when no provider has a "
                    "kernel, and that body is not checked here")
        return f"{label}: no CUDA kernel for op {node.op_type}{note}"
    entry = next((e for e in entries if e.since <= version), None)
    if entry is None or not entry.covers(version):
        have = ", ".join(e.range_text for e in entries)
        return f"{label}: no CUDA kernel for opset {version} (CUDA kernels: {have})"
    variadic = (False, False)
    if schema is not None:
        variadic = tuple(bool(ps) and ps[-1].option == defs.OpSchema.FormalParameterOption.Variadic
                         for ps in (schema.inputs, schema.outputs))
    results = []
    for sig in sorted(entry.signatures, key=lambda s: _rank(entry, s, schema)):
        res = _check_signature(entry, sig, node, types, variadic)
        if res is not None:
            results.append(res)
    if not results:
        return f"{label}: its inputs/outputs fit no parameter list of the CUDA kernel {entry.range_text}"
    problems, unknown = results[0]
    if problems:
        return f"{label}: no CUDA kernel for " + "; ".join(problems) + f" (kernel {entry.range_text})"
    if unknown:
        return f"{label}: cannot check, the type of " + ", ".join(unknown) + " is unknown"
    return None


def cuda_fallbacks(model: onnx.ModelProto, kernels: dict | None = None) -> list[str]:
    """One line per node of the main graph that the CUDA EP has no kernel for, by the stored table: nodes of the
    standard domain (``""`` / ``ai.onnx``) and of ``com.microsoft``, at the model's opset for the domain and the
    node's inferred element types; each line names the node, the op, the versions and the reason (no CUDA kernel
    for the op / for the opset / for a type, e.g. ``T1=tensor(uint8)``), or that a type could not be inferred.
    Nodes of other domains (``com.fqvit``: checked against our own library) are not looked at. Empty: every
    standard node would find a CUDA kernel (see the module docstring for what that does not cover)."""
    kernels = load_cuda_kernels() if kernels is None else kernels
    types = value_type_strings(model)
    lines = []
    for node in model.graph.node:
        if node.domain not in STANDARD_DOMAINS and node.domain != MS_DOMAIN:
            continue
        problem = _node_problem(node, model, kernels, types)
        if problem:
            lines.append(problem)
    return lines
