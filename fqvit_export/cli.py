"""Command line: ``fqvit-export MODEL [options] -o model.onnx`` and the calibrate / evaluate / run / bundle /
preprocess commands.

Options follow timm's scripts (``--weights``, ``--model-kwargs``, ``--img-size``, ``--crop-pct``, ``--interpolation``,
``--mean``, ``--std``); a model without bundled weights loads timm's pretrained ones unless ``--weights PATH`` or
``--random-init`` says otherwise. Errors are one line for the user; ``--verbose`` adds the traceback.
"""
from __future__ import annotations

import argparse
import ast
import json
import sys
import traceback
import warnings
from pathlib import Path

__all__ = ["main", "calibrate_main", "evaluate_main", "export_main", "run_main", "bundle_main", "preprocess_main"]

PROG = "fqvit-export"
QUANT_METHODS = "minmax | ema | percentile | omse"
"""The names of ``quant.observers.OBSERVERS``, for the help text (a test keeps them equal)."""


# --- shared option groups ------------------------------------------------------------------------------------------

def _kv(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="FQ-ViT name (deit_tiny ... swin_base), bundled cifar10_vit / cifar10_swin, "
                                 "or any timm VisionTransformer / SwinTransformer name, hub tags included "
                                 "(deit_base_patch16_224.fb_in1k)")
    g = p.add_argument_group("model (default weights: bundled, else timm's pretrained weights from the hub)")
    w = g.add_mutually_exclusive_group()
    w.add_argument("--weights", help="local checkpoint (.pth/.pt/.safetensors, or DeiT-style {'model': ...})")
    w.add_argument("--random-init", action="store_true",
                   help="random weights, for speed and structure checks only (recorded as 'random' in the metadata)")
    g.add_argument("--pretrained", action="store_true", help=argparse.SUPPRESS)  # the default now; kept for old scripts
    g.add_argument("--labels", type=Path, help="class names, one per line (default: CIFAR-10's or ImageNet's)")
    g.add_argument("--model-kwargs", nargs="*", type=_kv, default=[], metavar="K=V",
                   help="timm model kwargs, e.g. num_classes=10 img_size=32")
    d = p.add_argument_group("data (defaults: the model's pretrained config, resolved as timm does)")
    d.add_argument("--img-size", type=int)
    d.add_argument("--crop-pct", type=float)
    d.add_argument("--interpolation", choices=["bicubic", "bilinear", "nearest"])
    d.add_argument("--mean", type=float, nargs=3)
    d.add_argument("--std", type=float, nargs=3)
    p.add_argument("-v", "--verbose", action="store_true", help="show tracebacks on errors")


QUANT_DEFAULTS = {"quant_method": "minmax", "pts": False, "lis": False, "w_bits": 8, "a_bits": 8,
                  "calib_size": 1000, "calib_batch_size": 100, "seed": 0}
"""Defaults of the quantization and calibration options. The parser leaves them ``None`` so that an option the user
gave can be told from one left out (``--calib FILE`` refuses given options that contradict the file);
:func:`_settle_defaults` fills them in before a command runs."""


def add_quant_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("quantization (FQ-ViT)")
    g.add_argument("--quant-method", metavar="NAME",  # checked by QuantConfig (no torch import here)
                   help=f"activation calibrator: {QUANT_METHODS} (default minmax)")
    g.add_argument("--pts", "--ptf", action="store_true", default=None,
                   help="Powers-of-Two Scale for LayerNorm inputs")
    g.add_argument("--lis", action="store_true", default=None, help="Log-Int-Softmax (4-bit log2 attention codes)")
    g.add_argument("--w-bits", type=int, help="weight bits, 2 to 8 (default 8)")
    g.add_argument("--a-bits", type=int, help="activation bits, 2 to 8 (default 8)")
    g.add_argument("--attn-bits", type=int, default=None, help="softmax output bits (default 4 with --lis, else 8)")
    c = p.add_argument_group("calibration")
    c.add_argument("--calib", type=Path, help="load a saved calibration (calib.pt) instead of calibrating; options "
                                              "above that contradict it are refused")
    c.add_argument("--calib-dir", type=Path, help="ImageFolder tree or flat folder (default: a bundled set from the "
                                                  "model's domain: 500 CIFAR-10 train images for the cifar10_* "
                                                  "models, 250 ImageNet photos for the others)")
    c.add_argument("--calib-size", type=int, help="images to calibrate on (default 1000)")
    c.add_argument("--calib-batch-size", type=int, help="default 100")
    c.add_argument("--seed", type=int, help="seed of the calibration draw (default 0)")


