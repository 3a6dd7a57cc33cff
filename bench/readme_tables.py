"""Render the README's result tables from the committed JSON files under bench/results/.

    python bench/readme_tables.py                 # print them
    python bench/readme_tables.py --write README.md  # replace each <!-- name --> ... <!-- /name --> block
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
FQVIT_VIT = {"minmax": (77.41, 78.49, 77.95), "ema": (77.70, 78.49, 77.97), "percentile": (78.05, 78.39, 77.77),
             "omse": (78.51, 78.88, 77.99)}  # the official FQ-ViT code on cifar10_vit (../shared/FIELD-NOTES.md)
VARIANTS = ("", "+pts", "+pts+lis")
NAMES = {"minmax": "MinMax", "ema": "EMA", "percentile": "Percentile", "omse": "OMSE"}


def _load(name: str) -> dict:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else {}


def accuracy() -> str:
    """FQ-ViT's layout: one row per method and variant, one column per model, then the official code's numbers."""
    res = {**_load("accuracy.json"), **_load("accuracy_swin.json"), **_load("accuracy_deit224.json")}
    models = [m for m in ("cifar10_vit", "cifar10_swin", "cifar10_deit_tiny224") if m in res]
    lines = ["| method | W/A/Attn bits | " + " | ".join(models) + " | FQ-ViT code, cifar10_vit |",
             "|---|---|" + "---|" * (len(models) + 1)]
    cell = lambda m, row: f"{res[m][row]['top1']:.2f}" if row in res[m] else "-"  # noqa: E731
    lines.append("| FP32 | 32/32/32 | " + " | ".join(cell(m, "fp32") for m in models) + " | 78.65 |")
    labels = {"": ("", "8/8/8"), "+pts": (" w. PTS", "8/8/8"), "+pts+lis": (" w. PTS, LIS", "8/8/4")}
    for method in ("minmax", "ema", "percentile", "omse"):
        for i, v in enumerate(VARIANTS):
            label, bits = labels[v]
            cells = [cell(m, method + v) for m in models] + [f"{FQVIT_VIT[method][i]:.2f}"]
            lines.append(f"| {NAMES[method]}{label} | {bits} | " + " | ".join(cells) + " |")
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


def _cpu(res: dict) -> str:
    """The machine a table was measured on, with the ISA flags that decide the int8 paths."""
    cpu = res.get("cpu") or {"model_name": res.get("processor", "?"), "flags": res.get("isa", [])}
    flags = cpu.get("flags", [])
    amx = "AMX" if any(f.startswith("amx") for f in flags) else "no AMX"
    return f"CPU: {cpu.get('model_name', '?')}, {res.get('threads', '?')} threads; {' '.join(flags)} ({amx})."


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
    lines.append(f"\n{_cpu(res)}")
    return "\n".join(lines)


def peers_table(names: dict[str, str], results: list[dict]) -> str:
    """bench_peers' rows: ms per batch, the ratio to ORT FP32 in brackets (with OpenVINO's hint), and fqvit's time over
    NNCF INT8's, with the quartiles of that ratio taken repetition by repetition where the JSON has them."""
    lines = ["| model | batch | " + " | ".join(f"{names[e]} ms (x ORT FP32)" for e in names) + " | fqvit / NNCF INT8 |",
             "|---|---|" + "---|" * (len(names) + 1)]
    for row in results:
        cells = []
        for e in names:
            r = row["engines"][e]
            hint = f", {r['hint'].lower()}" if "hint" in r else ""
            cells.append(f"{r['ms']:.1f}" if e == "ort_fp32" else f"{r['ms']:.1f} ({r['ratio_ort_fp32']:.2f}{hint})")
        fq = row["engines"]["fqvit_lib"]
        paired = fq.get("paired_ratio_ov_int8")
        spread = (f" ({paired['q1']:.2f}-{paired['q3']:.2f}, faster in {paired['faster']}/{paired['reps']})"
                  if paired else "")
        lines.append(f"| {row['model']} | {row['batch']} | " + " | ".join(cells)
                     + f" | {fq['ratio_ov_int8']:.2f}{spread} |")
    return "\n".join(lines)


def peers() -> str:
    res = _load("peers.json")
    if not res:
        return ""
    return peers_table(res["engines"], res["results"]) + (
        f"\n\n{_cpu(res)} {res['reps']} interleaved repetitions, medians"
        + ("; in brackets after fqvit / NNCF INT8, the quartiles of that ratio within each repetition."
           if any("paired_ratio_ov_int8" in r["engines"]["fqvit_lib"] for r in res["results"]) else "."))


def ops() -> str:
    res = _load("ops.json")
    if not res:
        return ""
    lines = ["| op vs baseline | shape | com.fqvit ms | baseline ms | speed-up |", "|---|---|---|---|---|"]
    for r in res["results"]:
        op = f"{r['op']} on {r['x']}" if "x" in r else r["op"]
        lines.append(f"| {op} | {'x'.join(map(str, r['shape']))} | {r['custom_ms']:.3f} | {r['float_ms']:.3f} | "
                     f"{r['ratio']:.2f}x |")
    lines.append(f"\n{_cpu(res)} Batch {res.get('batch', '?')}.")
    return "\n".join(lines)


TABLES = {"accuracy": accuracy, "parity": parity, "speed": speed, "ops": ops, "peers": peers}


def write(readme: Path) -> None:
    """Replace the text between ``<!-- name -->`` and ``<!-- /name -->`` with the freshly rendered table."""
    text = readme.read_text()
    for name, fn in TABLES.items():
        pattern = re.compile(rf"(<!-- {name} -->\n).*?(<!-- /{name} -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"readme_tables.py: {readme} has no <!-- {name} --> ... <!-- /{name} --> block")
        text = pattern.sub(lambda m: m.group(1) + fn() + "\n" + m.group(2), text)
    readme.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", type=Path, metavar="README", help="update the marked tables in this file in place")
    args = ap.parse_args()
    if args.write:
        write(args.write)
    else:
        for name, fn in TABLES.items():
            print(f"<!-- {name} -->\n{fn()}\n<!-- /{name} -->\n")


if __name__ == "__main__":
    main()
