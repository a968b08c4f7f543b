"""Prediction tables: one row per window and one per recording, as TSV, CSV or JSONL,
each written under a temporary name and renamed into place when complete."""

from __future__ import annotations

import contextlib
import csv
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from ..atomic import atomic_file
from .stream import RecordingPrediction

FORMATS = ("tsv", "csv", "jsonl")


class Table:
    """Rows with fixed columns, written as they come.

    The header goes out with the first row, not before: on stdout nothing can be taken
    back, and a run that fails before its first recording must print nothing at all.
    """

    def __init__(self, handle: IO[str], columns: Sequence[str], fmt: str = "tsv") -> None:
        self.handle, self.columns, self.fmt = handle, list(columns), fmt
        self._header_due = fmt in ("tsv", "csv")
        if self._header_due:
            # csv quotes a field holding the separator, a quote or a newline (an id like
            # "a,b" from a file name), so every row keeps its columns.
            sep = "\t" if fmt == "tsv" else ","
            self._writer = csv.writer(handle, delimiter=sep, lineterminator="\n")

    def write(self, values: Sequence[object]) -> None:
        if self._header_due:
            self._writer.writerow(self.columns)
            self._header_due = False
        if self.fmt == "jsonl":
            self.handle.write(json.dumps(dict(zip(self.columns, values, strict=True))) + "\n")
        else:
            self._writer.writerow([_text(v) for v in values])


class Seconds(float):
    """A time in seconds: written to the microsecond (``%.6g`` would round a day's
    86 400.125 s to 86 400.1)."""


def _text(value: object) -> str:
    if isinstance(value, Seconds):
        return f"{value:.6f}".rstrip("0").rstrip(".")
    if isinstance(value, (float, np.floating)):
        return f"{value:.6g}"
    return str(value)


#: Where a row sits in its recording: original samples, the same in seconds from the
#: recording's start, and the file it was read from.
SPAN_COLUMNS = ["start", "end", "start_s", "end_s"]


def window_columns(classes: Sequence[str]) -> list[str]:
    return ["recording", "file", *SPAN_COLUMNS, "label", "confidence", *_p(classes)]


def recording_columns(classes: Sequence[str]) -> list[str]:
    return ["recording", "file", "label", "confidence", "n_windows", *_p(classes)]


def segment_columns() -> list[str]:
    return ["recording", "file", *SPAN_COLUMNS, "label", "confidence", "n_windows"]


def _p(classes: Sequence[str]) -> list[str]:
    return [f"p_{c}" for c in classes]


def _where(pred: RecordingPrediction, start: int, end: int) -> list[object]:
    """The span columns of a row from ``start`` to ``end`` (original samples)."""
    fs = float(pred.recording.fs)
    return [int(start), int(end), Seconds(start / fs), Seconds(end / fs)]


def _file(pred: RecordingPrediction) -> str:
    source = getattr(pred.recording, "source", None)
    return str(source) if source else ""


def segment_rows(pred: RecordingPrediction, classes: Sequence[str]) -> Iterator[list[object]]:
    rec_id, file = pred.recording.id, _file(pred)
    for seg in pred.segments():
        yield [
            rec_id, file, *_where(pred, seg.start, seg.end), classes[seg.label],
            seg.confidence, len(seg.confidences),
        ]  # fmt: skip


def window_rows(pred: RecordingPrediction, classes: Sequence[str]) -> Iterator[list[object]]:
    best = pred.probabilities.argmax(1)
    rec_id, file = pred.recording.id, _file(pred)
    for i in range(len(pred.starts)):
        probs = pred.probabilities[i]
        yield [
            rec_id,
            file,
            *_where(pred, pred.starts[i], pred.ends[i]),
            classes[best[i]],
            float(probs[best[i]]),
            *map(float, probs),
        ]


def recording_row(
    pred: RecordingPrediction, classes: Sequence[str], aggregation: str = "mean"
) -> list[object]:
    probs = pred.aggregate(aggregation)
    best = int(probs.argmax())
    return [
        pred.recording.id,
        _file(pred),
        classes[best],
        float(probs[best]),
        len(pred.starts),
        *map(float, probs),
    ]


@dataclass
class PredictionTables:
    """Where predictions go: per window, per recording, and merged segments (the window
    and segment tables only when writing to a directory)."""

    recordings: Table
    windows: Table | None = None
    segments: Table | None = None
    aggregation: str = "mean"

    def write(self, pred: RecordingPrediction, classes: Sequence[str]) -> None:
        """Write one recording's rows to every table."""
        if self.windows is not None:
            for row in window_rows(pred, classes):
                self.windows.write(row)
        if self.segments is not None:
            for row in segment_rows(pred, classes):
                self.segments.write(row)
        self.recordings.write(recording_row(pred, classes, self.aggregation))


@contextlib.contextmanager
def prediction_tables(
    out_dir: Path | None, classes: Sequence[str], fmt: str = "tsv", aggregation: str = "mean"
) -> Iterator[PredictionTables]:
    """Tables of windows, recordings and segments in ``out_dir``, or only recordings on
    stdout; recordings' probabilities aggregated from their windows' by ``aggregation``."""
    if out_dir is None:
        yield PredictionTables(
            Table(sys.stdout, recording_columns(classes), fmt), aggregation=aggregation
        )
        return
    out_dir = Path(out_dir)
    with (
        atomic_file(out_dir / f"windows.{fmt}") as wh,
        atomic_file(out_dir / f"recordings.{fmt}") as rh,
        atomic_file(out_dir / f"segments.{fmt}") as sh,
    ):
        yield PredictionTables(
            Table(rh, recording_columns(classes), fmt),
            Table(wh, window_columns(classes), fmt),
            Table(sh, segment_columns(), fmt),
            aggregation,
        )
