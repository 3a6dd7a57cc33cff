"""Every Pillow mode decodes to the 8-bit RGB picture it holds (issue #18), in ``run``, ``preprocess`` and the
calibration and evaluation folders: all of them read files through ``deploy.preprocess.load_image``.

Each case stores one real CIFAR-10 test photo (a cat) in one Pillow mode and file format and states, with numpy, the
8-bit RGB picture that file holds: the photo itself where the mode carries 8-bit RGB (RGBA, CMYK with K = 0, 16-bit
RGB), its 8-bit grey copy replicated to RGB for the grey modes (L, LA, the 16-bit and float ones), the photo reduced
to 6 levels a channel for the palette modes. YCbCr and LAB are the exceptions: their picture is Pillow's own
in-memory conversion of the image before it was written, because their colour maths is Pillow's, not ours.

The file must decode to that picture exactly. Pillow's ``Image.open(p).convert("RGB")``, the loader before the fix,
clips 16-bit samples to 255 (a 16-bit greyscale PNG becomes white) and reads float samples in 0..1 as black:
``test_old_loader_fails_the_wide_modes`` shows the checks below fail on it.
"""
from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import CIFAR_TEST
from fqvit_export.cli import main
from fqvit_export.data import calibration_batches, eval_transform, image_dataset
from fqvit_export.deploy.card import ModelCard
from fqvit_export.deploy.preprocess import load_image

PHOTO = CIFAR_TEST / "cat" / "0000.jpg"


def _grey(photo: np.ndarray) -> np.ndarray:
    """The photo's 8-bit grey copy (ITU-R 601 luma, Pillow's ``L``): what every grey mode below holds."""
    return np.asarray(Image.fromarray(photo).convert("L"))


def _as_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=2)


def _wide(grey: np.ndarray) -> np.ndarray:
    """A 16-bit copy of ``grey`` with non-zero low bits (``v * 257`` plus noise under half a step), as a real 16-bit
    scan has: the right 8-bit value is ``round(x / 257)`` = ``v``."""
    noise = np.random.default_rng(0).integers(-128, 129, grey.shape)
    return np.clip(grey.astype(np.int64) * 257 + noise, 0, 65535)


def _levels(photo: np.ndarray) -> np.ndarray:
    """The photo with 6 levels a channel (0, 51, ..., 255: at most 216 colours, so a palette holds it exactly); each
    value moves at most half a step, 25.5, from the photo's."""
    return (np.rint(photo.astype(np.float64) / 51) * 51).astype(np.uint8)


def _palette(rgb: np.ndarray, transparency: bool = False) -> Image.Image:
    colours, index = np.unique(rgb.reshape(-1, 3), axis=0, return_inverse=True)
    im = Image.fromarray(index.reshape(rgb.shape[:2]).astype(np.uint8), mode="P")
    im.putpalette(colours.astype(np.uint8).tobytes())
    if transparency:
        im.info["transparency"] = 0
    return im


