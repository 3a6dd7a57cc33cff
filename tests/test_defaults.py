"""Issue #12's defaults: pretrained weights unless told otherwise, a calibration set from the model's domain,
provenance, labels and calibration summary in the metadata, and output files with the user's permissions."""
from __future__ import annotations

import hashlib
import json
import os
import time

import onnx
import pytest
import torch

from conftest import CIFAR_TEST
from fqvit_export.cli import main
from fqvit_export.models.registry import ModelSpec, create

TINY = ["--model-kwargs", "depth=1", "--calib-size", "8", "--calib-batch-size", "8", "--parity-images", "4"]


def _meta(path) -> dict:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def test_hub_default_offline_fails_in_a_second(tmp_path, capsys, monkeypatch):
    """``fqvit-export deit_tiny -o x.onnx`` with no route to the hub: one line naming both ways out, no file."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    out = tmp_path / "x.onnx"
    t = time.perf_counter()
    assert main(["deit_tiny", "-o", str(out)]) == 2
    assert time.perf_counter() - t < 1.0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fqvit-export: error: no weights for deit_tiny"), err
    assert "--weights PATH" in err and "--random-init" in err
    assert list(tmp_path.iterdir()) in ([], [tmp_path / "hub"])


def test_random_init_export(tmp_path, capsys):
    """``--random-init`` works, says so, records ``random``, calibrates an ImageNet model on the ImageNet sample,
    stores ImageNet labels and no local path, and writes the file with the umask's permissions."""
    out = tmp_path / "x.onnx"
    old = os.umask(0o022)
    try:
        assert main(["deit_tiny", "--random-init", "--pts", "--lis", "-o", str(out), *TINY]) == 0
    finally:
        os.umask(old)
    err = capsys.readouterr().err
    assert "warning: this model has random weights" in err
    assert "calibrated on 8 images of the bundled imagenet-sample" in err and "--calib-dir" in err
    assert out.stat().st_mode & 0o777 == 0o644
    meta = _meta(out)
    assert json.loads(meta["weights"]) == {"source": "random"}
    cal = json.loads(meta["calibration"])
    assert cal["set"] == "bundled imagenet-sample" and cal["images"] == 8 and cal["set_images"] == 250
    assert len(cal["set_digest"]) == 64 and "dir" not in cal
    labels = json.loads(meta["labels"])
    assert len(labels) == 1000 and labels[0].startswith("tench")
    assert str(tmp_path) not in json.dumps(meta) and "/work" not in json.dumps(meta)
    assert not any(k.startswith("onnxsim") for k in meta) and "onnxsim" not in onnx.load(str(out)).doc_string


def test_weights_file_sha256(tmp_path):
    src = create(ModelSpec("deit_tiny", random_init=True, model_kwargs={"depth": 1}))
    w = tmp_path / "my_deit.pth"
    torch.save(src.state_dict(), w)
    out = tmp_path / "w.onnx"
    assert main(["deit_tiny", "--weights", str(w), "-o", str(out), *TINY]) == 0
    info = json.loads(_meta(out)["weights"])
    assert info == {"source": "file", "file": "my_deit.pth", "sha256": hashlib.sha256(w.read_bytes()).hexdigest()}
    assert json.loads(_meta(out)["model"])["weights"] == "my_deit.pth"


def test_user_labels_and_run_prints_names(tmp_path, capsys):
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"thing {i}\n" for i in range(10)))
    out = tmp_path / "m.onnx"
    assert main(["cifar10_vit", "--labels", str(labels), "-o", str(out), *TINY[2:]]) == 0
    assert json.loads(_meta(out)["labels"]) == [f"thing {i}" for i in range(10)]
    capsys.readouterr()
    imgs = sorted((CIFAR_TEST / "cat").iterdir())[:2]
    assert main(["run", str(out), *map(str, imgs), "--top", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(line.count("thing ") == 3 and "%" in line for line in lines)
    labels.write_text("a\nb\n")
    assert main(["cifar10_vit", "--labels", str(labels), "-o", str(tmp_path / "n.onnx"), *TINY[2:]]) == 2
    assert "has 2 labels; the model has 10 classes" in capsys.readouterr().err


def test_bundled_model_keeps_cifar10(calibrated):
    cal = calibrated("cifar10_vit", pts=True)
    assert cal.calib_info["set"] == "bundled cifar10" and cal.labels[3] == "cat"
    assert cal.weights == {"source": "bundled", "name": "cifar10_vit"}


def test_calibration_file_keeps_provenance(tmp_path, calibrated):
    from fqvit_export.api import load_calibration, save_calibration
    cal = calibrated("cifar10_swin", pts=True)
    save_calibration(cal, tmp_path / "c.pt")
    back = load_calibration(tmp_path / "c.pt")
    assert back.weights == cal.weights and back.labels == cal.labels and back.calib_info == cal.calib_info
    assert back.calib_dir == cal.calib_dir


def test_quant_method_help_names_every_observer():
    from fqvit_export.cli import QUANT_METHODS
    from fqvit_export.quant.observers import OBSERVERS
    assert QUANT_METHODS.split(" | ") == list(OBSERVERS)


def test_offline_default_fails_before_importing_torch(tmp_path):
    """The real command: the check runs before torch and timm are imported, so it answers at once."""
    import subprocess
    import sys
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    code = ("import sys; from fqvit_export.cli import main; rc = main(['deit_tiny', '-o', sys.argv[1]]); "
            "assert 'torch' not in sys.modules and 'timm' not in sys.modules, 'imported torch'; sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "x.onnx")], capture_output=True, text=True,
                          env=env)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("fqvit-export: error: no weights for deit_tiny") and proc.stderr.count("\n") == 1
    assert not (tmp_path / "x.onnx").exists()


def test_model_kwargs_img_size_sets_the_data_size(tmp_path):
    """``--model-kwargs img_size=64`` builds a 64 px model, so calibration and metadata use 64 px too; a distilled
    model goes through the CLI (its classifier is a pair of heads)."""
    out = tmp_path / "d.onnx"
    assert main(["deit_tiny_distilled_patch16_224", "--random-init", "--pts", "--lis", "-o", str(out),
                 "--model-kwargs", "depth=1", "img_size=64", *TINY[2:]]) == 0
    meta = _meta(out)
    assert json.loads(meta["data_config"])["input_size"] == [3, 64, 64] and meta["num_classes"] == "1000"


def test_quantized_forward_in_chunks_is_bit_identical(calibrated):
    """QuantModel runs large batches in passes of ``max_batch`` images: the logits are those of one pass."""
    cal = calibrated("cifar10_vit", pts=True, lis=True, attn_bits=4)
    x = torch.randn(11, 3, 32, 32)
    chunked = cal.qmodel(x)
    old = cal.qmodel.max_batch
    try:
        cal.qmodel.max_batch = 64
        whole = cal.qmodel(x)
    finally:
        cal.qmodel.max_batch = old
    assert old < 11 and torch.equal(chunked, whole)
