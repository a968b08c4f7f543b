"""Label tables: ``id<TAB>class`` (whole recordings) and ``id<TAB>start<TAB>stop<TAB>class``
(segments) read into labelled intervals by ``table_intervals`` and ``segment_intervals``."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from biosig import ArrayRecording, BiosigError, LabelledInterval, segment_intervals, table_intervals
from biosig.plugin.labels import parse_span, restrict_to_span

#: Three recordings of different lengths (samples).
LENGTHS = {"100": 1000, "101": 650, "a7": 300}


@pytest.fixture
def recordings() -> list[ArrayRecording]:
    return [
        ArrayRecording(rid, np.zeros((1, n), dtype=np.float32), 360.0) for rid, n in LENGTHS.items()
    ]


def write(directory: Path, text: str, name: str = "labels.tsv") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def whole(rid: str, label: str) -> LabelledInterval:
    return LabelledInterval(rid, 0, LENGTHS[rid], label)


# ---------------------------------------------------------------------------- two fields


@pytest.mark.parametrize(
    "text",
    [
        "100\tN\n101\tAF\n",
        "id\tclass\n100\tN\n101\tAF\n",
        "# made by hand\n\n100,N\n101,AF\n",
    ],
    ids=["tab", "header", "comma-and-comment"],
)
def test_two_fields_label_whole_recordings(tmp_path: Path, recordings, text: str) -> None:
    intervals = table_intervals(write(tmp_path, text), recordings)
    assert intervals == [whole("100", "N"), whole("101", "AF")]


def test_two_fields_case_insensitive(tmp_path: Path, recordings) -> None:
    path = write(tmp_path, "A7\tN\n")
    with pytest.raises(BiosigError, match="none of its 1 ids match a recording"):
        table_intervals(path, recordings)
    assert table_intervals(path, recordings, case_insensitive=True) == [whole("a7", "N")]


def test_two_fields_unmatched_ids_warn(tmp_path: Path, recordings, biosig_log) -> None:
    path = write(tmp_path, "100\tN\nghost\tAF\n")
    assert table_intervals(path, recordings) == [whole("100", "N")]
    assert f"{path}: 1 labelled ids match no recording" in biosig_log.messages
    assert f"{path}: 2 recordings have no label and are left out" in biosig_log.messages


def test_two_fields_nothing_matched_is_an_error(tmp_path: Path, recordings) -> None:
    path = write(tmp_path, "x\tN\ny\tAF\n")
    with pytest.raises(BiosigError, match=r"none of its 2 ids match a recording") as error:
        table_intervals(path, recordings)
    assert str(error.value).startswith(f"{path}: ")
    assert "recordings start 100, 101, a7" in str(error.value)


def test_a_segment_line_in_a_two_field_table_names_its_line(tmp_path: Path, recordings) -> None:
    path = write(tmp_path, "100\tN\n\n101\t0\t10\tAF\n")
    with pytest.raises(
        BiosigError, match=rf"^{re.escape(str(path))}:3: expected 'id<TAB>class', got 4 fields"
    ):
        table_intervals(path, recordings)


# ---------------------------------------------------------------------------- four fields


@pytest.mark.parametrize(
    "text",
    [
        "100\t0\t360\tN\n100\t360\t1000\tAF\n101\t10\t650\tN\n",
        "recording\tstart\tstop\tlabel\n100\t0\t360\tN\n100\t360\t1000\tAF\n101\t10\t650\tN\n",
        "recording,start,stop,label\n100,0,360,N\n100,360,1000,AF\n101,10,650,N\n",
        "# segments\n\n100, 0, 360, N\n100 ,360,1000,AF\n\n101,10,650,N\n",
        "\ufeffrecording\tstart\tstop\tlabel\r\n100\t0\t360\tN\r\n100\t360\t1000\tAF\r\n"
        "101\t10\t650\tN\r\n",
    ],
    ids=["tab", "tab-header", "comma-header", "comma-comments-spaces", "bom-crlf"],
)
def test_four_fields_give_segments(tmp_path: Path, recordings, text: str) -> None:
    path = write(tmp_path, text)
    expected = [
        LabelledInterval("100", 0, 360, "N"),
        LabelledInterval("100", 360, 1000, "AF"),
        LabelledInterval("101", 10, 650, "N"),
    ]
    assert table_intervals(path, recordings) == expected
    assert segment_intervals(path, recordings) == expected


def test_segments_case_insensitive_keep_the_recording_id(tmp_path: Path, recordings) -> None:
    path = write(tmp_path, "A7\t5\t20\tN\n")
    with pytest.raises(BiosigError, match="no segment belongs to one of the 3 recordings"):
        table_intervals(path, recordings)
    assert table_intervals(path, recordings, case_insensitive=True) == [
        LabelledInterval("a7", 5, 20, "N")
    ]


@pytest.mark.parametrize(
    ("segment", "where"),
    [
        ("101\t600\t651", "600-651"),  # one past the end
        ("101\t-1\t10", "-1-10"),  # before the start
        ("101\t700\t800", "700-800"),  # wholly after
        ("101\t20\t20", "20-20"),  # empty
        ("101\t30\t20", "30-20"),  # reversed
    ],
)
def test_a_segment_outside_its_recording_names_its_line(
    tmp_path: Path, recordings, segment: str, where: str
) -> None:
    path = write(
        tmp_path, f"recording\tstart\tstop\tlabel\n# note\n100\t0\t1000\tN\n{segment}\tAF\n"
    )
    with pytest.raises(BiosigError) as error:
        table_intervals(path, recordings)
    assert str(error.value) == (f"{path}:4: segment {where} is not inside recording 101 (0-650)")


def test_a_segment_may_end_at_the_recording_end(tmp_path: Path, recordings) -> None:
    path = write(tmp_path, "a7\t0\t300\tN\n")
    assert table_intervals(path, recordings) == [whole("a7", "N")]


@pytest.mark.parametrize("bad", ["1.5", "ten", "0x10"])
def test_a_non_integer_start_after_the_first_line_is_an_error(
    tmp_path: Path, recordings, bad: str
) -> None:
    path = write(tmp_path, f"100\t0\t10\tN\n100\t{bad}\t20\tAF\n")
    with pytest.raises(
        BiosigError, match=rf"^{re.escape(str(path))}:2: start and stop must be whole sample"
    ):
        table_intervals(path, recordings)


def test_a_non_integer_stop_after_a_header_is_an_error(tmp_path: Path, recordings) -> None:
    path = write(tmp_path, "recording\tstart\tstop\tlabel\n100\t0\t1e3\tN\n")
    with pytest.raises(BiosigError, match=rf"^{re.escape(str(path))}:2: .* got '0' and '1e3'"):
        table_intervals(path, recordings)


def test_a_second_header_line_is_an_error(tmp_path: Path, recordings) -> None:
    path = write(tmp_path, "recording\tstart\tstop\tlabel\nrecording\tstart\tstop\tlabel\n")
    with pytest.raises(
        BiosigError, match=rf"^{re.escape(str(path))}:2: start and stop must be whole sample"
    ):
        table_intervals(path, recordings)


@pytest.mark.parametrize("line", ["101\t0\t10", "101\t0\t10\tN\textra"])
def test_a_line_of_another_width_in_a_segment_table_is_an_error(
    tmp_path: Path, recordings, line: str
) -> None:
    path = write(tmp_path, f"100\t0\t10\tN\n{line}\n")
    width = len(line.split("\t"))
    with pytest.raises(
        BiosigError, match=rf"^{re.escape(str(path))}:2: expected 'id<TAB>start<TAB>stop<TAB>class'"
    ):
        table_intervals(path, recordings)
    with pytest.raises(BiosigError, match=f"got {width} fields"):
        segment_intervals(path, recordings)


def test_segments_of_unknown_ids_warn(tmp_path: Path, recordings, biosig_log) -> None:
    path = write(tmp_path, "100\t0\t10\tN\nghost\t0\t10\tN\nghost\t10\t20\tN\nother\t0\t5\tAF\n")
    assert table_intervals(path, recordings) == [LabelledInterval("100", 0, 10, "N")]
    assert biosig_log.messages == [f"{path}: 2 ids match no recording"]


def test_segments_matching_nothing_are_an_error(tmp_path: Path, recordings) -> None:
    path = write(tmp_path, "recording\tstart\tstop\tlabel\nghost\t0\t10\tN\n")
    with pytest.raises(BiosigError) as error:
        table_intervals(path, recordings)
    assert str(error.value) == f"{path}: no segment belongs to one of the 3 recordings"


def test_a_header_alone_is_an_error(tmp_path: Path, recordings) -> None:
    path = write(tmp_path, "recording\tstart\tstop\tlabel\n")
    with pytest.raises(BiosigError, match="no segment belongs"):
        table_intervals(path, recordings)


# ---------------------------------------------------------------------------- files


def test_a_missing_table_is_one_error(tmp_path: Path, recordings) -> None:
    path = tmp_path / "nope.tsv"
    with pytest.raises(BiosigError) as error:
        table_intervals(path, recordings)
    assert str(error.value) == f"{path}: labels file not found"


def test_an_empty_table_is_an_error(tmp_path: Path, recordings) -> None:
    path = write(tmp_path, "# nothing yet\n\n")
    with pytest.raises(BiosigError, match="labels file holds no labels"):
        table_intervals(path, recordings)


def test_an_undecodable_table_is_one_error(tmp_path: Path, recordings) -> None:
    path = tmp_path / "labels.tsv"
    path.write_bytes(b"100\t0\t10\t\xff\xfe\n")
    with pytest.raises(BiosigError, match="cannot read labels file"):
        table_intervals(path, recordings)


# ---------------------------------------------------------------------------- spans


@pytest.mark.parametrize(("text", "span"), [("0:0.7", (0.0, 0.7)), ("0.75:1", (0.75, 1.0))])
def test_parse_span(text: str, span) -> None:
    assert parse_span(text) == span


@pytest.mark.parametrize("text", ["0.7", "0.7:0.2", "-1:0.5", "0:1.5", "a:b", "0.5:0.5"])
def test_parse_span_refuses_what_is_no_span(text: str) -> None:
    with pytest.raises(BiosigError, match="--span"):
        parse_span(text)


def test_restrict_to_span_clips_intervals_and_keeps_whole_forecasts() -> None:
    recs = [ArrayRecording("r", np.zeros((1, 1000), dtype=np.float32), 1.0)]
    intervals = [
        LabelledInterval("r", 0, 1000, "a"),
        LabelledInterval("r", 100, 200, "b"),
        LabelledInterval("r", 690, 691, "up", label_end=700),  # horizon ends at the edge
        LabelledInterval("r", 695, 696, "up", label_end=705),  # its future crosses it
    ]
    first = restrict_to_span(intervals, recs, (0.0, 0.7))
    assert first == [
        LabelledInterval("r", 0, 700, "a"),
        LabelledInterval("r", 100, 200, "b"),
        LabelledInterval("r", 690, 691, "up", label_end=700),
    ]
    rest = restrict_to_span(intervals, recs, (0.7, 1.0))
    assert rest == [LabelledInterval("r", 700, 1000, "a")]
    with pytest.raises(BiosigError, match="no labelled part"):
        restrict_to_span(intervals[1:2], recs, (0.5, 1.0))
