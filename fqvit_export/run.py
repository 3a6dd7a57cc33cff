"""``python -m fqvit_export.run model.onnx IMAGE...``: classify images with the preprocessing stored in the model."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["main", "classify"]


def classify(model: str | Path, images: list[str | Path], top: int = 5, library: str = "auto") -> list[dict]:
    """Top-``top`` classes per image; preprocessing comes from the model's ``data_config`` metadata."""
    import torch
    from PIL import Image
    from .data import eval_transform
    from .runtime import open_session
    sess = open_session(model, library=library)
    cfg = sess.preprocessing()
    if not cfg:
        raise ValueError(f"{model} carries no fqvit-export preprocessing metadata")
    tf = eval_transform(cfg)
    labels = sess.labels()
    results = []
    for path in images:
        if not Path(path).is_file():
            raise FileNotFoundError(f"image not found: {path}")
        try:
            with Image.open(path) as im:
                x = tf(im.convert("RGB"))[None]
        except OSError as e:
            raise ValueError(f"cannot read image {path}: {e}") from None
        probs = torch.softmax(torch.from_numpy(sess(x)[0]).float(), 0)
        p, idx = probs.topk(min(top, probs.numel()))
        top = [{"class": int(i), "prob": float(v), **({"label": labels[int(i)]} if labels else {})}
               for v, i in zip(p, idx)]
        results.append({"image": str(path), "top": top})
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="fqvit-export run", description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path)
    p.add_argument("images", nargs="+", type=Path)
    p.add_argument("--top", type=int, default=5)
    p.add_argument("--custom-ops", choices=["auto", "on", "off"], default="auto")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    from .cli import _run

    def _go(a):
        from .cli import warn_random
        from .runtime import model_weights
        warn_random(model_weights(a.model))
        res = classify(a.model, a.images, a.top, a.custom_ops)
        if a.json:
            print(json.dumps(res, indent=1))
        else:
            for r in res:
                print(f"{r['image']}: " + ", ".join(f"{t.get('label', t['class'])} ({100 * t['prob']:.1f}%)"
                                                    for t in r["top"]))
    return _run(_go, args)


if __name__ == "__main__":
    sys.exit(main())
