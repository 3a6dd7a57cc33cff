"""Side-by-side CPU speed of exported fqvit models, e.g. one network exported before and after an exporter change,
or one model with two builds of the kernel library.

Each ``--model LABEL=PATH`` runs with the ``com.fqvit`` kernel library (``--custom-ops off``: on the models' ONNX
function bodies) in ``bench_models.py``'s session (``--threads`` intra-op threads, ``SPINNING``, ``disable_quant_qdq``),
on the same input: random N(0, 1) pixels of the model's input shape, batch ``--batches`` (default 1 and 8). With
``--library LABEL=PATH`` (repeated) every model runs with each of those library files instead of the installed one
(e.g. a build of an older commit: ``git worktree add``, then ``tools/build_custom_ops.sh`` there). The variants must
compute the same logits: the script checks that every one gives the first one's logits bit for bit before timing (a
timing of different work would mean nothing). Repetitions are interleaved as in ``bench_models.time_variants``;
medians in ms, ratio to the first variant. Writes JSON (``--out``, default build/bench/onnx.json) with the CPU's ISA
flags and node counts per file:

    python bench/bench_onnx.py --model before=old.onnx --model after=new.onnx [--batches 1 8] [--reps 11] \\
        [--threads 2] [--custom-ops on|off] [--out build/bench/onnx.json]
    python bench/bench_onnx.py --model m=model.onnx --library old=old/libfqvit_ops.so --library new=new/libfqvit_ops.so
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx

from bench_models import cpu_info, load_avg, make_session, time_variants, write_json  # beside this script

ROOT = Path(__file__).resolve().parents[1]


def _label_path(text: str) -> tuple[str, Path]:
    label, sep, path = text.partition("=")
    if not sep or not label or not path:
        raise argparse.ArgumentTypeError(f"expected LABEL=PATH, got {text!r}")
    if not Path(path).is_file():
        raise argparse.ArgumentTypeError(f"no such file: {path}")
    return label, Path(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=_label_path, action="append", required=True, metavar="LABEL=PATH")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--reps", type=int, default=11)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-rep-s", type=float, default=0.3, help="back-to-back runs per repetition: about this long")
    ap.add_argument("--custom-ops", choices=("on", "off"), default="on",
                    help="off: no kernel library, onnxruntime inlines the ops' function bodies")
    ap.add_argument("--library", type=_label_path, action="append", metavar="LABEL=PATH",
                    help="run every model with each of these kernel library files (default: the installed one)")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "bench" / "onnx.json")
    args = ap.parse_args(argv)
    models = dict(args.model)
    libraries = dict(args.library or [])
    if len(models) != len(args.model) or len(libraries) != len(args.library or []):
        ap.error("labels must differ")
    if libraries and args.custom_ops == "off":
        ap.error("--library needs --custom-ops on")
    # Variant label -> (model, library or None): the model's label, the library's, or both.
    variants = {}
    for mk, mp in models.items():
        for lk, lp in (libraries or {None: None}).items():
            label = mk if lk is None else lk if len(models) == 1 else f"{mk}/{lk}"
            variants[label] = (mp, lp)
    graphs = {k: onnx.load(v, load_external_data=False).graph for k, v in models.items()}
    cpu = cpu_info()
    print(f"CPU {cpu['model_name']} ({cpu['cpus']} CPUs), flags: {' '.join(cpu['flags'])}")
    report = {"description": "median ms per batch over interleaved repetitions; ratio = ms / first variant's ms",
              "command": "python bench/bench_onnx.py " + " ".join(f"--model {k}={v.name}" for k, v in models.items())
              + "".join(f" --library {k}={v.name}" for k, v in libraries.items()) + f" --custom-ops {args.custom_ops}",
              "libraries": {k: str(v) for k, v in libraries.items()},
              "threads": args.threads, "reps": args.reps, "cpu": cpu, "custom_ops": args.custom_ops,
              "nodes": {k: len(g.node) for k, g in graphs.items()},
              "ops": {k: dict(Counter(n.op_type for n in g.node)) for k, g in graphs.items()},
              "results": []}
    variant = "fqvit_lib" if args.custom_ops == "on" else "fqvit_fn"
    sessions = {k: make_session(m, variant, args.threads, library=lib) for k, (m, lib) in variants.items()}
    first = next(iter(sessions))
    shape = [d.dim_value for d in graphs[next(iter(models))].input[0].type.tensor_type.shape.dim[1:]]
    for batch in args.batches:
        x = np.random.default_rng(0).standard_normal((batch, *shape)).astype(np.float32)
        want = sessions[first].run(None, {"input": x})[0]
        for k, s in sessions.items():
            got = s.run(None, {"input": x})[0]
            if not np.array_equal(got, want):
                raise SystemExit(f"bench_onnx.py: {k} gives other logits than {first} (max |d| "
                                 f"{np.abs(got - want).max():.3g}): not the same network")
        before = load_avg()
        times = time_variants(sessions, x, args.reps, args.min_rep_s)
        for k in times:
            times[k]["ratio"] = round(times[k]["ms"] / times[first]["ms"], 3)
        report["results"].append({"batch": batch, "models": times, "load_avg_1min": [before, load_avg()]})
        print(f"batch {batch}: " + ", ".join(f"{k} {t['ms']:.1f} ms ({t['ratio']:.2f})" for k, t in times.items()))
    write_json(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
