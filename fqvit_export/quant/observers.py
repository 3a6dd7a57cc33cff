"""Activation range observers (FQ-ViT Sec. 4.1 baselines: MinMax, EMA, Percentile, OMSE).

Observers only gather statistics batch by batch; the range they settle on is turned into a scale and zero point
by :mod:`fqvit_export.quant.primitives`. Statistics live in buffers so they reach ``state_dict``.

Rules, as in the FQ-ViT code so that results compare:

* ``minmax``: running min / max over all calibration batches;
* ``ema``: the first batch initialises, then ``m += 0.01 (batch - m)``;
* ``percentile``: per batch the 0.99999 / 0.00001 quantiles of the whole tensor, smoothed by the same EMA;
* ``omse``: the min/max range, shrunk by ``1 - 0.01 i`` for ``i = 0..89``; the candidate with the lowest squared
  quantization error on the last batch wins.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .primitives import act_range, fake_quantize, qparams_from_minmax

__all__ = ["Observer", "MinMaxObserver", "EmaObserver", "PercentileObserver", "OmseObserver", "OBSERVERS",
           "build_observer"]

EMA_MOMENTUM = 0.01
PERCENTILE = 0.99999
OMSE_STEPS = 90


class Observer(nn.Module):
    """Per-tensor range statistics; ``range(last)`` returns the final ``(min, max)``."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("min_val", torch.tensor(math.inf))
        self.register_buffer("max_val", torch.tensor(-math.inf))
        self.register_buffer("batches", torch.tensor(0))

    def update(self, x: torch.Tensor) -> None:
        """Fold one calibration batch into the running ``min_val``/``max_val``: the first batch sets them, later
        ones merge as the subclass says (running extremes, or an EMA)."""
        lo, hi = self._batch_range(x.detach())
        if int(self.batches) == 0:
            self.min_val.copy_(lo)
            self.max_val.copy_(hi)
        else:
            self._merge(lo, hi)
        self.batches += 1

    def _batch_range(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.min().float(), x.max().float()

    def _merge(self, lo: torch.Tensor, hi: torch.Tensor) -> None:
        self.min_val.copy_(torch.minimum(self.min_val, lo))
        self.max_val.copy_(torch.maximum(self.max_val, hi))

    def range(self, last: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The range to quantize with; ``last`` is the last calibration batch (used by OMSE)."""
        return self.min_val.clone(), self.max_val.clone()


class MinMaxObserver(Observer):
    """Running min / max."""


class EmaObserver(Observer):
    """Exponential moving average of the per-batch min / max."""

    def _merge(self, lo: torch.Tensor, hi: torch.Tensor) -> None:
        self.min_val.add_(EMA_MOMENTUM * (lo - self.min_val))
        self.max_val.add_(EMA_MOMENTUM * (hi - self.max_val))


def _quantile(x: torch.Tensor, q: float) -> torch.Tensor:
    """``torch.quantile`` (linear interpolation) for tensors of any size, via ``topk`` of the tail."""
    flat = x.reshape(-1).float()
    n = flat.numel()
    pos = (n - 1) * q
    lo_i, hi_i = math.floor(pos), math.ceil(pos)
    if q >= 0.5:
        k = n - lo_i
        vals = torch.topk(flat, k, largest=True, sorted=True).values  # vals[j] = sorted[n - 1 - j]
        v_lo, v_hi = vals[n - 1 - lo_i], vals[n - 1 - hi_i]
    else:
        k = hi_i + 1
        vals = torch.topk(flat, k, largest=False, sorted=True).values
        v_lo, v_hi = vals[lo_i], vals[hi_i]
    return v_lo + (v_hi - v_lo) * (pos - lo_i)


class PercentileObserver(EmaObserver):
    """0.99999 / 0.00001 quantiles per batch, smoothed across batches by the EMA."""

    def _batch_range(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _quantile(x, 1.0 - PERCENTILE), _quantile(x, PERCENTILE)


class OmseObserver(Observer):
    """MinMax range shrunk to the candidate with the lowest squared error on the last batch."""

    def range(self, last: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The (min, max) among ``OMSE_STEPS`` shrunk candidates whose fake-quantized ``last`` batch is closest to
        it in squared error (FQ-ViT's omse: ``max * (1 - 0.01 i)``, ``min * (1 - 0.01 i)``)."""
        qmin, qmax = act_range(bits)
        x = last.detach().float()
        best = (math.inf, self.min_val, self.max_val)
        for i in range(OMSE_STEPS):
            factor = 1.0 - 0.01 * i
            lo, hi = self.min_val * factor, self.max_val * factor
            scale, zp = qparams_from_minmax(lo, hi, bits)
            err = float((fake_quantize(x, scale, zp, qmin, qmax) - x).double().pow(2).sum())
            if err < best[0]:
                best = (err, lo, hi)
        return best[1].clone(), best[2].clone()


OBSERVERS: dict[str, type[Observer]] = {
    "minmax": MinMaxObserver,
    "ema": EmaObserver,
    "percentile": PercentileObserver,
    "omse": OmseObserver,
}


def build_observer(name: str) -> Observer:
    """A fresh observer of the calibration method ``name`` (``--quant-method``); an unknown name is a one-line
    ``ValueError`` listing :data:`OBSERVERS`, so :class:`~fqvit_export.quant.point.QuantConfig` validates with it."""
    try:
        return OBSERVERS[name]()
    except KeyError:
        raise ValueError(f"unknown quant method {name!r}; choose from {', '.join(OBSERVERS)}") from None
