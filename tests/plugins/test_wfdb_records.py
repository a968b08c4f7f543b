"""The WFDB and EDF readers of the ecg/eeg plugins, against the real records in
``../shared/data/wfdb`` (see its README.md, whose facts these tests mirror).

Every record is read whole and in pieces, compared with wfdb's own whole-record read, and
its damaged variants (written into ``tmp_path``) must fail with a message naming the file.
"""

from __future__ import annotations

import math
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pyedflib
import pytest
import wfdb
from biosig_wfdb import records as records_module
from biosig_wfdb.edf import EdfRecording, open_edf
from biosig_wfdb.records import WfdbRecording, find_wfdb_records, open_wfdb
from scipy.signal import resample_poly

from biosig import BiosigError, Recording, RecordingError

CPSC = ("I", "II")
EEG_FIRST, EEG_LAST = ("Fc5.", "Fc3.", "Fc1."), ("O1..", "Oz..", "O2..", "Iz..")
PTB = ("i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6", "vx", "vy", "vz")
MIMIC_041 = ("III", "I", "V", "ABP", "PAP", "PLETH", "RESP")
S25047 = "formats/multi-segment/s25047/s25047-2704-05-04-10-44"
NUMERICS = ("HR", "PULSE", "RESP", "SpO2", "NBPSys", "NBPDias", "NBPMean")

#: record (relative to the wfdb folder, no extension) -> (fs, n_samples, channel names), as
#: the README gives them. For the EEG record only the ends of its 64 names are listed.
RECORDS: dict[str, tuple[float, int, tuple[str, ...]]] = {
    "mitdb/100": (360, 650000, ("MLII", "V5")),
    "cpsc2021/data_8_2": (200, 43092, CPSC),
    "cpsc2021/data_8_3": (200, 53611, CPSC),
    "cpsc2021/data_8_4": (200, 8235, CPSC),
    "cpsc2021/data_21_7": (200, 47201, CPSC),
    "cpsc2021/data_21_8": (200, 103634, CPSC),
    "cpsc2021/data_21_9": (200, 75589, CPSC),
    "cpsc2021/data_101_6": (200, 22355, CPSC),
    "cpsc2021/data_101_8": (200, 24244, CPSC),
    "cpsc2021/data_101_9": (200, 49839, CPSC),
    "eeg/S001R04": (160, 20000, EEG_FIRST + EEG_LAST),
    # 75000 frames of 4 MCL1 samples: 500 Hz; ABP and RESP (125 Hz) are upsampled.
    "formats/03700181": (500, 300000, ("MCL1", "ABP", "RESP")),
    "formats/s0010_re": (1000, 38400, PTB),
    "formats/p10143": (500, 450000, ("FECG", "UC")),
    "formats/3000003_0003": (125, 1028, ("II", "V")),
    # 14400 frames at 62.4725 Hz; II/III/V have 4 samples per frame.
    "formats/mixedsignals": (62.4725 * 4, 14400 * 4, ("II", "III", "V", "ABP", "Pleth", "Resp")),
    "formats/multi-segment/041s/041s": (500, 2000 * 4, MIMIC_041),
    S25047: (125, 543240, ("II", "V", "ABP")),
    # Not in the README's table: the numerics record beside s25047 (one frame a minute).
    S25047 + "n": (0.0166666666667, 72, NUMERICS),
}
MULTI_RATE = ("formats/03700181", "formats/mixedsignals", "formats/multi-segment/041s/041s")


@pytest.fixture(scope="module")
def wfdb_dir(shared_data: Path) -> Path:
    return shared_data / "wfdb"


def read_all(recording: Recording, n: int) -> np.ndarray:
    """The whole recording read in chunks of ``n``, checking each chunk's shape and type."""
    blocks = list(recording.chunks(n))
    for block in blocks[:-1]:
        assert block.shape == (len(recording.channels), n)
    assert 0 < blocks[-1].shape[1] <= n
    assert all(block.dtype == np.float32 for block in blocks)
    return np.concatenate(blocks, axis=1)


