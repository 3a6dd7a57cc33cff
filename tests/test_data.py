"""Image folders (issue #18): hidden files and folders skipped everywhere, loose images beside subfolders read
recursively, class trees kept as ImageFolder, and ``--limit`` as a class-balanced, seeded sample."""
from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
from torchvision.datasets import ImageFolder

from conftest import CIFAR_TEST
from fqvit_export.cli import main
from fqvit_export.data import DataError, dataset_layout, describe_eval_set, eval_loader, eval_transform, \
    folder_digest, image_dataset

CFG = {"input_size": [3, 32, 32], "interpolation": "bicubic", "mean": [0.5] * 3, "std": [0.5] * 3, "crop_pct": 1.0}
CATS = sorted((CIFAR_TEST / "cat").iterdir())
DOGS = sorted((CIFAR_TEST / "dog").iterdir())


def _copy(files: list[Path], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy(f, folder / f.name)


def _hidden_litter(folder: Path) -> None:
    """What Jupyter and macOS leave behind: an empty checkpoint folder, a hidden folder holding an image, a
    ``._`` resource fork with an image's name (not an image) and ``.DS_Store``."""
    (folder / ".ipynb_checkpoints").mkdir()
    _copy(DOGS[:1], folder / ".cache")
    (folder / "._0000.jpg").write_bytes(b"\x00\x05\x16\x07 not an image")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")


def test_loose_images_beside_subfolders_are_all_read(tmp_path):
    """A flat calibration folder with a ``thumbs/`` subfolder: before, it became an ImageFolder of one class and
    its 2 loose images were dropped (or, with an empty subfolder, it failed)."""
    _copy(CATS[:2], tmp_path)
    _copy(CATS[2:5], tmp_path / "thumbs")
    _copy(CATS[5:6], tmp_path / "thumbs" / "small")
    (tmp_path / "empty").mkdir()
    _hidden_litter(tmp_path)
    ds = image_dataset(tmp_path, eval_transform(CFG))
    assert not isinstance(ds, ImageFolder) and len(ds) == 6 and dataset_layout(ds) == "a folder and its subfolders"
    assert [p.relative_to(tmp_path).as_posix() for p in ds.files] == \
        ["0000.jpg", "0001.jpg", "thumbs/0002.jpg", "thumbs/0003.jpg", "thumbs/0004.jpg", "thumbs/small/0005.jpg"]
    assert all(ds[i][1] == -1 for i in range(len(ds)))
    flat = tmp_path / "flat"
    _copy(CATS[:6], flat)
    assert folder_digest(ds) != folder_digest(image_dataset(flat, None))  # the subfolder paths are in the digest


def test_hidden_files_and_folders_are_skipped(tmp_path):
    """A flat folder with Jupyter's and macOS's hidden litter: before, the empty ``.ipynb_checkpoints`` made it an
    ImageFolder that failed."""
    _copy(CATS[:3], tmp_path)
    _hidden_litter(tmp_path)
    ds = image_dataset(tmp_path, eval_transform(CFG))
    assert dataset_layout(ds) == "a flat folder" and [p.name for p in ds.files] == [p.name for p in CATS[:3]]
    assert [ds[i][0].shape for i in range(3)] == [(3, 32, 32)] * 3


def test_class_tree_stays_an_imagefolder_without_hidden_classes(tmp_path):
    """Class subfolders only: an ImageFolder (the labels for evaluation), with no ``.ipynb_checkpoints`` class
    shifting the labels and no ``._`` file in a class."""
    _copy(CATS[:2], tmp_path / "cat")
    _copy(DOGS[:3], tmp_path / "dog")
    _hidden_litter(tmp_path)
    _hidden_litter(tmp_path / "cat")
    ds = image_dataset(tmp_path, eval_transform(CFG))
    assert isinstance(ds, ImageFolder) and ds.classes == ["cat", "dog"] and dataset_layout(ds) == "2 class folders"
    assert [Path(p).relative_to(tmp_path).as_posix() for p, _ in ds.samples] == \
        [f"cat/{p.name}" for p in CATS[:2]] + [f"dog/{p.name}" for p in DOGS[:3]]
    assert [ds[i][1] for i in range(len(ds))] == [0, 0, 1, 1, 1]


def test_evaluation_refuses_a_folder_without_classes(tmp_path):
    _copy(CATS[:2], tmp_path)
    _copy(DOGS[:2], tmp_path / "dog")
    with pytest.raises(DataError, match="a folder and its subfolders of 4 images, without classes"):
        eval_loader(tmp_path, CFG, labelled=True)
    assert len(eval_loader(tmp_path, CFG).dataset) == 4  # calibration and parity sets need no classes


def test_calibration_note_counts_the_images_found(tmp_path, capsys):
    """The note after calibration says how many images the folder held and how it was read."""
    _copy(CATS[:2], tmp_path / "calib")
    _copy(DOGS[:3], tmp_path / "calib" / "thumbs")
    _hidden_litter(tmp_path / "calib")
    assert main(["calibrate", "cifar10_vit", "--calib-dir", str(tmp_path / "calib"), "--calib-size", "4",
                 "--calib-batch-size", "4", "-o", str(tmp_path / "c.pt")]) == 0
    err = capsys.readouterr().err
    assert "calibrated on 4 images of the user folder calib (5 images found in a folder and its subfolders, hidden " \
           "files and folders skipped)" in err, err


def test_limit_is_a_class_balanced_seeded_sample():
    """``--limit 20`` of the 10-class fixture: 2 images of every class (before: the first 20 files, all
    airplanes), the same ones for the same seed, others for another; not divisible: classes differ by one."""
    loader = eval_loader(CIFAR_TEST, CFG, batch_size=8, limit=20)
    base = loader.dataset.dataset
    labels = [y for _, ys in loader for y in ys.tolist()]
    assert len(labels) == 20 and Counter(labels) == {c: 2 for c in range(10)}
    assert labels == sorted(labels)  # folder order kept
    again = eval_loader(CIFAR_TEST, CFG, limit=20).dataset.indices
    other = eval_loader(CIFAR_TEST, CFG, limit=20, seed=1).dataset.indices
    assert loader.dataset.indices == again != other
    counts = Counter(base.targets[i] for i in eval_loader(CIFAR_TEST, CFG, limit=25, seed=3).dataset.indices)
    assert sum(counts.values()) == 25 and set(counts.values()) == {2, 3} and len(counts) == 10
    assert describe_eval_set(loader, 0) == \
        "a class-balanced sample of 20 of the 200 images (2 per class of 10 class folders, seed 0)"
    assert describe_eval_set(eval_loader(CIFAR_TEST, CFG, limit=500)) == "all 200 images (10 class folders)"
    with pytest.raises(DataError, match="--limit must be positive"):
        eval_loader(CIFAR_TEST, CFG, limit=0)


def test_limit_below_the_class_count_is_described_as_it_is():
    """Before, 5 images of 10 classes read "0-1 per class of 10 class folders"."""
    loader = eval_loader(CIFAR_TEST, CFG, limit=5, seed=0, labelled=True)
    assert describe_eval_set(loader, 0) == ("a class-balanced sample of 5 of the 200 images (1 per class of 5 of the "
                                            "10 class folders, seed 0)")
    loader = eval_loader(CIFAR_TEST, CFG, limit=25, seed=0, labelled=True)
    assert "(2-3 per class of 10 class folders, seed 0)" in describe_eval_set(loader, 0)


def test_class_folders_and_flat_folders_take_the_same_files(tmp_path):
    """Before, class folders took torchvision's extensions (``.pgm`` too), flat folders the package's."""
    src = CIFAR_TEST / "cat" / "0000.jpg"
    for folder in (tmp_path / "tree" / "cat", tmp_path / "flat"):
        folder.mkdir(parents=True)
        for name in ("a.jpg", "b.PNG", "c.pgm", "d.txt"):
            shutil.copyfile(src, folder / name)
    assert len(image_dataset(tmp_path / "tree", None)) == len(image_dataset(tmp_path / "flat", None)) == 2