def _settle_defaults(args) -> None:
    """Record which quantization and calibration options were given (``args.given``), then fill in the defaults of
    the others (:data:`QUANT_DEFAULTS`)."""
    if not hasattr(args, "quant_method"):  # commands without quantization options
        return
    args.given = {k for k in (*QUANT_DEFAULTS, "attn_bits", "calib_dir") if getattr(args, k) is not None}
    for key, value in QUANT_DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, value)


def _spec_and_data(args):
    from .data import DataOptions
    from .models.registry import ModelSpec
    spec = ModelSpec(args.model, weights=args.weights, random_init=args.random_init,
                     model_kwargs=dict(args.model_kwargs))
    opts = DataOptions(args.img_size, args.crop_pct, args.interpolation, args.mean, args.std)
    return spec, opts


def _quant_config(args):
    from .quant.point import QuantConfig
    attn_bits = args.attn_bits if args.attn_bits is not None else (4 if args.lis else 8)
    return QuantConfig(w_bits=args.w_bits, a_bits=args.a_bits, attn_bits=attn_bits, method=args.quant_method,
                       pts=args.pts, lis=args.lis)


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


_QUANT_FIELDS = {"quant_method": "method", "pts": "pts", "lis": "lis", "w_bits": "w_bits", "a_bits": "a_bits",
                 "attn_bits": "attn_bits"}
"""Quantization option -> its :class:`~fqvit_export.quant.point.QuantConfig` field (``to_dict`` key, as stored in
calib.pt and the model card)."""


def _given_differences(args, held: dict, whose: str) -> list[str]:
    """The options in ``held`` (option -> the value ``whose`` holds) that the user gave with another value, each as
    ``--flag VALUE (the file: VALUE)`` or, for switches, ``--flag (the file: with it)``."""
    given = getattr(args, "given", ())
    return [f"{_flag(key)} ({whose}: {'with' if value else 'without'} it)" if isinstance(value, bool) else
            f"{_flag(key)} {getattr(args, key)} ({whose}: {value})"
            for key, value in held.items() if key in given and getattr(args, key) != value]


def _contradictions(args, cal) -> list[str]:
    """The options given beside ``--calib`` whose values differ from what the calibration file holds, each as
    ``--flag VALUE (the file: VALUE)``; with an equal ``--calib-dir``, that folder becomes the calibration's."""
    from .data import folder_digest, image_dataset
    from .files import file_sha256
    info, data = cal.calib_info, cal.data_cfg
    quant = cal.config.to_dict()
    held = {**{key: quant[field] for key, field in _QUANT_FIELDS.items()}, "calib_size": info.get("requested"),
            "calib_batch_size": info.get("batch_size"), "seed": info.get("seed")}
    found = _given_differences(args, held, "the file")
    if args.calib_dir is not None:
        if folder_digest(image_dataset(args.calib_dir, None)) == info.get("set_digest"):
            cal.calib_dir = Path(args.calib_dir)
        else:
            found.append(f"--calib-dir {args.calib_dir} (the file: the {info.get('set', 'unknown set')}, "
                         f"{info.get('set_images', '?')} images)")
    size = "x".join(map(str, data["input_size"][1:]))
    given = {  # option: (given and different, the value given, the file's)
        "weights": (args.weights is not None and file_sha256(args.weights) != cal.weights.get("sha256"),
                    args.weights, cal.weights.get("file") or cal.weights.get("source")),
        "random_init": (args.random_init and cal.weights.get("source") != "random", "", cal.weights.get("source")),
        "model_kwargs": (bool(args.model_kwargs) and dict(args.model_kwargs) != cal.spec.model_kwargs,
                         " ".join(f"{k}={v}" for k, v in args.model_kwargs), cal.spec.model_kwargs),
        "img_size": (args.img_size is not None and size != f"{args.img_size}x{args.img_size}", args.img_size, size),
        "crop_pct": (args.crop_pct is not None and args.crop_pct != data["crop_pct"], args.crop_pct,
                     data["crop_pct"]),
        "interpolation": (args.interpolation is not None and args.interpolation != data["interpolation"],
                          args.interpolation, data["interpolation"]),
        "mean": (args.mean is not None and list(args.mean) != data["mean"], args.mean, data["mean"]),
        "std": (args.std is not None and list(args.std) != data["std"], args.std, data["std"])}
    found += [f"{_flag(key)} {value} (the file: {held})".replace("  ", " ")
              for key, (differs, value, held) in given.items() if differs]
    return found