def copy_record(source: Path, directory: Path, *suffixes: str) -> Path:
    """Copy a record's files into ``directory`` (writable); return the copied header."""
    for suffix in suffixes:
        target = directory / f"{source.name}{suffix}"
        shutil.copyfile(f"{source}{suffix}", target)
    return directory / f"{source.name}.hea"


# --- metadata and samples of every record ----------------------------------------------


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_record_metadata_matches_readme(wfdb_dir: Path, name: str) -> None:
    fs, n_samples, names = RECORDS[name]
    recording = open_wfdb(wfdb_dir / f"{name}.hea")
    assert isinstance(recording, Recording)
    assert recording.id == Path(name).name
    assert recording.source == wfdb_dir / f"{name}.hea"
    assert recording.record_path == wfdb_dir / name
    assert recording.fs == pytest.approx(fs)
    assert recording.n_samples == n_samples
    if name == "eeg/S001R04":
        assert len(recording.channels) == 64
        assert recording.channels[:3] + recording.channels[-4:] == names
        assert set(recording.units) == {"uV"}
    else:
        assert recording.channels == names
    assert len(recording.units) == len(recording.native_rates) == len(recording.channels)


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_whole_and_chunked_reads_agree(wfdb_dir: Path, name: str) -> None:
    recording = open_wfdb(wfdb_dir / f"{name}.hea")
    whole = read_all(recording, recording.n_samples)
    assert whole.shape == (len(recording.channels), recording.n_samples)
    pieces = list(recording.chunks(math.ceil(recording.n_samples / 8)))
    assert len(pieces) == 8
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), whole, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", MULTI_RATE)
def test_multi_rate_chunking_off_frame_boundaries(wfdb_dir: Path, name: str) -> None:
    # 997 samples is no whole number of 4-sample frames: blocks end mid-frame.
    recording = open_wfdb(wfdb_dir / f"{name}.hea")
    whole = read_all(recording, recording.n_samples)
    np.testing.assert_allclose(read_all(recording, 997), whole, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", [n for n in sorted(RECORDS) if n not in MULTI_RATE])
def test_single_rate_samples_equal_wfdb(wfdb_dir: Path, name: str) -> None:
    recording = open_wfdb(wfdb_dir / f"{name}.hea")
    expected = wfdb.rdrecord(str(wfdb_dir / name)).p_signal.T
    assert recording.native_rates == (recording.fs,) * len(recording.channels)
    np.testing.assert_allclose(
        read_all(recording, 100_000), expected.astype(np.float32), atol=1e-6, rtol=0
    )


@pytest.mark.parametrize("name", MULTI_RATE)
def test_multi_rate_is_upsampled_not_averaged(wfdb_dir: Path, name: str) -> None:
    """Fastest channels come out as stored; slower ones equal a resample_poly of the whole
    channel, so the chunk margins hide every block edge."""
    recording = open_wfdb(wfdb_dir / f"{name}.hea")
    full = wfdb.rdrecord(str(wfdb_dir / name), smooth_frames=False)
    top = max(full.samps_per_frame)
    assert recording.native_rates == tuple(full.fs * s for s in full.samps_per_frame)
    got = read_all(recording, 3001)
    for row, (x, spf) in enumerate(zip(full.e_p_signal, full.samps_per_frame, strict=True)):
        expected = x if spf == top else resample_poly(x, top // spf, 1)
        assert len(expected) == recording.n_samples
        np.testing.assert_allclose(got[row], expected.astype(np.float32), atol=1e-6, rtol=0)
    assert any(spf < top for spf in full.samps_per_frame)


def test_03700181_channels_and_rates(wfdb_dir: Path) -> None:
    header = wfdb_dir / "formats/03700181.hea"
    assert open_wfdb(header).native_rates == (500, 125, 125)
    # Without MCL1 nothing is upsampled: the record runs at its 125 Hz frame rate.
    slow = open_wfdb(header, channels=[1, 2])
    assert (slow.fs, slow.n_samples, slow.channels) == (125, 75000, ("ABP", "RESP"))
    expected = wfdb.rdrecord(str(header.with_suffix("")), channels=[1, 2]).p_signal.T
    np.testing.assert_allclose(read_all(slow, 30000), expected, atol=1e-4, rtol=0)
    # Order and repetition follow the selection.
    picked = open_wfdb(header, channels=[2, 0, 2])
    assert (picked.channels, picked.fs) == (("RESP", "MCL1", "RESP"), 500)
    block = next(picked.chunks(4000))
    whole = next(open_wfdb(header).chunks(4000))
    np.testing.assert_array_equal(block, whole[[2, 0, 2]])


def test_mixedsignals_rates_and_gaps(wfdb_dir: Path) -> None:
    recording = open_wfdb(wfdb_dir / "formats/mixedsignals.hea")
    frame = 62.4725
    assert recording.native_rates == pytest.approx([frame * 4] * 3 + [frame * 2] * 2 + [frame])
    nan = np.isnan(read_all(recording, recording.n_samples)).mean(axis=1)
    np.testing.assert_allclose(nan[:3], 0.018, atol=0.001)  # README: II/III/V 1.8 % NaN
    assert nan[4] == nan[5] == 0


def test_multi_segment_gaps_are_nan(wfdb_dir: Path) -> None:
    recording = open_wfdb(wfdb_dir / f"{S25047}.hea")
    assert recording.units == ("mV", "mV", "mmHg")  # from the layout header
    data = read_all(recording, 125 * 600)
    nan = dict(zip(recording.channels, np.isnan(data).mean(axis=1), strict=True))
    assert nan["ABP"] == pytest.approx(0.82, abs=0.005)
    assert nan["II"] == pytest.approx(0.049, abs=0.001)
    # The record starts with a 25740-frame gap segment ("~"): nothing there.
    assert np.isnan(data[:, :25740]).all()
    assert not np.isnan(data[0, 25740:25800]).any()


def test_multi_segment_fixed_layout_crosses_segments(wfdb_dir: Path) -> None:
    recording = open_wfdb(wfdb_dir / "formats/multi-segment/041s/041s.hea")
    assert recording.native_rates == (500,) * 3 + (125,) * 4
    assert recording.units[:4] == ("mV", "mV", "mV", "mmHg")
    # A chunk straddling the segment boundary (frame 1000 = sample 4000).
    straddle = list(recording.chunks(3000))[1]
    seg2 = wfdb.rdrecord(
        str(wfdb_dir / "formats/multi-segment/041s/041s02"), smooth_frames=False
    ).e_p_signal
    np.testing.assert_allclose(straddle[0, 1000:], seg2[0][:2000], atol=1e-6)


def test_chunks_read_only_what_is_asked(wfdb_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []
    real = wfdb.rdrecord

    def spy(*args, **kwargs):
        calls.append((kwargs["sampfrom"], kwargs["sampto"]))
        assert kwargs["smooth_frames"] is False
        return real(*args, **kwargs)

    monkeypatch.setattr(records_module.wfdb, "rdrecord", spy)
    recording = open_wfdb(wfdb_dir / "mitdb/100.hea")
    assert calls == []  # opening reads the header only
    chunks = recording.chunks(1000)
    next(chunks), next(chunks)
    assert calls == [(0, 1000), (1000, 2000)]
    calls.clear()
    multi = open_wfdb(wfdb_dir / "formats/03700181.hea")
    assert next(multi.chunks(4000)).shape == (3, 4000)
    # 1000 frames plus a small margin for the resampling filter, never the whole record.
    ((start, stop),) = calls
    assert start == 0 and 1000 < stop < 1100


def test_comments_and_annotations_path(wfdb_dir: Path) -> None:
    labels = {
        "data_8_2": "persistent atrial fibrillation",
        "data_21_7": "non atrial fibrillation",
        "data_101_6": "paroxysmal atrial fibrillation",
    }
    for name, label in labels.items():
        assert open_wfdb(wfdb_dir / f"cpsc2021/{name}.hea").comments[0] == label
    recording = open_wfdb(wfdb_dir / "cpsc2021/data_101_6.hea")
    annotation = wfdb.rdann(str(recording.record_path), "atr")
    assert Counter(annotation.symbol) == {"N": 196, "+": 8}
    # The leading comment of this test header comes first.
    assert open_wfdb(wfdb_dir / "mitdb/100.hea").comments[0] == "unnecessary comment"


# --- finding records --------------------------------------------------------------------


def test_find_wfdb_records_skips_segments_and_layouts(wfdb_dir: Path) -> None:
    found = find_wfdb_records(wfdb_dir / "formats")
    assert [p.relative_to(wfdb_dir).as_posix() for p in found] == [
        "formats/03700181.hea",
        "formats/3000003_0003.hea",
        "formats/mixedsignals.hea",
        "formats/multi-segment/041s/041s.hea",
        f"{S25047}.hea",
        f"{S25047}n.hea",
        "formats/p10143.hea",
        "formats/s0010_re.hea",
    ]
    everything = find_wfdb_records(wfdb_dir)
    assert {p.relative_to(wfdb_dir).as_posix() for p in everything} == {
        f"{name}.hea" for name in RECORDS
    }


def test_find_wfdb_records_needs_a_directory(tmp_path: Path) -> None:
    with pytest.raises(BiosigError, match="not a directory"):
        find_wfdb_records(tmp_path / "absent")


# --- damaged records ----------------------------------------------------------------------


def test_missing_signal_file(wfdb_dir: Path, tmp_path: Path) -> None:
    header = copy_record(wfdb_dir / "mitdb/100", tmp_path, ".hea")
    with pytest.raises(RecordingError, match="100.dat is missing") as error:
        open_wfdb(header)
    assert str(error.value).startswith(f"{header}: ")


def test_missing_second_signal_file(wfdb_dir: Path, tmp_path: Path) -> None:
    header = copy_record(wfdb_dir / "formats/s0010_re", tmp_path, ".hea", ".dat")
    with pytest.raises(RecordingError, match=r"s0010_re\.xyz is missing"):
        open_wfdb(header)


def test_missing_segment_file(wfdb_dir: Path, tmp_path: Path) -> None:
    source = wfdb_dir / "formats/multi-segment/041s"
    for name in ("041s.hea", "041s01.hea", "041s01.dat", "041s02.hea"):
        shutil.copyfile(source / name, tmp_path / name)
    with pytest.raises(RecordingError, match=r"041s\.hea: signal file .*041s02\.dat is missing"):
        open_wfdb(tmp_path / "041s.hea")
    (tmp_path / "041s02.hea").unlink()
    with pytest.raises(RecordingError, match=r"segment header .*041s02\.hea is missing"):
        open_wfdb(tmp_path / "041s.hea")


def test_truncated_signal_file_refused_up_front(wfdb_dir: Path, tmp_path: Path) -> None:
    header = copy_record(wfdb_dir / "mitdb/100", tmp_path, ".hea")
    (tmp_path / "100.dat").write_bytes((wfdb_dir / "mitdb/100.dat").read_bytes()[:300_000])
    # 300000 bytes of format 212 (2 signals, 3 bytes a frame) hold 100000 frames.
    with pytest.raises(RecordingError, match="truncated: it holds 100000 frames .* 650000"):
        open_wfdb(header)


def test_damage_found_while_reading(wfdb_dir: Path, tmp_path: Path) -> None:
    header = copy_record(wfdb_dir / "mitdb/100", tmp_path, ".hea", ".dat")
    recording = open_wfdb(header)
    data = tmp_path / "100.dat"
    data.write_bytes(data.read_bytes()[:300_000])  # damaged after opening
    chunks = recording.chunks(60_000)
    assert next(chunks).shape == (2, 60_000)
    with pytest.raises(RecordingError, match=r"100\.hea: cannot read samples 60000-120000"):
        next(chunks)


SIGNAL_LINES = (
    "100.dat 212 200 11 1024 995 -22131 0 MLII\n100.dat 212 200 11 1024 1011 20052 0 V5\n"
)


@pytest.mark.parametrize(
    "text",
    [
        "hello world garbage\nxx yy\n",
        "",
        "100 2 abc 650000\n",  # wfdb itself accepts this, with no signals
        "100 2 360 650000\n100.dat 212 200 11 1024 995 -22131 0 MLII\n",  # a line short
        # fields wfdb would replace by its defaults (250 Hz; a length from the file size)
        "100 2 abc 650000\n" + SIGNAL_LINES,
        "100 2 -200 650000\n" + SIGNAL_LINES,
        "100 2 360 abc\n" + SIGNAL_LINES,
        "100 x 360 650000\n" + SIGNAL_LINES,
    ],
)
def test_malformed_header(tmp_path: Path, text: str) -> None:
    header = tmp_path / "100.hea"
    header.write_text(text)
    with pytest.raises(RecordingError, match="malformed WFDB header") as error:
        open_wfdb(header)
    assert str(error.value).startswith(f"{header}: ")


def test_channel_out_of_range(wfdb_dir: Path) -> None:
    header = wfdb_dir / "mitdb/100.hea"
    with pytest.raises(RecordingError, match="record has 2 channels .*asks for 3"):
        open_wfdb(header, channels=[0, 3])
    with pytest.raises(RecordingError, match="asks for -1"):
        open_wfdb(header, channels=[-1])
    with pytest.raises(RecordingError, match="selects no channel"):
        open_wfdb(header, channels=[])


def test_missing_header(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="no such WFDB header"):
        open_wfdb(tmp_path / "nothing.hea")


# --- EDF ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def eeg_edf(wfdb_dir: Path) -> Path:
    return wfdb_dir / "eeg/S001R04.edf"


def test_edf_metadata(eeg_edf: Path) -> None:
    recording = open_edf(eeg_edf)
    assert isinstance(recording, Recording)
    assert isinstance(recording, EdfRecording)
    assert (recording.id, recording.source) == ("S001R04", eeg_edf)
    assert (recording.fs, recording.n_samples, len(recording.channels)) == (160, 20000, 64)
    assert recording.channels[:3] + recording.channels[-4:] == EEG_FIRST + EEG_LAST
    assert "EDF Annotations" not in recording.channels
    assert set(recording.units) == {"uV"}


def test_edf_matches_wfdb_copy(eeg_edf: Path, wfdb_dir: Path) -> None:
    edf = open_edf(eeg_edf)
    record = open_wfdb(wfdb_dir / "eeg/S001R04.hea")
    assert edf.channels == record.channels
    samples = read_all(edf, 3000)
    # Gain 1.0 and baseline 0: physical µV equal the digital values, so the copies agree
    # exactly, and chunking changes nothing.
    np.testing.assert_array_equal(samples, read_all(record, record.n_samples))
    np.testing.assert_array_equal(samples, read_all(edf, edf.n_samples))
    digital = wfdb.rdrecord(str(wfdb_dir / "eeg/S001R04"), physical=False).d_signal
    with pyedflib.EdfReader(str(eeg_edf)) as reader:
        edf_digital = np.stack([reader.readSignal(i, digital=True) for i in range(64)])
    np.testing.assert_array_equal(digital.T, edf_digital)


def test_edf_channel_selection(eeg_edf: Path) -> None:
    whole = next(open_edf(eeg_edf).chunks(500))
    picked = open_edf(eeg_edf, channels=[10, 0])
    assert picked.channels == ("Cz..", "Fc5.")
    np.testing.assert_array_equal(next(picked.chunks(500)), whole[[10, 0]])
    with pytest.raises(RecordingError, match="file has 64 signals .*asks for 64"):
        open_edf(eeg_edf, channels=[64])


def test_edf_annotations(eeg_edf: Path) -> None:
    events = open_edf(eeg_edf).annotations()
    assert len(events) == 30
    assert Counter(text for _, _, text in events) == {"T0": 15, "T1": 8, "T2": 7}
    durations = {text: {d for _, d, t in events if t == text} for text in ("T0", "T1", "T2")}
    assert durations == {"T0": {4.2}, "T1": {4.1}, "T2": {4.1}}
    # Back to back from t = 0.
    assert events[0][0] == 0
    for (onset, duration, _), (following, _, _) in zip(events[:-1], events[1:], strict=True):
        assert following == pytest.approx(onset + duration, abs=1e-6)


def test_edf_keeps_no_file_open(eeg_edf: Path) -> None:
    fd_dir = Path("/proc/self/fd")
    if not fd_dir.is_dir():
        pytest.skip("needs /proc to count open files")
    before = len(os.listdir(fd_dir))
    recording = open_edf(eeg_edf)
    recording.annotations()
    assert len(os.listdir(fd_dir)) == before
    chunks = recording.chunks(1000)
    next(chunks)
    assert len(os.listdir(fd_dir)) == before + 1
    chunks.close()  # an abandoned iteration closes its file
    assert len(os.listdir(fd_dir)) == before


def test_truncated_edf(eeg_edf: Path, tmp_path: Path) -> None:
    broken = tmp_path / "S001R04.edf"
    broken.write_bytes(eeg_edf.read_bytes()[:1_000_000])
    with pytest.raises(RecordingError) as error:
        open_edf(broken)
    assert str(error.value) == (
        f"{broken}: holds 1,000,000 bytes where its header says 2,596,896 (125 data records "
        "of 20,640 bytes after a 16,896-byte header): damaged (truncated)"
    )
    garbage = tmp_path / "garbage.edf"
    garbage.write_bytes(b"0       not an EDF header at all")
    with pytest.raises(RecordingError, match=r"garbage\.edf: cannot open as EDF"):
        open_edf(garbage)


def test_an_edf_copied_in_text_mode_is_damage_not_a_shifted_signal(
    eeg_edf: Path, tmp_path: Path
) -> None:
    # Every LF byte among the samples became CR LF: EDFlib opens it and reads samples
    # shifted by a byte here and there, which were predicted as if the file were fine.
    crlf = tmp_path / "S001R04.edf"
    data = eeg_edf.read_bytes()
    crlf.write_bytes(data.replace(b"\n", b"\r\n"))
    grown = len(crlf.read_bytes()) - len(data)
    assert grown > 0
    with pytest.raises(RecordingError) as error:
        open_edf(crlf)
    assert str(error.value) == (
        f"{crlf}: holds {2_596_896 + grown:,} bytes where its header says 2,596,896 (125 data "
        "records of 20,640 bytes after a 16,896-byte header): damaged (copied in text mode, "
        "or appended to)"
    )


def test_edf_mixed_rates_need_a_selection(tmp_path: Path) -> None:
    path = tmp_path / "mixed.edf"
    writer = pyedflib.EdfWriter(str(path), 2, file_type=pyedflib.FILETYPE_EDFPLUS)
    try:
        headers = []
        for label, rate in (("fast", 100), ("slow", 50)):
            header = pyedflib.highlevel.make_signal_header(
                label,
                dimension="uV",
                sample_frequency=rate,
                physical_min=-100,
                physical_max=100,
                digital_min=-32768,
                digital_max=32767,
            )
            headers.append(header)
        writer.setSignalHeaders(headers)
        fast, slow = np.linspace(-50, 50, 300), np.linspace(10, 20, 150)
        writer.writeSamples([fast, slow])
    finally:
        writer.close()
    with pytest.raises(RecordingError, match=r"mixed\.edf: .*different sampling rates"):
        open_edf(path)
    recording = open_edf(path, channels=[1])
    assert (recording.channels, recording.fs, recording.n_samples) == (("slow",), 50, 150)
    np.testing.assert_allclose(read_all(recording, 64)[0], slow, atol=0.01)


def test_wfdb_recording_repr(wfdb_dir: Path) -> None:
    recording = open_wfdb(wfdb_dir / "mitdb/100.hea")
    assert isinstance(recording, WfdbRecording)
    assert repr(recording) == "WfdbRecording(id='100', fs=360, channels=2, n_samples=650000)"


def test_a_record_without_samples_is_refused(tmp_path: Path) -> None:
    header = tmp_path / "empty.hea"
    header.write_text("empty 1 125 0\nempty.dat 16 200 16 0 0 0 0 II\n")
    (tmp_path / "empty.dat").write_bytes(b"")
    with pytest.raises(RecordingError, match="record has no samples"):
        open_wfdb(header)
