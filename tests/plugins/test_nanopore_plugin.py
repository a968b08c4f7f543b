"""The nanopore plugin on the real FAST5/POD5 files of ../shared/data/nanopore: read ids,
lengths, rates and picoamps against the folder's manifest; damaged files; one chunk or
many; labels; constant memory on a 2.2-million-sample read."""

from __future__ import annotations

import json
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from checkpoint_helpers import meta_for

from biosig import BiosigError, RecordingError
from biosig.data.damaged import DamagePolicy
from biosig.data.windows import stream_windows, window_starts
from biosig.inference.stream import predict_recordings
from biosig.nn.model import SignalNet, model_config
from biosig.plugin.contract import iter_recordings
from biosig.plugin.registry import get_plugin


@pytest.fixture(scope="module")
def plugin():
    return get_plugin("nanopore")


@pytest.fixture(scope="module")
def nanopore_dir(shared_data: Path) -> Path:
    return shared_data / "nanopore"


@pytest.fixture(scope="module")
def manifest(nanopore_dir: Path) -> dict:
    return json.loads((nanopore_dir / "manifest.json").read_text())


def read_files(manifest: dict) -> list[str]:
    return [name for name, info in manifest.items() if "reads" in info]


def reads_of(plugin, path: Path) -> list:
    return list(iter_recordings(plugin, [path]))


def test_every_real_file_matches_its_manifest(plugin, nanopore_dir, manifest) -> None:
    names = read_files(manifest)
    assert len(names) == 11
    for name in names:
        expected = manifest[name]["reads"]
        reads = reads_of(plugin, nanopore_dir / name)
        assert [r.id for r in reads] == [e["read_id"] for e in expected], name
        for read, e in zip(reads, expected, strict=True):
            assert read.n_samples == e["n_samples"], (name, read.id)
            assert read.fs == e["sampling_rate"], (name, read.id)
            assert read.channels == ("current_pA",)
            raw = read.raw()
            assert raw.dtype == np.int16 and len(raw) == e["n_samples"]
            assert (int(raw.min()), int(raw.max())) == (e["raw_min"], e["raw_max"]), name
            pa = np.concatenate(list(read.chunks(50_000)), axis=1)
            assert pa.dtype == np.float32 and pa.shape == (1, e["n_samples"])
            assert float(np.median(pa)) == pytest.approx(e["pA_median"], abs=0.01), name
            if "digitisation" in e:  # FAST5 calibration
                assert read.offset == e["offset"]
                assert read.scale == pytest.approx(e["range"] / e["digitisation"])
            else:  # POD5 calibration
                assert read.offset == e["calibration_offset"]
                assert read.scale == pytest.approx(e["calibration_scale"])


def test_directory_scan_finds_every_read_file_by_content(plugin, nanopore_dir, manifest) -> None:
    files = plugin.find([nanopore_dir])
    assert sorted(f.name for f in files) == sorted(read_files(manifest))  # bad/ is skipped
    policy = DamagePolicy()
    reads = list(iter_recordings(plugin, files, policy.handle))
    # The folder holds some reads twice (a FAST5 and its POD5 twin, a single-read file and
    # the batch it came from): the second copy of an id is skipped, never used twice.
    all_ids = [e["read_id"] for f in files for e in manifest[f.name]["reads"]]
    assert sorted(r.id for r in reads) == sorted(set(all_ids))
    assert len(policy.skipped) == len(all_ids) - len(set(all_ids)) == 7
    assert all("was already read from" in message for message in policy.skipped)


def test_format_is_told_by_magic_bytes_not_name(plugin, nanopore_dir, tmp_path) -> None:
    renamed = tmp_path / "reads.dat"
    shutil.copy(nanopore_dir / "pod5_4reads_r10_4khz.pod5", renamed)
    assert [r.n_samples for r in reads_of(plugin, renamed)] == [20210, 20688, 12481, 36046]


@pytest.mark.parametrize("name", ["bad/not_a_pod5.pod5", "bad/empty_pod5.pod5"])
def test_bad_files_give_a_clear_error(plugin, nanopore_dir, name) -> None:
    with pytest.raises(BiosigError, match=r"not_a_pod5|empty_pod5") as info:
        plugin.find([nanopore_dir / name])
    assert "not a FAST5 or POD5 file" in str(info.value)


def test_missing_file_and_empty_directory(plugin, tmp_path) -> None:
    with pytest.raises(BiosigError, match="nope.pod5: file not found"):
        plugin.find([tmp_path / "nope.pod5"])
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(BiosigError, match=r"no FAST5 or POD5 files among the 1 files"):
        plugin.find([tmp_path])


