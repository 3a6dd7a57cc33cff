"""``fqvit_export.deploy.placement``: the stored CUDA kernel table parses, and ``cuda_fallbacks`` reports the standard nodes
of small hand-built graphs that the CUDA EP has no kernel for (op, opset range, type constraints), on the CPU."""
from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto as TP, helper as h

from fqvit_export.deploy import placement as P


def _model(nodes, inputs, outputs, opset=18, extra_opsets=(), functions=(), initializers=()):
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info(n, t, s) for n, t, s in inputs],
                         [h.make_tensor_value_info(n, t, s) for n, t, s in outputs], initializer=list(initializers))
    opsets = [h.make_opsetid("", opset)] + [h.make_opsetid(d, v) for d, v in extra_opsets]
    return h.make_model(graph, opset_imports=opsets, functions=list(functions))


def _matmul_integer(a_type, b_type, opset=18):
    zp = [h.make_tensor("a_zp", a_type, [], [0]), h.make_tensor("b_zp", b_type, [], [0])]
    node = h.make_node("MatMulInteger", ["A", "B", "a_zp", "b_zp"], ["Y"], name="mmi")
    return _model([node], [("A", a_type, [2, 3]), ("B", b_type, [3, 4])], [("Y", TP.INT32, [2, 4])],
                  opset=opset, initializers=zp)


def test_table_parses():
    k = P.load_cuda_kernels()
    assert P.ORT_GPU_RELEASE == "1.31.1"
    assert P.TABLE_COMMIT in P.KERNEL_TABLE.read_text()
    assert len(k) > 200 and sum(len(v) for v in k.values()) > 400
    (mmi,) = k[("", "MatMulInteger")]
    assert (mmi.since, mmi.until) == (10, None)
    assert mmi.constraints == {"T1": {"tensor(int8)"}, "T2": {"tensor(int8)"}, "T3": {"tensor(int32)"}}
    # continuation rows reuse the op's parameters; ranges "13+", "[11, 12]", "10"
    concat = k[("", "Concat")]
    assert [e.range_text for e in concat] == ["13+", "[11, 12]", "[4, 10]"]
    assert all(e.signatures == concat[0].signatures for e in concat)
    assert [e.range_text for e in k[("", "Upsample")]] == ["9", "[7, 8]"]
    # alternative signatures, concrete-typed params
    assert len(k[("", "DequantizeLinear")][0].signatures) == 3
    reshape_in = k[("", "Reshape")][0].signatures[0][0]
    assert reshape_in[1] == P.Param("shape", "tensor(int64)") and reshape_in[1].concrete
    assert ("com.microsoft", "QuantizeLinear") in k and ("", "BitShift") not in k


def test_matmul_integer_int8_passes():
    assert P.cuda_fallbacks(_matmul_integer(TP.INT8, TP.INT8)) == []


def test_matmul_integer_uint8_reported():
    (line,) = P.cuda_fallbacks(_matmul_integer(TP.UINT8, TP.INT8))
    assert line.startswith("mmi (ai.onnx::MatMulInteger") and "T1=tensor(uint8)" in line
    assert "input 0 'A'" in line and "input 2 'a_zp'" in line and "T2" not in line


def test_op_absent_on_cuda_reported():
    node = h.make_node("BitShift", ["X", "Y"], ["Z"], name="shift", direction="RIGHT")
    m = _model([node], [("X", TP.UINT8, [4]), ("Y", TP.UINT8, [4])], [("Z", TP.UINT8, [4])])
    (line,) = P.cuda_fallbacks(m)
    assert "no CUDA kernel for op BitShift" in line and "function" not in line
    # a function op with no kernel gets the note that onnxruntime expands it
    node = h.make_node("CastLike", ["X", "Y"], ["Z"], name="cl")
    m = _model([node], [("X", TP.FLOAT, [4]), ("Y", TP.INT8, [4])], [("Z", TP.INT8, [4])])
    (line,) = P.cuda_fallbacks(m)
    assert "no CUDA kernel for op CastLike" in line and "function body" in line


@pytest.mark.parametrize("opset, reported", [(13, True), (14, False)])
def test_add_int8_needs_opset_14(opset, reported):
    # CUDA Add: 14+ takes int8, the opset-13 kernel does not
    node = h.make_node("Add", ["A", "B"], ["C"], name="add")
    m = _model([node], [("A", TP.INT8, [4]), ("B", TP.INT8, [4])], [("C", TP.INT8, [4])], opset=opset)
    lines = P.cuda_fallbacks(m)
    assert bool(lines) == reported
    if reported:
        assert "T=tensor(int8)" in lines[0] and "kernel 13)" in lines[0]


