"""ONNX export: graph structure, int8 weights, function bodies, metadata, bit-exact parity with PyTorch."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import onnx
import pytest
import torch

from conftest import CIFAR_TEST, IMAGENET
from fqvit_export.api import calibrate, evaluate
from fqvit_export.data import eval_loader
from fqvit_export.export.onnx_export import IR_VERSION, build_onnx, export_onnx, float_onnx
from fqvit_export.models.registry import FQVIT_MODELS, ModelSpec
from fqvit_export.ops.functions import DOMAIN
from fqvit_export.quant.point import QuantConfig
from fqvit_export.deploy.session import Session, parity
from test_calibrate import SEED_KWARGS

LIS = {"pts": True, "lis": True, "attn_bits": 4}


def _ops(model: onnx.ModelProto) -> Counter:
    return Counter(n.op_type for n in model.graph.node)


@pytest.fixture(scope="module")
def vit_lis(calibrated):
    cal = calibrated("cifar10_vit", **LIS)
    return cal, build_onnx(cal)[0]


def test_custom_nodes_per_block(vit_lis):
    cal, model = vit_lis
    depth = len(cal.float_model.blocks)
    custom = [n for n in model.graph.node if n.domain == DOMAIN]
    per_block = Counter((n.name.split(".")[1], n.op_type) for n in custom if n.name.startswith("blocks."))
    for i in range(depth):
        assert per_block[(str(i), "PTSLayerNorm")] == 2
        assert per_block[(str(i), "LISAttention")] == 1  # q k^T, Requantize, LogIntSoftmax and LISMatMul
        assert per_block[(str(i), "Lookup")] == 1  # the GELU table
        assert per_block[(str(i), "QLinear")] == 4  # qkv, proj, fc1, fc2
        assert per_block[(str(i), "ResidualAdd")] == 2
        for unfused in ("LogIntSoftmax", "LISMatMul", "Requantize"):
            assert per_block[(str(i), unfused)] == 0
    assert Counter(n.op_type for n in custom)["PTSLayerNorm"] == 2 * depth + 1  # + the final norm
    for n in custom:  # every attribute written on the node (function defaults never reach a kernel)
        want = {"PTSLayerNorm": {"epsilon"}, "LogIntSoftmax": {"multiplier", "bits"}, "LISMatMul": {"bits"},
                "Lookup": set(), "Requantize": set(), "QLinear": set(), "ResidualAdd": set(),
                "LISAttention": {"heads", "lis_multiplier", "bits"}}
        assert {a.name for a in n.attribute} == want[n.op_type]


def test_nodes_per_block(vit_lis):
    """A PTS+LIS block is 10 nodes (43 before the fused ops, 21 before LISAttention): 4 QLinear, 2 ResidualAdd,
    2 PTSLayerNorm, 1 LISAttention (q k^T, LogIntSoftmax, attention@V and the layout nodes around them) and the GELU
    Lookup."""
    _, model = vit_lis
    blocks = Counter(n.name.split("/")[0].split(".")[1] for n in model.graph.node if n.name.startswith("blocks."))
    assert set(blocks.values()) == {10}, blocks
    block0 = Counter(n.op_type for n in model.graph.node if n.name.startswith("blocks.0."))
    assert block0 == {"QLinear": 4, "PTSLayerNorm": 2, "ResidualAdd": 2, "LISAttention": 1, "Lookup": 1}


def test_integer_weights_only(vit_lis):
    _, model = vit_lis
    inits = {t.name: t for t in model.graph.initializer}
    ops = _ops(model)
    assert ops["MatMul"] == 0 and ops["Conv"] == 0 and ops["Softmax"] == 0 and ops["LayerNormalization"] == 0
    for n in model.graph.node:
        if n.op_type in ("MatMulInteger", "QLinear") and n.input[1] in inits:
            assert inits[n.input[1]].data_type == onnx.TensorProto.INT8
    float_big = [t.name for t in model.graph.initializer
                 if t.data_type == onnx.TensorProto.FLOAT and len(t.dims) >= 2 and np.prod(t.dims) > 1024
                 and not t.name.endswith(".dequantized")]  # quantized constants kept as their values (Swin's bias)
    assert float_big == [], float_big  # no float weight matrix left
    weights = [t for t in model.graph.initializer if t.name.endswith(".weight_quantized")]
    assert len(weights) == 1 + 4 * 12 + 1  # patch embedding, qkv/proj/fc1/fc2 per block, head


def test_file_is_quarter_of_fp32(vit_lis, tmp_path):
    cal, _ = vit_lis
    q = export_onnx(cal, tmp_path / "q.onnx")
    onnx.save(float_onnx(cal), tmp_path / "f.onnx")
    ratio = q.size_bytes / (tmp_path / "f.onnx").stat().st_size
    assert 0.2 < ratio < 0.3, ratio


def test_model_format_and_metadata(vit_lis):
    cal, model = vit_lis
    assert model.ir_version == IR_VERSION
    opsets = {o.domain: o.version for o in model.opset_import}
    assert opsets == {"": 18, DOMAIN: 1}
    assert sorted(f.name for f in model.functions) == sorted(
        ["LISAttention", "LISMatMul", "LogIntSoftmax", "Lookup", "PTSLayerNorm", "QLinear", "Requantize",
         "ResidualAdd"])
    onnx.checker.check_model(model, full_check=True)
    meta = {p.key: p.value for p in model.metadata_props}
    pre = json.loads(meta["preprocessing"])
    assert pre["mean"] == pytest.approx([0.4914, 0.4822, 0.4465]) and pre["center_crop"] == [32, 32]
    assert json.loads(meta["quantization"])["lis"] is True and meta["num_classes"] == "10"
    assert meta["com.fqvit.op_version"] == "1" and "fqvit_export.version" in meta
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param == "batch"


@pytest.mark.parametrize("name", ["cifar10_vit", "cifar10_swin"])
def test_bit_exact_with_pytorch(calibrated, name, tmp_path):
    """With LIS every step is integer or a fixed IEEE float32 op: onnxruntime (function bodies, no library)
    reproduces the PyTorch model's logits exactly, on real images and a batch size the export never saw."""
    cal = calibrated(name, **LIS)
    path = export_onnx(cal, tmp_path / "m.onnx").path
    sess = Session(path, library="off")
    loader = eval_loader(CIFAR_TEST, cal.data_cfg, batch_size=37, limit=111)
    a = evaluate(sess, loader, progress=False)["logits"]
    b = evaluate(cal.qmodel, loader, progress=False)["logits"]
    assert torch.equal(a, b), parity(a, b)


