"""The C++ library states the op spec of ``fqvit_export/ops/spec.py`` (domain, version, docs/ops.md constants, input
indices, attribute names, the code types and which ports are of the code type ``T``) in
``custom_ops/include/fqvit_ops/spec.h``: parse that header and fail on any drift, and check that every op's glue
takes its indices and its ``T`` ports from it. The ONNX function bodies are built from the spec itself
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
        "Lookup": "lookup", "Requantize": "requantize"}

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
}


def _strip_comments(text: str) -> str:
    return re.sub(r"//[^\n]*", "", text)


def parse_header(text: str) -> tuple[dict[str, int | str], dict[str, dict]]:
    """(namespace-level constants, ops): each op {name, inputs: [enumerators without kNumInputs], attrs: {..}}."""
    text = _strip_comments(text)
    structs = {}
    for m in re.finditer(r"struct (\w+) \{(.*?)\n\};", text, re.S):
        body = m.group(2)
        name = re.search(r'static constexpr const char\* kName = "(\w+)";', body)
        enum = re.search(r"enum Input : size_t \{([^}]*)\};", body)
        code_inputs = re.search(r"static constexpr Input kCodeInputs\[\] = \{([^}]*)\};", body)
        code_output = re.search(r"static constexpr bool kCodeOutput = (true|false);", body)
        structs[m.group(1)] = {
            "name": name.group(1) if name else None,
            "inputs": [e.strip() for e in enum.group(1).split(",")] if enum else None,
            "attrs": dict(re.findall(r'static constexpr const char\* kAttr(\w+) = "(\w+)";', body)),
            "code_inputs": [e.strip() for e in code_inputs.group(1).split(",")] if code_inputs else None,
            "code_output": (code_output.group(1) == "true") if code_output else None,
        }
    outside = re.sub(r"struct \w+ \{.*?\n\};", "", text, flags=re.S)
    constants: dict[str, int | str | list[str]] = {}
    code_types = re.search(r"enum class CodeType : int \{([^}]*)\};", outside)
    if code_types:
        constants["CodeType"] = [e.strip() for e in code_types.group(1).split(",") if e.strip()]
    for m in re.finditer(r"^constexpr [\w:* ]+? (k\w+) = ([^;]+);", outside, re.M):
        raw = m.group(2).strip()
        constants[m.group(1)] = raw.strip('"') if raw.startswith('"') else int(raw, 0)
    return constants, structs


def _camel(name: str) -> str:
    """The C++ enumerator of input ``name``: ``x_scale`` -> ``kXScale``, ``X`` -> ``kX``."""
    return "k" + "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def drift(text: str) -> list[str]:
    """Every difference between the header text and ops/spec.py, one line each (empty: none)."""
    constants, structs = parse_header(text)
    problems = []
    want_codes = [_camel(t) for t in S.CODE_TYPES]  # kUint8, kInt8
    if constants.pop("CodeType", None) != want_codes:
        problems.append(f"enum class CodeType in spec.h is not {{{', '.join(want_codes)}}} (spec.py CODE_TYPES)")
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
        want_code_inputs = [_camel(p.name) for p in op.inputs if p.dtype == "T"]
        if st["code_inputs"] != want_code_inputs:
            problems.append(f"op::{name}::kCodeInputs {st['code_inputs']} != spec.py's T inputs {want_code_inputs}")
        want_code_output = op.outputs[0].dtype == "T"
        if st["code_output"] != want_code_output:
            problems.append(f"op::{name}::kCodeOutput = {st['code_output']}, spec.py's output is "
                            f"{op.outputs[0].dtype}")
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
    ("kCodeInputs[] = {kX, kXZeroPoint, kYZeroPoint};", "kCodeInputs[] = {kX, kYZeroPoint};"),
    ("kCodeInputs[] = {kV, kVZeroPoint, kYZeroPoint};", "kCodeInputs[] = {kA, kV, kVZeroPoint, kYZeroPoint};"),
    ("kCodeInputs[] = {kX};\n  static constexpr bool kCodeOutput = false;",
     "kCodeInputs[] = {kX};\n  static constexpr bool kCodeOutput = true;"),
    ("enum class CodeType : int { kUint8, kInt8 };", "enum class CodeType : int { kUint8 };"),
], ids=["constant", "lis_constant", "pts_index", "requantize_index", "attribute", "domain", "pts_code_inputs",
        "lis_matmul_code_inputs", "lis_code_output", "code_types"])
def test_drift_is_caught(edit: tuple[str, str]) -> None:
    """A changed constant, swapped input indices or a renamed attribute in the header is reported."""
    text = HEADER.read_text()
    assert edit[0] in text
    assert drift(text.replace(edit[0], edit[1], 1))


@pytest.mark.parametrize("name", list(GLUE))
def test_glue_uses_spec_indices(name: str) -> None:
    """Each op's glue takes its name, input indices and attribute names from spec.h, with no private copy."""
    src = _strip_comments((ROOT / "custom_ops" / "src" / GLUE[name] / f"{GLUE[name]}_op.cc").read_text())
    assert f"using Spec = op::{name};" in src
    assert not re.search(r"\benum\b", src), "private input enum in the glue"
    assert not re.search(r'kName = "', src)
    for attr in S.op(name).attribute_names:
        assert f'"{attr}"' not in src, f"attribute name {attr!r} spelled in the glue, not taken from spec.h"
    # T ports: typed by OpBase from Spec::kCodeInputs / kCodeOutput; the glue's own types are for the other ports,
    # and every code input is read with the node's code type.
    assert f"OpBase<Op, Kernel, Spec>" in src
    assert "GetInputType(" not in src and "GetOutputType(" not in src, "the glue types ports itself"
    assert "FixedInputType(" in src
    for port in S.op(name).inputs:
        if port.dtype == "T" and port.name != "table" and port.name != "X" and port.name != "V":
            assert f'scalar_code(ctx, Spec::{_camel(port.name)}, "{port.name}", code_)' in src, port.name
        elif port.dtype == "T":
            assert f'Spec::{_camel(port.name)}, "{port.name}", onnx_code_type(code_))' in src, port.name


@pytest.mark.parametrize("func", F.function_protos(), ids=lambda f: f.name)
def test_function_signature_is_the_spec(func) -> None:
    op = S.op(func.name)
    assert func.domain == S.DOMAIN
    assert list(func.input) == op.input_names and list(func.output) == op.output_names
    assert list(func.attribute) == op.attribute_names
    assert [(o.domain, o.version) for o in func.opset_import] == [("", S.OPSET)]
