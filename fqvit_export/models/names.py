"""Model names and where their weights come from, without importing torch or timm.

The command line asks :func:`hub_weights_missing` before it imports the heavy packages, so that the default (timm's
pretrained weights) fails in well under a second when there is no route to the hub and nothing is cached.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path

__all__ = ["FQVIT_MODELS", "BUNDLED_MODELS", "HUB_HOST", "ModelError", "hub_reachable", "hub_weights_missing",
           "no_weights_error"]

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
BUNDLED_MODELS = ("cifar10_vit", "cifar10_swin")
"""Models trained on CIFAR-10 that ship inside the package (weights and data config), usable offline."""
HUB_HOST = "huggingface.co"


class ModelError(ValueError):
    """Bad model name, weights file or checkpoint; the message is meant for the user as is."""


def hub_reachable(host: str = HUB_HOST) -> bool:
    """False when huggingface_hub is told to stay offline or the hub's name does not resolve (answered at once)."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() not in ("0", "false", "no", ""):
        return False
    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False


def _hub_cache() -> Path:
    """huggingface_hub's cache folder, resolved from the environment now (its constants are read at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    from huggingface_hub import constants
    return Path(constants.HF_HUB_CACHE)


def hub_weights_missing(name: str) -> bool:
    """True when timm's pretrained weights for ``name`` can be neither downloaded nor found in the cache: no route
    to the hub, and no cached ``timm/<architecture>*`` repository (a coarse test; loading checks the exact file)."""
    if name in BUNDLED_MODELS or hub_reachable():
        return False
    arch = FQVIT_MODELS.get(name, name).partition(".")[0]
    cache = _hub_cache()
    return not (cache.is_dir() and any(cache.glob(f"models--timm--{arch}*")))


def no_weights_error(name: str, timm_name: str, why: str) -> ModelError:
    """The one line for a model whose default (pretrained) weights cannot be had, naming both ways out."""
    return ModelError(f"no weights for {name}: timm's pretrained weights ({timm_name}) {why}; pass --weights PATH "
                      f"for a local checkpoint, or --random-init for random weights (speed and structure checks only)")
