"""How long each phase of ``fqvit-export MODEL --pts --lis`` takes, next to the FP32 forward of the same images.

Phases, as the command runs them: ``model`` (build the timm model), ``images`` (read and preprocess the calibration
images), ``calibration`` (FQ-ViT's observers over them, PTS alpha search and the LIS pass on the last batch),
``export`` (trace the graph, ``onnx.checker`` with full check), ``simplification`` (onnxsim and its check),
``write`` and ``parity`` (PyTorch vs onnxruntime on ``--parity-images`` images, the command's default 100). The
reference ``fp32_forward`` is the float timm model on the same calibration batches, timed in the same run, so
``x_fp32_forward`` says whether a phase is out of proportion to the network's own cost. Weights are random
(``--random-init``: no pretrained weights can be had here), which changes no phase's cost.

    .venv/bin/python bench/bench_phases.py --model deit_base --data-dir ../shared/data/imagenet-sample \\
        --calib-size 1000 --out bench/results/phases_deit_base.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import onnx
import torch

from fqvit_export.api import Calibrated, evaluate
from fqvit_export.data import calibration_batches, eval_loader, resolve_data_config
from fqvit_export.export.onnx_export import build_onnx, simplify_model
from fqvit_export.models.registry import ModelSpec, create, weights_info
from fqvit_export.models.quantized import QuantModel
from fqvit_export.quant.point import QuantConfig
from fqvit_export.deploy.session import open_session, parity

ROOT = Path(__file__).resolve().parents[1]


def _timed(phases: dict, name: str, fn):
    t = time.perf_counter()
    out = fn()
    phases[name] = time.perf_counter() - t
    print(f"{name}: {phases[name]:.1f} s", file=sys.stderr, flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="deit_base")
    p.add_argument("--data-dir", type=Path, required=True, help="calibration images (ImageFolder or flat folder)")
    p.add_argument("--calib-size", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--parity-images", type=int, default=100)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "phases_deit_base.json")
    args = p.parse_args(argv)

    torch.set_num_threads(os.cpu_count() or 1)
    config = QuantConfig(pts=True, lis=True, attn_bits=4)
    spec = ModelSpec(args.model, random_init=True)
    phases: dict[str, float] = {}
    model = _timed(phases, "model", lambda: create(spec))
    data_cfg = resolve_data_config(model)
    batches = _timed(phases, "images", lambda: calibration_batches(args.data_dir, data_cfg, args.calib_size,
                                                                   args.batch_size, 0))
    with torch.inference_mode():
        _timed(phases, "fp32_forward", lambda: [model(x) for x in batches])
    qmodel = QuantModel(model, config)
    _timed(phases, "calibration", lambda: qmodel.calibrate(batches, progress=False))
    cal = Calibrated(spec, config, data_cfg, qmodel, {"set": args.data_dir.name}, weights_info(spec), None,
                     args.data_dir)
    proto, _ = _timed(phases, "export", lambda: build_onnx(cal, simplify=False))
    proto, ok = _timed(phases, "simplification", lambda: simplify_model(proto))
    if ok:
        onnx.checker.check_model(proto, full_check=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        _timed(phases, "write", lambda: onnx.save(proto, str(path)))

        def _parity() -> dict:
            loader = eval_loader(args.data_dir, data_cfg, batch_size=50, limit=args.parity_images)
            ref = evaluate(qmodel, loader, progress=False)["logits"]
            return parity(evaluate(open_session(path), loader, progress=False)["logits"], ref)
        par = _timed(phases, "parity", _parity)
    images = sum(len(b) for b in batches)
    fp32 = phases["fp32_forward"]
    result = {
        "model": args.model, "config": config.label(), "calib_images": images, "data_dir": args.data_dir.name,
        "parity_images": par["images"], "parity_identical_logits": par["identical_logits"],
        "simplified": ok, "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "machine": platform.machine(),
        "seconds": {k: round(v, 2) for k, v in phases.items()},
        "x_fp32_forward": {k: round(v / fp32, 2) for k, v in phases.items()},
        "total_s": round(sum(v for k, v in phases.items() if k != "fp32_forward"), 1),
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["x_fp32_forward"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
