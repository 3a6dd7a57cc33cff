"""Hand-off bundle: a fresh process without fqvit_export, Triton's ModelConfig, the manifest, C++ example, errors."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest

from conftest import CIFAR_TEST
from fqvit_export.deploy import bundle as bundle_mod
from fqvit_export.deploy.library import ORT_VERSIONS, custom_ops_library, runtime_dependencies
from fqvit_export.deploy.bundle import BundleError, write_bundle
from fqvit_export.cli import bundle_main, preprocess_main
from fqvit_export.cli import main
from fqvit_export.deploy.card import ModelCard
from fqvit_export.deploy.preprocess import Preprocess
from fqvit_export.deploy.session import open_session

ROOT = Path(__file__).resolve().parents[1]
CPP_EXAMPLE = ROOT / "build" / "example" / "fqvit_classify"
NAME = "cifar10_vit"

pytestmark = pytest.mark.skipif(custom_ops_library() is None, reason="custom-op library not built (pip install .)")


def _test_images(n: int = 30) -> list[Path]:
    """``n`` real CIFAR-10 test images, spread over the classes."""
    per_class = [sorted(d.iterdir()) for d in sorted(CIFAR_TEST.iterdir()) if d.is_dir()]
    return [files[i] for i in range(max(map(len, per_class))) for files in per_class if i < len(files)][:n]


def _with_metadata(src: Path, dst: Path, **props: str) -> Path:
    model = onnx.load(str(src))
    keep = [p for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    onnx.helper.set_model_props(model, {**{p.key: p.value for p in keep}, **props})
    onnx.save(model, str(dst))
    return dst


@pytest.fixture(scope="module")
def exported(exported_vit, tmp_path_factory):
    tmp, path = tmp_path_factory.mktemp("bundle"), exported_vit  # cifar10_vit, PTS + LIS (conftest)
    x = Preprocess(ModelCard.read(path).data_config).batch(_test_images())
    np.save(tmp / "x.npy", x)
    ref = open_session(path, library="on")(x)
    return path, tmp / "x.npy", ref


@pytest.fixture(scope="module")
def bundle(exported):
    path, _, _ = exported
    return write_bundle(path, exported[1].parent / "out")


def _only_numpy_and_onnxruntime(root: Path) -> Path:
    """A folder holding links to the numpy and onnxruntime packages only: the whole import path of the fresh process."""
    import numpy
    import onnxruntime
    root.mkdir()
    for mod in (numpy, onnxruntime):
        pkg = Path(mod.__file__).parent
        for p in (pkg, pkg.with_name(pkg.name + ".libs")):
            if p.exists():
                (root / p.name).symlink_to(p)
    return root


def test_fresh_process_without_fqvit_export_is_bit_exact(bundle, exported, tmp_path):
    """Only onnxruntime and numpy (``python -I -S``: no site-packages, where fqvit_export lies), the Triton copy of
    the model and the bundle's library: the same bits as ``fqvit_export.deploy.session``."""
    _, x_path, ref = exported
    site = _only_numpy_and_onnxruntime(tmp_path / "site")
    script = tmp_path / "deploy.py"
    script.write_text(textwrap.dedent(f"""
        import importlib.util
        import sys
        sys.path.insert(0, {str(site)!r})
        assert importlib.util.find_spec('fqvit_export') is None and importlib.util.find_spec('torch') is None
        assert not any(p.startswith({str(ROOT)!r}) for p in sys.path), sys.path
        import numpy as np
        import onnxruntime as ort
        bundle, x, out = sys.argv[1:4]
        so = ort.SessionOptions()
        so.register_custom_ops_library(bundle + '/lib/libfqvit_ops.so')
        so.add_session_config_entry('session.disable_quant_qdq', '1')
        sess = ort.InferenceSession(bundle + '/triton/{NAME}/1/model.onnx', so, providers=['CPUExecutionProvider'])
        np.save(out, sess.run(None, {{'input': np.load(x)}})[0])
        assert 'fqvit_export' not in sys.modules and 'torch' not in sys.modules
        print('ok', sorted(m for m in ('numpy', 'onnxruntime', 'fqvit_export', 'torch') if m in sys.modules))
    """))
    out = tmp_path / "logits.npy"
    proc = subprocess.run([sys.executable, "-I", "-S", str(script), str(bundle), str(x_path), str(out)],
                          cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "ok ['numpy', 'onnxruntime']" in proc.stdout
    got = np.load(out)
    assert got.shape == ref.shape == (30, 10) and got.dtype == np.float32
    assert np.array_equal(got, ref)


def test_triton_config_parses_and_matches_the_model(bundle):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc
    repo = bundle / "triton" / NAME
    cfg = text_format.Parse((repo / "config.pbtxt").read_text(), mc.ModelConfig())
    model = onnx.load(str(repo / "1" / "model.onnx"))
    inp, out = model.graph.input[0], model.graph.output[0]
    in_dims = [d.dim_value for d in inp.type.tensor_type.shape.dim[1:]]
    assert inp.type.tensor_type.shape.dim[0].dim_param  # dynamic batch: Triton's dims leave it out
    assert cfg.name == NAME and cfg.platform == "onnxruntime_onnx" and cfg.backend == ""
    assert cfg.max_batch_size == bundle_mod.MAX_BATCH_SIZE and cfg.default_model_filename == "model.onnx"
    assert len(cfg.input) == 1 and len(cfg.output) == 1
    assert cfg.input[0].name == inp.name == "input" and cfg.input[0].data_type == mc.TYPE_FP32
    assert list(cfg.input[0].dims) == in_dims == [3, 32, 32] and cfg.input[0].format == mc.ModelInput.FORMAT_NCHW
    assert cfg.output[0].name == out.name == "logits" and cfg.output[0].data_type == mc.TYPE_FP32
    assert list(cfg.output[0].dims) == [out.type.tensor_type.shape.dim[1].dim_value] == [10]
    labels = json.loads({p.key: p.value for p in model.metadata_props}.get("labels", "null"))
    assert cfg.output[0].label_filename == ("labels.txt" if labels else "")
    assert cfg.HasField("dynamic_batching")
    assert [(g.kind, g.count) for g in cfg.instance_group] == [(mc.ModelInstanceGroup.KIND_CPU, 1)]
    assert list(cfg.model_operations.op_library_filename) == [f"/models/{NAME}/libfqvit_ops.so"]
    assert (repo / "libfqvit_ops.so").read_bytes() == custom_ops_library().read_bytes()
    assert sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file()) == \
        sorted(["1/model.onnx", "config.pbtxt", *(["labels.txt"] if labels else []), "libfqvit_ops.so",
                *(d.name for d in runtime_dependencies())])  # oneDNN's libdnnl.so.3 beside the library
    if labels:
        assert (repo / "labels.txt").read_text().splitlines() == labels == (bundle / "labels.txt").read_text().split()


