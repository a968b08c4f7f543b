"""``biosig pretrain``: unlabelled recordings in, a pretrained backbone out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..data.windows import MAX_WINDOW
from ..errors import BiosigError
from ..nn.presets import PRESETS
from ..pipeline import SECTIONS, TOP_LEVEL
from ..plugin.contract import NORMALIZATIONS, SPLITS
from ..plugin.registry import get_plugin
from ..training.config import PretrainConfig
from .common import (
    Options,
    as_list,
    batch_option,
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
    window_option,
)

DEFAULTS = PretrainConfig()


# Unknown `--flags` reach `more_inputs`, where the plugin's own options are picked out.
@click.command(context_settings={"ignore_unknown_options": True})
@plugin_option
@input_option
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
@click.option("--hop", type=click.IntRange(1, MAX_WINDOW), help="Hop between windows.")
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
@seed_option(DEFAULTS.seed)
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
@sample_rate_option
@strict_option
@force_option
@resume_option
@threads_option
@verbosity_options
@more_inputs_argument
@click.pass_context
def pretrain(ctx: click.Context, pipeline: Path | None, resume: Path | None, **_: Any) -> None:
    """Pretrain the backbone on unlabelled recordings (masked-segment reconstruction).

    Fine-tune it with `biosig train --init RUN`. A plugin's own options (`biosig plugins
    show NAME`) are given as further flags.

    The run directory holds `pretrained/`, `history.tsv` and `resume/`, from which
    `--resume RUN` continues an interrupted run to the same end as if it had not stopped.
    `torchrun --nproc-per-node N -m biosig pretrain …` pretrains on N processes, as
    `biosig train` trains (--batch-size per process; a run resumes on as many).
    """
    compute_threads()  # before torch loads OpenMP
    # Imported here, not above: torch takes seconds to import, which --help need not pay.
    from ..training.pretrain_runs import PretrainRequest, resume_pretraining, run_pretraining

    if resume is not None:
        finished_run(resume_pretraining(resume, epochs_to_resume_with(ctx, resume), *run_output()))
        return
    for name in _TRAIN_ONLY:
        if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE:
            flag = "--" + name.replace("_", "-")
            raise click.UsageError(f"no such option: {flag} (pretraining takes no labels)")
    opts = Options(ctx, pipeline)
    if opts.get("resume") is not None:
        raise BiosigError(
            f"{pipeline}: resume: a run is resumed from the command line only "
            "(biosig pretrain --resume RUN)"
        )
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
    run_dir = run_pretraining(
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
            force=opts.get("force"),
            val_fraction=opts.get("val_fraction"),
            split=opts.get("split"),
            device=opts.get("device"),
            config=config,
            plugin_options=reader.settings,
        ),
        *run_output(),
    )
    finished_run(run_dir)


# `biosig train`'s own options (labels, loss, augmentation, ...) are accepted from a
# pipeline file and ignored, so that one task's pipeline serves both commands; given as
# flags they are refused above. Hidden options of free text, so any TOML value passes.
_TRAIN_ONLY = sorted(
    (SECTIONS["model"] | SECTIONS["train"] | TOP_LEVEL) - {p.name for p in pretrain.params}
)
pretrain.params.extend(
    click.Option(["--" + name.replace("_", "-")], hidden=True, expose_value=True)
    for name in _TRAIN_ONLY
)
