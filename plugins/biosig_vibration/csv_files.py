"""CSV and TSV recordings, streamed: one recording per file, one channel per numeric column.

What a file looks like is learnt from its first 256 rows (within 64 KiB): the delimiter
(tab, semicolon, comma or whitespace, whichever splits every line into the same number of
fields; whitespace over commas when the commas sit inside numbers, ``0,77 -2,55``), whether
the first line is a header (a cell that is not a number above a column of numbers), a
decimal comma, and a time column: by name (``t``, ``time``, ``timestamp``…, in seconds
unless the name ends in ``_ms``), or a first column that rises steadily by fractions of a
second, or one of dates. A first column of rising whole numbers is a sample counter:
neither a channel nor a rate. A time column stepping by whole numbers (milliseconds, a
counter) or slower than 1 Hz gives no rate: it is an error unless the rate is given.

``open`` then scans the file's bytes once, without parsing, to count rows and find a
ragged one, and parses the time column alone, in blocks, to take the rate from its median
step and warn of dropouts anywhere in the file; ``chunks`` parses blocks with
``pandas.read_csv(chunksize=…)``. So an hours-long file is never held in memory, and a
broken one is refused with its line number.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biosig import RecordingError

from .channels import match_channels
from .rate import JITTER_TOLERANCE, rate_from_step

log = logging.getLogger("biosig")

#: Bytes read to learn the layout: hundreds of rows of a typical sensor log.
HEAD_BYTES = 1 << 16
#: Rows (of those) that the layout is learnt from.
SAMPLE_ROWS = 256
#: Bytes scanned at a time when counting rows.
SCAN_BYTES = 1 << 20
#: Rows of the time column parsed at a time when its steps are checked.
TIME_ROWS = 1 << 18
CANDIDATES = ("\t", ";", ",")
WHITESPACE = " "  # stands for "runs of spaces or tabs"

_TIME_NAME = re.compile(
    r"^(t|time|times|timestamp|time_?stamp|elapsed|elapsed_?time|seconds|secs?)"
    r"(?:[ _]?\(?(s|sec|ms)\)?)?$",
    re.IGNORECASE,
)
_DECIMAL_COMMA = re.compile(r"^[-+]?\d*,\d+(?:[eE][-+]?\d+)?$")
# "0,7733 -2,5572" split at commas leaves "7733 -2": whole numbers parted by spaces (and
# not "2024-01-01 00:00:00", a date)
_SPACED_DIGITS = re.compile(r"^[-+]?\d+(?:[eE][-+]?\d+)?(?:\s+[-+]?\d+(?:[eE][-+]?\d+)?)+$")
_RATE_WAYS = '--fs, an fs column in --manifest, or a sidecar <file>.json holding {"fs": …}'


@dataclass(frozen=True)
class TimeColumn:
    """The column that holds time, and what its first rows say."""

    index: int
    name: str
    #: seconds per unit of a numeric column (1, or 1e-3 for ``_ms``); ``None``: dates
    unit: float | None
    #: how the dates are parsed (``"ISO8601"`` or ``"mixed"``)
    date_format: str | None
    #: median step over the first rows, in seconds
    head_step: float
    #: why the column gives no rate (whole-number steps, under 1 Hz); ``None`` if it does
    problem: str | None


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
    time: TimeColumn | None
    #: columns that are neither channels nor time (a sample counter)
    index_columns: tuple[int, ...]
    encoding: str
    #: quotes in the data rows: the byte scan cannot count fields, pandas checks them
    quoted: bool

    @property
    def time_column(self) -> int | None:
        return None if self.time is None else self.time.index

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
    has_header = _has_header(rows, decimal)
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
    time, index_columns = _time_column(path, names, columns, numeric, decimal)
    return CsvLayout(
        delimiter=delimiter,
        decimal=decimal,
        first_line=first[0],
        first_offset=first[1],
        names=names,
        numeric=numeric,
        time=time,
        index_columns=index_columns,
        encoding=encoding,
        quoted=any('"' in text for _, _, text in lines[1:]),
    )


def _has_header(rows: Sequence[Sequence[str]], decimal: str) -> bool:
    """Whether the first row names the columns: a cell of it is not a number where the rows
    below hold numbers (a date above dates is data). A lone row is a header if it holds a
    cell that is not a number."""
    first, data = rows[0], rows[1:]
    if not data:
        return any(cell and _number(cell, decimal) is None for cell in first)
    for i, cell in enumerate(first):
        if not cell or _number(cell, decimal) is not None:
            continue
        below = [row[i] for row in data if i < len(row) and row[i]]
        if below and all(_number(c, decimal) is not None for c in below):
            return True
    return False


def _split(line: str, delimiter: str) -> list[str]:
    if delimiter == WHITESPACE:
        return line.split()
    return [cell.strip() for cell in next(csv.reader([line], delimiter=delimiter))]


def _delimiter(path: Path, lines: Sequence[tuple[int, int, str]]) -> str:
    """The delimiter that splits every line into the same number (> 1) of fields; a file
    where none does is ragged, said with the first line that differs. Commas that split
    numbers apart (``0,7733 -2,5572``: cells ``7733 -2``) are decimal commas, so whitespace
    wins over them when it splits every line evenly."""
    counts = {d: [len(_split(text, d)) for _, _, text in lines] for d in (*CANDIDATES, WHITESPACE)}

    def even(d: str) -> bool:
        return counts[d][0] > 1 and all(w == counts[d][0] for w in counts[d])

    for d in counts:
        if not even(d):
            continue
        if d == "," and even(WHITESPACE) and _commas_inside_numbers(lines):
            return WHITESPACE
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


def _commas_inside_numbers(lines: Sequence[tuple[int, int, str]]) -> bool:
    return any(_SPACED_DIGITS.match(cell) for _, _, text in lines for cell in _split(text, ","))


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
) -> tuple[TimeColumn | None, tuple[int, ...]]:
    """``(time column, counter columns)``, from the first rows."""
    for i, name in enumerate(names):
        match = _TIME_NAME.match(name)
        if not match:
            continue
        if numeric[i]:
            unit = 1e-3 if (match.group(2) or "").lower() == "ms" else 1.0
            values = np.array([_number(c, decimal) for c in columns[i] if c], dtype=np.float64)
            return _numeric_time(path, i, name, values, unit, match.group(1)), ()
        return _date_time(path, i, name, columns[i]), ()
    if not columns:
        return None, ()
    if not numeric[0]:  # a first column of dates is time, whatever its name
        return _date_time(path, 0, names[0], columns[0]), ()
    values = np.array([_number(c, decimal) for c in columns[0] if c], dtype=np.float64)
    steps = np.diff(values)
    if values.size < 3 or not np.all(steps > 0):
        return None, ()
    if np.all(values == np.round(values)):
        # 0, 1, 2… (or every other sample): a counter, which says nothing of time; whole
        # seconds would be a rate below 1 Hz, and milliseconds need the name to say so
        return None, (0,)
    step = float(np.median(steps))
    if float(np.max(np.abs(steps - step))) > 0.5 * step:
        return None, ()  # rising, but not steadily: a measured quantity
    return _numeric_time(path, 0, names[0], values, 1.0, "time"), ()


def _numeric_time(
    path: Path, index: int, name: str, values: np.ndarray, unit: float, base: str
) -> TimeColumn:
    """A numeric time column in ``unit`` seconds, with the problem that keeps it from
    giving a rate, if any: whole-number steps in a column said to be in seconds, or a rate
    under 1 Hz. ``base`` is its name without a unit, for the ``_ms`` advice."""
    steps = np.diff(values[np.isfinite(values)])
    step = float(np.median(steps)) if steps.size else float("nan")
    if not step > 0:
        problem = f"{path}: column {name!r} does not increase over its first rows"
    elif unit == 1.0 and step >= 1 and abs(step - round(step)) <= 1e-9 * step:
        problem = (
            f"{path}: column {name!r} steps by whole numbers ({step:g} per row), so it is not "
            f"in seconds: milliseconds, or a sample counter? Name the column {base}_ms if it "
            f"holds milliseconds, or give the rate: {_RATE_WAYS}"
        )
    else:
        problem = _slow(path, name, step * unit, base if unit == 1.0 else None)
    return TimeColumn(index, name, unit, None, step * unit, problem)


def _slow(path: Path, name: str, step: float, base: str | None) -> str | None:
    """The problem of a time column slower than 1 Hz (a step over a second), if it is."""
    if step <= 1:
        return None
    ways = f"give the rate: {_RATE_WAYS}"
    if base:
        ways = f"name the column {base}_ms if it holds milliseconds, or {ways}"
    return (
        f"{path}: column {name!r} gives {1 / step:.3g} Hz, under 1 Hz: is it in another unit? "
        f"{ways[0].upper()}{ways[1:]}"
    )


def _date_time(path: Path, index: int, name: str, cells: Sequence[str]) -> TimeColumn | None:
    """A time column of dates (``2024-05-01 10:00:00.001``), or ``None`` if the cells are
    not dates (a named column is then only left out of the channels)."""
    import pandas as pd

    cells = pd.Series([c for c in cells if c])
    if cells.size < 2:
        return None
    for date_format in ("ISO8601", "mixed"):
        try:
            stamps = pd.to_datetime(cells, format=date_format)
        except (ValueError, TypeError, OverflowError):
            continue
        steps = np.diff(stamps.to_numpy(dtype="datetime64[ns]").astype(np.int64)) / 1e9
        step = float(np.median(steps))
        if not step > 0:
            problem = f"{path}: column {name!r} does not increase over its first rows"
        else:
            problem = _slow(path, name, step, None)
        return TimeColumn(index, name, None, date_format, step, problem)
    return None


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


@dataclass(frozen=True)
class TimeSteps:
    """The steps of a whole time column, gathered block by block."""

    #: the median step in seconds (the median of each block's median)
    median: float
    n_steps: int
    #: steps more than 1 % away from the median, the largest such distance (relative),
    #: and the data row (0-based) that ends the first of them
    n_off: int
    max_off: float
    first_off: int | None


def time_steps(path: Path, layout: CsvLayout) -> TimeSteps | None:
    """Every step of the time column, parsed alone in blocks of :data:`TIME_ROWS` rows, so
    memory stays flat however long the file; ``None`` without a time column that gives a
    rate. Steps are compared with the median of the first rows; if the whole file's median
    differs from it by over 1 %, they are counted again against the whole file's."""
    time = layout.time
    if time is None or time.problem is not None:
        return None
    steps = _step_pass(path, layout, time.head_step)
    if steps is not None and abs(steps.median - time.head_step) > JITTER_TOLERANCE * steps.median:
        steps = _step_pass(path, layout, steps.median)
    return steps


