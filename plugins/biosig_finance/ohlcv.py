"""Reading OHLCV bars from CSV text of the common shapes, and validating them.

Shapes seen in the wild and handled here, by what the header says (never by the file's
extension: backtrader ships CSV in ``.txt`` files):

* Yahoo: ``Date,Open,High,Low,Close,Adj Close,Volume`` (``Adj Close`` is used for prices);
* lower-case names with a written-out pandas index: ``,date,open,high,low,close,volume``;
* separate date and time columns: ``Date,Time,Open,…,Volume,OpenInterest``;
* a float-written volume (``4006500.0``), no trailing newline, ``;`` or tab delimiters.

Validation keeps what is plausible and says what it dropped: blank lines are passed over;
bars with a missing price (an empty cell or a marker such as Yahoo's ``null``, which it
writes in every price column on some dates) are dropped; rows are sorted by time, duplicate
timestamps dropped, and bars whose High/Low do not bracket Open/Close or whose prices are not
positive dropped, each with one warning naming the file, the count and the first such line.
What cannot be read at all (a price cell that is text such as ``abc``, a date that is not
one) is a one-line :class:`biosig.RecordingError` naming the line. Line numbers are the
file's own, 1-based, the header being line 1, blank lines counted.

The bars' ``times`` come out strictly ascending, one per bar kept.
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from biosig import BiosigError, RecordingError

log = logging.getLogger("biosig")

#: Header names after normalising (``Adj Close`` -> ``adj_close``) that mean the same column.
ALIASES = {
    "adjclose": "adj_close",
    "adjusted_close": "adj_close",
    "adj_closing": "adj_close",
    "vol": "volume",
    "open_interest": "openinterest",
    "datetime": "date",
    "timestamp": "date",
}
PRICE_COLUMNS = ("open", "high", "low", "close", "adj_close")
#: How a missing price is written (after stripping, in lower case): an empty cell, Yahoo's
#: ``null``, and the markers pandas reads as missing by default.
MISSING = frozenset(
    {"", "null", "nan", "-nan", "na", "n/a", "#n/a", "#na", "<na>", "none", "nil", "-", "--"}
)
#: Bytes read to sniff a file: enough for a header and a few rows.
SNIFF_BYTES = 4096


@dataclass
class Bars:
    """Validated bars of one file, oldest first. Prices are adjusted when the file has an
    adjusted close: Open/High/Low are scaled by ``adj_close / close`` so that the range of a
    bar and its close stay on one scale."""

    source: Path
    times: np.ndarray  # datetime64[ns]
    open: np.ndarray  # float64, adjusted
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray  # the price returns are computed from (Adj Close when present)
    volume: np.ndarray  # float64; zeros when the file has none
    adjusted: bool  # True when the file had an Adj Close column

    def __len__(self) -> int:
        return len(self.close)


def normalise_name(name: str) -> str:
    """``' Adj Close'`` -> ``adj_close``: stripped, lower case, runs of other characters as
    one underscore, then the aliases above."""
    name = re.sub(r"[^0-9a-z]+", "_", str(name).strip().lower()).strip("_")
    return ALIASES.get(name, name)


def sniff(path: Path) -> tuple[str, list[str]]:
    """``(delimiter, normalised header names)`` of a CSV-like file, from its first bytes.

    Raises :class:`biosig.BiosigError` naming the file when it is empty, not text, or has
    no date or price column.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError as exc:
        raise BiosigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not head.strip():
        raise BiosigError(f"{path}: empty file, expected OHLCV CSV text")
    if b"\x00" in head:
        raise BiosigError(f"{path}: binary file, expected OHLCV CSV text")
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = head.decode("latin-1")
    header = text.splitlines()[0]
    try:
        delimiter = csv.Sniffer().sniff(header, delimiters=",;\t|").delimiter
    except csv.Error:
        delimiter = ","
    names = [normalise_name(n) for n in next(csv.reader([header], delimiter=delimiter))]
    if "date" not in names and "time" not in names:
        raise BiosigError(f"{path}: no Date column in the header {header.strip()!r}")
    if "close" not in names and "adj_close" not in names:
        raise BiosigError(f"{path}: no Close or Adj Close column in the header {header.strip()!r}")
    return delimiter, names


