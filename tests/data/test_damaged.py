"""Damaged recordings: skipped with a warning (their windows never used) or, when strict,
the command stops; and per-recording evaluation."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from checkpoint_helpers import meta_for

from biosig import ArrayRecording, LabelledInterval, Plugin, PluginDefaults, RecordingError
from biosig.data.damaged import DamagePolicy
from biosig.data.store import build_examples
from biosig.data.windows import window_starts
from biosig.inference.evaluation import per_recording
from biosig.inference.stream import predict_recordings
from biosig.nn.model import SignalNet, model_config
from biosig.plugin.contract import iter_recordings

WINDOW, HOP = 64, 32


class BrokenAfter(ArrayRecording):
    """Yields ``good_chunks`` chunks, then fails as a corrupt compressed block would."""

    def __init__(self, *args, good_chunks: int = 1, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.good_chunks = good_chunks

    def chunks(self, n: int) -> Iterator[np.ndarray]:
        for i, chunk in enumerate(super().chunks(n)):
            if i == self.good_chunks:
                raise RecordingError(f"f.bin: recording {self.id}: block {i} does not decode")
            yield chunk


class FilesPlugin(Plugin):
    """Each 'file' name maps to recordings; the file 'bad' cannot be opened."""

    name = "files"
    defaults = PluginDefaults(sample_rate=1.0, window=WINDOW, hop=HOP)

    def __init__(self, files: dict[str, list]) -> None:
        self.files = files

    def find(self, inputs: Sequence[str | Path]) -> list[Path]:
        return [Path(p) for p in inputs]

    def open(self, path: Path) -> Iterator:
        if path.name == "bad":
            raise RecordingError(f"{path}: truncated file")
        yield from self.files[path.name]

    def labels(self, source: Path, recordings: Sequence) -> list[LabelledInterval]:
        return []


def recording(rec_id: str, n: int, seed: int, broken: bool = False) -> ArrayRecording:
    data = np.random.default_rng(seed).normal(size=(1, n)).astype(np.float32)
    if broken:
        return BrokenAfter(rec_id, data, 1.0, good_chunks=1)
    return ArrayRecording(rec_id, data, 1.0)


def test_policy_skips_and_summarises_or_raises_when_strict(caplog) -> None:
    policy = DamagePolicy()
    policy.handle(RecordingError("a.fast5: read 1: bad block"))
    assert policy.skipped == ["a.fast5: read 1: bad block"]
    assert "skipped 1 damaged" in policy.summary()
    assert "a.fast5: read 1: bad block (skipped)" in caplog.text
    with pytest.raises(RecordingError, match="bad block"):
        DamagePolicy(strict=True).handle(RecordingError("a.fast5: read 1: bad block"))
    assert DamagePolicy().summary() is None
    caplog.clear()
    policy.report()
    assert caplog.messages == [policy.summary()]
    caplog.clear()
    DamagePolicy().report()
    assert caplog.messages == []


def test_iter_recordings_skips_a_damaged_file_and_reads_the_next() -> None:
    plugin = FilesPlugin({"one": [recording("a", 10, 0)], "two": [recording("b", 10, 1)]})
    policy = DamagePolicy()
    ids = [r.id for r in iter_recordings(plugin, plugin.find(["one", "bad", "two"]), policy.handle)]
    assert ids == ["a", "b"]
    assert policy.skipped == ["bad: truncated file"]
    with pytest.raises(RecordingError, match="truncated"):
        list(iter_recordings(plugin, plugin.find(["one", "bad"])))


def test_build_examples_leaves_out_every_window_of_a_damaged_recording() -> None:
    recs = [recording("a", 300, 0), recording("b", 300, 1, broken=True), recording("c", 200, 2)]
    intervals = [
        LabelledInterval(r.id, 0, r.n_samples, lab) for r, lab in zip(recs, "xyx", strict=True)
    ]
    plugin = FilesPlugin({})
    policy = DamagePolicy()

    def build(on_damage):
        # chunks of 100 samples: "b" fails after its first chunk, with windows already cut
        import biosig.data.windows as windows

        old, windows.DEFAULT_CHUNK = windows.DEFAULT_CHUNK, 100
        try:
            return build_examples(
                plugin,
                recs,
                intervals,
                ["x", "y"],
                WINDOW,
                HOP,
                1.0,
                progress=False,
                on_damage=on_damage,
            )
        finally:
            windows.DEFAULT_CHUNK = old

    store = build(policy.handle)
    assert set(store.recording_ids) == {"a", "c"}
    assert len(store) == len(store.x) == len(store.y) == len(store.lengths)
    assert (store.y == 0).all()
    assert policy.skipped and "recording b" in policy.skipped[0]
    with pytest.raises(RecordingError):
        build(DamagePolicy(strict=True).handle)


def test_prediction_skips_a_recording_that_fails_part_way(monkeypatch) -> None:
    import biosig.data.windows as windows

    monkeypatch.setattr(windows, "DEFAULT_CHUNK", 100)
    torch.manual_seed(0)
    config = model_config("tiny", 1, 2)
    model = SignalNet(config).eval()
    meta = meta_for(config, ["x", "y"], WINDOW, HOP)
    recs = [recording("a", 300, 0), recording("b", 300, 1, broken=True), recording("c", 200, 2)]
    policy = DamagePolicy()
    # a large batch holds b's first windows when it fails: they must not leak into others
    preds = list(
        predict_recordings(
            model, meta, FilesPlugin({}), recs, torch.device("cpu"), 64, on_damage=policy.handle
        )
    )
    assert [p.recording.id for p in preds] == ["a", "c"]
    alone = [
        next(iter(predict_recordings(model, meta, FilesPlugin({}), [r], torch.device("cpu"), 64)))
        for r in (recs[0], recs[2])
    ]
    for got, want in zip(preds, alone, strict=True):
        np.testing.assert_allclose(got.probabilities, want.probabilities, atol=1e-6)
    assert len(policy.skipped) == 1


def test_per_recording_averages_windows_and_skips_mixed_recordings() -> None:
    ids = np.array(["r1", "r1", "r2", "r3", "r3"])
    y = np.array([0, 0, 1, 0, 1])  # r3 holds two classes: not a whole-recording label
    probs = np.array([[0.9, 0.1], [0.3, 0.7], [0.2, 0.8], [0.5, 0.5], [0.5, 0.5]])
    labels, mean = per_recording(ids, y, probs)
    assert labels.tolist() == [0, 1]
    np.testing.assert_allclose(mean, [[0.6, 0.4], [0.2, 0.8]])


def test_a_recording_id_seen_twice_is_skipped_as_damage() -> None:
    plugin = FilesPlugin({"one": [recording("a", 10, 0)], "two": [recording("a", 10, 1)]})
    policy = DamagePolicy()
    reads = list(iter_recordings(plugin, plugin.find(["one", "two"]), policy.handle))
    assert [r.id for r in reads] == ["a"]
    assert policy.skipped == [
        "two: recording a was already read from one; the second copy is not used"
    ]
    with pytest.raises(RecordingError, match="already read from one"):
        list(iter_recordings(plugin, plugin.find(["one", "two"])))


def test_infinite_samples_make_a_recording_damaged() -> None:
    data = np.zeros((1, 300), dtype=np.float32)
    data[0, 123] = np.inf
    rec = ArrayRecording("nan", data, 1.0)
    good = recording("ok", 300, 0)
    intervals = [LabelledInterval("nan", 0, 300, "x"), LabelledInterval("ok", 0, 300, "y")]
    policy = DamagePolicy()
    store = build_examples(
        FilesPlugin({}),
        [rec, good],
        intervals,
        ["x", "y"],
        WINDOW,
        HOP,
        1.0,
        progress=False,
        on_damage=policy.handle,
    )
    assert set(store.recording_ids) == {"ok"}
    assert np.isfinite(store.x).all()
    assert "recording nan: infinite sample near model-rate sample 123" in policy.skipped[0]


def test_missing_samples_skip_only_the_windows_that_hold_them() -> None:
    data = np.ones((1, 300), dtype=np.float32)
    data[0, 123] = np.nan  # a gap: the windows covering sample 123 are left out
    rec = ArrayRecording("gappy", data, 1.0)
    intervals = [LabelledInterval("gappy", 0, 300, "x"), LabelledInterval("ok", 0, 300, "y")]
    policy = DamagePolicy()
    store = build_examples(
        FilesPlugin({}),
        [rec, recording("ok", 300, 0)],
        intervals,
        ["x", "y"],
        WINDOW,
        HOP,
        1.0,
        progress=False,
        on_damage=policy.handle,
    )
    assert policy.skipped == []
    gappy = store.starts[store.recording_ids == "gappy"]
    planned = window_starts(300, WINDOW, HOP)
    expected = [s for s in planned if not s <= 123 < s + WINDOW]
    np.testing.assert_array_equal(np.sort(gappy), expected)
    assert np.isfinite(store.x).all()


def test_training_stops_when_damage_leaves_a_class_without_windows(tmp_path, run_cli) -> None:
    rng = np.random.default_rng(0)
    data = tmp_path / "recordings"
    data.mkdir()
    for name in ("a", "b", "c"):
        np.save(data / f"{name}.npy", rng.normal(size=(1, 256)).astype(np.float32))
    broken = rng.normal(size=(1, 256)).astype(np.float32)
    broken[0, 100] = np.inf  # the only "spike" recording is damaged
    np.save(data / "d.npy", broken)
    (tmp_path / "labels.tsv").write_text("a\tquiet\nb\tquiet\nc\tquiet\nd\tspike\n")
    result = run_cli(
        "train", "--plugin", "numpy", "--input", data, "--labels", tmp_path / "labels.tsv",
        "--preset", "tiny", "--epochs", "1", "--window", "64", "--out", tmp_path / "m",
    )  # fmt: skip
    assert result.code != 0
    assert result.err_lines[-1] == (
        "error: no window of class spike could be read (damaged or too short recordings); "
        "add data for it or leave it out of the labels"
    )
    assert not (tmp_path / "m" / "best").exists()


class CarelessPlugin(FilesPlugin):
    """A third party's reader: a ``ValueError`` on the file 'odd', and recordings whose
    reading raises ``OSError`` mid-way, instead of :class:`RecordingError`."""

    name = "careless"

    def open(self, path: Path) -> Iterator:
        if path.name == "odd":
            raise ValueError("cannot reshape array of size 7")
        yield from self.files[path.name]


class FailingRead(ArrayRecording):
    def chunks(self, n: int) -> Iterator[np.ndarray]:
        yield from super().chunks(min(n, 10))
        raise OSError("Input/output error")


def test_a_plugins_own_errors_are_damage_naming_plugin_and_file(caplog) -> None:
    plugin = CarelessPlugin({"a": [recording("a", 100, 0)], "b": [recording("b", 100, 1)]})
    policy = DamagePolicy()
    found = list(iter_recordings(plugin, [Path("a"), Path("odd"), Path("b")], policy.handle))
    assert [r.id for r in found] == ["a", "b"]
    assert policy.skipped == [
        "odd: plugin 'careless' could not read it (ValueError: cannot reshape array of size 7)"
    ]
    with pytest.raises(RecordingError, match="odd: plugin 'careless'"):
        list(iter_recordings(plugin, [Path("odd")], DamagePolicy(strict=True).handle))


def test_a_readers_own_error_mid_recording_skips_that_recording() -> None:
    data = np.random.default_rng(0).normal(size=(1, 300)).astype(np.float32)
    recs = [recording("a", 300, 0), FailingRead("b", data, 1.0), recording("c", 200, 2)]
    ids, skipped = predict_skipping_damage(recs)
    assert ids == ["a", "c"]
    assert skipped == ["recording b: reading failed (OSError: Input/output error)"]


def predict_skipping_damage(recs: list) -> tuple[list[str], list[str]]:
    """The ids a tiny model predicts of ``recs``, and the damage lines skipped on the way."""
    config = model_config("tiny", 1, 2)
    model = SignalNet(config).eval()
    policy = DamagePolicy()
    meta = meta_for(config, ["x", "y"], WINDOW, HOP)
    preds = predict_recordings(
        model, meta, FilesPlugin({}), recs, torch.device("cpu"), 8, on_damage=policy.handle
    )
    return [p.recording.id for p in preds], policy.skipped


def test_a_fifo_among_the_inputs_is_refused_or_skipped(tmp_path: Path) -> None:
    import os

    from biosig import BiosigError, expand_inputs

    fifo = tmp_path / "pipe.npy"
    os.mkfifo(fifo)
    with pytest.raises(BiosigError, match="pipe.npy: not a regular file or directory"):
        expand_inputs([fifo])
    policy = DamagePolicy()
    plugin = FilesPlugin({"a": [recording("a", 100, 0)]})
    assert [r.id for r in iter_recordings(plugin, [Path("a"), fifo], policy.handle)] == ["a"]
    assert policy.skipped == [f"{fifo}: not a regular file"]


class Claims(ArrayRecording):
    """A recording that says what a damaged header would: its rate and length as given."""

    def __init__(self, rec_id: str, fs, n_samples) -> None:
        super().__init__(rec_id, np.zeros((1, 10), np.float32), 1.0)
        self.fs, self.n_samples = fs, n_samples


@pytest.mark.parametrize(
    ("fs", "n_samples", "problem"),
    [
        (0.0, 10, "sampling rate 0.0 is not a positive number"),
        (-250.0, 10, "sampling rate -250.0 is not a positive number"),
        (float("nan"), 10, "sampling rate nan is not a positive number"),
        ("250", 10, "sampling rate '250' is not a positive number"),
        (250.0, -5, "sample count -5 is not a whole number of samples"),
    ],
)
def test_a_recording_claiming_a_bad_rate_or_length_is_damage(fs, n_samples, problem) -> None:
    plugin = FilesPlugin({"a": [Claims("odd", fs, n_samples), recording("b", 100, 0)]})
    policy = DamagePolicy()
    assert [r.id for r in iter_recordings(plugin, [Path("a")], policy.handle)] == ["b"]
    assert policy.skipped == [f"recording odd: {problem}"]


def test_a_rate_far_below_the_models_is_refused_before_any_window_is_planned() -> None:
    from biosig.data.windows import MAX_UPSAMPLING, model_length

    slow = Claims("slow", 1e-6, 10)
    with pytest.raises(RecordingError, match=r"recording slow: its rate, 1e-06 Hz, is more than"):
        model_length(slow, 360.0)
    assert model_length(Claims("ok", 1.0, 10), float(MAX_UPSAMPLING)) == 10 * MAX_UPSAMPLING


def test_a_sample_count_whose_window_plan_exceeds_memory_is_damage_not_an_allocation() -> None:
    # 10¹⁵ samples would plan 3·10¹³ windows: the plan is refused before it is allocated,
    # and the other recordings are predicted.
    recs = [recording("a", 300, 0), Claims("huge", 1.0, 10**15), recording("c", 200, 2)]
    ids, [line] = predict_skipping_damage(recs)
    assert ids == ["a", "c"]
    assert line.startswith("recording huge: the plan of its 31,250,000,000,001 windows")
    assert "sample count 1,000,000,000,000,000" in line and "GiB in memory" in line
