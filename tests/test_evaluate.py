"""``fqvit-export evaluate`` (issue #18): with ``--onnx`` only onnxruntime runs (the quantized PyTorch model is
6-25x slower) unless ``--parity`` (``tests/test_cli.py::test_calibrate_export_evaluate``); the output names the path
that ran and the class-balanced, seeded sample."""
from __future__ import annotations

import json

import pytest

from conftest import CIFAR_TEST
from fqvit_export import api
from fqvit_export.cli import main

def _no_pytorch(monkeypatch) -> None:
    def ran(*args, **kwargs):
        raise AssertionError("the PyTorch model was built")
    for name in ("calibrate", "load_calibration", "build_model"):
        monkeypatch.setattr(api, name, ran)


def test_onnx_runs_alone_and_says_so(exported_vit, tmp_path, monkeypatch, capsys):
    """Before, ``--onnx`` calibrated (or loaded ``--calib``) and ran the quantized PyTorch model first."""
    _no_pytorch(monkeypatch)
    res = tmp_path / "eval.json"
    assert main(["evaluate", "cifar10_vit", "--onnx", str(exported_vit), "--data-dir", str(CIFAR_TEST), "--limit",
                 "20", "--json", str(res)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (f"images: a class-balanced sample of 20 of the 200 images (2 per class of 10 class folders, "
                      f"seed 0) in {CIFAR_TEST}")
    assert len(out) == 2 and out[1].startswith("onnxruntime (cifar10_vit.onnx, ") and "(20 images)" in out[1]
    assert "pytorch" not in "\n".join(out)
    ev = json.loads(res.read_text())
    assert ev["path"] == "onnxruntime" and ev["images"] == 20 and ev["top1"] == ev["onnx"]["top1"]
    assert ev["sample"]["class_balanced"] and ev["sample"]["seed"] == 0 and "parity" not in ev["onnx"]
    assert ev["quant"]["lis"] is True and ev["data_config"]["input_size"] == [3, 32, 32]


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "cifar10_vit", "--parity"], "--parity compares an exported model"),
    (["evaluate", "cifar10_swin", "--onnx", "{model}"], "holds cifar10_vit, not cifar10_swin"),
    (["evaluate", "cifar10_vit", "--onnx", "{model}", "--data-dir", "{tmp}"], "without classes"),
])
def test_evaluate_errors_are_one_line(exported_vit, tmp_path, capsys, argv, message):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "x.jpg").write_bytes((CIFAR_TEST / "cat" / "0000.jpg").read_bytes())
    (tmp_path / "y.jpg").write_bytes((CIFAR_TEST / "dog" / "0000.jpg").read_bytes())
    argv = [a.format(model=exported_vit, tmp=tmp_path) for a in argv]
    if "--data-dir" not in argv:
        argv += ["--data-dir", str(CIFAR_TEST)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fqvit-export: error:") and message in err, err


def test_parity_refuses_another_calibration(exported_vit, capsys):
    """Before, ``--parity`` without the export's ``--calib`` calibrated anew with the default options (minmax, no
    PTS/LIS) and reported the difference between two different models as the export's parity."""
    assert main(["evaluate", "cifar10_vit", "--onnx", str(exported_vit), "--parity", "--calib-size", "10",
                 "--data-dir", str(CIFAR_TEST), "--limit", "10"]) == 2
    out, err = capsys.readouterr()
    last = err.splitlines()[-1]
    assert last.startswith("fqvit-export: error: --parity: ") and "quantization and calibration differ" in last, err
    assert "onnxruntime" not in out


@pytest.mark.parametrize("extra, message", [
    (["--w-bits", "6"], "--w-bits 6 (the model: 8)"),
    (["--quant-method", "omse"], "--quant-method omse (the model: minmax)"),
    (["--calib-dir", str(CIFAR_TEST)], "--calib-dir (nothing is calibrated)"),
])
def test_onnx_alone_refuses_options_it_would_ignore(exported_vit, monkeypatch, capsys, extra, message):
    """Before, ``evaluate --onnx`` without ``--parity`` ignored quantization and calibration options silently."""
    _no_pytorch(monkeypatch)
    assert main(["evaluate", "cifar10_vit", "--onnx", str(exported_vit), "--data-dir", str(CIFAR_TEST), "--limit",
                 "10", *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fqvit-export: error:") and message in err, err


def test_onnx_alone_accepts_the_options_it_holds(exported_vit, monkeypatch, capsys):
    _no_pytorch(monkeypatch)
    assert main(["evaluate", "cifar10_vit", "--onnx", str(exported_vit), "--data-dir", str(CIFAR_TEST), "--limit",
                 "10", "--pts", "--lis", "--w-bits", "8"]) == 0
