"""CSV and TSV recordings, streamed: one recording per file, one channel per numeric column.

What a file looks like is learnt from its first 256 rows (within 64 KiB): the delimiter
(tab, semicolon, comma or whitespace, whichever splits every line into the same number of
fields), whether the first line is a header (it holds a cell that is not a number), a
decimal comma, and a time column (by name: ``t``, ``time``, ``timestamp``…, in seconds
unless the name ends in ``_ms``; or a first column that rises steadily by fractions of a
second). A first column of rising whole numbers is a sample counter: neither a channel nor
a rate.

``open`` then scans the file's bytes once, without parsing, to count rows and find a
ragged one; ``chunks`` parses blocks with ``pandas.read_csv(chunksize=…)``. So an hours-long
file is never held in memory, and a broken one is refused with its line number.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biosig import RecordingError

from .channels import select_channels
from .rate import rate_from_times

#: Bytes read to learn the layout: hundreds of rows of a typical sensor log.
HEAD_BYTES = 1 << 16
#: Rows (of those) that the layout is learnt from.
SAMPLE_ROWS = 256
#: Bytes scanned at a time when counting rows.
SCAN_BYTES = 1 << 20
CANDIDATES = ("\t", ";", ",")
WHITESPACE = " "  # stands for "runs of spaces or tabs"

_TIME_NAME = re.compile(
    r"^(t|time|times|timestamp|time_?stamp|elapsed|elapsed_?time|seconds|secs?)"
    r"(?:[ _]?\(?(s|sec|ms)\)?)?$",
    re.IGNORECASE,
)
_DECIMAL_COMMA = re.compile(r"^[-+]?\d*,\d+(?:[eE][-+]?\d+)?$")


@dataclass(frozen=True)
class CsvLayout:
    """How a delimited text file is laid out, learnt from its first rows."""

    delimiter: str
    decimal: str
    #: physical line (0-based) and byte offset of the first data row
    first_line: int
    first_offset: int
    names: tuple[str, ...]
    #: columns holding numbers in the first rows
    numeric: tuple[bool, ...]
    time_column: int | None
    #: columns that are neither channels nor time (a sample counter)
    index_columns: tuple[int, ...]
    #: the rate the time column gives, if there is one that gives a rate
    time_rate: float | None
    encoding: str
    #: quotes in the data rows: the byte scan cannot count fields, pandas checks them
    quoted: bool

    @property
    def channel_columns(self) -> list[int]:
        """Every numeric column that is neither time nor a counter: the default channels."""
        skip = {self.time_column, *self.index_columns}
        return [i for i, numeric in enumerate(self.numeric) if numeric and i not in skip]


def read_layout(path: Path) -> CsvLayout:
    """Learn a file's layout from its head; a file with no rows, or binary, is a
    :class:`RecordingError` naming it."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(HEAD_BYTES)
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if b"\x00" in head:
        raise RecordingError(f"{path}: a binary file, not CSV or TSV text")
    encoding = "utf-8-sig"
    try:
        head.decode(encoding)
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut by the 64 KiB boundary
            encoding = "latin-1"  # names written by old instrument software
    raw_lines = head.split(b"\n")
    if len(head) == HEAD_BYTES:
        raw_lines = raw_lines[:-1]  # the last may be cut mid-row
    lines: list[tuple[int, int, str]] = []  # (physical line, byte offset, text)
    offset = 0
    for number, raw in enumerate(raw_lines):
        text = raw.decode(encoding, errors="replace").strip("\r")
        if number == 0:
            text = text.lstrip("\ufeff")
        if text.strip():
            lines.append((number, offset, text))
        offset += len(raw) + 1
        if len(lines) == SAMPLE_ROWS:
            break
    if not lines:
        raise RecordingError(f"{path}: empty file (no rows)")
    delimiter = _delimiter(path, lines)
    rows = [_split(text, delimiter) for _, _, text in lines]
    decimal = _decimal(rows[1:] or rows, delimiter)
    has_header = any(cell and _number(cell, decimal) is None for cell in rows[0])
    data = rows[1:] if has_header else rows
    if not data:
        raise RecordingError(f"{path}: holds a header but no rows")
    width = len(rows[0])
    if has_header:
        names = tuple(cell.strip() or f"col{i}" for i, cell in enumerate(rows[0]))
    else:
        names = tuple(f"col{i}" for i in range(width))
    columns = [[row[i] for row in data if i < len(row)] for i in range(width)]
    numeric = tuple(all(_number(c, decimal) is not None for c in col if c) for col in columns)
    first = lines[1] if has_header else lines[0]
    time_column, index_columns, time_rate = _time_column(path, names, columns, numeric, decimal)
    return CsvLayout(
        delimiter=delimiter,
        decimal=decimal,
        first_line=first[0],
        first_offset=first[1],
        names=names,
        numeric=numeric,
        time_column=time_column,
        index_columns=index_columns,
        time_rate=time_rate,
        encoding=encoding,
        quoted=any('"' in text for _, _, text in lines[1:]),
    )


