"""Finding and loading a trained model with the plugin that reads its inputs, set up as
the model was trained: what ``predict``, ``evaluate`` and the Python API share."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from .checkpoint import load_checkpoint
from .device import resolve_device
from .errors import BiosigError
from .plugin.contract import Plugin
from .plugin.inputs import check_regular
from .plugin.registry import get_plugin

log = logging.getLogger("biosig")

#: Where ``biosig train`` puts runs without ``--out``: ``runs/<plugin>/<time>``, and the
#: link ``runs/<plugin>/latest``.
RUNS = Path("runs")


def label_source(plugin: Plugin, labels: str | Path | None) -> Path | str:
    """``--labels`` as the plugin takes it: one of its label keywords (labels the
    recordings carry, such as ``beats``), else a file that must exist; without one, the
    plugin's default keyword (``defaults.labels``). ``train``, ``evaluate`` and the library
    resolve labels here, so every label error is worded alike."""
    if labels is None or str(labels) == "":
        if plugin.defaults.labels is not None:
            return plugin.defaults.labels
        raise BiosigError(f"--labels is required: {_label_choices(plugin)}")
    if str(labels) in plugin.label_keywords:
        return str(labels)
    path = Path(labels)
    if not path.exists():
        raise BiosigError(f"{path}: labels file not found; {_label_choices(plugin)}")
    return require_file(path, "labels file")


def _label_choices(plugin: Plugin) -> str:
    """What ``--labels`` may be for ``plugin``: its formats and its keywords."""
    choices = f"plugin {plugin.name!r} reads {plugin.label_formats or 'label files'}"
    if plugin.label_keywords:
        choices += f", or takes one of the words {', '.join(plugin.label_keywords)}"
    return choices


def require_file(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise BiosigError(f"{path}: {what} not found")
    check_regular(path, what)
    return path


def latest_model(plugin_name: str) -> Path:
    """``runs/<plugin>/latest``, the model ``biosig predict`` uses when none is given."""
    path = RUNS / plugin_name / "latest"
    if not path.exists():
        raise BiosigError(
            f"no --model given and {path} does not exist: train one first "
            f"(biosig train --plugin {plugin_name} …) or pass --model"
        )
    return path


def load_model_and_plugin(
    plugin_name: str | None, model_path: Path | None, device_name: str
) -> tuple[Plugin, torch.nn.Module, dict[str, Any], torch.device]:
    """The plugin, model (on its device), checkpoint metadata and device that ``predict``
    and ``evaluate`` run with.

    The plugin is resolved first, so ``--plugin nope`` is reported as an unknown plugin and
    not as a missing ``runs/nope/latest``; it is configured with the options the model was
    trained with. Without ``--model`` the plugin's latest run is
    used; without ``--plugin`` the model's own. A plugin other than the model's, or another
    version of it, is warned about: its preprocessing may differ.
    """
    plugin = get_plugin(plugin_name) if plugin_name else None
    if model_path is None:
        if not plugin_name:
            raise BiosigError("give --plugin or --model")
        model_path = latest_model(plugin_name)
    device = resolve_device(device_name)
    model, meta = load_checkpoint(model_path, device)
    trained_with = meta.plugin.name
    if plugin is None:
        plugin = get_plugin(trained_with)
    if plugin.name == trained_with:
        # Read and label the inputs as the training data was (channels, filters, the
        # annotator, the class of unannotated spans); flags may still change these, with a
        # warning where that changes what the model sees.
        known = {o.name for o in plugin.options}
        plugin.configure({k: v for k, v in meta.plugin.options.items() if k in known})
    if plugin.name != trained_with:
        log.warning(
            "model %s was trained with plugin %r, reading with %r",
            model_path,
            trained_with,
            plugin.name,
        )
    elif plugin.version != meta.plugin.version:
        log.warning(
            "model %s was trained with %s plugin %s; this is version %s",
            model_path,
            trained_with,
            meta.plugin.version,
            plugin.version,
        )
    return plugin, model, meta, device
