"""A pretraining run: unlabelled recordings in, a pretrained backbone out (masked-sample
reconstruction). ``biosig pretrain`` and :func:`biosig.pretrain` call
:func:`run_pretraining`; the loop itself is in :mod:`biosig.training.pretraining`."""

from __future__ import annotations

import dataclasses
import logging
import os
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
from ..nn.model import SignalNet, count_parameters, model_config
from ..nn.presets import PRESETS
from ..plugin.contract import NORMALIZATIONS, SPLITS, Plugin, Recording, iter_recordings
from ..plugin.registry import get_plugin
from .distributed import (
    TRAINING_TIMEOUT,
    SyncPoint,
    World,
    backend_for,
    process_group,
    quiet_unless_main,
    rank_device,
    world_from_env,
)
from .kernel_features import normalization_spec
from .pretraining import (
    PRETRAINED_DIR,
    PretrainConfig,
    Reconstructor,
    build_unlabelled_store,
    pretrain_meta,
)
from .pretraining import pretrain as run_pretrain_loop
from .replacing import replacing_run
from .runs import read_settings, remove_if_empty, resume_run, run_directory, write_settings
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
    #: replace an earlier run that ``out`` holds (else that is an error)
    force: bool = False
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


def _resolve_choices(request: PretrainRequest, plugin: Plugin, device: torch.device) -> _Choices:
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
            "inputs": [os.path.abspath(i) for i in request.inputs],
            "val_fraction": request.val_fraction,
            "split": split_used,
            "n_train_windows": int(len(train_idx)),
            "n_val_windows": int(len(val_idx)),
            "n_recordings": len(read),
            "device": str(choices.device),
        },
        provenance=provenance(),
    )


def run_pretraining(
    request: PretrainRequest,
    echo=click.echo,
    progress: bool = True,
    *,
    state: dict[str, Any] | None = None,
    latest: Path | None = None,
    resumed: bool = False,
) -> Path:
    """Pretrain a backbone as ``request`` says; returns the run directory (the checkpoint
    is its ``pretrained`` directory).

    ``state`` continues the run in ``request.out`` after its last finished epoch, and
    under ``torchrun`` every process runs this with the same request, as
    :func:`~biosig.training.runs.run_training` does."""
    world = world_from_env()
    device = resolve_device(rank_device(request.device, world))
    if world.is_distributed and device.type == "cuda":
        torch.cuda.set_device(device)  # NCCL's collectives run on the current device
    if not world.is_main:
        echo, progress = _silent, False
    data_read = SyncPoint(world, "before pretraining")
    with (
        process_group(world, backend_for(device), TRAINING_TIMEOUT),
        quiet_unless_main(world),
        # rank 0 alone writes the run; a resumed run is the one already there
        replacing_run(request.out, echo, request.force, fresh=world.is_main and not resumed),
    ):
        try:
            return _run_pretraining(
                request, echo, progress, state, latest, world, device, data_read
            )
        except BaseException:
            data_read.abandon()  # the other ranks wait for this one at data_read
            raise


def resume_pretraining(
    run: Path, epochs: int | None = None, echo=click.echo, progress: bool = True
) -> Path:
    """Continue the interrupted pretraining run in ``run`` with its own settings (see
    :func:`~biosig.training.runs.resume_run`)."""
    request, latest = read_settings(run, PretrainRequest, PretrainConfig)
    return resume_run(run, request, latest, epochs, run_pretraining, echo, progress)


def _run_pretraining(
    request: PretrainRequest,
    echo,
    progress: bool,
    state: dict[str, Any] | None,
    latest: Path | None,
    world: World,
    device: torch.device,
    data_read: SyncPoint,
) -> Path:
    plugin = get_plugin(request.plugin)
    plugin.configure(request.plugin_options)
    choices = _resolve_choices(request, plugin, device)
    damage = DamagePolicy(request.strict)
    store, recordings = _read_unlabelled(request, plugin, choices, damage, progress)
    config = request.config
    train_idx, val_idx, split_used = split_examples(
        store, choices.split, request.val_fraction, config.seed
    )
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise BiosigError(
            f"cannot hold out {request.val_fraction:g} of {len(store)} windows for "
            "validation; add recordings or change --val-fraction"
        )
    norm_spec = normalization_spec(choices.normalization, store, train_idx)
    seed_everything(config.seed)
    # One placeholder class: the pool and head are not trained here, and fine-tuning
    # makes its own.
    backbone = SignalNet(model_config(request.preset, store.n_channels, 1))
    run_dir, latest = run_directory(request.out, RUNS / plugin.name / "pretrain", world, latest)
    meta = _backbone_meta(
        request, plugin, backbone, recordings, store, choices, norm_spec,
        (train_idx, val_idx, split_used),
    )  # fmt: skip
    _announce(request, backbone, meta, (train_idx, val_idx, split_used), device, world, echo)
    resolved = dataclasses.replace(
        request,
        inputs=[os.path.abspath(i) for i in request.inputs],
        window=choices.window,
        hop=choices.hop,
        normalization=choices.normalization,
        sample_rate=choices.sample_rate,
        split=choices.split,
        plugin_options=plugin.settings,
    )
    try:
        if world.is_main:
            write_settings(run_dir, resolved, latest is not None)
        data_read.reach()
        result = run_pretrain_loop(
            Reconstructor(backbone), store, train_idx, val_idx, config, norm_spec, device,
            run_dir, meta, progress=progress, echo=echo, state=state, world=world,
        )  # fmt: skip
    except BaseException:
        if request.out is None and world.is_main:
            remove_if_empty(run_dir)
        raise
    if world.is_main and latest is not None:
        point_link(latest, run_dir)
    echo(
        f"reconstruction val loss {result.val_loss:.4f} (predicting zeros: "
        f"{result.val_zero_loss:.4f})"
    )
    damage.report()
    echo(f"pretrained backbone written to {run_dir / PRETRAINED_DIR}")
    return run_dir


def _read_unlabelled(
    request: PretrainRequest,
    plugin: Plugin,
    choices: _Choices,
    damage: DamagePolicy,
    progress: bool,
) -> tuple[ExampleStore, list[Recording]]:
    """Every window of the inputs, unlabelled, and the recordings they came from."""
    files = plugin.find(request.inputs)
    recordings = list(iter_recordings(plugin, files, damage.handle))
    if not recordings:
        raise BiosigError(f"no recordings found in {', '.join(request.inputs)}")
    store = build_unlabelled_store(
        plugin, recordings, choices.window, choices.hop, choices.sample_rate,
        store_dir=request.out, progress=progress, on_damage=damage.handle,
    )  # fmt: skip
    return store, recordings


def _announce(request, backbone, meta, split, device, world, echo) -> None:
    train_idx, val_idx, split_used = split
    held_out = "whole groups held out" if split_used == "group" else "the tail of each recording"
    config = request.config
    echo(
        f"pretraining {request.preset} backbone ({count_parameters(backbone):,} parameters) "
        f"on {len(train_idx)} windows, validating on {len(val_idx)} ({held_out}; "
        f"{meta.pretraining['n_recordings']} recordings); hiding {config.mask_ratio:g} "
        f"of each window in spans of about {config.mask_span} samples, on {device}"
        + (f", {world.world_size} processes" if world.is_distributed else "")
    )


def _silent(*_: Any, **__: Any) -> None:
    """``echo`` on ranks other than 0."""