def _step_pass(path: Path, layout: CsvLayout, reference: float) -> TimeSteps | None:
    import pandas as pd

    time = layout.time
    assert time is not None
    options = {
        "sep": r"\s+" if layout.delimiter == WHITESPACE else layout.delimiter,
        "decimal": layout.decimal,
        "header": None,
        "usecols": [time.index],
        "chunksize": max(2, int(TIME_ROWS)),
        "encoding": layout.encoding,
        "dtype": str if time.unit is None else None,
    }
    medians: list[float] = []
    n_steps = n_off = 0
    max_off = 0.0
    first_off: int | None = None
    last: tuple[float, int] | None = None  # the previous block's last value and its row
    done = 0
    origin: list[int] = []  # the first date, in ns
    try:
        with open(path, "rb") as handle:
            handle.seek(layout.first_offset)
            with pd.read_csv(handle, **options) as reader:
                for frame in reader:
                    values = _time_values(frame.iloc[:, 0], time, origin)
                    rows = done + np.flatnonzero(np.isfinite(values))
                    values = values[np.isfinite(values)]
                    done += len(frame)
                    if last is not None:
                        values = np.concatenate(([last[0]], values))
                        rows = np.concatenate(([last[1]], rows))
                    if values.size == 0:
                        continue
                    last = (float(values[-1]), int(rows[-1]))
                    if values.size < 2:
                        continue
                    steps = np.diff(values) * (time.unit or 1.0)
                    medians.append(float(np.median(steps)))
                    distance = np.abs(steps - reference) / reference
                    off = distance > JITTER_TOLERANCE
                    n_steps += steps.size
                    n_off += int(off.sum())
                    max_off = max(max_off, float(distance.max()))
                    if first_off is None and off.any():
                        first_off = int(rows[1 + int(np.argmax(off))])
    except (ValueError, OSError) as exc:  # pandas' ParserError is a ValueError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RecordingError(f"{path}: cannot parse column {time.name!r} ({first})") from None
    if not medians:
        return None
    return TimeSteps(float(np.median(medians)), n_steps, n_off, max_off, first_off)