def truncated_copy(src: Path, dst: Path, keep: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


def test_truncated_files_are_skipped_with_a_warning_or_stop_when_strict(
    plugin, nanopore_dir, tmp_path
) -> None:
    good = nanopore_dir / "pod5_4reads_r10_4khz.pod5"
    bad_pod5 = truncated_copy(good, tmp_path / "cut.pod5", 0.6)
    bad_fast5 = truncated_copy(
        nanopore_dir / "fast5_multi_gzip_10reads.fast5", tmp_path / "cut.fast5", 0.5
    )
    policy = DamagePolicy()
    reads = list(iter_recordings(plugin, [bad_pod5, good, bad_fast5], policy.handle))
    assert any("cut.pod5" in s and "truncated" in s for s in policy.skipped)
    assert [r.id for r in reads if r.source == good] == [r.id for r in reads_of(plugin, good)]
    # What is given out of the cut FAST5 either decodes in full or fails loudly: never a
    # silently shortened read.
    for read in (r for r in reads if r.source == bad_fast5):
        try:
            assert read.raw().shape == (read.n_samples,)
        except RecordingError as error:
            assert "cut.fast5" in str(error) and read.id in str(error)
    with pytest.raises(RecordingError, match="cut.pod5"):
        list(iter_recordings(plugin, [bad_pod5], DamagePolicy(strict=True).handle))


def test_vbz_and_gzip_decode_identically(plugin, nanopore_dir) -> None:
    gzip = reads_of(plugin, nanopore_dir / "fast5_multi_gzip_tiny.fast5")
    vbz = reads_of(plugin, nanopore_dir / "fast5_multi_vbz_tiny.fast5")
    assert [r.id for r in gzip] == [r.id for r in vbz]
    for a, b in zip(gzip, vbz, strict=True):
        np.testing.assert_array_equal(a.raw(), b.raw())
    single = reads_of(plugin, nanopore_dir / "fast5_single_vbz.fast5")[0]
    multi = {r.id: r for r in reads_of(plugin, nanopore_dir / "fast5_multi_vbz_8reads.fast5")}
    np.testing.assert_array_equal(single.raw(), multi[single.id].raw())


def test_pod5_and_fast5_twins_give_the_same_picoamps(plugin, nanopore_dir) -> None:
    fast5 = reads_of(plugin, nanopore_dir / "fast5_multi_gzip_2reads_promethion.fast5")
    pod5 = {r.id: r for r in reads_of(plugin, nanopore_dir / "pod5_2reads_promethion.pod5")}
    for read in fast5:
        twin = pod5[read.id]
        np.testing.assert_array_equal(read.raw(), twin.raw())
        a = np.concatenate(list(read.chunks(10**6)), axis=1)
        b = np.concatenate(list(twin.chunks(10**6)), axis=1)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-3)


def test_median_mad_is_exact(plugin, nanopore_dir) -> None:
    for read in reads_of(plugin, nanopore_dir / "pod5_3reads_r10_5khz_long.pod5"):
        pa = (read.raw().astype(np.float64) + read.offset) * read.scale
        median, mad = read.median_mad()
        assert median == pytest.approx(np.median(pa), rel=1e-9)
        assert mad == pytest.approx(np.median(np.abs(pa - np.median(pa))), rel=1e-9)


