"""The ``numpy`` plugin: file layouts, lazy chunked reading, labels and its errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from biosig_numpy import NumpyPlugin

from biosig import BiosigError, LabelledInterval, Recording

RNG = np.random.default_rng(1234)


def signals(*shape: int) -> np.ndarray:
    return RNG.normal(size=shape).astype(np.float32)


def read(inputs: list[str | Path]) -> list[Recording]:
    """Every recording of ``inputs`` as the core reads them: find, then open each file."""
    plugin = NumpyPlugin()
    return [rec for path in plugin.find(inputs) for rec in plugin.open(path)]


def whole(rec: Recording, chunk: int = 1000) -> np.ndarray:
    return np.concatenate(list(rec.chunks(chunk)), axis=1)


def object_array() -> np.ndarray:
    values = np.empty(3, dtype=object)
    values[:] = [1, "a", None]
    return values


def assert_error(excinfo: pytest.ExceptionInfo[BiosigError], path: Path, *words: str) -> None:
    message = str(excinfo.value)
    assert str(path) in message
    for word in words:
        assert word in message


# --- batch arrays -------------------------------------------------------------------------


def test_npy_n_by_l_is_one_recording_per_row(tmp_path: Path) -> None:
    data = signals(5, 300)
    np.save(tmp_path / "batch.npy", data)
    recs = read([tmp_path / "batch.npy"])
    assert [r.id for r in recs] == ["0", "1", "2", "3", "4"]
    for row, rec in enumerate(recs):
        assert rec.channels == ("ch0",)
        assert rec.n_samples == 300
        assert rec.fs == NumpyPlugin.defaults.sample_rate
        np.testing.assert_array_equal(whole(rec), data[row][None, :])


def test_npy_n_by_c_by_l_keeps_channels(tmp_path: Path) -> None:
    data = signals(4, 3, 200)
    np.save(tmp_path / "batch.npy", data)
    recs = read([tmp_path / "batch.npy"])
    assert [r.id for r in recs] == ["0", "1", "2", "3"]
    for row, rec in enumerate(recs):
        assert rec.channels == ("ch0", "ch1", "ch2")
        assert rec.n_samples == 200
        np.testing.assert_array_equal(whole(rec), data[row])


def test_chunks_are_float32_blocks_that_concatenate_to_the_array(tmp_path: Path) -> None:
    data = RNG.integers(-1000, 1000, size=(2, 3, 250)).astype(np.int16)
    np.save(tmp_path / "ints.npy", data)
    rec = read([tmp_path / "ints.npy"])[1]
    chunks = list(rec.chunks(64))
    assert [c.shape for c in chunks] == [(3, 64)] * 3 + [(3, 58)]
    assert all(c.dtype == np.float32 for c in chunks)
    np.testing.assert_array_equal(np.concatenate(chunks, axis=1), data[1].astype(np.float32))


def test_two_batch_files_prefix_ids_with_the_stem(tmp_path: Path) -> None:
    np.save(tmp_path / "first.npy", signals(2, 100))
    np.save(tmp_path / "second.npy", signals(3, 100))
    recs = read([tmp_path / "first.npy", tmp_path / "second.npy"])
    assert [r.id for r in recs] == ["first:0", "first:1", "second:0", "second:1", "second:2"]


def test_a_second_find_on_the_same_plugin_gives_the_same_ids(tmp_path: Path) -> None:
    np.save(tmp_path / "first.npy", signals(2, 100))
    np.save(tmp_path / "second.npy", signals(3, 100))
    plugin = NumpyPlugin()
    plugin.find([tmp_path / "first.npy", tmp_path / "second.npy"])
    (path,) = plugin.find([tmp_path / "first.npy"])
    assert [r.id for r in plugin.open(path)] == ["0", "1"]


def test_npz_with_signals_and_labels_keys(tmp_path: Path) -> None:
    data = signals(3, 2, 120)
    path = tmp_path / "set.npz"
    np.savez(path, signals=data, labels=np.array([0, 1, 1]))
    recs = read([path])
    assert [r.id for r in recs] == ["0", "1", "2"]
    assert recs[2].channels == ("ch0", "ch1")
    np.testing.assert_array_equal(whole(recs[2]), data[2])
    intervals = NumpyPlugin().labels(path, recs)
    assert [(iv.recording_id, iv.label) for iv in intervals] == [("0", "0"), ("1", "1"), ("2", "1")]


def test_npz_with_one_array_per_key(tmp_path: Path) -> None:
    alpha, beta = signals(150), signals(2, 90)
    path = tmp_path / "named.npz"
    np.savez(path, alpha=alpha, beta=beta, labels=np.array(["x", "y"]))
    recs = read([path])
    assert [r.id for r in recs] == ["alpha", "beta"]  # the labels key is not a recording
    assert [(len(r.channels), r.n_samples) for r in recs] == [(1, 150), (2, 90)]
    np.testing.assert_array_equal(whole(recs[0]), alpha[None, :])
    np.testing.assert_array_equal(whole(recs[1]), beta)


# --- directories and globs ------------------------------------------------------------------


def test_directory_of_npy_files_with_different_lengths(tmp_path: Path) -> None:
    folder = tmp_path / "recs"
    folder.mkdir()
    a, b = signals(300), signals(2, 170)
    np.save(folder / "a.npy", a)
    np.save(folder / "b.npy", b)
    np.save(folder / "labels.npy", np.array(["x", "y"]))  # beside the data, not a recording
    recs = read([folder])
    assert [r.id for r in recs] == ["a", "b"]
    assert [(r.channels, r.n_samples) for r in recs] == [(("ch0",), 300), (("ch0", "ch1"), 170)]
    np.testing.assert_array_equal(whole(recs[0], 128), a[None, :])
    np.testing.assert_array_equal(whole(recs[1], 128), b)


def test_directory_recording_of_wrong_shape_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "recs"
    folder.mkdir()
    np.save(folder / "cube.npy", signals(2, 2, 10))
    with pytest.raises(BiosigError) as excinfo:
        read([folder])
    assert_error(excinfo, folder / "cube.npy", "(2, 2, 10)")


def test_empty_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BiosigError) as excinfo:
        read([tmp_path])
    assert_error(excinfo, tmp_path, "no .npy")


def test_glob_expands_to_the_matching_files(tmp_path: Path) -> None:
    np.save(tmp_path / "part1.npy", signals(2, 64))
    np.save(tmp_path / "part2.npy", signals(1, 64))
    np.save(tmp_path / "other.npy", signals(4, 64))
    plugin = NumpyPlugin()
    files = plugin.find([str(tmp_path / "part*.npy")])
    assert files == [tmp_path / "part1.npy", tmp_path / "part2.npy"]
    ids = [r.id for path in files for r in plugin.open(path)]
    assert ids == ["part1:0", "part1:1", "part2:0"]


def test_glob_matching_nothing_is_an_error(tmp_path: Path) -> None:
    pattern = str(tmp_path / "none*.npy")
    with pytest.raises(BiosigError, match="matches no file") as excinfo:
        read([pattern])
    assert pattern in str(excinfo.value)


# --- labels -------------------------------------------------------------------------------


@pytest.fixture
def three(tmp_path: Path) -> list[Recording]:
    np.save(tmp_path / "three.npy", signals(3, 50))
    return read([tmp_path / "three.npy"])


def labelled(plugin: NumpyPlugin, source: Path, recs: list[Recording]) -> list[tuple[str, str]]:
    intervals = plugin.labels(source, recs)
    assert all(isinstance(iv, LabelledInterval) for iv in intervals)
    assert all((iv.start, iv.stop) == (0, 50) for iv in intervals)  # the whole recording
    return [(iv.recording_id, iv.label) for iv in intervals]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (np.array([2, 0, 2]), ["2", "0", "2"]),
        (np.array([1.0, 0.0, 1.0]), ["1", "0", "1"]),
        (np.array(["cat", "dog", "cat"]), ["cat", "dog", "cat"]),
        (np.array([[3], [4], [3]]), ["3", "4", "3"]),  # a column vector is fine
        (np.array([b"cat", b"dog", b"cat"]), ["cat", "dog", "cat"]),  # not "b'cat'"
    ],
    ids=["ints", "whole-floats", "strings", "column", "bytes"],
)
def test_labels_from_npy(
    tmp_path: Path, three: list[Recording], values: np.ndarray, expected: list[str]
) -> None:
    np.save(tmp_path / "labels.npy", values)
    pairs = labelled(NumpyPlugin(), tmp_path / "labels.npy", three)
    assert pairs == list(zip(["0", "1", "2"], expected, strict=True))


@pytest.mark.parametrize("header", ["", "id\tclass\n"], ids=["no-header", "header"])
def test_labels_from_tsv(tmp_path: Path, three: list[Recording], header: str) -> None:
    source = tmp_path / "labels.tsv"
    source.write_text(header + "# comment\n2\tb\n0\ta\n", encoding="utf-8")
    # recording 1 has no label and is left out
    assert labelled(NumpyPlugin(), source, three) == [("0", "a"), ("2", "b")]


def test_labels_count_mismatch(tmp_path: Path, three: list[Recording]) -> None:
    np.save(tmp_path / "labels.npy", np.array([0, 1]))
    with pytest.raises(BiosigError) as excinfo:
        NumpyPlugin().labels(tmp_path / "labels.npy", three)
    assert_error(excinfo, tmp_path / "labels.npy", "2 labels", "3 recordings")


def test_fractional_labels(tmp_path: Path, three: list[Recording]) -> None:
    np.save(tmp_path / "labels.npy", np.array([0.5, 1.0, 2.0]))
    with pytest.raises(BiosigError) as excinfo:
        NumpyPlugin().labels(tmp_path / "labels.npy", three)
    assert_error(excinfo, tmp_path / "labels.npy", "fractional")


@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
def test_nan_or_inf_labels(tmp_path: Path, three: list[Recording], bad: float) -> None:
    np.save(tmp_path / "labels.npy", np.array([0.0, bad, 2.0]))
    with pytest.raises(BiosigError) as excinfo:
        NumpyPlugin().labels(tmp_path / "labels.npy", three)
    assert_error(excinfo, tmp_path / "labels.npy", "NaN/inf")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("0\t0\t50\ta\n", ":1: expected 'id<TAB>class', got 4 fields"),  # segments
        ("id\tclass\n0\ta\n1\t25\tb\n", ":3: expected 'id<TAB>class', got 3 fields"),
    ],
    ids=["segments", "after-header"],
)
def test_tsv_line_with_more_than_two_fields(
    tmp_path: Path, three: list[Recording], text: str, where: str
) -> None:
    source = tmp_path / "labels.tsv"
    source.write_text(text, encoding="utf-8")
    with pytest.raises(BiosigError) as excinfo:
        NumpyPlugin().labels(source, three)
    assert_error(excinfo, source, where)


def test_tsv_ids_matching_nothing(tmp_path: Path, three: list[Recording]) -> None:
    source = tmp_path / "labels.tsv"
    source.write_text("x\ta\ny\tb\n", encoding="utf-8")
    with pytest.raises(BiosigError) as excinfo:
        NumpyPlugin().labels(source, three)
    assert_error(excinfo, source, "match")


def test_object_labels_are_never_unpickled(tmp_path: Path, three: list[Recording]) -> None:
    np.save(tmp_path / "labels.npy", object_array(), allow_pickle=True)
    with pytest.raises(BiosigError) as excinfo:
        NumpyPlugin().labels(tmp_path / "labels.npy", three)
    assert_error(excinfo, tmp_path / "labels.npy", "Python objects")


def test_object_labels_in_npz_are_never_unpickled(tmp_path: Path, three: list[Recording]) -> None:
    path = tmp_path / "labels.npz"
    np.savez(path, labels=object_array())
    with pytest.raises(BiosigError) as excinfo:
        NumpyPlugin().labels(path, three)
    assert_error(excinfo, path, "Python objects")


# --- errors -------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BiosigError) as excinfo:
        read([tmp_path / "absent.npy"])
    assert_error(excinfo, tmp_path / "absent.npy", "not found")


def test_wrong_suffix(tmp_path: Path) -> None:
    path = tmp_path / "signals.csv"
    path.write_text("1,2,3\n", encoding="utf-8")
    with pytest.raises(BiosigError) as excinfo:
        read([path])
    assert_error(excinfo, path, ".npy")


@pytest.mark.parametrize(
    "shape", [(100,), (2, 2, 2, 10), (0, 10), (3, 0)], ids=["1d", "4d", "no-rows", "no-samples"]
)
def test_batch_array_of_wrong_shape(tmp_path: Path, shape: tuple[int, ...]) -> None:
    path = tmp_path / "bad.npy"
    np.save(path, np.zeros(shape, dtype=np.float32))
    with pytest.raises(BiosigError) as excinfo:
        read([path])
    assert_error(excinfo, path, str(shape))


def test_non_numeric_array(tmp_path: Path) -> None:
    path = tmp_path / "text.npy"
    np.save(path, np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(BiosigError) as excinfo:
        read([path])
    assert_error(excinfo, path, "expected numbers")


def test_not_a_numpy_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.npy"
    path.write_bytes(b"this is not an array")
    with pytest.raises(BiosigError) as excinfo:
        read([path])
    assert_error(excinfo, path, "not a readable NumPy file")


def test_object_npy_is_never_unpickled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "objects.npy"
    np.save(path, object_array(), allow_pickle=True)
    original = np.load

    def guarded_load(*args, **kwargs):
        assert not kwargs.get("allow_pickle", False), "np.load called with allow_pickle=True"
        return original(*args, **kwargs)

    monkeypatch.setattr(np, "load", guarded_load)
    with pytest.raises(BiosigError) as excinfo:
        read([path])
    assert_error(excinfo, path, "Python objects")


@pytest.mark.parametrize("key", ["signals", "recording"])
def test_object_npz_is_never_unpickled(tmp_path: Path, key: str) -> None:
    path = tmp_path / "objects.npz"
    np.savez(path, **{key: object_array()})
    with pytest.raises(BiosigError) as excinfo:
        read([path])
    assert_error(excinfo, path, "Python objects")


def test_declares_its_plugin_api_version() -> None:
    assert vars(NumpyPlugin).get("api_version") == 1  # its own, not inherited


def test_damaged_files_among_good_ones_are_skipped_by_every_command(in_tmp: Path, run_cli) -> None:
    data = in_tmp / "set"
    data.mkdir()
    for i in range(6):
        kind = "fast" if i % 2 else "slow"
        t = np.arange(256)
        np.save(data / f"{kind}{i}.npy", np.sin(t * (0.3 if i % 2 else 0.05))[None].astype("f4"))
    good = (data / "fast1.npy").read_bytes()
    (data / "empty.npy").write_bytes(b"")
    (data / "trunc.npy").write_bytes(good[: len(good) // 2])
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (-5, 100), }"
    (data / "negative.npy").write_bytes(b"\x93NUMPY\x01\x00v\x00" + header.ljust(117) + b"\n")
    labels = in_tmp / "labels.tsv"
    rows = [
        f"{p.stem}\t{'fast' if 'fast' in p.stem else 'slow'}" for p in sorted(data.glob("*.npy"))
    ]
    labels.write_text("\n".join(rows) + "\n", encoding="utf-8")
    common = ("--plugin", "numpy", "--input", data, "--labels", labels)
    trained = run_cli("train", *common, "--preset", "tiny", "--epochs", "1", "--out", "m")
    assert trained.code == 0, trained.err
    for name in ("empty", "trunc", "negative"):
        assert f"{name}.npy: not a readable NumPy file" in trained.err
    predicted = run_cli("predict", "--model", "m", data)
    assert predicted.code == 0, predicted.err
    assert len(predicted.out.splitlines()) == 1 + 6  # a header and the six good recordings
    strict = run_cli("predict", "--model", "m", "--strict", data)
    assert strict.code == 2 and "not a readable NumPy file" in strict.err_lines[-1]


# --- claims checked before allocating -----------------------------------------------------


def test_an_npz_of_deflated_zeros_is_refused_before_it_is_inflated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 200 MB of zeros deflate to about 200 kB: the member's size is a claim, checked
    # against what the process can spare before NumPy inflates it.
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, signals=np.zeros((50, 1_000_000), dtype=np.float32))
    assert path.stat().st_size < 1_000_000
    monkeypatch.setattr("biosig.plugin.limits.memory_budget", lambda: 100_000_000)
    inflated = []
    monkeypatch.setattr(np.lib.npyio.NpzFile, "__getitem__", lambda *a: inflated.append(a))
    with pytest.raises(BiosigError) as excinfo:
        read([path])
    assert_error(excinfo, path, "array 'signals'", "(50, 1000000)", "0.19 GiB", ".npy")
    assert not inflated


def test_an_npz_member_whose_header_claims_more_than_it_holds_is_damage(tmp_path: Path) -> None:
    import zipfile

    from biosig import RecordingError

    path = tmp_path / "liar.npz"
    np.savez(path, signals=signals(2, 100))
    with zipfile.ZipFile(path) as archive:
        member = archive.read("signals.npy")
    member = member.replace(b"(2, 100)", b"(9, 100)")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("signals.npy", member)
    with pytest.raises(RecordingError) as excinfo:
        read([path])
    assert_error(excinfo, path, "claims 3,600 bytes", "holds 800")


def test_an_npz_within_the_budget_reads_as_before(tmp_path: Path) -> None:
    path = tmp_path / "fine.npz"
    array = signals(3, 2, 50)
    np.savez_compressed(path, signals=array)
    recordings = read([path])
    assert [r.id for r in recordings] == ["0", "1", "2"]
    np.testing.assert_array_equal(whole(recordings[2]), array[2])
