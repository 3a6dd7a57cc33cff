"""Hand-off bundle: an exported model plus everything a deployment team needs to run it without this package.

``write_bundle(model.onnx, DIR)`` writes::

    DIR/model.onnx                       the model, unchanged
    DIR/lib/libfqvit_ops.so              the com.fqvit kernel library (+ libfqvit_ops_cuda.so for a CUDA model)
    DIR/labels.txt                       class names, one a line (when the model's metadata has them)
    DIR/triton/<name>/config.pbtxt       a Triton Inference Server model repository (onnxruntime backend)
    DIR/triton/<name>/1/model.onnx
    DIR/triton/<name>/<library>.so       the library Triton's ``model_operations`` names
    DIR/README.md                        what the model is, its preprocessing, how to register the library
    DIR/manifest.json                    SHA-256 and size of every file, supported onnxruntime versions

Everything is read from the model's card (:class:`~fqvit_export.deploy.card.ModelCard`, which holds the defaults
for older files) and its graph. The directory is
assembled in a temporary sibling and renamed into place, so an error leaves nothing behind.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import onnx

from .. import __version__
from .card import CardError, ModelCard, read_metadata
from .library import ORT_VERSIONS, custom_ops_library, runtime_dependencies
from ..files import file_sha256, umask_mode, write_error

__all__ = ["BundleError", "TRITON_REPOSITORY", "write_bundle", "check_bundle_dir", "triton_config", "bundle_metadata",
           "manifest"]

TRITON_REPOSITORY = "/models"
"""Where the Triton server sees ``DIR/triton`` (``--model-repository=/models``, the usual container mount).

