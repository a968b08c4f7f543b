"""Prediction tables: one row per window and one per recording, as TSV, CSV, JSONL or
Parquet, each written under a temporary name and renamed into place when complete.

Every table biosig writes is tab-separated unless asked otherwise (``--format``): these,
and a run's ``history.tsv``."""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from ..atomic import atomic_file
from ..errors import BiosigError
from .choices import TEXT_FORMATS
from .stream import RecordingPrediction

#: Rows a Parquet table holds in memory before writing them out as one row group.
PARQUET_ROWS = 65536


def check_format(fmt: str, out_dir: Path | None, distributed: bool = False) -> None:
    """Refuse, before any work, a format that cannot be written where it is asked for:
    Parquet is binary (files only, not a terminal), needs pyarrow, and is written by one
    process (parts under torchrun are joined as text)."""
    if fmt in TEXT_FORMATS:
        return
    if out_dir is None:
        raise BiosigError(f"--format {fmt} writes files: give --out DIRECTORY")
    if distributed:
        raise BiosigError(
            f"--format {fmt} is written by one process; under torchrun give "
            f"{', '.join(TEXT_FORMATS)}"
        )
    if importlib.util.find_spec("pyarrow") is None:
        raise BiosigError(
            f"--format {fmt} needs pyarrow, which is not installed: pip install 'biosig[parquet]'"
        )


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

    def finish(self) -> None:
        """Nothing to do: every row is written as it comes."""

    def write(self, values: Sequence[object]) -> None:
        if self._header_due:
            self._writer.writerow(self.columns)
            self._header_due = False
        if self.fmt == "jsonl":
            self.handle.write(json.dumps(dict(zip(self.columns, values, strict=True))) + "\n")
        else:
            self._writer.writerow([_text(v) for v in values])


class ParquetTable:
    """Rows with fixed columns, written to a Parquet file in row groups of
    :data:`PARQUET_ROWS`, so a day-long recording's windows never sit in memory at once.

    Column types are those of the first row group's values (text, integers, floats); a
    table without rows is written with its columns as text. :meth:`finish` writes the
    rows still held and the file's footer.
    """

    def __init__(self, handle: IO[bytes], columns: Sequence[str]) -> None:
        self.handle, self.columns = handle, list(columns)
        self._rows: list[Sequence[object]] = []
        self._writer = None

    def write(self, values: Sequence[object]) -> None:
        self._rows.append(values)
        if len(self._rows) >= PARQUET_ROWS:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = {
            name: [_plain(row[i]) for row in self._rows] for i, name in enumerate(self.columns)
        }
        if self._writer is None:
            table = (
                pa.table(columns)
                if self._rows
                else pa.table({name: pa.array([], pa.string()) for name in self.columns})
            )
            self._writer = pq.ParquetWriter(self.handle, table.schema)
        else:
            table = pa.table(columns).cast(self._writer.schema)
        self._writer.write_table(table)
        self._rows = []

    def finish(self) -> None:
        if self._rows or self._writer is None:
            self._flush()
        self._writer.close()


def _plain(value: object) -> object:
    """A Python value pyarrow types as the text tables do: NumPy scalars as numbers."""
    return value.item() if isinstance(value, np.generic) else value


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
#: recording's start, and, for a recording with a calendar (``times`` of date-times, one per
#: sample: price bars), the date-times of its first and last samples (for a forecast, the
#: bar whose close it is made at); empty for a recording without one.
SPAN_COLUMNS = ["start", "end", "start_s", "end_s", "start_time", "end_time"]


def window_columns(classes: Sequence[str]) -> list[str]:
    return ["recording", "file", *SPAN_COLUMNS, "label", "confidence", *_p(classes)]


def recording_columns(classes: Sequence[str]) -> list[str]:
    return ["recording", "file", "label", "confidence", "n_windows", *_p(classes)]


def segment_columns() -> list[str]:
    return ["recording", "file", *SPAN_COLUMNS, "label", "confidence", "n_windows"]


def _p(classes: Sequence[str]) -> list[str]:
    return [f"p_{c}" for c in classes]


def _where(
    pred: RecordingPrediction, start: int, end: int, calendar: np.ndarray | None
) -> list[object]:
    """The span columns of a row from ``start`` to ``end`` (original samples)."""
    fs = float(pred.recording.fs)
    span: list[object] = [int(start), int(end), Seconds(start / fs), Seconds(end / fs)]
    if calendar is None or not 0 <= start < end <= len(calendar):
        return [*span, "", ""]
    return [*span, _date_time(calendar[start]), _date_time(calendar[end - 1])]


def _calendar(pred: RecordingPrediction) -> np.ndarray | None:
    """The recording's date-time per sample, or ``None`` when its ``times`` (if any) are
    not date-times."""
    times = getattr(pred.recording, "times", None)
    if times is None:
        return None
    times = np.asarray(times)
    return times if np.issubdtype(times.dtype, np.datetime64) else None


def _date_time(value: np.datetime64) -> str:
    """ISO 8601 to the second, or finer where the value has it: ``2024-03-01T00:00:00``."""
    return pd.Timestamp(value).isoformat()


def _file(pred: RecordingPrediction) -> str:
    source = getattr(pred.recording, "source", None)
    return str(source) if source else ""


def segment_rows(pred: RecordingPrediction, classes: Sequence[str]) -> Iterator[list[object]]:
    rec_id, file, calendar = pred.recording.id, _file(pred), _calendar(pred)
    for seg in pred.segments():
        yield [
            rec_id, file, *_where(pred, seg.start, seg.end, calendar), classes[seg.label],
            seg.confidence, len(seg.confidences),
        ]  # fmt: skip


def window_rows(pred: RecordingPrediction, classes: Sequence[str]) -> Iterator[list[object]]:
    best = pred.probabilities.argmax(1)
    rec_id, file, calendar = pred.recording.id, _file(pred), _calendar(pred)
    for i in range(len(pred.starts)):
        probs = pred.probabilities[i]
        yield [
            rec_id,
            file,
            *_where(pred, pred.starts[i], pred.ends[i], calendar),
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

    recordings: Table | ParquetTable
    windows: Table | ParquetTable | None = None
    segments: Table | ParquetTable | None = None
    aggregation: str = "mean"

    def finish(self) -> None:
        """Complete every table (Parquet's last row group and footer)."""
        for table in (self.recordings, self.windows, self.segments):
            if table is not None:
                table.finish()

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
    mode = "w" if fmt in TEXT_FORMATS else "wb"

    def table(handle: IO, columns: list[str]) -> Table | ParquetTable:
        return Table(handle, columns, fmt) if fmt in TEXT_FORMATS else ParquetTable(handle, columns)

    with (
        atomic_file(out_dir / f"windows.{fmt}", mode) as wh,
        atomic_file(out_dir / f"recordings.{fmt}", mode) as rh,
        atomic_file(out_dir / f"segments.{fmt}", mode) as sh,
    ):
        tables = PredictionTables(
            table(rh, recording_columns(classes)),
            table(wh, window_columns(classes)),
            table(sh, segment_columns()),
            aggregation,
        )
        yield tables
        tables.finish()
