"""Export targets (issue #11): ``--device cuda`` writes int8 activation codes so that every ``MatMulInteger`` is
int8 x int8 (the only kind onnxruntime's CUDA execution provider has), ``--device cpu`` uint8 codes. One calibration,
two graphs, the same integers: the logits must be bit-identical (docs/ops.md Sec. 1, code types). Also: the metadata
names the target, the runtime picks the execution provider from it and warns in one line on the other device."""
from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from conftest import CIFAR_TEST
from fqvit_export.data import eval_loader
from fqvit_export.export.onnx_export import build_onnx, export_onnx
from fqvit_export.ops.functions import DOMAIN
from fqvit_export.deploy.session import DeviceWarning, Session, model_device, providers_for

CONFIGS = {"pts_lis": {"pts": True, "lis": True, "attn_bits": 4}, "pts": {"pts": True}, "plain": {}}
CPU = ["CPUExecutionProvider"]


def _images(cal, n: int = 16):
    return next(iter(eval_loader(CIFAR_TEST, cal.data_cfg, batch_size=n, limit=n)))[0].numpy()


def _types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor of the main graph (initializers, inputs, inferred values)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {t.name: t.data_type for t in model.graph.initializer}
    for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        if v.type.tensor_type.elem_type:
            types[v.name] = v.type.tensor_type.elem_type
    return types


@pytest.mark.parametrize("model", ["cifar10_vit", "cifar10_swin"])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_cuda_target_bit_identical(calibrated, model, config):
    """cuda-target and cpu-target logits from one calibration, on real CIFAR-10 images: identical, with the function
    bodies and with the kernel library (its CPU kernels of both code types) when it is built."""
    from fqvit_export.deploy.library import custom_ops_library
    cal = calibrated(model, **CONFIGS[config])
    x = _images(cal)
    protos = {d: build_onnx(cal, device=d)[0].SerializeToString() for d in ("cpu", "cuda")}
    modes = ["off"] + (["on"] if custom_ops_library() is not None else [])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeviceWarning)
        for mode in modes:
            cpu = Session(protos["cpu"], library=mode, providers=CPU)(x)
            cuda = Session(protos["cuda"], library=mode, providers=CPU)(x)
            assert np.array_equal(cpu, cuda), f"library {mode}: max |d| {np.abs(cpu - cuda).max()}"
    assert cal.qmodel(__import__("torch").from_numpy(x)).numpy().tobytes() == cpu.tobytes()


def test_cuda_graph_has_no_uint8_matmul(calibrated):
    """Every MatMulInteger of the cuda graph multiplies int8 by int8 with scalar zero points; the cpu graph's take
    uint8 activations. Every com.fqvit code port (``T`` in ops/spec.py) is int8 in the cuda graph."""
    from fqvit_export.ops.spec import OPS
    cal = calibrated("cifar10_swin", pts=True, lis=True, attn_bits=4)
    for device, act in (("cpu", TensorProto.UINT8), ("cuda", TensorProto.INT8)):
        model = build_onnx(cal, device=device)[0]
        types = _types(model)
        inits = {t.name: t for t in model.graph.initializer}
        mm = [n for n in model.graph.node if n.op_type == "MatMulInteger"]
        assert mm
        for n in mm:
            assert types[n.input[0]] == act, (device, n.name)
            assert types[n.input[1]] in (act, TensorProto.INT8), (device, n.name)
            for operand, zp in zip(n.input[:2], n.input[2:]):
                assert types[zp] == types[operand], (device, n.name)
                assert zp in inits and int(np.prod(inits[zp].dims)) == 1  # scalar zero points
        for n in (n for n in model.graph.node if n.domain == DOMAIN):
            spec = OPS[n.op_type]
            for port, name in zip(spec.inputs, n.input):
                if port.dtype == "T" and name:
                    assert types[name] == act, (device, n.name, port.name)


def test_metadata_and_provider_choice(calibrated, tmp_path):
    cal = calibrated("cifar10_vit", pts=True, lis=True, attn_bits=4)
    paths = {d: export_onnx(cal, tmp_path / f"{d}.onnx", simplify=False, device=d).path for d in ("cpu", "cuda")}
    for d, path in paths.items():
        meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert meta["device"] == d and model_device(path) == d
    assert providers_for("cpu") == CPU
    assert providers_for("cuda")[-1] == "CPUExecutionProvider"
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        Session(paths["cpu"], library="off")
        assert not [w for w in seen if issubclass(w.category, DeviceWarning)]
        if "CUDAExecutionProvider" not in providers_for("cuda"):  # a machine without onnxruntime-gpu
            Session(paths["cuda"], library="off")
            msgs = [str(w.message) for w in seen if issubclass(w.category, DeviceWarning)]
            assert len(msgs) == 1 and "exported for CUDA" in msgs[0] and "\n" not in msgs[0]


def test_bad_device_is_refused(calibrated):
    cal = calibrated("cifar10_vit")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        build_onnx(cal, device="tpu")


