"""The quantized model: a timm float model, its adapter and the calibrated quantization points."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from .adapters import adapter_for
from .registry import ModelSpec
from ..quant.point import QuantConfig, QuantPoint
from ..backends.torch_backend import CalibrateBackend, QuantBackend

__all__ = ["QuantModel", "Calibrated"]


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
        """Whether every point the adapter visited has its parameters (after :meth:`calibrate` or
        :meth:`load_point_params`)."""
        return bool(self.points) and all(p.calibrated for p in self.points.values())

    def backend(self) -> QuantBackend:
        """The quantized PyTorch backend over the calibrated points, built once: it caches weight codes and
        activation tables, so every forward reuses them."""
        if not self.calibrated:
            raise RuntimeError("the model is not calibrated")
        if self._backend is None:
            self._backend = QuantBackend(self.points, self.config)
        return self._backend

    max_batch: int = 8
    """Images per pass of the quantized forward. Every quantizer is per tensor with fixed parameters, so each image's
    logits do not depend on its batch, and smaller passes give the same bits. They are faster: at 224 px a batch of
    40 ran 2-4x slower per image than batches of 8 (bench/bench_phases.py), its integer attention temporaries being
    hundreds of MB each."""

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Quantized logits of images ``x`` (``[B, 3, H, W]``, float, already normalized), the same bits as the
        exported model; batches above :attr:`max_batch` run in parts (see there why that is exact)."""
        backend = self.backend()
        if x.shape[0] <= self.max_batch:
            return self.adapter(backend, self.model, x)
        return torch.cat([self.adapter(backend, self.model, part) for part in x.split(self.max_batch)])

    def point_params(self) -> dict[str, dict]:
        """Every point's plain parameters by point name: what calib.pt stores, so a calibration reloads without
        observing again."""
        return {name: p.params() for name, p in self.points.items()}

    def load_point_params(self, params: dict[str, dict]) -> None:
        """Replace the points by those :meth:`point_params` wrote (the model must be the one they were calibrated
        on: the adapter's point names are the check, at the first forward)."""
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


@dataclass
class Calibrated:
    """A calibrated model and everything that identifies it (what calib.pt stores, minus the weights)."""

    spec: ModelSpec
    config: QuantConfig
    data_cfg: dict
    qmodel: QuantModel
    calib_info: dict = field(default_factory=dict)
    weights: dict = field(default_factory=dict)
    """Where the weights came from (:func:`fqvit_export.models.registry.weights_info`)."""
    labels: list[str] | None = None
    """One name per output class, when known."""
    calib_dir: Path | None = None
    """The folder the calibration images were read from (this machine's path: never written to files)."""

    @property
    def float_model(self) -> nn.Module:
        """The timm float model the quantized one wraps (unmodified: the float baseline of every comparison)."""
        return self.qmodel.model

    @property
    def num_classes(self) -> int:
        """The classifier's output count (what the labels must match)."""
        return self.float_model.num_classes
