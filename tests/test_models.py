"""Model registry, checkpoint loading and data-config resolution (timm conventions)."""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from fqvit_export.data import DataOptions, resolve_data_config
from fqvit_export.models.adapters import FAMILIES, adapter_for, family_for, timm_class
from fqvit_export.models.registry import FQVIT_MODELS, ModelError, ModelSpec, class_labels, create, weights_info


@pytest.mark.parametrize("name, crop, mean", [
    ("deit_tiny", 0.875, (0.485, 0.456, 0.406)),
    ("vit_base", 0.9, (0.5, 0.5, 0.5)),
    ("swin_tiny", 0.9, (0.485, 0.456, 0.406)),
])
def test_fqvit_data_defaults(name, crop, mean):
    """FQ-ViT's eval preprocessing comes from timm's pretrained configs (DeiT 0.875, ViT 0.9 / 0.5, Swin 0.9)."""
    model = create(ModelSpec(name, random_init=True, model_kwargs={"depth": 1} if "swin" not in name else {"depths": (1, 1, 1, 1)}))
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


@pytest.mark.parametrize("name", ["nosuch_model", "deit_tiny_patch99"])
def test_unknown_name(name):
    with pytest.raises(ModelError, match="unknown model"):
        create(ModelSpec(name))


def test_other_architecture_refused_by_class():
    with pytest.raises(ModelError, match="resnet50 is a timm ResNet; fqvit-export quantizes VisionTransformer"):
        create(ModelSpec("resnet50"))


def test_bundled_models_load_offline():
    vit = create(ModelSpec("cifar10_vit"))
    assert type(vit).__name__ == "VisionTransformer" and vit.head.out_features == 10
    swin = create(ModelSpec("cifar10_swin"))
    assert type(swin).__name__ == "SwinTransformer"


def test_weights_roundtrip_and_deit_style(tmp_path):
    src = create(ModelSpec("deit_tiny", random_init=True, model_kwargs={"depth": 1, "num_classes": 3}))
    sd = src.state_dict()
    torch.save({"model": sd}, tmp_path / "deit.pth")
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "w.safetensors"))
    for f in ("deit.pth", "w.safetensors"):
        m = create(ModelSpec("deit_tiny", weights=str(tmp_path / f), model_kwargs={"depth": 1, "num_classes": 3}))
        assert torch.equal(m.head.weight, src.head.weight)


def test_mismatched_checkpoint_names_keys(tmp_path):
    src = create(ModelSpec("deit_tiny", random_init=True, model_kwargs={"depth": 1, "num_classes": 3}))
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


@pytest.mark.parametrize("name", ["deit_tiny", "deit_base_patch16_224.fb_in1k", "deit3_small_patch16_224"])
def test_pretrained_offline_fails_fast(monkeypatch, tmp_path, name):
    """The default for a timm name is its pretrained weights; with no route to the hub (and nothing cached) that
    fails at once with one line naming both ways out."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    t = time.perf_counter()
    with pytest.raises(ModelError, match=r"no weights for .*--weights PATH.*--random-init") as e:
        create(ModelSpec(name))
    assert time.perf_counter() - t < 1.0 and "\n" not in str(e.value)


def test_weights_provenance(tmp_path):
    src = create(ModelSpec("deit_tiny", random_init=True, model_kwargs={"depth": 1, "num_classes": 3}))
    torch.save(src.state_dict(), tmp_path / "w.pth")
    info = weights_info(ModelSpec("deit_tiny", weights=str(tmp_path / "w.pth")))
    assert info == {"source": "file", "file": "w.pth",
                    "sha256": hashlib.sha256((tmp_path / "w.pth").read_bytes()).hexdigest()}
    assert weights_info(ModelSpec("deit_tiny", random_init=True)) == {"source": "random"}
    assert weights_info(ModelSpec("cifar10_vit")) == {"source": "bundled", "name": "cifar10_vit"}
    hub = weights_info(ModelSpec("deit_base_patch16_224.fb_in1k"))
    assert hub["source"] == "hub" and hub["tag"] == "deit_base_patch16_224.fb_in1k"
    with pytest.raises(ModelError, match="exclude each other"):
        ModelSpec("deit_tiny", weights="w.pth", random_init=True)


def test_old_spec_dicts_keep_their_meaning():
    """calib.pt files of format 1 stored ``pretrained: False`` for what was then the random default."""
    assert ModelSpec.from_dict({"name": "deit_tiny", "weights": None, "pretrained": False,
                                "model_kwargs": {}}).random_init
    assert not ModelSpec.from_dict({"name": "cifar10_vit", "weights": None, "pretrained": False,
                                    "model_kwargs": {}}).random_init


def test_class_labels():
    assert class_labels(ModelSpec("cifar10_vit"), 10)[:3] == ["airplane", "automobile", "bird"]
    inet = class_labels(ModelSpec("deit_tiny"), 1000)
    assert len(inet) == 1000 and inet[0].startswith("tench")
    assert class_labels(ModelSpec("deit_tiny"), 7) is None


def test_one_family_table():
    """The registry, the bundled cards and the quantized path read the same family table: each family's forward
    is what the adapter dispatch returns, and every class the registry accepts has a family."""
    assert [f.timm_class for f in FAMILIES] == [timm.models.VisionTransformer, timm.models.SwinTransformer]
    for card in sorted((Path(__file__).parents[1] / "fqvit_export/models/bundled").glob("*.json")):
        cls = timm_class(json.loads(card.read_text())["timm_class"])
        assert family_for(create(ModelSpec(card.stem))).timm_class is cls
    distilled = timm.create_model("deit_tiny_distilled_patch16_224", depth=1, img_size=32)
    assert family_for(distilled).name == "vit" and adapter_for(distilled) is FAMILIES[0].forward
    with pytest.raises(KeyError, match="no model family"):
        timm_class("ResNet")
