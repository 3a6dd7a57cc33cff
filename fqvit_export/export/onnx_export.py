"""Assemble, check, simplify and write the ONNX model of a calibrated model.

The file holds: QDQ nodes at every quantization point, int8 weights, ``com.fqvit`` nodes with their ONNX function
bodies in ``model.functions`` (so stock onnxruntime runs it on any execution provider; a registered kernel library
takes over), and metadata a deployment team needs (input, preprocessing, classes, quantization, versions).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import onnx
from onnx import TensorProto, helper

from .. import __version__
from ..files import atomic_write
from ..backends.onnx_backend import trace_graph
from ..deploy.card import DEVICES, ModelCard
from ..models.quantized import Calibrated
from ..ops.functions import DOMAIN, OP_VERSION, OPSET, function_protos
from ..ops.spec import IR_VERSION

__all__ = ["IR_VERSION", "OPSET", "DEVICES", "ExportResult", "build_onnx", "export_onnx", "model_card", "float_onnx",
           "simplify_model"]


@dataclass
class ExportResult:
    """What :func:`export_onnx` wrote: the file, its size, the node count per op type (``domain::op`` for custom
    ops), whether onnxsim simplified it, and its ``metadata_props``."""

    path: Path
    size_bytes: int
    ops: dict[str, int]
    simplified: bool
    metadata: dict[str, str] = field(default_factory=dict)


def model_card(cal: Calibrated, device: str = "cpu") -> ModelCard:
    """The model card of a calibrated model exported for ``device``: everything needed to feed the model and know
    what it is (written to ``metadata_props``)."""
    model = {k: v for k, v in cal.spec.to_dict().items() if k != "name"}
    if model.get("weights"):
        model["weights"] = Path(model["weights"]).name  # never the exporting machine's path
    return ModelCard(name=cal.spec.name, num_classes=cal.num_classes, data_config=cal.data_cfg, model=model,
                     weights=cal.weights, quantization=cal.config.to_dict(), calibration=cal.calib_info,
                     labels=cal.labels, device=device, op_version=OP_VERSION, tool_version=__version__)


def _assemble(cal: Calibrated, quantized: bool, device: str = "cpu") -> onnx.ModelProto:
    c, h, w = cal.data_cfg["input_size"]
    b, out = trace_graph(cal.float_model, cal.qmodel.adapter, cal.qmodel.points, cal.config, quantized, device)
    nodes = [*b.nodes, helper.make_node("Identity", [out], ["logits"], name="output/Identity")]
    num_classes = cal.num_classes
    graph = helper.make_graph(
        nodes, f"{cal.spec.name}_{'fqvit' if quantized else 'fp32'}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", c, h, w])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", num_classes])],
        initializer=list(b.inits.values()))
    opsets = [helper.make_opsetid("", OPSET)]
    functions = []
    if any(n.domain == DOMAIN for n in nodes):
        opsets.append(helper.make_opsetid(DOMAIN, OP_VERSION))
        functions = function_protos()
    model = helper.make_model(graph, opset_imports=opsets, functions=functions, producer_name="fqvit-export",
                              producer_version=__version__, ir_version=IR_VERSION,
                              doc_string=f"{cal.spec.name} {cal.config.label() if quantized else 'FP32'}")
    props = model_card(cal, device).to_metadata() if quantized else {"fqvit_export.version": __version__}
    helper.set_model_props(model, props)
    return model


def simplify_model(model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
    """onnxsim (0.8.x keeps model-local functions); fall back to the input if it fails or drops a function.

    onnxsim annotates what it changed and removed in ``onnxsim.*`` metadata entries: a log for whoever ran it, not for
    the people who receive the model, so those entries are dropped (on the model, its graph and its nodes)."""
    import onnxsim
    try:
        simplified, ok = onnxsim.simplify(model)
    except Exception:  # onnxsim raises assorted errors on graphs it cannot handle
        return model, False
    if not ok or len(simplified.functions) != len(model.functions):
        return model, False
    for proto in (simplified, simplified.graph, *simplified.graph.node):
        _drop_metadata(proto, "onnxsim")
    return simplified, True


def _drop_metadata(proto, prefix: str) -> None:
    props = getattr(proto, "metadata_props", None)
    if props is None:
        return
    keep = [(p.key, p.value) for p in props if not p.key.startswith(prefix)]
    del props[:]
    for key, value in keep:
        props.add(key=key, value=value)


def build_onnx(cal: Calibrated, simplify: bool = True, quantized: bool = True, device: str = "cpu"
               ) -> tuple[onnx.ModelProto, bool]:
    """The checked (and optionally simplified) ModelProto for ``device`` (:data:`DEVICES`)."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; choose from {', '.join(DEVICES)}")
    model = _assemble(cal, quantized, device)
    onnx.checker.check_model(model, full_check=True)
    simplified = False
    if simplify:
        model, simplified = simplify_model(model)
        if simplified:
            onnx.checker.check_model(model, full_check=True)
    return model, simplified


def float_onnx(cal: Calibrated, simplify: bool = True) -> onnx.ModelProto:
    """The FP32 graph of the same network through the same adapter (the speed baseline)."""
    return build_onnx(cal, simplify=simplify, quantized=False)[0]


def export_onnx(cal: Calibrated, path: str | Path, simplify: bool = True, force: bool = False,
                quantized: bool = True, device: str = "cpu") -> ExportResult:
    """Build for ``device`` (``cpu`` or ``cuda``, :data:`DEVICES`) and write atomically (temporary file + rename: no
    partial file on error or Ctrl-C)."""
    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass --force to overwrite")
    model, simplified = build_onnx(cal, simplify=simplify, quantized=quantized, device=device)
    atomic_write(path, lambda tmp: onnx.save(model, tmp), force=True)
    ops = Counter(f"{n.domain}::{n.op_type}" if n.domain else n.op_type for n in model.graph.node)
    return ExportResult(path, path.stat().st_size, dict(ops.most_common()), simplified,
                        {p.key: p.value for p in model.metadata_props})
