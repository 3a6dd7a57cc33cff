"""Quantized forward passes of timm's ViT/DeiT and Swin, written once against a backend (FQ-ViT Sec. 3, Fig. 2).

Each adapter walks a timm model's own modules (weights, LayerNorms, attention shapes, Swin masks) and places the
quantization points FQ-ViT uses; the backend decides whether that means observing, fake-quantizing with the
reference integer ops, or emitting ONNX nodes. timm's fused attention is never called here, so the float model is
left untouched while the quantized path computes the explicit ``q k^T`` that LIS needs.

Point names are the timm module paths (``blocks.3.attn.qkv``) plus a role suffix; they name ONNX nodes too.
"""
from __future__ import annotations

from typing import Callable

import timm.layers as tl
import timm.models.swin_transformer as swin
import torch
from timm.models import SwinTransformer, VisionTransformer
from timm.models.vision_transformer import Block
from torch import nn

from ..backends.base import Backend

__all__ = ["ADAPTERS", "adapter_for", "check_supported", "UnsupportedModel"]


class UnsupportedModel(ValueError):
    """The timm model uses a feature the quantized path does not cover."""


# --- shared pieces ------------------------------------------------------------------------------------------------

def _mlp(b: Backend, mlp: nn.Module, q_h, h_name: str, p: str):
    """fc1 -> quantizer -> activation as a 256-entry table -> quantizer -> fc2 -> quantizer; returns the float fc2
    output.

    FQ-ViT applies GELU in float to the unquantized fc1 output; quantizing fc1's output first makes any elementwise
    activation (the module ``mlp.act`` itself) a lookup that every runtime computes identically (docs/ops.md
    Sec. 1)."""
    q = b.qlinear_quant(q_h, h_name, mlp.fc1, f"{p}.fc1", f"{p}.fc1")
    q = b.act_table(q, mlp.act, f"{p}.fc1", f"{p}.act")
    return b.dequant(b.qlinear_quant(q, f"{p}.act", mlp.fc2, f"{p}.fc2", f"{p}.fc2"), f"{p}.fc2")


def _qk_norm(b: Backend, t, qkv_name: str, norm: nn.Module, name: str):
    """timm's ``q_norm``/``k_norm`` (a LayerNorm over ``head_dim``) on one of q, k: requantized with a PTS quantizer
    (channels = ``head_dim``), then PTS LayerNorm. Returns the codes and their point name."""
    if isinstance(norm, nn.Identity):
        return t, qkv_name
    q_in = b.quant(b.dequant(t, qkv_name), f"{name}_in", ln_input=True)
    return b.layernorm(q_in, norm, f"{name}_in", name), name


def _attention(b: Backend, attn: nn.Module, q_h, h_name: str, p: str, heads: int, head_dim: int,
               rel_bias: torch.Tensor | None = None, mask: torch.Tensor | None = None):
    """qkv -> quantizer (one scale for q, k, v) [-> q/k norm] -> scaled q k^T -> quantizer [-> + bias ->
    quantizer] -> softmax (LIS codes or uint8) -> attention @ V -> quantizer -> proj -> quantizer. ``q_h`` is
    ``[B, N, C]``."""
    q_qkv = b.qlinear_quant(q_h, h_name, attn.qkv, f"{p}.qkv", f"{p}.qkv")
    q_qkv = b.permute(b.reshape(q_qkv, (0, 0, 3, heads, head_dim)), (2, 0, 3, 1, 4))
    q, k, v = (b.select(q_qkv, 0, i) for i in range(3))
    q, q_name = _qk_norm(b, q, f"{p}.qkv", getattr(attn, "q_norm", nn.Identity()), f"{p}.q_norm")
    k, k_name = _qk_norm(b, k, f"{p}.qkv", getattr(attn, "k_norm", nn.Identity()), f"{p}.k_norm")
    logits_name = f"{p}.logits"
    q_logits = b.qmatmul_quant(q, q_name, b.permute(k, (0, 1, 3, 2)), k_name, attn.scale, logits_name)
    if rel_bias is not None:
        biased = b.add(b.dequant(q_logits, logits_name), b.qconst(rel_bias, f"{p}.rel_bias"))
        logits_name = f"{p}.bias_add"
        q_logits = b.quant(biased, logits_name)
    probs = b.attn_probs(q_logits, logits_name, f"{p}.softmax", heads, mask)
    q_out = b.attn_apply(probs, v, f"{p}.qkv", f"{p}.softmax", f"{p}.attn_v")
    q_out = b.reshape(b.permute(q_out, (0, 2, 1, 3)), (0, 0, heads * head_dim))
    return b.dequant(b.qlinear_quant(q_out, f"{p}.attn_v", attn.proj, f"{p}.proj", f"{p}.proj"), f"{p}.proj")


