"""``fqvit_export.deploy``: a deployment process needs numpy, onnxruntime and Pillow only; its preprocessing equals
timm's eval transform; the model card round-trips and reads older files."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from conftest import CIFAR_TEST, IMAGENET
from fqvit_export.data import eval_transform
from fqvit_export.deploy.card import CardError, ModelCard, read_metadata
from fqvit_export.deploy.library import custom_ops_library
from fqvit_export.deploy.preprocess import Preprocess, load_image
from fqvit_export.deploy.session import Session, model_device

PKG = Path(__file__).resolve().parents[1] / "fqvit_export"
LIS = {"pts": True, "lis": True, "attn_bits": 4}
IMAGENET_CFG = {"input_size": [3, 224, 224], "interpolation": "bicubic", "mean": [0.485, 0.456, 0.406],
                "std": [0.229, 0.224, 0.225], "crop_pct": 0.875, "crop_mode": "center"}
CONFIGS = [
    IMAGENET_CFG,
    {**IMAGENET_CFG, "crop_pct": 0.9, "mean": [0.5] * 3, "std": [0.5] * 3},  # ViT-B
    {**IMAGENET_CFG, "input_size": [3, 32, 32], "crop_pct": 1.0},             # the bundled CIFAR-10 models
    {**IMAGENET_CFG, "input_size": [3, 256, 256], "interpolation": "bilinear", "crop_pct": 1.25},  # crop > resize
    {**IMAGENET_CFG, "input_size": [3, 70, 70], "interpolation": "nearest", "crop_pct": 0.95},
]


def _cifar_images(n: int) -> list[Path]:
    return [sorted(d.iterdir())[0] for d in sorted(CIFAR_TEST.iterdir())][:n]


@pytest.fixture(scope="module")
def exported(calibrated, tmp_path_factory) -> Path:
    from fqvit_export.export.onnx_export import export_onnx
    return export_onnx(calibrated("cifar10_vit", **LIS), tmp_path_factory.mktemp("deploy") / "m.onnx").path


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c['input_size'][1]}-{c['interpolation']}-{c['crop_pct']}")
def test_preprocess_equals_timm_eval_transform(cfg):
    """Every element equal to timm's transform (torchvision on Pillow) on real photos of several sizes and aspects."""
    images = sorted(IMAGENET.glob("*.JPEG"))[:6] + _cifar_images(3)
    ours, timm_tf = Preprocess(cfg), eval_transform(cfg)
    for path in images:
        with Image.open(path) as im:
            want = timm_tf(im.convert("RGB")).numpy()
        got = ours(load_image(path))
        assert got.dtype == np.float32 and got.shape == want.shape == (3, *cfg["input_size"][1:])
        assert np.array_equal(got, want), path.name


def test_preprocess_portrait_and_tiny_images(tmp_path):
    """Portrait orientation (the other branch of the shorter-side resize) and an image smaller than the crop."""
    with Image.open(sorted(IMAGENET.glob("*.JPEG"))[0]) as im:
        im.convert("RGB").transpose(Image.Transpose.ROTATE_90).save(tmp_path / "portrait.png")
        im.convert("RGB").resize((5, 9)).save(tmp_path / "tiny.png")
    for cfg in CONFIGS[:1] + CONFIGS[3:4]:
        for name in ("portrait.png", "tiny.png"):
            with Image.open(tmp_path / name) as im:
                want = eval_transform(cfg)(im.convert("RGB")).numpy()
            assert np.array_equal(Preprocess(cfg)(load_image(tmp_path / name)), want), name


def test_card_round_trip(exported):
    """The exporter's card comes back equal from the file, its bytes, the ModelProto and an open session."""
    card = ModelCard.read(exported)
    assert card.name == "cifar10_vit" and card.num_classes == 10 and card.device == "cpu"
    assert card.labels and len(card.labels) == 10 and card.quantization["lis"] is True
    assert ModelCard.from_metadata(card.to_metadata()) == card
    proto = onnx.load(str(exported))
    assert ModelCard.read(proto) == ModelCard.read(exported.read_bytes()) == card
    assert ModelCard.read(Session(exported, library="off")) == card
    assert read_metadata(exported) == {p.key: p.value for p in proto.metadata_props}
    assert card.preprocessing["resize_shorter_side"] == 32 and card.input_shape == ["batch", 3, 32, 32]


def test_card_reads_older_files(exported, tmp_path):
    """Files from before the card: ``target_device`` instead of ``device``; none at all means cpu."""
    meta = read_metadata(exported)
    del meta["device"]
    assert ModelCard.from_metadata(meta).device == "cpu"
    assert ModelCard.from_metadata({**meta, "target_device": "cuda"}).device == "cuda"
    with pytest.raises(CardError, match="unknown device 'tpu'"):
        ModelCard.from_metadata({**meta, "device": "tpu"})


