"""Non-finite input (issue #18): the bare ONNX model turns NaN and Inf into finite, confident logits, so every
wrapper refuses them: the session (``open_session``, ``run``), ``evaluate`` on every path, and the Python example in
a bundle's README."""
from __future__ import annotations

import re

import numpy as np
import onnxruntime as ort
import pytest
import torch

from conftest import CIFAR_TEST
from fqvit_export import data
from fqvit_export.api import evaluate
from fqvit_export.cli import main
from fqvit_export.deploy.card import ModelCard
from fqvit_export.deploy.library import custom_ops_library
from fqvit_export.deploy.preprocess import Preprocess
from fqvit_export.deploy.session import InputError, open_session, session_options

BAD = {"nan": np.nan, "+inf": np.inf, "-inf": -np.inf}


def _batch(model) -> np.ndarray:
    """Two real cat photos, preprocessed as the model's card says."""
    return Preprocess(ModelCard.read(model).data_config).batch(sorted((CIFAR_TEST / "cat").iterdir())[:2])


def test_bare_model_gives_confident_logits_for_non_finite_input(exported_vit):
    """What the README states: plain onnxruntime quantizes NaN to the lowest input code (as -Inf) and +Inf to the
    highest; the logits stay finite, and an all-NaN image gets the same answer as an all -Inf one."""
    sess = ort.InferenceSession(str(exported_vit), session_options(), providers=["CPUExecutionProvider"])
    x = _batch(exported_vit)
    out = {k: sess.run(None, {"input": np.full_like(x, v)})[0] for k, v in BAD.items()}
    assert all(np.isfinite(o).all() for o in out.values())
    assert np.array_equal(out["nan"], out["-inf"]) and not np.array_equal(out["nan"], out["+inf"])
    assert np.array_equal(out["-inf"], sess.run(None, {"input": np.full_like(x, -1e30)})[0])
    probs = np.exp(out["nan"] - out["nan"].max(1, keepdims=True))
    assert (probs.max(1) / probs.sum(1)).min() > 0.5  # confident: more than half the probability on one class


@pytest.mark.parametrize("value", BAD.values(), ids=BAD.keys())
@pytest.mark.parametrize("where", ["everywhere", "one value"])
def test_session_refuses_non_finite_input(exported_vit, value, where):
    sess = open_session(exported_vit)
    x = _batch(exported_vit)
    if where == "everywhere":
        x[:] = value
    else:
        x[1, 2, 31, 0] = value
    with pytest.raises(InputError, match=r"holds (1 non-finite value|\d+ non-finite values) \(NaN or Inf\)") as e:
        sess(x)
    assert "\n" not in str(e.value)


def test_evaluate_refuses_non_finite_batches(exported_vit):
    """``api.evaluate`` checks every batch before any model sees it: the PyTorch paths too (before, an FP32 or
    quantized PyTorch model returned an accuracy for NaN images)."""
    x = torch.from_numpy(_batch(exported_vit))
    x[0, 0, 0, 0] = float("nan")
    y = torch.tensor([3, 3])
    for model in (open_session(exported_vit), lambda t: torch.zeros(len(t), 10)):
        with pytest.raises(InputError, match="hold 1 non-finite value "):
            evaluate(model, [(x, y)], progress=False)


def test_evaluate_command_refuses_non_finite_input(exported_vit, monkeypatch, capsys):
    """``fqvit-export evaluate --onnx`` on images whose preprocessing gives NaN: one error line, exit 2."""
    monkeypatch.setattr(data, "eval_transform", lambda cfg: lambda image: torch.full((3, 32, 32), float("nan")))
    assert main(["evaluate", "cifar10_vit", "--onnx", str(exported_vit), "--data-dir", str(CIFAR_TEST), "--limit",
                 "4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("fqvit-export: error:") and "non-finite" in err[-1] and "Traceback" not in "".join(err)


@pytest.mark.skipif(custom_ops_library() is None, reason="custom-op library not built (pip install .)")
def test_bundle_readme_python_example_refuses_non_finite_input(exported_vit, tmp_path, monkeypatch):
    """The bundle README's Python example, run as written: the session's logits on good input, ValueError on NaN
    (before, it returned confident logits)."""
    from fqvit_export.deploy.bundle import write_bundle
    bundle = write_bundle(exported_vit, tmp_path / "bundle")
    code = re.search(r"```python\n(.*?)```", (bundle / "README.md").read_text(), re.S).group(1)
    monkeypatch.chdir(bundle)
    x = _batch(exported_vit)
    scope = {"x": x}
    exec(code, scope)
    assert np.array_equal(scope["logits"], open_session(exported_vit)(x))
    x[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        exec(code, {"x": x})
