"""Command line: the offline default job, calibrate -> export -> evaluate, and one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys

import onnx
import pytest

from conftest import CIFAR_TEST
from fqvit_export.cli import main

CALIB = ["--calib-size", "60", "--calib-batch-size", "30", "--parity-images", "20"]


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    return err[-1] if err else ""


def test_calibrate_export_evaluate(tmp_path, capsys):
    calib = tmp_path / "calib.pt"
    assert main(["calibrate", "cifar10_swin", "--pts", "--lis", "--calib-size", "60", "--calib-batch-size", "30",
                 "-o", str(calib)]) == 0
    onnx_path, report = tmp_path / "m.onnx", tmp_path / "report.json"
    assert main(["cifar10_swin", "--calib", str(calib), "-o", str(onnx_path), "--report", str(report),
                 "--parity-images", "20"]) == 0
    out = capsys.readouterr().out
    assert "com.fqvit:" in out and "PTSLayerNorm 24" in out and "top-1 agreement 100.0%" in out
    rep = json.loads(report.read_text())
    assert rep["parity"]["identical_logits"] == 100.0 and rep["ops"]["com.fqvit::LogIntSoftmax"] == 10
    assert json.loads(rep["metadata"]["quantization"])["pts"] is True
    res = tmp_path / "eval.json"
    assert main(["evaluate", "cifar10_swin", "--calib", str(calib), "--onnx", str(onnx_path), "--parity",
                 "--data-dir", str(CIFAR_TEST), "--limit", "50", "--json", str(res)]) == 0
    ev = json.loads(res.read_text())
    assert {"top1", "top5", "images", "quant", "onnx"} <= set(ev) and ev["images"] == 50
    assert ev["onnx"]["parity"]["top1_agreement"] == 100.0 and ev["onnx"]["top1"] == ev["top1"]
    out = capsys.readouterr().out.splitlines()  # which paths ran, on which sample
    assert "class-balanced sample of 50" in out[0] and out[1].startswith("onnxruntime (m.onnx, ")
    assert out[2].startswith("pytorch quantized: ") and "identical logits 100.00%" in out[2]


def test_default_offline_export(tmp_path, capsys):
    """`fqvit-export cifar10_vit --pts --lis -o model.onnx` works from the bundled weights and images."""
    out = tmp_path / "model.onnx"
    assert main(["cifar10_vit", "--pts", "--lis", "-o", str(out), *CALIB]) == 0
    model = onnx.load(out)
    assert {f.name for f in model.functions} == {"PTSLayerNorm", "LogIntSoftmax", "LISMatMul", "Lookup", "Requantize",
                                                     "QLinear", "ResidualAdd", "LISAttention"}
    assert "wrote" in capsys.readouterr().out


def test_fp32_evaluate(tmp_path):
    res = tmp_path / "fp32.json"
    assert main(["evaluate", "cifar10_vit", "--data-dir", str(CIFAR_TEST), "--limit", "100", "--json", str(res)]) == 0
    assert json.loads(res.read_text())["quant"] is None


@pytest.mark.parametrize("argv, message", [
    (["nosuch_model", "-o", "{tmp}/m.onnx"], "unknown model 'nosuch_model'"),
    (["deit_tiny", "--weights", "{tmp}/missing.pth", "-o", "{tmp}/m.onnx"], "weights file not found"),
    (["cifar10_vit", "-o", "{tmp}/no/such/dir/m.onnx"], "output folder does not exist"),
    (["cifar10_vit", "-o", "{tmp}/exists.onnx"], "exists; pass --force"),
    (["cifar10_vit", "--calib", "{tmp}/none.pt", "-o", "{tmp}/m.onnx"], "calibration file not found"),
    (["cifar10_vit", "--calib-dir", "{tmp}/nodir", "-o", "{tmp}/m.onnx"], "image folder not found"),
    (["cifar10_vit", "--lis", "--attn-bits", "8", "-o", "{tmp}/m.onnx"], "--lis needs --attn-bits"),
    (["evaluate", "cifar10_vit", "--data-dir", "{tmp}/nodir"], "image folder not found"),
    (["run", "{tmp}/none.onnx", "{tmp}/x.jpg"], "ONNX model not found"),
])
def test_errors_are_one_line(tmp_path, capsys, argv, message):
    (tmp_path / "exists.onnx").write_bytes(b"x")
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fqvit-export: error:") and message in err, err
    assert not (tmp_path / "m.onnx").exists()


def test_console_script_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "fqvit_export.cli", "cifar10_vit", "--model-kwargs", "depth=2",
                           "--weights", str(tmp_path / "w.pth"), "-o", str(tmp_path / "m.onnx")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_run_classifies_images(capsys, exported_vit):
    path = exported_vit
    img = sorted((CIFAR_TEST / "cat").iterdir())[0]
    assert main(["run", str(path), str(img), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert len(res[0]["top"]) == 5 and abs(sum(t["prob"] for t in res[0]["top"])) <= 1.0 + 1e-6
