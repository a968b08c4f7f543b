"""The ``finance`` plugin as the core sees it: defaults, options checked up front, label
keywords, recordings with their bar times, and demo data the reader takes."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from biosig_finance import FinancePlugin
from biosig_finance.features import FEATURES
from biosig_finance.synthetic import random_walk, trend_walk, write_csv

from biosig import BiosigError, LabelledInterval
from biosig.plugin.contract import iter_recordings
from biosig.plugin.registry import get_plugin


def test_registered_with_time_splits_and_dataset_scaling() -> None:
    p = get_plugin("finance")
    assert isinstance(p, FinancePlugin) and p.api_version == 1
    d = p.defaults
    assert (d.sample_rate, d.window, d.hop, d.normalization, d.split) == (
        1.0,
        64,
        1,
        "dataset",
        "time",
    )
    assert p.label_keywords == ("direction", "barrier")
    assert p.settings == {"horizon": 5, "dead_zone": 0.0, "barrier": 2.0, "vol_window": 20}
    assert [o.name for o in p.options if o.preprocessing] == ["vol_window"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"horizon": 0}, "--horizon 0: give a positive number of bars"),
        ({"dead_zone": -1}, "--dead-zone -1: give 0"),
        ({"barrier": 0}, "--barrier 0: give a positive number of sigmas"),
        ({"vol_window": 1}, "--vol-window 1: give at least 2 bars"),
        ({"horizon": "soon"}, "--horizon: expected int"),
    ],
)
def test_bad_options_fail_before_reading(options: dict, message: str) -> None:
    with pytest.raises(BiosigError, match=message):
        get_plugin("finance").configure(options)


def test_a_bad_option_on_the_command_line_is_one_line(run_cli, in_tmp: Path) -> None:
    path = write_csv(in_tmp / "walk.csv", random_walk(300))
    result = run_cli(
        "train", "--plugin", "finance", "--input", path, "--labels", "direction", "--horizon", "0"
    )
    assert result.code != 0
    assert result.err_lines == ["error: --horizon 0: give a positive number of bars"]


def test_recording_is_the_file_with_its_bar_times(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "walk.csv", random_walk(300), start="2001-01-01")
    p = get_plugin("finance")
    (rec,) = iter_recordings(p, p.find([tmp_path]))
    assert (rec.id, rec.fs, rec.channels, rec.n_samples) == ("walk", 1.0, FEATURES, 300)
    assert rec.source == path
    assert str(rec.times[0])[:10] == "2001-01-01" and len(rec.times) == 300
    whole = next(rec.chunks(300))
    pieces = np.concatenate(list(rec.chunks(7)), axis=1)
    np.testing.assert_array_equal(whole, pieces)
    assert whole.shape == (6, 300) and whole.dtype == np.float32


def test_labels_are_forecasts_of_the_chosen_kind(tmp_path: Path) -> None:
    write_csv(tmp_path / "walk.csv", random_walk(500))
    p = get_plugin("finance")
    p.configure({"horizon": 4, "dead_zone": 0.3})
    recs = list(iter_recordings(p, p.find([tmp_path])))
    intervals = p.labels("direction", recs)
    assert all(isinstance(iv, LabelledInterval) for iv in intervals)
    assert {iv.label_end - iv.start for iv in intervals} == {5}  # i + h + 1
    assert set(Counter(iv.label for iv in intervals)) == {"up", "down", "flat"}
    with pytest.raises(BiosigError, match="--labels trend: choose direction, barrier"):
        p.labels("trend", recs)


def test_a_file_too_short_for_any_label_says_so(tmp_path: Path) -> None:
    write_csv(tmp_path / "short.csv", random_walk(4))
    p = get_plugin("finance")
    recs = list(iter_recordings(p, p.find([tmp_path])))
    with pytest.raises(BiosigError, match="no bar of 1 recordings has 5 bars after it"):
        p.labels("direction", recs)


def test_a_table_of_bars_is_taken_too(tmp_path: Path) -> None:
    write_csv(tmp_path / "walk.csv", random_walk(300))
    table = tmp_path / "labels.tsv"
    table.write_text("walk\t0\t150\tcalm\nwalk\t150\t300\tstorm\n")
    p = get_plugin("finance")
    recs = list(iter_recordings(p, p.find([tmp_path / "walk.csv"])))
    assert [(iv.start, iv.stop, iv.label) for iv in p.labels(table, recs)] == [
        (0, 150, "calm"),
        (150, 300, "storm"),
    ]


def test_a_directory_without_price_files_is_an_error(tmp_path: Path, run_cli) -> None:
    (tmp_path / "notes.txt").write_text("nothing here\n")
    with pytest.raises(BiosigError, match="no OHLCV CSV files found there"):
        get_plugin("finance").find([tmp_path])
    result = run_cli("train", "--plugin", "finance", "--input", tmp_path, "--labels", "direction")
    assert result.code != 0
    assert result.err_lines[-1].startswith(f"error: {tmp_path}: no OHLCV CSV files found there")


def test_files_skipped_in_a_directory_are_named(tmp_path: Path, caplog) -> None:
    # A file whose header is not recognised may be a price file gone wrong: one warning
    # each, naming it. Documentation, code and hidden files are passed over quietly.
    write_csv(tmp_path / "walk.csv", random_walk(300))
    (tmp_path / "prices.csv").write_text("Day,Last\n2020-01-01,1.5\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "notes.txt").write_text("nothing here\n")
    (tmp_path / "README.md").write_text("# Prices\n")
    (tmp_path / "fetch.py").write_text("print('hi')\n")
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x01")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("[core]\n")
    with caplog.at_level(logging.WARNING, logger="biosig"):
        files = get_plugin("finance").find([tmp_path])
    assert files == [tmp_path / "walk.csv"]
    messages = sorted(r.getMessage() for r in caplog.records)
    assert messages == [
        f"{tmp_path / 'prices.csv'}: no Date column in the header 'Day,Last'; "
        "skipped, not an OHLCV CSV file",
        f"{tmp_path / 'sub' / 'notes.txt'}: no Date column in the header 'nothing here'; "
        "skipped, not an OHLCV CSV file",
    ]


def test_demo_files_are_written_atomically(tmp_path: Path, monkeypatch) -> None:
    # A write that fails half way leaves the earlier file whole and no temporary behind.
    path = write_csv(tmp_path / "walk.csv", random_walk(300))
    before = path.read_bytes()

    def half_then_fail(self, target, *args, **kwargs):
        if isinstance(target, str | Path):
            Path(target).write_text("Date,Open\n2020-01")
        else:
            target.write("Date,Open\n2020-01")
        raise OSError("No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        write_csv(path, random_walk(500))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["walk.csv"]


def test_demo_data_is_yahoo_style_and_trends(tmp_path: Path) -> None:
    demo = get_plugin("finance").make_demo_data(tmp_path, seed=0)
    assert demo.labels == "direction"
    files = sorted(tmp_path.glob("*.csv"))
    assert len(files) == 4
    header = files[0].read_text().splitlines()[0]
    assert header == "Date,Open,High,Low,Close,Adj Close,Volume"
    frame = pd.read_csv(files[0])
    assert (frame["Adj Close"] <= frame["Close"]).all()
    assert (frame["High"] >= frame[["Open", "Close"]].max(axis=1)).all()
    # The trend is in the past and the future alike: the sign of the last 20 bars' move
    # foretells the next 5 bars' more often than not; in a random walk it would not.
    close = trend_walk(20000, seed=1)
    past = np.sign(np.log(close[20:-5] / close[:-25]))
    future = np.sign(np.log(close[25:] / close[20:-5]))
    assert (past == future).mean() > 0.6
