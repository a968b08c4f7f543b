"""Tests of the ``wav`` plugin: reading, scaling, chunking, labels, errors,
and the plugin contract as biosig checks it (``biosig.testing.check_plugin``).

Every file is written here with ``scipy.io.wavfile.write``; run with ``python -m pytest``
from the package's directory.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from biosig import BiosigError, Plugin, RecordingError
from biosig.testing import check_demo_data, check_plugin
from scipy.io import wavfile

from biosig_plugin_wav import WavPlugin
from biosig_plugin_wav.synthetic import CLASSES, heart_sound, write_wav

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PACKAGE = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(7)


def read(*inputs: str | Path, plugin: Plugin | None = None) -> list:
    """Every recording of ``inputs`` as biosig reads them: find, then open each file."""
    plugin = plugin or WavPlugin()
    return [rec for path in plugin.find(list(inputs)) for rec in plugin.open(path)]


def whole(rec, chunk: int | None = None) -> np.ndarray:
    return np.concatenate(list(rec.chunks(chunk or rec.n_samples)), axis=1)


def labelled_folders(root: Path, per_class: int = 2, seconds: float = 1.0) -> Path:
    """``root/<class>/<class>_<i>.wav``, 16-bit mono at 4 kHz."""
    for label in CLASSES:
        for i in range(per_class):
            write_wav(root / label / f"{label}_{i}.wav", heart_sound(RNG, label, seconds))
    return root


def write_24bit(path: Path, n: int = 100) -> Path:
    """A valid 24-bit PCM file (scipy writes none, so the header is built here)."""
    data = bytes(3 * n)
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, 4000, 4000 * 3, 3, 24)
    path.write_bytes(
        b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + fmt
        + b"data" + struct.pack("<I", len(data)) + data
    )  # fmt: skip
    return path


def write_riff(path: Path, *chunks: tuple[bytes, bytes]) -> Path:
    """A RIFF/WAVE file of the given ``(tag, data)`` chunks, odd ones padded as RIFF wants."""
    body = b"".join(
        tag + struct.pack("<I", len(data)) + data + b"\0" * (len(data) % 2) for tag, data in chunks
    )
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body)
    return path


def pcm_format(channels: int, fs: int, bits: int) -> bytes:
    """A plain ``fmt `` chunk: PCM (format tag 1)."""
    frame = channels * bits // 8
    return struct.pack("<HHIIHH", 1, channels, fs, fs * frame, frame, bits)


# --- the package -------------------------------------------------------------------------


def test_the_entry_point_names_the_plugin_class() -> None:
    """What ``pip install`` registers: ``<name> = "<module>:<class>"`` in biosig's group."""
    project = tomllib.loads((PACKAGE / "pyproject.toml").read_text(encoding="utf-8"))
    entries = project["project"]["entry-points"]["biosig.plugins"]
    plugin = WavPlugin
    assert entries == {plugin.name: f"{plugin.__module__}:{plugin.__name__}"}
    assert project["project"]["name"] == "biosig-plugin-" + plugin.name.replace("_", "-")


# --- samples -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "values", "expected"),
    [
        (np.int16, [-32768, -16384, 0, 16384, 32767], [-1, -0.5, 0, 0.5, 32767 / 32768]),
        (np.int32, [-(2**31), -(2**30), 0, 2**30, 2**31 - 1], [-1, -0.5, 0, 0.5, 1 - 2**-31]),
        (np.uint8, [0, 64, 128, 192, 255], [-1, -0.5, 0, 0.5, 127 / 128]),
        (np.float32, [-1.5, -0.5, 0, 0.25, 2.0], [-1.5, -0.5, 0, 0.25, 2.0]),
        (np.float64, [-1.5, -0.5, 0, 0.25, 2.0], [-1.5, -0.5, 0, 0.25, 2.0]),
    ],
)
def test_samples_are_float32_and_integers_are_scaled_to_plus_minus_one(
    tmp_path: Path, dtype, values, expected
) -> None:
    wavfile.write(tmp_path / "x.wav", 8000, np.array(values, dtype=dtype))
    (rec,) = read(tmp_path / "x.wav")
    assert (rec.id, rec.fs, rec.channels, rec.n_samples) == ("x", 8000.0, ("ch0",), 5)
    samples = whole(rec)
    assert samples.dtype == np.float32 and samples.shape == (1, 5)
    np.testing.assert_array_equal(samples[0], np.array(expected, dtype=np.float32))


