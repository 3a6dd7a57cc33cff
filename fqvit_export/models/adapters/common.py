"""The blocks every family shares (FQ-ViT Sec. 3, Fig. 2): the MLP, attention, LayerScale and residual steps of a
pre-norm transformer block on a backend, and the checks that refuse what those steps do not cover.

Point names are the timm module paths (``blocks.3.attn.qkv``) plus a role suffix; they name ONNX nodes too.
timm's fused attention is never called here: the quantized path computes the explicit ``q k^T`` that LIS needs.
"""
from __future__ import annotations

import timm.layers as tl
import torch
from torch import nn

from ...backends.base import Backend, patch_size

__all__ = ["UnsupportedModel", "mlp_branch", "attention_branch", "layer_scale", "mlp_residual", "check_image_size",
           "refuse", "check_norm", "check_mlp", "check_patch_embed"]


class UnsupportedModel(ValueError):
    """The timm model uses a feature the quantized path does not cover."""


# --- quantized blocks ---------------------------------------------------------------------------------------------

def mlp_branch(b: Backend, mlp: nn.Module, q_h, h_name: str, p: str):
    """fc1 -> quantizer -> activation as a 256-entry table -> quantizer -> fc2 -> quantizer; returns the codes of
    the fc2 output (point ``{p}.fc2``).

    FQ-ViT applies GELU in float to the unquantized fc1 output; quantizing fc1's output first makes any elementwise
    activation (the module ``mlp.act`` itself) a lookup that every runtime computes identically (docs/ops.md
    Sec. 1)."""
    q = b.qlinear_quant(q_h, h_name, mlp.fc1, f"{p}.fc1", f"{p}.fc1")
    q = b.act_table(q, mlp.act, f"{p}.fc1", f"{p}.act")
    return b.qlinear_quant(q, f"{p}.act", mlp.fc2, f"{p}.fc2", f"{p}.fc2")


def attention_branch(b: Backend, attn: nn.Module, q_h, h_name: str, p: str, heads: int, head_dim: int,
                     rel_bias: torch.Tensor | None = None, mask: torch.Tensor | None = None, tokens: int = 0):
    """qkv -> quantizer (one scale for q, k, v) [-> q/k norm] -> scaled q k^T -> quantizer [-> + bias ->
    quantizer] -> softmax (LIS codes or uint8) -> attention @ V -> quantizer -> proj -> quantizer. ``q_h`` is
    ``[B, N, C]`` (``tokens`` = N where known); returns the codes of the proj output (point ``{p}.proj``).

    ViT's global attention and Swin's window attention differ only in the relative position bias and the shift
    mask, so both families run this one sequence of quantization points, the backend's
    :meth:`~fqvit_export.backends.base.Backend.attention` (one fused op in the ONNX graph where it applies)."""
    q_qkv = b.qlinear_quant(q_h, h_name, attn.qkv, f"{p}.qkv", f"{p}.qkv")
    q_out = b.attention(q_qkv, p, heads, head_dim, attn.scale, tokens, getattr(attn, "q_norm", None),
                        getattr(attn, "k_norm", None), rel_bias, mask)
    return b.qlinear_quant(q_out, f"{p}.attn_v", attn.proj, f"{p}.proj", f"{p}.proj")


def layer_scale(ls: nn.Module | None) -> torch.Tensor | None:
    """timm's LayerScale ``gamma`` (per channel) of a branch; ``None`` without one."""
    if ls is None or isinstance(ls, nn.Identity):
        return None
    return ls.gamma.detach()


def mlp_residual(b: Backend, blk: nn.Module, q, name: str, p: str):
    """The second half of a pre-norm block, ``x + ls2(MLP(norm2(x)))``, on the quantized residual stream ``q``
    (named ``name``): returns the new stream and its name."""
    h = b.layernorm(q, blk.norm2, name, f"{p}.norm2")
    branch = mlp_branch(b, blk.mlp, h, f"{p}.norm2", f"{p}.mlp")
    return b.residual_add(q, name, branch, f"{p}.mlp.fc2", layer_scale(getattr(blk, "ls2", None)), f"{p}.add2"), \
        f"{p}.add2"