def _layer_scale(b: Backend, x, ls: nn.Module | None, name: str):
    """timm's LayerScale ``x * gamma`` (per channel, float32) on a branch output; identity without one."""
    if ls is None or isinstance(ls, nn.Identity):
        return x
    return b.scale(x, ls.gamma, name)


def _mlp_residual(b: Backend, blk: nn.Module, q, name: str, p: str):
    """The second half of a pre-norm block, ``x + ls2(MLP(norm2(x)))``, on the quantized residual stream ``q``
    (named ``name``): returns the new stream and its name."""
    x = b.dequant(q, name)
    h = b.layernorm(q, blk.norm2, name, f"{p}.norm2")
    x = b.add(x, _layer_scale(b, _mlp(b, blk.mlp, h, f"{p}.norm2", f"{p}.mlp"), getattr(blk, "ls2", None),
                              f"{p}.ls2"))
    name = f"{p}.add2"
    return b.quant(x, name, ln_input=True), name


def _check_input(m: nn.Module, x) -> None:
    """The quantized path is traced for the model's own image size (position embedding, window partition): say so
    in one line instead of failing on a shape deep inside. ``x`` is a tensor name while exporting (not checked)."""
    want = tuple(m.patch_embed.img_size)
    if isinstance(x, torch.Tensor) and tuple(x.shape[-2:]) != want:
        raise ValueError(f"{type(m).__name__} was built for {want[0]}x{want[1]} images, got "
                         f"{x.shape[-2]}x{x.shape[-1]}: set the data size to the model's img_size (--img-size)")


# --- ViT / DeiT ---------------------------------------------------------------------------------------------------

def _prefix_tokens(m: nn.Module) -> torch.Tensor | None:
    """Class, distillation and register tokens ``[1, T, C]`` in timm's order (``_pos_embed``), or None."""
    parts = [t for t in (m.cls_token, getattr(m, "dist_token", None), m.reg_token) if t is not None]
    return torch.cat([t.detach().float() for t in parts], dim=1) if parts else None


def _vit_embed(b: Backend, m: nn.Module, x):
    """Patch embedding, prefix tokens and position embedding as timm's ``_pos_embed``: the embedding covers the
    prefix tokens (concat, then add) unless ``no_embed_class`` (add to the patches, then concat). Returns the
    float token sequence before the ``pos_add`` quantizer."""
    x = b.patch_embed(b.quant(x, "input"), "input", m.patch_embed.proj, "patch_embed.proj", m.patch_embed.grid_size)
    tokens = _prefix_tokens(m)
    if m.pos_embed is None:
        return b.prepend_token(x, tokens) if tokens is not None else x
    if tokens is not None and not m.no_embed_class:
        x = b.prepend_token(x, tokens)
    x = b.dequant(b.quant(x, "embed"), "embed")
    x = b.add(x, b.qconst(m.pos_embed.detach(), "pos_embed"))
    if tokens is not None and m.no_embed_class:
        x = b.prepend_token(x, tokens)
    return x


