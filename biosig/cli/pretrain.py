"""``biosig pretrain``: unlabelled recordings in, a pretrained backbone out."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
from pathlib import Path
from typing import Any

import click

from .. import __version__
from ..atomic import point_link
from ..damaged import DamagePolicy
from ..device import resolve_device
from ..errors import BiosigError
from ..loading import RUNS
from ..model import PRESETS, SignalNet, count_parameters, model_config
from ..normalize import dataset_statistics
from ..plugin import NORMALIZATIONS, SPLITS, iter_recordings
from ..pretraining import (
    PRETRAINED_DIR,
    PretrainConfig,
    Reconstructor,
    build_unlabelled_store,
    pretrain_meta,
)
from ..pretraining import pretrain as run_pretrain_loop
from ..registry import get_plugin
from ..runs import new_run_dir, remove_if_empty
from ..split import split_examples
from ..training import seed_everything
from .common import (
    Options,
    as_list,
    batch_option,
    device_option,
    lr_option,
    more_inputs_argument,
    reject_flags,
    strict_option,
    window_option,
)
from .training import train as train_command

DEFAULTS = PretrainConfig()


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


def run_pretraining(request: PretrainRequest, echo=click.echo, progress: bool = True) -> Path:
    """Pretrain a backbone as ``request`` says; returns the run directory (the checkpoint
    is its ``pretrained`` directory)."""
    plugin = get_plugin(request.plugin)
    plugin.configure(request.plugin_options)
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
    norm_spec: dict[str, Any] = {"mode": normalization}
    if normalization == "dataset":
        norm_spec = dataset_statistics(store.x, store.lengths, train_idx)

    seed_everything(config.seed)
    # One placeholder class: the pool and head are not trained here, and fine-tuning
    # makes its own.
    backbone = SignalNet(model_config(request.preset, store.n_channels, 1))
    model = Reconstructor(backbone)
    run_dir = Path(request.out) if request.out else new_run_dir(RUNS / plugin.name / "pretrain")
    read = set(store.recording_ids)
    first = next(r for r in recordings if r.id in read)
    meta = {
        "pretrained": True,
        "model": dataclasses.asdict(backbone.config),
        "preset": request.preset,
        "plugin": {"name": plugin.name, "version": plugin.version, "options": plugin.settings},
        "window": window,
        "hop": hop,
        "sample_rate": sample_rate,
        "channels": list(first.channels),
        "normalization": norm_spec,
        "preprocessing": dataclasses.asdict(plugin.defaults),
        "pretraining": {
            **pretrain_meta(config),
            "inputs": [str(i) for i in request.inputs],
            "val_fraction": request.val_fraction,
            "split": split_used,
            "n_train_windows": int(len(train_idx)),
            "n_val_windows": int(len(val_idx)),
            "n_recordings": len(read),
            "device": str(device),
        },
        "provenance": {
            "biosig_version": __version__,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv),
        },
    }
    held_out = "whole groups held out" if split_used == "group" else "the tail of each recording"
    echo(
        f"pretraining {request.preset} backbone ({count_parameters(backbone):,} parameters) "
        f"on {len(train_idx)} windows, validating on {len(val_idx)} ({held_out}; "
        f"{len(read)} recordings); hiding {config.mask_ratio:g} of each window in spans of "
        f"about {config.mask_span} samples, on {device}"
    )
    try:
        result = run_pretrain_loop(
            model,
            store,
            train_idx,
            val_idx,
            config,
            norm_spec,
            device,
            run_dir,
            meta,
            progress=progress,
            echo=echo,
        )
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


# Unknown `--flags` reach `more_inputs`, where the plugin's own options are picked out.
@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--plugin", help="Plugin that reads the inputs (see `biosig plugins list`).")
@click.option("--input", "input", multiple=True, help="File, directory or glob; repeatable.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Run directory [default: runs/<plugin>/pretrain/<timestamp>].",
)
@click.option(
    "--preset",
    type=click.Choice(sorted(PRESETS)),
    default="small",
    show_default=True,
    help="Model size: tiny (tests, quick CPU runs), small, base; fine-tuning uses the same.",
)
@click.option("--epochs", type=click.IntRange(min=1), default=DEFAULTS.epochs, show_default=True)
@batch_option
@lr_option(DEFAULTS.lr)
@window_option
@click.option("--hop", type=click.IntRange(min=1), help="Hop between windows.")
@click.option(
    "--mask-ratio",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=DEFAULTS.mask_ratio,
    show_default=True,
    help="Fraction of each window's samples hidden and reconstructed.",
)
@click.option(
    "--mask-span",
    type=click.IntRange(min=1),
    default=DEFAULTS.mask_span,
    show_default=True,
    help="Mean length of a hidden span, in samples at the model rate.",
)
@device_option
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True)
@click.option(
    "--pipeline",
    type=click.Path(path_type=Path),
    help="TOML file with any of these options (a training pipeline's labels and training "
    "settings are ignored); flags override it.",
)
@click.option(
    "--normalization",
    type=click.Choice(NORMALIZATIONS),
    help="Window scaling [default: the plugin's].",
)
@click.option(
    "--val-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.1,
    show_default=True,
    help="Fraction of the recordings held out to score reconstruction.",
)
@click.option(
    "--split",
    type=click.Choice(SPLITS),
    help="Hold out whole groups (recordings, patients) or the tail of each recording "
    "[default: the plugin's].",
)
@click.option(
    "--sample-rate",
    type=click.FloatRange(min=0, min_open=True),
    help="Model rate in Hz; recordings are resampled to it [default: the plugin's].",
)
@strict_option
@more_inputs_argument
@click.pass_context
def pretrain(ctx: click.Context, pipeline: Path | None, **_: Any) -> None:
    """Pretrain the backbone on unlabelled recordings (masked-segment reconstruction).

    Fine-tune it with `biosig train --init RUN`. A plugin's own options (`biosig plugins
    show NAME`) are given as further flags.
    """
    for name in _TRAIN_ONLY:
        if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE:
            flag = "--" + name.replace("_", "-")
            raise click.UsageError(f"no such option: {flag} (pretraining takes no labels)")
    opts = Options(ctx, pipeline)
    plugin = opts.get("plugin")
    if not plugin:
        reject_flags(ctx.params["more_inputs"])
        raise BiosigError("--plugin is required (see `biosig plugins list`)")
    reader = get_plugin(plugin)
    more_inputs = opts.configure_plugin(reader, ctx.params["more_inputs"])
    config = PretrainConfig(
        epochs=opts.get("epochs"),
        batch_size=opts.get("batch_size", DEFAULTS.batch_size),
        lr=opts.get("lr"),
        mask_ratio=opts.get("mask_ratio"),
        mask_span=opts.get("mask_span"),
        seed=opts.get("seed"),
    )
    out = opts.get("out")
    run_pretraining(
        PretrainRequest(
            plugin=plugin,
            inputs=as_list(opts.get("input")) + more_inputs,
            out=Path(out) if out else None,
            preset=opts.get("preset"),
            window=opts.get("window"),
            hop=opts.get("hop"),
            normalization=opts.get("normalization"),
            sample_rate=opts.get("sample_rate"),
            strict=opts.get("strict"),
            val_fraction=opts.get("val_fraction"),
            split=opts.get("split"),
            device=opts.get("device"),
            config=config,
            plugin_options=reader.settings,
        )
    )


# `biosig train`'s own options (labels, loss, augmentation, ...) are accepted from a
# pipeline file and ignored, so that one task's pipeline serves both commands; given as
# flags they are refused above. Hidden options of free text, so any TOML value passes.
_TRAIN_ONLY = [
    p.name
    for p in train_command.params
    if isinstance(p, click.Option) and p.name not in {q.name for q in pretrain.params}
]
pretrain.params.extend(
    click.Option(["--" + name.replace("_", "-")], hidden=True, expose_value=True)
    for name in _TRAIN_ONLY
)
