"""A trained model is a directory: ``model.safetensors`` (weights, never unpickled) and
``biosig.json`` (model config, classes, plugin, window settings, normalisation, metrics,
provenance). ``biosig predict`` needs nothing else."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from . import __version__
from .atomic import atomic_directory
from .data.normalize import NormalizationSpec
from .data.windows import MAX_WINDOW
from .errors import BiosigError
from .nn.model import ModelConfig, build_classifier

if TYPE_CHECKING:
    from .plugin.contract import Plugin

WEIGHTS = "model.safetensors"
META = "biosig.json"
FORMAT_VERSION = 1
#: The largest ensemble a checkpoint may claim (and :data:`MAX_WINDOW` the largest window);
#: beyond them a tampered ``biosig.json`` could ask for memory before its weights are checked.
MAX_ENSEMBLE = 64


@dataclass(frozen=True)
class PluginStamp:
    """The plugin a model was trained through: name, version and the options it was given
    (``predict`` and ``evaluate`` reuse the preprocessing ones)."""

    name: str
    version: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckpointMeta:
    """What ``biosig.json`` says of a model, version :data:`FORMAT_VERSION`.

    The typed fields are what the commands read to rebuild and run the model; ``training``,
    ``pretraining``, ``metrics``, ``provenance`` and ``preprocessing`` are records for
    people (settings, scores, the command that made it), kept as JSON tables.
    """

    model: ModelConfig
    plugin: PluginStamp
    window: int
    hop: int
    sample_rate: float
    normalization: NormalizationSpec
    #: the input channels' names, in order (empty when the data had none)
    channels: tuple[str, ...] = ()
    #: empty for a pretrained backbone
    classes: tuple[str, ...] = ()
    ensemble: int = 1
    preset: str | None = None
    #: written by ``biosig pretrain``: a backbone to fine-tune, not a classifier
    pretrained: bool = False
    preprocessing: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] | None = None
    pretraining: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    format: int = FORMAT_VERSION
    biosig_version: str = __version__

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["model"] = dataclasses.asdict(self.model)
        data["plugin"] = dataclasses.asdict(self.plugin)
        data["normalization"] = self.normalization.to_json()
        data["channels"], data["classes"] = list(self.channels), list(self.classes)
        # The checkpoint says which biosig wrote it, whichever read the settings.
        return {"format": FORMAT_VERSION, "biosig_version": __version__, **data}

    @classmethod
    def from_json(cls, data: Any) -> CheckpointMeta:
        """The metadata in ``data`` (parsed ``biosig.json``), checked field by field; a
        :class:`ValueError` names the first field that is wrong."""
        return _parse_meta(data)


def plugin_stamp(plugin: Plugin) -> PluginStamp:
    """What a checkpoint records of the plugin a model is trained through."""
    return PluginStamp(plugin.name, plugin.version, dict(plugin.settings))


def provenance() -> dict[str, Any]:
    """Which biosig made a checkpoint, when, and by what command."""
    return {
        "biosig_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
    }


def _parse_meta(data: Any) -> CheckpointMeta:
    if not isinstance(data, dict):
        raise ValueError(f"a JSON table expected, got {type(data).__name__}")
    if data.get("format") != FORMAT_VERSION:
        raise ValueError(
            f"checkpoint format {data.get('format')!r}, this biosig reads {FORMAT_VERSION}"
        )
    model = _table(data, "model")
    try:
        config = ModelConfig(**model)
    except (TypeError, ValueError) as exc:  # an unknown field, a wrong value
        raise ValueError(f"model: {exc}") from None
    ensemble = _integer(data.get("ensemble", 1), "ensemble", 1, MAX_ENSEMBLE)
    window = _integer(data.get("window"), "window", 1, MAX_WINDOW)
    hop = _integer(data.get("hop"), "hop", 1, MAX_WINDOW)
    sample_rate = data.get("sample_rate")
    if not _number(sample_rate) or not sample_rate > 0:
        raise ValueError(f"sample_rate must be a positive number, got {sample_rate!r}")
    channels = _strings(data.get("channels", []), "channels")
    if channels and len(channels) != config.in_channels:
        raise ValueError(f"{len(channels)} channels named for a model of {config.in_channels}")
    pretrained = data.get("pretrained", False)
    if not isinstance(pretrained, bool):
        raise ValueError(f"pretrained must be true or false, got {pretrained!r}")
    classes = _strings(data.get("classes", []), "classes")
    if not pretrained and len(classes) != config.n_classes:
        raise ValueError(f"{len(classes)} classes named for a model of {config.n_classes}")
    if len(set(classes)) != len(classes):
        raise ValueError("classes are named twice")
    stamp = _table(data, "plugin")
    if not isinstance(stamp.get("name"), str) or not isinstance(stamp.get("options", {}), dict):
        raise ValueError("plugin needs a name and a table of options")
    if not isinstance(stamp.get("version"), (str, type(None))):
        raise ValueError(f"plugin version must be a string, got {stamp.get('version')!r}")
    preset = data.get("preset")
    if not isinstance(preset, (str, type(None))):
        raise ValueError(f"preset must be a string, got {preset!r}")
    records = {
        name: _record(data, name)
        for name in ("preprocessing", "training", "pretraining", "metrics", "provenance")
    }
    return CheckpointMeta(
        model=config,
        plugin=PluginStamp(stamp["name"], stamp.get("version"), dict(stamp.get("options", {}))),
        window=window,
        hop=hop,
        sample_rate=float(sample_rate),
        channels=channels,
        normalization=_normalization(data.get("normalization")),
        classes=classes,
        ensemble=ensemble,
        preset=preset,
        pretrained=pretrained,
        preprocessing=records["preprocessing"] or {},
        training=records["training"],
        pretraining=records["pretraining"],
        metrics=records["metrics"],
        provenance=records["provenance"] or {},
        biosig_version=str(data.get("biosig_version", "")),
    )


def _normalization(data: Any) -> NormalizationSpec:
    try:
        return NormalizationSpec.from_json(data)
    except ValueError as exc:
        raise ValueError(f"normalization: {exc}") from None


def _table(data: dict, name: str) -> dict[str, Any]:
    value = data.get(name)
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a table, got {value!r}")
    return value


def _record(data: dict, name: str) -> dict[str, Any] | None:
    value = data.get(name)
    if value is not None and not isinstance(value, dict):
        raise ValueError(f"{name} must be a table, got {value!r}")
    return value


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: Any, name: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}, got {value!r}")
    return value


def _strings(value: Any, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} must be a list of names, got {value!r}")
    return tuple(value)


def save_checkpoint(directory: Path, model: torch.nn.Module, meta: CheckpointMeta) -> Path:
    """Write weights and metadata into ``directory`` atomically (replacing an older one)."""
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    try:
        with atomic_directory(directory) as tmp:
            save_file(state, str(tmp / WEIGHTS), metadata={"format": "pt"})
            text = json.dumps(meta.to_json(), indent=2) + "\n"
            (tmp / META).write_text(text, encoding="utf-8")
    except (OSError, SafetensorError) as exc:  # a full disk: safetensors says only "I/O"
        raise BiosigError(f"{directory}: cannot write the checkpoint ({exc})") from None
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


def read_meta(path: Path) -> CheckpointMeta:
    """The metadata of the checkpoint at ``path``; anything missing, mistyped or out of
    range is a :class:`BiosigError` naming the file and the field."""
    directory = resolve_checkpoint(path)
    try:
        data = json.loads((directory / META).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BiosigError(f"{directory / META}: unreadable ({exc})") from None
    try:
        return CheckpointMeta.from_json(data)
    except ValueError as exc:
        raise BiosigError(f"{directory / META}: {exc}") from None


def load_checkpoint(
    path: Path, device: torch.device | str = "cpu"
) -> tuple[torch.nn.Module, CheckpointMeta]:
    """The model (in eval mode, on ``device``) and its metadata: a
    :class:`~biosig.nn.model.SignalNet`, or an :class:`~biosig.nn.model.EnsembleClassifier`
    when ``meta.ensemble`` counts more than one network."""
    directory = resolve_checkpoint(path)
    meta = read_meta(directory)
    if meta.pretrained:
        raise BiosigError(
            f"{directory}: a pretrained backbone, not a classifier; "
            f"fine-tune it first with `biosig train --init {path} …`"
        )
    weights = directory / WEIGHTS
    _check_size(weights, meta)
    model = build_classifier(meta.model, meta.ensemble)
    try:
        state = load_file(str(weights), device=str(device))
    except (OSError, SafetensorError) as exc:  # corrupt file: SafetensorError
        raise BiosigError(f"{weights}: cannot load weights ({exc})") from None
    _check_tensors(weights, model.state_dict(), state)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval(), meta


def _check_size(weights: Path, meta: CheckpointMeta) -> None:
    """Refuse metadata that describes a model far larger than its weights file before
    building it: a tampered ``biosig.json`` cannot make us allocate what the file lacks."""
    try:
        with safe_open(str(weights), framework="pt") as f:
            stored = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118 (not a dict)
    except (OSError, SafetensorError) as exc:
        raise BiosigError(f"{weights}: cannot load weights ({exc})") from None
    claimed = meta.ensemble * _parameter_floor(meta.model)
    if claimed > stored:
        raise BiosigError(
            f"{weights}: holds {stored:,} numbers, fewer than the {claimed:,} that "
            f"{META}'s model needs; the two do not belong together"
        )


def _parameter_floor(config: ModelConfig) -> int:
    """A lower bound on one network's stored numbers: the Transformer's projections and
    the widest stage's convolution, which every config has."""
    widest = max(config.stage_channels)
    attention = 4 * config.model_dim**2 + 3 * config.model_dim * config.ffn_hidden
    return config.n_layers * attention + widest * widest * config.kernel_size


def _check_tensors(weights: Path, expected: dict, state: dict) -> None:
    """One line naming what differs between the weights and the model ``biosig.json``
    describes, rather than a page of ``load_state_dict`` errors."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    reshaped = sorted(
        k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape)
    )
    if not (missing or unexpected or reshaped):
        return
    if reshaped:
        name = reshaped[0]
        detail = (
            f"{len(reshaped)} tensors differ in shape (first: {name} is "
            f"{tuple(state[name].shape)} in the file, {tuple(expected[name].shape)} in {META})"
        )
    else:
        detail = f"{len(missing)} tensors missing, {len(unexpected)} not expected" + (
            f" (first missing: {missing[0]})" if missing else f" (first: {unexpected[0]})"
        )
    raise BiosigError(f"{weights}: does not match {META}: {detail}")
