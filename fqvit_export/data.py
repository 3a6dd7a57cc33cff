"""Images in: data config resolution (timm's rules), eval transforms, calibration and evaluation sets.

The data config is resolved once, from the model's pretrained config plus the user's overrides, exactly as timm's
``resolve_data_config`` does, and reused by calibration, evaluation, export metadata and ``fqvit-export run``.
"""
from __future__ import annotations

import os
from collections import Counter
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
           "sample_batches", "eval_loader", "CALIB_SETS", "IMAGE_EXTENSIONS", "folder_digest", "dataset_layout",
           "balanced_sample", "describe_eval_set"]

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


def _hidden(path: Path, root: Path) -> bool:
    """Whether any name of ``path`` below ``root`` starts with a dot: ``.ipynb_checkpoints/``, ``.DS_Store``, the
    ``._photo.jpg`` resource forks macOS leaves on other file systems. Such files are never images of the set."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _is_image(path: Path, root: Path) -> bool:
    """An image file of the set under ``root``: one of :data:`IMAGE_EXTENSIONS`, not hidden. Flat folders and class
    folders take the same files."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not _hidden(path, root) and path.is_file()


def _images(root: Path, recursive: bool) -> list[Path]:
    return sorted(p for p in (root.rglob("*") if recursive else root.iterdir()) if _is_image(p, root))


class _FlatFolder(Dataset):
    """A folder of images without classes (label -1); ``recursive``: its subfolders' images too."""

    def __init__(self, root: Path, transform, recursive: bool = False) -> None:
        self.root = root
        self.recursive = recursive
        self.files = _images(root, recursive)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        return self.transform(load_image(self.files[i])), -1


class _ClassFolders(ImageFolder):
    """torchvision's ``ImageFolder`` (one class per subfolder, sorted names) without hidden folders and files: a
    ``.ipynb_checkpoints`` folder is no class, and ``._x.jpg`` no image."""

    def __init__(self, root: Path, transform) -> None:
        super().__init__(str(root), transform=transform, loader=load_image, is_valid_file=self._valid)

    def _valid(self, path: str) -> bool:
        return _is_image(Path(path), Path(self.root))

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        classes = sorted(e.name for e in os.scandir(directory) if e.is_dir() and not e.name.startswith("."))
        return classes, {c: i for i, c in enumerate(classes)}


def image_dataset(root: str | Path, transform) -> Dataset:
    """The images under ``root``, hidden files and folders skipped: an ImageFolder tree when ``root`` holds class
    subfolders and no image of its own (labels: the sorted folder names); else a flat set (label -1) of its images
    and, when it also has subfolders (``thumbs/``), theirs, recursively. :func:`dataset_layout` says which."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder not found: {root}")
    visible = [p for p in root.iterdir() if not p.name.startswith(".")]
    subfolders = any(p.is_dir() for p in visible)
    if subfolders and not any(_is_image(p, root) for p in visible):
        try:
            return _ClassFolders(root, transform)
        except (FileNotFoundError, RuntimeError) as e:
            raise DataError(f"{root}: {e}") from None
    ds = _FlatFolder(root, transform, recursive=subfolders)
    if len(ds) == 0:
        raise DataError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {root}")
    return ds


def dataset_layout(ds: Dataset) -> str:
    """How :func:`image_dataset` read its folder, in words for the user: ``10 class folders``, ``a flat folder``
    or ``a folder and its subfolders``."""
    if isinstance(ds, ImageFolder):
        return f"{len(ds.classes)} class folder{'s' if len(ds.classes) != 1 else ''}"
    return "a folder and its subfolders" if getattr(ds, "recursive", False) else "a flat folder"


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


def balanced_sample(ds: Dataset, size: int, seed: int) -> list[int]:
    """``size`` indices of ``ds`` spread evenly over its classes, in dataset order: each class gives its images in
    an order drawn with ``torch.Generator(seed)``, one image of every class in turn (the classes' turn order drawn
    too, so that which classes give one more image when ``size`` does not divide evenly is not always the first
    ones), a class that runs out leaving the rest to the others. A set without classes: a seeded draw.

    ``evaluate --limit N`` uses it: the first N files of a sorted ImageFolder would be one or two classes."""
    g = torch.Generator().manual_seed(seed)
    targets = getattr(ds, "targets", None)
    if targets is None:
        return sorted(torch.randperm(len(ds), generator=g)[:size].tolist())
    by_class: dict[int, list[int]] = {}
    for i, t in enumerate(targets):
        by_class.setdefault(int(t), []).append(i)
    pools = [[idx[j] for j in torch.randperm(len(idx), generator=g).tolist()] for _, idx in sorted(by_class.items())]
    turn = torch.randperm(len(pools), generator=g).tolist()
    chosen: list[int] = []
    for k in range(max(map(len, pools), default=0)):
        chosen += [pools[c][k] for c in turn if k < len(pools[c])][:size - len(chosen)]
    return sorted(chosen)


def eval_loader(root: str | Path, cfg: dict, batch_size: int = 100, limit: int | None = None,
                workers: int = 0, seed: int = 0, labelled: bool = False) -> DataLoader:
    """The images under ``root`` (:func:`image_dataset`) through the eval transform of ``cfg``, in folder order;
    ``limit``: a class-balanced sample of that many, drawn with ``seed`` (:func:`balanced_sample`); ``labelled``:
    refuse a folder that is no ImageFolder tree (its images would all count as wrong, label -1)."""
    ds = image_dataset(root, eval_transform(cfg))
    if labelled and not isinstance(ds, ImageFolder):
        raise DataError(f"{root} reads as {dataset_layout(ds)} of {len(ds)} images, without classes: accuracy needs "
                        f"an ImageFolder tree (one subfolder per class, no loose images)")
    if limit is not None:
        if limit < 1:
            raise DataError(f"--limit must be positive, got {limit}")
        if limit < len(ds):
            ds = Subset(ds, balanced_sample(ds, limit, seed))
    return DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers)


def describe_eval_set(loader: DataLoader, seed: int | None = None) -> str:
    """The images an :func:`eval_loader` reads, in words for the user: ``all 219 images (10 class folders)`` or
    ``a class-balanced sample of 50 of the 219 images (5 per class of 10 class folders, seed 0)``."""
    ds = loader.dataset
    base = ds.dataset if isinstance(ds, Subset) else ds
    layout = dataset_layout(base)
    if not isinstance(ds, Subset):
        return f"all {len(ds)} images ({layout})"
    classes = len(getattr(base, "classes", ()))
    spread = layout
    if classes:
        counts = Counter(int(base.targets[i]) for i in ds.indices)
        lo, hi = min(counts.values(), default=0), max(counts.values(), default=0)
        spread = (f"{lo if lo == hi else f'{lo}-{hi}'} per class of "
                  f"{layout if len(counts) == classes else f'{len(counts)} of the {layout}'}")
    kind = "class-balanced sample" if classes else "random sample"
    return f"a {kind} of {len(ds)} of the {len(base)} images ({spread}{f', seed {seed}' if seed is not None else ''})"
