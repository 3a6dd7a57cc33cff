"""The Swin family: timm ``SwinTransformer`` (v1) quantized on a backend (FQ-ViT Sec. 3).

Shifted windows, zero padding to whole windows and patch merging are token gathers with precomputed indices, so
every backend runs them as layout steps on the codes; the relative position bias is added to the dequantized
logits before their quantizer. :func:`check_swin` refuses the rest before any weights load.
"""
from __future__ import annotations

import timm.models.swin_transformer as swin
import torch
from torch import nn

from ...backends.base import Backend
from .common import attention_branch, check_image_size, check_mlp, check_norm, check_patch_embed, mlp_residual, refuse

__all__ = ["swin_forward", "check_swin"]


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
    """The relative position bias ``[1, heads, N, N]`` that timm's ``WindowAttention`` adds to the logits, read
    once from its table so the backend sees a constant."""
    n = attn.window_area
    bias = attn.relative_position_bias_table.detach()[attn.relative_position_index.view(-1)].view(n, n, -1)
    return bias.permute(2, 0, 1).unsqueeze(0).contiguous()  # [1, heads, N, N]


def swin_forward(b: Backend, m: nn.Module, x):
    """timm ``SwinTransformer`` (v1): shifted windows (zero-padded to whole windows), relative position bias,
    patch merging."""
    check_image_size(m, x)
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
            h = b.layernorm(q, blk.norm1, name, f"{p}.norm1")
            if len(order) > hh * ww:
                h = b.append_zero_token(h, f"{p}.norm1", c)
            hw = b.reshape(b.gather(h, order, 1), (-1, n, c))
            mask = blk.attn_mask if any(shift) else None
            a = attention_branch(b, attn, hw, f"{p}.norm1", f"{p}.attn", attn.num_heads, c // attn.num_heads,
                                 rel_bias=_rel_bias(attn), mask=mask)
            a = b.gather(b.reshape(a, (-1, len(order), c)), inverse, 1)
            q = b.residual_add(q, name, a, f"{p}.attn.proj", None, f"{p}.add1")
            name = f"{p}.add1"
            q, name = mlp_residual(b, blk, q, name, p)
    h = b.layernorm(q, m.norm, name, "norm")
    feat = b.quant(b.qmean(h, "norm", 1, hh * ww), "head_in")
    return b.dequant(b.qlinear_quant(feat, "head_in", m.head.fc, "head", "logits"), "logits")


def check_swin(m: nn.Module) -> None:
    """Raise :class:`~.common.UnsupportedModel` for the first part of a ``SwinTransformer`` that
    :func:`swin_forward` does not compute (absolute position embedding, other heads, blocks or downsampling,
    dynamic masks)."""
    check_patch_embed(m, m.patch_embed)
    check_norm(m, m.patch_embed.norm, "patch_embed.norm")
    if getattr(m, "absolute_pos_embed", None) is not None:
        refuse(m, "the absolute position embedding (ape)")
    check_norm(m, m.norm, "norm", optional=False)
    head = m.head
    if not isinstance(getattr(head, "fc", None), nn.Linear) or getattr(head.global_pool, "pool_type", None) != "avg":
        refuse(m, "a head other than average pooling + Linear")
    for s, stage in enumerate(m.layers):
        ds = stage.downsample
        if not isinstance(ds, nn.Identity):
            if type(ds) is not swin.PatchMerging:
                refuse(m, f"layers.{s}.downsample {type(ds).__name__}")
            check_norm(m, ds.norm, f"layers.{s}.downsample.norm", optional=False)
        for i, blk in enumerate(stage.blocks):
            p = f"layers.{s}.blocks.{i}"
            if type(blk) is not swin.SwinTransformerBlock or type(blk.attn) is not swin.WindowAttention:
                refuse(m, f"block {type(blk).__name__}")
            if getattr(blk, "dynamic_mask", False):
                refuse(m, "dynamic masks (strict_img_size=False)")
            check_norm(m, blk.norm1, f"{p}.norm1", optional=False)
            check_norm(m, blk.norm2, f"{p}.norm2", optional=False)
            check_mlp(m, blk.mlp, f"{p}.mlp")
