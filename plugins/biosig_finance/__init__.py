"""The ``finance`` plugin: OHLCV bars from CSV files, forecast labels with their horizon.

* Inputs: CSV text of the common shapes (Yahoo with ``Adj Close``, lower-case names, a
  written-out index column, separate ``Date`` and ``Time``), recognised by the header, not the
  extension (``.txt`` files are CSV too); directories are searched for such files, and each
  file there whose header is not recognised is skipped with a warning naming it (hidden
  files and the :data:`NOT_DATA` extensions, documentation, code and images such as a
  ``README.md``, quietly; they never hold bars). One file
  is one recording, id = file stem, one sample per bar (``fs = 1``, daily or intraday alike).
  See :mod:`biosig_finance.ohlcv` for the validation (sorting, duplicates, impossible bars).
* Channels: six trailing features per bar (:mod:`biosig_finance.features`), computed when
  the file is opened from bars at or before each bar only; the first ``vol_window`` bars are
  NaN (windows holding them are skipped).
* Labels (``--labels``): ``direction`` (sign of the log return over ``--horizon`` bars, with
  an optional ``--dead-zone`` giving ``flat``) or ``barrier`` (triple barrier at
  ``+-barrier`` trailing sigmas within ``--horizon`` bars), see :mod:`biosig_finance.targets`.
  Each labels the window ending at its decision bar and carries ``label_end``, the end of
  the future it read, so time splits purge and embargo around it.
* Splits: chronological (``split = "time"``), never shuffled across time. Recordings carry
  their bar times (``times``: one ascending timestamp per bar kept), so the core cuts time
  splits and ``--span`` on one calendar: every file at the same date.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

from biosig import (
    ArrayRecording,
    BiosigError,
    DemoData,
    LabelledInterval,
    Plugin,
    PluginDefaults,
    PluginOption,
    Recording,
    expand_inputs,
    table_intervals,
)

from .features import FEATURE_UNITS, FEATURES, compute_features, volatility
from .ohlcv import Bars, read_bars, sniff
from .targets import barrier_targets, direction_targets

__version__ = "0.1.0"

LABEL_KEYWORDS = ("direction", "barrier")
#: Extensions of files a directory may hold beside price files that are clearly not bars
#: (documentation, notebooks and code, configuration, images, documents): left out of a
#: directory without a word. Anything else whose header is not OHLCV is named in a warning,
#: since a price file that fails to be recognised must not vanish unnoticed.
NOT_DATA = frozenset(
    (  # noqa: SIM905 (one string reads better than 27 lines)
        ".md .markdown .rst .pdf .html .htm .doc .docx .odt .py .pyc .ipynb .r .sh .bat "
        ".js .toml .yaml .yml .ini .cfg .png .jpg .jpeg .gif .svg .bmp"
    ).split()
)

log = logging.getLogger("biosig")


class PriceRecording(ArrayRecording):
    """The features of one file, ``[len(FEATURES), n_bars]``, with the bars they came from
    (``bars``; their timestamps also as ``times``) for labels and messages."""

    def __init__(self, bars: Bars, vol_window: int) -> None:
        features = compute_features(bars.close, bars.high, bars.low, bars.volume, vol_window)
        super().__init__(bars.source.stem, features, 1.0, FEATURES, source=bars.source)
        self.bars = bars
        self.times = bars.times
        self.units = FEATURE_UNITS


class FinancePlugin(Plugin):
    """OHLCV price bars from CSV files; direction and triple-barrier forecast labels."""

    api_version = 1
    name = "finance"
    version = __version__
    summary = "OHLCV bars from CSV (Yahoo, pandas, backtrader): direction, triple barrier"
    # One sample per bar; 64-bar windows (about three months of days). Windows are scaled
    # with training-set statistics, not one by one: z-scoring each window erases the level
    # of returns, volatility and volume the channels measure (on the demo's trending paths,
    # held-out accuracy 0.69 with "dataset" against 0.58 with "window", majority 0.56).
    defaults = PluginDefaults(
        sample_rate=1.0, window=64, hop=1, normalization="dataset", split="time"
    )
    label_keywords = LABEL_KEYWORDS
    label_formats = (
        "direction | barrier (derived from the prices), or a table: "
        "file-stem<TAB>class, file-stem<TAB>start-bar<TAB>stop-bar<TAB>class"
    )
    options = (
        PluginOption("horizon", 5, "bars ahead a label looks (h)", int),
        PluginOption(
            "dead_zone",
            0.0,
            "direction: 'flat' when |return| <= this many sigma*sqrt(h) (0: up/down only)",
            float,
        ),
        PluginOption(
            "barrier", 2.0, "barrier: up/down barriers at +-this many one-bar sigmas", float
        ),
        PluginOption(
            "vol_window",
            20,
            "bars of the trailing windows for sigma and z-scores (also the warm-up)",
            int,
            preprocessing=True,
        ),
    )

    def configure(self, values: dict) -> None:
        """Set options, checking them at once, before any file is read."""
        super().configure(values)
        s = self.settings
        if s["horizon"] < 1:
            raise BiosigError(f"--horizon {s['horizon']}: give a positive number of bars")
        if not (math.isfinite(s["dead_zone"]) and s["dead_zone"] >= 0):
            raise BiosigError(f"--dead-zone {s['dead_zone']:g}: give 0 (off) or a positive number")
        if not (math.isfinite(s["barrier"]) and s["barrier"] > 0):
            raise BiosigError(f"--barrier {s['barrier']:g}: give a positive number of sigmas")
        if s["vol_window"] < 2:
            raise BiosigError(f"--vol-window {s['vol_window']}: give at least 2 bars")

    # ------------------------------------------------------------------ files and records

    def find(self, inputs: Sequence[str | Path]) -> list[Path]:
        files: list[Path] = []
        for path in expand_inputs(inputs):
            if not path.is_dir():
                sniff(path)  # empty, binary or no price column: said now, in one line
                files.append(path)
                continue
            found = [p for p in sorted(path.rglob("*")) if _looks_like_bars(p, path)]
            if not found:
                raise BiosigError(
                    f"{path}: no OHLCV CSV files found there (a header with Date and Close)"
                )
            files.extend(found)
        return files

    def open(self, path: Path) -> Iterator[Recording]:
        yield PriceRecording(read_bars(Path(path)), int(self.settings["vol_window"]))

    # ------------------------------------------------------------------ labels

    def labels(self, source: Path | str, recordings: Sequence[Recording]) -> list[LabelledInterval]:
        if not isinstance(source, str):
            return table_intervals(Path(source), recordings)
        if source not in LABEL_KEYWORDS:
            raise BiosigError(f"--labels {source}: choose {', '.join(LABEL_KEYWORDS)}")
        s = self.settings
        horizon = int(s["horizon"])
        intervals: list[LabelledInterval] = []
        for rec in recordings:
            close = rec.bars.close
            sigma = volatility(close, int(s["vol_window"]))
            if source == "direction":
                targets = direction_targets(close, sigma, horizon, float(s["dead_zone"]))
            else:
                targets = barrier_targets(close, sigma, horizon, float(s["barrier"]))
            intervals += [
                LabelledInterval(rec.id, t.bar, t.bar + 1, t.label, label_end=t.end)
                for t in targets
            ]
        if not intervals:
            longest = max((r.n_samples for r in recordings), default=0)
            raise BiosigError(
                f"--labels {source}: no bar of {len(recordings)} recordings has {horizon} bars "
                f"after it and a trailing volatility (the longest has {longest} bars)"
            )
        return intervals

    def make_demo_data(self, directory: Path, seed: int = 0) -> DemoData:
        from .synthetic import make_demo_data

        return make_demo_data(Path(directory), seed)


def _looks_like_bars(path: Path, directory: Path) -> bool:
    """Whether a file found in ``directory`` is OHLCV CSV text, by its header. A file that
    is not is skipped with a warning naming it and why, unless it is hidden (or in a hidden
    folder) or its extension is one of :data:`NOT_DATA`."""
    if not path.is_file():
        return False
    if any(part.startswith(".") for part in path.relative_to(directory).parts):
        return False
    if path.suffix.lower() in NOT_DATA:
        return False
    try:
        sniff(path)
    except BiosigError as exc:
        log.warning("%s; skipped, not an OHLCV CSV file", exc)
        return False
    return True
