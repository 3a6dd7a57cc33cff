"""timm ViT-family variants built from standard parts: each calibrates, exports with PTS + LIS and runs in
onnxruntime with logits bit-identical to the quantized PyTorch model; other blocks are refused in one line.

Reduced depth, small images and random weights keep each case to about a second; the weights are perturbed so that
no part is trivial (timm zero-initialises some heads and starts LayerScale at 1e-5 or less).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import timm
import torch
from timm.layers import LayerScale

from conftest import IMAGENET
from fqvit_export.deploy.library import custom_ops_library
from fqvit_export.api import calibrate
from fqvit_export.data import DataOptions, eval_loader
from fqvit_export.export.onnx_export import export_onnx, float_onnx
from fqvit_export.models.adapters import UnsupportedModel, check_supported
from fqvit_export.models.registry import ModelSpec
from fqvit_export.backends.torch_backend import CalibrateBackend
from fqvit_export.models.quantized import QuantModel
from fqvit_export.ops.functions import DOMAIN
from fqvit_export.quant.point import QuantConfig
from fqvit_export.deploy.session import Session

LIS = {"pts": True, "lis": True, "attn_bits": 4}
TINY = {"depth": 1, "embed_dim": 96, "num_heads": 3}

# (timm name, model kwargs, the part the case is for)
SUPPORTED = [
    ("deit_tiny_distilled_patch16_224", {"depth": 1, "img_size": 64}, "distillation token and head"),
    ("deit3_small_patch16_224", {**TINY, "img_size": 64}, "LayerScale, no_embed_class"),
    ("vit_small_patch14_reg4_dinov2", {**TINY, "img_size": 56, "num_classes": 10}, "register tokens"),
    ("vit_base_patch16_clip_224", {**TINY, "img_size": 64, "num_classes": 10}, "norm_pre"),
    ("vit_base_patch16_clip_quickgelu_224", {**TINY, "img_size": 64, "num_classes": 10}, "QuickGELU"),
    ("vit_medium_patch16_gap_256", {**TINY, "img_size": 64}, "no class token, average pool, LayerScale"),
    ("vit_small_patch16_224", {**TINY, "img_size": 64, "class_token": False, "global_pool": "avg"}, "fc_norm"),
    ("vit_small_patch16_224", {**TINY, "img_size": 64, "qk_norm": True}, "qk_norm"),
    ("vit_tiny_patch16_224", {**TINY, "img_size": 64, "act_layer": "gelu_tanh"}, "tanh GELU"),
    ("vit_tiny_patch16_224", {**TINY, "img_size": 64, "act_layer": "silu"}, "SiLU"),
    ("vit_tiny_patch16_224", {**TINY, "img_size": 64, "global_pool": "avgmax"}, "avgmax pool"),
    ("vit_tiny_patch16_224", {"depth": 2, "img_size": 70, "patch_size": 7, "embed_dim": 60, "num_heads": 5},
     "odd patch and image size, 5 heads of 12"),
    ("swin_tiny_patch4_window7_224", {"depths": (2, 2, 2, 2), "embed_dim": 48, "img_size": 104},
     "Swin windows padded (26, 13 tokens), odd patch merging (13, 7)"),
    ("swin_tiny_patch4_window7_224", {"depths": (2, 2, 1, 1), "embed_dim": 48, "window_size": 5, "img_size": 80},
     "Swin window 5"),
]


def _perturb(model: torch.nn.Module) -> None:
    """Seeded noise on every parameter, LayerScale gammas in [0.2, 1): zero heads and 1e-6 branches would make
    the bit-exact comparison pass trivially."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, LayerScale):
                mod.gamma.copy_(0.2 + 0.8 * torch.rand(mod.gamma.shape, generator=g))
        for name, p in model.named_parameters():
            if not name.endswith("gamma"):
                p.add_(0.02 * torch.randn(p.shape, generator=g))


def _id(case) -> str:
    name, _, part = case.values if hasattr(case, "values") else case
    return f"{name}[{part}]"