def _vit_pool(b: Backend, m: nn.Module, q, name: str):
    """Final norm, pooling and ``fc_norm`` as timm's ``forward_head``: returns ``[(features, point name), ...]``,
    one per head (two for distilled models: class and distillation token)."""
    if not isinstance(m.norm, nn.Identity):
        q, name = b.layernorm(q, m.norm, name, "norm"), "norm"
    if m.global_pool == "token":
        feats = [(b.select(q, 1, i), name) for i in range(2 if hasattr(m, "head_dist") else 1)]
        if not isinstance(m.fc_norm, nn.Identity):
            feats = [(b.layernorm(f, m.fc_norm, n, "fc_norm"), "fc_norm") for f, n in feats]
        return feats
    total = m.patch_embed.num_patches + m.num_prefix_tokens
    first = 0 if m.pool_include_prefix else m.num_prefix_tokens
    tokens = b.gather(q, torch.arange(first, total), 1) if first else q
    if m.global_pool == "max":
        pooled = b.qmax(tokens, name, 1)
    else:
        pooled = b.qmean(tokens, name, 1, total - first)
    if m.global_pool == "avgmax":  # timm: 0.5 * (max + mean)
        pooled = b.scale(b.add(b.qmax(tokens, name, 1), pooled), torch.tensor(0.5), "pool_average")
    if isinstance(m.fc_norm, nn.Identity):
        return [(b.quant(pooled, "head_in"), "head_in")]
    return [(b.layernorm(b.quant(pooled, "pool", ln_input=True), m.fc_norm, "pool", "fc_norm"), "fc_norm")]


def vit_forward(b: Backend, m: nn.Module, x):
    """timm ``VisionTransformer`` and subclasses (ViT, DeiT, DeiT-3, distilled DeiT, CLIP, DINOv2, ...): prefix
    tokens, learned position embedding, optional ``norm_pre``, pre-norm blocks with optional qk-norm and
    LayerScale, token or average pooling with optional ``fc_norm``."""
    _check_input(m, x)
    name = "pos_add"
    q = b.quant(_vit_embed(b, m, x), name, ln_input=True)
    if not isinstance(m.norm_pre, nn.Identity):
        h = b.layernorm(q, m.norm_pre, name, "norm_pre")
        name = "norm_pre.out"
        q = b.quant(b.dequant(h, "norm_pre"), name, ln_input=True)
    for i, blk in enumerate(m.blocks):
        p = f"blocks.{i}"
        attn = blk.attn
        x = b.dequant(q, name)
        h = b.layernorm(q, blk.norm1, name, f"{p}.norm1")
        a = _attention(b, attn, h, f"{p}.norm1", f"{p}.attn", attn.num_heads, attn.head_dim)
        x = b.add(x, _layer_scale(b, a, blk.ls1, f"{p}.ls1"))
        name = f"{p}.add1"
        q = b.quant(x, name, ln_input=True)
        q, name = _mlp_residual(b, blk, q, name, p)
    feats = _vit_pool(b, m, q, name)
    heads = [(m.head, "head", "logits")] + ([(m.head_dist, "head_dist", "logits_dist")] if len(feats) == 2 else [])
    logits = [b.dequant(b.qlinear_quant(f, fn, head, hn, out), out) for (f, fn), (head, hn, out) in zip(feats, heads)]
    if len(logits) == 1:
        return logits[0]
    return b.scale(b.add(*logits), torch.tensor(0.5), "head_average")  # timm eval: (head(x0) + head_dist(x1)) / 2


# --- Swin ---------------------------------------------------------------------------------------------------------

