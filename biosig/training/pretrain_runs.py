"""A pretraining run: unlabelled recordings in, a pretrained backbone out (masked-sample
reconstruction). ``biosig pretrain`` and :func:`biosig.pretrain` call
:func:`run_pretraining`; the loop itself is in :mod:`biosig.training.pretraining`."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch

from ..atomic import point_link
from ..checkpoint import CheckpointMeta, plugin_stamp, provenance
from ..data.damaged import DamagePolicy
from ..data.normalize import NormalizationSpec
from ..data.split import split_examples
from ..data.store import ExampleStore
from ..device import resolve_device
from ..errors import BiosigError
from ..loading import RUNS
from ..nn.model import PRESETS, SignalNet, count_parameters, model_config
from ..plugin.contract import NORMALIZATIONS, SPLITS, Plugin, Recording, iter_recordings
from ..plugin.registry import get_plugin
from .kernel_features import normalization_spec
from .pretraining import (
    PRETRAINED_DIR,
    PretrainConfig,
    Reconstructor,
    build_unlabelled_store,
    pretrain_meta,
)
from .pretraining import pretrain as run_pretrain_loop
from .runs import new_run_dir, remove_if_empty
from .trainer import seed_everything

log = logging.getLogger("biosig")


@dataclasses.dataclass
class PretrainRequest:
    """Everything one pretraining run needs."""

    plugin: str
    inputs: list[str]
    out: Path | None = None
    preset: str = "small"
    window: int | None = None
    hop: int | None = None
    normalization: str | None = None
    sample_rate: float | None = None
    strict: bool = False
    #: fraction of the recordings (groups) held out to score reconstruction
    val_fraction: float = 0.1
    split: str | None = None
    device: str = "auto"
    config: PretrainConfig = dataclasses.field(default_factory=PretrainConfig)
    plugin_options: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class _Choices:
    """The window, hop, normalisation, split, rate and device of a pretraining run,
    resolved and checked before any file is read."""

    window: int
    hop: int
    normalization: str
    split: str
    sample_rate: float
    device: torch.device


def _resolve_choices(request: PretrainRequest, plugin: Plugin) -> _Choices:
    if not request.inputs:
        raise BiosigError("no --input given")
    if request.out is not None and Path(request.out).exists() and not Path(request.out).is_dir():
        raise BiosigError(f"--out {request.out}: exists and is not a directory")
    if request.preset not in PRESETS:
        raise BiosigError(f"--preset {request.preset}: choose from {', '.join(PRESETS)}")
    window = int(request.window or plugin.defaults.window)
    hop = int(request.hop or plugin.defaults.hop)
    if window <= 0 or hop <= 0:
        raise BiosigError(f"--window and --hop must be positive (got {window} and {hop})")
    normalization = request.normalization or plugin.defaults.normalization
    if normalization not in NORMALIZATIONS:
        raise BiosigError(
            f"--normalization {normalization}: choose from {', '.join(NORMALIZATIONS)}"
        )
    split_mode = request.split or plugin.defaults.split
    if split_mode not in SPLITS:
        raise BiosigError(f"--split {split_mode}: choose from {', '.join(SPLITS)}")
    config = request.config
    if not 0 < config.mask_ratio < 1:
        raise BiosigError(f"--mask-ratio must be between 0 and 1, got {config.mask_ratio:g}")
    if config.mask_span < 1:
        raise BiosigError(f"--mask-span must be at least 1 sample, got {config.mask_span}")
    device = resolve_device(request.device)
    sample_rate = float(request.sample_rate or plugin.defaults.sample_rate)
    if sample_rate <= 0:
        raise BiosigError(f"--sample-rate must be positive, got {sample_rate:g}")

    return _Choices(window, hop, normalization, split_mode, sample_rate, device)


def _backbone_meta(
    request: PretrainRequest,
    plugin: Plugin,
    backbone: SignalNet,
    recordings: list[Recording],
    store: ExampleStore,
    choices: _Choices,
    norm_spec: NormalizationSpec,
    split: tuple[np.ndarray, np.ndarray, str],
) -> CheckpointMeta:
    """What the pretrained checkpoint says of the backbone, its data and its training."""
    train_idx, val_idx, split_used = split
    read = set(store.recording_ids)
    first = next(r for r in recordings if r.id in read)
    return CheckpointMeta(
        pretrained=True,
        model=backbone.config,
        preset=request.preset,
        plugin=plugin_stamp(plugin),
        window=choices.window,
        hop=choices.hop,
        sample_rate=choices.sample_rate,
        channels=tuple(first.channels),
        normalization=norm_spec,
        preprocessing=dataclasses.asdict(plugin.defaults),
        pretraining={
            **pretrain_meta(request.config),
            "inputs": [str(i) for i in request.inputs],
            "val_fraction": request.val_fraction,
            "split": split_used,
            "n_train_windows": int(len(train_idx)),
            "n_val_windows": int(len(val_idx)),
            "n_recordings": len(read),
            "device": str(choices.device),
        },
        provenance=provenance(),
    )


def run_pretraining(request: PretrainRequest, echo=click.echo, progress: bool = True) -> Path:
    """Pretrain a backbone as ``request`` says; returns the run directory (the checkpoint
    is its ``pretrained`` directory)."""
    plugin = get_plugin(request.plugin)
    plugin.configure(request.plugin_options)
    choices = _resolve_choices(request, plugin)
    window, hop, normalization = choices.window, choices.hop, choices.normalization
    split_mode, sample_rate, device = choices.split, choices.sample_rate, choices.device
    config = request.config

    damage = DamagePolicy(request.strict)
    files = plugin.find(request.inputs)
    recordings = list(iter_recordings(plugin, files, damage.handle))
    if not recordings:
        raise BiosigError(f"no recordings found in {', '.join(request.inputs)}")
    store = build_unlabelled_store(
        plugin,
        recordings,
        window,
        hop,
        sample_rate,
        store_dir=request.out,
        progress=progress,
        on_damage=damage.handle,
    )
    train_idx, val_idx, split_used = split_examples(
        store, split_mode, request.val_fraction, config.seed
    )
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise BiosigError(
            f"cannot hold out {request.val_fraction:g} of {len(store)} windows for "
            "validation; add recordings or change --val-fraction"
        )
    norm_spec = normalization_spec(normalization, store, train_idx)

    seed_everything(config.seed)
    # One placeholder class: the pool and head are not trained here, and fine-tuning
    # makes its own.
    backbone = SignalNet(model_config(request.preset, store.n_channels, 1))
    model = Reconstructor(backbone)
    run_dir = Path(request.out) if request.out else new_run_dir(RUNS / plugin.name / "pretrain")
    meta = _backbone_meta(
        request, plugin, backbone, recordings, store, choices, norm_spec,
        (train_idx, val_idx, split_used),
    )  # fmt: skip
    held_out = "whole groups held out" if split_used == "group" else "the tail of each recording"
    echo(
        f"pretraining {request.preset} backbone ({count_parameters(backbone):,} parameters) "
        f"on {len(train_idx)} windows, validating on {len(val_idx)} ({held_out}; "
        f"{meta.pretraining['n_recordings']} recordings); hiding {config.mask_ratio:g} "
        f"of each window in spans of about {config.mask_span} samples, on {device}"
    )
    try:
        result = run_pretrain_loop(
            model, store, train_idx, val_idx, config, norm_spec, device, run_dir, meta,
            progress=progress, echo=echo,
        )  # fmt: skip
    except BaseException:
        if request.out is None:
            remove_if_empty(run_dir)
        raise
    if request.out is None:
        point_link(RUNS / plugin.name / "pretrain" / "latest", run_dir)
    echo(
        f"reconstruction val loss {result.val_loss:.4f} (predicting zeros: "
        f"{result.val_zero_loss:.4f})"
    )
    damage.report()
    echo(f"pretrained backbone written to {run_dir / PRETRAINED_DIR}")
    return run_dir
