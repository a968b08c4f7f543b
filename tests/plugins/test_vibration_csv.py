"""The ``vibration`` plugin's CSV/TSV reader on files written here: sniffed delimiters,
headers and time columns, streamed chunks equal to a whole read, and one-line errors naming
the file and line for a broken cell, a ragged row or an empty file."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from biosig_vibration import csv_files
from vibration_helpers import open_one, plugin, whole, write

from biosig import BiosigError, RecordingError

RNG = np.random.default_rng(7)


def table(rows: int = 50, fs: float = 1000.0) -> tuple[np.ndarray, np.ndarray]:
    """Times in seconds and three channels ``[3, rows]``."""
    return np.arange(rows) / fs, RNG.normal(size=(3, rows)).round(6)


def csv_text(times, data, sep=",", header="timestamp,accX,accY,accZ", newline="\n") -> str:
    lines = [header.replace(",", sep)] if header else []
    lines += [
        sep.join(repr(float(v)) for v in (t, *col)) for t, col in zip(times, data.T, strict=True)
    ]
    return newline.join(lines) + newline


# ---------------------------------------------------------------------------- layouts


@pytest.mark.parametrize("sep", [",", "\t", ";", " "])
def test_delimiter_is_sniffed_from_content(tmp_path: Path, sep: str) -> None:
    times, data = table()
    rec = open_one(write(tmp_path / "run.txt", csv_text(times, data, sep)))
    assert rec.channels == ("accX", "accY", "accZ") and rec.fs == 1000
    np.testing.assert_allclose(whole(rec), data, rtol=1e-6)


def test_tsv_without_header_names_columns_by_position(tmp_path: Path) -> None:
    times, data = table(fs=12000)
    rec = open_one(write(tmp_path / "run.tsv", csv_text(times, data, "\t", header="")))
    # the rising first column is time; the others are channels named by position
    assert rec.channels == ("col1", "col2", "col3") and rec.fs == 12000
    np.testing.assert_allclose(whole(rec), data, rtol=1e-6)


def test_decimal_comma_with_semicolons(tmp_path: Path) -> None:
    text = "zeit;x;y\n0,000;1,5;-2,25\n0,001;3,0;4,75\n0,002;-1,0;0,5\n"
    rec = open_one(write(tmp_path / "de.csv", text))
    # "zeit" is no time name, but the first column rises steadily: time, in seconds
    assert rec.channels == ("x", "y") and rec.fs == 1000
    np.testing.assert_allclose(whole(rec), [[1.5, 3.0, -1.0], [-2.25, 4.75, 0.5]])


def test_time_column_in_milliseconds_by_name(tmp_path: Path) -> None:
    times, data = table(fs=500)
    text = csv_text(times * 1000, data, header="time_ms,a,b,c")
    rec = open_one(write(tmp_path / "ms.csv", text))
    assert rec.fs == 500 and rec.channels == ("a", "b", "c")


@pytest.mark.parametrize("header", ["index,x,y,z", "n,x,y,z", ""])
@pytest.mark.parametrize("step", [1, 2])
def test_a_sample_counter_is_neither_channel_nor_rate(tmp_path: Path, header: str, step: int):
    _, data = table()
    text = csv_text(np.arange(0, 50 * step, step), data, header=header)
    path = write(tmp_path / "counter.csv", text)
    with pytest.raises(BiosigError, match=r"counter\.csv: sample rate unknown; give --fs"):
        open_one(path)
    rec = open_one(path, fs=2000)
    assert rec.channels == (("x", "y", "z") if header else ("col1", "col2", "col3"))
    assert rec.fs == 2000


def test_dates_in_a_time_column_give_the_rate(tmp_path: Path) -> None:
    lines = ["timestamp,x"] + [
        f"2024-05-01 10:00:00.{ms:03d},{RNG.normal():.4f}" for ms in range(0, 400, 4)
    ]
    rec = open_one(write(tmp_path / "dates.csv", "\n".join(lines) + "\n"))
    assert rec.fs == 250 and rec.channels == ("x",)


def test_a_headerless_file_starting_with_dates_has_no_header(tmp_path: Path) -> None:
    # a date in the first row is data when the rows below hold dates there too
    lines = [f"2024-01-01 00:00:00.{ms:03d},{ms / 10:.1f},{-ms:.1f}" for ms in range(0, 200, 2)]
    rec = open_one(write(tmp_path / "dated.csv", "\n".join(lines) + "\n"))
    assert rec.n_samples == 100 and rec.channels == ("col1", "col2") and rec.fs == 500
    np.testing.assert_allclose(whole(rec)[:, :2], [[0.0, 0.2], [0.0, -2.0]])
    # a header above them is still one: its cells are words over columns of numbers
    text = "when,x,y\n" + "\n".join(lines) + "\n"
    rec = open_one(write(tmp_path / "named.csv", text))
    assert rec.n_samples == 100 and rec.channels == ("x", "y") and rec.fs == 500


def test_spaces_and_decimal_commas_are_not_read_as_commas(tmp_path: Path) -> None:
    # split at commas, each line has three cells ("0", "7733 -2", "5572"): not a CSV
    values = RNG.normal(size=(60, 2)).round(4)
    lines = [" ".join(f"{v:.4f}".replace(".", ",") for v in row) for row in values]
    rec = open_one(write(tmp_path / "de.txt", "\n".join(lines) + "\n"), fs=100)
    assert rec.channels == ("col0", "col1") and rec.n_samples == 60
    np.testing.assert_allclose(whole(rec), values.T, rtol=1e-6)


def test_non_numeric_columns_are_not_channels_by_default(tmp_path: Path) -> None:
    text = "t,x,state\n0.0,1.0,on\n0.5,2.0,off\n1.0,3.0,on\n"
    rec = open_one(write(tmp_path / "mixed.csv", text))
    assert rec.fs == 2 and rec.channels == ("x",)
    with pytest.raises(RecordingError, match="column 'state' does not hold numbers"):
        open_one(tmp_path / "mixed.csv", channels="state")


def test_jittery_time_column_is_warned_about(tmp_path: Path, caplog) -> None:
    times, data = table(200, fs=100)
    times = times + RNG.uniform(-2e-4, 2e-4, size=times.size)  # up to 4 % of the step
    path = write(tmp_path / "jitter.csv", csv_text(times, data))
    with caplog.at_level(logging.WARNING, logger="biosig"):
        rec = open_one(path)
    assert rec.fs == 100  # the median step
    assert "jitter.csv" in caplog.text and "jitter by up to" in caplog.text


def test_channels_by_name_or_pattern_in_the_order_given(tmp_path: Path) -> None:
    times, data = table()
    path = write(tmp_path / "run.csv", csv_text(times, data))
    assert open_one(path, channels="accZ,accX").channels == ("accZ", "accX")
    rec = open_one(path, channels="acc[YZ]$")
    assert rec.channels == ("accY", "accZ")
    np.testing.assert_allclose(whole(rec), data[1:], rtol=1e-6)
    with pytest.raises(RecordingError, match=r"no column matches 'gyro' \(its columns: "):
        open_one(path, channels="gyro")


def test_time_steps_are_checked_through_the_whole_file(tmp_path, caplog, monkeypatch):
    # the layout is learnt from the first 256 rows; dropouts come later, one of them
    # across a boundary of the blocks the time column is read in
    monkeypatch.setattr(csv_files, "TIME_ROWS", 1000, raising=False)
    times, data = table(5000)
    times[3000:] += 0.05  # 50 samples lost
    times[4321:] += 0.002
    path = write(tmp_path / "dropouts.csv", csv_text(times, data))
    with caplog.at_level(logging.WARNING, logger="biosig"):
        rec = open_one(path)
    assert rec.fs == 1000 and rec.n_samples == 5000
    assert len(caplog.records) == 1, caplog.text
    assert f"{path}: column 'timestamp': time steps jitter by up to 5000.0% of their median" in (
        caplog.text
    )
    assert "2 of 4999 steps off by more than 1 %, the first at line 3002" in caplog.text


def test_a_steady_long_file_is_not_warned_about(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(csv_files, "TIME_ROWS", 700, raising=False)
    times = np.cumsum(np.full(3000, 1 / 12000))  # summed: float noise, not jitter
    path = write(tmp_path / "steady.csv", csv_text(times, RNG.normal(size=(3, 3000))))
    with caplog.at_level(logging.WARNING, logger="biosig"):
        assert open_one(path).fs == 12000
    assert not caplog.records, caplog.text


# -------------------------------------------------------------------------- streaming


def test_chunks_equal_a_whole_read_across_scan_blocks(tmp_path: Path) -> None:
    # over 1 MiB: the byte scan's counts carry across blocks
    times, data = table(40_000)
    text = csv_text(times, data, newline="\r\n")
    path = write(tmp_path / "long.csv", b"\xef\xbb\xbf" + text.encode()[:-2])  # BOM, no last EOL
    assert path.stat().st_size > csv_files.SCAN_BYTES
    rec = open_one(path)
    assert rec.n_samples == 40_000 and rec.fs == 1000
    pieces = list(rec.chunks(7001))
    assert [p.shape[1] for p in pieces] == [7001] * 5 + [4995]
    assert all(p.dtype == np.float32 and p.shape[0] == 3 for p in pieces)
    np.testing.assert_array_equal(np.concatenate(pieces, axis=1), whole(rec))
    np.testing.assert_allclose(whole(rec), data, rtol=1e-6)


def test_blank_lines_are_skipped_and_empty_cells_are_gaps(tmp_path: Path) -> None:
    text = "\n t,x,y\n0,1,2\n\n0.1,,4\n   \n0.2,5,6\n\n"
    rec = open_one(write(tmp_path / "gaps.csv", text))
    assert rec.n_samples == 3 and rec.fs == 10
    np.testing.assert_array_equal(whole(rec, 2), [[1, np.nan, 5], [2, 4, 6]])


# ----------------------------------------------------------------------------- errors


def test_a_non_numeric_cell_is_named_with_its_line(tmp_path: Path) -> None:
    times, data = table(30_000)
    lines = csv_text(times, data).splitlines()
    lines[25_000] = lines[25_000].rsplit(",", 1)[0] + ",n/a?"
    lines.insert(10, "")  # a blank line before it still counts as a line
    path = write(tmp_path / "bad.csv", "\n".join(lines) + "\n")
    rec = open_one(path)
    with pytest.raises(
        RecordingError, match=rf"^{path}: line 25002: accZ is 'n/a\?', not a number$"
    ):
        whole(rec, 10_000)


@pytest.mark.parametrize("extra", [",9.5", ""])
def test_a_ragged_row_is_named_with_its_line(tmp_path: Path, extra: str) -> None:
    times, data = table(30_000)
    lines = csv_text(times, data).splitlines()
    lines[20_000] = (lines[20_000] + extra) if extra else lines[20_000].rsplit(",", 1)[0]
    path = write(tmp_path / "ragged.csv", "\n".join(lines) + "\n")
    fields = 5 if extra else 3
    with pytest.raises(
        RecordingError, match=rf"^{path}: line 20001: {fields} fields where the header has 4$"
    ):
        open_one(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file (no rows)"),
        (b"\n\n  \n", "empty file (no rows)"),
        (b"time,x,y\n", "holds a header but no rows"),
        (b"\x89HDF\r\n\x1a\n\x00\x00", "a binary file, not CSV or TSV text"),
        (b"t,x\n0,1\n0.1,2,3,4\n0.2\n", "line 3: 4 fields where the others have 2"),
        (b"time\n0.0\n0.1\n", "no numeric column besides time (columns: time)"),
    ],
)
def test_unreadable_files_are_one_line_errors(tmp_path: Path, content: bytes, message: str):
    path = write(tmp_path / "broken.csv", content)
    with pytest.raises(RecordingError) as excinfo:
        open_one(path, fs=100)
    assert str(excinfo.value) == f"{path}: {message}"


def test_directories_are_searched_for_csv_tsv_and_mat(tmp_path: Path) -> None:
    times, data = table()
    for name in ("a/x.csv", "a/y.TSV", "b/z.txt", "b/labels.tsv", "b/notes.md", "b/.hidden.csv"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        write(tmp_path / name, csv_text(times, data))
    found = plugin().find([tmp_path])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a/x.csv", "a/y.TSV"]
    assert plugin().find([tmp_path / "b" / "z.txt"]) == [tmp_path / "b" / "z.txt"]  # named
    with pytest.raises(BiosigError, match=r"notes\.md: not a CSV/TSV/TXT or MATLAB \.mat file"):
        plugin().find([tmp_path / "b" / "notes.md"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(BiosigError, match=r"empty: no \.csv, \.tsv, \.mat files found"):
        plugin().find([tmp_path / "empty"])