def test_manifest_hashes_every_file(bundle):
    man = json.loads((bundle / "manifest.json").read_text())
    on_disk = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    assert sorted([*man["files"], "manifest.json"]) == on_disk
    for rel, entry in man["files"].items():
        data = (bundle / rel).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}, rel
    assert (man["onnxruntime"]["min"], man["onnxruntime"]["max"]) == ORT_VERSIONS
    assert man["libraries"] == ["lib/libfqvit_ops.so"] and man["device"] == "cpu" and man["model"] == NAME


def test_readme_spells_out_preprocessing_and_registration(bundle, exported):
    text = (bundle / "README.md").read_text()
    pre = json.loads({p.key: p.value for p in onnx.load(str(exported[0])).metadata_props}["preprocessing"])
    for fact in (f"shorter side is {pre['resize_shorter_side']} pixels", pre["interpolation"],
                 f"{pre['center_crop'][0]} x {pre['center_crop'][1]}", str(pre["mean"]), str(pre["std"]), "NCHW",
                 "Classes: 10", "Accuracy", "(divide by 255)"):
        assert fact in text, fact
    for api in ("register_custom_ops_library", "RegisterCustomOpsLibrary(ORT_TSTR", "RegisterCustomOpLibrary(",
                "registerCustomOpLibrary(", "```python", "```cpp", "```csharp", "```java"):
        assert api in text, api
    assert f"{ORT_VERSIONS[0]} to {ORT_VERSIONS[1]}" in text and "/models" in text