def get_calibrated(args):
    """Load ``--calib`` (checking it names the same model and that no option given contradicts it) or calibrate
    from the command-line options."""
    from .api import CalibrationError, calibrate, load_calibration, read_labels
    if args.calib is not None:
        cal = load_calibration(args.calib)
        if cal.spec.name != args.model:
            raise CalibrationError(f"{args.calib} was calibrated for {cal.spec.name}, not {args.model}")
        found = _contradictions(args, cal)
        if found:
            raise CalibrationError(f"{args.calib} contradicts {', '.join(found)}: leave these options out with "
                                   f"--calib, or calibrate again without it")
        if args.labels is not None:
            cal.labels = read_labels(args.labels, cal.num_classes)
        warn_random(cal.weights)
        return cal
    spec, opts = _spec_and_data(args)
    cal = calibrate(spec, _quant_config(args), opts, calib_dir=args.calib_dir, calib_size=args.calib_size,
                    batch_size=args.calib_batch_size, seed=args.seed, labels=args.labels)
    info = cal.calib_info
    fewer = f", fewer than --calib-size {args.calib_size}" if info["images"] < args.calib_size else ""
    own = "; pass --calib-dir for images of your own data (FQ-ViT calibrates on 1,000 training images)" \
        if args.calib_dir is None else ""
    print(f"note: calibrated on {info['images']} images of the {info['set']} ({info['set_images']} images found in "
          f"{info['layout']}, hidden files and folders skipped{fewer}){own}", file=sys.stderr)
    warn_random(cal.weights)
    return cal


def warn_random(weights: dict | None) -> None:
    """One warning line for a model whose weights are random (``--random-init``): its outputs mean nothing."""
    if weights and weights.get("source") == "random":
        print(f"{PROG}: warning: this model has random weights (--random-init): for speed and structure checks "
              f"only, its predictions mean nothing", file=sys.stderr)


