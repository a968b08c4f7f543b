"""The ``ecg`` and ``eeg`` plugins on the real records of ``../shared/data/wfdb``: finding
records, chunk-invariant preprocessing, the three annotation label styles, grouping by
patient, the user's train-then-predict commands, and one-line errors for broken records."""

from __future__ import annotations

import math
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from biosig_wfdb.records import find_wfdb_records

from biosig import BiosigError, Recording, RecordingError
from biosig.data.windows import make_preprocessor
from biosig.plugin.contract import iter_recordings
from biosig.plugin.registry import get_plugin

CPSC_AF_EPISODES = {
    "data_8_2": 1,
    "data_8_3": 1,
    "data_8_4": 1,
    "data_21_7": 0,
    "data_21_8": 0,
    "data_21_9": 0,
    "data_101_6": 4,
    "data_101_8": 2,
    "data_101_9": 1,
}


@pytest.fixture(scope="module")
def wfdb_dir(shared_data: Path) -> Path:
    return shared_data / "wfdb"


def plugin(name: str = "ecg", **options):
    p = get_plugin(name)
    p.configure(options)
    return p


def records(p, *inputs: Path) -> list[Recording]:
    return list(iter_recordings(p, p.find(list(inputs))))


def every_record(wfdb_dir: Path) -> list[Path]:
    headers = [
        h
        for folder in ("mitdb", "cpsc2021", "formats", "eeg")
        for h in find_wfdb_records(wfdb_dir / folder)
    ]
    return [*headers, wfdb_dir / "eeg" / "S001R04.edf"]


def preprocessed(p, rec: Recording, fs_out: float, chunk: int) -> np.ndarray:
    preprocess = make_preprocessor(p, rec, fs_out)
    parts = [preprocess(block) for block in rec.chunks(chunk)]
    parts.append(preprocess.flush())
    return np.concatenate(parts, axis=1)


# ------------------------------------------------------------------------------ reading


def test_every_record_preprocesses_the_same_in_one_chunk_or_eight(wfdb_dir: Path) -> None:
    paths = every_record(wfdb_dir)
    assert len(paths) == 20  # the README's 19 records and files, and the numerics record
    for path in paths:
        for name in ("ecg", "eeg"):
            p = plugin(name, notch=50.0)
            (rec,) = records(p, path)
            fs_out = p.defaults.sample_rate
            if path.name.endswith("n.hea"):  # the numerics record: one frame a minute
                with pytest.raises(RecordingError, match="0.0166667 Hz, too slowly"):
                    make_preprocessor(p, rec, fs_out)
                continue
            whole = preprocessed(p, rec, fs_out, rec.n_samples)
            pieces = preprocessed(p, rec, fs_out, math.ceil(rec.n_samples / 8))
            assert whole.shape == (len(rec.channels), math.ceil(rec.n_samples * fs_out / rec.fs))
            np.testing.assert_allclose(pieces, whole, atol=1e-6, err_msg=f"{path} ({name})")
            assert np.isnan(whole).sum() == np.isnan(pieces).sum()


def test_band_pass_removes_baseline_and_keeps_qrs(wfdb_dir: Path) -> None:
    p = plugin()
    (rec,) = records(p, wfdb_dir / "mitdb" / "100.hea")
    raw = next(rec.chunks(36000))
    out = preprocessed(p, rec, 360.0, 36000)[:, :36000]
    # MLII sits on a baseline of about -0.3 mV; filtered, the signal is centred on zero
    assert abs(np.median(raw[0])) > 0.2 and abs(np.median(out[0, 3600:])) < 0.05
    # the R peaks (about 1 mV above baseline) survive the 40 Hz low-pass nearly whole
    assert np.percentile(out[0, 3600:], 99.9) > 0.6


def test_gaps_stay_missing_after_preprocessing(wfdb_dir: Path) -> None:
    p = plugin()
    record = wfdb_dir / "formats/multi-segment/s25047/s25047-2704-05-04-10-44.hea"
    (rec,) = records(p, record)
    raw = np.concatenate(list(rec.chunks(125 * 600)), axis=1)
    out = preprocessed(p, rec, 360.0, 125 * 600)
    # ABP is missing 82 % of the time; resampled to 360 Hz it stays missing there
    assert np.isnan(raw[2]).mean() == pytest.approx(0.82, abs=0.01)
    assert np.isnan(out[2]).mean() == pytest.approx(np.isnan(raw[2]).mean(), abs=0.01)
    assert np.isfinite(out[~np.isnan(out)]).all()


def test_directory_reads_each_record_once_from_the_preferred_format(wfdb_dir: Path) -> None:
    assert [f.name for f in plugin("eeg").find([wfdb_dir / "eeg"])] == ["S001R04.edf"]
    assert [f.name for f in plugin("ecg").find([wfdb_dir / "eeg"])] == ["S001R04.hea"]


def test_records_named_as_wfdb_tools_name_them(wfdb_dir: Path) -> None:
    p = plugin()
    assert p.find([str(wfdb_dir / "mitdb" / "100")]) == [wfdb_dir / "mitdb" / "100.hea"]
    assert p.find([wfdb_dir / "mitdb" / "100.dat"]) == [wfdb_dir / "mitdb" / "100.hea"]


