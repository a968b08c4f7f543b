"""Reading OHLCV files: every quirk of the real files in ``../shared/data/finance`` (see its
README), and what is done with files that are unsorted, duplicated, impossible or broken."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from biosig_finance.ohlcv import read_bars

from biosig import BiosigError, RecordingError
from biosig.plugin.contract import iter_recordings
from biosig.plugin.registry import get_plugin

#: Bars per file, as the README's table gives them.
ROWS = {
    "nvda-1999-2014": 4012,
    "orcl-1995-2014": 5036,
    "yhoo-1996-2015": 4965,
    "SPY_D": 5241,
    "2006-day-001": 255,
    "2006-min-005": 2142,
}


@pytest.fixture(scope="module")
def finance_dir(shared_data: Path) -> Path:
    return shared_data / "finance"


def plugin(**options):
    p = get_plugin("finance")
    p.configure(options)
    return p


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------- the real files


def test_a_directory_yields_every_price_file_whatever_its_extension(finance_dir: Path) -> None:
    # Four of the six are CSV text in .txt files; the README beside them is no price file.
    files = plugin().find([finance_dir])
    assert sorted(f.stem for f in files) == sorted(ROWS)
    assert sum(f.suffix == ".txt" for f in files) == 5


def test_content_decides_not_the_extension(finance_dir: Path, tmp_path: Path) -> None:
    renamed = shutil.copy(finance_dir / "orcl-1995-2014.txt", tmp_path / "orcl.prices")
    (rec,) = iter_recordings(plugin(), plugin().find([renamed]))
    assert (rec.id, rec.n_samples) == ("orcl", 5036)
    with pytest.raises(BiosigError, match="README.md: no Date column"):
        plugin().find([finance_dir / "README.md"])


def test_every_file_reads_whole_without_a_warning(finance_dir: Path, caplog) -> None:
    # The README: ascending dates, no duplicates, no NaN, no impossible bars.
    p = plugin()
    with caplog.at_level(logging.WARNING, logger="biosig"):
        recs = list(iter_recordings(p, p.find([finance_dir])))
    assert not caplog.records
    assert {r.id: r.n_samples for r in recs} == ROWS
    for rec in recs:
        assert rec.fs == 1.0 and len(rec.channels) == 6
        assert np.all(np.diff(rec.times) > np.timedelta64(0))


def test_adjusted_close_is_the_price(finance_dir: Path) -> None:
    nvda = read_bars(finance_dir / "nvda-1999-2014.txt")
    # NVDA's first Close is split-adjusted 1.640625; Adj Close (dividends too) is 1.518424
    assert nvda.adjusted and nvda.close[0] == pytest.approx(1.518424)
    # The whole bar is scaled with it, so High/Low bracket the adjusted close.
    assert nvda.high[0] == pytest.approx(1.953125 * 1.518424 / 1.640625)
    assert np.all(nvda.high >= nvda.close) and np.all(nvda.low <= nvda.close)
    # YHOO paid no dividends: Adj Close equals Close, the bars are left as they are
    yhoo = read_bars(finance_dir / "yhoo-1996-2015.txt")
    assert yhoo.adjusted and (yhoo.close[0], yhoo.high[0]) == pytest.approx((1.375, 1.791667))


def test_spy_index_column_float_volume_and_no_final_newline(finance_dir: Path) -> None:
    path = finance_dir / "SPY_D.csv"
    assert not path.read_bytes().endswith(b"\n")
    spy = read_bars(path)
    assert not spy.adjusted and len(spy) == 5241
    assert spy.volume[:2].tolist() == [4006500.0, 6516900.0]
    # the last row, written without a newline, is read whole
    assert (str(spy.times[-1])[:10], spy.close[-1]) == ("2020-08-28", 350.58)
    (rec,) = iter_recordings(plugin(), [path])
    assert rec.channels[-1] == "volume_z"
    assert np.isfinite(next(rec.chunks(10**6))[:, 20:]).all()


@pytest.mark.parametrize("name", ["2006-day-001.txt", "2006-min-005.txt"])
def test_all_zero_volume_gives_finite_volume_features(finance_dir: Path, name: str) -> None:
    bars = read_bars(finance_dir / name)
    assert not bars.volume.any()
    (rec,) = iter_recordings(plugin(), [finance_dir / name])
    x = next(rec.chunks(10**6))
    assert np.isnan(x[:, :20]).all() and np.isfinite(x[:, 20:]).all()
    assert not x[rec.channels.index("volume_z"), 20:].any()


def test_separate_date_and_time_columns_make_intraday_bars(finance_dir: Path) -> None:
    bars = read_bars(finance_dir / "2006-min-005.txt")
    assert len(bars) == 2142
    days = bars.times.astype("datetime64[D]")
    _, per_day = np.unique(days, return_counts=True)
    assert set(per_day) == {102}
    clock = (bars.times - days).astype("timedelta64[m]").astype(int)
    assert (clock.min(), clock.max()) == (9 * 60 + 5, 17 * 60 + 30)
    assert set(np.diff(clock)[np.diff(days) == np.timedelta64(0)]) == {5}


@pytest.mark.parametrize(
    ("name", "day", "log_return"),
    [
        ("nvda-1999-2014.txt", "2004-08-06", -0.434),
        ("yhoo-1996-2015.txt", "2008-02-01", 0.392),
        ("SPY_D.csv", "2008-10-13", 0.131),
    ],
)
def test_large_real_jumps_are_kept(finance_dir: Path, name: str, day: str, log_return: float):
    (rec,) = iter_recordings(plugin(), [finance_dir / name])
    (bar,) = np.flatnonzero(rec.times == np.datetime64(day))
    returns = next(rec.chunks(10**6))[rec.channels.index("log_return")]
    assert returns[bar] == pytest.approx(log_return, abs=1e-3)
    assert rec.n_samples == ROWS[rec.id]


def test_gaps_of_up_to_seven_days_are_accepted(finance_dir: Path) -> None:
    # The Sept 2001 closure: 2001-09-10 to 2001-09-17, the only 7-day gap
    for name in ("nvda-1999-2014.txt", "orcl-1995-2014.txt", "yhoo-1996-2015.txt", "SPY_D.csv"):
        bars = read_bars(finance_dir / name)
        gaps = np.diff(bars.times).astype("timedelta64[D]").astype(int)
        assert gaps.max() == 7 and str(bars.times[np.argmax(gaps)])[:10] == "2001-09-10"
        assert len(bars) == ROWS[Path(name).stem]


# ------------------------------------------------------------------------- shapes and repairs

HEADER = "Date,Open,High,Low,Close,Volume\n"


def test_unsorted_and_duplicated_rows_are_fixed_with_warnings(tmp_path: Path, caplog) -> None:
    rows = [
        "2020-01-03,10,11,9,10.5,100",
        "2020-01-01,10,11,9,10.2,100",
        "2020-01-02,10,11,9,10.4,100",
        "2020-01-02,10,11,9,99.0,100",  # the same day again: the first copy is kept
    ]
    path = write(tmp_path / "x.csv", HEADER + "\n".join(rows) + "\n")
    with caplog.at_level(logging.WARNING, logger="biosig"):
        bars = read_bars(path)
    assert [str(t)[:10] for t in bars.times] == ["2020-01-01", "2020-01-02", "2020-01-03"]
    assert bars.close.tolist() == [10.2, 10.4, 10.5]
    messages = [r.getMessage() for r in caplog.records]
    assert any("not in time order; sorted" in m for m in messages)
    assert any("1 bars repeat an earlier timestamp (first at line 5)" in m for m in messages)


def test_impossible_bars_are_dropped_naming_count_and_first_line(tmp_path: Path, caplog) -> None:
    rows = [
        "2020-01-01,10,11,9,10.5,100",
        "2020-01-02,10,10.2,9,10.5,100",  # High below Close
        "2020-01-03,10,11,10.2,10.5,100",  # Low above Open
        "2020-01-06,0,11,9,10.5,100",  # Open 0
        "2020-01-07,10,11,9,10.6,100",
    ]
    path = write(tmp_path / "x.csv", HEADER + "\n".join(rows))
    with caplog.at_level(logging.WARNING, logger="biosig"):
        bars = read_bars(path)
    assert bars.close.tolist() == [10.5, 10.6]
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith(f"{path}: dropped 3 bars")
    assert "first at line 3: High below Open/Close" in message


def test_common_shapes_read_alike(tmp_path: Path) -> None:
    # lower case with a written-out index; semicolons; ISO datetimes; close only
    shapes = {
        "a.csv": ",date,open,high,low,close,volume\n0,2020-01-01,1,2,0.5,1.5,1e3\n"
        "1,2020-01-02,1,2,0.5,1.6,2e3",
        "b.txt": "DATE;OPEN;HIGH;LOW;CLOSE;VOL\n2020-01-01;1;2;0.5;1.5;1000\n"
        "2020-01-02;1;2;0.5;1.6;2000\n",
        "c.dat": "Datetime,Close\n2020-01-01 00:00:00,1.5\n2020-01-02 00:00:00,1.6\n",
    }
    for name, text in shapes.items():
        bars = read_bars(write(tmp_path / name, text))
        assert bars.close.tolist() == [1.5, 1.6], name
        assert str(bars.times[1])[:10] == "2020-01-02", name


# ------------------------------------------------------------------------- broken files


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        ("Date,Open,High,Low,Volume\n2020-01-01,1,2,0.5,10\n", "no Close or Adj Close column"),
        ("Open,High,Low,Close\n1,2,0.5,1.5\n", "no Date column"),
    ],
    ids=["empty", "no-price", "no-date"],
)
def test_unusable_files_fail_in_one_line(text, message, tmp_path: Path, run_cli) -> None:
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(BiosigError, match=message):
        plugin().find([path])
    result = run_cli("train", "--plugin", "finance", "--input", path, "--labels", "direction")
    assert result.code != 0
    assert len(result.err_lines) == 1 and f"error: {path}: {message}" in result.err_lines[0]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            "2020-01-01,1,2,0.5,1.5,10\n2020-01-02,1,2,0.5,abc,10\n",
            "line 3: close 'abc' is not a number",
        ),
        (
            "2020-01-01,1,2,0.5,1.5,10\nnot-a-day,1,2,0.5,1.5,10\n",
            "line 3: 'not-a-day' is not a date",
        ),
        ("2020-01-01,-1,2,0.5,1.5,10\n", "no usable bar: all 1 have a price <= 0"),
        (
            "2020-01-01,null,null,null,null,null\n2020-01-02,1,2,0.5,,10\n",
            "no usable bar: all 2 have a missing price (first at line 2: open is 'null')",
        ),
        (
            "2020-01-01,1,2,0.5,1.5,10\n\n\n2020-01-02,1,2,0.5,1.5,10\n"
            "  \n2020-01-03,1,2,0.5,x,10\n",
            "line 7: close 'x' is not a number",
        ),
    ],
    ids=["text-price", "bad-date", "non-positive", "all-missing", "after-blank-lines"],
)
def test_damaged_files_name_the_file_and_line(rows, message, tmp_path: Path, run_cli) -> None:
    path = write(tmp_path / "bad.csv", HEADER + rows)
    with pytest.raises(RecordingError, match=re.escape(message)):
        read_bars(path)
    # Damage: skipped with a warning among several inputs; --strict stops in one line.
    result = run_cli(
        "train", "--plugin", "finance", "--input", path, "--labels", "direction", "--strict"
    )
    assert result.code != 0
    assert len(result.err_lines) == 1 and f"{path}: {message}" in result.err_lines[0]


def test_yahoo_null_rows_are_dropped_with_one_warning(tmp_path: Path, caplog) -> None:
    # Yahoo downloads write "null" in every column but the date on some days; an empty
    # cell or another missing marker is the same. A text price is still an error.
    text = (
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "2020-01-01,10,11,9,10.5,10.4,100\n"
        "2020-01-02,null,null,null,null,null,null\n"
        "2020-01-03,10,11,9,10.6,10.5,100\n"
        "2020-01-06,10,11,9,,10.5,100\n"
        "2020-01-07,NaN,11,9,10.7,10.6,100\n"
        "2020-01-08,10,11,9,10.8,10.7,100\n"
    )
    path = write(tmp_path / "yahoo.csv", text)
    with caplog.at_level(logging.WARNING, logger="biosig"):
        bars = read_bars(path)
    assert [str(t)[:10] for t in bars.times] == ["2020-01-01", "2020-01-03", "2020-01-08"]
    assert bars.close.tolist() == [10.4, 10.5, 10.7]
    (message,) = [r.getMessage() for r in caplog.records]
    assert message == (
        f"{path}: dropped 3 bars with a missing price (first at line 3: open is 'null')"
    )
    with pytest.raises(RecordingError, match=r"line 3: open 'abc' is not a number"):
        read_bars(write(tmp_path / "text.csv", text.replace("null", "abc", 5)))


def test_times_are_one_ascending_entry_per_bar_after_cleaning(tmp_path: Path) -> None:
    # What the core's calendar splits rely on: after sorting, dropping duplicates, missing
    # and impossible bars, one strictly ascending datetime64 per bar the recording holds.
    rows = [
        "2020-01-03,10,11,9,10.5,100",
        "2020-01-01,null,null,null,null,null",
        "2020-01-02,10,11,9,10.4,100",
        "",
        "2020-01-02,10,11,9,10.9,100",
        "2020-01-06,10,10.2,9,10.5,100",
        "2020-01-07,10,11,9,10.6,100",
    ]
    path = write(tmp_path / "x.csv", HEADER + "\n".join(rows) + "\n")
    (rec,) = iter_recordings(plugin(), [path])
    assert rec.times.dtype == np.dtype("datetime64[ns]")
    assert len(rec.times) == rec.n_samples == 3
    assert np.all(np.diff(rec.times) > np.timedelta64(0))
    assert [str(t)[:10] for t in rec.times] == ["2020-01-02", "2020-01-03", "2020-01-07"]


def test_line_numbers_count_blank_lines(tmp_path: Path, caplog) -> None:
    # Physical lines, header = line 1: the duplicate is on line 6, the impossible bar on 8.
    text = HEADER + (
        "\n"
        "2020-01-01,10,11,9,10.5,100\n"
        "\n"
        "2020-01-02,10,11,9,10.4,100\n"
        "2020-01-02,10,11,9,10.4,100\n"
        "   \n"
        "2020-01-03,10,10.2,9,10.5,100\n"
        "2020-01-06,10,11,9,10.6,100\n\n"
    )
    path = write(tmp_path / "x.csv", text)
    with caplog.at_level(logging.WARNING, logger="biosig"):
        bars = read_bars(path)
    assert len(bars) == 3
    messages = [r.getMessage() for r in caplog.records]
    assert any("1 bars repeat an earlier timestamp (first at line 6)" in m for m in messages)
    assert any("first at line 8: High below Open/Close" in m for m in messages)


def test_utc_offsets_that_change_with_daylight_saving_compare_as_instants(tmp_path: Path):
    text = "timestamp,close\n2020-03-06 10:00-05:00,1\n2020-03-09 10:00-04:00,2\n"
    bars = read_bars(write(tmp_path / "x.csv", text))
    assert [str(t)[:16] for t in bars.times] == ["2020-03-06T15:00", "2020-03-09T14:00"]