def read_bars(path: Path) -> Bars:
    """The validated bars of one OHLCV CSV file (see the module docstring).

    Raises :class:`biosig.RecordingError` (one line naming the file, and the line where one
    is to blame) when the file cannot be used.
    """
    path = Path(path)
    try:
        delimiter, _ = sniff(path)
        # Cells as written (``null`` stays ``null``, for messages), and blank lines read as
        # empty rows rather than skipped, so that row k is line k + 2.
        frame = pd.read_csv(
            path,
            sep=delimiter,
            dtype=str,
            skipinitialspace=True,
            skip_blank_lines=False,
            keep_default_na=False,
        )
    except BiosigError as exc:
        raise RecordingError(str(exc)) from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RecordingError(f"{path}: not readable as CSV ({first})") from None
    # A written-out pandas index has an empty header cell, which pandas names "Unnamed: 0".
    frame = frame.loc[:, ~frame.columns.str.match(r"^Unnamed")]
    frame.columns = [normalise_name(c) for c in frame.columns]
    frame = frame.loc[:, ~frame.columns.duplicated()]
    # Line numbers in the file (header = line 1), kept through sorting for messages; then
    # the blank lines (rows with no cell at all) are passed over.
    lines = np.arange(len(frame)) + 2
    blank = frame.fillna("").apply(lambda column: column.str.strip() == "").all(axis=1)
    frame, lines = frame.loc[~blank.to_numpy()], lines[~blank.to_numpy()]
    if frame.empty:
        raise RecordingError(f"{path}: header only, no bars")

    times = _timestamps(path, frame, lines)
    prices = {name: _numbers(path, frame, name, lines) for name in PRICE_COLUMNS if name in frame}
    missing = np.logical_or.reduce([np.isnan(v) for v in prices.values()])
    close = prices.get("close", prices.get("adj_close"))
    for name in ("open", "high", "low"):  # a close-only file: the bar is its close
        prices.setdefault(name, close)
    prices.setdefault("close", close)
    volume = (
        pd.to_numeric(frame["volume"], errors="coerce").fillna(0.0).to_numpy(np.float64)
        if "volume" in frame
        else np.zeros(len(frame))
    )

    rows = np.arange(len(frame))
    if missing.any():
        first = int(np.flatnonzero(missing)[0])
        name = next(n for n in PRICE_COLUMNS if n in frame and np.isnan(prices[n][first]))
        cell = frame[name].iloc[first]
        written = "empty" if pd.isna(cell) or not cell.strip() else repr(cell)
        where = f"first at line {int(lines[first])}: {name} is {written}"
        if missing.all():
            raise RecordingError(
                f"{path}: no usable bar: all {len(missing)} have a missing price ({where})"
            )
        log.warning(
            "%s: dropped %d bars with a missing price (%s)", path, int(missing.sum()), where
        )
        rows = rows[~missing]

    order = rows[np.argsort(times[rows], kind="stable")]
    if np.any(order != rows):
        log.warning("%s: bars are not in time order; sorted", path)
    keep = order
    sorted_times = times[keep]
    duplicate = np.zeros(len(keep), dtype=bool)
    duplicate[1:] = sorted_times[1:] == sorted_times[:-1]
    if duplicate.any():
        log.warning(
            "%s: %d bars repeat an earlier timestamp (first at line %d); the first of each kept",
            path,
            int(duplicate.sum()),
            int(lines[keep][duplicate][0]),
        )
        keep = keep[~duplicate]

    o, h, low, c = (prices[n][keep] for n in ("open", "high", "low", "close"))
    adj = prices["adj_close"][keep] if "adj_close" in prices else c
    not_positive = np.minimum.reduce([o, h, low, c, adj]) <= 0
    high_short = h < np.maximum(o, c)
    low_over = low > np.minimum(o, c)
    bad = not_positive | high_short | low_over
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        why = (
            "a price <= 0"
            if not_positive[first]
            else "High below Open/Close"
            if high_short[first]
            else "Low above Open/Close"
        )
        where = f"first at line {int(lines[keep][first])}: {why}"
        if bad.all():
            raise RecordingError(
                f"{path}: no usable bar: all {len(bad)} have a price <= 0 or a High/Low "
                f"that does not bracket Open/Close ({where})"
            )
        log.warning(
            "%s: dropped %d bars with a price <= 0 or a High/Low not bracketing Open/Close (%s)",
            path,
            int(bad.sum()),
            where,
        )
        keep, o, h, low, c, adj = (a[~bad] for a in (keep, o, h, low, c, adj))
    # Split/dividend adjustment scales the whole bar, so log(High/Low) stays on one scale
    # with the adjusted close.
    factor = adj / c
    return Bars(
        source=path,
        times=times[keep],
        open=o * factor,
        high=h * factor,
        low=low * factor,
        close=adj,
        volume=volume[keep],
        adjusted="adj_close" in prices,
    )


def _timestamps(path: Path, frame: pd.DataFrame, lines: np.ndarray) -> np.ndarray:
    """Bar times as datetime64[ns]; ``date`` and ``time`` columns are joined when both exist."""
    text = frame["date"] if "date" in frame else frame["time"]
    if "date" in frame and "time" in frame:
        text = frame["date"].str.strip() + " " + frame["time"].str.strip()
    try:  # one format inferred from the first row: fast
        times = pd.to_datetime(text)
    except (ValueError, TypeError):  # formats or UTC offsets that vary, or a cell no date
        times = pd.to_datetime(text, errors="coerce", format="mixed", utc=True)
    missing = times.isna().to_numpy()
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise RecordingError(f"{path}: line {lines[i]}: {text.iloc[i]!r} is not a date")
    if times.dt.tz is not None:  # "…-05:00": compare instants, in UTC
        times = times.dt.tz_convert(None)
    return times.to_numpy(dtype="datetime64[ns]")


def _numbers(path: Path, frame: pd.DataFrame, name: str, lines: np.ndarray) -> np.ndarray:
    """A price column as float64, NaN where the cell is missing (empty, absent, or one of
    :data:`MISSING` such as Yahoo's ``null``). A cell that is there but not a finite number
    (``abc``, ``inf``) is an error naming its line."""
    cells = frame[name]
    missing = (cells.isna() | cells.str.strip().str.lower().isin(MISSING)).to_numpy()
    values = pd.to_numeric(cells.where(~missing), errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(values) & ~missing
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise RecordingError(f"{path}: line {lines[i]}: {name} {cells.iloc[i]!r} is not a number")
    return values
