"""``fqvit-export MODEL ... -o model.onnx``: calibrate (or load ``--calib``), export, check parity, summarise."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["add_export_args", "export_command"]


def add_export_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("export")
    g.add_argument("-o", "--output", type=Path, required=True, help="ONNX file to write")
    g.add_argument("--force", action="store_true", help="overwrite an existing output")
    g.add_argument("--no-simplify", dest="simplify", action="store_false", help="skip onnxsim")
    g.add_argument("--report", type=Path, help="write metadata, op counts and parity results as JSON")
    g.add_argument("--parity-images", type=int, default=100,
                   help="calibration-set images on which to compare onnxruntime with PyTorch (0: skip)")
    g.add_argument("--bundle", type=Path, metavar="DIR",
                   help="also write a hand-off bundle here (as 'fqvit-export bundle': library, Triton, README)")


def _check_output(path: Path, force: bool) -> None:
    """Fail before the (long) calibration when the output cannot be written."""
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass --force to overwrite")
    if path.is_dir():
        raise IsADirectoryError(21, "output is a directory", str(path))
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {path.parent}")
    import os
    if not os.access(path.parent, os.W_OK):
        raise PermissionError(13, "output folder is not writable", str(path.parent))


def _parity(cal, path: Path, images: int) -> dict:
    from ..api import evaluate
    from ..api import default_calib_set
    from ..data import CALIB_SETS, eval_loader
    from ..runtime import open_session, parity
    root = cal.calib_dir or CALIB_SETS[default_calib_set(cal.spec)]
    loader = eval_loader(root, cal.data_cfg, batch_size=50, limit=images)
    sess = open_session(path)
    ref = evaluate(cal.qmodel, loader, progress=False)["logits"]
    out = evaluate(sess, loader, progress=False)["logits"]
    return {**parity(out, ref), "custom_ops": sess.custom_ops, "images_from": cal.calib_info.get("set", root.name)}


def export_command(args) -> None:
    from ..cli import get_calibrated
    from .onnx_export import export_onnx
    _check_output(args.output, args.force)
    if args.report is not None:
        _check_output(args.report, True)
    if args.bundle is not None:
        from ..bundle import check_bundle_dir
        check_bundle_dir(args.bundle, args.force)
    cal = get_calibrated(args)
    print(f"exporting {cal.spec.name} [{cal.config.label()}] ...", file=sys.stderr)
    res = export_onnx(cal, args.output, simplify=args.simplify, force=args.force)
    par = _parity(cal, args.output, args.parity_images) if args.parity_images > 0 else None
    custom = {k: v for k, v in res.ops.items() if k.startswith("com.fqvit")}
    print(f"wrote {res.path} ({res.size_bytes / 2**20:.2f} MiB, {sum(res.ops.values())} nodes"
          f"{', simplified' if res.simplified else ''})")
    print("ops: " + ", ".join(f"{k} {v}" for k, v in res.ops.items()))
    if custom:
        print("com.fqvit: " + ", ".join(f"{k.split('::')[1]} {v}" for k, v in custom.items()))
    if par is not None:
        print(f"parity vs PyTorch on {par['images']} images: top-1 agreement {par['top1_agreement']:.1f}%, "
              f"max |dlogit| {par['max_abs_logit_diff']:.4g}, mean |dlogit| {par['mean_abs_logit_diff']:.3g} "
              f"({'custom-op library' if par['custom_ops'] else 'ONNX function bodies'})")
    if args.report is not None:
        from ..api import atomic_write
        report = {"path": str(res.path), "size_bytes": res.size_bytes, "ops": res.ops, "simplified": res.simplified,
                  "metadata": res.metadata, "parity": par}
        atomic_write(args.report, lambda tmp: Path(tmp).write_text(json.dumps(report, indent=1)))
    if args.bundle is not None:
        from ..bundle import write_bundle
        print(f"wrote bundle {write_bundle(args.output, args.bundle, force=args.force)}")
