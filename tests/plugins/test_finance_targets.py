"""Derived labels: their definitions, their declared end (nothing after ``label_end`` can
change a label, something before it can), and the up-day base rates of the real files."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from biosig_finance.features import volatility
from biosig_finance.synthetic import random_walk, write_csv
from biosig_finance.targets import Target, barrier_targets, direction_targets

from biosig.plugin.contract import iter_recordings
from biosig.plugin.registry import get_plugin

W = 20


def direction(close, h=5, dead_zone=0.0) -> dict[int, Target]:
    return {t.bar: t for t in direction_targets(close, volatility(close, W), h, dead_zone)}


def barrier(close, h=5, k=2.0) -> dict[int, Target]:
    return {t.bar: t for t in barrier_targets(close, volatility(close, W), h, k)}


# ------------------------------------------------------------------------- definitions


def test_direction_is_the_sign_of_the_h_bar_return_zero_being_down() -> None:
    close = np.array([10.0, 11.0, 10.0, 10.0, 9.0, 12.0])
    labels = direction(close, h=1)
    assert [(t.bar, t.label, t.end) for t in labels.values()] == [
        (0, "up", 2),
        (1, "down", 3),
        (2, "down", 4),  # no change: not a gain
        (3, "down", 5),
        (4, "up", 6),
    ]
    # h = 2: bars 0..3 have two bars after them; the last two get no label
    assert {b: t.label for b, t in direction(close, h=2).items()} == {
        0: "down",
        1: "down",
        2: "down",
        3: "up",
    }


def test_dead_zone_makes_small_moves_flat_in_units_of_trailing_sigma() -> None:
    close = random_walk(3000, seed=4)
    h, d = 5, 0.5
    sigma = volatility(close, W)
    labels = direction(close, h, d)
    assert min(labels) == W  # no sigma, no dead zone: no label before the warm-up
    for i, t in labels.items():
        r = np.log(close[i + h] / close[i])
        expected = "flat" if abs(r) <= d * sigma[i] * np.sqrt(h) else ("up" if r > 0 else "down")
        assert t.label == expected and t.end == i + h + 1
    shares = Counter(t.label for t in labels.values())
    assert 0.3 < shares["flat"] / len(labels) < 0.5  # |Z| <= 0.5: 38 % on a random walk


def test_barrier_ends_at_the_first_bar_reaching_one() -> None:
    close = 100.0 * np.exp(np.random.default_rng(0).normal(0, 0.01, 40).cumsum())
    sigma = volatility(close, W)
    i = 30
    k = 2.0
    step = k * sigma[i]
    path = close.copy()
    path[i + 1 : i + 6] = close[i] * np.exp(np.array([0.5, 1.2, -1.5, 0, 0]) * step)
    # sigma at i reads bars <= i only, so it is the same for the edited path
    assert volatility(path, W)[i] == sigma[i]
    assert barrier(path, 5, k)[i] == Target(i, "up", i + 3)  # bar i + 2 crossed +k sigma
    path[i + 1 : i + 6] = close[i] * np.exp(np.array([0, -1, 3, 0, 0]) * step)
    assert barrier(path, 5, k)[i] == Target(i, "down", i + 3)  # touching counts
    path[i + 1 : i + 6] = close[i] * np.exp(np.array([0.9, -0.9, 0.5, 0.99, -0.99]) * step)
    assert barrier(path, 5, k)[i] == Target(i, "flat", i + 6)  # the time limit


def test_barrier_classes_are_balanced_on_a_random_walk() -> None:
    labels = barrier(random_walk(5000, seed=5))
    shares = Counter(t.label for t in labels.values())
    # about 27 / 27 / 46 %: a class none can ignore, as the targets docstring says
    assert all(0.2 < shares[c] / len(labels) < 0.35 for c in ("up", "down")), shares
    assert 0.4 < shares["flat"] / len(labels) < 0.55, shares


# ------------------------------------------------------------------------- no look-ahead

KINDS = {
    "direction": lambda c: direction(c, 5),
    "direction-dead-zone": lambda c: direction(c, 5, dead_zone=0.5),
    "barrier": lambda c: barrier(c, 5, 2.0),
}


@pytest.mark.parametrize("kind", KINDS)
def test_prices_after_label_end_never_change_a_label(kind: str) -> None:
    label = KINDS[kind]
    close = random_walk(600, seed=6)
    labels = label(close)
    rng = np.random.default_rng(7)
    for i in rng.choice(sorted(labels), 120, replace=False):
        t = labels[i]
        later = close.copy()
        later[t.end :] *= np.exp(rng.normal(0, 0.2, len(close) - t.end))  # 20 % moves
        assert label(later).get(i) == t, (kind, i)


@pytest.mark.parametrize("kind", KINDS)
def test_prices_inside_the_label_horizon_can_change_it(kind: str) -> None:
    label = KINDS[kind]
    close = random_walk(600, seed=8)
    labels = label(close)
    changed = 0
    for i, t in labels.items():
        inside = close.copy()
        # Move the last bar the label read, hard, against the label.
        inside[t.end - 1] *= np.exp(-0.5 if t.label == "up" else 0.5)
        changed += label(inside)[i].label != t.label
    assert changed > 0.5 * len(labels)


def test_labels_label_the_window_ending_at_their_decision_bar(tmp_path: Path) -> None:
    p = get_plugin("finance")
    p.configure({"horizon": 3})
    path = write_csv(tmp_path / "walk.csv", random_walk(200, seed=9))
    recs = list(iter_recordings(p, p.find([path])))
    for kind in ("direction", "barrier"):
        intervals = p.labels(kind, recs)
        assert {iv.recording_id for iv in intervals} == {"walk"}
        assert all(iv.stop == iv.start + 1 for iv in intervals)
        assert all(iv.stop < iv.label_end <= iv.start + 3 + 1 for iv in intervals)
        assert max(iv.label_end for iv in intervals) <= 200


# ------------------------------------------------------------------------- base rates

#: Up fractions (adjusted close to close) from the data README, for h = 1 and h = 5.
BASE_RATES = {
    "nvda-1999-2014": (0.498, 0.519),
    "orcl-1995-2014": (0.498, 0.529),
    "yhoo-1996-2015": (0.492, 0.513),
    "SPY_D": (0.539, 0.568),
    "2006-day-001": (0.543, 0.616),
}


@pytest.mark.parametrize("horizon", [1, 5])
def test_up_rates_match_the_data_readme(shared_data: Path, horizon: int) -> None:
    p = get_plugin("finance")
    p.configure({"horizon": horizon})
    files = [f for f in p.find([shared_data / "finance"]) if f.stem in BASE_RATES]
    recs = list(iter_recordings(p, files))
    intervals = p.labels("direction", recs)
    for rec in recs:
        labels = [iv.label for iv in intervals if iv.recording_id == rec.id]
        assert len(labels) == rec.n_samples - horizon  # every bar with a future
        expected = BASE_RATES[rec.id][horizon == 5]
        assert labels.count("up") / len(labels) == pytest.approx(expected, abs=0.005), rec.id
