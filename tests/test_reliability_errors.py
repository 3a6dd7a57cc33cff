"""Bad input never gives a silent wrong answer (issue #18): every user error is one line, ``fqvit-export: error:
...``, exit 2, and leaves no output behind; options that contradict a saved calibration are refused; an interrupted
or failed export leaves nothing.

A saved calibration of ``cifar10_vit`` (the session's cached one) stands in for a calibration run wherever the
command allows, so that no test here calibrates.
"""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest
import torch

from conftest import CIFAR_TEST
from fqvit_export.api import save_calibration
from fqvit_export.cli import main
from fqvit_export.data import CALIB_SETS
from fqvit_export.deploy.library import custom_ops_library

CAT = sorted((CIFAR_TEST / "cat").iterdir())[0]


@pytest.fixture(scope="module")
def calib_file(calibrated, tmp_path_factory) -> Path:
    """cifar10_vit, minmax + PTS + LIS (8/8/4), 100 bundled images in batches of 50, seed 0."""
    return save_calibration(calibrated("cifar10_vit", pts=True, lis=True, attn_bits=4),
                            tmp_path_factory.mktemp("calib") / "calib.pt")


def _one_line_error(capsys, code: int, *needles: str) -> str:
    """Assert the command failed with exit 2 and one error line, ``fqvit-export: error: ...``, the last on stderr
    (progress notes may come before it) and holding every needle; returns the line."""
    lines = capsys.readouterr().err.splitlines()
    assert code == 2, lines
    errors = [line for line in lines if line.startswith("fqvit-export: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in "".join(lines), lines
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


# --- item 4: --calib FILE and the options that contradict it ---------------------------------------------------

@pytest.mark.parametrize("extra, needles", [
    (["--w-bits", "6", "--quant-method", "omse"],
     ["--w-bits 6 (the file: 8)", "--quant-method omse (the file: minmax)"]),
    (["--a-bits", "4", "--attn-bits", "3"], ["--a-bits 4 (the file: 8)", "--attn-bits 3 (the file: 4)"]),
    (["--calib-size", "50", "--seed", "1"], ["--calib-size 50 (the file: 100)", "--seed 1 (the file: 0)"]),
    (["--calib-dir", str(CIFAR_TEST)], ["--calib-dir", "the bundled cifar10, 500 images"]),
    (["--img-size", "64", "--model-kwargs", "depth=2"],
     ["--img-size 64 (the file: 32x32)", "--model-kwargs depth=2 (the file: {})"]),
])
def test_calib_file_refuses_contradicting_options(calib_file, tmp_path, capsys, extra, needles):
    out = tmp_path / "copy.pt"
    code = main(["calibrate", "cifar10_vit", "--calib", str(calib_file), *extra, "-o", str(out)])
    _one_line_error(capsys, code, f"{calib_file} contradicts", "leave these options out", *needles)
    assert not out.exists()


def test_calib_file_refusal_in_export(calib_file, tmp_path, capsys):
    code = main(["cifar10_vit", "--calib", str(calib_file), "--w-bits", "6", "-o", str(tmp_path / "m.onnx")])
    _one_line_error(capsys, code, "--w-bits 6 (the file: 8)")
    assert list(tmp_path.iterdir()) == []


def test_calib_file_accepts_the_options_it_holds(calib_file, tmp_path, capsys):
    """Options given with their file's values (defaults spelled out included) pass; --labels renames the classes."""
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"class {i}\n" for i in range(10)))
    out = tmp_path / "copy.pt"
    assert main(["calibrate", "cifar10_vit", "--calib", str(calib_file), "--w-bits", "8", "--a-bits", "8",
                 "--quant-method", "minmax", "--pts", "--lis", "--attn-bits", "4", "--calib-size", "100",
                 "--calib-batch-size", "50", "--seed", "0", "--calib-dir", str(CALIB_SETS["cifar10"]),
                 "--labels", str(labels), "-o", str(out)]) == 0, capsys.readouterr().err
    assert torch.load(out, weights_only=True)["labels"][9] == "class 9"


# --- item 5: dynamic image size ----------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["cifar10_vit"], ["deit_tiny", "--random-init", "--model-kwargs", "depth=1"]])
def test_dynamic_img_size_refused(tmp_path, capsys, argv):
    kwargs = ["dynamic_img_size=True"] if "--model-kwargs" in argv else ["--model-kwargs", "dynamic_img_size=True"]
    code = main([*argv, *kwargs, "-o", str(tmp_path / "m.onnx")])
    _one_line_error(capsys, code, "dynamic_img_size=True", "one fixed input size", "--model-kwargs img_size=N")
    assert list(tmp_path.iterdir()) == []


# --- item 7: errors that were not one line with exit 2 -----------------------------------------------------------

def test_run_refuses_bad_models_images_and_top(exported_vit, tmp_path, capsys):
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(exported_vit.read_bytes()[:5000])
    _one_line_error(capsys, main(["run", str(truncated), str(CAT)]), "is not an ONNX model")
    _one_line_error(capsys, main(["run", str(exported_vit), str(CIFAR_TEST / "cat")]), "a folder, not an image")
    for top in ("-1", "0"):
        _one_line_error(capsys, main(["run", str(exported_vit), str(CAT), "--top", top]), "--top must be at least 1")