def test_labels_weights_accuracy_and_cuda_target(exported, tmp_path):
    labels = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    src = _with_metadata(exported[0], tmp_path / "m.onnx", labels=json.dumps(labels),
                         weights=json.dumps({"source": "bundled"}), accuracy=json.dumps({"top1": 77.98}))
    out = write_bundle(src, tmp_path / "b", name="vit_labels")
    assert (out / "labels.txt").read_text().splitlines() == labels
    assert (out / "triton" / "vit_labels" / "labels.txt").read_text().splitlines() == labels
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc
    cfg = text_format.Parse((out / "triton" / "vit_labels" / "config.pbtxt").read_text(), mc.ModelConfig())
    assert cfg.output[0].label_filename == "labels.txt" and cfg.name == "vit_labels"
    readme = (out / "README.md").read_text()
    assert "top1: 77.98" in readme and '"source": "bundled"' in readme and "labels.txt" in readme

    cuda = _with_metadata(exported[0], tmp_path / "c.onnx", device="cuda")
    if custom_ops_library(cuda=True) is None:
        with pytest.raises(FileNotFoundError, match="libfqvit_ops_cuda.so"):
            write_bundle(cuda, tmp_path / "c")
        return
    out = write_bundle(cuda, tmp_path / "c")
    cfg = text_format.Parse((out / "triton" / NAME / "config.pbtxt").read_text(), mc.ModelConfig())
    assert [g.kind for g in cfg.instance_group] == [mc.ModelInstanceGroup.KIND_GPU]
    assert list(cfg.model_operations.op_library_filename) == [f"/models/{NAME}/libfqvit_ops_cuda.so"]
    assert json.loads((out / "manifest.json").read_text())["libraries"] == ["lib/libfqvit_ops.so",
                                                                           "lib/libfqvit_ops_cuda.so"]


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_errors_leave_nothing(exported, tmp_path, monkeypatch):
    path = exported[0]
    plain = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])]))
    onnx.save(plain, str(tmp_path / "plain.onnx"))
    with pytest.raises(BundleError, match="not made by fqvit-export"):
        write_bundle(tmp_path / "plain.onnx", tmp_path / "b1")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(BundleError, match="not an ONNX model"):
        write_bundle(tmp_path / "junk.onnx", tmp_path / "b1")
    with pytest.raises(FileNotFoundError):
        write_bundle(tmp_path / "none.onnx", tmp_path / "b1")
    assert not (tmp_path / "b1").exists()

    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty; pass --force"):
        write_bundle(path, full)
    with pytest.raises(FileExistsError, match=r"not part of a bundle \(keep.txt\)"):  # --force replaces a bundle only
        write_bundle(path, full, force=True)
    assert [p.name for p in full.iterdir()] == ["keep.txt"]
    (full / "keep.txt").unlink()
    write_bundle(path, full)
    assert (write_bundle(path, full, force=True) / "manifest.json").is_file()
    (tmp_path / "empty").mkdir()
    assert (write_bundle(path, tmp_path / "empty") / "README.md").is_file()

    monkeypatch.setattr(bundle_mod, "custom_ops_library", lambda cuda=False: None)
    with pytest.raises(FileNotFoundError, match="library is not built"):
        write_bundle(path, tmp_path / "b2")
    monkeypatch.undo()

    def boom(*a, **k):
        raise RuntimeError("disk full")
    monkeypatch.setattr(bundle_mod, "_readme", boom)
    with pytest.raises(RuntimeError):
        write_bundle(path, tmp_path / "b3")
    assert not (tmp_path / "b2").exists() and not (tmp_path / "b3").exists() and _leftovers(tmp_path) == []


