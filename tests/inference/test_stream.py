"""Streaming inference (exact batching across recordings) and the prediction tables."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from checkpoint_helpers import meta_for
from stub_plugins import InMemoryPlugin

from biosig.data.normalize import NormalizationSpec, normalize
from biosig.data.windows import window_starts
from biosig.device import autocast
from biosig.errors import BiosigError
from biosig.inference.output import (
    Table,
    prediction_tables,
    recording_columns,
    recording_row,
    window_columns,
    window_rows,
)
from biosig.inference.stream import RecordingPrediction, attention_per_sample, predict_recordings
from biosig.nn.model import SignalNet, model_config
from biosig.plugin.contract import (
    ArrayRecording,
    PluginDefaults,
    Recording,
)

CHANNELS, CLASSES, WINDOW, HOP = 2, ["n", "s", "v"], 128, 64
CPU = torch.device("cpu")
LENGTHS = [700, 300, 60, 128, 129, 1]


class ToyPlugin(InMemoryPlugin):
    name = "toy"
    defaults = PluginDefaults(sample_rate=100.0, window=WINDOW, hop=HOP)


class Decimate:
    """Keeps every second sample, carrying the phase across chunks (fs_out = fs / 2)."""

    def __init__(self, fs: float) -> None:
        self.fs_out = fs / 2
        self._phase = 0

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        out = chunk[:, self._phase :: 2]
        self._phase = (self._phase - chunk.shape[1]) % 2
        return np.ascontiguousarray(out, dtype=np.float32)

    def flush(self) -> np.ndarray:
        return np.zeros((CHANNELS, 0), dtype=np.float32)


class HalfRatePlugin(ToyPlugin):
    def preprocessor(self, recording: Recording, fs_out: float):
        return Decimate(recording.fs)


@pytest.fixture(scope="module")
def model_and_meta() -> tuple[SignalNet, dict]:
    torch.manual_seed(0)
    config = model_config("tiny", CHANNELS, len(CLASSES))
    model = SignalNet(config).eval()
    meta = meta_for(config, CLASSES, WINDOW, HOP)
    return model, meta


def make_recordings(lengths: Sequence[int] = LENGTHS, seed: int = 0) -> list[ArrayRecording]:
    rng = np.random.default_rng(seed)
    scaled = [
        (rng.normal(size=(CHANNELS, n)) * (i + 1)).astype(np.float32) for i, n in enumerate(lengths)
    ]
    return [ArrayRecording(f"rec{i}", data, 1.0) for i, data in enumerate(scaled)]


def direct_probabilities(model: torch.nn.Module, data: np.ndarray, starts: np.ndarray):
    """The model run on each recording's windows, sliced and padded by hand, one batch, in
    the precision prediction computes in (bf16 on a CPU with AMX)."""
    x = np.zeros((len(starts), data.shape[0], WINDOW), dtype=np.float32)
    lengths = np.zeros(len(starts), dtype=np.int64)
    for i, s in enumerate(starts):
        part = data[:, s : s + WINDOW]
        x[i, :, : part.shape[1]] = part
        lengths[i] = part.shape[1]
    xt, lt = torch.from_numpy(x), torch.from_numpy(lengths)
    with torch.inference_mode(), autocast(CPU):
        logits = model(normalize(xt, lt, NormalizationSpec("window")), lt)
    return torch.softmax(logits.float(), -1).numpy()


# ------------------------------------------------------------------------ predict_recordings


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_predictions_exact_whatever_the_batching(model_and_meta, batch_size: int) -> None:
    model, meta = model_and_meta
    recs = make_recordings()
    preds = list(predict_recordings(model, meta, ToyPlugin(), recs, CPU, batch_size=batch_size))

    assert [p.recording.id for p in preds] == [r.id for r in recs]
    for pred, rec in zip(preds, recs, strict=True):
        starts = window_starts(rec.n_samples, WINDOW, HOP)
        np.testing.assert_array_equal(pred.starts, starts)
        np.testing.assert_array_equal(pred.ends, np.minimum(starts + WINDOW, rec.n_samples))
        assert pred.probabilities.shape == (len(starts), len(CLASSES))
        np.testing.assert_allclose(pred.probabilities.sum(1), 1, atol=1e-5)
        expected = direct_probabilities(model, rec._data, starts)
        np.testing.assert_allclose(pred.probabilities, expected, atol=1e-5)
        np.testing.assert_allclose(pred.aggregate(), expected.mean(0), atol=1e-5)


@pytest.mark.parametrize("fixed_shapes", [False, True])
def test_progress_is_told_each_batch_of_real_windows(model_and_meta, fixed_shapes) -> None:
    """A progress bar's updates: one per batch scored, together every window once, the
    blank windows padding a fixed-shape batch not counted."""
    model, meta = model_and_meta
    recs = make_recordings()
    told: list[int] = []
    preds = list(
        predict_recordings(
            model, meta, ToyPlugin(), recs, CPU, batch_size=4, fixed_shapes=fixed_shapes,
            on_windows=told.append,
        )
    )  # fmt: skip
    n_windows = sum(len(p.starts) for p in preds)
    assert sum(told) == n_windows
    assert len(told) == -(-n_windows // 4)
    assert all(0 < n <= 4 for n in told)


def test_predictions_identical_across_batch_sizes(model_and_meta) -> None:
    model, meta = model_and_meta
    runs = [
        list(predict_recordings(model, meta, ToyPlugin(), make_recordings(), CPU, batch_size=b))
        for b in (1, 3, 64)
    ]
    for other in runs[1:]:
        for a, b in zip(runs[0], other, strict=True):
            np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-5)


def test_predictions_hop_override(model_and_meta) -> None:
    model, meta = model_and_meta
    rec = make_recordings([500])[0]
    (pred,) = predict_recordings(model, meta, ToyPlugin(), [rec], CPU, batch_size=8, hop=100)
    np.testing.assert_array_equal(pred.starts, window_starts(500, WINDOW, 100))


def test_predictions_positions_in_original_samples(model_and_meta) -> None:
    model, meta = model_and_meta
    rec = make_recordings([601])[0]
    half_rate = dataclasses.replace(meta, sample_rate=0.5)
    (pred,) = predict_recordings(model, half_rate, HalfRatePlugin(), [rec], CPU, batch_size=4)
    n_model = 300  # round(601 / 2) with round-half-even
    starts = window_starts(n_model, WINDOW, HOP)
    np.testing.assert_array_equal(pred.starts, starts * 2)
    ends = np.minimum(starts + WINDOW, n_model) * 2
    ends[-1] = 601  # the window reaching the end of the signal ends at its last sample
    np.testing.assert_array_equal(pred.ends, ends)
    expected = direct_probabilities(model, rec._data[:, ::2], starts)
    np.testing.assert_allclose(pred.probabilities, expected, atol=1e-5)


def test_recording_yielded_before_next_is_read(model_and_meta) -> None:
    model, meta = model_and_meta
    recs = make_recordings([300, 300])
    pulled: list[str] = []

    def source() -> Iterator[ArrayRecording]:
        for rec in recs:
            pulled.append(rec.id)
            yield rec

    stream = predict_recordings(model, meta, ToyPlugin(), source(), CPU, batch_size=1)
    first = next(stream)
    assert first.recording.id == "rec0"
    assert pulled == ["rec0"]
    assert [p.recording.id for p in stream] == ["rec1"]


def test_empty_recording_gives_no_windows(model_and_meta) -> None:
    model, meta = model_and_meta
    recs = make_recordings([0, 200])
    preds = list(predict_recordings(model, meta, ToyPlugin(), recs, CPU, batch_size=4))
    assert [p.recording.id for p in preds] == ["rec0", "rec1"]
    assert preds[0].probabilities.shape == (0, len(CLASSES))
    np.testing.assert_array_equal(preds[1].starts, [0, 64, 72])


def test_wrong_channel_count_is_an_error(model_and_meta) -> None:
    model, meta = model_and_meta
    bad = ArrayRecording("bad", np.zeros((3, 200), dtype=np.float32), 1.0, source=Path("x.npy"))
    with pytest.raises(BiosigError, match=r"x\.npy: recording bad has 3 channels.*trained on 2"):
        list(predict_recordings(model, meta, ToyPlugin(), [*make_recordings([200]), bad], CPU))


# --------------------------------------------------------------------------------- output


def hand_prediction() -> RecordingPrediction:
    rec = ArrayRecording("r,1", np.zeros((CHANNELS, 10), dtype=np.float32), 1.0)
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.1, 0.5, 0.4]], dtype=np.float32)
    return RecordingPrediction(rec, np.array([0, 64, 128]), np.array([128, 192, 250]), probs)


def test_columns() -> None:
    assert window_columns(CLASSES) == [
        "recording", "file", "start", "end", "start_s", "end_s", "start_time", "end_time",
        "label", "confidence",
        "p_n", "p_s", "p_v",
    ]  # fmt: skip
    assert recording_columns(CLASSES) == [
        "recording", "file", "label", "confidence", "n_windows", "p_n", "p_s", "p_v",
    ]  # fmt: skip


def test_window_and_recording_rows() -> None:
    pred = hand_prediction()
    rows = [dict(zip(window_columns(CLASSES), r, strict=True)) for r in window_rows(pred, CLASSES)]
    assert [(r["recording"], r["file"], r["start"], r["end"], r["label"]) for r in rows] == [
        ("r,1", "", 0, 128, "n"),
        ("r,1", "", 64, 192, "v"),
        ("r,1", "", 128, 250, "s"),
    ]
    # at 1 Hz, seconds are samples
    assert [(r["start_s"], r["end_s"]) for r in rows] == [(0, 128), (64, 192), (128, 250)]
    np.testing.assert_allclose([r["confidence"] for r in rows], [0.7, 0.6, 0.5], rtol=1e-6)
    np.testing.assert_allclose([rows[1][f"p_{c}"] for c in CLASSES], [0.1, 0.3, 0.6], rtol=1e-6)
    summary = dict(zip(recording_columns(CLASSES), recording_row(pred, CLASSES), strict=True))
    assert (summary["recording"], summary["label"], summary["n_windows"]) == ("r,1", "v", 3)
    np.testing.assert_allclose(
        [summary[f"p_{c}"] for c in CLASSES], [0.3, 1 / 3, 1.1 / 3], rtol=1e-6
    )
    assert summary["confidence"] == pytest.approx(1.1 / 3, rel=1e-6)


def test_rows_give_seconds_to_the_microsecond_and_the_file() -> None:
    # a day-long record at 250 Hz: %.6g would round 86 400.124 s to 86 400.1
    rec = ArrayRecording("holter", np.zeros((1, 10), np.float32), 250.0, source=Path("h.hea"))
    probs = np.array([[0.9, 0.05, 0.05]], dtype=np.float32)
    pred = RecordingPrediction(rec, np.array([21_600_031]), np.array([21_602_531]), probs)
    buffer = io.StringIO()
    table = Table(buffer, window_columns(CLASSES), "tsv")
    table.write(next(window_rows(pred, CLASSES)))
    _, (row,) = parse(buffer.getvalue(), "tsv")
    assert (row["file"], row["start_s"], row["end_s"]) == ("h.hea", "86400.124", "86410.124")


def parse(text: str, fmt: str) -> tuple[list[str], list[dict]]:
    if fmt == "jsonl":
        rows = [json.loads(line) for line in text.splitlines()]
        return list(rows[0]), rows
    reader = csv.DictReader(io.StringIO(text), delimiter="\t" if fmt == "tsv" else ",")
    return list(reader.fieldnames or []), list(reader)


@pytest.mark.parametrize("fmt", ["tsv", "csv", "jsonl"])
def test_table_round_trip(fmt: str) -> None:
    buffer = io.StringIO()
    table = Table(buffer, window_columns(CLASSES), fmt)
    rows = list(window_rows(hand_prediction(), CLASSES))
    for row in rows:
        table.write(row)
    columns, parsed = parse(buffer.getvalue(), fmt)
    assert columns == window_columns(CLASSES)
    assert len(parsed) == 3
    for written, back in zip(rows, parsed, strict=True):
        written = dict(zip(columns, written, strict=True))
        assert back["recording"] == "r,1" and back["file"] == ""
        assert int(back["start"]) == written["start"] and int(back["end"]) == written["end"]
        assert back["label"] == written["label"]
        for name in ("start_s", "end_s", "confidence", *(f"p_{c}" for c in CLASSES)):
            assert float(back[name]) == pytest.approx(written[name], rel=1e-6)


def test_prediction_tables_written_in_place(tmp_path: Path) -> None:
    pred = hand_prediction()
    with prediction_tables(tmp_path / "out", CLASSES, "tsv") as tables:
        tables.write(pred, CLASSES)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "recordings.tsv",
        "segments.tsv",
        "windows.tsv",
    ]
    _, segment_table = parse((tmp_path / "out" / "segments.tsv").read_text(), "tsv")
    assert [(r["start"], r["end"], r["label"]) for r in segment_table] == [
        ("0", "96", "n"),
        ("96", "158", "v"),
        ("158", "250", "s"),
    ]
    _, window_table = parse((tmp_path / "out" / "windows.tsv").read_text(), "tsv")
    _, recording_table = parse((tmp_path / "out" / "recordings.tsv").read_text(), "tsv")
    assert [r["label"] for r in window_table] == ["n", "v", "s"]
    (summary,) = recording_table
    assert summary["recording"] == "r,1" and summary["label"] == "v"
    assert summary["n_windows"] == "3"
    expected = {"confidence": 1.1 / 3, "p_n": 0.3, "p_s": 1 / 3, "p_v": 1.1 / 3}
    assert {k: float(summary[k]) for k in expected} == pytest.approx(expected, rel=1e-5)


def test_prediction_tables_failure_leaves_no_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    pred = hand_prediction()
    with (
        pytest.raises(RuntimeError, match="model exploded"),
        prediction_tables(out, CLASSES, "csv") as tables,
    ):
        tables.write(pred, CLASSES)
        raise RuntimeError("model exploded")
    assert list(out.iterdir()) == []


def test_prediction_tables_failure_keeps_earlier_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "windows.jsonl").write_text("old\n")
    with pytest.raises(KeyboardInterrupt), prediction_tables(out, CLASSES, "jsonl") as tables:
        tables.windows.write(next(window_rows(hand_prediction(), CLASSES)))
        raise KeyboardInterrupt
    assert [p.name for p in out.iterdir()] == ["windows.jsonl"]
    assert (out / "windows.jsonl").read_text() == "old\n"


def test_prediction_tables_without_directory_print_recordings(capsys) -> None:
    pred = hand_prediction()
    with prediction_tables(None, CLASSES, "jsonl") as tables:
        assert tables.windows is None and tables.segments is None
        tables.write(pred, CLASSES)
    (line,) = capsys.readouterr().out.splitlines()
    row = json.loads(line)
    assert list(row) == recording_columns(CLASSES)
    assert row["label"] == "v" and row["n_windows"] == 3


def prediction_of(classes: list[int], starts: list[int], ends: list[int]) -> RecordingPrediction:
    rec = ArrayRecording("r", np.zeros((1, max(ends)), dtype=np.float32), 1.0)
    probs = np.full((len(classes), 3), 0.1, dtype=np.float32)
    probs[np.arange(len(classes)), classes] = 0.8
    return RecordingPrediction(rec, np.array(starts), np.array(ends), probs)


def test_segments_join_runs_of_one_class() -> None:
    # non-overlapping windows: segments are exactly the runs of windows
    pred = prediction_of([0, 0, 1, 1, 1, 0], [0, 10, 20, 30, 40, 50], [10, 20, 30, 40, 50, 60])
    got = [(s.start, s.end, s.label, len(s.confidences)) for s in pred.segments()]
    assert got == [(0, 20, 0, 2), (20, 50, 1, 3), (50, 60, 0, 1)]
    assert pred.segments()[0].confidence == pytest.approx(0.8)


def test_segments_split_overlaps_at_midpoints_and_never_cover_gaps() -> None:
    # hop 5, window 10: the change between windows at 5 and 10 falls at (10 + 15) / 2
    pred = prediction_of([0, 0, 1], [0, 5, 10], [10, 15, 20])
    assert [(s.start, s.end, s.label) for s in pred.segments()] == [(0, 12, 0), (12, 20, 1)]
    # windows 20-30 and 30-40 were skipped (a gap): the segments stop at its edges
    pred = prediction_of([0, 0], [10, 40], [20, 50])
    assert [(s.start, s.end) for s in pred.segments()] == [(10, 20), (40, 50)]


def test_windows_holding_missing_samples_are_not_predicted(model_and_meta) -> None:
    model, meta = model_and_meta
    data = np.random.default_rng(0).normal(size=(CHANNELS, 700)).astype(np.float32)
    data[:, 300:310] = np.nan
    preds = list(
        predict_recordings(
            model, meta, ToyPlugin(), [ArrayRecording("g", data, 1.0)], CPU, batch_size=4
        )
    )
    (pred,) = preds
    planned = window_starts(700, WINDOW, HOP)
    hit = (planned <= 309) & (planned + WINDOW > 300)
    np.testing.assert_array_equal(pred.starts, planned[~hit])
    assert pred.n_skipped == hit.sum() and np.isfinite(pred.probabilities).all()


def test_recording_all_gap_is_damaged(model_and_meta) -> None:
    model, meta = model_and_meta
    gap = ArrayRecording("gap", np.full((CHANNELS, 300), np.nan, dtype=np.float32), 1.0)
    ok = ArrayRecording("ok", np.zeros((CHANNELS, 300), dtype=np.float32), 1.0)
    skipped: list[str] = []
    preds = list(
        predict_recordings(
            model, meta, ToyPlugin(), [gap, ok], CPU, on_damage=lambda e: skipped.append(str(e))
        )
    )
    assert [p.recording.id for p in preds] == ["ok"]
    assert skipped == ["recording gap: every window holds missing samples (gaps)"]


# ------------------------------------------------------- readers, chunks, shapes, attention


@pytest.mark.parametrize(
    ("workers", "chunk_size", "fixed_shapes"),
    [(1, None, False), (3, 7, False), (2, 1000, True), (0, 33, True)],
)
def test_predictions_do_not_depend_on_readers_chunks_or_padding(
    model_and_meta, workers: int, chunk_size: int | None, fixed_shapes: bool
) -> None:
    model, meta = model_and_meta
    # decimated by a stateful preprocessor, so chunk boundaries matter if anything does
    half_rate = dataclasses.replace(meta, sample_rate=0.5)

    def run(**options) -> list[RecordingPrediction]:
        return list(
            predict_recordings(
                model, half_rate, HalfRatePlugin(), make_recordings(), CPU, 5, **options
            )
        )

    plain = run()
    other = run(workers=workers, chunk_size=chunk_size, fixed_shapes=fixed_shapes)
    got = other
    assert [p.recording.id for p in got] == [p.recording.id for p in plain]
    for a, b in zip(plain, got, strict=True):
        np.testing.assert_array_equal(a.starts, b.starts)
        np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-5)


def test_attention_per_window_sums_to_one_and_matches_the_model(model_and_meta) -> None:
    model, meta = model_and_meta
    recs = make_recordings([300, 60])
    preds = list(predict_recordings(model, meta, ToyPlugin(), recs, CPU, 4, explain=True))
    for pred, rec in zip(preds, recs, strict=True):
        assert pred.attention.shape == (len(pred.starts), WINDOW)
        np.testing.assert_allclose(pred.attention.sum(1), 1, atol=1e-5)
        np.testing.assert_array_equal(pred.index, np.arange(len(pred.starts)))
        # the first window's weights, token by token, are the model's pooling weights
        x = torch.from_numpy(rec._data[None, :, :WINDOW].copy())
        lengths = torch.tensor([x.shape[-1]])
        with torch.inference_mode(), autocast(CPU):  # as prediction runs it
            _, weights = model(normalize(x, lengths, NormalizationSpec("window")), lengths, True)
        per_token = weights.float().mean(1)[0].numpy()
        n = x.shape[-1]
        samples_of_token = np.minimum(8, n - 8 * np.arange(len(per_token)))  # last: n % 8
        np.testing.assert_allclose(
            pred.attention[0, ::8][: len(per_token)], per_token / samples_of_token, atol=1e-6
        )
        np.testing.assert_array_equal(pred.lengths, np.minimum(WINDOW, rec.n_samples - pred.starts))
    # 60 samples: 8 tokens, the last holding 4 samples, and nothing past the recording
    assert (preds[1].attention[0, 60:] == 0).all()
    assert (preds[1].attention[0, 56:60] > 0).all()


def test_attention_rows_sum_to_one_when_the_window_is_not_a_multiple_of_8() -> None:
    weights = torch.softmax(torch.randn(3, 2, 13), -1)  # 13 tokens: 101 samples need 13
    weights[2, :, 5:] = 0  # 40 samples: 5 tokens, the model gives padded ones no weight
    weights[2] /= weights[2].sum(-1, keepdim=True)
    rows = attention_per_sample(weights, 8, np.array([101, 101, 40]), 101)
    np.testing.assert_allclose(rows.sum(1), 1, atol=1e-6)
    assert (rows[2, 40:] == 0).all()


def test_aggregations() -> None:
    pred = prediction_of([0, 0, 1], [0, 10, 20], [10, 20, 30])
    pred.probabilities = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]], dtype=np.float32)
    np.testing.assert_allclose(pred.aggregate("mean"), [1.7 / 3, 1.3 / 3], atol=1e-6)
    geometric = np.exp(np.log(pred.probabilities).mean(0))
    np.testing.assert_allclose(pred.aggregate("geometric"), geometric / geometric.sum(), atol=1e-6)
    np.testing.assert_allclose(pred.aggregate("vote"), [2 / 3, 1 / 3], atol=1e-6)
    with pytest.raises(ValueError, match="unknown aggregation 'median'"):
        pred.aggregate("median")
