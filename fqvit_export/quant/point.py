"""One activation quantization point and the quantization config (FQ-ViT Sec. 3).

A :class:`QuantPoint` observes float activations during calibration and then holds the uint8 grid of that point:
a per-tensor scale and zero point, or for PTS points (LayerNorm inputs with ``--pts``) a base scale, one zero point
and a per-channel power-of-two exponent ``alpha``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from . import primitives as P
from .observers import MinMaxObserver, build_observer

__all__ = ["QuantConfig", "QuantPoint"]


@dataclass
class QuantConfig:
    """What to quantize and how; defaults follow FQ-ViT (8/8/8, minmax, PTS and LIS off)."""

    w_bits: int = 8
    a_bits: int = 8
    attn_bits: int = 8
    method: str = "minmax"
    pts: bool = False
    lis: bool = False
    pts_max_alpha: int = 3

    def __post_init__(self) -> None:
        if self.lis and not 1 <= self.attn_bits <= 4:
            raise ValueError(f"--lis needs --attn-bits between 1 and 4 (FQ-ViT uses 4), got {self.attn_bits}")
        for name, lo in (("w_bits", 2), ("a_bits", 2), ("attn_bits", 1)):
            bits = getattr(self, name)
            if not lo <= bits <= 8:
                raise ValueError(f"--{name.replace('_', '-')} must be between {lo} and 8, got {bits}")
        if self.pts_max_alpha < 0:  # the upper bound is the PTSLayerNorm op's (ops.spec.MAX_ALPHA), checked by api
            raise ValueError(f"pts_max_alpha must not be negative, got {self.pts_max_alpha}")
        build_observer(self.method)  # validates the name

    def to_dict(self) -> dict:
        """The fields as plain values, for calib.pt and the ONNX metadata (:meth:`from_dict` reads them back)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "QuantConfig":
        """Read a config written by this or an earlier version (which also stored an always-empty ``extra``)."""
        return cls(**{k: v for k, v in d.items() if k != "extra"})

    def label(self) -> str:
        """A short human label for reports, e.g. ``minmax+pts+lis (8/8/4)``."""
        parts = [self.method]
        if self.pts:
            parts.append("pts")
        if self.lis:
            parts.append("lis")
        return "+".join(parts) + f" ({self.w_bits}/{self.a_bits}/{self.attn_bits})"


class QuantPoint(nn.Module):
    """Observer plus uint8 quantization parameters of one activation tensor."""

    def __init__(self, bits: int, method: str, pts: bool = False, max_alpha: int = 3) -> None:
        super().__init__()
        if not 1 <= bits <= 8:
            raise ValueError(f"activation points hold 1..8 bits (uint8), got {bits}")
        self.bits = bits
        self.pts = pts
        self.max_alpha = max_alpha
        # PTS takes the global min/max across batches whatever the calibrator (as FQ-ViT's PtfObserver does).
        self.observer = MinMaxObserver() if pts else build_observer(method)
        self.register_buffer("scale", torch.tensor(1.0))
        self.register_buffer("zero_point", torch.tensor(0, dtype=torch.int64))
        self.register_buffer("alpha", torch.zeros(0, dtype=torch.uint8))
        self.calibrated = False

    @property
    def qmax(self) -> int:
        """The largest code of this point's ``bits`` (codes are ``0 .. qmax``)."""
        return (1 << self.bits) - 1

    def observe(self, x: torch.Tensor, last: bool) -> None:
        """Add a calibration batch; on the last one, settle the parameters (OMSE and PTS look at that batch)."""
        self.observer.update(x)
        if last:
            lo, hi = self.observer.range(x, self.bits)
            if self.pts:
                self.scale, self.zero_point = P.pts_qparams(lo, hi, self.bits, self.max_alpha)
                self.alpha = P.pts_select_alpha(x, self.scale, self.zero_point, self.bits, self.max_alpha)
            else:
                self.scale, self.zero_point = P.qparams_from_minmax(lo, hi, self.bits)
            self.calibrated = True

    def channel_scale(self) -> torch.Tensor:
        """The scale a QuantizeLinear for this point uses: per channel ``s * 2^alpha`` for PTS, else a scalar."""
        return P.pts_channel_scale(self.scale, self.alpha) if self.pts else self.scale

    def channel_zero_point(self) -> torch.Tensor:
        """The zero point matching :meth:`channel_scale`: the one zero point repeated per channel for PTS (ONNX's
        per-axis QuantizeLinear wants one per channel), else a scalar."""
        return self.zero_point.expand(self.alpha.shape) if self.pts else self.zero_point

    def ln_alpha(self, channels: int) -> torch.Tensor:
        """``alpha`` as the PTSLayerNorm op takes it (all zeros for a per-tensor point)."""
        return self.alpha if self.pts else torch.zeros(channels, dtype=torch.uint8)

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """Float to uint8 codes with this point's grid (per channel for PTS), as the exported QuantizeLinear does;
        refuses an uncalibrated point rather than quantize with the placeholder scale 1."""
        if not self.calibrated:
            raise RuntimeError("quantization point used before calibration")
        return P.quantize(x, self.channel_scale(), self.channel_zero_point(), 0, self.qmax).to(torch.uint8)

    def dequantize(self, q: torch.Tensor) -> torch.Tensor:
        """Codes back to float32, ``(q - zp) * s`` per channel for PTS, as DequantizeLinear."""
        return P.dequantize(q, self.channel_scale(), self.channel_zero_point())

    def params(self) -> dict:
        """Plain, picklable parameters (what calib.pt stores)."""
        return {"bits": self.bits, "pts": self.pts, "scale": float(self.scale), "zero_point": int(self.zero_point),
                "alpha": self.alpha.tolist()}

    def load_params(self, params: dict) -> None:
        """Restore what :meth:`params` wrote (calib.pt): the point is calibrated afterwards, with no observation."""
        self.bits, self.pts = int(params["bits"]), bool(params["pts"])
        self.scale = torch.tensor(params["scale"], dtype=torch.float32)
        self.zero_point = torch.tensor(params["zero_point"], dtype=torch.int64)
        self.alpha = torch.tensor(params["alpha"], dtype=torch.uint8)
        self.calibrated = True