Triton's onnxruntime backend hands ``op_library_filename`` straight to onnxruntime's ``RegisterCustomOpsLibrary``
(``dlopen``): a relative path would resolve against the server's working directory, not the model folder, so the
config names the library by its absolute path under this mount. Pass ``triton_repository`` to change it.
"""
MAX_BATCH_SIZE = 64
_ORT_TYPES = {onnx.TensorProto.FLOAT: "TYPE_FP32", onnx.TensorProto.FLOAT16: "TYPE_FP16",
              onnx.TensorProto.UINT8: "TYPE_UINT8", onnx.TensorProto.INT8: "TYPE_INT8",
              onnx.TensorProto.INT32: "TYPE_INT32", onnx.TensorProto.INT64: "TYPE_INT64"}


class BundleError(ValueError):
    """The model cannot be bundled (not an fqvit-export model, bad name); the message is for the user as is."""


# --- reading the model ---------------------------------------------------------------------------------------------

def _load(model_path: Path) -> tuple[onnx.ModelProto, ModelCard]:
    """The model and its card, or a one-line :class:`BundleError` for a file that cannot be bundled."""
    if not model_path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {model_path}")
    try:
        model = onnx.load(str(model_path), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError, RuntimeError, ... on a file that is not a model
        raise BundleError(f"{model_path} is not an ONNX model ({type(e).__name__})") from None
    if any(onnx.external_data_helper.uses_external_data(t) for t in model.graph.initializer):
        raise BundleError(f"{model_path} keeps tensors in external data files, which a bundle does not copy")
    try:
        card = ModelCard.from_metadata(read_metadata(model), what=str(model_path))
    except CardError as e:
        raise BundleError(f"{e}; export it with fqvit-export first") from None
    return model, card


def _value_info(vi: onnx.ValueInfoProto) -> dict:
    """Name, element type and dims (symbolic dims as -1) of a graph input or output."""
    tt = vi.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
    return {"name": vi.name, "elem_type": tt.elem_type, "dims": dims}


def bundle_metadata(model: onnx.ModelProto, card: ModelCard | None = None) -> dict:
    """The facts a bundle is generated from: the model card's fields (as a dict, plus ``preprocessing``) and the
    graph's first input and output. ``card``: the model's card when already read."""
    card = card or ModelCard.read(model)
    return {**vars(card), "preprocessing": card.preprocessing, "model": {"name": card.name, **card.model},
            "doc": model.doc_string, "input": _value_info(model.graph.input[0]),
            "output": _value_info(model.graph.output[0])}


# --- Triton ------------------------------------------------------------------------------------------------------

def triton_config(info: dict, name: str, library: str, labels: bool):
    """Triton ``ModelConfig`` protobuf for the onnxruntime backend.

    Args:
        info: ``bundle_metadata()`` of the model.
        name: model name (also the folder name in the repository).
        library: the path Triton passes to onnxruntime's ``RegisterCustomOpsLibrary``.
        labels: whether ``labels.txt`` sits beside ``config.pbtxt`` (becomes the output's ``label_filename``).
    """
    from tritonclient.grpc import model_config_pb2 as mc  # only the bundle needs tritonclient's protobufs

    def dtype(elem_type: int) -> int:
        if elem_type not in _ORT_TYPES:
            raise BundleError(f"tensor type {onnx.TensorProto.DataType.Name(elem_type)} has no Triton type here")
        return mc.DataType.Value(_ORT_TYPES[elem_type])

    inp, out = info["input"], info["output"]
    batched = bool(inp["dims"]) and inp["dims"][0] == -1 and bool(out["dims"]) and out["dims"][0] == -1
    cfg = mc.ModelConfig(name=name, platform="onnxruntime_onnx", max_batch_size=MAX_BATCH_SIZE if batched else 0,
                         default_model_filename="model.onnx")
    ci = cfg.input.add(name=inp["name"], data_type=dtype(inp["elem_type"]),
                       dims=inp["dims"][1:] if batched else inp["dims"])
    if info["input_layout"] == "NCHW" and len(ci.dims) == 3:
        ci.format = mc.ModelInput.FORMAT_NCHW
    co = cfg.output.add(name=out["name"], data_type=dtype(out["elem_type"]),
                        dims=out["dims"][1:] if batched else out["dims"])
    if labels:
        co.label_filename = "labels.txt"
    if batched:
        cfg.dynamic_batching.max_queue_delay_microseconds = 100
    cuda = info["device"] == "cuda"
    cfg.instance_group.add(count=1, kind=mc.ModelInstanceGroup.KIND_GPU if cuda else mc.ModelInstanceGroup.KIND_CPU)
    cfg.model_operations.op_library_filename.append(library)
    return cfg


def _pbtxt(cfg) -> str:
    from google.protobuf import text_format
    return text_format.MessageToString(cfg)


# --- README ------------------------------------------------------------------------------------------------------

def _accuracy_lines(info: dict) -> list[str]:
    acc = info["accuracy"]
    if not acc:
        return ["Not measured at export. Measure it on your own labelled images, e.g. "
                "`fqvit-export evaluate MODEL --onnx model.onnx --data-dir DIR` (with fqvit-export installed)."]
    if isinstance(acc, dict):
        return [f"- {k}: {v}" for k, v in acc.items()]
    return [str(acc)]


def _readme(info: dict, name: str, libs: list[str], triton_lib: str, has_labels: bool) -> str:
    pre, quant, calib, spec = info["preprocessing"], info["quantization"], info["calibration"], info["model"]
    inp, out = info["input"], info["output"]
    lib = f"lib/{libs[-1]}"
    shape = ["batch" if d == -1 else str(d) for d in inp["dims"]]
    crop = pre.get("center_crop", inp["dims"][2:])
    qdesc = ", ".join(f"{k}={v}" for k, v in quant.items() if k != "extra") if quant else "unknown"
    weights = info["weights"]
    providers = '["CUDAExecutionProvider", "CPUExecutionProvider"]' if info["device"] == "cuda" \
        else '["CPUExecutionProvider"]'
    lines = [
        f"# {name}: FQ-ViT integer ONNX model", "",
        f"Made by fqvit-export {info['tool_version']} (`com.fqvit` op version {info['op_version']}). "
        f"{info['doc'] or ''}".rstrip(), "",
        "## The model", "",
        f"- Network: `{spec.get('name', name)}`" + (f", weights: `{json.dumps(weights)}`" if weights else ""),
        f"- Quantization: {qdesc}",
        f"- Calibration: `{json.dumps(calib)}`" if calib else "- Calibration: not recorded",
        f"- Device: {info['device'].upper()} (Triton instance group "
        f"`KIND_{'GPU' if info['device'] == 'cuda' else 'CPU'}`)",
        "", "### Accuracy", "", *_accuracy_lines(info), "",
        "## Input and output", "",
        f"- Input `{inp['name']}`: float32, layout {info['input_layout']}, shape [{', '.join(shape)}]",
        f"- Output `{out['name']}`: float32 logits, shape [batch, {info['num_classes'] or out['dims'][-1]}]"
        " (apply softmax for probabilities)",
        f"- Classes: {info['num_classes'] or out['dims'][-1]}"
        + (" (names in `labels.txt`, one a line, in class-index order)" if has_labels else " (no class names in the "
           "model: class indices only)"),
        "", "## Preprocessing (do exactly this, in this order)", "",
        f"1. Decode the image as {pre.get('color', 'RGB')} (8-bit per channel).",
        f"2. Resize so that the shorter side is {pre.get('resize_shorter_side')} pixels, keeping the aspect ratio, "
        f"with {pre.get('interpolation', 'bicubic')} interpolation.",
        f"3. Center-crop to {crop[0]} x {crop[1]} (height x width; crop_pct {pre.get('crop_pct')}).",
        "4. Scale to [0, 1] (divide by 255) as float32.",
        f"5. Normalize per channel: (x - mean) / std with mean = {pre.get('mean')}, std = {pre.get('std')} (R, G, B).",
        f"6. Lay out as {info['input_layout']} (channels first) and stack images into a batch.", "",
        "## Registering the kernel library", "",
        f"The model's `com.fqvit` ops also ship as ONNX functions, so stock onnxruntime runs it without the library "
        f"(same results, several times slower). Register `{lib}` for integer speed. It is built against onnxruntime "
        f"{ORT_VERSIONS[0]} headers and loads in onnxruntime {ORT_VERSIONS[0]} to {ORT_VERSIONS[1]} (Linux x86_64).",
        "Set the session option `session.disable_quant_qdq` to `1` as below: it keeps onnxruntime from fusing "
        "quantized adds with its own rounding, which keeps the outputs bit-identical with the reference.", "",
        "The model does not check its input: NaN and infinite values quantize to its lowest or highest input code "
        "like any other value and give finite, confident logits (an all-NaN image is classified as confidently as an "
        "all -Inf one, with the same answer). Refuse them before calling it, as the Python example does.", "",
        "Python:", "", "```python", "import numpy as np", "import onnxruntime as ort", "so = ort.SessionOptions()",
        f'so.register_custom_ops_library("{lib}")', 'so.add_session_config_entry("session.disable_quant_qdq", "1")',
        f'sess = ort.InferenceSession("model.onnx", so, providers={providers})',
        f'x = np.ascontiguousarray(x, dtype=np.float32)   # x: the preprocessed batch, {info["input_layout"]}',
        "if not np.isfinite(x).all():", '    raise ValueError("the input holds NaN or Inf: check the decoding and '
        'preprocessing")', f'logits = sess.run(None, {{"{inp["name"]}": x}})[0]', "```", "",
        "C++:", "", "```cpp", "Ort::Env env;", "Ort::SessionOptions so;",
        f'so.RegisterCustomOpsLibrary(ORT_TSTR("{lib}"));', 'so.AddConfigEntry("session.disable_quant_qdq", "1");',
        'Ort::Session session(env, ORT_TSTR("model.onnx"), so);', "```", "",
        "C#:", "", "```csharp", "using var so = new SessionOptions();", f'so.RegisterCustomOpLibrary("{lib}");',
        'so.AddSessionConfigEntry("session.disable_quant_qdq", "1");',
        'using var session = new InferenceSession("model.onnx", so);', "```", "",
        "Java:", "", "```java", "OrtEnvironment env = OrtEnvironment.getEnvironment();",
        "OrtSession.SessionOptions so = new OrtSession.SessionOptions();",
        f'so.registerCustomOpLibrary("/absolute/path/to/{lib}");',
        'so.addConfigEntry("session.disable_quant_qdq", "1");',
        'OrtSession session = env.createSession("model.onnx", so);', "```", "",
        "A complete C++ program (load, register, run a preprocessed `.npy` tensor, print the top-5) is "
        "`examples/cpp/` in the fqvit-export repository.", "",
        "## Triton Inference Server", "",
        f"`triton/` is a model repository with one model, `{name}` (platform `onnxruntime_onnx`, dynamic batching, "
        f"max batch {MAX_BATCH_SIZE}). Mount it at `{TRITON_REPOSITORY}` and start the server with "
        f"`tritonserver --model-repository={TRITON_REPOSITORY}`. `config.pbtxt` names the library by absolute path, "
        f"`{triton_lib}`, because Triton hands it to onnxruntime as is (a relative path would resolve against the "
        "server's working directory). If you mount the repository elsewhere, change `op_library_filename` to "
        f"`<repository>/{name}/{Path(triton_lib).name}`.", "",
        "## Files", "",
        "`manifest.json` lists every file with its SHA-256 and size (check with `sha256sum`), and the supported "
        "onnxruntime versions.", "",
    ]
    return "\n".join(lines)


# --- writing -------------------------------------------------------------------------------------------------------

def manifest(root: Path, extra: dict | None = None) -> dict:
    """SHA-256 and size of every file under ``root`` (POSIX relative paths, sorted), plus ``extra`` fields."""
    files = {p.relative_to(root).as_posix(): {"sha256": file_sha256(p), "size": p.stat().st_size}
             for p in sorted(root.rglob("*")) if p.is_file() and p.name != "manifest.json"}
    return {**(extra or {}), "files": files}


def _libraries(device: str) -> list[Path]:
    cpu = custom_ops_library(cuda=False)
    if cpu is None:
        raise FileNotFoundError("the com.fqvit custom-op library is not built (libfqvit_ops.so: run "
                                "tools/build_custom_ops.sh or reinstall fqvit-export)")
    if device != "cuda":
        return [cpu]
    gpu = custom_ops_library(cuda=True)
    if gpu is None or gpu == cpu:
        raise FileNotFoundError("the model is exported for CUDA but libfqvit_ops_cuda.so is not built (needs nvcc)")
    return [cpu, gpu]


def _foreign_files(out: Path) -> list[str]:
    """Files and folders under ``out`` that no earlier bundle wrote: everything but ``manifest.json`` and the files
    it lists (all of ``out`` when it has no readable manifest)."""
    try:
        listed = set(json.loads((out / "manifest.json").read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        listed = set()
    folders = {parent.as_posix() for f in listed for parent in list(Path(f).parents)[:-1]}  # all but "."
    ours = {"manifest.json", *listed, *folders}
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.relative_to(out).as_posix() not in ours)


def check_bundle_dir(out_dir: str | Path, force: bool = False) -> None:
    """Fail early (before a long export) when ``out_dir`` cannot become a bundle or no CPU library is built.

    ``force`` replaces an earlier bundle only: a folder holding anything a bundle did not write (per its
    ``manifest.json``) is refused, so that no unrelated file, the source model say, is ever deleted.

    Raises:
        FileExistsError: ``out_dir`` is a file, or a non-empty directory without ``force``, or one holding other
            files than an earlier bundle's.
        FileNotFoundError: its parent folder does not exist, or the kernel library is not built.
    """
    out = Path(os.path.abspath(out_dir))
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out_dir} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise FileExistsError(f"{out_dir} exists and is not empty; pass --force to replace the bundle in it")
        foreign = _foreign_files(out)
        if foreign:
            more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
            raise FileExistsError(f"{out_dir} holds files that are not part of a bundle ({', '.join(foreign[:3])}"
                                  f"{more}); --force replaces only an earlier bundle: choose a new or empty folder")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {out.parent}")
    _libraries("cpu")


def write_bundle(model_path: str | Path, out_dir: str | Path, force: bool = False, name: str | None = None,
                 triton_repository: str = TRITON_REPOSITORY) -> Path:
    """Write a self-contained hand-off directory for an fqvit-export model (layout: module docstring).

    Args:
        model_path: an ONNX model written by fqvit-export.
        out_dir: the directory to create; an existing empty one is replaced, a non-empty one only with ``force``.
        force: replace an existing non-empty ``out_dir``.
        name: Triton model name (default: the model's name from its metadata).
        triton_repository: where the server mounts ``out_dir/triton`` (the library path in ``config.pbtxt``).

    Returns:
        ``out_dir`` as an absolute path.

    Raises:
        BundleError: not an fqvit-export model, or a bad name.
        FileExistsError: ``out_dir`` exists and is not empty (without ``force``), holds files that no bundle
            wrote, or is a file.
        FileNotFoundError: the model or the kernel library it needs is missing, or ``out_dir``'s parent.
        WriteError: the disk is full (or another failure to write); nothing is left behind.
    """
    model_path, out = Path(model_path), Path(os.path.abspath(out_dir))
    model, card = _load(model_path)
    info = bundle_metadata(model, card)
    name = name or info["name"]
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name in (".", ".."):
        raise BundleError(f"bad model name {name!r}: use letters, digits, '_', '-', '.'")
    check_bundle_dir(out_dir, force)
    libs = _libraries(info["device"])
    labels = info["labels"]  # a list of one-line names: the card checks it

    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        shutil.copyfile(model_path, tmp / "model.onnx")
        (tmp / "lib").mkdir()
        for lib in libs:
            shutil.copyfile(lib, tmp / "lib" / lib.name)
        for dep in runtime_dependencies():  # oneDNN's libdnnl.so.3: the library's RPATH looks beside it first
            shutil.copyfile(dep, tmp / "lib" / dep.name)
        repo = tmp / "triton" / name
        (repo / "1").mkdir(parents=True)
        shutil.copyfile(model_path, repo / "1" / "model.onnx")
        triton_lib = libs[-1].name  # the CUDA variant holds the CPU kernels too
        shutil.copyfile(libs[-1], repo / triton_lib)
        for dep in runtime_dependencies():
            shutil.copyfile(dep, repo / dep.name)
        if labels:
            text = "".join(f"{s}\n" for s in labels)
            (tmp / "labels.txt").write_text(text)
            (repo / "labels.txt").write_text(text)
        lib_path = f"{triton_repository.rstrip('/')}/{name}/{triton_lib}"
        (repo / "config.pbtxt").write_text(_pbtxt(triton_config(info, name, lib_path, bool(labels))))
        (tmp / "README.md").write_text(_readme(info, name, [p.name for p in libs], lib_path, bool(labels)))
        extra = {"format": 1, "fqvit_export_version": __version__, "model": name, "device": info["device"],
                 "onnxruntime": {"min": ORT_VERSIONS[0], "max": ORT_VERSIONS[1],
                                 "note": f"library built against onnxruntime {ORT_VERSIONS[0]} headers; loads in "
                                         f"{ORT_VERSIONS[0]} .. {ORT_VERSIONS[1]}"},
                 "libraries": [f"lib/{p.name}" for p in libs], "triton_library": lib_path}
        (tmp / "manifest.json").write_text(json.dumps(manifest(tmp, extra), indent=1) + "\n")
        os.chmod(tmp, umask_mode(0o777))  # mkdtemp makes it 0700; the bundle gets the umask's permissions like any dir
        if out.exists():
            _replace_contents(out, tmp)
        else:
            os.replace(tmp, out)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and write_error(e, out) is not e:
            raise write_error(e, out) from None
        raise
    return out


def _replace_contents(out: Path, new: Path) -> None:
    """Move the entries of ``new`` into the existing folder ``out`` in place of its old ones (an empty folder or an
    earlier bundle, :func:`check_bundle_dir`); the folder itself stays, so it may be the working directory. The old
    entries wait in a sibling until the new ones are in, and come back if a move fails."""
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
    moved: list[str] = []
    try:
        for entry in out.iterdir():
            os.replace(entry, old / entry.name)
        for entry in new.iterdir():
            os.replace(entry, out / entry.name)
            moved.append(entry.name)
    except BaseException:
        for name in moved:
            os.replace(out / name, new / name)
        for entry in old.iterdir():
            os.replace(entry, out / entry.name)
        old.rmdir()
        raise
    shutil.rmtree(old, ignore_errors=True)
    new.rmdir()