def _split(line: str, delimiter: str) -> list[str]:
    if delimiter == WHITESPACE:
        return line.split()
    return [cell.strip() for cell in next(csv.reader([line], delimiter=delimiter))]


def _delimiter(path: Path, lines: Sequence[tuple[int, int, str]]) -> str:
    """The delimiter that splits every line into the same number (> 1) of fields; a file
    where none does is ragged, said with the first line that differs."""
    counts = {d: [len(_split(text, d)) for _, _, text in lines] for d in (*CANDIDATES, WHITESPACE)}
    for d, widths in counts.items():
        if widths[0] > 1 and all(w == widths[0] for w in widths):
            return d
    if all(w == 1 for widths in counts.values() for w in widths):
        return ","  # one column: any delimiter reads it
    # The delimiter most lines agree on; the first line that disagrees is the ragged one.
    widths = max(counts.values(), key=_agreement)
    usual = max(set(widths), key=widths.count)
    bad = next(i for i, w in enumerate(widths) if w != usual)
    raise RecordingError(
        f"{path}: line {lines[bad][0] + 1}: {widths[bad]} fields where the others have {usual}"
    )


def _agreement(widths: list[int]) -> tuple[int, int]:
    usual = max(set(widths), key=widths.count)
    return (widths.count(usual) if usual > 1 else 0, usual)


def _decimal(rows: Sequence[Sequence[str]], delimiter: str) -> str:
    # "1,25;3,5" (a European spreadsheet): a comma inside numbers, never a point
    if delimiter == ",":
        return "."
    cells = [c for row in rows for c in row if c]
    if any(_DECIMAL_COMMA.match(c) for c in cells) and not any("." in c for c in cells):
        return ","
    return "."


def _number(text: str, decimal: str = ".") -> float | None:
    text = text.strip().strip('"')
    if decimal == ",":
        text = text.replace(",", ".")
    try:
        return float(text)
    except ValueError:
        return None


def _time_column(
    path: Path,
    names: Sequence[str],
    columns: Sequence[Sequence[str]],
    numeric: Sequence[bool],
    decimal: str,
) -> tuple[int | None, tuple[int, ...], float | None]:
    """``(time column, counter columns, rate from the time column)``."""
    for i, name in enumerate(names):
        match = _TIME_NAME.match(name)
        if not match:
            continue
        unit = 1e-3 if (match.group(2) or "").lower() == "ms" else 1.0
        if numeric[i]:
            times = [_number(c, decimal) for c in columns[i] if c]
            return i, (), rate_from_times(np.array(times), unit, f"{path}: column {name!r}")
        return i, (), _datetime_rate(path, name, columns[i])
    if not columns or not numeric[0]:
        return None, (), None
    values = np.array([_number(c, decimal) for c in columns[0] if c], dtype=np.float64)
    steps = np.diff(values)
    if values.size < 3 or not np.all(steps > 0):
        return None, (), None
    if np.all(values == np.round(values)):
        # 0, 1, 2… (or every other sample): a counter, which says nothing of time; whole
        # seconds would be a rate below 1 Hz, and milliseconds need the name to say so
        return None, (0,), None
    step = float(np.median(steps))
    if float(np.max(np.abs(steps - step))) > 0.5 * step:
        return None, (), None  # rising, but not steadily: a measured quantity
    return 0, (), rate_from_times(values, 1.0, f"{path}: column {names[0]!r}")


