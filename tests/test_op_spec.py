"""The C++ library states the op spec of ``fqvit_export/ops/spec.py`` (domain, version, docs/ops.md constants, input
indices, attribute names, the code types, and every input port: name, type, host memory, optional) in
``custom_ops/include/fqvit_ops/spec.h``: parse that header and fail on any drift, and check that every op's glue
takes its inputs, their types and its names from it. The ONNX function bodies are built from the spec itself
(checked here too), so a changed signature reaches the bodies, the kernels and the harnesses together."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from fqvit_export.ops import functions as F
from fqvit_export.ops import spec as S

ROOT = Path(__file__).resolve().parents[1]
HEADER = ROOT / "custom_ops" / "include" / "fqvit_ops" / "spec.h"
GLUE = {"PTSLayerNorm": "pts_layernorm", "LogIntSoftmax": "log_int_softmax", "LISMatMul": "lis_matmul",
        "Lookup": "lookup", "Requantize": "requantize", "ResidualAdd": "residual_add"}

# C++ name -> the spec value it must equal.
CONSTANTS = {
    "kDomain": S.DOMAIN,
    "kOpVersion": S.OP_VERSION,
    "kMaxLnChannels": S.MAX_LN_CHANNELS,
    "kMaxAlpha": S.MAX_ALPHA,
    "kLisFracBits": S.LIS_FRAC_BITS,
    "kLisPolyB": S.LIS_POLY_B,
    "kLisPolyC": S.LIS_POLY_C,
    "kLisNormBits": S.LIS_NORM_BITS,
    "kLisValueShift": S.LIS_VALUE_SHIFT,
    "kLisMinBits": S.LIS_MIN_BITS,
    "kLisMaxBits": S.LIS_MAX_BITS,
    "kLisDefaultBits": S.LIS_DEFAULT_BITS,
    "kLisMaxCodes": S.LIS_MAX_CODES,
    "kMaxLisMultiplier": S.MAX_LIS_MULTIPLIER,
    "kMaxRank": S.MAX_RANK,
    "kLookupTableSize": S.LOOKUP_TABLE_SIZE,
    "kMaxQlinearK": S.MAX_QLINEAR_K,
    "kMaxAttentionHeads": S.MAX_ATTENTION_HEADS,
    "kMaxAttentionHeadDim": S.MAX_ATTENTION_HEAD_DIM,
    "kMaxAttentionTokens": S.MAX_ATTENTION_TOKENS,
}


def _strip_comments(text: str) -> str:
    return re.sub(r"//[^\n]*", "", text)


def parse_header(text: str) -> tuple[dict[str, int | str], dict[str, dict]]:
    """(namespace-level constants, ops): each op {name, inputs: [enumerators without kNumInputs], ports: [[index,
    name, dtype, memory, presence] with the defaults filled in], output: dtype, attrs: {..}}."""
    text = _strip_comments(text)
    structs = {}
    for m in re.finditer(r"^struct (\w+) \{\n(.*?)\n\};", text, re.S | re.M):
        body = m.group(2)
        name = re.search(r'static constexpr const char\* kName = "(\w+)";', body)
        if name is None:
            continue  # not an op (op::Port)
        enum = re.search(r"enum Input : size_t \{([^}]*)\};", body)
        ports = re.search(r"static constexpr Port kInputs\[\] = \{(.*?)\};", body, re.S)
        output = re.search(r"static constexpr Dtype kOutput = (\w+);", body)
        structs[m.group(1)] = {
            "name": name.group(1),
            "inputs": [e.strip() for e in enum.group(1).split(",")] if enum else None,
            "ports": [_port(entry) for entry in re.findall(r"\{([^{}]*)\}", ports.group(1))] if ports else None,
            "output": output.group(1) if output else None,
            "attrs": dict(re.findall(r'static constexpr const char\* kAttr(\w+) = "(\w+)";', body)),
        }
    outside = re.sub(r"^struct \w+ \{\n.*?\n\};", "", text, flags=re.S | re.M)
    constants: dict[str, int | str | list[str]] = {}
    for enum_name in ("CodeType", "Dtype", "Memory", "Presence"):
        values = re.search(rf"enum (?:class )?{enum_name} : int \{{([^}}]*)\}};", outside)
        if values:
            constants[enum_name] = [e.strip() for e in values.group(1).split(",") if e.strip()]
    for m in re.finditer(r"^constexpr [\w:* ]+? (k\w+) = ([^;]+);", outside, re.M):
        raw = m.group(2).strip()
        constants[m.group(1)] = raw.strip('"') if raw.startswith('"') else int(raw, 0)
    return constants, structs


def _port(entry: str) -> list[str]:
    """One ``{kIndex, "name", kDtype[, kMemory[, kPresence]]}`` of kInputs, the defaults filled in."""
    fields = [f.strip() for f in entry.split(",")]
    return fields + ["kDevice", "kRequired"][len(fields) - 3:]


def _camel(name: str) -> str:
    """The C++ enumerator of input ``name``: ``x_scale`` -> ``kXScale``, ``X`` -> ``kX``."""
    return "k" + "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def drift(text: str) -> list[str]:
    """Every difference between the header text and ops/spec.py, one line each (empty: none)."""
    constants, structs = parse_header(text)
    problems = []
    want_enums = {
        "CodeType": ([_camel(t) for t in S.CODE_TYPES], "spec.py CODE_TYPES"),  # kUint8, kInt8
        "Dtype": (["kT", "kUint8", "kInt32", "kFloat", "kBool", "kInt8"], "Port.dtype values"),
        "Memory": (["kDevice", "kHost"], "Port.host"),
        "Presence": (["kRequired", "kOptional"], "Port.optional"),
    }
    for enum_name, (want, what) in want_enums.items():
        if constants.pop(enum_name, None) != want:
            problems.append(f"enum {enum_name} in spec.h is not {{{', '.join(want)}}} ({what})")
    for cpp, want in CONSTANTS.items():
        if cpp not in constants:
            problems.append(f"{cpp} missing from spec.h")
        elif constants[cpp] != want:
            problems.append(f"{cpp} = {constants[cpp]!r} in spec.h, spec.py says {want!r}")
    problems += [f"{c} in spec.h is not checked against spec.py (add it to CONSTANTS)"
                 for c in constants if c not in CONSTANTS]
    for name, op in S.OPS.items():
        st = structs.get(name)
        if st is None:
            problems.append(f"struct op::{name} missing from spec.h")
            continue
        if st["name"] != name:
            problems.append(f"op::{name}::kName = {st['name']!r}")
        want_inputs = [_camel(n) for n in op.input_names] + ["kNumInputs"]
        if st["inputs"] != want_inputs:
            problems.append(f"op::{name} input indices {st['inputs']} != spec order {want_inputs}")
        want_ports = [[_camel(p.name), f'"{p.name}"', _camel(p.dtype), "kHost" if p.host else "kDevice",
                       "kOptional" if p.optional else "kRequired"] for p in op.inputs]
        got_ports = st["ports"] or []
        if len(got_ports) != len(want_ports):
            problems.append(f"op::{name}::kInputs has {len(got_ports)} ports, spec.py {len(want_ports)}")
        problems += [f"op::{name}::kInputs[{i}] = {{{', '.join(got)}}}, spec.py says {{{', '.join(want)}}}"
                     for i, (got, want) in enumerate(zip(got_ports, want_ports)) if got != want]
        if st["output"] != _camel(op.outputs[0].dtype):
            problems.append(f"op::{name}::kOutput = {st['output']}, spec.py's output is {op.outputs[0].dtype}")
        want_attrs = {_camel(a)[1:]: a for a in op.attribute_names}
        if st["attrs"] != want_attrs:
            problems.append(f"op::{name} attributes {st['attrs']} != spec {want_attrs}")
    problems += [f"struct op::{s} in spec.h is not an op of spec.py" for s in structs if s not in S.OPS]
    return problems


def test_cpp_spec_matches_python_spec() -> None:
    assert drift(HEADER.read_text()) == []


@pytest.mark.parametrize("edit", [
    ("constexpr int kMaxAlpha = 3;", "constexpr int kMaxAlpha = 4;"),
    ("constexpr int64_t kLisPolyC = 1559991451;", "constexpr int64_t kLisPolyC = 1559991450;"),
    ("{ kX, kXScale, kXZeroPoint, kAlpha,", "{ kX, kXZeroPoint, kXScale, kAlpha,"),
    ("enum Input : size_t { kA, kMultiplier, kBias,", "enum Input : size_t { kA, kBias, kMultiplier,"),
    ('kAttrBits = "bits";', 'kAttrBits = "nbits";'),
    ('constexpr const char* kDomain = "com.fqvit";', 'constexpr const char* kDomain = "com.fqvit2";'),
    ("{kXScale, \"x_scale\", kFloat, kHost}", "{kXScale, \"x_scale\", kFloat}"),
    ("{kVZeroPoint, \"v_zero_point\", kT, kHost}", "{kVZeroPoint, \"v_zero_point\", kT, kDevice}"),
    ("{kMultiplier, \"multiplier\", kFloat}", "{kMultiplier, \"multiplier\", kFloat, kHost}"),
    ("{kAlpha, \"alpha\", kUint8}", "{kAlpha, \"alpha\", kT}"),
    ("{kA, \"A\", kInt32}", "{kA, \"A\", kFloat}"),
    ("{kTable, \"table\", kT}", "{kTable, \"lut\", kT}"),
    ("{kMask, \"mask\", kBool, kDevice, kOptional}", "{kMask, \"mask\", kBool}"),
    ("{kGamma, \"gamma\", kFloat}, ", ""),
    ("static constexpr Dtype kOutput = kUint8;", "static constexpr Dtype kOutput = kT;"),
    ("enum class CodeType : int { kUint8, kInt8 };", "enum class CodeType : int { kUint8 };"),
    ("enum Memory : int { kDevice, kHost };", "enum Memory : int { kHost, kDevice };"),
], ids=["constant", "lis_constant", "pts_index", "requantize_index", "attribute", "domain", "pts_host_flag",
        "lis_matmul_host_flag", "requantize_host_flag", "pts_dtype_code", "requantize_dtype", "lookup_port_name",
        "lis_optional", "pts_missing_port", "lis_output", "code_types", "memory_enum"])
def test_drift_is_caught(edit: tuple[str, str]) -> None:
    """A changed constant, swapped input indices, a renamed attribute, or a port whose name, type, host flag or
    presence differs from spec.py in the header is reported."""
    text = HEADER.read_text()
    assert edit[0] in text
    assert drift(text.replace(edit[0], edit[1], 1))


@pytest.mark.parametrize("name", list(GLUE))
def test_glue_takes_its_inputs_from_spec(name: str) -> None:
    """Each op's glue binds its spec.h struct and receives its inputs in spec order (KernelBase fetches and types them
    from kInputs): no private enum, name, attribute name, input name, ONNX type, host flag or code-type switch."""
    src = _strip_comments((ROOT / "custom_ops" / "src" / GLUE[name] / f"{GLUE[name]}_op.cc").read_text())
    assert f"struct Kernel : KernelBase<Kernel, op::{name}>" in src
    assert not re.search(r"\benum\b", src), "private input enum in the glue"
    assert not re.search(r'kName = "', src)
    for attr in S.op(name).attribute_names:
        assert f'"{attr}"' not in src, f"attribute name {attr!r} spelled in the glue, not taken from spec.h"
    for port in S.op(name).inputs:
        assert f'"{port.name}"' not in src, f"input name {port.name!r} spelled in the glue, not taken from spec.h"
    for glue_only in ("ONNX_TENSOR_ELEMENT_DATA_TYPE_", "GetInputType", "GetOutputType", "GetInputMemoryType",
                      "GetInputCharacteristic", "IsHostScalar", "FixedInputType", "CodeType::kInt8", "get_input("):
        assert glue_only not in src, f"{glue_only} in the glue: op_base.h derives it from spec.h"
    run = re.search(r"template <typename T>\s+void Run\(Ort::KernelContext& ctx, ([^)]*)\) \{", src)
    assert run, "no Run<T>(ctx, inputs...)"
    params = re.findall(r"const Input& (\w+)", run.group(1))
    assert [p.lower() for p in params] == [p.name.lower() for p in S.op(name).inputs], \
        "Run's parameters must be the spec's inputs, in spec order"


@pytest.mark.parametrize("func", F.function_protos(), ids=lambda f: f.name)
def test_function_signature_is_the_spec(func) -> None:
    op = S.op(func.name)
    assert func.domain == S.DOMAIN
    assert list(func.input) == op.input_names and list(func.output) == op.output_names
    assert list(func.attribute) == op.attribute_names
    nested = {n.domain for n in func.node} == {"", S.DOMAIN}  # a body that calls other com.fqvit ops
    assert [(o.domain, o.version) for o in func.opset_import] == \
        [("", S.OPSET)] + ([(S.DOMAIN, S.OP_VERSION)] if nested else [])


@pytest.mark.parametrize("name", list(S.OPS))
def test_section_is_the_docs_section(name: str) -> None:
    """``OpSpec.section`` is a numbered section of docs/ops.md, and the section whose header names the op (``com.fqvit::
    <op>``) when one does (Lookup and Requantize live inside Sec. 1 without a header of their own)."""
    headers = dict(re.findall(r"^## (\d+)\. (.*)$", (ROOT / "docs" / "ops.md").read_text(), re.MULTILINE))
    section = S.op(name).section
    assert section in headers, f"{name}: docs/ops.md has no section '## {section}.'"
    naming = [n for n, title in headers.items() if f"com.fqvit::{name}`" in title]
    assert naming in ([], [section]), f"{name}: spec says Sec. {section}, docs/ops.md names it in Sec. {naming}"
