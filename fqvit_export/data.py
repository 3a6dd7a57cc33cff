"""Images in: data config resolution (timm's rules), eval transforms, calibration and evaluation sets.

The data config is resolved once, from the model's pretrained config plus the user's overrides, exactly as timm's
``resolve_data_config`` does, and reused by calibration, evaluation, export metadata and ``fqvit-export run``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from timm.data import create_transform, resolve_data_config as _timm_resolve
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision.datasets import ImageFolder

from .deploy.preprocess import IMAGE_EXTENSIONS, load_image

__all__ = ["DataOptions", "resolve_data_config", "eval_transform", "image_dataset", "calibration_batches",
           "sample_batches", "eval_loader", "CALIB_SETS", "IMAGE_EXTENSIONS", "folder_digest"]

_ASSETS = Path(__file__).parent / "assets"
CALIB_SETS: dict[str, Path] = {
    "cifar10": _ASSETS / "cifar10_calib",
    "imagenet-sample": _ASSETS / "imagenet_calib",
}
"""Bundled calibration sets: 500 CIFAR-10 train images (50 per class), for the bundled CIFAR-10 models, and 250
ImageNet photos (one each of every fourth class, short side 256 px, from the 1,000-image ImageNet sample), for
ImageNet models."""


class DataError(ValueError):
    """Bad data directory or data option; the message is meant for the user as is."""


@dataclass
class DataOptions:
    """User overrides of the model's data config (None: take the model's)."""

    img_size: int | None = None
    crop_pct: float | None = None
    interpolation: str | None = None
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None


def resolve_data_config(model: nn.Module, opts: DataOptions | None = None) -> dict:
    """timm's ``resolve_data_config`` with our overrides; returns plain JSON-able values."""
    opts = opts or DataOptions()
    args = {k: v for k, v in (("img_size", opts.img_size), ("crop_pct", opts.crop_pct),
                              ("interpolation", opts.interpolation),
                              ("mean", tuple(opts.mean) if opts.mean else None),
                              ("std", tuple(opts.std) if opts.std else None)) if v is not None}
    cfg = _timm_resolve(args, model=model)
    return {"input_size": list(cfg["input_size"]), "interpolation": cfg["interpolation"],
            "mean": [float(v) for v in cfg["mean"]], "std": [float(v) for v in cfg["std"]],
            "crop_pct": float(cfg["crop_pct"]), "crop_mode": cfg.get("crop_mode", "center")}


def eval_transform(cfg: dict):
    """timm's eval transform: resize to ``size / crop_pct``, center crop, to tensor, normalize."""
    return create_transform(input_size=tuple(cfg["input_size"]), interpolation=cfg["interpolation"],
                            mean=tuple(cfg["mean"]), std=tuple(cfg["std"]), crop_pct=cfg["crop_pct"],
                            crop_mode=cfg.get("crop_mode", "center"), is_training=False)


class _FlatFolder(Dataset):
    """A folder of images without class subfolders (label -1)."""

    def __init__(self, root: Path, transform) -> None:
        self.root = root
        self.files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        return self.transform(load_image(self.files[i])), -1


def image_dataset(root: str | Path, transform) -> Dataset:
    """An ImageFolder tree (class subfolders) or a flat folder of images."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder not found: {root}")
    if any(p.is_dir() for p in root.iterdir()):
        try:
            return ImageFolder(str(root), transform=transform, loader=load_image)
        except (FileNotFoundError, RuntimeError) as e:
            raise DataError(f"{root}: {e}") from None
    ds = _FlatFolder(root, transform)
    if len(ds) == 0:
        raise DataError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {root}")
    return ds


def folder_digest(ds: Dataset) -> str:
    """SHA-256 of a dataset's sorted relative file list (names and sizes): identifies a calibration set without
    naming the folder it lay in on the exporting machine."""
    import hashlib
    if isinstance(ds, ImageFolder):
        root, paths = Path(ds.root), [Path(p) for p, _ in ds.samples]
    else:
        root, paths = ds.root, ds.files
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(f"{p.relative_to(root).as_posix()}\t{p.stat().st_size}\n".encode())
    return h.hexdigest()


def calibration_batches(root: str | Path, cfg: dict, size: int, batch_size: int, seed: int) -> list[torch.Tensor]:
    """:func:`sample_batches` of the images under ``root`` through the eval transform of ``cfg``."""
    return sample_batches(image_dataset(root, eval_transform(cfg)), size, batch_size, seed)


def sample_batches(ds: Dataset, size: int, batch_size: int, seed: int) -> list[torch.Tensor]:
    """``size`` images drawn without replacement with ``torch.Generator(seed)``, as batches (deterministic)."""
    if size < 1 or batch_size < 1:
        raise DataError("--calib-size and --calib-batch-size must be positive")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ds), generator=g)[:size].tolist()
    loader = DataLoader(Subset(ds, idx), batch_size=batch_size, shuffle=False, num_workers=0)
    return [x for x, _ in loader]


def eval_loader(root: str | Path, cfg: dict, batch_size: int = 100, limit: int | None = None,
                workers: int = 0) -> DataLoader:
    ds = image_dataset(root, eval_transform(cfg))
    if limit is not None:
        ds = Subset(ds, range(min(limit, len(ds))))
    return DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers)
