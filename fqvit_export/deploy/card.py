"""The model card: what an exported model is and how to feed it, stored in the ONNX file's ``metadata_props``.

The exporter builds one :class:`ModelCard` and writes :meth:`ModelCard.to_metadata`; every reader (the session,
``run``, ``preprocess``, the bundle, ``tools/gpu_check.py``) reads it back with :meth:`ModelCard.read`, from a file,
serialized bytes, an ``onnx.ModelProto`` or an ``onnxruntime.InferenceSession``. Defaults for files written by older
versions live here and nowhere else (e.g. no ``device`` key: a ``cpu`` model). Each value is a string; structured
values are JSON. Needs only the standard library: a file's metadata is read from the protobuf wire format, without
``onnx``.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

__all__ = ["ModelCard", "CardError", "DEVICES", "read_metadata"]

DEVICES = ("cpu", "cuda")
"""Export devices (``--device``): ``cpu`` models carry uint8 activation codes for onnxruntime's CPU execution
provider, ``cuda`` models int8 codes placeable on its CUDA execution provider; both compute the same logits."""
_REQUIRED = ("fqvit_export.version", "com.fqvit.op_version", "quantization", "input_name")
"""Keys every fqvit-export integer model has had since the first release: a file without them is foreign."""
_LEGACY_DEVICE_KEY = "target_device"
"""What the ``device`` key was called before the card existed (same values)."""


class CardError(ValueError):
    """The file is not an ONNX model, or not one written by fqvit-export; the message is for the user as is."""


def _json(meta: Mapping[str, str], key: str, default: Any = None) -> Any:
    try:
        return json.loads(meta[key]) if key in meta else default
    except json.JSONDecodeError:
        return default


_METADATA_PROPS, _KEY, _VALUE = 14, 1, 2
"""Field numbers in onnx.proto: ``ModelProto.metadata_props`` (repeated ``StringStringEntryProto``), its ``key`` and
``value``."""


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        byte = buf[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if byte < 0x80:
            return value, pos


def _fields(buf: memoryview):
    """(field number, wire type, value) of a protobuf message; length-delimited values as memoryviews (the graph is
    skipped without being copied or parsed)."""
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1 or wire == 5:
            size = 8 if wire == 1 else 4
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + size], pos + size
        else:
            raise ValueError(f"wire type {wire}")
        if pos > len(buf) or number == 0:
            raise ValueError("truncated message")
        yield number, wire, value


def _proto_metadata(data: bytes | memoryview) -> dict[str, str]:
    """``metadata_props`` of a serialized ``ModelProto``, read from the protobuf wire format directly, so that a
    deployment process needs no ``onnx`` package. Raises ValueError on bytes that are not a whole message."""
    meta = {}
    for number, wire, value in _fields(memoryview(data)):
        if number == _METADATA_PROPS and wire == 2:
            entry = {n: bytes(v).decode() for n, w, v in _fields(value) if w == 2}
            meta[entry.get(_KEY, "")] = entry.get(_VALUE, "")
    return meta


def read_metadata(source: Any) -> dict[str, str]:
    """``metadata_props`` of a model given as a path, serialized bytes, ``onnx.ModelProto``, onnxruntime session or
    anything with a ``session`` attribute holding one (our ``Session``).

    Raises:
        FileNotFoundError: a path that does not exist.
        CardError: a file or bytes that are not an ONNX model.
    """
    if hasattr(source, "session"):
        source = source.session
    if hasattr(source, "get_modelmeta"):
        return dict(source.get_modelmeta().custom_metadata_map)
    if hasattr(source, "metadata_props"):
        return {p.key: p.value for p in source.metadata_props}
    if isinstance(source, (bytes, bytearray, memoryview)):
        what, data = "the serialized model", source
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"{path} is a directory, not an ONNX model" if path.is_dir()
                                    else f"ONNX model not found: {path}")
        what, data = str(path), path.read_bytes()
    try:
        return _proto_metadata(data)
    except (ValueError, UnicodeDecodeError):
        raise CardError(f"{what} is not an ONNX model (unreadable or truncated)") from None


@dataclass
class ModelCard:
    """Everything about an exported model that is not its graph.

    Attributes:
        name: the model's name (``cifar10_vit``, ``deit_base``, ...).
        num_classes: length of the logits.
        data_config: timm's data config the model was calibrated with (``input_size``, ``interpolation``,
            ``crop_pct``, ``crop_mode``, ``mean``, ``std``); :attr:`preprocessing` is derived from it.
        model: the model spec (name, timm kwargs, weights file name: never a path).
        weights: where the weights came from (``{"source": "bundled" | "file" | "hub" | "random", ...}``).
        quantization: the quantization config (method, bits, PTS, LIS).
        calibration: the calibration set's summary (name, image count, digest of its file list).
        labels: class names, when known.
        accuracy: measured accuracy, when recorded.
        device: the export device, one of :data:`DEVICES`.
        input_name / output_name / input_layout / input_dtype: the graph's interface.
        op_version: the ``com.fqvit`` opset version.
        tool_version: the fqvit-export version that wrote the file.
    """

    name: str
    num_classes: int
    data_config: dict
    model: dict = field(default_factory=dict)
    weights: dict | None = None
    quantization: dict = field(default_factory=dict)
    calibration: dict | None = None
    labels: list[str] | None = None
    accuracy: dict | None = None
    device: str = "cpu"
    input_name: str = "input"
    output_name: str = "logits"
    input_layout: str = "NCHW"
    input_dtype: str = "float32"
    op_version: int | None = None
    tool_version: str | None = None

    @property
    def input_shape(self) -> list:
        """``["batch", C, H, W]``: a dynamic batch of the calibrated image size."""
        return ["batch", *self.data_config["input_size"]]

    @property
    def preprocessing(self) -> dict:
        """The eval preprocessing in words and numbers (timm's eval transform for ``data_config``)."""
        cfg = self.data_config
        _, h, w = cfg["input_size"]
        return {"resize_shorter_side": int(math.floor(h / cfg["crop_pct"])), "interpolation": cfg["interpolation"],
                "center_crop": [h, w], "crop_pct": cfg["crop_pct"], "mean": cfg["mean"], "std": cfg["std"],
                "scale_to": "[0, 1] before mean/std", "color": "RGB"}

    @property
    def random_weights(self) -> bool:
        """The model was exported with ``--random-init``: for speed and structure checks, not for answers."""
        return (self.weights or {}).get("source") == "random"

    def to_metadata(self) -> dict[str, str]:
        """``metadata_props`` (strings; structured values as JSON). ``preprocessing`` and ``input_shape`` are
        written for people and other tools; readers derive them from ``data_config``."""
        meta = {
            "input_name": self.input_name, "input_shape": json.dumps(self.input_shape),
            "input_layout": self.input_layout, "input_dtype": self.input_dtype, "output_name": self.output_name,
            "num_classes": str(self.num_classes), "preprocessing": json.dumps(self.preprocessing),
            "data_config": json.dumps(self.data_config), "model": json.dumps({"name": self.name, **self.model}),
            "weights": json.dumps(self.weights), "quantization": json.dumps(self.quantization),
            "calibration": json.dumps(self.calibration), "device": self.device,
            "com.fqvit.op_version": str(self.op_version), "fqvit_export.version": str(self.tool_version),
        }
        if self.labels is not None:
            meta["labels"] = json.dumps(self.labels)
        if self.accuracy is not None:
            meta["accuracy"] = json.dumps(self.accuracy)
        return meta

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str], what: str = "the model") -> ModelCard:
        """The card stored in ``meta`` (``metadata_props`` as a dict), with the defaults of older files.

        Raises:
            CardError: ``meta`` lacks the keys of an fqvit-export model, or holds malformed values.
        """
        missing = [k for k in _REQUIRED if k not in meta]
        if missing:
            raise CardError(f"{what} was not made by fqvit-export (its metadata lacks {', '.join(missing)})")
        model = _json(meta, "model", {}) or {}
        if not isinstance(model, dict):
            raise CardError(f"{what}: metadata 'model' is not a JSON object")
        data_config = _json(meta, "data_config")
        if not isinstance(data_config, dict) or "input_size" not in data_config:
            raise CardError(f"{what} has no readable preprocessing metadata (data_config)")
        device = str(meta.get("device", meta.get(_LEGACY_DEVICE_KEY, "cpu"))).lower()
        if device not in DEVICES:
            raise CardError(f"{what} names an unknown device {device!r} (expected one of {', '.join(DEVICES)})")
        labels = _json(meta, "labels")
        if labels is not None and (not isinstance(labels, list) or any("\n" in str(s) for s in labels)):
            raise CardError(f"{what}: metadata 'labels' is not a list of one-line names")
        try:
            num_classes = int(meta.get("num_classes", len(labels) if labels else 0))
            op_version = int(meta["com.fqvit.op_version"])
        except ValueError:
            raise CardError(f"{what}: malformed num_classes or com.fqvit.op_version metadata") from None
        if labels is not None and len(labels) != num_classes:
            raise CardError(f"{what}: metadata holds {len(labels)} labels for {num_classes} classes")
        name = model.pop("name", None) or "model"
        return cls(name=name, num_classes=num_classes, data_config=data_config, model=model,
                   weights=_json(meta, "weights"), quantization=_json(meta, "quantization", {}) or {},
                   calibration=_json(meta, "calibration"), labels=labels, accuracy=_json(meta, "accuracy"),
                   device=device, input_name=meta["input_name"], output_name=meta.get("output_name", "logits"),
                   input_layout=meta.get("input_layout", "NCHW"), input_dtype=meta.get("input_dtype", "float32"),
                   op_version=op_version, tool_version=meta["fqvit_export.version"])

    @classmethod
    def read(cls, source: Any, strict: bool = True) -> ModelCard | None:
        """The card of a model file, serialized model, ``onnx.ModelProto`` or (our or onnxruntime's) session.

        Args:
            strict: raise :class:`CardError` for a model not made by fqvit-export; otherwise return None for it
                (e.g. the FP32 baseline model, which carries only the tool version).
        """
        what = str(source) if isinstance(source, (str, Path)) else "the model"
        meta = read_metadata(source)
        try:
            return cls.from_metadata(meta, what)
        except CardError:
            if strict or any(k in meta for k in _REQUIRED[1:]):
                raise
            return None
