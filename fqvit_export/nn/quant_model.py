"""The quantized model: a timm float model, its adapter and the calibrated quantization points."""
from __future__ import annotations

import torch
from torch import nn
from tqdm import tqdm

from ..models.adapters import adapter_for
from ..quant.point import QuantConfig, QuantPoint
from .backend import CalibrateBackend, QuantBackend

__all__ = ["QuantModel"]


class QuantModel(nn.Module):
    """FQ-ViT quantized view of a float timm model; the float model itself is never modified."""

    def __init__(self, model: nn.Module, config: QuantConfig) -> None:
        super().__init__()
        self.model = model.eval()
        self.config = config
        self.adapter = adapter_for(model)
        self.points: dict[str, QuantPoint] = {}
        self._backend: QuantBackend | None = None

    @torch.inference_mode()
    def calibrate(self, batches: list[torch.Tensor], progress: bool = True) -> None:
        """Observe every quantization point on float activations; the last batch settles the parameters."""
        self.points.clear()
        self._backend = None
        for i, x in enumerate(tqdm(batches, desc="calibrate", unit="batch", disable=not progress)):
            backend = CalibrateBackend(self.points, self.config, last=i == len(batches) - 1)
            self.adapter(backend, self.model, x)

    @property
    def calibrated(self) -> bool:
        return bool(self.points) and all(p.calibrated for p in self.points.values())

    def backend(self) -> QuantBackend:
        if not self.calibrated:
            raise RuntimeError("the model is not calibrated")
        if self._backend is None:
            self._backend = QuantBackend(self.points, self.config)
        return self._backend

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapter(self.backend(), self.model, x)

    def point_params(self) -> dict[str, dict]:
        return {name: p.params() for name, p in self.points.items()}

    def load_point_params(self, params: dict[str, dict]) -> None:
        self.points.clear()
        self._backend = None
        for name, prm in params.items():
            p = QuantPoint(prm["bits"], self.config.method, pts=prm["pts"], max_alpha=self.config.pts_max_alpha)
            p.load_params(prm)
            self.points[name] = p

    def summary(self) -> dict:
        """Counts per role, for reports: points, PTS points and the alpha histogram."""
        alphas = torch.cat([p.alpha.long() for p in self.points.values() if p.pts] or [torch.zeros(0, dtype=torch.long)])
        return {"points": len(self.points), "pts_points": sum(p.pts for p in self.points.values()),
                "alpha_histogram": torch.bincount(alphas, minlength=self.config.pts_max_alpha + 1).tolist()}

