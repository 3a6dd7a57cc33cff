"""Python API: calibrate a model, save/load the calibration, evaluate float or quantized models.

The command-line scripts (``calibrate.py``, ``evaluate.py``, ``export.py``, ``fqvit-export``) are thin wrappers
around these functions.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from tqdm import tqdm

from . import __version__
from .data import BUNDLED_CALIB_DIR, DataOptions, calibration_batches, resolve_data_config
from .models.registry import ModelSpec, create
from .nn.quant_model import QuantModel
from .quant.point import QuantConfig

__all__ = ["Calibrated", "CalibrationError", "build_model", "calibrate", "save_calibration", "load_calibration",
           "evaluate", "atomic_write"]

CALIB_FORMAT = 1


class CalibrationError(ValueError):
    """Unreadable or mismatched calibration file; the message is meant for the user as is."""


@dataclass
class Calibrated:
    """A calibrated model and everything that identifies it (what calib.pt stores, minus the weights)."""

    spec: ModelSpec
    config: QuantConfig
    data_cfg: dict
    qmodel: QuantModel
    calib_info: dict = field(default_factory=dict)

    @property
    def float_model(self) -> nn.Module:
        return self.qmodel.model


def build_model(spec: ModelSpec, data_opts: DataOptions | None = None) -> tuple[nn.Module, dict]:
    """The float model and its resolved data config."""
    model = create(spec)
    return model, resolve_data_config(model, data_opts)


def calibrate(spec: ModelSpec, config: QuantConfig, data_opts: DataOptions | None = None,
              calib_dir: str | Path | None = None, calib_size: int = 1000, batch_size: int = 100, seed: int = 0,
              progress: bool = True) -> Calibrated:
    """FQ-ViT calibration: ``calib_size`` real images (seeded draw), observers on float activations, parameters
    from the last batch. Without ``calib_dir`` the bundled 500 CIFAR-10 train images are used."""
    model, data_cfg = build_model(spec, data_opts)
    root = Path(calib_dir) if calib_dir is not None else BUNDLED_CALIB_DIR
    batches = calibration_batches(root, data_cfg, calib_size, batch_size, seed)
    qmodel = QuantModel(model, config)
    qmodel.calibrate(batches, progress=progress)
    info = {"dir": str(root), "images": sum(len(b) for b in batches), "batch_size": batch_size, "seed": seed,
            "requested": calib_size, **qmodel.summary()}
    return Calibrated(spec, config, data_cfg, qmodel, info)


def atomic_write(path: str | Path, write: Callable[[str], None], force: bool = True) -> Path:
    """Write through a temporary file in the target folder and rename, so a failure leaves no partial file."""
    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass --force to overwrite")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {path.parent}")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_calibration(cal: Calibrated, path: str | Path, force: bool = True) -> Path:
    state = {"format": CALIB_FORMAT, "tool_version": __version__, "model": cal.spec.to_dict(),
             "quant": cal.config.to_dict(), "data": cal.data_cfg, "calibration": cal.calib_info,
             "points": cal.qmodel.point_params()}
    return atomic_write(path, lambda tmp: torch.save(state, tmp), force=force)


def load_calibration(path: str | Path) -> Calibrated:
    """Rebuild the model named in calib.pt and restore every scale, zero point and alpha (no recalibration)."""
    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"calibration file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CalibrationError(f"cannot read calibration {path}: {type(e).__name__}") from None
    if not isinstance(state, dict) or state.get("format") != CALIB_FORMAT:
        raise CalibrationError(f"{path} is not an fqvit-export calibration file (format {CALIB_FORMAT})")
    spec = ModelSpec(**state["model"])
    config = QuantConfig(**state["quant"])
    model = create(spec)
    qmodel = QuantModel(model, config)
    qmodel.load_point_params(state["points"])
    cal = Calibrated(spec, config, state["data"], qmodel, state["calibration"])
    _check_points(cal)
    return cal


def _check_points(cal: Calibrated) -> None:
    """Run the adapter once on a dummy input so a calibration that does not fit the model fails here, clearly."""
    c, h, w = cal.data_cfg["input_size"]
    try:
        cal.qmodel(torch.zeros(1, c, h, w))
    except (KeyError, RuntimeError) as e:
        raise CalibrationError(f"calibration does not match model {cal.spec.name}: {e}") from None


@torch.inference_mode()
def evaluate(model: Callable[[torch.Tensor], torch.Tensor], loader, progress: bool = True, desc: str = "evaluate",
             ) -> dict:
    """Top-1 / top-5 accuracy (percent) over a labelled loader; returns also the per-image logits."""
    correct1 = correct5 = total = 0
    logits_all = []
    bar = tqdm(loader, desc=desc, unit="batch", disable=not progress)
    for x, y in bar:
        logits = torch.as_tensor(model(x)).float()
        logits_all.append(logits)
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        correct1 += (top[:, 0] == y).sum().item()
        correct5 += (top == y[:, None]).any(dim=1).sum().item()
        total += len(y)
        bar.set_postfix(top1=f"{100 * correct1 / total:.2f}")
    return {"top1": 100.0 * correct1 / max(total, 1), "top5": 100.0 * correct5 / max(total, 1), "images": total,
            "logits": torch.cat(logits_all) if logits_all else torch.zeros(0)}