def check_image_size(m: nn.Module, x) -> None:
    """The quantized path is traced for the model's own image size (position embedding, window partition): say so
    in one line instead of failing on a shape deep inside. ``x`` is a tensor name while exporting (not checked)."""
    want = tuple(m.patch_embed.img_size)
    if isinstance(x, torch.Tensor) and tuple(x.shape[-2:]) != want:
        raise ValueError(f"{type(m).__name__} was built for {want[0]}x{want[1]} images, got "
                         f"{x.shape[-2]}x{x.shape[-1]}: set the data size to the model's img_size (--img-size)")


# --- what the shared blocks cover ---------------------------------------------------------------------------------

_ELEMENTWISE_ACTS: tuple[type, ...] = (
    nn.GELU, nn.SiLU, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.CELU, nn.SELU, nn.Tanh, nn.Sigmoid, nn.Hardswish,
    nn.Hardsigmoid, nn.Mish, nn.Softplus, nn.Identity, tl.activations.GELU, tl.activations.GELUTanh,
    tl.activations.QuickGELU, tl.activations.Swish, tl.activations.Mish, tl.activations.Sigmoid, tl.activations.Tanh,
    tl.activations.HardSwish, tl.activations.HardSigmoid, tl.activations.HardMish)
"""MLP activations that act on each element alone, so a 256-entry table of the module itself computes them
exactly on uint8 codes (docs/ops.md Sec. 1, activation table)."""


def refuse(model: nn.Module, part: str) -> None:
    """Raise :class:`UnsupportedModel` naming the model class and the part, in the one-line form every check uses."""
    raise UnsupportedModel(f"{type(model).__name__}: {part} is not supported by fqvit-export's quantized path")


def _is_layernorm(m: nn.Module) -> bool:
    return isinstance(m, nn.LayerNorm) and len(m.normalized_shape) == 1


def check_norm(model: nn.Module, norm: nn.Module, where: str, optional: bool = True) -> None:
    """Refuse a norm other than a LayerNorm over the last axis: only that one gets PTS and the PTSLayerNorm op.
    ``optional`` norms may be ``nn.Identity`` (absent)."""
    if optional and isinstance(norm, nn.Identity):
        return
    if not _is_layernorm(norm):
        refuse(model, f"{where} of type {type(norm).__name__} (only LayerNorm gets PTS)")


def check_mlp(model: nn.Module, mlp: nn.Module, where: str) -> None:
    """Refuse an MLP that :func:`mlp_branch` does not compute: anything but Linear -> elementwise activation ->
    Linear (gated MLPs, a norm inside, activations that mix elements cannot be a 256-entry table)."""
    if type(mlp) is not tl.Mlp or not isinstance(mlp.fc1, nn.Linear) or not isinstance(mlp.fc2, nn.Linear):
        refuse(model, f"{where} {type(mlp).__name__} (only fc1 -> elementwise activation -> fc2 MLPs)")
    if not isinstance(mlp.norm, nn.Identity):
        refuse(model, f"{where}.norm (a norm inside the MLP, scale_mlp_norm)")
    if not isinstance(mlp.act, _ELEMENTWISE_ACTS) or isinstance(mlp.act, nn.GLU):
        refuse(model, f"{where}.act {type(mlp.act).__name__} (not a known elementwise activation)")


def _is_patchify(conv: nn.Module) -> bool:
    """Whether ``conv`` is the plain patchify conv the backends take apart, asked of the backends' own
    :func:`~fqvit_export.backends.base.patch_size` so that the condition is written once."""
    if not isinstance(conv, nn.Conv2d):
        return False
    try:
        patch_size(conv)
    except ValueError:
        return False
    return True


def check_patch_embed(model: nn.Module, pe: nn.Module) -> None:
    """Refuse a patch embedding other than timm's ``PatchEmbed`` on a plain patchify conv, the one the backends
    compute as a reshape plus an integer matmul."""
    if type(pe) is not tl.PatchEmbed:
        refuse(model, f"patch embedding {type(pe).__name__}")
    if getattr(pe, "dynamic_img_pad", False):
        refuse(model, "dynamic_img_pad")
    if not _is_patchify(pe.proj):
        refuse(model, "a patch embedding whose conv kernel differs from its stride")