def test_channels_are_rows_and_chunks_read_any_size(tmp_path: Path) -> None:
    data = RNG.integers(-30000, 30000, size=(1003, 3), dtype=np.int16)  # [n, C] as WAV holds it
    wavfile.write(tmp_path / "three.wav", 2000, data)
    (rec,) = read(tmp_path / "three.wav")
    assert rec.channels == ("ch0", "ch1", "ch2") and rec.n_samples == 1003
    chunks = list(rec.chunks(250))
    assert [c.shape for c in chunks] == [(3, 250)] * 4 + [(3, 3)]
    assert all(c.dtype == np.float32 and c.flags.writeable for c in chunks)
    np.testing.assert_array_equal(np.concatenate(chunks, axis=1), data.T / np.float32(32768))
    np.testing.assert_array_equal(whole(rec, 7), whole(rec))


def test_a_wave_format_extensible_file_is_read(tmp_path: Path) -> None:
    """WAVE_FORMAT_EXTENSIBLE (format tag 0xFFFE, the sample type in a SubFormat GUID), as
    multichannel and high-resolution recorders write it: here 32-bit PCM, two channels."""
    pcm_guid = struct.pack("<IHH", 1, 0, 0x10) + bytes.fromhex("800000aa00389b71")
    fmt = struct.pack("<HHIIHHHHI", 0xFFFE, 2, 4000, 4000 * 8, 8, 32, 22, 32, 0b11) + pcm_guid
    data = np.array([[1, -1], [2**30, -(2**31)], [0, 2**29]], dtype="<i4")
    write_riff(tmp_path / "ext.wav", (b"fmt ", fmt), (b"data", data.tobytes()))
    (rec,) = read(tmp_path / "ext.wav")
    assert (rec.fs, rec.channels, rec.n_samples) == (4000.0, ("ch0", "ch1"), 3)
    np.testing.assert_array_equal(whole(rec), (data.T / 2.0**31).astype(np.float32))
    np.testing.assert_array_equal(whole(rec, 2), whole(rec))


def test_chunks_before_the_samples_are_skipped(tmp_path: Path) -> None:
    """A LIST (INFO: title, artist) chunk between ``fmt `` and ``data``, of odd length so
    padded, as many editors write it: the samples start after it."""
    info = b"INFO" + b"INAM" + struct.pack("<I", 9) + b"a title\0\0"  # 21 bytes: padded
    data = np.arange(-6, 6, dtype="<i2").reshape(6, 2) * 1000
    write_riff(
        tmp_path / "tagged.wav",
        (b"fmt ", pcm_format(2, 8000, 16)),
        (b"LIST", info),
        (b"data", data.tobytes()),
    )
    (rec,) = read(tmp_path / "tagged.wav")
    assert (rec.fs, rec.channels, rec.n_samples) == (8000.0, ("ch0", "ch1"), 6)
    np.testing.assert_array_equal(whole(rec, 4), (data.T / 32768.0).astype(np.float32))


def test_open_reads_only_the_header(tmp_path: Path) -> None:
    """Samples are read by chunks(), from disk, not kept from open()."""
    path = tmp_path / "x.wav"
    wavfile.write(path, 4000, np.zeros(4000, dtype=np.int16))
    (rec,) = read(path)
    wavfile.write(path, 4000, np.full(4000, 16384, dtype=np.int16))  # same layout, new samples
    assert whole(rec).max() == 0.5
    path.unlink()
    with pytest.raises(RecordingError, match="x.wav: file not found"):
        whole(rec)