def test_plain_config_runs_close(calibrated, tmp_path):
    """Without LIS the float softmax differs in the last bits between runtimes: close, not identical."""
    cal = calibrated("cifar10_swin", pts=True)
    sess = Session(export_onnx(cal, tmp_path / "m.onnx").path, library="off")
    loader = eval_loader(CIFAR_TEST, cal.data_cfg, limit=100)
    p = parity(evaluate(sess, loader, progress=False)["logits"], evaluate(cal.qmodel, loader, progress=False)["logits"])
    assert p["top1_agreement"] >= 95.0


def test_simplify_keeps_functions(vit_lis):
    cal, _ = vit_lis
    model, simplified = build_onnx(cal, simplify=True)
    assert simplified and len(model.functions) == 8


def test_no_overwrite_and_atomic(vit_lis, tmp_path, monkeypatch):
    cal, _ = vit_lis
    out = tmp_path / "m.onnx"
    out.write_bytes(b"keep")
    with pytest.raises(FileExistsError, match="--force"):
        export_onnx(cal, out)
    assert out.read_bytes() == b"keep"

    def boom(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(onnx, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        export_onnx(cal, tmp_path / "new.onnx", simplify=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no partial file, no temporary left


@pytest.mark.parametrize("name", list(FQVIT_MODELS))
def test_seed_architectures_export_and_run(name, tmp_path):
    """Each FQ-ViT architecture (random weights, reduced depth) exports with PTS+LIS and runs in onnxruntime
    bit-identically to PyTorch, for both targets: the cuda graph (int8 codes) gives the cpu graph's logits."""
    cal = calibrate(ModelSpec(name, random_init=True, model_kwargs=SEED_KWARGS[name]), QuantConfig(**LIS), calib_dir=IMAGENET,
                    calib_size=2, batch_size=2, progress=False)
    x = next(iter(eval_loader(IMAGENET, cal.data_cfg, batch_size=2)))[0]
    want = cal.qmodel(x).numpy()
    for device in ("cpu", "cuda"):
        path = export_onnx(cal, tmp_path / f"{device}.onnx", simplify=False, device=device).path
        out = Session(path, library="off", providers=["CPUExecutionProvider"])(x)
        assert out.shape == (2, 1000)
        assert np.array_equal(out, want), device


def test_library_matches_function_bodies(vit_lis, tmp_path):
    """With the kernel library registered, the exported model gives exactly the function bodies' outputs."""
    from fqvit_export.deploy.library import custom_ops_library
    if custom_ops_library() is None:
        pytest.skip("custom-op library not built (tools/build_custom_ops.sh)")
    cal, _ = vit_lis
    path = export_onnx(cal, tmp_path / "m.onnx").path
    with_lib, without = Session(path, library="on"), Session(path, library="off")
    assert with_lib.custom_ops and not without.custom_ops
    x = next(iter(eval_loader(CIFAR_TEST, cal.data_cfg, batch_size=64)))[0]
    assert np.array_equal(with_lib(x), without(x))


def test_lis_attention_only_where_it_computes_the_same(calibrated, tmp_path):
    """LISAttention replaces the attention where it gives the unfused nodes' bits: with a narrower attention@V point
    (8-bit logits) the op is still written, followed by the point's Clip, and the logits stay those of PyTorch (with
    the library and with the function bodies); an unknown token count or one beyond the op's limit keeps the
    unfused nodes."""
    import copy
    from fqvit_export.backends.onnx_backend import trace_graph
    from fqvit_export.deploy.library import custom_ops_library
    from fqvit_export.ops.spec import MAX_ATTENTION_TOKENS
    cal = copy.deepcopy(calibrated("cifar10_vit", **LIS))
    narrow = [n for n in cal.qmodel.points if n.endswith(".attn.attn_v")]
    for n in narrow:
        cal.qmodel.points[n].bits = 6
    cal.qmodel._backend = None  # rebuilt over the edited points
    path = export_onnx(cal, tmp_path / "narrow.onnx", simplify=False).path
    model = onnx.load(path)
    producers = {o: n for n in model.graph.node for o in n.output}
    attention = [n for n in model.graph.node if n.op_type == "LISAttention"]
    assert len(attention) == len(narrow) == len(cal.float_model.blocks)
    consumers = Counter(n.op_type for n in model.graph.node for i in n.input if producers.get(i) in attention)
    assert consumers == {"Clip": len(narrow)}
    x = next(iter(eval_loader(CIFAR_TEST, cal.data_cfg, batch_size=8, limit=8)))[0]
    ref = cal.qmodel(x).numpy()
    assert np.array_equal(Session(path, library="off")(x), ref)
    if custom_ops_library() is not None:
        assert np.array_equal(Session(path, library="on")(x), ref)

    class Probe:  # an adapter that calls the attention with a token count the op cannot take, or none
        def __init__(self, tokens):
            self.tokens = tokens

        def __call__(self, b, m, x):
            blk = m.blocks[0]
            return b.attention("qkv_codes", "blocks.0.attn", blk.attn.num_heads, blk.attn.head_dim, blk.attn.scale,
                               self.tokens)
    for tokens in (0, MAX_ATTENTION_TOKENS + 1):
        b, _ = trace_graph(cal.float_model, Probe(tokens), cal.qmodel.points, cal.config)
        assert {n.op_type for n in b.nodes} >= {"MatMulInteger", "LogIntSoftmax", "LISMatMul"}
        assert "LISAttention" not in {n.op_type for n in b.nodes}