def test_a_glob_over_a_records_files_gives_its_header_once(wfdb_dir: Path) -> None:
    p = plugin()
    found = p.find([str(wfdb_dir / "cpsc2021" / "data_8_4*")])  # .hea .dat .atr
    assert found == [wfdb_dir / "cpsc2021" / "data_8_4.hea"]
    both = p.find([wfdb_dir / "mitdb" / "100.dat", wfdb_dir / "mitdb" / "100.hea"])
    assert both == [wfdb_dir / "mitdb" / "100.hea"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"band": "40,0.5"}, "--band 40,0.5: give 'low,high' with low < high"),
        ({"band": "40"}, "--band: expected 'low,high'"),
        ({"notch": "-60"}, "--notch -60: give a frequency"),
        ({"channels": "x"}, "--channels x: give channel indices"),
    ],
)
def test_bad_options_are_refused_before_reading(options: dict, message: str) -> None:
    with pytest.raises(BiosigError, match=message):
        plugin(**options)


def test_channels_chosen_by_index(wfdb_dir: Path) -> None:
    (rec,) = records(plugin(channels="1"), wfdb_dir / "mitdb" / "100.hea")
    assert rec.channels == ("V5",)


# ------------------------------------------------------------------------------- labels


def test_beats_map_to_aami_classes(wfdb_dir: Path) -> None:
    p = plugin()
    recs = records(p, wfdb_dir / "mitdb" / "100.hea")
    beats = p.labels("beats", recs)
    assert Counter(iv.label for iv in beats) == {"N": 2239, "S": 33, "V": 1}
    assert all(iv.stop == iv.start + 1 for iv in beats)  # events: one window centred on each


def test_rhythm_segments_follow_cpsc_conventions(wfdb_dir: Path) -> None:
    p = plugin()
    recs = records(p, wfdb_dir / "cpsc2021")
    intervals = p.labels("rhythm", recs)
    episodes = Counter(iv.recording_id for iv in intervals if iv.label == "AFIB")
    assert {r.id: episodes.get(r.id, 0) for r in recs} == CPSC_AF_EPISODES
    by_id = {r.id: r for r in recs}
    for iv in intervals:
        assert 0 <= iv.start < iv.stop <= by_id[iv.recording_id].n_samples
    # persistent AF: one episode over the whole record, the closing "(N" at the last sample
    # opening nothing; data_101_6's mark at sig_len (one past the end) closes its last one
    (whole,) = [iv for iv in intervals if iv.recording_id == "data_8_2"]
    assert (whole.start, whole.stop, whole.label) == (0, 43092, "AFIB")
    last = max((iv for iv in intervals if iv.recording_id == "data_101_6"), key=lambda i: i.start)
    assert (last.label, last.stop) == ("AFIB", 22355)
    # records without any rhythm mark are unlabelled unless --unannotated names a class
    assert "data_21_7" not in {iv.recording_id for iv in intervals}
    with_default = plugin(unannotated="N").labels("rhythm", recs)
    assert [
        (iv.start, iv.stop, iv.label) for iv in with_default if iv.recording_id == "data_21_7"
    ] == [(0, 47201, "N")]


def test_eeg_events_from_edf_and_from_wfdb_agree(wfdb_dir: Path) -> None:
    p = plugin("eeg")
    from_edf = p.labels("events", records(p, wfdb_dir / "eeg" / "S001R04.edf"))
    from_wfdb = p.labels("events", records(p, wfdb_dir / "eeg" / "S001R04.hea"))
    assert Counter(iv.label for iv in from_edf) == {"T0": 15, "T1": 8, "T2": 7}
    spans = [(iv.start, iv.stop, iv.label) for iv in from_edf]
    assert spans[0][0] == 0 and all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
    assert [(iv.start, iv.label) for iv in from_wfdb] == [(s, lab) for s, _, lab in spans]


def test_missing_annotation_file_is_named(wfdb_dir: Path) -> None:
    p = plugin(annotator="nope")
    with pytest.raises(BiosigError, match=r"100\.nope: annotation file not found"):
        p.labels("beats", records(p, wfdb_dir / "mitdb" / "100.hea"))


def test_edf_offers_events_only(wfdb_dir: Path) -> None:
    p = plugin("eeg")
    with pytest.raises(BiosigError, match="use --labels events"):
        p.labels("beats", records(p, wfdb_dir / "eeg" / "S001R04.edf"))


def test_group_by_patient_pattern(wfdb_dir: Path) -> None:
    p = plugin(group_pattern=r"data_(\d+)_")
    groups = {p.group(r) for r in records(p, wfdb_dir / "cpsc2021")}
    assert groups == {"8", "21", "101"}
    (rec,) = records(p, wfdb_dir / "mitdb" / "100.hea")
    with pytest.raises(BiosigError, match="does not match --group-pattern"):
        p.group(rec)
    with pytest.raises(BiosigError, match="not a regular expression"):
        plugin(group_pattern="data_(").group(rec)
    assert plugin().group(rec) == "100"


