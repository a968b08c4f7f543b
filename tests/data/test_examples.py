"""Labelled windows: planning starts, the example store, class checks, group splits and
normalisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from stub_plugins import InMemoryPlugin

from biosig.data.normalize import EPS, NormalizationSpec, dataset_statistics, normalize
from biosig.data.split import split_by_group
from biosig.data.store import build_examples, check_classes, plan_starts, sort_classes
from biosig.data.windows import window_starts
from biosig.errors import BiosigError
from biosig.plugin.contract import (
    ArrayRecording,
    LabelledInterval,
    PluginDefaults,
    Recording,
)

WINDOW, HOP = 128, 64

# ---------------------------------------------------------------------------- helpers


class Decimate:
    """Keeps every ``factor``-th sample, carrying the phase across chunks."""

    def __init__(self, fs: float, factor: int) -> None:
        self.fs_out = fs / factor
        self._factor = factor
        self._phase = 0

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        out = chunk[:, self._phase :: self._factor]
        self._phase = (self._phase - chunk.shape[1]) % self._factor
        return np.ascontiguousarray(out, dtype=np.float32)

    def flush(self) -> np.ndarray:
        return np.zeros((0, 0), dtype=np.float32)


class ToyPlugin(InMemoryPlugin):
    """Recordings given in memory; groups are the id's prefix before ``-``."""

    name = "toy"
    defaults = PluginDefaults(sample_rate=100.0, window=WINDOW, hop=HOP)

    def __init__(self, decimate: int = 1) -> None:
        self.decimate = decimate

    def preprocessor(self, recording: Recording, fs_out: float):
        if self.decimate == 1:
            return super().preprocessor(recording, fs_out)
        return Decimate(recording.fs, self.decimate)

    def group(self, recording: Recording) -> str:
        return recording.id.split("-")[0]


class Rate:
    """Enough of a Recording for position arithmetic."""

    def __init__(self, fs: float) -> None:
        self.fs = fs


def signal(n: int, channels: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(channels, n)).astype(np.float32)


def whole(rec: ArrayRecording, label: str) -> LabelledInterval:
    return LabelledInterval(rec.id, 0, rec.n_samples, label)


# ---------------------------------------------------------------------------- plan_starts


def test_plan_starts_tiles_whole_recording_with_hop() -> None:
    iv = LabelledInterval("r", 0, 1000, "a")
    starts, labels, _ = plan_starts([iv], 1000, WINDOW, HOP, Rate(1.0), 1.0)
    np.testing.assert_array_equal(starts, window_starts(1000, WINDOW, HOP))
    assert labels == ["a"] * len(starts)
    assert starts[-1] + WINDOW == 1000


def test_plan_starts_tiles_segment_from_its_start() -> None:
    ivs = [LabelledInterval("r", 200, 600, "a"), LabelledInterval("r", 700, 900, "b")]
    starts, labels, _ = plan_starts(ivs, 1000, WINDOW, HOP, Rate(1.0), 1.0)
    np.testing.assert_array_equal(starts, [200, 264, 328, 392, 456, 472, 700, 764, 772])
    assert labels == ["a"] * 6 + ["b"] * 3
    assert all(s + WINDOW <= 600 for s in starts[:6])