def _time_values(cells, time: TimeColumn, origin: list[int]) -> np.ndarray:
    """A block of the time column as float64 in its own unit (dates: seconds since the
    file's first date, ``origin``, so that differences keep their microseconds); NaN where a
    cell is empty or unreadable."""
    import pandas as pd

    if time.unit is not None:
        return pd.to_numeric(cells, errors="coerce").to_numpy(dtype=np.float64)
    stamps = pd.to_datetime(cells, format=time.date_format, errors="coerce")
    missing = pd.isna(stamps).to_numpy()
    ns = stamps.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    if not origin and not missing.all():
        origin.append(int(ns[~missing][0]))
    values = (ns - (origin[0] if origin else 0)) / 1e9
    values[missing] = np.nan
    return values


def time_rate(path: Path, layout: CsvLayout, blank_lines: np.ndarray) -> float | None:
    """The rate the time column gives, ``round(1 / median step)``, with a warning naming the
    file, the column and the first line of any step more than 1 % off the median (a
    dropout, a restart); ``None`` without a time column that gives one."""
    steps = time_steps(path, layout)
    if steps is None:
        return None
    assert layout.time is not None
    name = layout.time.name
    if not steps.median > 0:
        raise RecordingError(
            f"{path}: column {name!r} does not increase (median step {steps.median:g})"
        )
    if steps.n_off:
        line = _line_of(layout, blank_lines, steps.first_off or 0) + 1
        log.warning(
            "%s: column %r: time steps jitter by up to %.1f%% of their median %g s "
            "(%d of %d steps off by more than 1 %%, the first at line %d); the sample rate "
            "is taken from the median",
            path,
            name,
            100 * steps.max_off,
            steps.median,
            steps.n_off,
            steps.n_steps,
            line,
        )
    return rate_from_step(steps.median)