def test_cli_device_option_and_warning(tmp_path, capsys):
    """``fqvit-export MODEL --device cuda`` writes a cuda model whose parity check passes (bit-identical to PyTorch);
    ``fqvit-export run`` on it, on a machine without CUDA, warns in one line."""
    from fqvit_export.cli import main
    out = tmp_path / "m.onnx"
    rc = main(["cifar10_vit", "--pts", "--lis", "--device", "cuda", "--calib-size", "20", "--calib-batch-size", "10",
               "--parity-images", "10", "--report", str(tmp_path / "r.json"), "-o", str(out)])
    assert rc == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["metadata"]["device"] == "cuda"
    assert report["parity"]["max_abs_logit_diff"] == 0.0
    capsys.readouterr()
    if "CUDAExecutionProvider" in providers_for("cuda"):
        pytest.skip("onnxruntime-gpu with CUDA here: no device warning expected")
    image = next(p for p in sorted(CIFAR_TEST.rglob("*")) if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    assert main(["run", str(out), str(image), "--top", "1"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(err) == 1 and err[0].startswith("fqvit-export: warning: this model was exported for CUDA")


# --- placement: every node of a cuda graph has a CUDA kernel ---------------------------------------------------------

def _fqvit_fallbacks(model: onnx.ModelProto, kernels: list[dict]) -> list[str]:
    """com.fqvit nodes without a CUDA kernel of their input types in our library."""
    from fqvit_export.deploy.kernels import find_kernel
    from fqvit_export.deploy.placement import value_type_strings
    types = value_type_strings(model)
    bad = []
    for n in (n for n in model.graph.node if n.domain == DOMAIN):
        ins = [types.get(i, "?").removeprefix("tensor(").removesuffix(")") if i else None for i in n.input]
        if find_kernel(kernels, n.op_type, "CUDAExecutionProvider", ins) is None:
            bad.append(f"{n.name} ({n.op_type} {ins})")
    return bad


@pytest.mark.parametrize("model, config", [("cifar10_vit", "pts_lis"), ("cifar10_swin", "pts_lis"),
                                           ("cifar10_swin", "plain"), ("cifar10_vit", "pts")])
def test_cuda_graph_placement(calibrated, model, config):
    """Every standard-domain node of the cuda graph has a kernel in onnxruntime-gpu's CUDA table
    (fqvit_export/assets/ort_cuda_kernels.md, ``placement.ORT_GPU_RELEASE``), every com.fqvit node one in
    libfqvit_ops_cuda.so; the cpu graph's uint8 MatMulIntegers are reported, and nothing else (the control, which can
    fail: a PTS+LIS ViT's cpu graph has none left to report, the other three have some)."""
    from fqvit_export.deploy.library import custom_ops_library
    from fqvit_export.deploy.kernels import registered_kernels
    from fqvit_export.deploy.placement import cuda_fallbacks
    cal = calibrated(model, **CONFIGS[config])
    cuda, cpu = build_onnx(cal, device="cuda")[0], build_onnx(cal, device="cpu")[0]
    assert cuda_fallbacks(cuda) == []
    # No int64 shape arithmetic at run time: onnxruntime keeps such nodes on the CPU, which a CUDA session with CPU
    # fallback disabled refuses (the prefix and zero tokens are broadcast with Where instead of Shape -> Expand).
    from fqvit_export.deploy.placement import value_type_strings
    types = value_type_strings(cuda)
    assert [n.name for n in cuda.graph.node if any(types.get(o) == "tensor(int64)" for o in n.output)] == []
    reported = cuda_fallbacks(cpu)  # the control: with LIS a ViT graph has no MatMulInteger left
    assert len(reported) == sum(n.op_type == "MatMulInteger" for n in cpu.graph.node)
    assert all("MatMulInteger" in line for line in reported)
    lib = custom_ops_library(cuda=True)
    if lib is None:
        pytest.skip("libfqvit_ops_cuda.so not built (no nvcc): the com.fqvit half of the check needs it")
    kernels = registered_kernels(lib)
    assert _fqvit_fallbacks(cuda, kernels) == []
    # kernels on uint8 codes: no int8 code in or out (QLinear's weight is int8 in both code types)
    uint8 = [k for k in kernels if "int8" not in k["inputs"][:1] + k["outputs"]]
    assert _fqvit_fallbacks(cpu, uint8) == []
    assert _fqvit_fallbacks(cuda, uint8)  # uint8-only: reported


def test_token_max_pool_placement():
    """The 'max' token pooling takes ReduceMax of codes, which CUDA has no 8-bit kernel for: the cuda graph reduces
    in int32 (exactly) and still gives the cpu graph's logits."""
    import torch
    from fqvit_export.api import calibrate
    from fqvit_export.models.registry import ModelSpec
    from fqvit_export.deploy.placement import cuda_fallbacks
    from fqvit_export.quant.point import QuantConfig
    from conftest import IMAGENET
    spec = ModelSpec("vit_small_patch16_224", random_init=True,
                     model_kwargs={"depth": 1, "global_pool": "avgmax", "class_token": False, "img_size": 64})
    cal = calibrate(spec, QuantConfig(pts=True), calib_dir=IMAGENET, calib_size=2, batch_size=2, progress=False)
    models = {d: build_onnx(cal, simplify=False, device=d)[0] for d in ("cpu", "cuda")}
    assert any(n.op_type == "ReduceMax" for n in models["cuda"].graph.node)
    assert cuda_fallbacks(models["cuda"]) == []
    x = torch.randn(2, *cal.data_cfg["input_size"]).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeviceWarning)
        out = {d: Session(m.SerializeToString(), library="off", providers=CPU)(x) for d, m in models.items()}
    assert np.array_equal(out["cpu"], out["cuda"])