@pytest.mark.parametrize("name, kwargs, part", SUPPORTED, ids=[_id(c) for c in SUPPORTED])
def test_variant_bit_exact(name: str, kwargs: dict, part: str, tmp_path: Path) -> None:
    """Calibrate (2 images), export with PTS + LIS, run on stock onnxruntime (function bodies) and with the
    kernel library: logits identical to the quantized PyTorch model, and close to the float model's; the same
    adapter in float (PyTorch and the FP32 ONNX graph) reproduces timm's forward."""
    torch.manual_seed(0)
    model = timm.create_model(name, **kwargs)
    _perturb(model)
    weights = tmp_path / "w.pth"
    torch.save(model.state_dict(), weights)
    img = kwargs.get("img_size", 224)
    cal = calibrate(ModelSpec(name, weights=str(weights), model_kwargs=kwargs), QuantConfig(**LIS),
                    DataOptions(img_size=img), calib_dir=IMAGENET, calib_size=2, batch_size=2, progress=False)
    path = export_onnx(cal, tmp_path / "m.onnx", simplify=False).path
    x = next(iter(eval_loader(IMAGENET, cal.data_cfg, batch_size=2)))[0]
    ref = cal.qmodel(x).numpy()
    out = Session(path, library="off")(x)
    assert np.array_equal(out, ref), float(np.abs(out - ref).max())
    if custom_ops_library() is not None:
        assert np.array_equal(Session(path, library="on")(x), ref)
    with torch.no_grad():
        fp = cal.float_model(x).numpy()
        # the adapter run in float is timm's own forward (token order, padding, pooling), in PyTorch and as FP32 ONNX
        adapter_fp = cal.qmodel.adapter(CalibrateBackend({}, cal.config), cal.float_model, x).numpy()
    np.testing.assert_allclose(adapter_fp, fp, rtol=0, atol=1e-4 * np.abs(fp).max())
    onnx.save(float_onnx(cal, simplify=False), tmp_path / "f.onnx")
    np.testing.assert_allclose(Session(tmp_path / "f.onnx", library="off")(x), fp, rtol=0, atol=1e-4 * np.abs(fp).max())
    assert ref.std() > 0 and np.corrcoef(ref.ravel(), fp.ravel())[0, 1] > 0.9  # quantized, not broken


def test_distilled_head_bit_exact(tmp_path: Path) -> None:
    """The distilled DeiT head as timm runs it in eval mode, ``(head(x[:, 0]) + head_dist(x[:, 1])) / 2``: the
    graph (assembled here without the api) gives the quantized PyTorch logits bit for bit."""
    from onnx import TensorProto, helper

    from fqvit_export.backends.onnx_backend import trace_graph
    from fqvit_export.export.onnx_export import IR_VERSION
    from fqvit_export.ops.functions import OP_VERSION, OPSET, function_protos
    torch.manual_seed(0)
    model = timm.create_model("deit_tiny_distilled_patch16_224", depth=1, img_size=32).eval()
    _perturb(model)
    x = torch.randn(3, 3, 32, 32)
    qm = QuantModel(model, QuantConfig(**LIS))
    qm.calibrate([x[:2]], progress=False)
    b, out = trace_graph(model, qm.adapter, qm.points, qm.config)
    graph = helper.make_graph([*b.nodes, helper.make_node("Identity", [out], ["logits"])], "distilled",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 32, 32])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1000])],
                              initializer=list(b.inits.values()))
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET),
                                                    helper.make_opsetid(DOMAIN, OP_VERSION)],
                              functions=function_protos(), ir_version=IR_VERSION)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, tmp_path / "m.onnx")
    ref = qm(x).numpy()
    assert np.array_equal(Session(tmp_path / "m.onnx", library="off")(x), ref)
    assert {"logits", "logits_dist"} <= set(qm.points)
    with torch.no_grad():
        assert np.corrcoef(ref.ravel(), model(x).numpy().ravel())[0, 1] > 0.9


def _graph_ops(name: str, **kwargs) -> tuple[QuantModel, dict, dict]:
    """Calibrate on random images straight through :class:`QuantModel`; the ONNX graph's node types counted, and
    its initializers (name -> array)."""
    from collections import Counter

    from onnx import numpy_helper

    from fqvit_export.backends.onnx_backend import trace_graph
    torch.manual_seed(0)
    model = timm.create_model(name, **kwargs).eval()
    qm = QuantModel(model, QuantConfig(**LIS))
    qm.calibrate([torch.randn(2, 3, kwargs["img_size"], kwargs["img_size"])], progress=False)
    b, _ = trace_graph(model, qm.adapter, qm.points, qm.config)
    inits = {k: numpy_helper.to_array(v) for k, v in b.inits.items()}
    return qm, Counter((n.domain, n.op_type) for n in b.nodes), inits