def test_non_image_among_calibration_images(tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    for src in sorted((CIFAR_TEST / "cat").iterdir())[:3]:
        shutil.copy(src, images / src.name)
    (images / "broken.jpg").write_text("not a JPEG")
    code = main(["calibrate", "cifar10_vit", "--calib-dir", str(images), "--calib-size", "4", "-o",
                 str(tmp_path / "c.pt")])
    _one_line_error(capsys, code, "broken.jpg")
    assert not (tmp_path / "c.pt").exists()


@pytest.mark.parametrize("content, needles", [
    (b"cat\ndog\n", ["has 2 labels; the model has 10 classes"]),
    (b"\n\n", ["holds no labels"]),
    (b"chat\nchien \xe9\n", ["is not UTF-8 text"]),
])
def test_bad_labels_refused_before_calibrating(tmp_path, capsys, monkeypatch, content, needles):
    from fqvit_export.models.quantized import QuantModel

    def no_calibration(*args, **kwargs):
        raise AssertionError("calibration ran before the labels were checked")
    monkeypatch.setattr(QuantModel, "calibrate", no_calibration)
    labels = tmp_path / "labels.txt"
    labels.write_bytes(content)
    code = main(["calibrate", "cifar10_vit", "--labels", str(labels), "-o", str(tmp_path / "c.pt")])
    _one_line_error(capsys, code, str(labels), *needles)
    assert not (tmp_path / "c.pt").exists()


@pytest.mark.parametrize("argv, needles", [
    (["cifar10_vit", "--model-kwargs", "foo=bar=baz"], ["bad --model-kwargs for cifar10_vit", "'foo'"]),
    (["cifar10_vit", "--img-size", "16"], ["built for 32x32 images, not 16x16", "leave --img-size out"]),
    (["deit_tiny", "--random-init", "--img-size", "160"], ["built for 224x224 images, not 160x160",
                                                           "--model-kwargs img_size=N"]),
    (["deit_tiy"], ["unknown model 'deit_tiy'; did you mean deit_tiny?"]),
])
def test_model_errors(tmp_path, capsys, argv, needles):
    code = main([*argv, "-o", str(tmp_path / "m.onnx"), "--calib-size", "2"])
    line = _one_line_error(capsys, code, *needles)
    assert "(--img-size)" not in line
    if argv[0].startswith("cifar10"):  # bundled weights load only into their own shapes: no --model-kwargs advice
        assert "--model-kwargs img_size" not in line
    assert list(tmp_path.iterdir()) == []


def test_pickled_weights_refused_plainly(tmp_path, capsys):
    import argparse
    weights = tmp_path / "w.pth"
    torch.save({"model": {}, "args": argparse.Namespace(lr=0.1)}, weights)
    line = _one_line_error(capsys, main(["cifar10_vit", "--weights", str(weights), "-o", str(tmp_path / "m.onnx")]),
                           "is not a plain checkpoint", "was not loaded")
    assert "weights_only" not in line and "trust" not in line


def test_no_space_left_names_the_file(calib_file, tmp_path, capsys, monkeypatch):
    """ENOSPC while writing: one line naming the output, and neither the file nor its temporary is left."""
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(Path, "write_bytes", full)
    out = tmp_path / "copy.pt"
    code = main(["calibrate", "cifar10_vit", "--calib", str(calib_file), "-o", str(out)])
    _one_line_error(capsys, code, f"cannot write {out}: No space left on device")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(custom_ops_library() is None, reason="a bundle needs the kernel library")
def test_bundle_into_cwd_and_no_space(exported_vit, tmp_path, capsys, monkeypatch):
    """``bundle -o .`` writes into the working directory and names it; a full disk names the bundle, leaves
    nothing."""
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    assert main(["bundle", str(exported_vit), "-o", "."]) == 0
    out = capsys.readouterr().out
    assert f"wrote bundle {here}" in out and "PosixPath" not in out and (here / "manifest.json").is_file()

    from fqvit_export.deploy import bundle

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(bundle.shutil, "copyfile", full)
    target = tmp_path / "new"
    _one_line_error(capsys, main(["bundle", str(exported_vit), "-o", str(target)]),
                    f"cannot write {target}: No space left on device")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here"]


@pytest.mark.skipif(custom_ops_library() is None, reason="a bundle needs the kernel library")
def test_bundle_force_replaces_only_a_bundle(exported_vit, tmp_path, capsys):
    """--force replaces an earlier bundle; a folder holding anything else (the source model, notes) is refused and
    keeps every file."""
    out = tmp_path / "handoff"
    assert main(["bundle", str(exported_vit), "-o", str(out)]) == 0
    assert main(["bundle", str(exported_vit), "-o", str(out), "--force"]) == 0
    source = out / "source.onnx"
    shutil.copy(exported_vit, source)
    (out / "notes.txt").write_text("mine")
    capsys.readouterr()
    code = main(["bundle", str(source), "-o", str(out), "--force"])
    _one_line_error(capsys, code, "not part of a bundle (notes.txt, source.onnx)", "choose a new or empty folder")
    assert source.is_file() and (out / "notes.txt").read_text() == "mine" and (out / "manifest.json").is_file()


@pytest.mark.parametrize("failure", ["interrupt in the parity check", "disk full writing the model"])
def test_failed_export_leaves_nothing(calib_file, tmp_path, capsys, monkeypatch, failure):
    """Ctrl-C in the parity phase (after the model was built), or ENOSPC while writing it: no model, report or
    temporary file is left, and a full disk is one line naming the model."""
    import onnx

    import fqvit_export.api

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if failure.startswith("interrupt"):
        monkeypatch.setattr(fqvit_export.api, "parity_check", interrupted)
    else:
        monkeypatch.setattr(onnx, "save", full)
    model = tmp_path / "m.onnx"
    code = main(["cifar10_vit", "--calib", str(calib_file), "--no-simplify", "-o", str(model), "--report",
                 str(tmp_path / "r.json")])
    if failure.startswith("interrupt"):
        assert code == 130 and "interrupted" in capsys.readouterr().err
    else:
        _one_line_error(capsys, code, f"cannot write {model}: No space left on device")
    assert list(tmp_path.iterdir()) == []
