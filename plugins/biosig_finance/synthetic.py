"""Synthetic price paths written as Yahoo-style CSVs, for ``biosig demo`` and the tests.

* :func:`random_walk`: a geometric random walk with no drift. Nothing about the future is
  in the past, so a classifier that beats the majority class on it has leaked.
* :func:`trend_walk`: up and down trends that persist for about a hundred bars, under calm
  and volatile regimes; a window's past shows the trend that its label's future continues.

:func:`write_csv` turns a close path into ``Date,Open,High,Low,Close,Adj Close,Volume`` rows
with plausible bars: Open near the previous close, High/Low bracketing both, a volume that
rises with the size of the move, and ``Adj Close`` below ``Close`` by a dividend factor that
steps once a year (so reading must take the adjusted column).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import numpy as np
import pandas as pd

from biosig import DemoData

HEADER = ("Date", "Open", "High", "Low", "Close", "Adj Close", "Volume")


def random_walk(n: int, seed: int = 0, sigma: float = 0.01, start: float = 100.0) -> np.ndarray:
    """``n`` closes of a driftless geometric random walk with one-bar volatility ``sigma``."""
    rng = np.random.default_rng(seed)
    returns = rng.normal(0.0, sigma, n - 1)
    return start * np.exp(np.concatenate([[0.0], np.cumsum(returns)]))


def trend_walk(
    n: int,
    seed: int = 0,
    drift: float = 0.4,
    sigmas: tuple[float, float] = (0.008, 0.016),
    switch: float = 0.01,
    start: float = 100.0,
) -> np.ndarray:
    """``n`` closes whose log returns are ``sigma_t * (+-drift + e_t)``: trends up or down
    that last about ``1 / switch`` bars, under calm and volatile regimes that switch as
    often. The trend shows in the past bars of a window and carries on into the future."""
    rng = np.random.default_rng(seed)
    trend = np.where(np.cumsum(rng.random(n) < switch) % 2 == 0, 1.0, -1.0)
    if rng.random() < 0.5:
        trend = -trend
    calm = np.cumsum(rng.random(n) < switch) % 2 == 0
    sigma = np.where(calm, sigmas[0], sigmas[1])
    r = sigma * (drift * trend + rng.normal(size=n))
    r[0] = 0.0
    return start * np.exp(np.cumsum(r))


def write_csv(path: Path, close: np.ndarray, seed: int = 0, start: str = "2000-01-03") -> Path:
    """Write ``close`` (the adjusted price path) as a Yahoo-style daily CSV at ``path``
    (atomically: a temporary file in the same directory, renamed into place)."""
    rng = np.random.default_rng(seed)
    n = len(close)
    times = pd.bdate_range(start, periods=n)
    move = np.abs(np.diff(np.log(close), prepend=np.log(close[0])))
    open_ = np.concatenate([[close[0]], close[:-1]]) * np.exp(rng.normal(0, 0.002, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.004, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.004, n)))
    volume = np.round(1e6 * np.exp(rng.normal(0, 0.3, n) + 20 * move))
    # Dividends: the unadjusted Close sits above the adjusted one by a factor that grows
    # back in time, one step a year.
    factor = 0.98 ** ((n - 1 - np.arange(n)) // 252)
    frame = pd.DataFrame(
        {
            "Date": times.strftime("%Y-%m-%d"),
            "Open": open_ / factor,
            "High": high / factor,
            "Low": low / factor,
            "Close": close / factor,
            "Adj Close": close,
            "Volume": volume.astype(np.int64),
        },
        columns=list(HEADER),
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written under a hidden temporary name beside it (which a directory scan passes over),
    # then renamed into place: an interrupted write never leaves a half file at ``path``.
    # (Opened with "x", not mkstemp: the file gets the usual permissions, not 0600.)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8", newline="") as out:
            frame.to_csv(out, index=False, float_format="%.6f")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_demo_files(directory: Path, seed: int = 0, n_files: int = 4, n_bars: int = 1000):
    """``n_files`` trending paths of ``n_bars`` daily bars in ``directory``."""
    rng = np.random.default_rng(seed)
    paths = []
    for k in range(n_files):
        close = trend_walk(n_bars, seed=int(rng.integers(2**31)))
        paths.append(write_csv(Path(directory) / f"synth{k}.csv", close, seed=seed * 100 + k))
    return paths


def make_demo_data(directory: Path, seed: int = 0) -> DemoData:
    """Trending paths labelled by the direction of the next 5 bars, for ``biosig demo``."""
    paths = write_demo_files(directory, seed)
    return DemoData(
        inputs=(Path(directory),),
        labels="direction",
        description=(
            f"{len(paths)} synthetic daily price files (persistent trends, volatility "
            "regimes), direction over 5 bars up/down"
        ),
        # without the random-kernel branch: the same held-out accuracy (0.686) in half the time
        settings={"epochs": 4, "batch_size": 64, "kernel_features": 0},
    )
