"""Reproduce FQ-ViT's results table on the CIFAR-10 models: FP32, and per calibrator plain / PTS / PTS+LIS.

Calibration: ``--calib-size`` (1000) images of ``<data>/train`` drawn with ``--seed`` (0), batches of 100, as
FQ-ViT. Evaluation: every image of ``<data>/test``. Results go to a JSON file (written after every row, so a long
run keeps what it finished) and a markdown table on stdout.

    python bench/accuracy_table.py --models cifar10_vit cifar10_swin --out bench/results/accuracy.json
    python bench/accuracy_table.py --models cifar10_deit_tiny224 --rows fp32 minmax minmax+pts+lis \
        --out bench/results/accuracy_deit224.json
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from fqvit_export.api import calibrate, evaluate
from fqvit_export.data import DataOptions, eval_loader
from fqvit_export.models.registry import ModelSpec, create
from fqvit_export.data import resolve_data_config
from fqvit_export.quant.point import QuantConfig

SHARED = Path(__file__).resolve().parents[2] / "shared"
# cifar10_deit_tiny224 stays outside the repo: used as deit_tiny + --weights + its data options.
EXTERNAL = {"cifar10_deit_tiny224": (
    ModelSpec("deit_tiny", weights=str(SHARED / "models" / "cifar10_deit_tiny224.safetensors"),
              model_kwargs={"num_classes": 10}),
    DataOptions(crop_pct=1.0, interpolation="bicubic", mean=(0.4914, 0.4822, 0.4465), std=(0.247, 0.2435, 0.2616)))}
METHODS = ("minmax", "ema", "percentile", "omse")
VARIANTS = {"": {}, "+pts": {"pts": True}, "+pts+lis": {"pts": True, "lis": True, "attn_bits": 4}}
ALL_ROWS = ["fp32"] + [m + v for m in METHODS for v in VARIANTS]


def _config(row: str) -> QuantConfig:
    method, _, rest = row.partition("+")
    return QuantConfig(method=method, **VARIANTS["+" + rest if rest else ""])


def _test_tensor(root: Path, data_cfg: dict, cache: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode and preprocess the test set once per data config (accuracy only; nothing here is timed)."""
    key = json.dumps(data_cfg, sort_keys=True)
    if key not in cache:
        xs, ys = zip(*eval_loader(root, data_cfg, batch_size=500, workers=2))
        cache[key] = (torch.cat(xs), torch.cat(ys))
    return cache[key]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["cifar10_vit", "cifar10_swin"])
    ap.add_argument("--rows", nargs="+", default=ALL_ROWS, choices=ALL_ROWS)
    ap.add_argument("--data-dir", "--data", dest="data", type=Path, default=SHARED / "data" / "cifar10",
                    help="CIFAR-10 as train/ and test/ ImageFolder trees")
    ap.add_argument("--calib-size", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="evaluate on the first N test images only")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    cache: dict = {}
    for name in args.models:
        spec, opts = EXTERNAL.get(name, (ModelSpec(name), DataOptions()))
        model = create(spec)
        data_cfg = resolve_data_config(model, opts)
        x, y = _test_tensor(args.data / "test", data_cfg, cache)
        if args.limit:
            x, y = x[: args.limit], y[: args.limit]
        loader = list(zip(x.split(100), y.split(100)))
        for row in args.rows:
            t0 = time.time()
            if row == "fp32":
                res = evaluate(model, loader, desc=f"{name} fp32")
                extra = {}
            else:
                cal = calibrate(spec, _config(row), opts, calib_dir=args.data / "train", calib_size=args.calib_size,
                                seed=args.seed)
                res = evaluate(cal.qmodel, loader, desc=f"{name} {row}")
                extra = {"calibration": cal.calib_info, "quant": cal.config.to_dict()}
            res.pop("logits")
            results.setdefault(name, {})[row] = {**res, **extra, "seconds": round(time.time() - t0, 1)}
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=1))
            print(f"{name:22s} {row:22s} top1 {res['top1']:6.2f}  top5 {res['top5']:6.2f}", flush=True)
    print(markdown(results))


def markdown(results: dict) -> str:
    """FQ-ViT-style table: one row per method, columns plain / w. PTS / w. PTS, LIS per model."""
    lines = ["| method | " + " | ".join(f"{m} plain (8/8/8) | {m} w. PTS (8/8/8) | {m} w. PTS, LIS (8/8/4)"
                                           for m in results) + " |",
             "|---|" + "---|" * (3 * len(results))]
    fp = ["FP32"] + [f"{results[m]['fp32']['top1']:.2f} | | " if "fp32" in results[m] else " | | " for m in results]
    lines.append("| " + " | ".join(fp) + " |")
    for method in METHODS:
        cells = []
        for m in results:
            for v in VARIANTS:
                r = results[m].get(method + v)
                cells.append(f"{r['top1']:.2f}" if r else "")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