def _line_of(layout: CsvLayout, blank_lines: np.ndarray, row: int) -> int:
    """The physical line (0-based) of data row ``row``: pandas skips blank lines."""
    line = layout.first_line + row
    for blank in blank_lines:
        if blank <= line:
            line += 1
        else:
            break
    return line


class CsvRecording:
    """The chosen columns of one delimited text file, read ``n`` rows at a time."""

    def __init__(
        self,
        path: Path,
        layout: CsvLayout,
        columns: Sequence[int],
        scan: RowScan,
        fs: float,
        id: str | None = None,
    ) -> None:
        self.id = id or path.stem
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
        return _line_of(self.layout, self._blank_lines, row)

    def __repr__(self) -> str:
        return (
            f"CsvRecording(id={self.id!r}, fs={self.fs:g}, channels={self.channels}, "
            f"n_samples={self.n_samples})"
        )


def inspect_csv(
    path: Path, items: Sequence[str]
) -> tuple[CsvLayout, list[int], RowScan, float | None]:
    """Layout, chosen columns (``items`` as ``--channels`` gives them; none: every numeric
    column but time), row count and the time column's rate (``None`` if none gives one)
    of one file, parsing no more of its body than the time column."""
    path = Path(path)
    layout = read_layout(path)
    if items:
        columns = match_channels(layout.names, items, path, "columns")
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
    return layout, columns, scan, time_rate(path, layout, scan.blank_lines)
