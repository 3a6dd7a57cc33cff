"""Shared fixtures: small real-image sets and cached calibrations of the bundled models."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fqvit_export.api import calibrate
from fqvit_export.models.registry import ModelSpec
from fqvit_export.quant.point import QuantConfig

FIXTURES = Path(__file__).parent / "fixtures"
CIFAR_TEST = FIXTURES / "cifar10_test"
IMAGENET = FIXTURES / "imagenet"

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def calibrated():
    """``calibrated(model, **config)``: one calibration per distinct request, on 100 bundled CIFAR-10 images."""
    cache: dict = {}

    def get(name: str, **cfg):
        key = (name, tuple(sorted(cfg.items())))
        if key not in cache:
            cache[key] = calibrate(ModelSpec(name), QuantConfig(**cfg), calib_size=100, batch_size=50,
                                   progress=False)
        return cache[key]
    return get


@pytest.fixture(scope="session")
def exported_vit(calibrated, tmp_path_factory) -> Path:
    """``cifar10_vit``, minmax + PTS + LIS (8/8/4), exported once for the tests that only run a finished model."""
    from fqvit_export.export.onnx_export import export_onnx
    cal = calibrated("cifar10_vit", pts=True, lis=True, attn_bits=4)
    return export_onnx(cal, tmp_path_factory.mktemp("exported") / "cifar10_vit.onnx").path
