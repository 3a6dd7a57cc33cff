"""Python API: calibrate a model, save/load the calibration, evaluate float or quantized models.

The command-line scripts (``calibrate.py``, ``evaluate.py``, ``export.py``, ``fqvit-export``) are thin wrappers
around these functions.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from tqdm import tqdm

from . import __version__
from .files import atomic_write
from .data import CALIB_SETS, DataError, DataOptions, dataset_layout, eval_loader, eval_transform, folder_digest, \
    image_dataset, resolve_data_config, sample_batches
from .models.registry import BUNDLED_MODELS, ModelSpec, class_labels, create, weights_info
from .models.quantized import Calibrated, QuantModel
from .ops.spec import MAX_ALPHA
from .deploy.session import DeviceWarning, InputError, open_session, parity
from .quant.point import QuantConfig

__all__ = ["Calibrated", "CalibrationError", "build_model", "calibrate", "save_calibration", "load_calibration",
           "evaluate", "atomic_write", "default_calib_set", "read_labels", "parity_check"]

CALIB_FORMAT = 2
"""2: weights provenance, class labels, calibration set by name and digest (no local path). 1 is still read."""


class CalibrationError(ValueError):
    """Unreadable or mismatched calibration file; the message is meant for the user as is."""


def check_op_limits(config: QuantConfig) -> None:
    """What the com.fqvit ops accept (:mod:`fqvit_export.ops.spec`), checked before any work."""
    if config.pts_max_alpha > MAX_ALPHA:
        raise ValueError(f"pts_max_alpha must be between 0 and {MAX_ALPHA} (docs/ops.md Sec. 2), "
                         f"got {config.pts_max_alpha}")


def default_calib_set(spec: ModelSpec) -> str:
    """The bundled calibration set from the model's domain: CIFAR-10 for the bundled CIFAR-10 models, the ImageNet
    sample for every other (timm, ImageNet) model."""
    return "cifar10" if spec.name in BUNDLED_MODELS else "imagenet-sample"


def read_labels(path: str | Path, num_classes: int | None = None) -> list[str]:
    """``--labels FILE``: one class name per line (blank lines skipped), UTF-8; with ``num_classes``, exactly that
    many. Every problem is a :class:`DataError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"labels file not found: {path}")
    try:
        labels = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as e:
        raise DataError(f"labels file {path} is not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    if not labels:
        raise DataError(f"labels file {path} holds no labels (one class name per line)")
    if num_classes is not None and len(labels) != num_classes:
        raise DataError(f"{path} has {len(labels)} labels; the model has {num_classes} classes")
    return labels


def build_model(spec: ModelSpec, data_opts: DataOptions | None = None) -> tuple[nn.Module, dict]:
    """The float model and its resolved data config, which must have the size the model is built for."""
    model = create(spec)
    data_cfg = resolve_data_config(model, data_opts)
    built = tuple(getattr(model.patch_embed, "img_size", None) or data_cfg["input_size"][1:])
    if tuple(data_cfg["input_size"][1:]) != built:
        size = "x".join(map(str, data_cfg["input_size"][1:]))
        # Bundled and --weights checkpoints load only into their own shapes (no position-embedding resampling).
        rebuild = "" if spec.source in ("bundled", "file") else \
            ", or build the model at that size with --model-kwargs img_size=N"
        raise DataError(f"{spec.name} is built for {'x'.join(map(str, built))} images, not {size} (--img-size sets the "
                        f"preprocessing only): leave --img-size out{rebuild}")
    return model, data_cfg


def calibrate(spec: ModelSpec, config: QuantConfig, data_opts: DataOptions | None = None,
              calib_dir: str | Path | None = None, calib_size: int = 1000, batch_size: int = 100, seed: int = 0,
              progress: bool = True, labels: str | Path | list[str] | None = None) -> Calibrated:
    """FQ-ViT calibration: ``calib_size`` real images (seeded draw), observers on float activations, parameters
    from the last batch.

    Args:
        calib_dir: an ImageFolder tree or flat folder; without it, the bundled set of the model's domain
            (:func:`default_calib_set`).
        labels: class names, or a file of them (one per line); default: the model's known labels, if any.
    """
    check_op_limits(config)
    model, data_cfg = build_model(spec, data_opts)
    num_classes = model.num_classes
    if isinstance(labels, (str, Path)):  # checked before the long calibration
        labels = read_labels(labels, num_classes)
    elif labels is not None and len(labels) != num_classes:
        raise DataError(f"got {len(labels)} labels; the model has {num_classes} classes")
    set_name = None if calib_dir is not None else default_calib_set(spec)
    root = Path(calib_dir) if calib_dir is not None else CALIB_SETS[set_name]
    ds = image_dataset(root, eval_transform(data_cfg))
    batches = sample_batches(ds, calib_size, batch_size, seed)
    qmodel = QuantModel(model, config)
    qmodel.calibrate(batches, progress=progress)
    info = {"set": f"bundled {set_name}" if set_name else f"user folder {root.name}", "images":
            sum(len(b) for b in batches), "set_images": len(ds), "layout": dataset_layout(ds),
            "set_digest": folder_digest(ds), "batch_size": batch_size, "seed": seed, "requested": calib_size,
            **qmodel.summary()}
    if labels is None:
        labels = class_labels(spec, num_classes)
    return Calibrated(spec, config, data_cfg, qmodel, info, weights_info(spec), labels, root)


def save_calibration(cal: Calibrated, path: str | Path, force: bool = True) -> Path:
    """Write calib.pt: the model spec, quantization config, data config and every point's parameters, not the
    weights (:func:`load_calibration` rebuilds the model from its spec), atomically so a failed write leaves no
    half file; returns the path. The file is serialized in memory first (it is small) and written with plain file
    I/O, so that a full disk is an ``OSError`` (:class:`fqvit_export.files.WriteError`), not torch's RuntimeError."""
    state = {"format": CALIB_FORMAT, "tool_version": __version__, "model": cal.spec.to_dict(),
             "quant": cal.config.to_dict(), "data": cal.data_cfg, "calibration": cal.calib_info,
             "weights": cal.weights, "labels": cal.labels, "points": cal.qmodel.point_params()}
    buf = io.BytesIO()
    torch.save(state, buf)
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(buf.getvalue()), force=force)


def load_calibration(path: str | Path) -> Calibrated:
    """Rebuild the model named in calib.pt and restore every scale, zero point and alpha (no recalibration)."""
    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"calibration file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CalibrationError(f"cannot read calibration {path}: {type(e).__name__}") from None
    if not isinstance(state, dict) or state.get("format") not in (1, CALIB_FORMAT):
        raise CalibrationError(f"{path} is not an fqvit-export calibration file (format {CALIB_FORMAT})")
    spec = ModelSpec.from_dict(state["model"])
    config = QuantConfig.from_dict(state["quant"])
    check_op_limits(config)
    model = create(spec)
    qmodel = QuantModel(model, config)
    qmodel.load_point_params(state["points"])
    info = state["calibration"]
    set_name = info.get("set", "").removeprefix("bundled ")
    calib_dir = CALIB_SETS.get(set_name) or (Path(info["dir"]) if "dir" in info else None)
    cal = Calibrated(spec, config, state["data"], qmodel, info, state.get("weights") or weights_info(spec),
                     state.get("labels"), calib_dir)
    _check_points(cal)
    return cal


def _check_points(cal: Calibrated) -> None:
    """Run the adapter once on a dummy input so a calibration that does not fit the model fails here, clearly."""
    c, h, w = cal.data_cfg["input_size"]
    try:
        cal.qmodel(torch.zeros(1, c, h, w))
    except (KeyError, RuntimeError) as e:
        raise CalibrationError(f"calibration does not match model {cal.spec.name}: {e}") from None


@torch.inference_mode()
def evaluate(model: Callable[[torch.Tensor], torch.Tensor], loader, progress: bool = True, desc: str = "evaluate",
             ) -> dict:
    """Top-1 / top-5 accuracy (percent) over a labelled loader; returns also the per-image logits.

    Raises:
        InputError: a batch holds NaN or infinite values (a custom loader's, or a near-zero std): a quantized model
            would turn them into finite, confident logits, and the accuracy would look like a real one.
    """
    correct1 = correct5 = total = 0
    logits_all = []
    bar = tqdm(loader, desc=desc, unit="batch", disable=not progress)
    for x, y in bar:
        bad = int(torch.as_tensor(x).numel() - torch.isfinite(torch.as_tensor(x)).sum())
        if bad:
            raise InputError(f"images {total} to {total + len(y) - 1} of the evaluation set hold {bad} non-finite "
                             f"value{'s' if bad != 1 else ''} (NaN or Inf) after preprocessing; they are refused: "
                             f"check the decoding, mean and std")
        logits = torch.as_tensor(model(x)).float()
        logits_all.append(logits)
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        correct1 += (top[:, 0] == y).sum().item()
        correct5 += (top == y[:, None]).any(dim=1).sum().item()
        total += len(y)
        bar.set_postfix(top1=f"{100 * correct1 / total:.2f}")
    return {"top1": 100.0 * correct1 / max(total, 1), "top5": 100.0 * correct5 / max(total, 1), "images": total,
            "logits": torch.cat(logits_all) if logits_all else torch.zeros(0)}


def parity_check(cal: Calibrated, path: str | Path, images: int = 100) -> dict:
    """onnxruntime (``fqvit_export.deploy.session``) against the quantized PyTorch model on ``images`` images of the
    calibration set (a class-balanced sample, seed 0: :func:`fqvit_export.data.balanced_sample`):
    :func:`fqvit_export.deploy.session.parity`'s figures, plus whether the kernel library ran."""
    root = cal.calib_dir or CALIB_SETS[default_calib_set(cal.spec)]
    loader = eval_loader(root, cal.data_cfg, batch_size=50, limit=images)
    with warnings.catch_warnings():  # a cuda model checked on the CPU: a check, not deployment
        warnings.simplefilter("ignore", DeviceWarning)
        sess = open_session(path)
    ref = evaluate(cal.qmodel, loader, progress=False)["logits"]
    out = evaluate(sess, loader, progress=False)["logits"]
    return {**parity(out, ref), "custom_ops": sess.custom_ops, "provider": sess.session.get_providers()[0],
            "images_from": cal.calib_info.get("set", root.name)}
