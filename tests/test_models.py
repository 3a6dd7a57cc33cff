"""Model registry, checkpoint loading and data-config resolution (timm conventions)."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from fqvit_export.data import DataOptions, resolve_data_config
from fqvit_export.models.registry import FQVIT_MODELS, ModelError, ModelSpec, create


@pytest.mark.parametrize("name, crop, mean", [
    ("deit_tiny", 0.875, (0.485, 0.456, 0.406)),
    ("vit_base", 0.9, (0.5, 0.5, 0.5)),
    ("swin_tiny", 0.9, (0.485, 0.456, 0.406)),
])
def test_fqvit_data_defaults(name, crop, mean):
    """FQ-ViT's eval preprocessing comes from timm's pretrained configs (DeiT 0.875, ViT 0.9 / 0.5, Swin 0.9)."""
    model = create(ModelSpec(name, model_kwargs={"depth": 1} if "swin" not in name else {"depths": (1, 1, 1, 1)}))
    cfg = resolve_data_config(model)
    assert cfg["crop_pct"] == pytest.approx(crop)
    assert cfg["mean"] == pytest.approx(mean)
    assert cfg["input_size"] == [3, 224, 224] and cfg["interpolation"] == "bicubic"


def test_data_overrides():
    model = create(ModelSpec("cifar10_vit"))
    cfg = resolve_data_config(model, DataOptions(crop_pct=0.5, mean=(0, 0, 0), interpolation="bilinear"))
    assert cfg["crop_pct"] == 0.5 and cfg["mean"] == [0, 0, 0] and cfg["interpolation"] == "bilinear"
    assert cfg["std"] == pytest.approx([0.247, 0.2435, 0.2616])  # from the bundled card


def test_seed_names_map_to_timm():
    assert set(FQVIT_MODELS) == {"deit_tiny", "deit_small", "deit_base", "vit_base", "vit_large", "swin_tiny",
                                 "swin_small", "swin_base"}
    assert FQVIT_MODELS["vit_base"] == "vit_base_patch16_224.augreg_in21k_ft_in1k"


@pytest.mark.parametrize("name", ["resnet50", "nosuch_model", "deit_tiny_patch99"])
def test_unknown_or_unsupported_name(name):
    with pytest.raises(ModelError, match="unknown model"):
        create(ModelSpec(name))


def test_bundled_models_load_offline():
    vit = create(ModelSpec("cifar10_vit"))
    assert type(vit).__name__ == "VisionTransformer" and vit.head.out_features == 10
    swin = create(ModelSpec("cifar10_swin"))
    assert type(swin).__name__ == "SwinTransformer"


def test_weights_roundtrip_and_deit_style(tmp_path):
    src = create(ModelSpec("deit_tiny", model_kwargs={"depth": 1, "num_classes": 3}))
    sd = src.state_dict()
    torch.save({"model": sd}, tmp_path / "deit.pth")
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "w.safetensors"))
    for f in ("deit.pth", "w.safetensors"):
        m = create(ModelSpec("deit_tiny", weights=str(tmp_path / f), model_kwargs={"depth": 1, "num_classes": 3}))
        assert torch.equal(m.head.weight, src.head.weight)


def test_mismatched_checkpoint_names_keys(tmp_path):
    src = create(ModelSpec("deit_tiny", model_kwargs={"depth": 1, "num_classes": 3}))
    torch.save(src.state_dict(), tmp_path / "w.pth")
    with pytest.raises(ModelError, match=r"shape mismatch: head.weight \(3, 192\) vs model \(1000, 192\)"):
        create(ModelSpec("deit_tiny", weights=str(tmp_path / "w.pth"), model_kwargs={"depth": 1}))
    with pytest.raises(ModelError, match=r"unexpected: blocks.0.norm1.weight, .* \(\+9 more\)"):
        create(ModelSpec("deit_tiny", weights=str(tmp_path / "w.pth"), model_kwargs={"depth": 0, "num_classes": 3}))


def test_missing_or_corrupt_weights(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        create(ModelSpec("deit_tiny", weights=str(tmp_path / "none.pth")))
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot read weights"):
        create(ModelSpec("deit_tiny", weights=str(tmp_path / "bad.pth"), model_kwargs={"depth": 1}))


def test_pretrained_offline_fails_fast(monkeypatch):
    """Without network, --pretrained must end in one clear message that points to --weights."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="--weights"):
        create(ModelSpec("deit_tiny", pretrained=True))