def test_other_rates_are_resampled_to_the_models(tmp_path: Path) -> None:
    t = np.arange(8000) / 8000
    wavfile.write(tmp_path / "fast.wav", 8000, np.sin(2 * np.pi * 50 * t).astype(np.float32))
    plugin = WavPlugin()
    (rec,) = read(tmp_path / "fast.wav", plugin=plugin)
    preprocess = plugin.preprocessor(rec, 4000.0)
    out = np.concatenate([preprocess(c) for c in rec.chunks(999)] + [preprocess.flush()], axis=1)
    assert preprocess.fs_out == 4000.0 and out.shape == (1, 4000)
    middle = out[0, 200:-200]  # a 50 Hz sine, still of amplitude 1
    assert 0.98 < np.abs(middle).max() < 1.02


def test_highpass_removes_an_offset(tmp_path: Path) -> None:
    wavfile.write(tmp_path / "dc.wav", 4000, np.full(8000, 0.5, dtype=np.float32))
    plugin = WavPlugin()
    plugin.configure({"highpass": "20"})
    (rec,) = read(tmp_path / "dc.wav", plugin=plugin)
    preprocess = plugin.preprocessor(rec, 4000.0)
    out = preprocess(whole(rec))
    assert out.shape == (1, 8000) and np.abs(out[0, 4000:]).max() < 1e-3
    with pytest.raises(BiosigError, match="--highpass -5.0"):
        plugin.configure({"highpass": -5})


# --- finding files and naming recordings -------------------------------------------------


def test_directories_are_searched_for_wav_files_in_order(tmp_path: Path) -> None:
    labelled_folders(tmp_path)
    (tmp_path / "notes.txt").write_text("not audio")
    (tmp_path / "murmur" / "LOUD.WAV").write_bytes(
        (tmp_path / "murmur" / "murmur_0.wav").read_bytes()
    )
    files = WavPlugin().find([tmp_path])
    assert [f.relative_to(tmp_path).as_posix() for f in files] == [
        "gallop/gallop_0.wav", "gallop/gallop_1.wav", "murmur/LOUD.WAV",
        "murmur/murmur_0.wav", "murmur/murmur_1.wav", "normal/normal_0.wav", "normal/normal_1.wav",
    ]  # fmt: skip


def test_ids_are_stems_unless_two_files_share_one(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        write_wav(tmp_path / folder / "same.wav", np.zeros(10))
    write_wav(tmp_path / "a" / "only.wav", np.zeros(10))
    assert sorted(r.id for r in read(tmp_path)) == ["a/same", "b/same", "only"]
    assert [r.id for r in read(tmp_path / "a" / "same.wav")] == ["same"]


def test_find_errors_name_the_path(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "x.mp3").write_bytes(b"ID3")
    plugin = WavPlugin()
    with pytest.raises(BiosigError, match=r"missing\.wav: file not found"):
        plugin.find([tmp_path / "missing.wav"])
    with pytest.raises(BiosigError, match=r"empty: no \.wav files found there"):
        plugin.find([tmp_path / "empty"])
    with pytest.raises(BiosigError, match=r"x\.mp3: not a \.wav file"):
        plugin.find([tmp_path / "x.mp3"])


# --- damaged and unsupported files -------------------------------------------------------


def damaged(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.wav"
    good = tmp_path / "good.wav"
    wavfile.write(good, 4000, np.zeros(4000, dtype=np.int16))
    if kind == "text":
        path.write_text("this is not audio\n")
    elif kind == "truncated":
        path.write_bytes(good.read_bytes()[:2000])
    elif kind == "header":
        path.write_bytes(good.read_bytes()[:30])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "silent":
        wavfile.write(path, 4000, np.zeros(0, dtype=np.int16))
    elif kind == "24bit":
        write_24bit(path)
    elif kind == "mid-frame":  # stereo 16-bit: 10 bytes of data are two and a half frames
        write_riff(path, (b"fmt ", pcm_format(2, 4000, 16)), (b"data", bytes(10)))
    return path


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("text", "not a WAV file"),
        ("empty", "not a WAV file"),
        ("truncated", "truncated: the file ends before the samples its header announces"),
        ("header", "truncated or damaged: its header is incomplete"),
        ("silent", "holds no samples"),
        ("24bit", "24-bit (or other 3-, 5-, 6- or 7-byte) samples cannot be memory-mapped"),
        ("mid-frame", "its data is not a whole number of frames (truncated?)"),
    ],
)
def test_damaged_and_unsupported_files_are_recording_errors_naming_them(
    tmp_path: Path, kind: str, reason: str
) -> None:
    path = damaged(tmp_path, kind)
    with pytest.raises(RecordingError) as excinfo:
        read(path)
    assert str(excinfo.value).startswith(f"{path}: {reason}")


