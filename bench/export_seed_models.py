"""Export FQ-ViT's eight full-size architectures with PTS + LIS and run each once in onnxruntime.

No pretrained ImageNet weights can be had here, so the models have timm's random initialisation; calibration uses a
few real photos of ``../shared/data/imagenet-sample``. Records export time, file size, node counts and whether
onnxruntime (function bodies, and the kernel library when built) reproduces the PyTorch logits bit for bit.

    python bench/export_seed_models.py --out bench/results/seed_models.json
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from fqvit_export.api import calibrate
from fqvit_export.data import eval_loader
from fqvit_export.export.onnx_export import export_onnx
from fqvit_export.models.registry import FQVIT_MODELS, ModelSpec
from fqvit_export.quant.point import QuantConfig
from fqvit_export.deploy.session import Session

IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-sample"


def run_one(name: str, images: Path, n_images: int, workdir: Path) -> dict:
    t0 = time.perf_counter()
    cal = calibrate(ModelSpec(name, random_init=True), QuantConfig(pts=True, lis=True, attn_bits=4), calib_dir=images,
                    calib_size=n_images, batch_size=n_images, progress=False)
    t1 = time.perf_counter()
    res = export_onnx(cal, workdir / f"{name}.onnx", force=True)
    t2 = time.perf_counter()
    x = next(iter(eval_loader(images, cal.data_cfg, batch_size=2)))[0]
    ref = cal.qmodel(x).numpy()
    sess = Session(res.path, library="off")
    out = sess(x)
    row = {"timm": FQVIT_MODELS[name], "calibrate_s": round(t1 - t0, 1), "export_s": round(t2 - t1, 1),
           "size_mb": round(res.size_bytes / 2**20, 2), "nodes": sum(res.ops.values()),
           "com.fqvit": {k.split("::")[1]: v for k, v in res.ops.items() if k.startswith("com.fqvit")},
           "int_matmuls": res.ops.get("MatMulInteger", 0), "simplified": res.simplified,
           "ort_equal_function_bodies": bool(np.array_equal(out, ref))}
    lib = Session(res.path, library="auto")
    if lib.custom_ops:
        row["ort_equal_kernel_library"] = bool(np.array_equal(lib(x), ref))
    res.path.unlink()
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(FQVIT_MODELS), choices=list(FQVIT_MODELS))
    ap.add_argument("--data-dir", "--images", dest="images", type=Path, default=IMAGES,
                    help="calibration photos (default: the ImageNet sample in ../shared)")
    ap.add_argument("--calib-images", type=int, default=4)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            results[name] = run_one(name, args.images, args.calib_images, Path(tmp))
            args.out.write_text(json.dumps(results, indent=1))
            r = results[name]
            print(f"{name:11s} export {r['export_s']:6.1f}s  {r['size_mb']:8.2f} MB  {r['nodes']:5d} nodes  "
                  f"{r['com.fqvit']}  bit-exact: {r['ort_equal_function_bodies']}", flush=True)


if __name__ == "__main__":
    main()
