"""Model names: FQ-ViT's eight seed models, the bundled CIFAR-10 models, and any timm ViT/DeiT/Swin.

``create(spec)`` returns a float timm model in eval mode whose ``pretrained_cfg`` carries the data config that
:func:`fqvit_export.data.resolve_data_config` resolves the way timm does.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path

import timm
import torch
from torch import nn

from .adapters import ADAPTERS

__all__ = ["FQVIT_MODELS", "BUNDLED_MODELS", "ModelSpec", "ModelError", "create", "available_models"]

FQVIT_MODELS: dict[str, str] = {
    "deit_tiny": "deit_tiny_patch16_224",
    "deit_small": "deit_small_patch16_224",
    "deit_base": "deit_base_patch16_224",
    "vit_base": "vit_base_patch16_224.augreg_in21k_ft_in1k",
    "vit_large": "vit_large_patch16_224.augreg_in21k_ft_in1k",
    "swin_tiny": "swin_tiny_patch4_window7_224",
    "swin_small": "swin_small_patch4_window7_224",
    "swin_base": "swin_base_patch4_window7_224",
}
"""The model names of the FQ-ViT paper and the timm weights they correspond to."""
_FQVIT_CROP = {"deit": 0.875, "vit": 0.9, "swin": 0.9}
"""FQ-ViT's eval crop per family (timm's own DeiT configs say 0.9; mean/std already match FQ-ViT's)."""

_BUNDLED_DIR = Path(__file__).parent / "bundled"
BUNDLED_MODELS = ("cifar10_vit", "cifar10_swin")
"""Models trained on CIFAR-10 that ship inside the package (weights and data config), usable offline."""
_FAMILIES = ("vit_", "deit_", "swin_")


class ModelError(ValueError):
    """Bad model name, weights file or checkpoint; the message is meant for the user as is."""


@dataclass
class ModelSpec:
    """Everything needed to rebuild the same float model (stored in calib.pt and ONNX metadata)."""

    name: str
    weights: str | None = None
    pretrained: bool = False
    model_kwargs: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def available_models() -> list[str]:
    return [*FQVIT_MODELS, *BUNDLED_MODELS]


def _card(name: str) -> dict:
    return json.loads((_BUNDLED_DIR / f"{name}.json").read_text())


def _create_bundled(spec: ModelSpec) -> nn.Module:
    card = _card(spec.name)
    cls = {"VisionTransformer": timm.models.VisionTransformer, "SwinTransformer": timm.models.SwinTransformer}
    model = cls[card["timm_class"]](**{**card["kwargs"], **spec.model_kwargs})
    data = card["data"]
    model.pretrained_cfg = {"mean": tuple(data["mean"]), "std": tuple(data["std"]),
                            "input_size": tuple(data["input_size"]), "crop_pct": data["crop_pct"],
                            "interpolation": data["interpolation"], "crop_mode": "center",
                            "num_classes": card["kwargs"]["num_classes"]}
    if spec.weights is None:
        load_weights(model, _BUNDLED_DIR / f"{spec.name}.safetensors")
    return model


def _timm_name(name: str) -> str:
    timm_name = FQVIT_MODELS.get(name, name)
    if not timm.is_model(timm_name) or not timm_name.startswith(_FAMILIES):
        raise ModelError(f"unknown model {name!r}: use one of {', '.join(available_models())} "
                         f"or a timm ViT/DeiT/Swin name (e.g. deit_small_patch16_224)")
    return timm_name


@contextlib.contextmanager
def _offline_unless_reachable(pretrained: bool, host: str = "huggingface.co"):
    """Without a route to the hub, let huggingface_hub answer from its cache at once instead of retrying for a
    minute: ``--pretrained`` then fails fast (or loads cached weights)."""
    if not pretrained or os.environ.get("HF_HUB_OFFLINE"):
        yield
        return
    try:
        socket.getaddrinfo(host, 443)
        yield
        return
    except OSError:
        pass
    from huggingface_hub import constants  # read at call time by the download functions
    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def create(spec: ModelSpec) -> nn.Module:
    """Build the float model: bundled weights, ``--weights PATH``, ``--pretrained`` (timm hub) or random init."""
    if spec.name in BUNDLED_MODELS:
        model = _create_bundled(spec)
    else:
        timm_name = _timm_name(spec.name)
        try:
            with _offline_unless_reachable(spec.pretrained):
                model = timm.create_model(timm_name, pretrained=spec.pretrained, **spec.model_kwargs)
        except TypeError as e:
            raise ModelError(f"bad --model-kwargs for {timm_name}: {e}") from None
        except Exception as e:  # hub download failures come as many exception types
            if not spec.pretrained:
                raise
            raise ModelError(f"could not fetch pretrained weights for {timm_name} ({type(e).__name__}); "
                             f"offline? pass --weights PATH to a local checkpoint") from None
    if spec.name in FQVIT_MODELS:
        model.pretrained_cfg = {**model.pretrained_cfg, "crop_pct": _FQVIT_CROP[spec.name.split("_")[0]]}
    if type(model).__name__ not in ADAPTERS:
        raise ModelError(f"{spec.name} is a {type(model).__name__}; fqvit-export quantizes "
                         f"{' and '.join(ADAPTERS)} models")
    if spec.weights is not None:
        load_weights(model, Path(spec.weights))
    return model.eval()


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ModelError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            sd = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelError(f"cannot read weights {path}: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
    for key in ("model", "state_dict", "model_ema"):  # DeiT-style {'model': state_dict} and friends
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
            break
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ModelError(f"{path} does not hold a state_dict of tensors")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def load_weights(model: nn.Module, path: Path) -> None:
    """Load a checkpoint strictly; on mismatch name the first missing, unexpected and mis-shaped keys."""
    sd = _read_state_dict(path)
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [f"{k} {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}" for k in own
              if k in sd and sd[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
            if items:
                more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
                parts.append(f"{label}: {', '.join(items[:3])}{more}")
        raise ModelError(f"checkpoint {path} does not match the architecture: {'; '.join(parts)}")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in sd.items()})