@pytest.mark.parametrize(
    ("event", "expected"),
    [(500, 500 - WINDOW // 2), (10, 0), (0, 0), (995, 1000 - WINDOW), (999, 1000 - WINDOW)],
)
def test_plan_starts_event_gets_one_centred_window_inside_recording(
    event: int, expected: int
) -> None:
    iv = LabelledInterval("r", event, event + 1, "beat")
    starts, labels, _ = plan_starts([iv], 1000, WINDOW, HOP, Rate(1.0), 1.0)
    np.testing.assert_array_equal(starts, [expected])
    assert labels == ["beat"]


def test_plan_starts_short_interval_centred_on_its_middle() -> None:
    iv = LabelledInterval("r", 300, 300 + WINDOW // 2, "x")  # half a window
    starts, _, _ = plan_starts([iv], 1000, WINDOW, HOP, Rate(1.0), 1.0)
    np.testing.assert_array_equal(starts, [300 + WINDOW // 4 - WINDOW // 2])


def test_plan_starts_events_centred_and_short_segments_left_out() -> None:
    beat = LabelledInterval("r", 500, 501, "N")  # an event: one window centred on it
    short = LabelledInterval("r", 300, 300 + WINDOW // 2 - 1, "AFIB")  # under half a window
    starts, labels, _ = plan_starts([beat, short], 1000, WINDOW, HOP, Rate(1.0), 1.0)
    np.testing.assert_array_equal(starts, [500 - WINDOW // 2])
    assert labels == ["N"]


def test_plan_starts_recording_shorter_than_window() -> None:
    iv = LabelledInterval("r", 0, 60, "a")
    starts, labels, _ = plan_starts([iv], 60, WINDOW, HOP, Rate(1.0), 1.0)
    np.testing.assert_array_equal(starts, [0])
    assert labels == ["a"]


def test_plan_starts_converts_original_samples_to_model_rate() -> None:
    segment = LabelledInterval("r", 400, 1400, "a")  # original samples at 500 Hz
    starts, labels, _ = plan_starts([segment], 1000, WINDOW, HOP, Rate(500.0), 250.0)
    np.testing.assert_array_equal(starts, 200 + window_starts(500, WINDOW, HOP))
    assert labels == ["a"] * len(starts)


@pytest.mark.parametrize("sample", [1000, 1001, 1003, 0, 1])
def test_plan_starts_one_sample_event_survives_lower_model_rate(sample: int) -> None:
    """A beat annotation is one original sample; halving the rate must not lose it."""
    event = LabelledInterval("r", sample, sample + 1, "beat")
    starts, labels, _ = plan_starts([event], 1000, WINDOW, HOP, Rate(500.0), 250.0)
    centre = round(sample / 2)
    np.testing.assert_array_equal(starts, [max(centre - WINDOW // 2, 0)])
    assert labels == ["beat"]


def test_plan_starts_drops_intervals_outside_recording() -> None:
    ivs = [LabelledInterval("r", 1200, 1500, "a"), LabelledInterval("r", 50, 50, "b")]
    starts, labels, _ = plan_starts(ivs, 1000, WINDOW, HOP, Rate(1.0), 1.0)
    assert starts.shape == (0,)
    assert starts.dtype == np.int64
    assert labels == []


# ------------------------------------------------------------------------- build_examples


def recordings_and_intervals():
    recs = [
        ArrayRecording("p1-long", signal(1000, seed=1), fs=100.0, source=Path("one.npy")),
        ArrayRecording("p1-mid", signal(450, seed=2), fs=100.0, source=Path("one.npy")),
        ArrayRecording("p2-short", signal(60, seed=3), fs=100.0, source=Path("two.npy")),
        ArrayRecording("p3-unlabelled", signal(300, seed=4), fs=100.0),
    ]
    intervals = [whole(recs[0], "b"), whole(recs[1], "a"), whole(recs[2], "b")]
    return recs, intervals


def test_build_examples_store_matches_source_slices() -> None:
    recs, intervals = recordings_and_intervals()
    store = build_examples(
        ToyPlugin(), recs, intervals, ["a", "b"], WINDOW, HOP, 100.0, progress=False
    )

    per_rec = [window_starts(r.n_samples, WINDOW, HOP) for r in recs[:3]]
    total = sum(len(s) for s in per_rec)
    assert [len(s) for s in per_rec] == [15, 7, 1]
    assert len(store) == total
    assert store.x.shape == (total, 2, WINDOW)
    assert store.x.dtype == np.float32
    assert store.n_channels == 2
    assert store.classes == ["a", "b"]
    np.testing.assert_array_equal(store.y, [1] * 15 + [0] * 7 + [1])
    assert store.recording_ids.tolist() == ["p1-long"] * 15 + ["p1-mid"] * 7 + ["p2-short"]
    assert store.groups.tolist() == ["p1"] * 22 + ["p2"]
    np.testing.assert_array_equal(store.starts, np.concatenate(per_rec))

    for i in range(total):
        rec = recs[[r.id for r in recs].index(store.recording_ids[i])]
        source = rec._data[:, store.starts[i] : store.starts[i] + WINDOW]
        valid = source.shape[1]
        assert store.lengths[i] == valid
        np.testing.assert_array_equal(store.x[i, :, :valid], source)
        assert not store.x[i, :, valid:].any()
    assert store.lengths[-1] == 60  # the short recording is one padded window


def test_build_examples_reports_starts_in_original_samples() -> None:
    rec = ArrayRecording("p1-r", signal(1000, channels=1), fs=200.0)
    store = build_examples(
        ToyPlugin(decimate=2),
        [rec],
        [whole(rec, "a")],
        ["a", "b"],
        WINDOW,
        HOP,
        100.0,
        progress=False,
    )
    model_starts = window_starts(500, WINDOW, HOP)
    np.testing.assert_array_equal(store.starts, model_starts * 2)
    decimated = rec._data[:, ::2]
    for i, s in enumerate(model_starts):
        np.testing.assert_array_equal(store.x[i], decimated[:, s : s + WINDOW])


def test_build_examples_mismatched_channels_names_recording() -> None:
    recs = [
        ArrayRecording("p1-a", signal(300, channels=2), fs=100.0),
        ArrayRecording("p2-b", signal(300, channels=3), fs=100.0, source=Path("/data/b.npy")),
    ]
    intervals = [whole(recs[0], "a"), whole(recs[1], "b")]
    with pytest.raises(BiosigError, match=r"/data/b\.npy: recording p2-b has 3 channels.*p1-a"):
        build_examples(ToyPlugin(), recs, intervals, ["a", "b"], WINDOW, HOP, 100.0, progress=False)


def test_build_examples_without_labelled_windows_is_an_error() -> None:
    rec = ArrayRecording("p1-a", signal(300), fs=100.0)
    other = LabelledInterval("elsewhere", 0, 300, "a")
    with pytest.raises(BiosigError, match="no labelled window"):
        build_examples(ToyPlugin(), [rec], [other], ["a", "b"], WINDOW, HOP, 100.0, progress=False)


# --------------------------------------------------------------------------- classes


def test_check_classes_one_class_names_labels_file(tmp_path: Path) -> None:
    source = tmp_path / "labels.tsv"
    intervals = [LabelledInterval(str(i), 0, 10, "only") for i in range(3)]
    with pytest.raises(BiosigError, match=r"labels\.tsv.*one class.*'only'"):
        check_classes(intervals, source)


def test_check_classes_no_labels_names_labels_file(tmp_path: Path) -> None:
    source = tmp_path / "labels.tsv"
    with pytest.raises(BiosigError, match=r"labels\.tsv"):
        check_classes([], source)


def test_check_classes_returns_sorted_classes(tmp_path: Path) -> None:
    intervals = [LabelledInterval(str(i), 0, 10, c) for i, c in enumerate("cabca")]
    assert check_classes(intervals, tmp_path / "l.tsv") == ["a", "b", "c"]


def test_numeric_class_names_sort_numerically() -> None:
    assert sort_classes({"10", "2", "1", "-3"}) == ["-3", "1", "2", "10"]
    assert sort_classes({"10", "2", "b"}) == ["10", "2", "b"]  # not all numbers: text order


# --------------------------------------------------------------------------- split


def grouped_labels(n_groups: int = 20, per_group: int = 10):
    groups = np.repeat([f"g{i:02d}" for i in range(n_groups)], per_group)
    y = np.repeat(np.arange(n_groups) % 2, per_group)
    return groups, y


@pytest.mark.parametrize("seed", range(25))
def test_split_by_group_keeps_groups_whole(seed: int) -> None:
    groups, y = grouped_labels()
    train, val = split_by_group(groups, y, 0.2, seed)
    assert not set(groups[train]) & set(groups[val])
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(len(y)))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)
    assert 0.1 <= len(val) / len(y) <= 0.3
    assert set(y[val]) == {0, 1}  # stratified: both classes held out


def test_split_by_group_seed_changes_split() -> None:
    groups, y = grouped_labels()
    splits = {tuple(split_by_group(groups, y, 0.25, seed)[1]) for seed in range(10)}
    assert len(splits) > 1


@pytest.mark.parametrize("seed", range(5))
def test_split_by_group_with_three_patients_holds_out_the_mixed_one(seed: int) -> None:
    # CPSC 2021's shape: patient 8 all AF, 21 all normal, 101 both; only holding out 101
    # leaves every class on both sides
    groups = np.array(["8"] * 30 + ["21"] * 50 + ["101"] * 20)
    y = np.array([0] * 30 + [1] * 50 + [0] * 8 + [1] * 12)
    train, val = split_by_group(groups, y, 0.2, seed)
    assert set(groups[val]) == {"101"}
    assert set(y[train]) == set(y[val]) == {0, 1}


def test_split_by_group_single_group_is_an_error() -> None:
    with pytest.raises(BiosigError, match="one group"):
        split_by_group(np.array(["only"] * 10), np.arange(10) % 2, 0.2, 0)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_by_group_invalid_fraction(fraction: float) -> None:
    groups, y = grouped_labels()
    with pytest.raises(BiosigError, match="val-fraction"):
        split_by_group(groups, y, fraction, 0)


# ---------------------------------------------------------------------------- normalize


def padded_batch(seed: int = 0):
    rng = np.random.default_rng(seed)
    lengths = np.array([64, 40, 1, 17])
    x = (rng.normal(size=(4, 3, 64)) * 5 + 3).astype(np.float32)
    return x, lengths


def test_window_normalisation_zscores_valid_part_and_zeroes_padding() -> None:
    x, lengths = padded_batch()
    x[1, :, 40:] = 1e6  # garbage in the padding must not leak into the statistics
    out = normalize(
        torch.from_numpy(x), torch.from_numpy(lengths), NormalizationSpec("window")
    ).numpy()
    for i, n in enumerate(lengths):
        assert not out[i, :, n:].any()
        if n > 1:
            valid = out[i, :, :n].astype(np.float64)
            np.testing.assert_allclose(valid.mean(-1), 0, atol=1e-5)
            np.testing.assert_allclose(valid.std(-1), 1, atol=1e-4)
            expected = (x[i, :, :n] - x[i, :, :n].mean(-1, keepdims=True)) / (
                x[i, :, :n].std(-1, keepdims=True) + EPS
            )
            np.testing.assert_allclose(valid, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(out[2, :, 0], 0)  # one sample: centred to 0, no NaN
    assert np.isfinite(out).all()


def test_dataset_normalisation_uses_given_statistics() -> None:
    x, lengths = padded_batch()
    spec = NormalizationSpec("dataset", (1.0, -2.0, 3.0), (2.0, 0.5, 4.0))
    out = normalize(torch.from_numpy(x), torch.from_numpy(lengths), spec).numpy()
    mean = np.array(spec.mean)[None, :, None]
    std = np.array(spec.std)[None, :, None]
    mask = (np.arange(64)[None, :] < lengths[:, None])[:, None, :]
    np.testing.assert_allclose(out, (x - mean) / (std + EPS) * mask, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["none", "recording"])
def test_pass_through_normalisations(mode: str) -> None:
    x, lengths = padded_batch()
    out = normalize(torch.from_numpy(x), torch.from_numpy(lengths), NormalizationSpec(mode))
    np.testing.assert_array_equal(out.numpy(), x)


def test_unknown_normalisation_raises() -> None:
    with pytest.raises(ValueError, match="unknown normalisation 'zscore'"):
        NormalizationSpec("zscore")


@pytest.mark.parametrize(
    "data",
    [
        {"mode": "dataset", "mean": [1.0], "std": [1.0, 2.0]},
        {"mode": "dataset", "mean": [float("inf")], "std": [1.0]},
        {"mode": "dataset", "mean": [], "std": []},
        {"mode": "dataset", "mean": "1", "std": [1.0]},
    ],
)
def test_dataset_normalisation_needs_one_finite_mean_and_std_per_channel(data) -> None:
    with pytest.raises(ValueError, match="dataset normalisation needs"):
        NormalizationSpec.from_json(data)


def test_dataset_statistics_match_numpy_over_valid_samples() -> None:
    rng = np.random.default_rng(5)
    n, channels, width = 2100, 2, 32  # more than one 1024-window block
    scale, shift = np.array([3.0, 0.5])[:, None], np.array([10.0, -1.0])[:, None]
    x = (rng.normal(size=(n, channels, width)) * scale + shift).astype(np.float32)
    lengths = rng.integers(1, width + 1, size=n)
    for i, length in enumerate(lengths):
        x[i, :, length:] = 99.0  # padding must be ignored even when not zero
    indices = rng.permutation(n)[:1700]

    stats = dataset_statistics(x, lengths, indices)
    valid = np.concatenate(
        [x[i, :, : lengths[i]].astype(np.float64) for i in indices], axis=1
    )  # [C, total valid]
    assert stats.mode == "dataset"
    np.testing.assert_allclose(stats.mean, valid.mean(1), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(stats.std, valid.std(1), rtol=1e-7)
    assert abs(stats.mean[0] - 10) < 0.2 and abs(stats.std[1] - 0.5) < 0.05
    assert NormalizationSpec.from_json(stats.to_json()) == stats


def test_a_window_store_larger_than_the_free_disk_is_refused_before_writing(
    tmp_path: Path, monkeypatch
) -> None:
    from collections import namedtuple

    import biosig.data.store as store_module

    monkeypatch.setattr(store_module, "IN_MEMORY_LIMIT_BYTES", 0)  # memory-map every store
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(store_module.shutil, "disk_usage", lambda _: usage(10, 10, 2**20))
    with pytest.raises(BiosigError, match=r"the training windows need 0.0 GiB \(1,000 windows of"):
        store_module._allocate((1000, 2, 512), tmp_path)
    assert list(tmp_path.iterdir()) == []