def _window_order(h: int, w: int, ws: tuple[int, int], shift: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token gather index for timm's cyclic shift by ``-shift``, zero padding to whole windows and window
    partition: window-major order, row-major inside each window; index ``h * w`` is the zero token
    (:meth:`Backend.append_zero_token`). Also returns the inverse (window reverse, crop, shift back)."""
    hp, wp = -(-h // ws[0]) * ws[0], -(-w // ws[1]) * ws[1]
    wi, wj, a, c = torch.meshgrid(torch.arange(hp // ws[0]), torch.arange(wp // ws[1]), torch.arange(ws[0]),
                                  torch.arange(ws[1]), indexing="ij")
    r, col = (wi * ws[0] + a).reshape(-1), (wj * ws[1] + c).reshape(-1)  # position in the shifted, padded map
    valid = (r < h) & (col < w)
    order = torch.where(valid, ((r + shift[0]) % h) * w + (col + shift[1]) % w, torch.tensor(h * w))
    inverse = torch.empty(h * w, dtype=torch.long)
    inverse[order[valid]] = torch.arange(len(order))[valid]
    return order, inverse


def _merge_order(h: int, w: int) -> torch.Tensor:
    """Token gather index reproducing timm's PatchMerging (zero padding to even sizes, then the 2x2 regrouping):
    output token ``(i, j)`` takes the four inputs ``(2i + h2, 2j + w2)`` in the order ``w2 * 2 + h2`` (timm's
    ``permute(0, 1, 3, 4, 2, 5)``); index ``h * w`` is the zero token."""
    i, j, w2, h2 = torch.meshgrid(torch.arange(-(-h // 2)), torch.arange(-(-w // 2)), torch.arange(2), torch.arange(2),
                                  indexing="ij")
    r, c = 2 * i + h2, 2 * j + w2
    return torch.where((r < h) & (c < w), r * w + c, torch.tensor(h * w)).reshape(-1)


def _rel_bias(attn: nn.Module) -> torch.Tensor:
    n = attn.window_area
    bias = attn.relative_position_bias_table.detach()[attn.relative_position_index.view(-1)].view(n, n, -1)
    return bias.permute(2, 0, 1).unsqueeze(0).contiguous()  # [1, heads, N, N]


def swin_forward(b: Backend, m: nn.Module, x):
    """timm ``SwinTransformer`` (v1): shifted windows (zero-padded to whole windows), relative position bias,
    patch merging."""
    _check_input(m, x)
    pe = m.patch_embed
    x = b.patch_embed(b.quant(x, "input"), "input", pe.proj, "patch_embed.proj", pe.grid_size)
    hh, ww = pe.grid_size
    name = "patch_embed.proj"
    q = b.quant(x, name, ln_input=True)
    if not isinstance(pe.norm, nn.Identity):
        h = b.layernorm(q, pe.norm, name, "patch_embed.norm")
        name = "embed"
        q = b.quant(b.dequant(h, "patch_embed.norm"), name, ln_input=True)
    for s, stage in enumerate(m.layers):
        if not isinstance(stage.downsample, nn.Identity):
            ds, p = stage.downsample, f"layers.{s}.downsample"
            c = ds.dim
            order = _merge_order(hh, ww)
            if hh % 2 or ww % 2:
                q = b.append_zero_token(q, name, c)
            hh, ww = -(-hh // 2), -(-ww // 2)
            g = b.reshape(b.gather(q, order, 1), (0, hh * ww, 4 * c))
            h = b.layernorm(g, ds.norm, name, f"{p}.norm", alpha_repeat=4)
            y = b.qlinear(h, f"{p}.norm", ds.reduction, f"{p}.reduction")
            name = f"{p}.reduction"
            q = b.quant(y, name, ln_input=True)
        for i, blk in enumerate(stage.blocks):
            p = f"layers.{s}.blocks.{i}"
            attn, ws, shift = blk.attn, tuple(blk.window_size), tuple(blk.shift_size)
            c, n = blk.dim, attn.window_area
            order, inverse = _window_order(hh, ww, ws, shift)
            x = b.dequant(q, name)
            h = b.layernorm(q, blk.norm1, name, f"{p}.norm1")
            if len(order) > hh * ww:
                h = b.append_zero_token(h, f"{p}.norm1", c)
            hw = b.reshape(b.gather(h, order, 1), (-1, n, c))
            mask = blk.attn_mask if any(shift) else None
            a = _attention(b, attn, hw, f"{p}.norm1", f"{p}.attn", attn.num_heads, c // attn.num_heads,
                           rel_bias=_rel_bias(attn), mask=mask)
            a = b.gather(b.reshape(a, (-1, len(order), c)), inverse, 1)
            x = b.add(x, a)
            name = f"{p}.add1"
            q = b.quant(x, name, ln_input=True)
            q, name = _mlp_residual(b, blk, q, name, p)
    h = b.layernorm(q, m.norm, name, "norm")
    feat = b.quant(b.qmean(h, "norm", 1, hh * ww), "head_in")
    return b.dequant(b.qlinear_quant(feat, "head_in", m.head.fc, "head", "logits"), "logits")


# --- what the quantized path covers -------------------------------------------------------------------------------

_ELEMENTWISE_ACTS: tuple[type, ...] = (
    nn.GELU, nn.SiLU, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.CELU, nn.SELU, nn.Tanh, nn.Sigmoid, nn.Hardswish,
    nn.Hardsigmoid, nn.Mish, nn.Softplus, nn.Identity, tl.activations.GELU, tl.activations.GELUTanh,
    tl.activations.QuickGELU, tl.activations.Swish, tl.activations.Mish, tl.activations.Sigmoid, tl.activations.Tanh,
    tl.activations.HardSwish, tl.activations.HardSigmoid, tl.activations.HardMish)
"""MLP activations that act on each element alone, so a 256-entry table of the module itself computes them
exactly on uint8 codes (docs/ops.md Sec. 1, activation table)."""

_OTHER_CLASSES = {
    "SwinTransformerV2": "cosine attention with a continuous position bias",
    "SwinTransformerV2Cr": "cosine attention with a continuous position bias",
    "Eva": "rotary position embedding",
    "VisionTransformerRelPos": "relative position attention",
    "VisionTransformerSAM": "windowed attention with relative positions",
    "NaFlexVit": "variable-resolution patch embedding",
}
"""Common timm ViT-family classes that are not VisionTransformer/SwinTransformer, and the part that keeps them out."""

_VIT_POOLS = ("token", "avg", "max", "avgmax")


def _refuse(model: nn.Module, part: str) -> None:
    raise UnsupportedModel(f"{type(model).__name__}: {part} is not supported by fqvit-export's quantized path")


def _is_layernorm(m: nn.Module) -> bool:
    return isinstance(m, nn.LayerNorm) and len(m.normalized_shape) == 1


def _check_norm(model: nn.Module, norm: nn.Module, where: str, optional: bool = True) -> None:
    if optional and isinstance(norm, nn.Identity):
        return
    if not _is_layernorm(norm):
        _refuse(model, f"{where} of type {type(norm).__name__} (only LayerNorm gets PTS)")


def _check_mlp(model: nn.Module, mlp: nn.Module, where: str) -> None:
    if type(mlp) is not tl.Mlp or not isinstance(mlp.fc1, nn.Linear) or not isinstance(mlp.fc2, nn.Linear):
        _refuse(model, f"{where} {type(mlp).__name__} (only fc1 -> elementwise activation -> fc2 MLPs)")
    if not isinstance(mlp.norm, nn.Identity):
        _refuse(model, f"{where}.norm (a norm inside the MLP, scale_mlp_norm)")
    if not isinstance(mlp.act, _ELEMENTWISE_ACTS) or isinstance(mlp.act, nn.GLU):
        _refuse(model, f"{where}.act {type(mlp.act).__name__} (not a known elementwise activation)")


def _check_patch_embed(model: nn.Module, pe: nn.Module) -> None:
    if type(pe) is not tl.PatchEmbed:
        _refuse(model, f"patch embedding {type(pe).__name__}")
    if getattr(pe, "dynamic_img_pad", False):
        _refuse(model, "dynamic_img_pad")
    conv = pe.proj
    if (not isinstance(conv, nn.Conv2d) or tuple(conv.kernel_size) != tuple(conv.stride) or any(conv.padding)
            or conv.groups != 1 or tuple(conv.dilation) != (1, 1)):
        _refuse(model, "a patch embedding whose conv kernel differs from its stride")


def _check_vit(m: nn.Module) -> None:
    _check_patch_embed(m, m.patch_embed)
    if not isinstance(m.patch_embed.norm, nn.Identity):
        _refuse(m, "patch_embed.norm (a norm inside the patch embedding)")
    if getattr(m, "attn_pool", None) is not None:
        _refuse(m, f"the attention-pooling head (global_pool={m.global_pool!r})")
    if m.global_pool not in _VIT_POOLS:
        _refuse(m, f"global_pool={m.global_pool!r} (supported: {', '.join(map(repr, _VIT_POOLS))})")
    if hasattr(m, "dist_token") and m.reg_token is not None:
        _refuse(m, "register tokens beside a distillation token (timm's distilled model ignores them)")
    if not isinstance(m.patch_drop, nn.Identity) and m.training:
        _refuse(m, "patch dropout in training mode")
    _check_norm(m, m.norm_pre, "norm_pre")
    _check_norm(m, m.norm, "norm")
    _check_norm(m, m.fc_norm, "fc_norm")
    heads = [("head", m.head)] + ([("head_dist", m.head_dist)] if hasattr(m, "head_dist") else [])
    for where, head in heads:
        if not isinstance(head, nn.Linear):
            _refuse(m, f"{where} {type(head).__name__} (num_classes=0: no Linear classifier)")
    for i, blk in enumerate(m.blocks):
        p = f"blocks.{i}"
        if type(blk) is not Block:
            _refuse(m, f"block {type(blk).__name__} (only the pre-norm Block)")
        _check_norm(m, blk.norm1, f"{p}.norm1", optional=False)
        _check_norm(m, blk.norm2, f"{p}.norm2", optional=False)
        attn = blk.attn
        if type(attn) is not tl.Attention:
            _refuse(m, f"attention {type(attn).__name__}")
        if getattr(attn, "gate", None) is not None:
            _refuse(m, f"{p}.attn.gate (gated attention)")
        if not isinstance(attn.norm, nn.Identity):
            _refuse(m, f"{p}.attn.norm (attention output norm, scale_attn_norm)")
        _check_norm(m, attn.q_norm, f"{p}.attn.q_norm")
        _check_norm(m, attn.k_norm, f"{p}.attn.k_norm")
        if isinstance(attn.q_norm, nn.Identity) != isinstance(attn.k_norm, nn.Identity):
            _refuse(m, f"{p}.attn: a norm on only one of q and k")
        for ls in ("ls1", "ls2"):
            if not isinstance(getattr(blk, ls), (nn.Identity, tl.LayerScale)):
                _refuse(m, f"{p}.{ls} {type(getattr(blk, ls)).__name__}")
        _check_mlp(m, blk.mlp, f"{p}.mlp")


def _check_swin(m: nn.Module) -> None:
    _check_patch_embed(m, m.patch_embed)
    _check_norm(m, m.patch_embed.norm, "patch_embed.norm")
    if getattr(m, "absolute_pos_embed", None) is not None:
        _refuse(m, "the absolute position embedding (ape)")
    _check_norm(m, m.norm, "norm", optional=False)
    head = m.head
    if not isinstance(getattr(head, "fc", None), nn.Linear) or getattr(head.global_pool, "pool_type", None) != "avg":
        _refuse(m, "a head other than average pooling + Linear")
    for s, stage in enumerate(m.layers):
        ds = stage.downsample
        if not isinstance(ds, nn.Identity):
            if type(ds) is not swin.PatchMerging:
                _refuse(m, f"layers.{s}.downsample {type(ds).__name__}")
            _check_norm(m, ds.norm, f"layers.{s}.downsample.norm", optional=False)
        for i, blk in enumerate(stage.blocks):
            p = f"layers.{s}.blocks.{i}"
            if type(blk) is not swin.SwinTransformerBlock or type(blk.attn) is not swin.WindowAttention:
                _refuse(m, f"block {type(blk).__name__}")
            if getattr(blk, "dynamic_mask", False):
                _refuse(m, "dynamic masks (strict_img_size=False)")
            _check_norm(m, blk.norm1, f"{p}.norm1", optional=False)
            _check_norm(m, blk.norm2, f"{p}.norm2", optional=False)
            _check_mlp(m, blk.mlp, f"{p}.mlp")


def check_supported(model: nn.Module) -> None:
    """Raise :class:`UnsupportedModel` with one line ``"<timm class>: <part> is not supported ..."`` unless the
    quantized path covers every part of ``model``; called on the freshly built model, before any weights load."""
    for cls, (check, _) in _FAMILIES.items():
        if isinstance(model, cls):
            check(model)
            return
    name = type(model).__name__
    part = _OTHER_CLASSES.get(name, "this model class")
    raise UnsupportedModel(f"{name}: {part} is not supported by fqvit-export's quantized path "
                           f"(it quantizes timm VisionTransformer and SwinTransformer models)")


_FAMILIES: dict[type, tuple[Callable[[nn.Module], None], Callable]] = {
    VisionTransformer: (_check_vit, vit_forward),  # VisionTransformerDistilled and other subclasses too
    SwinTransformer: (_check_swin, swin_forward),
}
ADAPTERS: dict[str, Callable] = {cls.__name__: fwd for cls, (_, fwd) in _FAMILIES.items()}
"""Adapter per timm base class name; :func:`adapter_for` also takes their subclasses."""


def adapter_for(model: nn.Module) -> Callable:
    """The quantized forward for ``model`` (dispatch by ``isinstance``), after :func:`check_supported`."""
    check_supported(model)
    return next(fwd for cls, (_, fwd) in _FAMILIES.items() if isinstance(model, cls))
