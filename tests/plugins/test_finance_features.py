"""The finance channels: what each one is, that bar t reads no bar after t (causality),
and that they stay finite after the warm-up where spreads vanish (flat prices, no volume)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from biosig_finance.features import FEATURES, compute_features, volatility
from biosig_finance.ohlcv import read_bars
from biosig_finance.synthetic import random_walk, write_csv

W = 20


def bars(n: int = 400, seed: int = 0) -> dict[str, np.ndarray]:
    """A random walk's close, with High/Low around it and a volume."""
    rng = np.random.default_rng(seed)
    close = random_walk(n, seed=seed)
    return {
        "close": close,
        "high": close * np.exp(np.abs(rng.normal(0, 0.005, n))),
        "low": close * np.exp(-np.abs(rng.normal(0, 0.005, n))),
        "volume": rng.integers(0, 10**6, n).astype(float),
    }


def features(b: dict[str, np.ndarray], vol_window: int = W) -> np.ndarray:
    return compute_features(b["close"], b["high"], b["low"], b["volume"], vol_window)


def test_channels_are_the_documented_quantities() -> None:
    b = bars()
    x = features(b).astype(np.float64)
    ch = {name: x[i] for i, name in enumerate(FEATURES)}
    t = 150
    r = np.diff(np.log(b["close"]))  # r[k] is the return into bar k + 1
    sigma = r[t - W : t].std(ddof=1)
    assert ch["log_return"][t] == pytest.approx(r[t - 1], rel=1e-5)
    assert ch["return_z"][t] == pytest.approx(r[t - 1] / sigma, rel=1e-4)
    assert volatility(b["close"], W)[t] == pytest.approx(sigma)
    past = np.log(b["close"][t - W + 1 : t + 1])
    assert ch["price_z"][t] == pytest.approx((past[-1] - past.mean()) / past.std(ddof=1), rel=1e-4)
    short = r[t - W // 4 : t].std(ddof=1)
    assert ch["vol_regime"][t] == pytest.approx(np.log(short / sigma), rel=1e-4)
    assert ch["range_z"][t] == pytest.approx(np.log(b["high"][t] / b["low"][t]) / sigma, rel=1e-4)
    level = np.log1p(b["volume"][t - W + 1 : t + 1])
    expected = (level[-1] - level.mean()) / level.std(ddof=1)
    assert ch["volume_z"][t] == pytest.approx(expected, rel=1e-4)


def test_warm_up_bars_are_missing_and_the_rest_finite() -> None:
    x = features(bars(), vol_window=30)
    assert x.dtype == np.float32 and x.shape == (len(FEATURES), 400)
    assert np.isnan(x[:, :30]).all() and np.isfinite(x[:, 30:]).all()


@pytest.mark.parametrize("t", [25, 100, 250, 398])
def test_no_feature_reads_a_bar_after_its_own(t: int) -> None:
    b = bars()
    x = features(b)
    rng = np.random.default_rng(t)
    later = {k: v.copy() for k, v in b.items()}
    for values in later.values():
        values[t + 1 :] *= np.exp(rng.normal(0, 0.3, len(values) - t - 1))
    changed = features(later)
    np.testing.assert_array_equal(changed[:, : t + 1], x[:, : t + 1])
    assert not np.array_equal(changed[:, t + 1 :], x[:, t + 1 :])


def test_causality_holds_through_the_file_reader(tmp_path: Path) -> None:
    # Reading adjusts whole bars by Adj Close / Close; rewriting later rows changes nothing
    # before them.
    close = random_walk(300, seed=3)
    before = read_bars(write_csv(tmp_path / "a.csv", close, seed=3))
    close[200:] *= 1.5
    after = read_bars(write_csv(tmp_path / "b.csv", close, seed=3))
    x, y = (compute_features(b.close, b.high, b.low, b.volume, W) for b in (before, after))
    np.testing.assert_array_equal(x[:, :200], y[:, :200])
    assert not np.array_equal(x[:, 200:], y[:, 200:])


def test_flat_prices_and_zero_volume_give_zeros_not_infinities() -> None:
    n = 120
    close = np.full(n, 50.0)
    close[60:] = 50.0 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.01, n - 60)))
    x = compute_features(close, close, close, np.zeros(n), W)
    assert np.isfinite(x[:, W:]).all()
    # A halted stretch: no move, no spread, and nothing to divide by.
    assert not x[:, W:60].any()
    assert not x[FEATURES.index("volume_z")].any(where=~np.isnan(x[0]))
    # Trading resumes: the first moves are huge against a vanishing sigma, but clipped.
    assert np.abs(x[1:, 60:]).max() <= 10.0


def test_missing_volume_counts_as_none() -> None:
    b = bars()
    b["volume"][::7] = np.nan
    assert np.isfinite(features(b)[:, W:]).all()


def test_times_do_not_enter_the_features(tmp_path: Path) -> None:
    # Intraday or daily, one sample per bar: only the order of bars matters.
    close = random_walk(100, seed=1)
    path = write_csv(tmp_path / "a.csv", close)
    frame = pd.read_csv(path)
    frame["Date"] = pd.date_range("2020-01-01 09:05", periods=100, freq="5min").astype(str)
    frame.to_csv(tmp_path / "b.csv", index=False)
    a, b = read_bars(path), read_bars(tmp_path / "b.csv")
    np.testing.assert_array_equal(
        compute_features(a.close, a.high, a.low, a.volume, W),
        compute_features(b.close, b.high, b.low, b.volume, W),
    )
