"""Scoring a trained model against labelled recordings: the metrics ``biosig evaluate``
prints, per window and per recording, and the report directory it writes."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_file
from ..checkpoint import resolve_checkpoint
from ..data.damaged import DamagePolicy
from ..data.store import build_examples
from ..errors import BiosigError
from ..loading import label_source, load_model_and_plugin
from ..metrics import classification_report
from ..plugin.contract import iter_recordings
from ..plugin.labels import parse_span, restrict_to_span, warn_unlabelled
from ..plugin.options import set_plugin_options
from ..training.trainer import predict_store
from .mismatch import warn_if_trained_on

log = logging.getLogger("biosig")


def run_evaluation(
    model_path: Path | None,
    plugin_name: str | None,
    inputs: Sequence[str],
    labels: str | Path | None,
    hop: int | None = None,
    batch_size: int = 256,
    device_name: str = "auto",
    progress: bool = True,
    strict: bool = False,
    span: str | None = None,
    plugin_options: Mapping[str, Any] | None = None,
) -> dict:
    """Metrics of the model at ``model_path`` on the labelled windows of ``inputs``.

    Windows do not overlap unless ``hop`` says so, so that no sample is counted twice.
    Under ``"recordings"`` the same metrics per recording (window probabilities averaged,
    as ``predict`` reports them), for recordings whose windows all carry one class.
    Without ``model_path``, the plugin's latest run (see ``load_model_and_plugin``). With
    ``span`` (``"A:B"``), only that part of each recording is scored. ``plugin_options``
    (by name) override those the model was trained with.
    """
    span_fractions = parse_span(span) if span else None
    plugin, model, meta, device = load_model_and_plugin(plugin_name, model_path, device_name)
    set_plugin_options(plugin, plugin_options or {}, meta)
    labels_path = label_source(plugin, labels)
    if not inputs:
        raise BiosigError("no --input given")
    damage = DamagePolicy(strict)
    files = plugin.find(inputs)
    warn_if_trained_on(files, meta)
    recordings = list(iter_recordings(plugin, files, damage.handle))
    intervals = plugin.labels(labels_path, recordings)
    warn_unlabelled(labels_path, recordings, intervals, plugin.unlabelled_hint)
    if span_fractions is not None:
        intervals = restrict_to_span(intervals, recordings, span_fractions)
    classes = list(meta.classes)
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
    window = meta.window
    store = build_examples(
        plugin,
        recordings,
        intervals,
        classes,
        window,
        hop or window,
        meta.sample_rate,
        progress=progress,
        on_damage=damage.handle,
    )
    probs = predict_store(
        model, store, np.arange(len(store)), meta.normalization, device, batch_size,
        progress=progress,
    )  # fmt: skip
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
    """``history.tsv`` of the training run a model path belongs to, if there is one.

    A model path is a run directory (its ``best`` is loaded; ``runs/<plugin>/latest``
    links to one) or a checkpoint directory. A checkpoint named ``best`` or ``last`` is
    taken to sit in its run directory; one named otherwise (a model copied out of its run)
    has no history, rather than picking up an unrelated ``history.tsv`` beside it.
    """
    from ..report import history_path

    model_path = Path(model_path)
    checkpoint = resolve_checkpoint(model_path)
    if checkpoint != model_path:
        run_dir = model_path
    elif model_path.resolve().name in ("best", "last"):
        run_dir = model_path.resolve().parent
    else:
        return None
    return history_path(run_dir)


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