def _check_default_weights(args) -> None:
    """Fail before importing torch and timm when an FQ-ViT name's default weights (timm's pretrained ones) cannot be
    had. Other names need timm to be told apart from typos; the registry checks them, also before building."""
    from .models.names import FQVIT_MODELS, hub_weights_missing, no_weights_error
    if not hasattr(args, "random_init") or args.calib is not None:  # commands without model options, or --calib
        return
    if args.model in FQVIT_MODELS and args.weights is None and not args.random_init \
            and hub_weights_missing(args.model):
        raise no_weights_error(args.model, FQVIT_MODELS[args.model],
                               "cannot be downloaded here (no route to the hub) and are not cached")


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings of the library (e.g. runtime.DeviceWarning) as one ``fqvit-export: warning:`` line."""
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def _run(fn, args) -> int:
    """Run a command; user errors become one line (exit 2), Ctrl-C exits 130 leaving no partial file.

    User errors are ``ValueError`` (``ModelError``, ``DataError``, ``CalibrationError``, ``UnsupportedModel`` derive
    from it) and the file errors below; nothing heavy is imported before the weights check, so that an offline
    default fails at once."""
    from .files import WriteError
    user_errors = (ValueError, FileExistsError, FileNotFoundError, PermissionError, IsADirectoryError, WriteError)
    try:
        _settle_defaults(args)
        _check_default_weights(args)
        with warnings.catch_warnings():
            warnings.showwarning = _warning_line
            fn(args)
        return 0
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except user_errors as e:
        if getattr(args, "verbose", False):
            traceback.print_exc()
        plain = not isinstance(e, OSError) or isinstance(e, WriteError) or not e.filename
        msg = str(e) if plain else f"{e.strerror}: {e.filename}"
        print(f"{PROG}: error: {msg}", file=sys.stderr)
        return 2
    except Exception as e:  # unexpected: still one line unless --verbose
        if getattr(args, "verbose", False):
            raise
        print(f"{PROG}: error: {type(e).__name__}: {e} (run with --verbose for details)", file=sys.stderr)
        return 1


# --- commands --------------------------------------------------------------------------------------------------

def _calibrate(args) -> None:
    from .api import save_calibration
    if args.output.exists() and not args.force:
        raise FileExistsError(f"{args.output} exists; pass --force to overwrite")
    cal = get_calibrated(args)
    save_calibration(cal, args.output, force=args.force)
    print(f"saved {args.output}: {cal.config.label()}, {cal.calib_info['points']} quantization points, "
          f"{cal.calib_info['images']} calibration images")


def calibrate_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=f"{PROG} calibrate", description="Calibrate a model with FQ-ViT and save "
                                "every scale, zero point and PTS alpha to a calib.pt file.")
    add_model_args(p)
    add_quant_args(p)
    p.add_argument("-o", "--output", type=Path, required=True, help="calibration file to write (calib.pt)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    args = p.parse_args(argv)
    return _run(_calibrate, args)


def _check_exported_from(path: Path, card, cal) -> None:
    """Refuse a parity run whose quantized PyTorch model (``--calib``, or calibrated anew from the options) is not
    the one ``path`` was exported from: the figures would compare two different models."""
    def plain(value):  # as the card stores it (JSON)
        return json.loads(json.dumps(value))
    differs = [what for what, ours, theirs in (("quantization", cal.config.to_dict(), card.quantization),
                                               ("calibration", cal.calib_info, card.calibration),
                                               ("weights", cal.weights, card.weights)) if plain(ours) != theirs]
    if differs:
        raise ValueError(f"--parity: {path} was not exported from this calibration (its {' and '.join(differs)} "
                         f"differ): pass --calib with the calibration it was exported from")


def _check_card_options(args, card) -> None:
    """``evaluate --onnx`` without ``--parity`` runs the exported model alone: quantization options the user gave that
    differ from the model's card, and calibration options (nothing is calibrated), are refused in one line rather
    than silently ignored."""
    held = {key: card.quantization.get(field) for key, field in _QUANT_FIELDS.items()}
    found = _given_differences(args, held, "the model")
    found += [f"{_flag(k)} (nothing is calibrated)" for k in ("calib_dir", "calib_size", "calib_batch_size", "seed")
              if k in getattr(args, "given", ())]
    if found:
        raise ValueError(f"{args.onnx} was exported with other settings than {', '.join(found)}: leave these options "
                         f"out (the exported model runs as it is), or add --parity with the export's --calib")


def _evaluate(args) -> None:
    """One path runs, and the output names it: with ``--onnx`` the exported model on onnxruntime, preprocessed as
    its card says (``--parity`` or ``--quant`` also run the quantized PyTorch model, much slower, and compare);
    else the quantized (``--quant``, ``--calib``) or FP32 PyTorch model."""
    from .api import evaluate
    from .data import describe_eval_set, eval_loader
    if args.json is not None and not args.json.parent.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {args.json.parent}")
    if args.parity and args.onnx is None:
        raise ValueError("--parity compares an exported model with the quantized PyTorch model: pass --onnx MODEL")
    spec, opts = _spec_and_data(args)
    result: dict = {"model": args.model, "data_dir": args.data_dir.name}
    sess = torch_model = cal = None
    if args.onnx is not None:
        from .deploy.session import open_session
        sess = open_session(args.onnx, library=args.custom_ops)
        if sess.card is None:
            raise ValueError(f"{args.onnx} was not written by fqvit-export (no preprocessing metadata)")
        if sess.card.name != args.model:
            raise ValueError(f"{args.onnx} holds {sess.card.name}, not {args.model}")
        result.update(quant=sess.card.quantization, calibration=sess.card.calibration)
    pytorch = args.onnx is None or args.parity or args.quant
    if pytorch and (args.quant or args.calib is not None or args.onnx is not None):
        cal = get_calibrated(args)
        torch_model = cal.qmodel
        result.update(quant=cal.config.to_dict(), calibration=cal.calib_info)
    elif pytorch:
        from .api import build_model
        from .models.registry import weights_info
        torch_model, data_cfg = build_model(spec, opts)
        result["quant"] = None
        warn_random(weights_info(spec))
    else:
        _check_card_options(args, sess.card)
        if args.calib is not None:
            print(f"note: --calib is not used: the exported model runs alone (--parity also runs the quantized "
                  f"PyTorch model)", file=sys.stderr)
    if sess is not None and cal is not None:
        _check_exported_from(args.onnx, sess.card, cal)
    if sess is not None:
        if cal is None or sess.card.weights != cal.weights:  # the calibration's own weights were warned about already
            warn_random(sess.card.weights)
        data_cfg = sess.card.data_config
    elif cal is not None:
        data_cfg = cal.data_cfg
    result["data_config"] = data_cfg
    loader = eval_loader(args.data_dir, data_cfg, batch_size=args.batch_size, limit=args.limit,
                         workers=args.workers, seed=args.sample_seed, labelled=True)
    sample = describe_eval_set(loader, args.sample_seed if args.limit is not None else None)
    result["sample"] = {"images": len(loader.dataset), "limit": args.limit, "seed": args.sample_seed,
                        "class_balanced": args.limit is not None, "description": sample}
    print(f"images: {sample} in {args.data_dir}")
    lines = []
    if sess is not None:
        from .deploy.session import parity
        onnx_res = evaluate(sess, loader, desc="onnxruntime")
        kernels = "custom-op library" if sess.custom_ops else "ONNX function bodies"
        provider = sess.session.get_providers()[0]
        result.update(path="onnxruntime", top1=onnx_res["top1"], top5=onnx_res["top5"], images=onnx_res["images"])
        result["onnx"] = {"path": args.onnx.name, "top1": onnx_res["top1"], "top5": onnx_res["top5"],
                          "custom_ops": sess.custom_ops, "provider": provider}
        lines.append(f"onnxruntime ({args.onnx.name}, {kernels}, {provider}): top1 {onnx_res['top1']:.2f}  top5 "
                     f"{onnx_res['top5']:.2f}  ({onnx_res['images']} images)")
    if torch_model is not None:
        what = "quantized" if cal is not None else "FP32"
        torch_res = evaluate(torch_model, loader, desc=f"pytorch {what}")
        line = f"pytorch {what}: top1 {torch_res['top1']:.2f}  top5 {torch_res['top5']:.2f}"
        if sess is None:
            result.update(path=f"pytorch {what}", top1=torch_res["top1"], top5=torch_res["top5"],
                          images=torch_res["images"])
            line += f"  ({torch_res['images']} images)"
        else:
            par = result["onnx"]["parity"] = parity(onnx_res["logits"], torch_res["logits"])
            result["pytorch"] = {"top1": torch_res["top1"], "top5": torch_res["top5"]}
            line += (f"  (onnxruntime vs pytorch: top1 agreement {par['top1_agreement']:.2f}%  identical logits "
                     f"{par['identical_logits']:.2f}%  max |dlogit| {par['max_abs_logit_diff']:.4g})")
        lines.append(line)
    print("\n".join(lines))
    if args.json is not None:
        from .files import atomic_write
        atomic_write(args.json, lambda tmp: Path(tmp).write_text(json.dumps(result, indent=1)))


def evaluate_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=f"{PROG} evaluate", description="Top-1/top-5 on a labelled ImageFolder of an "
                                "exported model on onnxruntime (--onnx), or of the quantized or FP32 PyTorch model; "
                                "the output says which ran.")
    add_model_args(p)
    add_quant_args(p)
    p.add_argument("--data-dir", type=Path, required=True, help="ImageFolder tree with class subfolders")
    p.add_argument("--quant", action="store_true", help="evaluate the quantized PyTorch model (else FP32); with "
                                                        "--onnx, as --parity")
    p.add_argument("--onnx", type=Path, help="evaluate this exported model on onnxruntime, with the preprocessing "
                                             "stored in it (the PyTorch model does not run unless --parity)")
    p.add_argument("--parity", action="store_true", help="with --onnx, also run the quantized PyTorch model (from "
                                                         "--calib or calibrated anew; much slower) and report parity")
    p.add_argument("--custom-ops", choices=["auto", "on", "off"], default="auto",
                   help="load the com.fqvit kernel library (auto: when built)")
    p.add_argument("--json", type=Path, help="write results (path, top1, top5, images, sample, config, parity) here")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--limit", type=int, help="a class-balanced sample of N images (seeded by --sample-seed)")
    p.add_argument("--sample-seed", type=int, default=0, help="seed of the --limit sample (default 0)")
    p.add_argument("--workers", type=int, default=0, help="data-loading worker processes")
    args = p.parse_args(argv)
    return _run(_evaluate, args)


def add_export_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("export")
    g.add_argument("-o", "--output", type=Path, required=True, help="ONNX file to write")
    g.add_argument("--force", action="store_true", help="overwrite an existing output")
    g.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="the device the model will run on: cpu (uint8 activations, onnxruntime's fast CPU "
                        "MatMulInteger) or cuda (int8 activations: every node runs on onnxruntime-gpu's CUDA "
                        "execution provider); the same integers, bit-identical logits")
    g.add_argument("--no-simplify", dest="simplify", action="store_false", help="skip onnxsim")
    g.add_argument("--report", type=Path, help="write metadata, op counts and parity results as JSON")
    g.add_argument("--parity-images", type=int, default=100,
                   help="calibration-set images on which to compare onnxruntime with PyTorch (0: skip)")
    g.add_argument("--bundle", type=Path, metavar="DIR",
                   help="also write a hand-off bundle here (as 'fqvit-export bundle': library, Triton, README)")


def _export(args) -> None:
    """Calibrate (or load ``--calib``), export, check parity, summarise; outputs are checked before the long work.

    The model, report and bundle are written under temporary names and take their own only after the last phase
    (parity included), so an error or Ctrl-C on the way leaves none of them behind."""
    import contextlib
    from .api import parity_check
    from .deploy.bundle import check_bundle_dir, write_bundle
    from .export.onnx_export import export_onnx
    from .files import check_writable, staged
    check_writable(args.output, args.force)
    if args.report is not None:
        check_writable(args.report, True)
    if args.bundle is not None:
        check_bundle_dir(args.bundle, args.force)
    cal = get_calibrated(args)
    print(f"exporting {cal.spec.name} [{cal.config.label()}] for {args.device} ...", file=sys.stderr)
    with contextlib.ExitStack() as stack:  # on leaving: the report is renamed into place, then the model
        model_tmp = stack.enter_context(staged(args.output, args.force))
        res = export_onnx(cal, model_tmp, simplify=args.simplify, force=True, device=args.device)
        par = parity_check(cal, model_tmp, args.parity_images) if args.parity_images > 0 else None
        if args.report is not None:
            report = {"path": str(args.output), "size_bytes": res.size_bytes, "ops": res.ops,
                      "simplified": res.simplified, "metadata": res.metadata, "parity": par}
            stack.enter_context(staged(args.report)).write_text(json.dumps(report, indent=1))
        bundle = write_bundle(model_tmp, args.bundle, force=args.force) if args.bundle is not None else None
    custom = {k: v for k, v in res.ops.items() if k.startswith("com.fqvit")}
    print(f"wrote {args.output} ({res.size_bytes / 2**20:.2f} MiB, {sum(res.ops.values())} nodes"
          f"{', simplified' if res.simplified else ''})")
    print("ops: " + ", ".join(f"{k} {v}" for k, v in res.ops.items()))
    if custom:
        print("com.fqvit: " + ", ".join(f"{k.split('::')[1]} {v}" for k, v in custom.items()))
    if par is not None:
        print(f"parity vs PyTorch on {par['images']} images: top-1 agreement {par['top1_agreement']:.1f}%, "
              f"max |dlogit| {par['max_abs_logit_diff']:.4g}, mean |dlogit| {par['mean_abs_logit_diff']:.3g} "
              f"({'custom-op library' if par['custom_ops'] else 'ONNX function bodies'}, {par['provider']})")
    if bundle is not None:
        print(f"wrote bundle {bundle}")


def export_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description="Quantize a timm ViT/DeiT/Swin with FQ-ViT and export an "
                                "integer ONNX model (QDQ + com.fqvit ops that also ship as ONNX functions).")
    add_model_args(p)
    add_quant_args(p)
    add_export_args(p)
    return _run(_export, p.parse_args(argv))


def _classify(args) -> None:
    from .deploy.session import classify, open_session
    if args.top < 1:
        raise ValueError(f"--top must be at least 1, got {args.top}")
    sess = open_session(args.model, library=args.custom_ops)
    warn_random(sess.card.weights if sess.card else None)
    res = classify(sess, args.images, args.top)
    if args.json:
        print(json.dumps(res, indent=1))
        return
    for r in res:
        print(f"{r['image']}: " + ", ".join(f"{t.get('label', t['class'])} ({100 * t['prob']:.1f}%)"
                                            for t in r["top"]))


def run_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=f"{PROG} run", description="Classify images with an exported model, using "
                                "the preprocessing and labels stored in it.")
    p.add_argument("model", type=Path)
    p.add_argument("images", nargs="+", type=Path)
    p.add_argument("--top", type=int, default=5)
    p.add_argument("--custom-ops", choices=["auto", "on", "off"], default="auto")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("-v", "--verbose", action="store_true")
    return _run(_classify, p.parse_args(argv))


def _bundle(args) -> None:
    from .deploy.bundle import write_bundle
    out = write_bundle(args.model, args.output, force=args.force, name=args.name,
                       triton_repository=args.triton_repository)
    print(f"wrote bundle {out} (README.md, manifest.json, lib/, triton/)")


def bundle_main(argv: list[str] | None = None) -> int:
    from .deploy.bundle import TRITON_REPOSITORY
    p = argparse.ArgumentParser(prog=f"{PROG} bundle", description="Write a self-contained hand-off directory: the "
                                "model, the com.fqvit kernel library, a Triton model repository, a README for the "
                                "deployment team and a manifest of SHA-256 hashes.")
    p.add_argument("model", type=Path, help="ONNX model written by fqvit-export")
    p.add_argument("-o", "--output", type=Path, required=True, help="bundle directory to create")
    p.add_argument("--force", action="store_true", help="replace an existing non-empty directory")
    p.add_argument("--name", help="Triton model name (default: the model's name)")
    p.add_argument("--triton-repository", default=TRITON_REPOSITORY,
                   help="where the Triton server mounts DIR/triton (the library path in config.pbtxt)")
    p.add_argument("-v", "--verbose", action="store_true", help="show tracebacks on errors")
    return _run(_bundle, p.parse_args(argv))


def _preprocess(args) -> None:
    from .files import check_writable
    from .deploy.card import ModelCard
    from .deploy.preprocess import Preprocess, save_tensor
    check_writable(args.output, args.force)
    x = Preprocess(ModelCard.read(args.model).data_config).batch(args.images)
    save_tensor(x, args.output, force=True)
    print(f"wrote {args.output}: float32 {list(x.shape)} (NCHW, C order)")


def preprocess_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=f"{PROG} preprocess", description="Preprocess images as the model's metadata "
                                "says and save the float32 NCHW batch as .npy (input for examples/cpp/, Triton).")
    p.add_argument("model", type=Path, help="ONNX model written by fqvit-export")
    p.add_argument("images", nargs="+", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True, help=".npy file to write")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.add_argument("-v", "--verbose", action="store_true", help="show tracebacks on errors")
    return _run(_preprocess, p.parse_args(argv))


COMMANDS = {"calibrate": calibrate_main, "evaluate": evaluate_main, "export": export_main, "run": run_main,
            "bundle": bundle_main, "preprocess": preprocess_main}


def main(argv: list[str] | None = None) -> int:
    """``fqvit-export [calibrate|evaluate|export|run|bundle|preprocess] ...``; without a command it exports."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]](argv[1:])
    if argv and argv[0] in ("-h", "--help"):
        print(f"usage: {PROG} MODEL [options] -o model.onnx\n       {PROG} {{calibrate,evaluate,export,run,bundle,"
              f"preprocess}} "
              f"...\n\nWithout a command, {PROG} exports (see '{PROG} export --help').")
        return 0
    return export_main(argv)


if __name__ == "__main__":
    sys.exit(main())
