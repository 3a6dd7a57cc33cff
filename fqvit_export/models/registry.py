"""Model names: FQ-ViT's eight seed models, the bundled CIFAR-10 models, and any timm ViT/DeiT/Swin.

``create(spec)`` returns a float timm model in eval mode whose ``pretrained_cfg`` carries the data config that
:func:`fqvit_export.data.resolve_data_config` resolves the way timm does. Weights come from exactly one place, in this
order: ``--weights PATH``, the bundled checkpoint of a bundled name, ``--random-init``, else timm's pretrained weights
(the hub, or its local cache), which is what FQ-ViT quantizes. :func:`weights_info` says which, for the metadata.
"""
from __future__ import annotations

import contextlib
import difflib
import json
import pickle
from dataclasses import asdict, dataclass, field
from pathlib import Path

import timm
import torch
from torch import nn

from ..files import file_sha256
from .adapters import check_supported, family_for, supported_classes, timm_class
from .names import BUNDLED_MODELS, FQVIT_MODELS, ModelError, hub_reachable, no_weights_error

__all__ = ["FQVIT_MODELS", "BUNDLED_MODELS", "CIFAR10_CLASSES", "ModelSpec", "ModelError", "create",
           "available_models", "weights_info", "class_labels"]

_FQVIT_CROP = {"deit": 0.875, "vit": 0.9, "swin": 0.9}
"""FQ-ViT's eval crop per family (timm's own DeiT configs say 0.9; mean/std already match FQ-ViT's)."""

_BUNDLED_DIR = Path(__file__).parent / "bundled"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
"""CIFAR-10's classes in the ImageFolder (sorted) order the bundled models were trained with."""