def _png16(samples: np.ndarray, colour_type: int) -> bytes:
    """A 16-bit PNG written by hand (Pillow writes none with colour): ``samples`` HxWxC in 0..65535; colour type 2
    is RGB, 4 grey + alpha."""
    h, w = samples.shape[:2]
    rows = b"".join(b"\x00" + samples[r].astype(">u2").tobytes() for r in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@dataclass(frozen=True)
class Case:
    """One mode. ``make(photo) -> (Pillow image or PNG bytes to write, expected 8-bit RGB picture)``; ``opens_as``:
    the mode Pillow opens the file in; ``wide``: samples wider than 8 bits (what Pillow's ``convert("RGB")`` decodes
    wrong); ``grey``: the picture is the grey copy of the photo; ``photo_tol``: how far the picture may lie from the
    photo (or its grey copy), and why (a comment on the case); None: not comparable (1-bit)."""

    name: str
    ext: str
    opens_as: str
    make: Callable[[np.ndarray], tuple[Image.Image | bytes, np.ndarray]]
    wide: bool = False
    grey: bool = False
    photo_tol: int | None = 0


def _alpha(photo: np.ndarray) -> np.ndarray:
    """A ramp 0..255 over the pixels: an alpha channel that is neither opaque nor constant."""
    return np.linspace(0, 255, photo.shape[0] * photo.shape[1]).reshape(photo.shape[:2]).astype(np.uint8)


def _grey_rgb(p: np.ndarray) -> np.ndarray:
    return _as_rgb(_grey(p))


def _wide_u16(p: np.ndarray) -> Image.Image:
    return Image.fromarray(_wide(_grey(p)).astype(np.uint16))


CASES = [
    Case("RGB", "png", "RGB", lambda p: (Image.fromarray(p), p)),
    Case("1", "png", "1", lambda p: (Image.fromarray(_grey(p) >= 128),
                                     _as_rgb((_grey(p) >= 128).astype(np.uint8) * 255)), photo_tol=None),
    Case("L", "png", "L", lambda p: (Image.fromarray(_grey(p)), _grey_rgb(p)), grey=True),
    Case("LA", "png", "LA", lambda p: (Image.fromarray(np.dstack([_grey(p), _alpha(p)]), mode="LA"), _grey_rgb(p)),
         grey=True),
    Case("RGBA", "png", "RGBA", lambda p: (Image.fromarray(np.dstack([p, _alpha(p)]), mode="RGBA"), p)),
    # 6 levels a channel: the palette picture lies at most half a step, 25.5, from the photo's values.
    Case("P", "png", "P", lambda p: (_palette(_levels(p)), _levels(p)), photo_tol=26),
    Case("P-transparency", "png", "P", lambda p: (_palette(_levels(p), transparency=True), _levels(p)),
         photo_tol=26),
    Case("CMYK", "tif", "CMYK",
         lambda p: (Image.fromarray(np.dstack([255 - p, np.zeros_like(p[..., 0])]), mode="CMYK"), p)),
    # Pillow's 8-bit YCbCr and LAB arithmetic: RGB -> YCbCr -> RGB moves values by up to 3, RGB -> LAB -> RGB by 11.
    Case("YCbCr", "tif", "YCbCr", lambda p: (Image.fromarray(p).convert("YCbCr"),
                                             np.asarray(Image.fromarray(p).convert("YCbCr").convert("RGB"))),
         photo_tol=3),
    Case("LAB", "tif", "LAB", lambda p: (Image.fromarray(p).convert("LAB"),
                                         np.asarray(Image.fromarray(p).convert("LAB").convert("RGB"))), photo_tol=12),
    Case("I16", "png", "I;16", lambda p: (_wide_u16(p), _grey_rgb(p)), wide=True, grey=True),
    Case("I16", "tif", "I;16", lambda p: (_wide_u16(p), _grey_rgb(p)), wide=True, grey=True),
    Case("I16B", "tif", "I;16B", lambda p: (Image.frombytes("I;16B", p.shape[1::-1],
                                                            _wide(_grey(p)).astype(">u2").tobytes()), _grey_rgb(p)),
         wide=True, grey=True),
    Case("I", "tif", "I", lambda p: (Image.fromarray(_wide(_grey(p)).astype(np.int32)), _grey_rgb(p)), wide=True,
         grey=True),
    Case("F-0-1", "tif", "F", lambda p: (Image.fromarray(_grey(p).astype(np.float32) / np.float32(255)),
                                         _grey_rgb(p)), wide=True, grey=True),
    Case("F-0-255", "tif", "F", lambda p: (Image.fromarray(_grey(p).astype(np.float32)), _grey_rgb(p)), grey=True),
    Case("RGB16", "png", "RGB", lambda p: (_png16(p.astype(np.uint16) * 257, 2), p)),
    Case("LA16", "png", "RGBA", lambda p: (_png16(np.dstack([_grey(p), _alpha(p)]).astype(np.uint16) * 257, 4),
                                           _grey_rgb(p)), grey=True),
]
WIDE = [c for c in CASES if c.wide]
_ID = {id(c): f"{c.name}.{c.ext}" for c in CASES}


def _case_id(case: Case) -> str:
    return _ID[id(case)]


def _photo() -> np.ndarray:
    return np.asarray(Image.open(PHOTO).convert("RGB"))


def _write(case: Case, path: Path) -> np.ndarray:
    """Write ``case``'s file at ``path``; return the picture it holds."""
    image, expected = case.make(_photo())
    if isinstance(image, bytes):
        path.write_bytes(image)
    else:
        image.save(path, **({"transparency": image.info["transparency"]} if "transparency" in image.info else {}))
    return expected


@pytest.fixture(scope="module")
def mode_files(tmp_path_factory) -> tuple[list[Path], list[Path]]:
    """Every case's file (``modes/cat/NN_name.ext``) and the 8-bit RGB PNG of its picture (``rgb/cat/NN_name.png``),
    in the same order under both folders, each an ImageFolder of one class."""
    root = tmp_path_factory.mktemp("modes")
    files, refs = [], []
    for i, case in enumerate(CASES):
        f, r = root / "modes" / "cat" / f"{i:02d}_{case.name}.{case.ext}", root / "rgb" / "cat" / f"{i:02d}.png"
        f.parent.mkdir(parents=True, exist_ok=True)
        r.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_write(case, f)).save(r)
        files.append(f)
        refs.append(r)
    return files, refs


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_load_image_gives_the_8bit_rgb_picture(case, tmp_path):
    path = tmp_path / f"image.{case.ext}"
    expected = _write(case, path)
    with Image.open(path) as im:
        assert im.mode == case.opens_as
    got = load_image(path)
    assert got.mode == "RGB" and got.size == (expected.shape[1], expected.shape[0])
    assert np.array_equal(np.asarray(got), expected)
    if case.photo_tol is not None:
        photo = _grey_rgb(_photo()) if case.grey else _photo()
        assert np.abs(expected.astype(int) - photo).max() <= case.photo_tol


