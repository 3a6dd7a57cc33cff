"""Model families: which timm classes the quantized path covers, how to check a model and how to run it (FQ-ViT
Sec. 3, Fig. 2).

Each family adapter walks a timm model's own modules (weights, LayerNorms, attention shapes, Swin masks) and places
the quantization points FQ-ViT uses; the backend decides whether that means observing, fake-quantizing with the
reference integer ops, or emitting ONNX nodes. The float model is left untouched.

:data:`FAMILIES` is the one table of families: the model registry (which classes it builds, bundled model cards)
and the quantized model (which forward it runs) both read it, so adding an architecture means one module beside
:mod:`.vit` and :mod:`.swin` (its ``forward`` and ``check``, written with the blocks of :mod:`.common`) and one
:class:`Family` entry here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from timm.models import SwinTransformer, VisionTransformer
from torch import nn

from ...backends.base import Backend
from .common import UnsupportedModel
from .swin import check_swin, swin_forward
from .vit import check_vit, vit_forward

__all__ = ["Family", "FAMILIES", "UnsupportedModel", "family_for", "timm_class", "supported_classes", "adapter_for",
           "check_supported"]

Adapter = Callable[[Backend, nn.Module, Any], Any]
"""A family's quantized forward ``forward(backend, model, x)``: ``x`` and the result are backend values."""


@dataclass(frozen=True)
class Family:
    """One model family: the timm base class it covers (its subclasses too) and the two things the family knows."""

    name: str
    timm_class: type
    check: Callable[[nn.Module], None]
    """Raises :class:`UnsupportedModel` for a part the forward does not compute; runs on the freshly built model
    (the meta device is fine), before any weights load."""
    forward: Adapter


FAMILIES: tuple[Family, ...] = (
    Family("vit", VisionTransformer, check_vit, vit_forward),  # VisionTransformerDistilled and other subclasses too
    Family("swin", SwinTransformer, check_swin, swin_forward),
)
"""Every family the quantized path covers, matched in this order by ``isinstance``."""

_OTHER_CLASSES = {
    "SwinTransformerV2": "cosine attention with a continuous position bias",
    "SwinTransformerV2Cr": "cosine attention with a continuous position bias",
    "Eva": "rotary position embedding",
    "VisionTransformerRelPos": "relative position attention",
    "VisionTransformerSAM": "windowed attention with relative positions",
    "NaFlexVit": "variable-resolution patch embedding",
}
"""Common timm ViT-family classes outside :data:`FAMILIES`, and the part that keeps them out."""


def family_for(model: nn.Module) -> Family | None:
    """The family whose timm class ``model`` is an instance of, or None (no check of its parts)."""
    return next((f for f in FAMILIES if isinstance(model, f.timm_class)), None)


def timm_class(name: str) -> type:
    """The timm base class of a family by its class name, as a bundled model card names it (``timm_class``)."""
    for f in FAMILIES:
        if f.timm_class.__name__ == name:
            return f.timm_class
    raise KeyError(f"no model family for timm class {name!r} (known: {supported_classes()})")


def supported_classes() -> str:
    """The timm classes of :data:`FAMILIES` for messages: ``"VisionTransformer and SwinTransformer"``."""
    return " and ".join(f.timm_class.__name__ for f in FAMILIES)


def check_supported(model: nn.Module) -> None:
    """Raise :class:`UnsupportedModel` with one line ``"<timm class>: <part> is not supported ..."`` unless the
    quantized path covers every part of ``model``; called on the freshly built model, before any weights load."""
    family = family_for(model)
    if family is not None:
        family.check(model)
        return
    name = type(model).__name__
    part = _OTHER_CLASSES.get(name, "this model class")
    raise UnsupportedModel(f"{name}: {part} is not supported by fqvit-export's quantized path "
                           f"(it quantizes timm {supported_classes()} models)")


def adapter_for(model: nn.Module) -> Adapter:
    """The quantized forward for ``model`` (dispatch by ``isinstance``), after :func:`check_supported`."""
    check_supported(model)
    return family_for(model).forward
