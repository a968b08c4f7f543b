"""A training run: labelled recordings in, a run directory (checkpoints, history, plots)
out. ``biosig train``, ``biosig demo`` and :func:`biosig.train` call :func:`run_training`.

``torchrun --nproc-per-node N -m biosig train …`` trains on N processes (GPUs) with
DistributedDataParallel; see :func:`run_training`."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch

from ..atomic import atomic_file, point_link
from ..checkpoint import (
    CheckpointMeta,
    load_checkpoint,
    plugin_stamp,
    provenance,
    save_checkpoint,
)
from ..data.damaged import DamagePolicy
from ..data.normalize import NormalizationSpec
from ..data.split import split_examples
from ..data.store import ExampleStore, build_examples, check_classes
from ..data.windows import window_for_labels
from ..device import resolve_device
from ..errors import BiosigError
from ..loading import RUNS, label_source
from ..metrics import not_learned
from ..nn.augment import build_augmentation
from ..nn.losses import LOSSES
from ..nn.model import (
    build_classifier,
    count_parameters,
    fit_to_data,
    fit_to_window,
    model_config,
)
from ..nn.presets import KERNEL_FEATURES, MIN_KERNEL_FEATURES, PRESETS
from ..plugin.contract import NORMALIZATIONS, SPLITS, Plugin, Recording, iter_recordings
from ..plugin.labels import parse_span, restrict_to_span, warn_unlabelled
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
from .kernel_features import (
    choose_normalization,
    default_kernel_features,
    normalization_spec,
    refit_ridge,
)
from .pretraining import PretrainedSettings, load_pretrained_backbone, pretrained_settings
from .replacing import replacing_run, settle_earlier_run
from .trainer import (
    RESUME_DIR,
    SETTINGS_FILE,
    TrainConfig,
    fit,
    load_training_state,
    seed_everything,
)

log = logging.getLogger("biosig")


SETTINGS_FORMAT = 1


@dataclasses.dataclass
class TrainRequest:
    """Everything one training run needs; the CLI and ``biosig demo`` both build one."""

    plugin: str
    inputs: list[str]
    #: a label file or keyword; ``None``: the plugin's default keyword
    labels: str | None
    out: Path | None = None
    preset: str = "small"
    window: int | None = None
    hop: int | None = None
    normalization: str | None = None
    sample_rate: float | None = None
    strict: bool = False
    #: replace an earlier run that ``out`` holds (else that is an error)
    force: bool = False
    #: share of the groups (or of each recording's time) held out to validate; ``None``:
    #: :data:`VAL_FRACTION`, or none in the small-data recipe
    val_fraction: float | None = None
    #: how validation windows are held out: auto, group or time (None: the plugin's)
    split: str | None = None
    #: ``"A:B"``: only this part (fractions of its length) of each recording is used
    span: str | None = None
    device: str = "auto"
    config: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    #: the plugin's own options (``--annotator atr``), by name
    plugin_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: a pretrained backbone (``biosig pretrain``) or trained model to start from
    init: str | None = None
    #: fewer downsampling steps for short windows, narrower late stages for few windows
    fit_model: bool = True
    #: stochastic depth: the last residual block's drop rate (see ModelConfig.drop_path)
    drop_path: float = 0.0
    #: frozen random-kernel features whose ridge model's logits join the head's (0: none;
    #: ``None``: sized to the training set, see biosig.training.kernel_features)
    kernel_features: int | None = None
    #: the held-out accuracies the normalisation was chosen by, where biosig chose it; kept
    #: in the run's settings so that a resumed run's checkpoints still say them
    normalization_scores: dict[str, float] | None = None


def run_training(
    request: TrainRequest,
    echo=click.echo,
    progress: bool = True,
    *,
    state: dict[str, Any] | None = None,
    latest: Path | None = None,
    resumed: bool = False,
) -> Path:
    """Train a model as ``request`` says; returns the run directory.

    ``state`` (a run's saved training state) continues that run in ``request.out`` after
    its last finished epoch; ``latest`` is the link to point at the run when it succeeds
    (by default ``runs/<plugin>/latest`` for a run without ``--out``).

    Under ``torchrun`` every process runs this with the same request: each joins the
    process group (NCCL on its GPU ``cuda:LOCAL_RANK``, gloo on the CPU), reads the data
    itself (the same files, windows and split, all seeded alike: no process waits for
    another's reading, and nothing has to be shipped between them, at the cost of each
    holding its own window store), and they agree that all did before training with
    DistributedDataParallel (see :func:`biosig.training.trainer.fit`). Rank 0 alone prints, shows
    progress and writes the run directory; the others stay silent.
    """
    world = world_from_env()
    device = resolve_device(rank_device(request.device, world))
    if world.is_distributed and device.type == "cuda":
        torch.cuda.set_device(device)  # NCCL's collectives run on the current device
    if not world.is_main:
        echo, progress = _silent, False
    data_read = SyncPoint(world, "before training")
    with (
        process_group(world, backend_for(device), TRAINING_TIMEOUT),
        quiet_unless_main(world),
        # rank 0 alone writes the run; a resumed run is the one already there
        replacing_run(request.out, echo, request.force, fresh=world.is_main and not resumed),
    ):
        try:
            return _run_training(request, echo, progress, state, latest, world, device, data_read)
        except BaseException:
            # A rank that failed before training (unreadable data, say) tells the others,
            # which wait for it at data_read; one that failed later just exits.
            data_read.abandon()
            raise


@dataclasses.dataclass
class _Choices:
    """What a request leaves to the plugin or to a pretrained backbone, resolved and
    checked before any file is read."""

    labels: Path | str
    init: PretrainedSettings | None
    normalization: str
    split: str
    span: tuple[float, float] | None
    sample_rate: float


@dataclasses.dataclass
class _Data:
    """The labelled windows read for training, and how the training set was split."""

    recordings: list[Recording]
    classes: list[str]
    window: int
    hop: int
    store: ExampleStore
    damage: DamagePolicy
    train_idx: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, int))
    val_idx: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, int))
    split: str = ""
    val_fraction: float = 0.0


def _run_training(
    request: TrainRequest,
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
    choices = _resolve_choices(request, plugin)
    data = _read_labelled(request, plugin, choices, progress)
    _split(request, data, choices.split)
    request = _sized(request, data)
    normalization, scores = _normalization(request, choices, data, echo)
    norm_spec = normalization_spec(normalization, data.store, data.train_idx)
    seed_everything(request.config.seed)
    model = _build_model(
        request, choices.init, data.store.n_channels, len(data.classes), data.window,
        len(data.train_idx),
    )  # fmt: skip
    _load_backbone(model, choices.init, echo)
    run_dir, latest = run_directory(request.out, RUNS / plugin.name, world, latest)
    resolved = dataclasses.replace(
        request,
        inputs=[os.path.abspath(i) for i in request.inputs],
        labels=str(choices.labels.resolve())
        if isinstance(choices.labels, Path)
        else choices.labels,
        window=data.window,
        hop=data.hop,
        normalization=normalization,
        sample_rate=choices.sample_rate,
        split=choices.split,
        val_fraction=data.val_fraction,
        plugin_options=plugin.settings,
        normalization_scores=scores,
    )
    meta = _checkpoint_meta(
        resolved, plugin, model, choices, data, norm_spec, scores, device, world
    )  # the absolute inputs: evaluate compares them with files scored from anywhere
    _announce(meta, model, data, device, world, echo)
    try:
        if world.is_main:
            write_settings(run_dir, resolved, latest is not None)
        data_read.reach()
        result = fit(
            model, data.store, data.train_idx, data.val_idx, request.config, norm_spec, device,
            run_dir, meta, progress=progress, echo=echo, state=state, world=world,
        )  # fmt: skip
    except BaseException:
        if request.out is None and world.is_main:
            remove_if_empty(run_dir)
        raise
    if world.is_main:
        _refit_ridge_on_validation(run_dir, data, norm_spec, request.config, echo)
        _write_report(run_dir, result.best_metrics)
        if latest is not None:
            point_link(latest, run_dir)
    _closing_lines(result, data, echo)
    echo(f"model written to {run_dir}")
    return run_dir


def _refit_ridge_on_validation(
    run_dir: Path, data: _Data, norm_spec: NormalizationSpec, config: TrainConfig, echo
) -> None:
    """Once validation has chosen the epoch, the saved models' ridge classifier learns from
    the validation windows too (:func:`refit_ridge`, one fit for ``best/`` and ``last/``);
    their recorded validation scores are those the epoch was chosen by."""
    if not len(data.val_idx):
        return
    saved = [run_dir / name for name in ("best", "last") if (run_dir / name).is_dir()]
    loaded = [load_checkpoint(directory) for directory in saved]
    labelled = np.union1d(data.train_idx, data.val_idx)
    fitted = refit_ridge(
        [model for model, _ in loaded], data.store, labelled, norm_spec, config.seed,
        config.label_smoothing,
    )  # fmt: skip
    if fitted is None:
        return
    windows = len(fitted.loo_logits)
    for directory, (model, meta) in zip(saved, loaded, strict=True):
        training = {**(meta.training or {}), "ridge_windows": windows}
        save_checkpoint(directory, model, dataclasses.replace(meta, training=training))
    echo(
        f"ridge model refitted on the {windows} training and validation windows "
        f"(alpha {fitted.alpha:.3g}, held-out accuracy {fitted.loo_accuracy:.4f})"
    )


def _resolve_choices(request: TrainRequest, plugin: Plugin) -> _Choices:
    """The labels, backbone, normalisation, split, span and rate the run will use; every
    value a flag gave is checked here, before any file is read."""
    if not request.inputs:
        raise BiosigError("no --input given")
    labels_path = label_source(plugin, request.labels)
    if request.out is not None and Path(request.out).exists() and not Path(request.out).is_dir():
        # Found now rather than when the first checkpoint is written, after the data is read.
        raise BiosigError(f"--out {request.out}: exists and is not a directory")
    if request.preset not in PRESETS:
        raise BiosigError(f"--preset {request.preset}: choose from {', '.join(PRESETS)}")
    # A backbone brings the window, rate and normalisation it learnt with, unless told.
    init = pretrained_settings(Path(request.init)) if request.init else None
    if (request.window is not None and request.window <= 0) or (
        request.hop is not None and request.hop <= 0
    ):
        raise BiosigError(
            f"--window and --hop must be positive (got {request.window} and {request.hop})"
        )
    normalization = (
        request.normalization
        or (init and init.meta.normalization.mode)
        or plugin.defaults.normalization
    )
    if normalization not in NORMALIZATIONS:
        raise BiosigError(
            f"--normalization {normalization}: choose from {', '.join(NORMALIZATIONS)}"
        )
    split_mode = request.split or plugin.defaults.split
    if split_mode not in SPLITS:
        raise BiosigError(f"--split {split_mode}: choose from {', '.join(SPLITS)}")
    span = parse_span(request.span) if request.span else None
    _check_config(request)
    try:
        build_augmentation(request.config.augment or [])
    except ValueError as exc:
        raise BiosigError(f"--augment: {exc}") from None
    sample_rate = float(
        request.sample_rate or (init and init.meta.sample_rate) or plugin.defaults.sample_rate
    )
    if sample_rate <= 0:
        raise BiosigError(f"--sample-rate must be positive, got {sample_rate:g}")
    return _Choices(labels_path, init, normalization, split_mode, span, sample_rate)


def _check_config(request: TrainRequest) -> None:
    """The ranges the command's option types check, for requests built in Python."""
    config = request.config
    checks = [
        (config.epochs is None or config.epochs >= 1, f"--epochs {config.epochs}: give 1 or more"),
        (
            config.batch_size is None or config.batch_size >= 1,
            f"--batch-size {config.batch_size}: give 1 or more",
        ),
        (config.lr > 0, f"--lr {config.lr:g}: give a positive learning rate"),
        (
            0 <= config.label_smoothing < 1,
            f"--label-smoothing {config.label_smoothing:g}: give a value in [0, 1)",
        ),
        (config.loss in LOSSES, f"--loss {config.loss}: choose from {', '.join(LOSSES)}"),
        (
            request.kernel_features is None
            or request.kernel_features == 0
            or request.kernel_features >= MIN_KERNEL_FEATURES,
            f"--kernel-features {request.kernel_features}: give 0 (none) or at least "
            f"{MIN_KERNEL_FEATURES}",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise BiosigError(message)


def _read_labelled(
    request: TrainRequest, plugin: Plugin, choices: _Choices, progress: bool
) -> _Data:
    """The recordings, their labels and the labelled windows, read once into a store."""
    damage = DamagePolicy(request.strict)
    files = plugin.find(request.inputs)
    log.info("%d files found in %s", len(files), ", ".join(map(str, request.inputs)))
    recordings = list(iter_recordings(plugin, files, damage.handle))
    if not recordings:
        raise BiosigError(f"no recordings found in {', '.join(request.inputs)}")
    log.info("%d recordings opened; reading labels from %s", len(recordings), choices.labels)
    intervals = plugin.labels(choices.labels, recordings)
    warn_unlabelled(choices.labels, recordings, intervals, plugin.unlabelled_hint)
    if choices.span is not None:
        intervals = restrict_to_span(intervals, recordings, choices.span)
    # a keyword is named as the flag that gave it, so "rhythm: …" is not read as a file
    labels = choices.labels
    classes = check_classes(intervals, labels if isinstance(labels, Path) else f"--labels {labels}")
    window, hop = _window_and_hop(
        request, choices.init, plugin, intervals, recordings, choices.sample_rate
    )
    store = build_examples(
        plugin, recordings, intervals, classes, window, hop, choices.sample_rate,
        store_dir=request.out, progress=progress, on_damage=damage.handle,
    )  # fmt: skip
    _check_every_class_has_windows(store.y, classes)
    log.info(
        "%d windows of %d samples (hop %d) at %g Hz, classes %s",
        len(store), window, hop, choices.sample_rate, ", ".join(classes),
    )  # fmt: skip
    return _Data(recordings, classes, window, hop, store, damage)


def _split(request: TrainRequest, data: _Data, split_mode: str) -> None:
    """Hold out the validation windows (none in the small-data recipe)."""
    data.val_fraction = request.config.validation_fraction(len(data.store), request.val_fraction)
    data.train_idx, data.val_idx, data.split = split_examples(
        data.store, split_mode, data.val_fraction, request.config.seed
    )
    log.info(
        "%d training and %d validation windows (split: %s)",
        len(data.train_idx), len(data.val_idx), data.split,
    )  # fmt: skip


def _sized(request: TrainRequest, data: _Data) -> TrainRequest:
    """Epochs, batch size, patience and the random-kernel branch not given, sized to the
    data: the run's settings and checkpoints record the values used, so ``--resume``
    repeats them exactly."""
    kernel_features = request.kernel_features
    if kernel_features is None:
        kernel_features = default_kernel_features(len(data.train_idx), KERNEL_FEATURES)
    # the recipe as decided on every labelled window, as the hold-out was
    small = request.config.small_data(len(data.store))
    config = request.config.sized_for(len(data.train_idx), small=small)
    log.info(
        "%s: %d epochs of batches of %d, patience %d, augmentation %s, %d random-kernel "
        "features",
        "small-data recipe" if small else "recipe", config.epochs, config.batch_size,
        config.patience, ",".join(config.augment) or "none", kernel_features,
    )  # fmt: skip
    return dataclasses.replace(request, config=config, kernel_features=kernel_features)


def _normalization(
    request: TrainRequest, choices: _Choices, data: _Data, echo
) -> tuple[str, dict[str, float] | None]:
    """The normalisation, and the held-out scores it was chosen by where biosig chose it:
    left to biosig, the scaling under which a ridge model of random-kernel features tells
    the training windows apart best."""
    if request.normalization is not None or choices.init is not None or not request.kernel_features:
        return choices.normalization, request.normalization_scores
    candidates = list(dict.fromkeys([choices.normalization, "window", "dataset"]))
    chosen, scores = choose_normalization(
        candidates, data.store, data.train_idx, data.window, request.kernel_features,
        request.config.seed,
    )  # fmt: skip
    echo(
        f"normalisation {chosen}, chosen on the training windows (ridge held-out accuracy: "
        + ", ".join(f"{m} {a:.4f}" for m, a in scores.items())
        + ")"
    )
    return chosen, scores


def _load_backbone(model: torch.nn.Module, init: PretrainedSettings | None, echo) -> None:
    if init is None:
        return
    for member in getattr(model, "members", [model]):
        loaded = load_pretrained_backbone(member, init.path)
    echo(f"backbone initialised from {init.path} ({len(loaded)} tensors)")


def run_directory(
    out: Path | None, parent: Path, world: World, latest: Path | None
) -> tuple[Path, Path | None]:
    """Where a run goes (``out``, else a new ``parent/<timestamp>``), and the ``latest``
    link to point at it when it succeeds."""
    if out:
        run_dir = Path(out)
    elif world.is_main:
        run_dir = new_run_dir(parent)
    else:  # only rank 0 creates and writes the run directory: never used on the others
        run_dir = parent
    if latest is None and out is None:
        latest = parent / "latest"
    return run_dir, latest


def _checkpoint_meta(
    request: TrainRequest,
    plugin: Plugin,
    model: torch.nn.Module,
    choices: _Choices,
    data: _Data,
    norm_spec: NormalizationSpec,
    normalization_scores: dict[str, float] | None,
    device: torch.device,
    world: World,
) -> CheckpointMeta:
    """What a checkpoint says of the model, its data and its training (``biosig.json``)."""
    labelled = set(data.store.recording_ids)
    first = next(r for r in data.recordings if r.id in labelled)
    init = choices.init
    return CheckpointMeta(
        model=model.config,
        ensemble=request.config.ensemble,
        preset=init.meta.preset if init is not None else request.preset,
        classes=tuple(data.classes),
        plugin=plugin_stamp(plugin),
        window=data.window,
        hop=data.hop,
        sample_rate=choices.sample_rate,
        channels=tuple(first.channels),
        normalization=norm_spec,
        preprocessing=dataclasses.asdict(plugin.defaults),
        training={
            **dataclasses.asdict(request.config),
            "inputs": [str(i) for i in request.inputs],
            "labels": str(choices.labels),
            "val_fraction": data.val_fraction,
            "split": data.split,
            "span": list(choices.span) if choices.span else None,
            "n_train_windows": int(len(data.train_idx)),
            "n_val_windows": int(len(data.val_idx)),
            "n_recordings": len(labelled),
            # the recordings' own rates, which predict and evaluate compare theirs with
            "input_rates": sorted({float(r.fs) for r in data.recordings if r.id in labelled}),
            "device": str(device),
            # --batch-size is per process: the global batch is world_size times it
            "world_size": world.world_size,
            "init": str(init.path) if init is not None else None,
            "fit_model": request.fit_model,
            "normalization_scores": normalization_scores,
        },
        provenance=provenance(),
    )


def _announce(
    meta: CheckpointMeta, model, data: _Data, device: torch.device, world: World, echo
) -> None:
    size = f"{count_parameters(model):,} parameters"
    if meta.ensemble > 1:
        size = f"an ensemble of {meta.ensemble} networks, {size}"
    n_recordings = meta.training["n_recordings"]
    echo(
        f"training {meta.preset} model ({size}) on {len(data.train_idx)} windows, "
        f"{_validation_words(data.split, len(data.val_idx))} {n_recordings} recordings, "
        f"classes: {', '.join(data.classes)}; windows of {data.window} samples) on {device}"
        + (f", {world.world_size} processes" if world.is_distributed else "")
    )


def _closing_lines(result, data: _Data, echo) -> None:
    """The kept epoch's scores, the warning when nothing was learnt, skipped damage."""
    best = result.best_metrics
    scored = "val" if len(data.val_idx) else "train-set"
    echo(
        f"best epoch {result.best_epoch}: {scored} accuracy {best['accuracy']:.4f}, "
        f"macro-F1 {best['macro_f1']:.4f} (majority rate {best['majority_rate']:.4f})"
    )
    _warn_if_not_learned(best, scored)
    data.damage.report()


def resume_training(
    run: Path, epochs: int | None = None, echo=click.echo, progress: bool = True
) -> Path:
    """Continue the interrupted run in ``run`` with its own settings, after its last
    finished epoch (from the first, if none finished); ``epochs`` may raise its total.
    A run that already finished is left as it is. Returns the run directory."""
    request, latest = read_train_settings(run)
    return resume_run(run, request, latest, epochs, run_training, echo, progress)


def read_train_settings(run: Path) -> tuple[TrainRequest, bool]:
    """The request the training run ``run`` was started with (see :func:`read_settings`)."""
    # A run started before the random-kernel branch existed trained without it.
    return read_settings(run, TrainRequest, TrainConfig, {"kernel_features": 0})


def resume_run(
    run: Path,
    request: Any,
    had_latest: bool,
    epochs: int | None,
    start: Callable[..., Path],
    echo=click.echo,
    progress: bool = True,
) -> Path:
    """Continue ``run`` (started with ``request``, a training or pretraining request read
    by :func:`read_settings`) by calling ``start`` with its saved state, unless it already
    finished; ``epochs`` may raise its total."""
    if not world_from_env().is_main:  # under torchrun, rank 0 speaks for the run
        echo = _silent
    if epochs is not None:
        if epochs < request.config.epochs:
            raise BiosigError(
                f"--epochs {epochs}: {run} was started for {request.config.epochs} epochs; "
                "with --resume the total can only be raised"
            )
        request.config = dataclasses.replace(request.config, epochs=epochs)
    state = load_training_state(run)
    total = request.config.epochs
    if state is None:
        echo(f"resuming {run}: no epoch had finished, so from the first of {total}")
    elif state["stopped"]:
        echo(f"{run} stopped early after epoch {state['epoch']}: nothing to resume")
        return run
    elif state["epoch"] >= total:
        echo(
            f"{run} finished all {state['epoch']} epochs: nothing to resume "
            "(raise --epochs to train longer)"
        )
        return run
    else:
        echo(f"resuming {run} after epoch {state['epoch']} of {total}")
    latest = run.parent / "latest" if had_latest else None
    settle_earlier_run(run)
    return start(request, echo, progress, state=state, latest=latest, resumed=True)


def _build_model(
    request: TrainRequest,
    init: PretrainedSettings | None,
    n_channels: int,
    n_classes: int,
    window: int,
    n_train_windows: int,
) -> torch.nn.Module:
    """The classifier to train: the pretrained backbone's architecture with ``--init``, else
    the preset, fitted (unless ``--no-fit-model``) to the window (enough tokens for a short
    series) and to the number of training windows (no 2.4 M parameters for 50 examples);
    an ensemble of ``request.config.ensemble`` such networks when that is more than one."""
    if init is not None:
        if len(init.meta.channels) != n_channels:
            raise BiosigError(
                f"--init {init.path}: pretrained on {len(init.meta.channels)} channels, "
                f"the data has {n_channels}"
            )
        config = dataclasses.replace(
            init.classifier_config(n_classes),
            drop_path=request.drop_path,
            kernel_features=request.kernel_features,
            kernel_window=window if request.kernel_features else 0,
        )
    else:
        config = model_config(
            request.preset,
            n_channels,
            n_classes,
            drop_path=request.drop_path,
            kernel_features=request.kernel_features,
            kernel_window=window if request.kernel_features else 0,
        )
        if request.fit_model:
            config = fit_to_data(fit_to_window(config, window), n_train_windows)
    return build_classifier(config, request.config.ensemble)


def _window_and_hop(
    request: TrainRequest,
    init: PretrainedSettings | None,
    plugin,
    intervals,
    recordings,
    sample_rate: float,
) -> tuple[int, int]:
    """The window and hop to train with: as given, else the backbone's, else sized to the
    labels (each short labelled series whole in one window, see
    :func:`~biosig.data.windows.window_for_labels`), else the plugin's."""
    if init is not None:  # the backbone's, unless told
        return int(request.window or init.meta.window), int(request.hop or init.meta.hop)
    if request.window is not None:
        return int(request.window), int(request.hop or plugin.defaults.hop)
    sized = window_for_labels(intervals, recordings, sample_rate, plugin.defaults.window)
    if sized is not None:
        # One window per series: a hop shorter than the window would only add shifted
        # copies padded further.
        return sized, int(request.hop or sized)
    return int(plugin.defaults.window), int(request.hop or plugin.defaults.hop)


def _write_report(run_dir: Path, metrics: dict[str, Any]) -> None:
    # The model is already written: a figure that cannot be drawn is not worth failing
    # the run over.
    from ..report import write_run_report  # matplotlib: only once a model is trained

    try:
        write_run_report(run_dir, metrics)
    except (OSError, BiosigError) as exc:
        log.warning("%s: report figures not written (%s)", run_dir, exc)


def _silent(*_: Any, **__: Any) -> None:
    """``echo`` on ranks other than 0."""


def write_settings(run_dir: Path, request: Any, latest: bool) -> None:
    """Save ``request`` (a training or pretraining request, its defaults resolved) for
    ``--resume``."""
    settings = dataclasses.asdict(request)
    del settings["out"]  # the run is wherever it is resumed from, even if it was moved
    settings.update(format=SETTINGS_FORMAT, latest=latest)
    with atomic_file(Path(run_dir) / RESUME_DIR / SETTINGS_FILE) as handle:
        handle.write(json.dumps(settings, indent=2) + "\n")


def read_settings(
    run: Path, request_type: type, config_type: type, defaults: dict[str, Any] | None = None
) -> tuple[Any, bool]:
    """The request (a ``request_type`` with a ``config_type``) ``run`` was started with,
    and whether it was a ``runs/<plugin>`` run that ``latest`` points at. ``defaults``
    fill settings a run predates with the values that reproduce it."""
    run = Path(run)
    if not run.exists():
        raise BiosigError(f"--resume {run}: no such run directory")
    if not run.is_dir():
        raise BiosigError(f"--resume {run}: not a directory")
    path = run / RESUME_DIR / SETTINGS_FILE
    if not path.is_file():
        raise BiosigError(
            f"--resume {run}: not a biosig run that can be resumed (no {RESUME_DIR}/"
            f"{SETTINGS_FILE} in it)"
        )
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BiosigError(f"{path}: unreadable ({exc})") from None
    if not isinstance(settings, dict) or settings.get("format") != SETTINGS_FORMAT:
        raise BiosigError(f"{path}: not biosig run settings (format {SETTINGS_FORMAT})")
    settings = {**(defaults or {}), **settings}
    try:
        config = config_type(**settings.pop("config"))
        latest = bool(settings.pop("latest"))
        settings.pop("format")
        request = request_type(**settings, out=run, config=config)
    except (KeyError, TypeError) as exc:
        raise BiosigError(f"{path}: damaged run settings ({exc})") from None
    return request, latest


def _check_every_class_has_windows(y, classes: list[str]) -> None:
    """A class whose every window was lost (damaged files, gaps, too short) would be a model
    output never trained: an error, named, rather than a model that cannot predict it."""
    counts = np.bincount(y, minlength=len(classes))
    empty = [c for c, n in zip(classes, counts, strict=True) if n == 0]
    if empty:
        raise BiosigError(
            f"no window of class {', '.join(empty)} could be read (damaged or too short "
            "recordings); add data for it or leave it out of the labels"
        )


def _warn_if_not_learned(metrics: dict[str, Any], scored: str) -> None:
    """One warning when the kept model has not learnt to tell the classes apart on the
    windows it was scored on, with what to try."""
    reason = not_learned(metrics)
    if reason is None:
        return
    where = "validation" if scored == "val" else "training"
    log.warning(
        "the model has not learnt to tell the classes apart: on its %s windows %s. Try "
        "more labelled recordings (or check that the labels match them), more --epochs, "
        "--normalize dataset if the signal's level tells the classes apart, or a lower --lr",
        where,
        reason,
    )


def _validation_words(split: str, n_val: int) -> str:
    if split == "none":
        return "none held out to validate (the metrics shown are the training windows';"
    if split == "time":
        return f"validating on {n_val} (the last part of each recording, a window apart;"
    return f"validating on {n_val} (whole groups held out;"


def _timestamp() -> str:
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def new_run_dir(parent: Path) -> Path:
    """A fresh ``parent/<timestamp>`` directory, created here so that a second run started
    within the same second (or concurrently) gets ``<timestamp>-2`` instead of overwriting
    the first one's checkpoints and history."""
    parent.mkdir(parents=True, exist_ok=True)
    stamp = _timestamp()
    for n in range(1, 1000):
        run_dir = parent / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            run_dir.mkdir()
        except FileExistsError:
            continue
        return run_dir
    raise BiosigError(f"{parent}: too many runs named {stamp}")


def remove_if_empty(run_dir: Path) -> None:
    """Remove a run directory that a failed run left empty, and ``runs/<plugin>`` and
    ``runs`` if that leaves them empty: an empty run is nothing to resume or inspect, only
    clutter beside the real ones. A directory that holds anything is kept; the settings
    saved for ``--resume`` alone do not count (resuming such a run is starting it again)."""
    resume = run_dir / RESUME_DIR
    try:
        if {p.name for p in run_dir.iterdir()} == {RESUME_DIR} and {
            p.name for p in resume.iterdir()
        } == {SETTINGS_FILE}:
            (resume / SETTINGS_FILE).unlink()
            resume.rmdir()
    except OSError:
        return
    for directory in (run_dir, run_dir.parent, RUNS):
        try:
            directory.rmdir()
        except OSError:  # not empty (or already gone): keep it and everything above it
            return
