"""Leakage-free validation splits: the choice between group and time, and time blocks
whose training windows (label horizons included) stay a window clear of validation."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from biosig.data.split import choose_split, split_by_group, split_examples, split_in_time
from biosig.data.store import build_examples
from biosig.errors import BiosigError
from biosig.plugin.contract import (
    ArrayRecording,
    LabelledInterval,
    Plugin,
    PluginDefaults,
    Recording,
)

WINDOW, HOP = 64, 16


class Recordings(Plugin):
    """Recordings given in memory, one group each."""

    name = "memory"
    defaults = PluginDefaults(sample_rate=1.0, window=WINDOW, hop=HOP)

    def find(self, inputs: Sequence[str | Path]) -> list[Path]:
        return []

    def open(self, path: Path) -> Iterator[Recording]:
        return iter(())

    def labels(self, source, recordings) -> list[LabelledInterval]:
        return []


def recordings(lengths: Sequence[int], seed: int = 0) -> list[ArrayRecording]:
    rng = np.random.default_rng(seed)
    return [
        ArrayRecording(f"r{i}", rng.normal(size=(1, n)).astype(np.float32), 1.0)
        for i, n in enumerate(lengths)
    ]


def store_of(recs, intervals, classes):
    return build_examples(Recordings(), recs, intervals, classes, WINDOW, HOP, 1.0, progress=False)


@pytest.mark.parametrize(
    ("groups", "y", "expected"),
    [
        (["a", "b", "c", "d"], [0, 0, 1, 1], "group"),
        (["a", "b", "c", "c"], [0, 0, 1, 1], "time"),  # class 1 has one group
        (["a", "a", "a", "a"], [0, 1, 0, 1], "time"),
    ],
)
def test_auto_splits_in_time_only_where_a_class_has_one_group(groups, y, expected) -> None:
    assert choose_split("auto", np.array(groups), np.array(y)) == expected
    assert choose_split("group", np.array(groups), np.array(y)) == "group"


@pytest.mark.parametrize("val_fraction", [0.1, 0.2, 0.3, 0.5])
def test_time_split_leaves_a_window_between_training_and_validation(val_fraction) -> None:
    # one recording per class: the shape of the CWRU subset
    recs = recordings([3000, 2500, 4100, 1800])
    intervals = [LabelledInterval(r.id, 0, r.n_samples, str(i)) for i, r in enumerate(recs)]
    store = store_of(recs, intervals, ["0", "1", "2", "3"])
    train, val, used = split_examples(store, "auto", val_fraction, seed=0)
    assert used == "time"
    assert not set(train) & set(val)
    for rec in recs:
        mine = store.recording_ids == rec.id
        t, v = train[mine[train]], val[mine[val]]
        assert len(t) and len(v)
        # every training window ends at least one window before the first validation one
        assert (store.starts[t] + WINDOW).max() + WINDOW <= store.starts[v].min()
        # validation is the tail: no validation window starts before a training one ends
        assert store.starts[v].min() >= store.starts[t].max()
        assert abs(len(v) / mine.sum() - val_fraction) < 0.1
    assert set(store.y[val]) == set(store.y[train]) == {0, 1, 2, 3}


def test_time_split_purges_forecasts_whose_horizon_reaches_validation() -> None:
    # one forecast per sample, each looking 10 samples past its window
    n, horizon = 2000, 10
    recs = recordings([n])
    intervals = [
        LabelledInterval("r0", i, i + 1, "up" if i % 2 else "down", label_end=i + 1 + horizon)
        for i in range(WINDOW, n - horizon)
    ]
    store = store_of(recs, intervals, ["down", "up"])
    assert np.array_equal(store.label_ends - store.starts, np.full(len(store), WINDOW + horizon))
    train, val, used = split_examples(store, "time", 0.2, seed=0)
    assert used == "time"
    first_val = store.starts[val].min()
    # purged: no label's future reaches the validation part, with an embargo of a window
    # beyond the horizon
    assert store.label_ends[train].max() + WINDOW + horizon <= first_val
    # and nothing more than that is thrown away
    assert store.label_ends[train].max() + WINDOW + horizon > first_val - 2
    assert len(train) + len(val) >= len(store) - (WINDOW + 2 * horizon + WINDOW)


def test_forecast_labels_the_window_ending_at_its_stop() -> None:
    recs = recordings([500])
    intervals = [
        LabelledInterval("r0", 99, 100, "up", label_end=105),
        LabelledInterval("r0", 30, 31, "down", label_end=40),  # less than a window before it
        LabelledInterval("r0", 499, 500, "down", label_end=500),
    ]
    store = store_of(recs, intervals, ["down", "up"])
    np.testing.assert_array_equal(store.starts, [100 - WINDOW, 500 - WINDOW])
    np.testing.assert_array_equal(store.label_ends, [105, 500])
    np.testing.assert_array_equal(store.x[0, 0], recs[0]._data[0, 100 - WINDOW : 100])


def test_time_split_of_recordings_too_short_is_an_error() -> None:
    ids = np.array(["a", "a"])
    starts = np.array([0, 10])
    with pytest.raises(BiosigError, match="too short"):
        split_in_time(ids, starts, starts + 64, np.full(2, 64), 0.2)


def test_time_split_rejects_a_bad_fraction() -> None:
    with pytest.raises(BiosigError, match="val-fraction"):
        split_in_time(np.array(["a"]), np.array([0]), np.array([64]), np.array([64]), 1.0)


class DatedRecording(ArrayRecording):
    """A recording with one timestamp per sample, as price bars have."""

    def __init__(self, id: str, data: np.ndarray, first_day: str) -> None:
        super().__init__(id, data, 1.0)
        self.times = np.datetime64(first_day, "D") + np.arange(self.n_samples)


def test_recordings_with_times_are_cut_at_one_moment() -> None:
    # two series over overlapping calendars: long (days 0-3999) and short (1000-2999)
    rng = np.random.default_rng(0)
    recs = [
        DatedRecording("long", rng.normal(size=(1, 4000)).astype(np.float32), "2000-01-01"),
        DatedRecording("short", rng.normal(size=(1, 2000)).astype(np.float32), "2002-09-27"),
    ]
    horizon = 5
    intervals = [
        LabelledInterval(r.id, i, i + 1, "up" if i % 2 else "down", label_end=i + 1 + horizon)
        for r in recs
        for i in range(WINDOW, r.n_samples - horizon)
    ]
    store = store_of(recs, intervals, ["down", "up"])
    train, val, _ = split_examples(store, "time", 0.25, seed=0)
    first_val_day = store.start_times[val].min()
    # no training label, in either series, reaches the first validated day of either
    assert store.end_times[train].max() < first_val_day
    # cut per series the short one would have validated on days the long one trains on
    short = store.recording_ids == "short"
    assert not val[short[val]].size  # the short series ends before the cut: training only
    assert store.start_times[val].min() > store.end_times[short].max()


def test_span_of_recordings_with_times_is_a_fraction_of_their_shared_calendar() -> None:
    from biosig.plugin.labels import restrict_to_span

    recs = [
        DatedRecording("long", np.zeros((1, 1000), dtype=np.float32), "2000-01-01"),
        DatedRecording("late", np.zeros((1, 200), dtype=np.float32), "2002-03-11"),  # days 800-999
    ]
    ivs = [LabelledInterval(r.id, i, i + 1, "up", label_end=i + 6) for r in recs for i in (0, 150)]
    ivs += [LabelledInterval("long", i, i + 1, "up", label_end=i + 6) for i in (700, 850)]
    first = restrict_to_span(ivs, recs, (0.0, 0.8))
    assert [(iv.recording_id, iv.start) for iv in first] == [
        ("long", 0),
        ("long", 150),
        ("long", 700),
    ]
    rest = restrict_to_span(ivs, recs, (0.8, 1.0))
    # day 800 on: the late series from its start, the long one from its 800th day
    assert [(iv.recording_id, iv.start) for iv in rest] == [
        ("late", 0),
        ("late", 150),
        ("long", 850),
    ]


def test_forecasts_refuse_a_model_rate_other_than_the_recordings() -> None:
    recs = [ArrayRecording("r0", np.zeros((1, 400), dtype=np.float32), 2.0)]
    intervals = [LabelledInterval("r0", 199, 200, "up", label_end=205)]
    with pytest.raises(BiosigError, match="forecast labels need the model at the recording"):
        build_examples(Recordings(), recs, intervals, ["up"], WINDOW, HOP, 1.0, progress=False)


def test_no_validation_fraction_trains_on_every_window() -> None:
    recs = recordings([200, 300, 250])
    classes = zip(recs, "abb", strict=True)
    intervals = [LabelledInterval(r.id, 0, r.n_samples, c) for r, c in classes]
    store = store_of(recs, intervals, ["a", "b"])
    train, val, used = split_examples(store, "auto", 0.0, seed=0)
    assert used == "none" and len(val) == 0
    assert np.array_equal(train, np.arange(len(store)))


def test_a_group_split_of_classes_with_two_series_each_holds_out_whole_groups() -> None:
    # PigCVP's shape: many classes, two series (groups) each, fewer than the five folds
    groups = np.array([f"s{i}" for i in range(20)])
    y = np.repeat(np.arange(10), 2)
    train, val = split_by_group(groups, y, 0.2, seed=0)
    assert len(val) and len(train) and not set(groups[train]) & set(groups[val])
    assert sorted(np.concatenate([train, val])) == list(range(20))
