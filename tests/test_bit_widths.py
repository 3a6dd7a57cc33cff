"""Every supported bit width is bit-exact: with LIS, onnxruntime (function bodies and the kernel library) gives the
quantized PyTorch model's logits bit for bit at ``--w-bits`` / ``--a-bits`` 2 to 8, and 8 is no special case.

Below 8 bits QuantizeLinear, Requantize, PTSLayerNorm and LISMatMul saturate to the whole uint8 range, so the
exporter clips the codes of a narrower point to ``0 .. 2^bits - 1`` as the PyTorch model does; before that, codes
above the calibrated range (images unlike the calibration set) made 6-bit logits differ by up to 1.4. The models are
tiny (two blocks or stages, 64 or 32 px, perturbed random weights), calibrated on 2 ImageNet photos and run on 4
CIFAR-10 images that they never saw, so that values beyond the calibrated ranges do occur.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
import timm
import torch

from conftest import CIFAR_TEST, IMAGENET
from fqvit_export.api import calibrate
from fqvit_export.data import DataOptions, eval_loader
from fqvit_export.deploy.library import custom_ops_library
from fqvit_export.deploy.session import Session
from fqvit_export.export.onnx_export import export_onnx
from fqvit_export.models.registry import ModelSpec
from fqvit_export.quant.point import QuantConfig
from test_variants import TINY, _perturb

MODELS = {"vit": ("vit_tiny_patch16_224", {**TINY, "depth": 2, "img_size": 64}),
          "swin": ("swin_tiny_patch4_window7_224", {"depths": (2, 2), "num_heads": (2, 4), "embed_dim": 32,
                                                    "window_size": 4, "img_size": 32})}

# (model, w_bits, a_bits, attn_bits, pts): activation widths 2 to 7 once each, weight widths 2 to 6 and 8, PTS on and
# off, both model families
CASES = [("vit", 2, 2, 4, True), ("swin", 3, 3, 3, False), ("vit", 8, 4, 4, False), ("swin", 5, 5, 4, True),
         ("vit", 6, 6, 2, True), ("swin", 4, 7, 4, False)]


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    out = {}
    for key, (name, kwargs) in MODELS.items():
        torch.manual_seed(0)
        model = timm.create_model(name, **kwargs)
        _perturb(model)
        out[key] = tmp_path_factory.mktemp(key) / "w.pth"
        torch.save(model.state_dict(), out[key])
    return out


def _calibrated(weights: dict[str, Path], key: str, w: int, a: int, attn: int, pts: bool):
    name, kwargs = MODELS[key]
    return calibrate(ModelSpec(name, weights=str(weights[key]), model_kwargs=kwargs),
                     QuantConfig(w_bits=w, a_bits=a, attn_bits=attn, pts=pts, lis=True),
                     DataOptions(img_size=kwargs["img_size"]), calib_dir=IMAGENET, calib_size=2, batch_size=2,
                     progress=False)


@pytest.mark.parametrize("key, w, a, attn, pts", CASES, ids=[f"{c[0]}-w{c[1]}a{c[2]}attn{c[3]}{'-pts' * c[4]}"
                                                               for c in CASES])
def test_narrow_widths_are_bit_exact(weights, tmp_path, key, w, a, attn, pts):
    cal = _calibrated(weights, key, w, a, attn, pts)
    path = export_onnx(cal, tmp_path / "m.onnx", simplify=False).path
    x = next(iter(eval_loader(CIFAR_TEST, cal.data_cfg, batch_size=4, limit=4)))[0]
    ref = cal.qmodel(x).numpy()
    assert np.array_equal(Session(path, library="off")(x), ref)
    if custom_ops_library() is not None:
        assert np.array_equal(Session(path, library="on")(x), ref)
    assert ref.std() > 0
    # the integer epilogue stays one Requantize (it used to fall back to float QDQ below 8 bits), then a Clip
    ops = Counter((n.domain, n.op_type) for n in onnx.load(path).graph.node)
    assert ops[("com.fqvit", "Requantize")] > 0 and ops[("", "Clip")] >= ops[("com.fqvit", "Requantize")]
    # narrower logit codes need a Clip that LISAttention does not have: the attention stays unfused (q k^T is
    # MatMulInteger -> Requantize -> Clip), as in Swin, whose window attention has a bias and a mask
    assert ops[("com.fqvit", "LISAttention")] == 0 and ops[("com.fqvit", "LogIntSoftmax")] > 0