# ---------------------------------------------------------------------- the user's commands


def link_record(source: Path, directory: Path) -> Path:
    """Symlink a record's files into ``directory`` (the shared files are never copied into
    the project); returns the header's link."""
    for path in source.parent.glob(source.name + ".*"):
        (directory / path.name).symlink_to(path)
    return directory / (source.name + ".hea")


def test_train_on_cpsc_by_patient_then_predict_verbatim(wfdb_dir: Path, in_tmp: Path, run_cli):
    trained = run_cli(
        "train",
        "--plugin",
        "ecg",
        "--input",
        wfdb_dir / "cpsc2021",
        "--labels",
        "rhythm",
        "--unannotated",
        "N",
        "--group-pattern",
        r"data_(\d+)_",
        "--preset",
        "tiny",
        "--epochs",
        "2",
        "--hop",
        "3600",
    )
    assert trained.code == 0, trained.err
    # three patients: only holding out patient 101 leaves both rhythms on both sides
    assert "validating on" in trained.out and "classes: AFIB, N" in trained.out
    link_record(wfdb_dir / "cpsc2021" / "data_101_6", in_tmp)

    result = run_cli("predict", "--plugin", "ecg", "data_101_6.hea")
    assert result.code == 0, result.err
    header, row = result.out.splitlines()
    columns = ["recording", "file", "label", "confidence", "n_windows", "p_AFIB", "p_N"]
    assert header.split("\t") == columns
    fields = dict(zip(columns, row.split("\t"), strict=True))
    # 22355 samples at 200 Hz are 40239 at 360 Hz: 12 windows of 3600 at the model's hop
    assert fields["recording"] == "data_101_6" and fields["file"] == "data_101_6.hea"
    assert fields["label"] in ("AFIB", "N") and fields["n_windows"] == "12"
    assert float(fields["p_AFIB"]) + float(fields["p_N"]) == pytest.approx(1, abs=1e-5)

    out = run_cli("predict", "--plugin", "ecg", "data_101_6.hea", "--out", "pred")
    assert out.code == 0, out.err
    segments = (in_tmp / "pred" / "segments.tsv").read_text().splitlines()[1:]
    bounds = [line.split("\t")[2:6] for line in segments]  # start end start_s end_s
    assert bounds[0][0] == "0" and bounds[-1][1] == "22355"
    assert bounds[0][2] == "0" and bounds[-1][3] == "111.775"  # 22355 samples at 200 Hz


BROKEN = {
    "missing-dat": (("100.hea",), "beats", "100.dat"),
    "malformed-header": (("100.dat", "100.atr"), "beats", "100.hea"),
    "missing-annotations": (("100.hea", "100.dat"), "beats", "100.atr: annotation file not found"),
    "empty-annotations": (("100.hea", "100.dat"), "beats", "100.atr: empty annotation file"),
    "unparseable-gain": (
        ("100.hea", "100.dat", "100.atr"),
        "beats",
        "100.hea: malformed WFDB header (gain 'abc/mV'",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_records_fail_in_one_line(case: str, wfdb_dir: Path, in_tmp: Path, run_cli):
    files, labels, fragment = BROKEN[case]
    for name in files:
        shutil.copy(wfdb_dir / "mitdb" / name, in_tmp / name)
    if case == "malformed-header":
        (in_tmp / "100.hea").write_text("100 two 360 650000\n100.dat 212 200 11\n")
    if case == "empty-annotations":
        (in_tmp / "100.atr").write_bytes(b"")
    if case == "unparseable-gain":  # wfdb would silently take 200 per mV
        header = (in_tmp / "100.hea").read_text()
        (in_tmp / "100.hea").write_text(header.replace(" 200 11 1024", " abc/mV 11 1024", 1))
    result = run_cli("train", "--plugin", "ecg", "--input", "100.hea", "--labels", labels)
    assert result.code != 0
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], lines
    assert "Traceback" not in result.err and not (in_tmp / "runs").exists()


def test_records_rhythm_labels_leave_out_are_named_with_the_hint(
    wfdb_dir: Path, biosig_log: pytest.LogCaptureFixture
) -> None:
    from biosig.plugin.labels import warn_unlabelled

    p = plugin()
    recs = records(p, wfdb_dir / "cpsc2021")
    intervals = p.labels("rhythm", recs)
    left = sorted({r.id for r in recs} - {iv.recording_id for iv in intervals})
    assert "data_21_7" in left
    with biosig_log.at_level("WARNING", logger="biosig"):
        warn_unlabelled("rhythm", recs, intervals, p.unlabelled_hint)
    (message,) = [r.getMessage() for r in biosig_log.records]
    assert message.startswith(f"--labels rhythm: {len(left)} of {len(recs)} recordings have")
    assert all(name in message for name in left[:5])
    assert message.endswith(
        "labelled only when --unannotated names its class, e.g. --unannotated N"
    )
    biosig_log.clear()
    with biosig_log.at_level("WARNING", logger="biosig"):
        warn_unlabelled("rhythm", recs, plugin(unannotated="N").labels("rhythm", recs))
    assert biosig_log.records == []  # every record labelled: nothing to say
