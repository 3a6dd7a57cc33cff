"""Calibration: determinism, save/load, the float model left untouched, every seed architecture."""
from __future__ import annotations

import pytest
import torch

from conftest import CIFAR_TEST, IMAGENET
from fqvit_export.api import CalibrationError, calibrate, evaluate, load_calibration, save_calibration
from fqvit_export.data import eval_loader
from fqvit_export.models.registry import FQVIT_MODELS, ModelSpec
from fqvit_export.quant.point import QuantConfig

# Reduced-depth variants of FQ-ViT's eight models (real widths, heads, windows): fast, same code paths.
SEED_KWARGS = {name: ({"depths": (2, 2, 2, 2)} if name.startswith("swin") else {"depth": 1}) for name in FQVIT_MODELS}


def _params(cal):
    return {k: (v["scale"], v["zero_point"], tuple(v["alpha"])) for k, v in cal.qmodel.point_params().items()}


def test_deterministic_for_a_seed():
    a = calibrate(ModelSpec("cifar10_swin"), QuantConfig(pts=True), calib_size=60, batch_size=30, seed=3,
                  progress=False)
    b = calibrate(ModelSpec("cifar10_swin"), QuantConfig(pts=True), calib_size=60, batch_size=30, seed=3,
                  progress=False)
    c = calibrate(ModelSpec("cifar10_swin"), QuantConfig(pts=True), calib_size=60, batch_size=30, seed=4,
                  progress=False)
    assert _params(a) == _params(b)
    assert _params(a) != _params(c)


def test_points_cover_fqvit_sites(calibrated):
    cal = calibrated("cifar10_vit", pts=True, lis=True, attn_bits=4)
    names = set(cal.qmodel.points)
    for site in ("input", "embed", "pos_embed", "pos_add", "norm", "logits"):
        assert site in names
    for role in ("norm1", "attn.qkv", "attn.logits", "attn.attn_v", "attn.proj", "add1", "norm2", "mlp.fc1",
                 "mlp.act", "mlp.fc2", "add2"):
        assert f"blocks.11.{role}" in names
    assert "blocks.0.attn.softmax" not in names  # LIS codes need no uniform quantizer
    pts = {n for n, p in cal.qmodel.points.items() if p.pts}
    assert pts == {"pos_add"} | {f"blocks.{i}.add{j}" for i in range(12) for j in (1, 2)}
    assert cal.calib_info["alpha_histogram"][0] < sum(cal.calib_info["alpha_histogram"])


def test_swin_points(calibrated):
    cal = calibrated("cifar10_swin", pts=True, lis=True, attn_bits=4)
    names = set(cal.qmodel.points)
    assert {"layers.0.blocks.1.attn.rel_bias", "layers.0.blocks.1.attn.bias_add", "layers.1.downsample.norm",
            "layers.1.downsample.reduction", "head_in"} <= names
    assert cal.qmodel.points["layers.1.downsample.reduction"].pts  # feeds the next block's LayerNorm


def test_float_model_untouched(calibrated):
    cal = calibrated("cifar10_vit")
    x = torch.randn(2, 3, 32, 32)
    from fqvit_export.models.registry import create
    fresh = create(ModelSpec("cifar10_vit"))
    with torch.no_grad():
        assert torch.equal(cal.float_model(x), fresh(x))


def test_save_load_roundtrip(calibrated, tmp_path):
    cal = calibrated("cifar10_swin", pts=True, lis=True, attn_bits=4)
    path = save_calibration(cal, tmp_path / "calib.pt")
    back = load_calibration(path)
    assert back.config == cal.config and back.data_cfg == cal.data_cfg and back.spec == cal.spec
    x = torch.randn(3, 3, 32, 32)
    assert torch.equal(back.qmodel(x), cal.qmodel(x))


def test_load_rejects_bad_files(tmp_path):
    with pytest.raises(CalibrationError, match="not found"):
        load_calibration(tmp_path / "none.pt")
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(CalibrationError, match="not an fqvit-export calibration"):
        load_calibration(tmp_path / "other.pt")


def test_quantized_accuracy_sane(calibrated):
    """On 200 real test images the W8A8 PTS+LIS model stays close to FP32 (the full table is bench/)."""
    cal = calibrated("cifar10_vit", pts=True, lis=True, attn_bits=4)
    loader = eval_loader(CIFAR_TEST, cal.data_cfg)
    fp = evaluate(cal.float_model, loader, progress=False)
    q = evaluate(cal.qmodel, loader, progress=False)
    assert fp["images"] == q["images"] == 200
    assert q["top1"] > fp["top1"] - 6.0
    agree = (fp["logits"].argmax(1) == q["logits"].argmax(1)).float().mean().item()
    assert agree > 0.85


@pytest.mark.parametrize("name", list(FQVIT_MODELS))
def test_seed_architectures_calibrate(name):
    """All eight FQ-ViT architectures (random weights, reduced depth) calibrate on real ImageNet photos."""
    cal = calibrate(ModelSpec(name, random_init=True, model_kwargs=SEED_KWARGS[name]), QuantConfig(pts=True, lis=True, attn_bits=4),
                    calib_dir=IMAGENET, calib_size=4, batch_size=2, progress=False)
    assert cal.qmodel.calibrated and cal.calib_info["images"] == 4
    out = cal.qmodel(torch.randn(1, *cal.data_cfg["input_size"]))
    assert out.shape == (1, 1000) and torch.isfinite(out).all()