@dataclass
class ModelSpec:
    """Everything needed to rebuild the same float model (stored in calib.pt and ONNX metadata)."""

    name: str
    weights: str | None = None
    random_init: bool = False
    model_kwargs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.weights is not None and self.random_init:
            raise ModelError("--weights and --random-init exclude each other")

    @property
    def source(self) -> str:
        """Where the weights come from: ``file``, ``bundled``, ``random`` or ``hub``."""
        if self.weights is not None:
            return "file"
        if self.name in BUNDLED_MODELS:
            return "bundled"
        return "random" if self.random_init else "hub"

    def to_dict(self) -> dict:
        """The fields as plain values, for calib.pt and the ONNX metadata (:meth:`from_dict` reads them back)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelSpec":
        """Read a spec written by this or an earlier version (which had ``pretrained`` and random by default)."""
        d = dict(d)
        if "pretrained" in d:
            pretrained = d.pop("pretrained")
            d.setdefault("random_init", not pretrained and d.get("weights") is None and d["name"] not in BUNDLED_MODELS)
        return cls(**d)


def available_models() -> list[str]:
    """The short names this tool knows itself (FQ-ViT's eight, then the bundled ones); any timm ViT/DeiT/Swin name
    works too, so this is the list for help texts and errors, not a limit."""
    return [*FQVIT_MODELS, *BUNDLED_MODELS]


def _card(name: str) -> dict:
    return json.loads((_BUNDLED_DIR / f"{name}.json").read_text())


def _create_bundled(spec: ModelSpec) -> nn.Module:
    card = _card(spec.name)
    try:
        model = timm_class(card["timm_class"])(**{**card["kwargs"], **spec.model_kwargs})
    except TypeError as e:
        raise ModelError(f"bad --model-kwargs for {spec.name}: {e}") from None
    data = card["data"]
    model.pretrained_cfg = {"mean": tuple(data["mean"]), "std": tuple(data["std"]),
                            "input_size": tuple(data["input_size"]), "crop_pct": data["crop_pct"],
                            "interpolation": data["interpolation"], "crop_mode": "center",
                            "num_classes": card["kwargs"]["num_classes"]}
    if spec.weights is None:
        load_weights(model, _BUNDLED_DIR / f"{spec.name}.safetensors")
    return model


def _timm_name(name: str) -> str:
    timm_name = FQVIT_MODELS.get(name, name)
    if not timm.is_model(timm_name):
        close = difflib.get_close_matches(name, [*available_models(), *timm.list_models(["vit_*", "deit*", "swin_*"])],
                                            n=3, cutoff=0.75)
        if close:
            raise ModelError(f"unknown model {name!r}; did you mean {' or '.join(close)}?")
        raise ModelError(f"unknown model {name!r}: use one of {', '.join(available_models())} "
                         f"or a timm ViT/DeiT/Swin name (e.g. deit3_small_patch16_224, deit_base_patch16_224.fb_in1k)")
    return timm_name


def _hub_cached(timm_name: str) -> bool:
    """Whether timm's pretrained file for ``timm_name`` is already in the local huggingface_hub cache."""
    from huggingface_hub import try_to_load_from_cache
    from timm.models import get_pretrained_cfg
    cfg = get_pretrained_cfg(timm_name)
    repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not repo:
        return False
    repo, _, _ = repo.partition(":")
    files = [getattr(cfg, "hf_hub_filename", None), "model.safetensors", "open_clip_pytorch_model.bin",
             "pytorch_model.bin"]
    return any(isinstance(try_to_load_from_cache(repo, f), str) for f in files if f)


@contextlib.contextmanager
def _hub_offline():
    """Make huggingface_hub answer from its cache at once instead of retrying for a minute."""
    from huggingface_hub import constants  # read at call time by the download functions
    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def _check_architecture(spec: ModelSpec, model: nn.Module) -> None:
    if family_for(model) is None:
        raise ModelError(f"{spec.name} is a timm {type(model).__name__}; fqvit-export quantizes {supported_classes()} "
                         f"models (and their subclasses)")
    if getattr(model, "dynamic_img_size", False):  # the graph and its metadata have one input size
        size = "x".join(map(str, model.patch_embed.img_size))
        raise ModelError(f"{spec.name} with dynamic_img_size=True: an exported model takes one fixed input size "
                         f"({size} here); leave dynamic_img_size out and pick the size with --model-kwargs img_size=N")
    check_supported(model)


def _create_timm(spec: ModelSpec) -> nn.Module:
    timm_name = _timm_name(spec.name)
    try:  # the architecture first, on the meta device (no memory, no init): refusals come in well under a second
        with torch.device("meta"):
            _check_architecture(spec, timm.create_model(timm_name, pretrained=False, **spec.model_kwargs))
    except TypeError as e:
        raise ModelError(f"bad --model-kwargs for {timm_name}: {e}") from None
    hub = spec.source == "hub"
    reachable = hub and hub_reachable()
    if hub and not reachable and not _hub_cached(timm_name):  # fail before building the model: in a second
        raise no_weights_error(spec.name, timm_name, "cannot be downloaded here (no route to the hub) and are not cached")
    try:
        with _hub_offline() if hub and not reachable else contextlib.nullcontext():
            model = timm.create_model(timm_name, pretrained=hub, **spec.model_kwargs)
    except TypeError as e:
        raise ModelError(f"bad --model-kwargs for {timm_name}: {e}") from None
    except RuntimeError as e:
        if not hub:
            raise
        if "No pretrained weights exist" in str(e):
            raise no_weights_error(spec.name, timm_name, "do not exist in timm") from None
        raise no_weights_error(spec.name, timm_name, f"could not be loaded ({str(e).splitlines()[0][:160]})") from None
    except Exception as e:  # hub download failures come as many exception types
        if not hub:
            raise
        raise no_weights_error(spec.name, timm_name, f"could not be fetched ({type(e).__name__})") from None
    return model


def create(spec: ModelSpec) -> nn.Module:
    """Build the float model: ``--weights PATH``, bundled weights, ``--random-init``, else timm's pretrained ones."""
    if spec.weights is not None and not Path(spec.weights).is_file():
        raise ModelError(f"weights file not found: {spec.weights}")
    model = _create_bundled(spec) if spec.name in BUNDLED_MODELS else _create_timm(spec)
    if spec.name in FQVIT_MODELS:
        model.pretrained_cfg = {**model.pretrained_cfg, "crop_pct": _FQVIT_CROP[spec.name.split("_")[0]]}
    if spec.name in BUNDLED_MODELS:
        _check_architecture(spec, model)
    if "img_size" in spec.model_kwargs:  # the data config follows the size the model was built for, as in timm's
        size = tuple(model.patch_embed.img_size)  # train script with --img-size
        model.pretrained_cfg = {**model.pretrained_cfg, "input_size": (model.pretrained_cfg.get("input_size",
                                                                                                 (3,))[0], *size)}
    if spec.weights is not None:
        load_weights(model, Path(spec.weights))
    return model.eval()


def weights_info(spec: ModelSpec) -> dict:
    """Where the weights came from, for the model's metadata: no local paths, a file by name and SHA-256."""
    source = spec.source
    if source == "file":
        return {"source": "file", "file": Path(spec.weights).name, "sha256": file_sha256(spec.weights)}
    if source == "bundled":
        return {"source": "bundled", "name": spec.name}
    if source == "hub":
        from timm.models import get_pretrained_cfg
        timm_name = _timm_name(spec.name)
        cfg = get_pretrained_cfg(timm_name)
        tag = f"{cfg.architecture}.{cfg.tag}" if cfg is not None and cfg.tag else timm_name
        return {"source": "hub", "tag": tag, "hf_hub_id": getattr(cfg, "hf_hub_id", None)}
    return {"source": "random"}


def class_labels(spec: ModelSpec, num_classes: int) -> list[str] | None:
    """Class names for a model's outputs: CIFAR-10's for the bundled models, ImageNet's (timm's own ImageNet info,
    whose subset timm infers from the class count) for the others, else None (``--labels FILE`` names a user's own)."""
    if spec.name in BUNDLED_MODELS:
        return list(CIFAR10_CLASSES) if num_classes == len(CIFAR10_CLASSES) else None
    from timm.data import ImageNetInfo, infer_imagenet_subset
    subset = infer_imagenet_subset({"num_classes": num_classes})
    if subset is None:
        return None
    info = ImageNetInfo(subset)
    return [info.index_to_description(i) for i in range(num_classes)]


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ModelError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            sd = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # torch's own sentence, cut short, reads like advice to unpickle anyway
        if "Unsupported global" in str(e):
            raise ModelError(f"{path} is not a plain checkpoint (it holds pickled Python objects besides tensors) and "
                             f"was not loaded; save only the state_dict, or convert it to .safetensors") from None
        raise ModelError(f"cannot read weights {path}: not a PyTorch checkpoint (unreadable or truncated)") from None
    except Exception as e:
        raise ModelError(f"cannot read weights {path}: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
    for key in ("model", "state_dict", "model_ema"):  # DeiT-style {'model': state_dict} and friends
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
            break
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ModelError(f"{path} does not hold a state_dict of tensors")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def load_weights(model: nn.Module, path: Path) -> None:
    """Load a checkpoint strictly; on mismatch name the first missing, unexpected and mis-shaped keys."""
    sd = _read_state_dict(path)
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [f"{k} {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}" for k in own
              if k in sd and sd[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
            if items:
                more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
                parts.append(f"{label}: {', '.join(items[:3])}{more}")
        raise ModelError(f"checkpoint {path} does not match the architecture: {'; '.join(parts)}")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in sd.items()})
