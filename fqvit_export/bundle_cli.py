"""``fqvit-export bundle MODEL.onnx -o DIR`` and ``fqvit-export preprocess MODEL.onnx IMAGE... -o x.npy``.

Thin argument parsing over ``fqvit_export.bundle.write_bundle`` and ``fqvit_export.preprocess``; errors are one line
(``cli._run``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["bundle_main", "preprocess_main"]


def _bundle(args) -> None:
    from .bundle import write_bundle
    out = write_bundle(args.model, args.output, force=args.force, name=args.name,
                       triton_repository=args.triton_repository)
    print(f"wrote bundle {out} (README.md, manifest.json, lib/, triton/)")


def bundle_main(argv: list[str] | None = None) -> int:
    from .bundle import TRITON_REPOSITORY
    from .cli import PROG, _run
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
    from .preprocess import model_data_config, preprocess_images, save_tensor
    if args.output.exists() and not args.force:
        raise FileExistsError(f"{args.output} exists; pass --force to overwrite")
    x = preprocess_images(model_data_config(args.model), args.images)
    save_tensor(x, args.output, force=True)
    print(f"wrote {args.output}: float32 {list(x.shape)} (NCHW, C order)")


def preprocess_main(argv: list[str] | None = None) -> int:
    from .cli import PROG, _run
    p = argparse.ArgumentParser(prog=f"{PROG} preprocess", description="Preprocess images as the model's metadata "
                                "says and save the float32 NCHW batch as .npy (input for examples/cpp/, Triton).")
    p.add_argument("model", type=Path, help="ONNX model written by fqvit-export")
    p.add_argument("images", nargs="+", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True, help=".npy file to write")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.add_argument("-v", "--verbose", action="store_true", help="show tracebacks on errors")
    return _run(_preprocess, p.parse_args(argv))