def test_parts_land_in_the_graph() -> None:
    """qk_norm adds two PTS LayerNorms per block, LayerScale's gammas become the ResidualAdds' gamma inputs,
    norm_pre and fc_norm one LayerNorm."""
    _, base, base_inits = _graph_ops("vit_tiny_patch16_224", **TINY, img_size=32)
    qm, qk, inits = _graph_ops("vit_tiny_patch16_224", **TINY, img_size=32, qk_norm=True, init_values=0.1)
    assert qk[(DOMAIN, "PTSLayerNorm")] == base[(DOMAIN, "PTSLayerNorm")] + 2
    # two per block and the position embedding's
    assert qk[(DOMAIN, "ResidualAdd")] == base[(DOMAIN, "ResidualAdd")] == 2 * TINY["depth"] + 1
    blk = qm.model.blocks[0]
    for i, ls in ((1, blk.ls1), (2, blk.ls2)):
        assert np.array_equal(inits[f"blocks.0.add{i}.gamma"], ls.gamma.detach().numpy())
    assert not any(k.endswith(".gamma") and k.startswith("blocks.0.add") for k in base_inits)
    assert np.array_equal(base_inits["residual_add.no_layer_scale"], np.ones(1, np.float32))
    qm, pre, _ = _graph_ops("vit_tiny_patch16_224", **TINY, img_size=32, pre_norm=True, class_token=False,
                         global_pool="avg")
    assert pre[(DOMAIN, "PTSLayerNorm")] == base[(DOMAIN, "PTSLayerNorm")] + 1  # norm_pre; fc_norm replaces norm
    assert {"norm_pre", "fc_norm", "pool"} <= set(qm.points) and "norm" not in qm.points
    assert qm.points["pool"].pts and qm.points["norm_pre.out"].pts


@pytest.mark.parametrize("act", ["gelu", "gelu_tanh", "quick_gelu", "silu", "relu", "hard_swish", "mish"])
def test_activation_table_is_the_module(act: str) -> None:
    """The Lookup table is the MLP's own activation on the 256 dequantized fc1 codes: the quantized model follows
    the float one for every elementwise activation."""
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", **TINY, img_size=32, act_layer=act).eval()
    _perturb(model)
    x = torch.randn(4, 3, 32, 32)
    qm = QuantModel(model, QuantConfig(**LIS))
    qm.calibrate([x], progress=False)
    with torch.no_grad():
        ref = model(x)
    assert np.corrcoef(qm(x).numpy().ravel(), ref.numpy().ravel())[0, 1] > 0.95


REFUSED = [
    ("vit_base_patch16_siglip_224", {"depth": 1}, "VisionTransformer: the attention-pooling head (global_pool='map')"),
    ("vit_small_patch16_224", {"depth": 1, "mlp_layer": timm.layers.SwiGLUPacked, "act_layer": "silu"},
     "VisionTransformer: blocks.0.mlp GluMlp"),
    ("vit_small_patch16_224", {"depth": 1, "mlp_layer": timm.layers.SwiGLU}, "VisionTransformer: blocks.0.mlp SwiGLU"),
    ("vit_small_patch16_224", {"depth": 1, "num_classes": 0}, "VisionTransformer: head Identity"),
    ("vit_small_patch16_224", {"depth": 1, "scale_attn_norm": True}, "VisionTransformer: blocks.0.attn.norm"),
    ("vit_small_patch16_224", {"depth": 1, "attn_layer": "diff"}, "VisionTransformer: attention DiffAttention"),
    ("vit_small_patch16_224", {"depth": 1, "block_fn": timm.models.vision_transformer.ResPostBlock},
     "VisionTransformer: block ResPostBlock"),
    ("vit_small_patch16_224", {"depth": 1, "global_pool": ""}, "VisionTransformer: global_pool=''"),
    ("swinv2_tiny_window8_256", {"depths": (1, 1, 1, 1)}, "SwinTransformerV2: cosine attention"),
    ("eva02_tiny_patch14_224", {"depth": 1}, "Eva: rotary position embedding"),
    ("vit_base_patch16_rope_reg1_gap_256", {"depth": 1}, "Eva: rotary position embedding"),
]


@pytest.mark.parametrize("name, kwargs, message", REFUSED, ids=[m.split(":")[1].strip() for *_, m in REFUSED])
def test_unsupported_parts_refused_in_one_line(name: str, kwargs: dict, message: str) -> None:
    try:
        model = timm.create_model(name, **kwargs)
    except (TypeError, AssertionError, KeyError) as e:  # a kwarg this timm version does not take
        pytest.skip(f"timm cannot build {name} with {kwargs}: {e}")
    with pytest.raises(UnsupportedModel) as err:
        check_supported(model)
    text = str(err.value)
    assert text.startswith(message) and "\n" not in text and "is not supported" in text, text
    assert isinstance(err.value, ValueError)
    with pytest.raises(UnsupportedModel):
        QuantModel(model, QuantConfig(**LIS))
