"""Images -> the float32 NCHW batch an exported model takes, with Pillow and numpy only.

The steps are timm's eval transform for the model card's ``data_config`` (``timm.data.create_transform(...,
is_training=False)`` with ``crop_mode="center"``), written out so that a deployment process needs no torch:

1. decode to 8-bit RGB (:func:`load_image`: every Pillow mode, 16-bit and float ones scaled, not clipped);
2. resize the shorter side to ``floor(H / crop_pct)`` with the card's interpolation (torchvision's ``Resize(int)``:
   the longer side becomes ``int(new_short * long / short)``; Pillow's resampling);
3. center crop ``H x W`` (torchvision's ``CenterCrop``: offsets ``int(round((size - crop) / 2))``, zero padding when
   the image is smaller);
4. ``x / 255`` then ``(x - mean) / std``, each in float32 (torchvision's ``ToTensor`` and ``Normalize``).

``tests/test_deploy.py`` checks the result equal, element for element, to timm's transform on real images.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["Preprocess", "load_image", "save_tensor", "ImageError", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff")
_INTERPOLATION = {"nearest": "NEAREST", "bilinear": "BILINEAR", "bicubic": "BICUBIC", "box": "BOX",
                  "hamming": "HAMMING", "lanczos": "LANCZOS"}
"""timm's interpolation names (``str_to_interp_mode``) -> Pillow's resampling filters."""


class ImageError(ValueError):
    """A file that cannot be decoded as an image; the message names the file and is for the user as is."""


def _to_8bit(im):
    """An 8-bit copy of a Pillow image whose samples are wider than 8 bits, by their nominal range.

    Pillow's own ``convert("RGB")`` clips such samples to 255, which turns a 16-bit greyscale PNG white. Ranges: the
    ``I;16*`` modes and ``I`` (how Pillow opens 16-bit greyscale PNG and TIFF) are 0..65535; ``F`` (32-bit float) is
    0..1 when every sample is at most 1, else 0..255 (what ``convert("F")`` of an 8-bit image gives).
    """
    from PIL import Image
    a = np.asarray(im)
    if im.mode == "F":
        a = a.astype(np.float64)
        a = np.nan_to_num(a, nan=0.0, posinf=255.0, neginf=0.0)
        full = 1.0 if a.size and a.max() <= 1.0 else 255.0
        a = a * (255.0 / full)
    else:  # I;16, I;16B, I;16L, I;16N, I
        a = a.astype(np.float64) / 257.0
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), mode="L")


def load_image(path: str | Path):
    """The image at ``path`` as an 8-bit RGB Pillow image (timm's ``ImageFolder`` loader, made correct for every
    mode: 1, L, P, LA, PA, RGB, RGBA, CMYK, YCbCr, LAB, HSV, I;16*, I, F).

    Transparency is dropped as timm's loader drops it (``convert("RGB")``), so a picture with an alpha channel gives
    what training saw. Palette images with transparency go through RGBA.

    Raises:
        FileNotFoundError: no such file.
        IsADirectoryError: ``path`` is a folder.
        ImageError: the file is not an image Pillow can decode (the message names it).
    """
    from PIL import Image, UnidentifiedImageError
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(21, "a folder, not an image", str(path))
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode.startswith("I") or im.mode == "F":
                im = _to_8bit(im)
            elif im.mode == "P" and "transparency" in im.info:
                im = im.convert("RGBA")
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ImageError(f"cannot read image {path}: {e}") from None


def _resize_shorter(im, size: int, resample):
    """torchvision ``Resize(size)`` of a Pillow image: the shorter side to ``size``, the aspect ratio kept."""
    w, h = im.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    return im if (new_w, new_h) == (w, h) else im.resize((new_w, new_h), resample)


def _center_crop(a: np.ndarray, crop_h: int, crop_w: int) -> np.ndarray:
    """torchvision ``CenterCrop`` of an HWC array (zero padding when the image is smaller than the crop)."""
    h, w = a.shape[:2]
    if crop_h > h or crop_w > w:
        pad_t = (crop_h - h) // 2 if crop_h > h else 0
        pad_l = (crop_w - w) // 2 if crop_w > w else 0
        pad_b = (crop_h - h + 1) // 2 if crop_h > h else 0
        pad_r = (crop_w - w + 1) // 2 if crop_w > w else 0
        a = np.pad(a, ((pad_t, pad_b), (pad_l, pad_r), (0, 0)))
        h, w = a.shape[:2]
        if (h, w) == (crop_h, crop_w):
            return a
    top, left = int(round((h - crop_h) / 2.0)), int(round((w - crop_w) / 2.0))
    return a[top:top + crop_h, left:left + crop_w]


class Preprocess:
    """The eval preprocessing of a model card's ``data_config`` (module docstring); call it on a Pillow RGB image
    for one ``[C, H, W]`` float32 array, or use :meth:`batch` on files."""

    def __init__(self, data_config: dict) -> None:
        from PIL import Image
        cfg = data_config
        if cfg.get("crop_mode", "center") != "center":
            raise ValueError(f"crop_mode {cfg['crop_mode']!r} is not supported (center only)")
        _, self.height, self.width = (int(v) for v in cfg["input_size"])
        self.crop_pct = float(cfg["crop_pct"])
        scale = (math.floor(self.height / self.crop_pct), math.floor(self.width / self.crop_pct))
        if scale[0] != scale[1]:
            raise ValueError("non-square input sizes are not supported")
        self.resize = scale[0]
        interp = str(cfg["interpolation"])
        if interp not in _INTERPOLATION:
            raise ValueError(f"unknown interpolation {interp!r} (expected one of {', '.join(_INTERPOLATION)})")
        self.resample = getattr(Image.Resampling, _INTERPOLATION[interp])
        self.mean = np.asarray(cfg["mean"], dtype=np.float32).reshape(-1, 1, 1)
        self.std = np.asarray(cfg["std"], dtype=np.float32).reshape(-1, 1, 1)

    def __call__(self, image) -> np.ndarray:
        im = _resize_shorter(image, self.resize, self.resample)
        a = _center_crop(np.asarray(im, dtype=np.uint8), self.height, self.width)
        x = a.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
        return (x - self.mean) / self.std

    def batch(self, images: Sequence[str | Path]) -> np.ndarray:
        """``[len(images), C, H, W]`` float32, C order: each file through :func:`load_image` and this transform."""
        return np.ascontiguousarray(np.stack([self(load_image(p)) for p in images]), dtype=np.float32)


def save_tensor(x: np.ndarray, path: str | Path, force: bool = False) -> Path:
    """Write ``x`` as a ``.npy`` file atomically (no partial file on error)."""
    from ..files import atomic_write

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(x, dtype=np.float32))
    return atomic_write(path, write, force=force)