def test_card_refuses_foreign_and_broken_files(exported, tmp_path):
    foreign = onnx.helper.make_model(onnx.helper.make_graph([], "g", [], []))
    onnx.helper.set_model_props(foreign, {"fqvit_export.version": "0.1.0"})  # the FP32 baseline carries only this
    path = tmp_path / "fp32.onnx"
    onnx.save(foreign, str(path))
    assert ModelCard.read(path, strict=False) is None and model_device(path) is None
    with pytest.raises(CardError, match="not made by fqvit-export"):
        ModelCard.read(path)
    data = exported.read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[:len(data) // 2])
    with pytest.raises(CardError, match="not an ONNX model"):
        ModelCard.read(tmp_path / "cut.onnx")
    (tmp_path / "text.onnx").write_text("hello")
    with pytest.raises(CardError, match="not an ONNX model"):
        ModelCard.read(tmp_path / "text.onnx")
    with pytest.raises(FileNotFoundError, match="directory"):
        ModelCard.read(tmp_path)


def _linked_site(root: Path) -> Path:
    """A folder holding links to numpy, onnxruntime, Pillow and this package only: the whole import path."""
    import numpy
    import onnxruntime
    import PIL
    root.mkdir()
    for mod in (numpy, onnxruntime, PIL):
        pkg = Path(mod.__file__).parent
        for p in (pkg, pkg.with_name(pkg.name + ".libs"), pkg.with_name("pillow.libs")):
            if p.exists() and not (root / p.name).exists():
                (root / p.name).symlink_to(p)
    (root / "fqvit_export").symlink_to(PKG)
    return root


@pytest.mark.skipif(custom_ops_library() is None, reason="custom-op library not built (pip install .)")
def test_deploy_runs_with_numpy_onnxruntime_and_pillow_only(exported, tmp_path):
    """A fresh ``python -I -S`` process whose import path holds numpy, onnxruntime, Pillow and fqvit_export, with
    torch, timm, torchvision and onnx refused at import: it opens the model with the library, preprocesses real
    images and classifies them, with logits equal to this process's."""
    images = _cifar_images(10)
    site = _linked_site(tmp_path / "site")
    script = tmp_path / "serve.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(site)!r})

        class Refuse:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in ('torch', 'timm', 'torchvision', 'onnx'):
                    raise ImportError(f'{{name}} is refused in this process')
        sys.meta_path.insert(0, Refuse())

        import json
        import numpy as np
        import fqvit_export.deploy as d
        model, out, *images = sys.argv[1:]
        sess = d.open_session(model, library='on')
        np.save(out, sess(d.Preprocess(sess.card.data_config).batch(images)))
        top = d.classify(sess, images, top=1)
        heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'timm', 'torchvision', 'onnx'))
        print(json.dumps({{'heavy': heavy, 'top': top, 'custom_ops': sess.custom_ops}}))
    """))
    out = tmp_path / "logits.npy"
    proc = subprocess.run([sys.executable, "-I", "-S", str(script), str(exported), str(out), *map(str, images)],
                          cwd=tmp_path, capture_output=True, text=True, env={"FQVIT_CUSTOM_OPS_LIB":
                                                                             str(custom_ops_library())})
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["heavy"] == [] and res["custom_ops"] is True
    sess = Session(exported, library="on")
    ref = sess(np.stack([eval_transform(sess.card.data_config)(load_image(p)).numpy() for p in images]))
    got = np.load(out)
    assert got.shape == (10, 10) and np.array_equal(got, ref)
    assert [r["top"][0]["class"] for r in res["top"]] == ref.argmax(1).tolist()
    assert all(r["top"][0]["label"] == sess.card.labels[r["top"][0]["class"]] for r in res["top"])


def test_session_refuses_non_finite_input(exported):
    from fqvit_export.deploy.session import InputError
    sess = Session(exported, library="off")
    x = np.zeros((2, 3, 32, 32), np.float32)
    assert np.isfinite(sess(x)).all()
    for bad in (np.nan, np.inf, -np.inf):
        x[1, 0, 3, 4] = bad
        with pytest.raises(InputError, match="1 non-finite value"):
            sess(x)


def test_card_refuses_malformed_metadata(exported):
    meta = read_metadata(exported)
    with pytest.raises(CardError, match="'model' is not a JSON object"):
        ModelCard.from_metadata({**meta, "model": "[1, 2]"})
    with pytest.raises(CardError, match="3 labels for 10 classes"):
        ModelCard.from_metadata({**meta, "labels": '["a", "b", "c"]'})
