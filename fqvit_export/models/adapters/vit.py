"""The ViT/DeiT family: timm ``VisionTransformer`` and its subclasses quantized on a backend (FQ-ViT Sec. 3).

Covers ViT, DeiT, DeiT-3, distilled DeiT, CLIP, DINOv2 and the like: prefix tokens, learned position embedding,
optional ``norm_pre``, pre-norm blocks with optional qk-norm and LayerScale, token or average/max pooling with
optional ``fc_norm``; :func:`check_vit` refuses the rest before any weights load.
"""
from __future__ import annotations

import timm.layers as tl
import torch
from timm.models.vision_transformer import Block
from torch import nn

from ...backends.base import Backend
from .common import (attention_branch, check_image_size, check_mlp, check_norm, check_patch_embed, layer_scale,
                     mlp_residual, refuse)

__all__ = ["vit_forward", "check_vit"]


def _prefix_tokens(m: nn.Module) -> torch.Tensor | None:
    """Class, distillation and register tokens ``[1, T, C]`` in timm's order (``_pos_embed``), or None."""
    parts = [t for t in (m.cls_token, getattr(m, "dist_token", None), m.reg_token) if t is not None]
    return torch.cat([t.detach().float() for t in parts], dim=1) if parts else None


def _vit_embed(b: Backend, m: nn.Module, x):
    """Patch embedding, prefix tokens and position embedding as timm's ``_pos_embed``, quantized at ``pos_add``:
    the embedding covers the prefix tokens (concat, then add) unless ``no_embed_class`` (add to the patches, then
    concat). Returns the codes of the token sequence."""
    q = b.quant(x, "input")
    pe = m.patch_embed
    tokens = _prefix_tokens(m)
    if m.pos_embed is not None and not m.no_embed_class:
        q = b.embed_quant(q, "input", pe.proj, "patch_embed.proj", pe.grid_size, tokens, "embed")
        return b.pos_embed_add(q, "embed", m.pos_embed.detach(), "pos_embed", "pos_add")
    x = b.patch_embed(q, "input", pe.proj, "patch_embed.proj", pe.grid_size)
    if m.pos_embed is not None:
        x = b.add(b.dequant(b.quant(x, "embed"), "embed"), b.qconst(m.pos_embed.detach(), "pos_embed"))
    if tokens is not None:
        x = b.prepend_token(x, tokens)
    return b.quant(x, "pos_add", ln_input=True)


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
    check_image_size(m, x)
    name = "pos_add"
    q = _vit_embed(b, m, x)
    if not isinstance(m.norm_pre, nn.Identity):
        h = b.layernorm(q, m.norm_pre, name, "norm_pre")
        name = "norm_pre.out"
        q = b.quant(b.dequant(h, "norm_pre"), name, ln_input=True)
    tokens = m.patch_embed.num_patches + m.num_prefix_tokens
    for i, blk in enumerate(m.blocks):
        p = f"blocks.{i}"
        attn = blk.attn
        h = b.layernorm(q, blk.norm1, name, f"{p}.norm1")
        a = attention_branch(b, attn, h, f"{p}.norm1", f"{p}.attn", attn.num_heads, attn.head_dim, tokens=tokens)
        q = b.residual_add(q, name, a, f"{p}.attn.proj", layer_scale(blk.ls1), f"{p}.add1")
        name = f"{p}.add1"
        q, name = mlp_residual(b, blk, q, name, p)
    feats = _vit_pool(b, m, q, name)
    heads = [(m.head, "head", "logits")] + ([(m.head_dist, "head_dist", "logits_dist")] if len(feats) == 2 else [])
    logits = [b.dequant(b.qlinear_quant(f, fn, head, hn, out), out) for (f, fn), (head, hn, out) in zip(feats, heads)]
    if len(logits) == 1:
        return logits[0]
    return b.scale(b.add(*logits), torch.tensor(0.5), "head_average")  # timm eval: (head(x0) + head_dist(x1)) / 2


_VIT_POOLS = ("token", "avg", "max", "avgmax")


def check_vit(m: nn.Module) -> None:
    """Raise :class:`~.common.UnsupportedModel` for the first part of a ``VisionTransformer`` that
    :func:`vit_forward` does not compute: the subclasses share a constructor whose options reach far (attention
    pooling, gated or output-normed attention, other blocks), so every part is checked, not the class."""
    check_patch_embed(m, m.patch_embed)
    if not isinstance(m.patch_embed.norm, nn.Identity):
        refuse(m, "patch_embed.norm (a norm inside the patch embedding)")
    if getattr(m, "attn_pool", None) is not None:
        refuse(m, f"the attention-pooling head (global_pool={m.global_pool!r})")
    if m.global_pool not in _VIT_POOLS:
        refuse(m, f"global_pool={m.global_pool!r} (supported: {', '.join(map(repr, _VIT_POOLS))})")
    if hasattr(m, "dist_token") and m.reg_token is not None:
        refuse(m, "register tokens beside a distillation token (timm's distilled model ignores them)")
    if not isinstance(m.patch_drop, nn.Identity) and m.training:
        refuse(m, "patch dropout in training mode")
    check_norm(m, m.norm_pre, "norm_pre")
    check_norm(m, m.norm, "norm")
    check_norm(m, m.fc_norm, "fc_norm")
    heads = [("head", m.head)] + ([("head_dist", m.head_dist)] if hasattr(m, "head_dist") else [])
    for where, head in heads:
        if not isinstance(head, nn.Linear):
            refuse(m, f"{where} {type(head).__name__} (num_classes=0: no Linear classifier)")
    for i, blk in enumerate(m.blocks):
        p = f"blocks.{i}"
        if type(blk) is not Block:
            refuse(m, f"block {type(blk).__name__} (only the pre-norm Block)")
        check_norm(m, blk.norm1, f"{p}.norm1", optional=False)
        check_norm(m, blk.norm2, f"{p}.norm2", optional=False)
        attn = blk.attn
        if type(attn) is not tl.Attention:
            refuse(m, f"attention {type(attn).__name__}")
        if getattr(attn, "gate", None) is not None:
            refuse(m, f"{p}.attn.gate (gated attention)")
        if not isinstance(attn.norm, nn.Identity):
            refuse(m, f"{p}.attn.norm (attention output norm, scale_attn_norm)")
        check_norm(m, attn.q_norm, f"{p}.attn.q_norm")
        check_norm(m, attn.k_norm, f"{p}.attn.k_norm")
        if isinstance(attn.q_norm, nn.Identity) != isinstance(attn.k_norm, nn.Identity):
            refuse(m, f"{p}.attn: a norm on only one of q and k")
        for ls in ("ls1", "ls2"):
            if not isinstance(getattr(blk, ls), (nn.Identity, tl.LayerScale)):
                refuse(m, f"{p}.{ls} {type(getattr(blk, ls)).__name__}")
        check_mlp(m, blk.mlp, f"{p}.mlp")