@pytest.mark.parametrize("fs_out", [4000.0, 5000.0])
def test_preprocessing_in_one_chunk_or_eight_is_identical(plugin, nanopore_dir, fs_out) -> None:
    for name in ("pod5_1read_r10_5khz.pod5", "fast5_multi_vbz_8reads.fast5"):
        read = reads_of(plugin, nanopore_dir / name)[0]
        outputs = []
        for chunk in (read.n_samples, -(-read.n_samples // 8)):
            pre = plugin.preprocessor(read, fs_out)
            parts = [pre(c) for c in read.chunks(chunk)] + [pre.flush()]
            outputs.append(np.concatenate(parts, axis=1))
        np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-6)
        expected = round(read.n_samples * fs_out / read.fs)
        assert abs(outputs[0].shape[1] - expected) <= 1
        body = outputs[0][0, 1000:-1000]
        assert abs(np.median(body)) < 0.2  # centred by the read's median


def test_labels_match_read_ids_case_insensitively_with_or_without_header(
    plugin, nanopore_dir, tmp_path, caplog
) -> None:
    reads = reads_of(plugin, nanopore_dir / "fast5_multi_vbz_8reads.fast5")
    lines = [f"{r.id.upper()}\t{'a' if i % 2 else 'b'}" for i, r in enumerate(reads[:6])]
    for header in ("", "read_id\tclass\n"):
        labels = tmp_path / "labels.tsv"
        labels.write_text(header + "\n".join([*lines, "ffffffff-0000-0000-0000-000000000000\ta"]))
        intervals = plugin.labels(labels, reads)
        assert [iv.recording_id for iv in intervals] == [r.id for r in reads[:6]]
        assert all(
            iv.start == 0 and iv.stop == r.n_samples
            for iv, r in zip(intervals, reads[:6], strict=True)
        )
    assert "1 labelled ids match no recording" in caplog.text
    assert "2 recordings have no label" in caplog.text
    (tmp_path / "none.tsv").write_text("x\ta\ny\tb\n")
    with pytest.raises(BiosigError, match="none.tsv: none of its 2 ids match"):
        plugin.labels(tmp_path / "none.tsv", reads)


def test_predicting_a_2m_sample_read_holds_far_less_than_the_read(plugin, nanopore_dir) -> None:
    reads = reads_of(plugin, nanopore_dir / "pod5_3reads_r10_5khz_long.pod5")
    long_read = max(reads, key=lambda r: r.n_samples)
    assert long_read.n_samples > 2_000_000
    config = model_config("tiny", 1, 2)
    model = SignalNet(config).eval()
    # 4 kHz: resampled from 5 kHz on the way
    meta = meta_for(config, ["a", "b"], 4096, 4096, 4000.0, "recording")
    short = [r for r in reads if r is not long_read]
    list(predict_recordings(model, meta, plugin, short, torch.device("cpu"), 64))  # warm up
    tracemalloc.start()
    try:
        (pred,) = predict_recordings(model, meta, plugin, [long_read], torch.device("cpu"), 64)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    float64_size = long_read.n_samples * 8
    assert peak < 0.35 * float64_size, f"peak {peak / 2**20:.1f} MB"
    n_model = round(long_read.n_samples * 4000 / 5000)
    assert len(pred.starts) == len(window_starts(n_model, 4096, 4096))
    assert pred.ends[-1] == long_read.n_samples


def test_windows_stream_from_a_read(plugin, nanopore_dir) -> None:
    read = reads_of(plugin, nanopore_dir / "pod5_1read_r10_5khz.pod5")[0]
    starts = window_starts(read.n_samples, 4096, 2048)
    blocks = list(stream_windows(read, plugin.preprocessor(read, read.fs), starts, 4096))
    assert sum(len(b.index) for b in blocks) == len(starts)
    assert all(b.data.dtype == np.float32 and b.data.shape[1:] == (1, 4096) for b in blocks)


def test_a_read_without_signal_is_yielded_as_damage_and_the_rest_still_read(
    plugin, tmp_path
) -> None:
    import h5py
    from biosig_nanopore.synthetic import synthetic_reads, write_multi_fast5

    reads = synthetic_reads(3, seed=5, n_bases=(200, 300))
    path = tmp_path / "three.fast5"
    write_multi_fast5(path, reads)
    with h5py.File(path, "r+") as handle:
        del handle[f"read_{reads[1].read_id}/Raw/Signal"]
        del handle[f"read_{reads[2].read_id}/channel_id"]
    policy = DamagePolicy()
    got = list(iter_recordings(plugin, [path], policy.handle))
    assert [r.id for r in got] == [reads[0].read_id]
    assert got[0].raw().tolist() == reads[0].raw.tolist()
    assert policy.skipped[0] == f"{path}: read {reads[1].read_id}: no raw signal"
    assert policy.skipped[1].startswith(f"{path}: read_{reads[2].read_id}: incomplete read")


def test_fast5_reads_with_impossible_calibration_are_damage_naming_the_field(
    plugin, nanopore_dir: Path, tmp_path: Path
) -> None:
    import h5py

    path = tmp_path / "tampered.fast5"
    shutil.copy(nanopore_dir / "fast5_multi_gzip_tiny.fast5", path)
    with h5py.File(path, "r+") as handle:
        names = sorted(k for k in handle if k.startswith("read_"))
        handle[f"{names[0]}/channel_id"].attrs["digitisation"] = 0.0
        handle[f"{names[1]}/channel_id"].attrs["sampling_rate"] = -4000.0
        signal = handle[f"{names[2]}/Raw/Signal"]
        values = signal[()].astype(np.float64) * 1e30
        del handle[f"{names[2]}/Raw/Signal"]
        handle[f"{names[2]}/Raw"].create_dataset("Signal", data=values)
    policy = DamagePolicy()
    reads = list(iter_recordings(plugin, [path], policy.handle))
    assert len(reads) == 1
    problems = sorted(message.split(": ", 2)[2] for message in policy.skipped)
    assert problems == [
        "digitisation is 0",
        "raw signal stored as float64, not integer ADC counts",
        "sampling_rate is -4000",
    ]
