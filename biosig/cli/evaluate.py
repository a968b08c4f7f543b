"""``biosig evaluate``: score a trained model against labelled recordings."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import click
import numpy as np

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
    strict: bool,
    more_inputs: tuple[str, ...],
) -> None:
    """Accuracy, balanced accuracy, macro-F1, per-class scores and the confusion matrix."""
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
    click.echo(json.dumps(report) if as_json else format_report(report))
