"""``biosig train``: labelled recordings in, a checkpoint directory out.

``torchrun --nproc-per-node N -m biosig train …`` trains on N processes (GPUs) with
DistributedDataParallel; see :func:`run_training`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from ..data.windows import MAX_WINDOW
from ..errors import BiosigError
from ..nn.presets import KERNEL_FEATURES, PRESETS
from ..plugin.contract import NORMALIZATIONS, SPLITS
from ..plugin.registry import get_plugin
from ..training.config import (
    AUGMENT,
    AUGMENTATION_NAMES,
    BATCH_SIZE,
    EPOCHS,
    MIN_BATCH_SIZE,
    MIN_STEPS,
    PATIENCE,
    RIDGE_WINDOWS,
    SMALL_DATA_MIXING,
    SMALL_DATA_WINDOWS,
    TrainConfig,
)
from .common import (
    Options,
    as_list,
    compute_threads,
    device_option,
    epochs_to_resume_with,
    finished_run,
    force_option,
    input_option,
    lr_option,
    more_inputs_argument,
    plugin_option,
    reject_flags,
    resume_option,
    run_output,
    sample_rate_option,
    seed_option,
    strict_option,
    threads_option,
    verbosity_options,
)

log = logging.getLogger("biosig")


DEFAULTS = TrainConfig()


# Unknown `--flags` reach `more_inputs`, where the plugin's own options are picked out.
@click.command(context_settings={"ignore_unknown_options": True})
@plugin_option
@input_option
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
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    help=f"Training epochs [default: {EPOCHS}, or as many as {MIN_STEPS} steps take on a "
    f"small training set]. Left out on fewer than {SMALL_DATA_WINDOWS} training windows, "
    "the small-data recipe: no early stop, the final epoch kept, and mixup (each can be "
    "set). With --resume, a larger total extends the run (its cosine schedule is "
    "then stretched over the new total from the current step).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    help=f"Windows per batch [default: {BATCH_SIZE}, or an eighth of the training windows "
    f"(a power of two, at least {MIN_BATCH_SIZE}) when that is fewer].",
)
@lr_option(DEFAULTS.lr)
@click.option(
    "--window",
    type=click.IntRange(1, MAX_WINDOW),
    help="Window length in samples at the model rate [default: where every label is a whole "
    "recording none longer than twice the plugin's window, the longest (each series seen "
    "whole); else the plugin's].",
)
@click.option("--hop", type=click.IntRange(1, MAX_WINDOW), help="Hop between training windows.")
@device_option
@seed_option(DEFAULTS.seed)
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
    help="Weight classes inversely to their frequency (off with --balance).",
)
@click.option(
    "--balance/--no-balance",
    default=DEFAULTS.balance,
    show_default=True,
    help="Each epoch, draw as many training windows as there are, with replacement, each "
    "with probability inversely proportional to its class's frequency, so classes are seen "
    "equally often; class weights are then off, so imbalance is not corrected twice.",
)
@click.option(
    "--ema",
    type=click.FloatRange(0, 1, max_open=True),
    default=DEFAULTS.ema,
    show_default=True,
    metavar="DECAY",
    help="Keep an exponential moving average of the weights with this decay (e.g. 0.999; "
    "warmed up as min(DECAY, (1+n)/(10+n)) at update n) and validate and save it instead "
    "of the trained weights; 0: off.",
)
@click.option(
    "--augment",
    help=f"Comma-separated augmentations ({', '.join(AUGMENTATION_NAMES)}; 'name:strength' or "
    "'name:strength:p'), or 'none'. mixup and cutmix blend pairs of training windows and "
    f"train on their blended (soft) targets [default: {','.join(AUGMENT)}, and "
    f"{SMALL_DATA_MIXING} in the small-data recipe (see --epochs)].",
)
@click.option(
    "--normalization",
    "--normalize",
    "normalization",
    type=click.Choice(NORMALIZATIONS),
    help="How windows are scaled: per window (z-score), per recording (by the plugin), by the "
    "training set's per-channel statistics (kept in the model), or not [default: with the "
    "random-kernel branch, whichever of the plugin's, window and dataset lets a ridge model "
    "of its features classify the held-out training windows best; else the plugin's].",
)
@click.option(
    "--val-fraction",
    type=click.FloatRange(0, 1, max_open=True),
    help="Share held out to validate (whole groups, or the tail of each recording); 0: none, "
    "the metrics are then the training windows' [default: 0.2; 0 in the small-data recipe, "
    "see --epochs].",
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
    help="Epochs without a better validation macro-F1 (or, at equal macro-F1, lower loss) "
    f"before stopping [default: {PATIENCE}; none in the small-data recipe, see --epochs].",
)
@sample_rate_option
@strict_option
@force_option
@click.option(
    "--init",
    metavar="PRETRAINED",
    help="Start from this backbone (`biosig pretrain`'s run, or a trained model); its "
    "window, hop, sample rate and normalisation are the defaults.",
)
@click.option(
    "--select/--no-select",
    default=None,
    help="Keep in best/ the epoch with the best validation macro-F1 (ties: lower validation "
    "loss), stopping early after --patience epochs without one; --no-select keeps the "
    "final epoch [default: select, except in the small-data recipe, see --epochs].",
)
@click.option(
    "--ensemble",
    type=click.IntRange(min=1),
    default=DEFAULTS.ensemble,
    show_default=True,
    metavar="N",
    help="Train N networks side by side (each from its own initialisation, on the same "
    "batches) and average their probabilities; prediction costs N times as much.",
)
@click.option(
    "--drop-path",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.0,
    show_default=True,
    metavar="RATE",
    help="Stochastic depth: drop each residual block for a random share of the batch while "
    "training, the last block at RATE and earlier ones linearly less.",
)
@click.option(
    "--kernel-features",
    type=click.IntRange(min=0),
    metavar="N",
    help="Frozen random-kernel features (MiniRocket's: dilated 9-tap kernels, the share of "
    "each output above biases drawn from the training windows); a ridge classifier of them, "
    "fitted before training, adds its logits to the network's, which learns to correct its "
    f"leave-one-out errors; 0: none [default: {KERNEL_FEATURES} up to {RIDGE_WINDOWS} "
    "training windows, else 0].",
)
@click.option(
    "--fit-model/--no-fit-model",
    default=True,
    show_default=True,
    help="Downsample less for short windows (at least 16 tokens) and narrow the late stages "
    "when there are few training windows.",
)
@resume_option
@threads_option
@verbosity_options
@more_inputs_argument
@click.pass_context
def train(ctx: click.Context, pipeline: Path | None, resume: Path | None, **_: Any) -> None:
    """Train a classifier on labelled recordings.

    A plugin's own options (`biosig plugins show NAME`) are given as further flags.

    Each run directory holds `best/` and `last/` checkpoints, `history.tsv` (per epoch:
    losses, validation accuracy, macro-F1 and each class's F1, learning rate),
    `learning_curves.png` and `confusion.png` (the best epoch's validation) and `resume/`,
    from which `--resume RUN` continues an interrupted run to the same end as if it had not
    stopped.

    `torchrun --nproc-per-node N -m biosig train …` trains on N processes (one GPU each, or
    the CPU) with DistributedDataParallel: --batch-size is per process (the global batch is
    N times it; --lr is not scaled), rank 0 prints and writes the run, and a run started on
    N processes resumes on N.
    """
    compute_threads()  # before torch loads OpenMP
    # Imported here, not above: torch and scikit-learn take seconds to import, which
    # `biosig train --help` need not pay.
    from ..training.runs import TrainRequest, resume_training, run_training

    if resume is not None:
        finished_run(resume_training(resume, epochs_to_resume_with(ctx, resume), *run_output()))
        return
    opts = Options(ctx, pipeline)
    if opts.get("resume") is not None:
        raise BiosigError(
            f"{pipeline}: resume: a run is resumed from the command line only "
            "(biosig train --resume RUN)"
        )
    plugin = opts.get("plugin")
    if not plugin:
        reject_flags(ctx.params["more_inputs"])
        raise BiosigError("--plugin is required (see `biosig plugins list`)")
    reader = get_plugin(plugin)
    more_inputs = opts.configure_plugin(reader, ctx.params["more_inputs"])
    labels = opts.get("labels") or None  # None: the plugin's default keyword, if any
    augment = None if opts.get("augment") is None else as_list(opts.get("augment"))
    config = TrainConfig(
        epochs=opts.get("epochs"),
        batch_size=opts.get("batch_size"),
        lr=opts.get("lr"),
        label_smoothing=opts.get("label_smoothing"),
        loss=opts.get("loss"),
        class_weights=opts.get("class_weights"),
        augment=[] if augment == ["none"] else augment,
        patience=opts.get("patience"),
        seed=opts.get("seed"),
        ema=opts.get("ema"),
        balance=opts.get("balance"),
        ensemble=opts.get("ensemble"),
        select=opts.get("select"),
    )
    out = opts.get("out")
    run_dir = run_training(
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
            force=opts.get("force"),
            val_fraction=opts.get("val_fraction"),
            split=opts.get("split"),
            span=opts.get("span"),
            device=opts.get("device"),
            config=config,
            plugin_options=reader.settings,
            init=opts.get("init"),
            fit_model=opts.get("fit_model"),
            drop_path=opts.get("drop_path"),
            kernel_features=opts.get("kernel_features"),
        ),
        *run_output(),
    )
    finished_run(run_dir)