def _datetime_rate(path: Path, name: str, cells: Sequence[str]) -> float | None:
    """The rate of a time column of dates (``2024-05-01 10:00:00.001``), or ``None`` if the
    cells are not dates: the column is then only left out of the channels."""
    import pandas as pd

    try:
        stamps = pd.to_datetime(pd.Series([c for c in cells if c]), format="mixed")
    except (ValueError, TypeError, OverflowError):
        return None
    seconds = (stamps - stamps.iloc[0]).dt.total_seconds().to_numpy()
    return rate_from_times(seconds, 1.0, f"{path}: column {name!r}")


@dataclass(frozen=True)
class RowScan:
    """What one pass over a file's bytes found."""

    n_rows: int
    #: physical lines (0-based) after the header that are blank; pandas skips them
    blank_lines: np.ndarray


def scan_rows(path: Path, layout: CsvLayout) -> RowScan:
    """Count the data rows of ``path`` from its bytes, without parsing numbers, and check
    that every row has as many fields as the header: a ragged row is a
    :class:`RecordingError` naming its line."""
    check = layout.delimiter != WHITESPACE and not layout.quoted
    delimiter = ord(layout.delimiter) if check else -1
    expected = len(layout.names) - 1
    # bytes that do not make a line non-blank (a tab does, when it separates fields)
    spacing = [13, 32] if layout.delimiter == "\t" else [9, 13, 32]
    line = 0  # physical lines finished so far
    carry_content = carry_fields = 0  # counts on the unfinished line
    n_rows = 0
    blanks: list[np.ndarray] = []
    try:
        with open(path, "rb") as handle:
            handle.seek(layout.first_offset)
            line = layout.first_line
            while block := handle.read(SCAN_BYTES):
                a = np.frombuffer(block, dtype=np.uint8)
                ends = np.flatnonzero(a == 10)
                content = np.concatenate(([0], np.cumsum(~np.isin(a, [10, *spacing]))))
                fields = np.concatenate(([0], np.cumsum(a == delimiter)))
                starts = np.concatenate(([0], ends + 1))
                per_content = content[ends] - content[starts[:-1]]
                per_fields = fields[ends] - fields[starts[:-1]]
                if ends.size:
                    per_content[0] += carry_content
                    per_fields[0] += carry_fields
                    carry_content = carry_fields = 0
                carry_content += int(content[-1] - content[starts[-1]])
                carry_fields += int(fields[-1] - fields[starts[-1]])
                n_rows += _check_lines(path, line, per_content, per_fields, check, expected, blanks)
                line += ends.size
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if carry_content:  # a last row without a newline
        n_rows += _check_lines(
            path, line, np.array([carry_content]), np.array([carry_fields]), check, expected, blanks
        )
    return RowScan(n_rows, np.concatenate(blanks) if blanks else np.zeros(0, dtype=np.int64))


def _check_lines(
    path: Path,
    first: int,
    content: np.ndarray,
    fields: np.ndarray,
    check: bool,
    expected: int,
    blanks: list[np.ndarray],
) -> int:
    """Rows among lines ``first…``: blank ones are noted, a ragged one is an error."""
    blank = content == 0
    if blank.any():
        blanks.append(first + np.flatnonzero(blank))
    if check:
        ragged = np.flatnonzero(~blank & (fields != expected))
        if ragged.size:
            i = int(ragged[0])
            raise RecordingError(
                f"{path}: line {first + i + 1}: {int(fields[i]) + 1} fields where the header "
                f"has {expected + 1}"
            )
    return int((~blank).sum())


