"""The ``vibration`` plugin on MATLAB files: every quirk of the real CWRU files in
``../shared/data/vibration/cwru`` (irregular variable names, missing BA/RPM, the 48 kHz
baseline beside 12 kHz faults, 30-fold amplitude differences), channels by pattern, and
v7.3 (HDF5) files refused in one line."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from biosig_vibration.synthetic import write_cwru_like
from scipy.signal import resample_poly
from vibration_helpers import CWRU_MANIFEST as MANIFEST
from vibration_helpers import open_one, plugin, whole

from biosig import BiosigError, RecordingError
from biosig.data.windows import make_preprocessor

#: The README's table: drive-end variable, samples, rate, DE standard deviation.
CWRU = {
    "Normal_0": ("X097_DE_time", 243_938, 48000, 0.073),
    "IR007_0": ("X105_DE_time", 121_265, 12000, 0.291),
    "B007_0": ("X118_DE_time", 122_571, 12000, 0.139),
    "OR007@6_0": ("X130_DE_time", 121_991, 12000, 0.669),
    "IR028_0": ("X056_DE_time", 120_801, 12000, 0.838),
    "B028_0": ("X048_DE_time", 120_801, 12000, 2.08),
}


@pytest.fixture(scope="module")
def cwru(shared_data: Path) -> Path:
    return shared_data / "vibration" / "cwru"


# ----------------------------------------------------------------------- the real files


def test_drive_end_channel_is_found_by_pattern_in_every_file(cwru: Path) -> None:
    p = plugin(manifest=MANIFEST)
    recs = {rec.id: rec for path in p.find([cwru]) for rec in p.open(path)}
    assert set(recs) == set(CWRU)
    for stem, (variable, n, fs, std) in CWRU.items():
        rec = recs[stem]
        # B028_0 holds X048: the name is matched, never built from the file name
        assert rec.channels == (variable,) and rec.n_samples == n and rec.fs == fs, stem
        x = whole(rec)
        assert x.shape == (1, n) and x.dtype == np.float32
        assert float(x.std()) == pytest.approx(std, rel=0.01), stem  # 30-fold apart, unscaled


def test_missing_ba_and_rpm_variables_are_no_problem(cwru: Path) -> None:
    names = {p.stem: [v for v, _, _ in scipy.io.whosmat(p)] for p in cwru.glob("*.mat")}
    assert names["B028_0"] == ["X048_DE_time"] and "X097_BA_time" not in names["Normal_0"]
    rec = open_one(cwru / "IR007_0.mat", fs=12000, channels="_DE_time$,_FE_time$,_BA_time$")
    assert rec.channels == ("X105_DE_time", "X105_FE_time", "X105_BA_time")
    assert whole(rec).shape == (3, 121_265)
    with pytest.raises(RecordingError) as excinfo:
        open_one(cwru / "B028_0.mat", fs=12000, channels="_BA_time$")
    assert str(excinfo.value) == (
        f"{cwru / 'B028_0.mat'}: no variable matches '_BA_time$' (its variables: X048_DE_time)"
    )
    with pytest.raises(RecordingError, match=r"variable X105RPM \(1x1 double\) is not a signal"):
        open_one(cwru / "IR007_0.mat", fs=12000, channels="RPM$")


def test_normal_baseline_is_resampled_from_48_to_12_khz(cwru: Path) -> None:
    p = plugin(manifest=MANIFEST)
    (rec,) = p.open(cwru / "Normal_0.mat")
    assert rec.fs == 48000
    raw = scipy.io.loadmat(cwru / "Normal_0.mat")["X097_DE_time"].ravel()
    expected = resample_poly(raw.astype(np.float32).astype(np.float64), 1, 4)
    preprocess = make_preprocessor(p, rec, p.defaults.sample_rate)
    out = np.concatenate([preprocess(c) for c in rec.chunks(50_000)] + [preprocess.flush()], 1)
    assert out.shape == (1, math.ceil(243_938 / 4)) == (1, expected.size)
    np.testing.assert_allclose(out[0], expected, atol=1e-5 * np.abs(expected).max())


def test_rate_comes_from_the_manifest_or_cwru_folder_names(cwru: Path, tmp_path: Path) -> None:
    with pytest.raises(BiosigError, match=r"Normal_0\.mat: sample rate unknown; give --fs"):
        open_one(cwru / "Normal_0.mat")
    # CWRU's own layout names the rate in the folder: 12k_DE/IR007_0.mat, 48k_Normal/…
    for folder, name in (("12k_DE", "IR007_0.mat"), ("48k_Normal", "Normal_0.mat")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / name).symlink_to(cwru / name)
    assert open_one(tmp_path / "12k_DE" / "IR007_0.mat").fs == 12000
    assert open_one(tmp_path / "48k_Normal" / "Normal_0.mat").fs == 48000


def test_manifest_classes_of_the_cwru_files(cwru: Path) -> None:
    p = plugin(manifest=MANIFEST)
    recs = [rec for path in p.find([cwru]) for rec in p.open(path)]
    labels = {iv.recording_id: iv.label for iv in p.labels("manifest", recs)}
    assert labels == {
        "Normal_0": "normal", "IR007_0": "inner_race", "IR028_0": "inner_race",
        "B007_0": "ball", "B028_0": "ball", "OR007@6_0": "outer_race",
    }  # fmt: skip
    assert {p.group(r) for r in recs} == set(labels)  # one run per file


# ---------------------------------------------------------------------- written here


def write_v73(path: Path, header: bool = True) -> Path:
    """A file as MATLAB's ``save -v7.3`` writes one: a 512-byte MATLAB header (user block),
    then HDF5."""
    import h5py

    with h5py.File(path, "w", userblock_size=512 if header else 0) as handle:
        handle["X097_DE_time"] = np.zeros((1, 100))
    if header:
        text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: 2024 HDF5 schema 1.00 ."
        with open(path, "r+b") as handle:
            handle.write(text.ljust(116) + b"\x00" * 8 + b"\x00\x02IM")
    return path


@pytest.mark.parametrize("header", [True, False])
def test_v73_files_are_refused_in_one_line(tmp_path: Path, header: bool) -> None:
    path = write_v73(tmp_path / "new.mat", header)
    with pytest.raises(RecordingError) as excinfo:
        open_one(path, fs=12000)
    assert str(excinfo.value) == (
        f"{path}: MATLAB v7.3 (HDF5) files are not read: save with -v7 or export CSV"
    )


def test_vectors_either_way_round_and_lengths_that_differ(tmp_path: Path) -> None:
    x = np.arange(50, dtype=np.float64)
    scipy.io.savemat(tmp_path / "r.mat", {"a_DE_time": x[None, :], "b_DE_time": -x[:, None]})
    rec = open_one(tmp_path / "r.mat", fs=1000)
    np.testing.assert_array_equal(whole(rec, 7), np.stack([x, -x]))
    scipy.io.savemat(tmp_path / "d.mat", {"a_DE_time": x, "b_DE_time": x[:40]})
    with pytest.raises(RecordingError, match=r"d\.mat: the chosen variables differ in length"):
        open_one(tmp_path / "d.mat", fs=1000)
    scipy.io.savemat(tmp_path / "m.mat", {"X1_DE_time": np.zeros((10, 3))})
    with pytest.raises(RecordingError, match=r"variable X1_DE_time \(10x3 double\) is not a"):
        open_one(tmp_path / "m.mat", fs=1000)


def test_damaged_mat_files_are_recording_errors(tmp_path: Path) -> None:
    (tmp_path / "text.mat").write_text("not matlab at all, just text\n" * 20)
    with pytest.raises(RecordingError, match=r"text\.mat: not a readable MATLAB file"):
        open_one(tmp_path / "text.mat", fs=1000)
    path = write_cwru_like(tmp_path, seconds=0.5)["inner_race"]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 6])  # cut inside X105_DE_time
    rec = open_one(path, fs=12000)  # its directory entry is intact
    with pytest.raises(RecordingError) as excinfo:
        whole(rec)
    assert str(excinfo.value) == (
        f"{path}: data element at byte 128 claims 48,064 bytes, past the end of the file "
        "(24,068 bytes)"
    )


def test_a_compressed_variable_larger_than_memory_allows_is_refused_before_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 16 MB of zeros compress to a few kB: the shape in the directory is a claim.
    path = tmp_path / "zeros.mat"
    scipy.io.savemat(path, {"X1_DE_time": np.zeros(2_000_000)}, do_compression=True)
    assert path.stat().st_size < 100_000
    rec = open_one(path, fs=12000)
    monkeypatch.setattr("biosig.plugin.limits.memory_budget", lambda: 10_000_000)
    monkeypatch.setattr(scipy.io, "loadmat", lambda *a, **k: pytest.fail("loadmat called"))
    with pytest.raises(RecordingError) as excinfo:
        whole(rec)
    assert str(excinfo.value).startswith(
        f"{path}: variables X1_DE_time (2,000,000 samples each) would take 0.03 GiB in memory"
    )


def test_a_damaged_type_code_is_damage_not_a_crash_in_scipy(tmp_path: Path) -> None:
    # scipy's compiled reader trusts the data tag: an unknown type code there made
    # loadmat die with a segmentation fault (found by tests/test_fuzz.py).
    import struct

    path = tmp_path / "typo.mat"
    scipy.io.savemat(path, {"X1_DE_time": np.arange(1000.0)}, do_compression=False)
    data = bytearray(path.read_bytes())
    tag = data.index(struct.pack("<II", 9, 8000))  # miDOUBLE, 1000 values
    data[tag + 1] = 0xB0  # type 9 -> 45065
    path.write_bytes(bytes(data))
    rec = open_one(path, fs=12000)
    with pytest.raises(RecordingError) as excinfo:
        whole(rec)
    assert str(excinfo.value) == f"{path}: variable X1_DE_time: unknown data type 45065 in its tag"


def test_a_data_tag_disagreeing_with_the_dimensions_is_damage(tmp_path: Path) -> None:
    import struct

    path = tmp_path / "short.mat"
    scipy.io.savemat(path, {"X1_DE_time": np.arange(1000.0)}, do_compression=False)
    data = path.read_bytes().replace(struct.pack("<II", 9, 8000), struct.pack("<II", 9, 4000))
    path.write_bytes(data)
    with pytest.raises(RecordingError, match=r"its data tag says 4,000 bytes where its dim"):
        whole(open_one(path, fs=12000))
