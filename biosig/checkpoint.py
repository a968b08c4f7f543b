"""A trained model is a directory: ``model.safetensors`` (weights, never unpickled) and
``biosig.json`` (model config, classes, plugin, window settings, normalisation, metrics,
provenance). ``biosig predict`` needs nothing else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import __version__
from .atomic import atomic_directory
from .errors import BiosigError
from .model import ModelConfig, build_classifier

WEIGHTS = "model.safetensors"
META = "biosig.json"
FORMAT_VERSION = 1


def save_checkpoint(directory: Path, model: torch.nn.Module, meta: dict[str, Any]) -> Path:
    """Write weights and metadata into ``directory`` atomically (replacing an older one)."""
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {"format": FORMAT_VERSION, "biosig_version": __version__, **meta}
    with atomic_directory(directory) as tmp:
        save_file(state, str(tmp / WEIGHTS), metadata={"format": "pt"})
        (tmp / META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return Path(directory)


def resolve_checkpoint(path: Path) -> Path:
    """The checkpoint directory for a model path: the directory itself, or a run's ``best``."""
    path = Path(path)
    for candidate in (path, path / "best"):
        if (candidate / META).is_file() and (candidate / WEIGHTS).is_file():
            return candidate
    if not path.exists():
        raise BiosigError(f"{path}: model not found")
    raise BiosigError(f"{path}: not a biosig model (no {META} and {WEIGHTS} in it)")


def read_meta(path: Path) -> dict[str, Any]:
    """The metadata of the checkpoint at ``path``."""
    directory = resolve_checkpoint(path)
    try:
        meta = json.loads((directory / META).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BiosigError(f"{directory / META}: unreadable ({exc})") from None
    if meta.get("format") != FORMAT_VERSION:
        raise BiosigError(
            f"{directory / META}: checkpoint format {meta.get('format')!r}, "
            f"this biosig reads {FORMAT_VERSION}"
        )
    return meta


def load_checkpoint(
    path: Path, device: torch.device | str = "cpu"
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The model (in eval mode, on ``device``) and its metadata: a
    :class:`~biosig.model.SignalNet`, or an :class:`~biosig.model.EnsembleClassifier`
    when ``meta["ensemble"]`` counts more than one network."""
    directory = resolve_checkpoint(path)
    meta = read_meta(directory)
    if meta.get("pretrained"):
        raise BiosigError(
            f"{directory}: a pretrained backbone, not a classifier; "
            f"fine-tune it first with `biosig train --init {path} …`"
        )
    model = build_classifier(ModelConfig(**meta["model"]), int(meta.get("ensemble", 1)))
    try:
        state = load_file(str(directory / WEIGHTS), device=str(device))
        model.load_state_dict(state, strict=True)
    except (OSError, RuntimeError, SafetensorError) as exc:  # corrupt file: SafetensorError
        raise BiosigError(f"{directory / WEIGHTS}: cannot load weights ({exc})") from None
    return model.to(device).eval(), meta