@pytest.mark.parametrize("op, opset, attrs, reported", [
    ("Clip", 5, {"min": 0.0, "max": 1.0}, True),    # CUDA Clip kernels start at 6
    ("Clip", 6, {"min": 0.0, "max": 1.0}, False),
    ("Upsample", 9, {}, False),                      # CUDA Upsample: [7, 8] and 9 only
    ("Upsample", 10, {}, True),
])
def test_opset_ranges(op, opset, attrs, reported):
    ins = ["X"] + (["scales"] if op == "Upsample" else [])
    node = h.make_node(op, ins, ["Y"], name="n", **attrs)
    inputs = [("X", TP.FLOAT, [1, 1, 2, 2])] + ([("scales", TP.FLOAT, [4])] if op == "Upsample" else [])
    m = _model([node], inputs, [("Y", TP.FLOAT, None)], opset=opset)
    lines = P.cuda_fallbacks(m)
    assert bool(lines) == reported, lines
    if reported:
        assert "no CUDA kernel for opset" in lines[0]


@pytest.mark.parametrize("shape_type, reported", [(TP.INT64, False), (TP.INT32, True)])
def test_concrete_typed_input(shape_type, reported):
    node = h.make_node("Reshape", ["X", "shape"], ["Y"], name="rs")
    m = _model([node], [("X", TP.FLOAT, [2, 3]), ("shape", shape_type, [1])], [("Y", TP.FLOAT, [6])])
    lines = P.cuda_fallbacks(m)
    assert bool(lines) == reported, lines
    if reported:
        assert "tensor(int32) where it takes tensor(int64) only (input 1 'shape')" in lines[0]


@pytest.mark.parametrize("elem, reported", [(TP.INT8, False), (TP.STRING, True)])
def test_variadic_inputs(elem, reported):
    node = h.make_node("Concat", ["A", "B", "C"], ["Y"], name="cat", axis=0)
    m = _model([node], [(n, elem, [1]) for n in "ABC"], [("Y", elem, [3])])
    lines = P.cuda_fallbacks(m)
    assert bool(lines) == reported, lines
    if reported:
        assert "input 2 'C'" in lines[0]


@pytest.mark.parametrize("code_type, reported", [(TP.INT8, False), (TP.UINT8, True)])
def test_custom_function_outputs_typed(code_type, reported):
    # a com.fqvit node with a model-local function whose output the graph does not declare: its type comes from
    # the body; the com.fqvit node itself is not checked, the MatMulInteger it feeds is
    fn = h.make_function("com.fqvit", "ToCode", ["x"], ["q"],
                         [h.make_node("Cast", ["x"], ["q"], to=code_type)], [h.make_opsetid("", 18)])
    nodes = [h.make_node("ToCode", ["X"], ["Q"], name="code", domain="com.fqvit"),
             h.make_node("MatMulInteger", ["Q", "B"], ["Y"], name="mmi")]
    m = _model(nodes, [("X", TP.FLOAT, [2, 3]), ("B", TP.INT8, [3, 4])], [("Y", TP.INT32, [2, 4])],
               extra_opsets=[("com.fqvit", 1)], functions=[fn])
    assert P.value_type_strings(m)["Q"] == f"tensor({'int8' if code_type == TP.INT8 else 'uint8'})"
    lines = P.cuda_fallbacks(m)
    assert bool(lines) == reported, lines
    assert not any("ToCode" in line for line in lines)


def test_com_microsoft_checked():
    # com.microsoft QuantizeLinear on CUDA: T1 = float16 only
    node = h.make_node("QuantizeLinear", ["x", "s", "zp"], ["y"], name="q", domain="com.microsoft")
    zp = h.make_tensor("zp", TP.UINT8, [], [0])
    for elem, reported in ((TP.FLOAT16, False), (TP.FLOAT, True)):
        m = _model([node], [("x", elem, [4]), ("s", elem, [])], [("y", TP.UINT8, [4])],
                   extra_opsets=[("com.microsoft", 1)], initializers=[zp])
        lines = P.cuda_fallbacks(m)
        assert bool(lines) == reported, lines
        if reported:
            assert "com.microsoft::QuantizeLinear" in lines[0] and "T1=tensor(float)" in lines[0]


def test_unknown_type_is_reported_not_passed():
    node = h.make_node("Sqrt", ["X"], ["Y"], name="sq")
    graph = h.make_graph([node], "g", [onnx.ValueInfoProto(name="X")], [onnx.ValueInfoProto(name="Y")])
    m = h.make_model(graph, opset_imports=[h.make_opsetid("", 18)])
    (line,) = P.cuda_fallbacks(m)
    assert "cannot check" in line and "'X'" in line
