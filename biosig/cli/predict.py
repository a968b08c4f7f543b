"""``biosig predict``: stream recordings through a trained model and write per-window and
per-recording tables, and optionally explanations (attention or gradients) and plots.

Under ``torchrun --nproc-per-node N -m biosig predict …`` every rank predicts a contiguous
share of the input files into ``OUT/.parts/rank-R/`` and rank 0 merges the parts, so the
tables come out as one process would have written them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from ..inference.choices import EXPLANATIONS, FORMATS
from ..plugin.contract import AGGREGATIONS
from .common import (
    batch_option,
    compute_threads,
    device_option,
    plugin_flags_checked,
    quiet,
    split_plugin_flags,
    strict_option,
    threads_option,
    verbosity_options,
    workers_option,
)

log = logging.getLogger("biosig")


class ExplanationChoice(click.Choice):
    """``--explain``'s value. A bare ``--explain`` before INPUTS takes the next word as its
    value, so a word that is no method says so, rather than only listing the methods."""

    def get_invalid_choice_message(self, value: object, ctx: click.Context | None) -> str:
        return (
            f"{value!r} is not one of {', '.join(EXPLANATIONS)} (a bare --explain takes the "
            "next word as its method: write --explain attention, or give INPUTS first)"
        )


# Unknown `--flags` reach INPUTS, where the plugin's own options are picked out.
@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("inputs", nargs=-1)
@click.option("--plugin", help="Plugin that reads the inputs [default: the model's].")
@click.option(
    "--model",
    "model_path",
    type=click.Path(path_type=Path),
    help="Model directory [default: runs/<plugin>/latest].",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Directory for windows and recordings tables [default: recordings to stdout].",
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="tsv", show_default=True)
@batch_option
@click.option(
    "--hop", type=click.IntRange(min=1), help="Hop between windows [default: the model's]."
)
@workers_option
@click.option(
    "--aggregate",
    "aggregation",
    type=click.Choice(AGGREGATIONS),
    help="How window probabilities make a recording's [default: the plugin's, else mean].",
)
@click.option(
    "--explain",
    type=ExplanationChoice(EXPLANATIONS),
    is_flag=False,
    flag_value="attention",
    default=None,
    help="Also write each window's explanation per input sample to OUT/METHOD/<id>.npy: "
    "attention (alone, --explain: the attention pooling's weights) or gradient (integrated "
    "gradients of the predicted class; some 20 times prediction's cost).",
)
@click.option(
    "--plot",
    is_flag=True,
    help="Also draw each recording, its windows coloured by class (and the explanation "
    "relative to uniform, with --explain) to OUT/plots/<id>.png.",
)
@click.option(
    "--labels",
    help="With --plot, draw the true classes beside the predicted ones: a labels file, or a "
    "word the plugin takes, as for train and evaluate.",
)
@click.option(
    "--compile/--no-compile",
    "compile_model",
    default=False,
    show_default=True,
    help="torch.compile the model; the last batch is padded to the full batch size so "
    "that shapes stay fixed. Whether it pays is measured in docs/benchmarks.md.",
)
@device_option
@strict_option
@threads_option
@verbosity_options
def predict(
    inputs: tuple[str, ...],
    plugin: str | None,
    model_path: Path | None,
    out: Path | None,
    fmt: str,
    batch_size: int | None,
    hop: int | None,
    workers: int,
    aggregation: str | None,
    explain: str | None,
    plot: bool,
    labels: str | None,
    compile_model: bool,
    device: str,
    strict: bool,
) -> None:
    """Classify every window of every recording in INPUTS.

    With --out, writes windows, recordings and segments (consecutive windows of one class
    joined) tables there. A plugin's own options (`biosig plugins show NAME`) are given as
    further flags; those that shape its input default to the model's. Under `torchrun
    --nproc-per-node N -m biosig predict …` the files are shared out among the ranks and
    the tables merged at the end.
    """
    compute_threads(workers)  # before torch loads OpenMP
    # Imported here, not above: torch takes seconds to import, which --help need not pay.
    from ..inference.prediction import run_prediction

    paths, plugin_options = split_plugin_flags(inputs)
    with plugin_flags_checked():
        run_prediction(
            plugin,
            paths,
            model_path,
            out,
            fmt,
            batch_size or 256,
            hop,
            device,
            strict,
            workers=workers,
            aggregation=aggregation,
            explain=explain,
            plot=plot,
            compile_model=compile_model,
            plugin_options=plugin_options,
            labels=labels,
            progress=not quiet(),
        )