@pytest.mark.parametrize("case", WIDE, ids=_case_id)
def test_old_loader_fails_the_wide_modes(case, tmp_path):
    """``Image.open(p).convert("RGB")``, the loader before the fix: 16-bit grey comes out (almost) white, float grey
    in 0..1 black; the check of ``test_load_image_gives_the_8bit_rgb_picture`` fails on it."""
    path = tmp_path / f"image.{case.ext}"
    expected = _write(case, path)
    with Image.open(path) as im:
        old = np.asarray(im.convert("RGB"))
    assert not np.array_equal(old, expected)
    assert (old == 255).mean() > 0.9 if case.name.startswith("I") else (old <= 1).all()


def test_preprocess_command_decodes_every_mode(mode_files, exported_vit, tmp_path, capsys):
    files, refs = mode_files
    for name, images in (("modes", files), ("rgb", refs)):
        assert main(["preprocess", str(exported_vit), *map(str, images), "-o", str(tmp_path / f"{name}.npy")]) == 0
    capsys.readouterr()
    got, want = np.load(tmp_path / "modes.npy"), np.load(tmp_path / "rgb.npy")
    assert got.shape == (len(CASES), 3, 32, 32)
    for i, case in enumerate(CASES):
        assert np.array_equal(got[i], want[i]), _case_id(case)


def test_run_classifies_every_mode_as_its_rgb_copy(mode_files, exported_vit, capsys):
    """``fqvit-export run``: each mode's file gets the probabilities of its 8-bit RGB copy, all ten classes."""
    files, refs = mode_files
    results = []
    for images in (files, refs):
        assert main(["run", str(exported_vit), *map(str, images), "--json", "--top", "10"]) == 0
        results.append(json.loads(capsys.readouterr().out))
    for case, got, want in zip(CASES, *results):
        assert got["top"] == want["top"], _case_id(case)


def test_calibration_and_evaluation_folders_decode_every_mode(mode_files, exported_vit):
    """The calibration draw (``calibration_batches``, a flat folder) and the evaluation set (ImageFolder) read the
    same tensors from each mode's file as from its 8-bit RGB copy."""
    files, refs = mode_files
    cfg = ModelCard.read(exported_vit).data_config
    flat = [calibration_batches(f[0].parent, cfg, size=len(CASES), batch_size=len(CASES), seed=0)[0]
            for f in (files, refs)]
    assert torch.equal(*flat)
    tree = [image_dataset(f[0].parent.parent, eval_transform(cfg)) for f in (files, refs)]
    assert len(tree[0]) == len(tree[1]) == len(CASES)
    for i, case in enumerate(CASES):
        (x, y), (x_ref, y_ref) = tree[0][i], tree[1][i]
        assert y == y_ref == 0 and torch.equal(x, x_ref), _case_id(case)