class CsvRecording:
    """The chosen columns of one delimited text file, read ``n`` rows at a time."""

    def __init__(
        self,
        path: Path,
        layout: CsvLayout,
        columns: Sequence[int],
        scan: RowScan,
        fs: float,
    ) -> None:
        self.id = path.stem
        self.source = path
        self.fs = float(fs)
        self.layout = layout
        self.columns = list(columns)
        self.channels = tuple(layout.names[i] for i in columns)
        self.n_samples = scan.n_rows
        self._blank_lines = scan.blank_lines

    def chunks(self, n: int) -> Iterator[np.ndarray]:
        import pandas as pd

        layout = self.layout
        options = {
            "sep": r"\s+" if layout.delimiter == WHITESPACE else layout.delimiter,
            "decimal": layout.decimal,
            "header": None,
            "usecols": self.columns,
            "chunksize": max(1, int(n)),
            "encoding": layout.encoding,
        }
        done = 0
        try:
            with open(self.source, "rb") as handle:
                handle.seek(layout.first_offset)
                with pd.read_csv(handle, **options) as reader:
                    for frame in reader:
                        block = self._numbers(frame, done)
                        done += block.shape[1]
                        yield block
        except (ValueError, OSError) as exc:  # pandas' ParserError is a ValueError
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RecordingError(f"{self.source}: cannot parse ({first})") from None
        if done != self.n_samples:
            raise RecordingError(
                f"{self.source}: read {done} rows but counted {self.n_samples}; "
                "was it changed while being read?"
            )

    def _numbers(self, frame, done: int) -> np.ndarray:
        """A parsed block as float32 ``[C, rows]``; a cell that is not a number (or empty:
        then NaN, a gap) is a :class:`RecordingError` naming its line and column."""
        import pandas as pd

        frame = frame[self.columns]  # pandas keeps file order; the user's order is wanted
        for position, column in enumerate(frame.columns):
            values = frame[column]
            if values.dtype.kind in "fiub":
                continue
            parsed = pd.to_numeric(values, errors="coerce")
            bad = np.flatnonzero(parsed.isna().to_numpy() & values.notna().to_numpy())
            if bad.size:
                row = int(bad[0])
                raise RecordingError(
                    f"{self.source}: line {self._line_of(done + row) + 1}: "
                    f"{self.channels[position]} is {values.iloc[row]!r}, not a number"
                )
            frame[column] = parsed
        return np.ascontiguousarray(frame.to_numpy(dtype=np.float32).T)

    def _line_of(self, row: int) -> int:
        """The physical line (0-based) of data row ``row``: pandas skips blank lines."""
        line = self.layout.first_line + row
        for blank in self._blank_lines:
            if blank <= line:
                line += 1
            else:
                break
        return line

    def __repr__(self) -> str:
        return (
            f"CsvRecording(id={self.id!r}, fs={self.fs:g}, channels={self.channels}, "
            f"n_samples={self.n_samples})"
        )


def inspect_csv(path: Path, items: Sequence[str]) -> tuple[CsvLayout, list[int], RowScan]:
    """Layout, chosen columns (``items`` as ``--channels`` gives them; none: every numeric
    column but time) and row count of one file, without parsing its body."""
    path = Path(path)
    layout = read_layout(path)
    if items:
        columns = select_channels(layout.names, items, path, "columns")
        text = [layout.names[i] for i in columns if not layout.numeric[i]]
        if text:
            raise RecordingError(f"{path}: column {text[0]!r} does not hold numbers")
    else:
        columns = layout.channel_columns
        if not columns:
            raise RecordingError(
                f"{path}: no numeric column besides time (columns: {', '.join(layout.names)})"
            )
    scan = scan_rows(path, layout)
    if scan.n_rows == 0:
        raise RecordingError(f"{path}: holds a header but no rows")
    return layout, columns, scan
