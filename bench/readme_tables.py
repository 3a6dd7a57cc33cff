"""Render the README's result tables from the committed JSON files under bench/results/.

    python bench/readme_tables.py
"""
from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
FQVIT_VIT = {"minmax": (77.41, 78.49, 77.95), "ema": (77.70, 78.49, 77.97), "percentile": (78.05, 78.39, 77.77),
             "omse": (78.51, 78.88, 77.99)}  # the official FQ-ViT code on cifar10_vit (../shared/FIELD-NOTES.md)
VARIANTS = ("", "+pts", "+pts+lis")


def _load(name: str) -> dict:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else {}


def accuracy() -> str:
    res = {**_load("accuracy.json"), **_load("accuracy_swin.json"), **_load("accuracy_deit224.json")}
    models = [m for m in ("cifar10_vit", "cifar10_swin", "cifar10_deit_tiny224") if m in res]
    head = ["method"] + [f"{m} {v}" for m in models for v in ("plain 8/8/8", "PTS 8/8/8", "PTS+LIS 8/8/4")]
    head.append("FQ-ViT code, cifar10_vit (plain / PTS / PTS+LIS)")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    fp = ["FP32"] + sum(([f"{res[m]['fp32']['top1']:.2f}" if "fp32" in res[m] else "", "", ""] for m in models), [])
    lines.append("| " + " | ".join(fp + ["78.65"]) + " |")
    for method in ("minmax", "ema", "percentile", "omse"):
        cells = [method]
        for m in models:
            cells += [f"{res[m][method + v]['top1']:.2f}" if method + v in res[m] else "-" for v in VARIANTS]
        cells.append(" / ".join(f"{v:.2f}" for v in FQVIT_VIT[method]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parity() -> str:
    lines = ["| model | config | images | PyTorch top-1 | onnxruntime top-1 | top-1 agreement | identical logits | "
             "max abs logit diff | kernels |", "|---|---|---|---|---|---|---|---|---|"]
    for path in sorted(RESULTS.glob("parity_*.json")):
        r = json.loads(path.read_text())
        o, p = r["onnx"], r["onnx"]["parity"]
        q = r["quant"]
        cfg = f"{q['method']}{'+pts' if q['pts'] else ''}{'+lis' if q['lis'] else ''} ({q['w_bits']}/{q['a_bits']}/" \
              f"{q['attn_bits']})"
        lines.append(f"| {r['model']} | {cfg} | {r['images']} | {r['top1']:.2f} | {o['top1']:.2f} | "
                     f"{p['top1_agreement']:.2f}% | {p['identical_logits']:.2f}% | {p['max_abs_logit_diff']:.3g} | "
                     f"{'library' if o['custom_ops'] else 'function bodies'} |")
    return "\n".join(lines)


def speed() -> str:
    res = _load("models.json")
    if not res:
        return ""
    names = res["variants"]
    lines = ["| model | batch | " + " | ".join(f"{names[v]} ms (x FP32)" for v in names) + " |",
             "|---|---|" + "---|" * len(names)]
    for row in res["results"]:
        cells = [f"{row['variants'][v]['ms']:.1f} ({row['variants'][v]['ratio']:.2f})" for v in names]
        lines.append(f"| {row['model']} | {row['batch']} | " + " | ".join(cells) + " |")
    prof = res.get("profile", {}).get("variants", {}).get("fqvit_lib")
    if prof:
        top = ", ".join(f"{t['op']} {100 * t['share']:.0f}%" for t in prof["top_ops"][:6])
        lines.append(f"\nProfile ({res['profile']['model']}, batch {res['profile']['batch']}, with the library): "
                     f"com.fqvit ops take {100 * prof['fqvit_share']:.1f}% of node time; top op types: {top}.")
    return "\n".join(lines)


def ops() -> str:
    res = _load("ops.json")
    if not res:
        return ""
    lines = ["| op | shape | kernel ms | onnxruntime float ms | speed-up |", "|---|---|---|---|---|"]
    for r in res["results"]:
        lines.append(f"| {r['op']} | {'x'.join(map(str, r['shape']))} | {r['custom_ms']:.3f} | {r['float_ms']:.3f} | "
                     f"{r['ratio']:.2f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    for title, fn in (("accuracy", accuracy), ("parity", parity), ("speed", speed), ("ops", ops)):
        print(f"<!-- {title} -->\n{fn()}\n")
