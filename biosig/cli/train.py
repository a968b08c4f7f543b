"""``biosig train``: labelled recordings in, a checkpoint directory out."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
from pathlib import Path
from typing import Any

import click
import numpy as np

from .. import __version__
from ..atomic import point_link
from ..augment import build_augmentation
from ..damaged import DamagePolicy
from ..device import resolve_device
from ..errors import BiosigError
from ..examples import build_examples, check_classes
from ..labels import parse_span, restrict_to_span
from ..model import PRESETS, SignalClassifier, count_parameters, model_config
from ..normalize import dataset_statistics
from ..plugin import NORMALIZATIONS, SPLITS, iter_recordings
from ..registry import get_plugin
from ..split import split_examples
from ..train import TrainConfig, fit, seed_everything
from .common import (
    RUNS,
    Options,
    as_list,
    batch_option,
    device_option,
    label_source,
    more_inputs_argument,
    reject_flags,
    strict_option,
)

DEFAULTS = TrainConfig()


@dataclasses.dataclass
class TrainRequest:
    """Everything one training run needs; the CLI and ``biosig demo`` both build one."""

    plugin: str
    inputs: list[str]
    labels: str
    out: Path | None = None
    preset: str = "small"
    window: int | None = None
    hop: int | None = None
    normalization: str | None = None
    sample_rate: float | None = None
    strict: bool = False
    val_fraction: float = 0.2
    #: how validation windows are held out: auto, group or time (None: the plugin's)
    split: str | None = None
    #: ``"A:B"``: only this part (fractions of its length) of each recording is used
    span: str | None = None
    device: str = "auto"
    config: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    #: the plugin's own options (``--annotator atr``), by name
    plugin_options: dict[str, Any] = dataclasses.field(default_factory=dict)


def run_training(request: TrainRequest, echo=click.echo, progress: bool = True) -> Path:
    """Train a model as ``request`` says; returns the run directory."""
    plugin = get_plugin(request.plugin)
    plugin.configure(request.plugin_options)
    if not request.inputs:
        raise BiosigError("no --input given")
    labels_path = label_source(plugin, request.labels)
    if request.out is not None and Path(request.out).exists() and not Path(request.out).is_dir():
        # Found now rather than when the first checkpoint is written, after the data is read.
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
    span = parse_span(request.span) if request.span else None
    device = resolve_device(request.device)
    try:
        build_augmentation(request.config.augment)
    except ValueError as exc:
        raise BiosigError(f"--augment: {exc}") from None

    sample_rate = float(request.sample_rate or plugin.defaults.sample_rate)
    if sample_rate <= 0:
        raise BiosigError(f"--sample-rate must be positive, got {sample_rate:g}")

    damage = DamagePolicy(request.strict)
    files = plugin.find(request.inputs)
    recordings = list(iter_recordings(plugin, files, damage.handle))
    if not recordings:
        raise BiosigError(f"no recordings found in {', '.join(request.inputs)}")
    intervals = plugin.labels(labels_path, recordings)
    if span is not None:
        intervals = restrict_to_span(intervals, recordings, span)
    # a keyword is named as the flag that gave it, so "rhythm: …" is not read as a file
    classes = check_classes(
        intervals, labels_path if isinstance(labels_path, Path) else f"--labels {labels_path}"
    )
    store = build_examples(
        plugin,
        recordings,
        intervals,
        classes,
        window,
        hop,
        sample_rate,
        store_dir=request.out,
        progress=progress,
        on_damage=damage.handle,
    )
    _check_every_class_has_windows(store.y, classes)
    train_idx, val_idx, split_used = split_examples(
        store, split_mode, request.val_fraction, request.config.seed
    )
    norm_spec: dict[str, Any] = {"mode": normalization}
    if normalization == "dataset":
        norm_spec = dataset_statistics(store.x, store.lengths, train_idx)

    seed_everything(request.config.seed)
    model = SignalClassifier(model_config(request.preset, store.n_channels, len(classes)))
    run_dir = Path(request.out) if request.out else _new_run_dir(RUNS / plugin.name)
    labelled = set(store.recording_ids)
    first = next(r for r in recordings if r.id in labelled)
    meta = {
        "model": dataclasses.asdict(model.config),
        "preset": request.preset,
        "classes": classes,
        "plugin": {"name": plugin.name, "version": plugin.version, "options": plugin.settings},
        "window": window,
        "hop": hop,
        "sample_rate": sample_rate,
        "channels": list(first.channels),
        "normalization": norm_spec,
        "preprocessing": dataclasses.asdict(plugin.defaults),
        "training": {
            **dataclasses.asdict(request.config),
            "inputs": [str(i) for i in request.inputs],
            "labels": str(labels_path),
            "val_fraction": request.val_fraction,
            "split": split_used,
            "span": list(span) if span else None,
            "n_train_windows": int(len(train_idx)),
            "n_val_windows": int(len(val_idx)),
            "n_recordings": len(labelled),
            "device": str(device),
        },
        "provenance": {
            "biosig_version": __version__,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv),
        },
    }
    echo(
        f"training {request.preset} model ({count_parameters(model):,} "
        f"parameters) on {len(train_idx)} windows, validating on {len(val_idx)} "
        f"({_split_words(split_used)}; {len(labelled)} recordings, classes: "
        f"{', '.join(classes)}) on {device}"
    )
    try:
        result = fit(
            model,
            store,
            train_idx,
            val_idx,
            request.config,
            norm_spec,
            device,
            run_dir,
            meta,
            progress=progress,
            echo=echo,
        )
    except BaseException:
        if request.out is None:
            _remove_if_empty(run_dir)
        raise
    if request.out is None:
        point_link(RUNS / plugin.name / "latest", run_dir)
    best = result.best_metrics
    echo(
        f"best epoch {result.best_epoch}: val accuracy {best['accuracy']:.4f}, "
        f"macro-F1 {best['macro_f1']:.4f} (majority rate {best['majority_rate']:.4f})"
    )
    damage.report()
    echo(f"model written to {run_dir}")
    return run_dir


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


def _split_words(split: str) -> str:
    if split == "time":
        return "the last part of each recording, a window apart"
    return "whole groups held out"


def _timestamp() -> str:
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def _new_run_dir(parent: Path) -> Path:
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


def _remove_if_empty(run_dir: Path) -> None:
    """Remove a run directory that a failed run left empty, and ``runs/<plugin>`` and
    ``runs`` if that leaves them empty: an empty run is nothing to resume or inspect, only
    clutter beside the real ones. A directory that holds anything is kept."""
    for directory in (run_dir, run_dir.parent, RUNS):
        try:
            directory.rmdir()
        except OSError:  # not empty (or already gone): keep it and everything above it
            return


# Unknown `--flags` reach `more_inputs`, where the plugin's own options are picked out.
@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--plugin", help="Plugin that reads the inputs (see `biosig plugins list`).")
@click.option("--input", "input", multiple=True, help="File, directory or glob; repeatable.")
@click.option(
    "--labels", help="Labels file, in a format the plugin reads, or a word the plugin takes."
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Run directory [default: runs/<plugin>/<timestamp>].",
)
@click.option(
    "--preset",
    type=click.Choice(sorted(PRESETS)),
    default="small",
    show_default=True,
    help="Model size: tiny (tests, quick CPU runs), small, base.",
)
@click.option("--epochs", type=click.IntRange(min=1), default=DEFAULTS.epochs, show_default=True)
@batch_option
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULTS.lr,
    show_default=True,
    help="Peak learning rate.",
)
@click.option(
    "--window", type=click.IntRange(min=1), help="Window length in samples at the model rate."
)
@click.option("--hop", type=click.IntRange(min=1), help="Hop between training windows.")
@device_option
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True)
@click.option(
    "--pipeline",
    type=click.Path(path_type=Path),
    help="TOML file with any of these options; flags override it.",
)
@click.option(
    "--label-smoothing",
    type=click.FloatRange(0, 1, max_open=True),
    default=DEFAULTS.label_smoothing,
    show_default=True,
)
@click.option(
    "--loss", type=click.Choice(["ce", "focal"]), default=DEFAULTS.loss, show_default=True
)
@click.option(
    "--class-weights/--no-class-weights",
    default=DEFAULTS.class_weights,
    show_default=True,
    help="Weight classes inversely to their frequency.",
)
@click.option(
    "--augment",
    default=",".join(DEFAULTS.augment),
    show_default=True,
    help="Comma-separated augmentations (time_warp, noise; 'name:strength'), or 'none'.",
)
@click.option(
    "--normalization",
    type=click.Choice(NORMALIZATIONS),
    help="Window scaling [default: the plugin's].",
)
@click.option(
    "--val-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.2,
    show_default=True,
)
@click.option(
    "--split",
    type=click.Choice(SPLITS),
    help="Hold out validation windows by group (recording, patient), in time (the tail of "
    "each recording, a window apart), or auto: by group unless a class has one group "
    "[default: the plugin's].",
)
@click.option(
    "--span",
    metavar="START:END",
    help="Use only this part of each recording, as fractions of its length (0:0.7 is the "
    "first 70 %); evaluate the rest with `biosig evaluate --span`.",
)
@click.option(
    "--patience",
    type=click.IntRange(min=1),
    default=DEFAULTS.patience,
    show_default=True,
    help="Epochs without a better validation macro-F1 before stopping.",
)
@click.option(
    "--sample-rate",
    type=click.FloatRange(min=0, min_open=True),
    help="Model rate in Hz; recordings are resampled to it [default: the plugin's].",
)
@strict_option
@more_inputs_argument
@click.pass_context
def train(ctx: click.Context, pipeline: Path | None, **_: Any) -> None:
    """Train a classifier on labelled recordings.

    A plugin's own options (`biosig plugins show NAME`) are given as further flags.
    """
    opts = Options(ctx, pipeline)
    plugin = opts.get("plugin")
    if not plugin:
        reject_flags(ctx.params["more_inputs"])
        raise BiosigError("--plugin is required (see `biosig plugins list`)")
    reader = get_plugin(plugin)
    more_inputs = opts.configure_plugin(reader, ctx.params["more_inputs"])
    labels = opts.get("labels")
    if not labels:
        raise BiosigError("--labels is required")
    augment = as_list(opts.get("augment"))
    config = TrainConfig(
        epochs=opts.get("epochs"),
        batch_size=opts.get("batch_size", DEFAULTS.batch_size),
        lr=opts.get("lr"),
        label_smoothing=opts.get("label_smoothing"),
        loss=opts.get("loss"),
        class_weights=opts.get("class_weights"),
        augment=[] if augment in ([], ["none"]) else augment,
        patience=opts.get("patience"),
        seed=opts.get("seed"),
    )
    out = opts.get("out")
    run_training(
        TrainRequest(
            plugin=plugin,
            inputs=as_list(opts.get("input")) + more_inputs,
            labels=labels,
            out=Path(out) if out else None,
            preset=opts.get("preset"),
            window=opts.get("window"),
            hop=opts.get("hop"),
            normalization=opts.get("normalization"),
            sample_rate=opts.get("sample_rate"),
            strict=opts.get("strict"),
            val_fraction=opts.get("val_fraction"),
            split=opts.get("split"),
            span=opts.get("span"),
            device=opts.get("device"),
            config=config,
            plugin_options=reader.settings,
        )
    )
