"""``biosig evaluate``: score a trained model against labelled recordings."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import click
import numpy as np

from ..atomic import atomic_file
from ..checkpoint import resolve_checkpoint
from ..damaged import DamagePolicy
from ..errors import BiosigError
from ..examples import build_examples
from ..labels import parse_span, restrict_to_span
from ..metrics import classification_report, format_report
from ..plugin import iter_recordings
from ..train import predict_store
from .common import (
    batch_option,
    configure_plugin,
    device_option,
    label_source,
    latest_model,
    load_model_and_plugin,
    more_inputs_argument,
    strict_option,
)

log = logging.getLogger("biosig")


def run_evaluation(
    model_path: Path | None,
    plugin_name: str | None,
    inputs: Sequence[str],
    labels: str | Path,
    hop: int | None = None,
    batch_size: int = 256,
    device_name: str = "auto",
    progress: bool = True,
    strict: bool = False,
    span: str | None = None,
) -> dict:
    """Metrics of the model at ``model_path`` on the labelled windows of ``inputs``.

    Windows do not overlap unless ``hop`` says so, so that no sample is counted twice.
    Under ``"recordings"`` the same metrics per recording (window probabilities averaged,
    as ``predict`` reports them), for recordings whose windows all carry one class.
    Without ``model_path``, the plugin's latest run (see ``load_model_and_plugin``). With
    ``span`` (``"A:B"``), only that part of each recording is scored.
    """
    span_fractions = parse_span(span) if span else None
    plugin, model, meta, device = load_model_and_plugin(plugin_name, model_path, device_name)
    inputs = configure_plugin(plugin, inputs, meta)
    labels_path = label_source(plugin, labels)
    if not inputs:
        raise BiosigError("no --input given")
    damage = DamagePolicy(strict)
    recordings = list(iter_recordings(plugin, plugin.find(inputs), damage.handle))
    intervals = plugin.labels(labels_path, recordings)
    if span_fractions is not None:
        intervals = restrict_to_span(intervals, recordings, span_fractions)
    classes = list(meta["classes"])
    unknown = sorted({iv.label for iv in intervals} - set(classes))
    if unknown:
        log.warning(
            "%s: classes %s are unknown to the model and left out", labels_path, ", ".join(unknown)
        )
        intervals = [iv for iv in intervals if iv.label in classes]
    if not intervals:
        raise BiosigError(
            f"{labels_path}: no label is one of the model's classes ({', '.join(classes)})"
        )
    window = int(meta["window"])
    store = build_examples(
        plugin,
        recordings,
        intervals,
        classes,
        window,
        hop or window,
        float(meta["sample_rate"]),
        progress=progress,
        on_damage=damage.handle,
    )
    probs = predict_store(
        model, store, np.arange(len(store)), meta["normalization"], device, batch_size
    )
    report = classification_report(store.y, probs.argmax(1), classes)
    y_rec, probs_rec = per_recording(store.recording_ids, store.y, probs)
    if len(y_rec):
        report["recordings"] = classification_report(y_rec, probs_rec.argmax(1), classes)
    damage.report()
    return report


def per_recording(
    recording_ids: np.ndarray, y: np.ndarray, probs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and mean window probabilities of each recording whose windows share a class."""
    ids, inverse = np.unique(recording_ids, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(ids))
    sums = np.zeros((len(ids), probs.shape[1]))
    np.add.at(sums, inverse, probs)
    first_label = np.zeros(len(ids), dtype=y.dtype)
    first_label[inverse[::-1]] = y[::-1]
    mixed = np.zeros(len(ids), dtype=bool)
    np.logical_or.at(mixed, inverse, y != first_label[inverse])
    return first_label[~mixed], sums[~mixed] / counts[~mixed, None]


#: ``biosig evaluate --report DIR`` writes the metrics here, as ``--json`` prints them.
METRICS_JSON = "metrics.json"


def check_report_dir(directory: Path) -> None:
    """Refuse a ``--report`` directory that cannot be created or written, before the
    (possibly long) evaluation instead of after it. Creates nothing."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise BiosigError(f"{directory}: not a directory")
    existing = directory
    while not existing.exists():  # the part of the path that is there already
        existing = existing.parent
    if not existing.is_dir():
        raise BiosigError(f"{directory}: cannot create it, {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BiosigError(f"{directory}: not writable ({existing}: permission denied)")


def run_history(model_path: Path) -> Path | None:
    """``history.csv`` of the training run a model path belongs to, if there is one.

    A model path is a run directory (its ``best`` is loaded; ``runs/<plugin>/latest``
    links to one) or a checkpoint directory. A checkpoint named ``best`` or ``last`` is
    taken to sit in its run directory; one named otherwise (a model copied out of its run)
    has no history, rather than picking up an unrelated ``history.csv`` beside it.
    """
    from ..report import HISTORY

    model_path = Path(model_path)
    checkpoint = resolve_checkpoint(model_path)
    if checkpoint != model_path:
        run_dir = model_path
    elif model_path.resolve().name in ("best", "last"):
        run_dir = model_path.resolve().parent
    else:
        return None
    history = run_dir / HISTORY
    return history if history.is_file() else None


def write_evaluation_report(directory: Path, report: dict, history: Path | None) -> list[Path]:
    """Write ``directory/metrics.json`` (``report`` as ``--json`` prints it),
    ``directory/confusion.png`` and, with a ``history``, ``directory/learning_curves.png``;
    returns the paths written."""
    # Imported here: matplotlib is only needed when a report is asked for.
    from ..report import write_report

    directory = Path(directory)
    metrics_path = directory / METRICS_JSON
    with atomic_file(metrics_path) as handle:
        handle.write(json.dumps(report, indent=2) + "\n")
    return [metrics_path, *write_report(directory, report, history, what="evaluation")]


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
    "--labels", required=True, help="Labels file, or a word the plugin takes (its labels)."
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
    "the model's run has a history.csv, DIR/learning_curves.png.",
)
@strict_option
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
    if report_dir is not None:
        check_report_dir(report_dir)
    report = run_evaluation(
        model_path,
        plugin,
        [*inputs, *more_inputs],
        labels,
        hop,
        batch_size or 256,
        device,
        strict=strict,
        span=span,
    )
    if report_dir is not None:
        # run_evaluation has succeeded, so without --model the plugin's latest run exists.
        history = run_history(model_path or latest_model(plugin))
        # Written before the metrics are printed: if writing fails, the one error line is
        # all the output, as for any other failure.
        for path in write_evaluation_report(report_dir, report, history):
            log.info("wrote %s", path)
    click.echo(json.dumps(report) if as_json else format_report(report))