def test_cli_bundle_and_preprocess(exported, tmp_path, capsys):
    path, x_path, _ = exported
    imgs = [str(p) for p in _test_images(3)]
    assert preprocess_main([str(path), *imgs, "-o", str(tmp_path / "x.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "x.npy"), np.load(x_path)[:3])
    assert bundle_main([str(path), "-o", str(tmp_path / "b"), "--name", "vit"]) == 0
    assert (tmp_path / "b" / "triton" / "vit" / "config.pbtxt").is_file()
    capsys.readouterr()
    for cmd, argv, message in (
            (bundle_main, [str(path), "-o", str(tmp_path / "b")], "not empty; pass --force"),
            (bundle_main, [str(x_path), "-o", str(tmp_path / "c")], "not an ONNX model"),
            (bundle_main, [str(path), "-o", str(tmp_path / "d"), "--name", "a/b"], "bad model name"),
            (preprocess_main, [str(path), str(tmp_path / "no.jpg"), "-o", str(tmp_path / "y.npy")], "image not found")):
        assert cmd(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("fqvit-export: error:") and message in err, err
    assert not (tmp_path / "c").exists() and not (tmp_path / "y.npy").exists()


@pytest.mark.skipif(not CPP_EXAMPLE.is_file(), reason="C++ example not built: examples/cpp/build.sh (tools/setup.sh "
                                                       "runs it)")
def test_cpp_example_matches_python_bit_for_bit(bundle, exported, tmp_path):
    _, x_path, ref = exported
    repo = bundle / "triton" / NAME
    out = tmp_path / "cpp_logits.npy"
    proc = subprocess.run([str(CPP_EXAMPLE), str(repo / "1" / "model.onnx"), str(bundle / "lib" / "libfqvit_ops.so"),
                           str(x_path), "--logits", str(out), "--threads", "2"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == ref.shape[0] and lines[0].startswith("image 0:") and lines[0].count("%") == 5
    assert lines[0].split()[2] == str(int(ref[0].argmax()))
    got = np.load(out)
    assert got.dtype == np.float32 and np.array_equal(got, ref)


def test_export_with_bundle_option(tmp_path, capsys):
    """``fqvit-export MODEL ... -o m.onnx --bundle DIR`` checks DIR before calibrating, then bundles the export."""
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("")
    calib = ["--calib-size", "60", "--calib-batch-size", "30", "--parity-images", "0"]
    assert main([NAME, "--pts", "--lis", "-o", str(tmp_path / "m.onnx"), "--bundle", str(full), *calib]) == 2
    assert "not empty; pass --force" in capsys.readouterr().err and not (tmp_path / "m.onnx").exists()
    assert main([NAME, "--pts", "--lis", "-o", str(tmp_path / "m.onnx"), "--bundle", str(tmp_path / "b"), *calib]) == 0
    assert "wrote bundle" in capsys.readouterr().out
    man = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert man["files"]["model.onnx"]["sha256"] == hashlib.sha256((tmp_path / "m.onnx").read_bytes()).hexdigest()


def test_main_dispatches_bundle_and_preprocess(exported, tmp_path):
    path = exported[0]
    assert main(["bundle", str(path), "-o", str(tmp_path / "b")]) == 0
    assert (tmp_path / "b" / "manifest.json").is_file()
    assert main(["preprocess", str(path), str(_test_images(1)[0]), "-o", str(tmp_path / "x.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "x.npy"), np.load(exported[1])[:1])