def test_open_of_a_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(BiosigError, match=r"gone\.wav: file not found"):
        list(WavPlugin().open(tmp_path / "gone.wav"))


# --- labels ------------------------------------------------------------------------------


def test_folder_labels_cover_whole_recordings(tmp_path: Path) -> None:
    recordings = read(labelled_folders(tmp_path))
    intervals = WavPlugin().labels("folder", recordings)
    assert {(i.recording_id, i.label) for i in intervals} == {
        (f"{label}_{i}", label) for label in CLASSES for i in range(2)
    }
    assert all((i.start, i.stop) == (0, 4000) for i in intervals)


def test_a_labels_table_names_files_by_id_stem_or_name(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        write_wav(tmp_path / folder / "same.wav", np.zeros(100))
    write_wav(tmp_path / "a" / "other.wav", np.zeros(100))
    table = tmp_path / "labels.tsv"
    table.write_text("id\tclass\na/same\tyes\nb/same.wav\tno\nother.wav\tyes\n")
    plugin = WavPlugin()
    recordings = read(tmp_path / "a", tmp_path / "b", plugin=plugin)
    got = {(i.recording_id, i.label) for i in plugin.labels(table, recordings)}
    assert got == {("a/same", "yes"), ("b/same", "no"), ("other", "yes")}


def test_a_segments_table_labels_spans(tmp_path: Path) -> None:
    write_wav(tmp_path / "run.wav", np.zeros(1000))
    table = tmp_path / "segments.tsv"
    table.write_text("run\t0\t400\tidle\nrun\t400\t1000\tfault\n")
    intervals = WavPlugin().labels(table, read(tmp_path / "run.wav"))
    assert [(i.start, i.stop, i.label) for i in intervals] == [
        (0, 400, "idle"),
        (400, 1000, "fault"),
    ]


def test_an_unknown_labels_word_is_an_error() -> None:
    with pytest.raises(BiosigError, match="--labels speaker: not a file, nor 'folder'"):
        WavPlugin().labels("speaker", [])


# --- the plugin contract, as biosig checks it ---------------------------------------------


def test_conforms_to_the_plugin_contract(tmp_path: Path) -> None:
    write_wav(tmp_path / "mono.wav", heart_sound(RNG, "normal", 1.0))
    stereo = np.stack([heart_sound(RNG, "murmur", 1.0, fs=8000) for _ in range(2)], axis=1)
    wavfile.write(tmp_path / "stereo.wav", 8000, stereo.astype(np.float32))  # resampled
    (tmp_path / "labels.tsv").write_text("mono\tnormal\nstereo\tmurmur\n")
    report = check_plugin(
        WavPlugin(),
        [tmp_path / "mono.wav", tmp_path / "stereo.wav"],
        labels=tmp_path / "labels.tsv",
    )
    assert report.recordings == {"mono": 4000, "stereo": 8000}
    assert report.label_classes == ["murmur", "normal"]


def test_conforms_with_folder_labels_and_a_highpass(tmp_path: Path) -> None:
    plugin = WavPlugin()
    plugin.configure({"highpass": 20.0})
    report = check_plugin(plugin, [labelled_folders(tmp_path, per_class=1)], labels="folder")
    assert report.label_classes == sorted(CLASSES)


def test_demo_data_conforms(tmp_path: Path) -> None:
    report = check_demo_data(WavPlugin(), tmp_path)
    assert report is not None and report.label_classes == sorted(CLASSES)
    assert len(WavPlugin().find([tmp_path])) == 12 * len(CLASSES)
