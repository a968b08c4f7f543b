"""``biosig evaluate``: score a trained model against labelled recordings."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from .common import (
    batch_option,
    compute_threads,
    device_option,
    more_inputs_argument,
    plugin_flags_checked,
    quiet,
    split_plugin_flags,
    strict_option,
    threads_option,
    verbosity_options,
)

log = logging.getLogger("biosig")


# Unknown `--flags` reach `more_inputs`, where the plugin's own options are picked out.
@click.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "--model",
    "model_path",
    type=click.Path(path_type=Path),
    help="Model directory [default: runs/<plugin>/latest].",
)
@click.option("--plugin", help="Plugin that reads the inputs [default: the model's].")
@click.option("--input", "inputs", multiple=True, help="File, directory or glob; repeatable.")
@click.option(
    "--labels",
    help="Labels file, or a word the plugin takes (its labels) [default: the plugin's "
    "label word, if it has one].",
)
@click.option("--hop", type=click.IntRange(min=1), help="Hop between windows [default: window].")
@click.option(
    "--span",
    metavar="START:END",
    help="Score only this part of each recording, as fractions of its length (0.75:1: the "
    "last quarter, held out by `biosig train --span 0:0.7`).",
)
@batch_option
@device_option
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as one JSON object.")
@click.option(
    "--report",
    "report_dir",
    type=click.Path(path_type=Path),
    metavar="DIR",
    help="Also write DIR/metrics.json (as --json prints it), DIR/confusion.png and, when "
    "the model's run has a history.tsv, DIR/learning_curves.png.",
)
@strict_option
@threads_option
@verbosity_options
@more_inputs_argument
def evaluate(
    model_path: Path | None,
    plugin: str | None,
    inputs: tuple[str, ...],
    labels: str,
    hop: int | None,
    span: str | None,
    batch_size: int | None,
    device: str,
    as_json: bool,
    report_dir: Path | None,
    strict: bool,
    more_inputs: tuple[str, ...],
) -> None:
    """Accuracy, balanced accuracy, macro-F1, per-class scores and the confusion matrix."""
    compute_threads()  # before torch loads OpenMP
    # Imported here, not above: torch and scikit-learn take seconds to import, which
    # `biosig evaluate --help` need not pay.
    from ..inference.evaluation import (
        check_report_dir,
        run_evaluation,
        run_history,
        write_evaluation_report,
    )
    from ..loading import latest_model
    from ..metrics import format_report

    if report_dir is not None:
        check_report_dir(report_dir)
    paths, plugin_options = split_plugin_flags([*inputs, *more_inputs])
    with plugin_flags_checked():
        report = run_evaluation(
            model_path,
            plugin,
            paths,
            labels,
            hop,
            batch_size or 256,
            device,
            progress=not quiet(),
            strict=strict,
            span=span,
            plugin_options=plugin_options,
        )
    if report_dir is not None:
        # run_evaluation has succeeded, so without --model the plugin's latest run exists.
        history = run_history(model_path or latest_model(plugin))
        # Written before the metrics are printed: if writing fails, the one error line is
        # all the output, as for any other failure.
        for path in write_evaluation_report(report_dir, report, history):
            log.info("wrote %s", path)
    click.echo(json.dumps(report) if as_json else format_report(report))
