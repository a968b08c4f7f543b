"""``biosig.testing.check_plugin``: it passes a plugin that keeps the contract, and each
deliberate fault below makes it fail with a message naming the plugin, the file and the
fault."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from biosig import (
    BiosigError,
    DemoData,
    LabelledInterval,
    Plugin,
    PluginDefaults,
    PluginOption,
    Recording,
    RecordingError,
    expand_inputs,
    table_intervals,
)
from biosig.testing import CheckReport, PluginCheckError, check_demo_data, check_plugin

# --- a small plugin that keeps the contract -------------------------------------------------
# Its format, ".toy": b"TOY1", then uint32 channels and samples, then float32 [C, n].

MAGIC = b"TOY1"
HEADER = 12


def write_toy(path: Path, data: np.ndarray) -> Path:
    header = MAGIC + np.array(data.shape, dtype="<u4").tobytes()
    path.write_bytes(header + np.ascontiguousarray(data, dtype="<f4").tobytes())
    return path


class ToyRecording:
    def __init__(self, path: Path, n_channels: int, n_samples: int) -> None:
        self.id = path.stem
        self.fs = 100.0
        self.channels = tuple(f"ch{i}" for i in range(n_channels))
        self.n_samples = n_samples
        self.source = path

    def _data(self) -> np.ndarray:
        shape = (len(self.channels), self.n_samples)
        return np.memmap(self.source, dtype="<f4", mode="r", offset=HEADER, shape=shape)

    def chunks(self, n: int) -> Iterator[np.ndarray]:
        data = self._data()
        for start in range(0, self.n_samples, n):
            yield np.asarray(data[:, start : start + n], dtype=np.float32)


class Integrator:
    """Running sum per channel, delayed by two samples (``flush`` gives the last two): the
    state a streaming preprocessor must carry across chunks."""

    def __init__(self, n_channels: int, fs_out: float) -> None:
        self.fs_out = fs_out
        self.total = np.zeros((n_channels, 1), dtype=np.float64)
        self.held = np.zeros((n_channels, 0), dtype=np.float32)

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        summed = self.total + np.cumsum(chunk, axis=1, dtype=np.float64)
        if summed.shape[1]:
            self.total = summed[:, -1:]
        out = np.concatenate([self.held, summed.astype(np.float32)], axis=1)
        self.held = out[:, -2:]
        return out[:, :-2]

    def flush(self) -> np.ndarray:
        return self.held


class ToyPlugin(Plugin):
    api_version = 1
    name = "toy"
    version = "1.0"
    summary = "toy files for the conformance tests"
    defaults = PluginDefaults(sample_rate=100.0, window=64, hop=32)
    options = (PluginOption("gain", 1.0, "scale samples by this", float, preprocessing=True),)
    recording_type: type = ToyRecording

    def find(self, inputs: Sequence[str | Path]) -> list[Path]:
        files: list[Path] = []
        for path in expand_inputs(inputs):
            files.extend(sorted(path.rglob("*.toy")) if path.is_dir() else [path])
        return files

    def read_header(self, path: Path) -> tuple[int, int]:
        try:
            with open(path, "rb") as handle:
                head = handle.read(HEADER)
        except OSError as exc:
            raise BiosigError(f"{path}: cannot read ({exc.strerror})") from None
        if len(head) < HEADER or head[:4] != MAGIC:
            raise RecordingError(f"{path}: not a toy file")
        return self.check_size(path, *(int(v) for v in np.frombuffer(head[4:], "<u4")))

    def check_size(self, path: Path, c: int, n: int) -> tuple[int, int]:
        if path.stat().st_size != HEADER + 4 * c * n:
            raise RecordingError(f"{path}: truncated ({c}x{n} samples expected)")
        return c, n

    def open(self, path: Path) -> Iterator[Recording | RecordingError]:
        n_channels, n_samples = self.read_header(Path(path))
        yield self.recording_type(Path(path), n_channels, n_samples)

    def preprocessor(self, recording: Recording, fs_out: float) -> Integrator:
        return Integrator(len(recording.channels), fs_out)

    def labels(self, source: Path | str, recordings: Sequence[Recording]) -> list[LabelledInterval]:
        return table_intervals(Path(source), recordings)

    def make_demo_data(self, directory: Path, seed: int = 0) -> DemoData:
        rng = np.random.default_rng(seed)
        rows = []
        for i in range(3):
            write_toy(directory / f"demo{i}.toy", rng.normal(size=(1, 300)))
            rows.append(f"demo{i}\t{'ab'[i % 2]}\n")
        (directory / "labels.tsv").write_text("".join(rows), encoding="utf-8")
        return DemoData((directory,), directory / "labels.tsv", "three toy files")


@pytest.fixture(scope="module")
def toy_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], Path]:
    """Two toy files (2 channels: 1000 and 5003 samples) and a segments labels table."""
    directory = tmp_path_factory.mktemp("toy")
    rng = np.random.default_rng(0)
    files = [
        write_toy(directory / "a.toy", rng.normal(size=(2, 1000))),
        write_toy(directory / "b.toy", rng.normal(size=(2, 5003))),
    ]
    labels = directory / "labels.tsv"
    labels.write_text("a\t0\t500\tquiet\na\t500\t1000\tloud\nb\t0\t5003\tquiet\n")
    return files, labels


def check(plugin: Plugin, toy_files, **kwargs) -> CheckReport:
    files, labels = toy_files
    return check_plugin(plugin, files, labels=labels, **kwargs)


def fails(plugin: Plugin, toy_files, match: str, **kwargs) -> str:
    """Run the check expecting a failure whose message matches; return the message."""
    with pytest.raises(PluginCheckError, match=match) as caught:
        check(plugin, toy_files, **kwargs)
    message = str(caught.value)
    assert message.startswith(f"plugin {plugin.name!r}: ")
    assert isinstance(caught.value, AssertionError)
    return message


# --- the good plugin ------------------------------------------------------------------------


def test_a_plugin_keeping_the_contract_passes(toy_files) -> None:
    report = check(ToyPlugin(), toy_files)
    assert isinstance(report, CheckReport)
    assert report.plugin == "toy"
    assert report.files == toy_files[0]
    assert report.recordings == {"a": 1000, "b": 5003}
    assert report.chunk_sizes == [1, 7, 4096, 1000, 5003]
    assert (report.n_intervals, report.label_classes) == (3, ["loud", "quiet"])
    assert report.checks == [
        "contract",
        "find",
        "open",
        "chunks",
        "preprocessing",
        "group",
        "labels",
        "errors",
    ]
    assert "2 recordings, 3 labelled intervals" in str(report)


def test_a_class_a_directory_and_no_labels_are_accepted(toy_files) -> None:
    files, _ = toy_files
    report = check_plugin(ToyPlugin, [files[0].parent])
    assert report.n_recordings == 2
    assert "labels" not in report.checks


def test_demo_data_is_checked_with_its_labels(tmp_path: Path) -> None:
    report = check_demo_data(ToyPlugin(), tmp_path)
    assert report is not None
    assert report.n_recordings == 3
    assert report.label_classes == ["a", "b"]


def test_max_recordings_limits_what_is_read(toy_files) -> None:
    report = check(ToyPlugin(), toy_files, max_recordings=1)
    assert list(report.recordings) == ["a"]
    assert report.n_intervals == 3  # labels still see every recording


# --- contract and attributes ----------------------------------------------------------------


def test_an_unsupported_api_version_fails(toy_files) -> None:
    class Future(ToyPlugin):
        api_version = 99

    fails(Future(), toy_files, "breaks the plugin contract: declares plugin API version 99")


def test_not_subclassing_plugin_fails(toy_files) -> None:
    class Stranger:
        name = "stranger"

    with pytest.raises(PluginCheckError, match="does not subclass biosig.Plugin"):
        check_plugin(Stranger(), toy_files[0])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("defaults", "match"),
    [
        (PluginDefaults(sample_rate=0.0, window=64, hop=32), "sample_rate 0.0 is not a positive"),
        (PluginDefaults(sample_rate=100.0, window=64.0, hop=32), "window 64.0 is not a positive"),  # type: ignore[arg-type]
        (
            PluginDefaults(sample_rate=100.0, window=64, hop=32, normalization="zscore"),  # type: ignore[arg-type]
            "normalization 'zscore' is not one of window, recording",
        ),
        (
            PluginDefaults(sample_rate=100.0, window=64, hop=32, aggregation="max"),
            "aggregation 'max' is not one of mean",
        ),
    ],
)
def test_bad_defaults_fail(toy_files, defaults: PluginDefaults, match: str) -> None:
    plugin = ToyPlugin()
    plugin.defaults = defaults
    fails(plugin, toy_files, f"defaults: {match}")


def test_an_option_whose_default_does_not_parse_fails(toy_files) -> None:
    plugin = ToyPlugin()
    plugin.options = (PluginOption("gain", "loud", "scale", float),)
    fails(plugin, toy_files, "option 'gain': its default does not parse")


def test_a_summary_that_is_no_text_fails(toy_files) -> None:
    plugin = ToyPlugin()
    plugin.summary = None  # type: ignore[assignment]
    fails(plugin, toy_files, "summary is None, expected a str")


# --- find, open, chunks ---------------------------------------------------------------------


def test_find_that_drops_a_file_fails(toy_files) -> None:
    class Forgetful(ToyPlugin):
        def find(self, inputs):
            return super().find(inputs)[:1]

    fails(Forgetful(), toy_files, r"b\.toy: find\(\) did not return it")


class Float64Recording(ToyRecording):
    def chunks(self, n):
        for chunk in super().chunks(n):
            yield chunk.astype(np.float64)


class TransposedRecording(ToyRecording):
    def chunks(self, n):
        for chunk in super().chunks(n):
            yield chunk.T


class WholeRecording(ToyRecording):
    def chunks(self, n):  # ignores n
        yield np.asarray(self._data(), dtype=np.float32)


class OverstatedRecording(ToyRecording):
    def __init__(self, path, n_channels, n_samples):
        super().__init__(path, n_channels, n_samples)
        self.n_samples = n_samples + 1
        self._real = n_samples

    def _data(self):
        return np.memmap(self.source, dtype="<f4", mode="r", offset=HEADER, shape=(2, self._real))

    def chunks(self, n):
        data = self._data()
        for start in range(0, self._real, n):
            yield np.asarray(data[:, start : start + n], dtype=np.float32)


class UnnamedChannels(ToyRecording):
    def __init__(self, path, n_channels, n_samples):
        super().__init__(path, n_channels, n_samples)
        self.channels = ["ch0", "ch1"]  # a list, not a tuple


@pytest.mark.parametrize(
    ("recording_type", "match"),
    [
        (Float64Recording, r"a\.toy: recording a: chunks\(1000\) gave float64, not float32"),
        (
            TransposedRecording,
            r"a\.toy: recording a: chunks\(1000\) gave shape \(1000, 2\), expected \[2 channels",
        ),
        (WholeRecording, r"a\.toy: recording a: chunks\(1\) gave a block of 1000 samples"),
        (OverstatedRecording, r"chunks\(1001\) gave 1000 samples, but n_samples is 1001"),
        (UnnamedChannels, r"recording 'a': channels \['ch0', 'ch1'\] is not a non-empty tuple"),
    ],
)
def test_recordings_breaking_the_chunk_contract_fail(toy_files, recording_type, match) -> None:
    class Faulty(ToyPlugin):
        pass

    Faulty.recording_type = recording_type
    fails(Faulty(), toy_files, match)


def test_duplicate_ids_across_files_fail(toy_files, tmp_path: Path) -> None:
    files, _ = toy_files
    (tmp_path / "again").mkdir()
    twin = write_toy(tmp_path / "again" / "a.toy", np.zeros((1, 10)))
    with pytest.raises(PluginCheckError, match=r"recording id 'a' was already read from .*a\.toy"):
        check_plugin(ToyPlugin(), [files[0], twin])


def test_open_yielding_damage_for_a_sample_file_fails(toy_files) -> None:
    class Gloomy(ToyPlugin):
        def open(self, path):
            yield RecordingError(f"{path}: read 2 is damaged")

    fails(Gloomy(), toy_files, r"a\.toy: open\(\) yielded damage for a sample file")


# --- preprocessing --------------------------------------------------------------------------


class ForgetfulIntegrator(Integrator):
    """Starts its sum afresh in every chunk: right in one chunk, wrong in many."""

    def __call__(self, chunk):
        self.total[:] = 0
        return super().__call__(chunk)


def test_a_preprocessor_that_resets_per_chunk_fails(toy_files) -> None:
    class Resetting(ToyPlugin):
        def preprocessor(self, recording, fs_out):
            return ForgetfulIntegrator(len(recording.channels), fs_out)

    message = fails(
        Resetting(), toy_files, r"other output in \d+ chunks of [\d, …]+ samples than in one"
    )
    assert "a.toy: recording a" in message
    assert "carry its state across chunks" in message


def test_a_preprocessor_turning_samples_into_nan_fails(toy_files) -> None:
    """NaN is a missing sample to the core, whose windows are skipped: a preprocessor that
    makes NaN of finite samples would silently drop every window."""

    class Blanking(Integrator):
        def __call__(self, chunk):
            return np.full_like(super().__call__(chunk), np.nan)

        def flush(self):
            return np.full_like(super().flush(), np.nan)

    class Blanker(ToyPlugin):
        def preprocessor(self, recording, fs_out):
            return Blanking(len(recording.channels), fs_out)

    message = fails(Blanker(), toy_files, r"output for chunk 0 holds NaN")
    assert "a.toy: recording a" in message
    assert "though its raw samples hold none" in message


def test_nan_in_the_raw_samples_may_stay_nan(tmp_path: Path) -> None:
    data = np.random.default_rng(3).normal(size=(1, 300))
    data[0, 100:110] = np.nan  # missing samples: the running sum is NaN from there on
    check_plugin(ToyPlugin(), [write_toy(tmp_path / "gappy.toy", data)], check_errors=False)


class Differencer:
    """``x[t] - x[t-1]``, carrying the last sample across chunks."""

    def __init__(self, n_channels: int, fs_out: float, forget: bool = False) -> None:
        self.fs_out = fs_out
        self.last = np.zeros((n_channels, 1), dtype=np.float32)
        self.forget = forget

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        if self.forget:
            self.last[:] = 0
        joined = np.concatenate([self.last, chunk], axis=1)
        if chunk.shape[1]:
            self.last = chunk[:, -1:].copy()
        return np.diff(joined, axis=1).astype(np.float32)

    def flush(self) -> np.ndarray:
        return np.zeros((self.last.shape[0], 0), dtype=np.float32)


def test_a_chunk_reset_in_a_signal_of_small_amplitude_fails(tmp_path: Path) -> None:
    """EEG in volts is ~1e-5: the tolerance scales with the signal, so a preprocessor that
    forgets its state between chunks is caught there as at amplitude 1."""
    data = 1e-5 * np.random.default_rng(4).uniform(-0.9, 0.9, size=(2, 2000))
    files = [write_toy(tmp_path / "small.toy", data)]

    class Remembering(ToyPlugin):
        def preprocessor(self, recording, fs_out):
            return Differencer(len(recording.channels), fs_out)

    class Forgetting(ToyPlugin):
        def preprocessor(self, recording, fs_out):
            return Differencer(len(recording.channels), fs_out, forget=True)

    check_plugin(Remembering(), files, check_errors=False)
    with pytest.raises(
        PluginCheckError, match=r"other output in \d+ chunks of [\d, …]+ samples than in one"
    ):
        check_plugin(Forgetting(), files, check_errors=False)
    zeros = [write_toy(tmp_path / "zeros.toy", np.zeros((1, 500)))]
    check_plugin(Remembering(), zeros, check_errors=False)  # all-zero output passes


def test_a_preprocessor_whose_flush_is_lost_fails(toy_files) -> None:
    class Leaky(Integrator):
        def flush(self):
            return self.held[:, :0]

    class Leaking(ToyPlugin):
        def preprocessor(self, recording, fs_out):
            return Leaky(len(recording.channels), fs_out)

    fails(Leaking(), toy_files, r"the preprocessor gave 998 samples at 100 Hz, expected 1000")


def test_a_preprocessor_giving_float64_fails(toy_files) -> None:
    class Wide(Integrator):
        def __call__(self, chunk):
            return super().__call__(chunk).astype(np.float64)

    class Widening(ToyPlugin):
        def preprocessor(self, recording, fs_out):
            return Wide(len(recording.channels), fs_out)

    fails(Widening(), toy_files, r"output for chunk 0 is float64, not float32")


def test_a_preprocessor_at_the_wrong_rate_fails(toy_files) -> None:
    class Slow(ToyPlugin):
        def preprocessor(self, recording, fs_out):
            return Integrator(len(recording.channels), fs_out / 2)

    fails(Slow(), toy_files, r"its preprocessor gives 50 Hz .* but the model runs at 100 Hz")


# --- labels ---------------------------------------------------------------------------------


def test_an_interval_outside_its_recording_fails(toy_files) -> None:
    class Overreaching(ToyPlugin):
        def labels(self, source, recordings):
            return [LabelledInterval(r.id, 0, r.n_samples + 10, "x") for r in recordings]

    fails(Overreaching(), toy_files, r"stop=1010.* lies outside its recording .*<= 1000 samples")


def test_an_interval_naming_an_unknown_recording_fails(toy_files) -> None:
    class Imaginative(ToyPlugin):
        def labels(self, source, recordings):
            return [LabelledInterval("zz", 0, 1, "x")]

    fails(Imaginative(), toy_files, r"names recording 'zz', which is not among the 2")


def test_no_intervals_at_all_fails(toy_files) -> None:
    class Silent(ToyPlugin):
        def labels(self, source, recordings):
            return []

    fails(Silent(), toy_files, r"labels\.tsv: labels\(\) gave list \[\], expected a non-empty")


# --- errors ---------------------------------------------------------------------------------


def test_a_missing_file_raising_file_not_found_fails(toy_files) -> None:
    class Careless(ToyPlugin):
        def find(self, inputs):
            return [Path(p) for p in inputs]

        def read_header(self, path):
            with open(path, "rb") as handle:  # FileNotFoundError escapes
                handle.read(HEADER)
            return super().read_header(path)

    fails(
        Careless(),
        toy_files,
        r"missing\.toy: find\(\) of a missing path raised no error",
    )

    class CarelessOpen(Careless):
        find = ToyPlugin.find

    fails(
        CarelessOpen(),
        toy_files,
        r"missing\.toy: open\(\) of a missing path raised FileNotFoundError: "
        r".*expected BiosigError",
    )


def test_a_missing_file_error_must_name_it(toy_files) -> None:
    class Vague(ToyPlugin):
        def find(self, inputs):
            for p in inputs:
                if not Path(p).exists():
                    raise BiosigError("file not found")
            return super().find(inputs)

    fails(Vague(), toy_files, r"find\(\) of a missing path raised BiosigError without naming it")


def test_a_corrupt_file_raising_value_error_fails(toy_files) -> None:
    class Raw(ToyPlugin):
        def read_header(self, path):
            if Path(path).exists() and Path(path).read_bytes()[:4] != MAGIC:
                raise ValueError("bad magic")
            return super().read_header(path)

    fails(
        Raw(),
        toy_files,
        r"random-bytes\.toy: open\(\) of a damaged file raised ValueError: bad magic; "
        r"expected biosig\.BiosigError",
    )


def test_a_truncated_file_failing_in_chunks_with_another_error_fails(toy_files) -> None:
    class Trusting(ToyPlugin):
        def check_size(self, path, c, n):
            return c, n  # the memmap in chunks() then fails on a short file

    fails(
        Trusting(),
        toy_files,
        r"truncated\.toy: chunks\(\) of recording 'truncated' of a damaged file raised ValueError",
    )


def test_a_corrupt_file_read_as_a_recording_fails(toy_files) -> None:
    class Credulous(ToyPlugin):
        def read_header(self, path):
            if not Path(path).exists():
                return super().read_header(path)
            size = Path(path).stat().st_size
            return 1, max(1, (size - HEADER) // 4)

    fails(Credulous(), toy_files, r"random-bytes\.toy: a file of random bytes was read as")
    check(Credulous(), toy_files, accepts_any_bytes=True)  # a raw format may


def test_a_corrupt_file_error_must_name_it(toy_files) -> None:
    class Anonymous(ToyPlugin):
        def read_header(self, path):
            try:
                return super().read_header(path)
            except RecordingError:
                raise RecordingError("not a toy file") from None

    fails(Anonymous(), toy_files, r"open\(\) raised RecordingError for a damaged file without nam")


def test_errors_can_be_left_unchecked(toy_files) -> None:
    class Raw(ToyPlugin):
        def open(self, path):
            if Path(path).name.startswith(("missing", "random", "truncated")):
                raise ValueError("unchecked")
            yield from super().open(path)

    assert "errors" not in check(Raw(), toy_files, check_errors=False).checks


class LateForgetter(Integrator):
    """Carries its sum across chunks, but drops it when a chunk starts after sample 8: the
    kind of bug a preprocessor that handles "the first chunk" specially can hide."""

    def __init__(self, n_channels: int, fs_out: float) -> None:
        super().__init__(n_channels, fs_out)
        self.seen = 0

    def __call__(self, chunk):
        if self.seen > 8:
            self.total[:] = 0
        self.seen += chunk.shape[1]
        return super().__call__(chunk)


def test_a_state_bug_after_sample_8_of_a_100_sample_recording_is_caught(tmp_path: Path) -> None:
    # PIECES alone cut 100 samples as 1, 7, 92: no chunk starts after sample 8, so only the
    # random cuttings (many small chunks, wherever the length) find it.
    files = [write_toy(tmp_path / "short.toy", np.random.default_rng(5).normal(size=(1, 100)))]

    class Late(ToyPlugin):
        def preprocessor(self, recording, fs_out):
            return LateForgetter(len(recording.channels), fs_out)

    check_plugin(Late(), files, check_errors=False, chunkings=0)  # missed by PIECES alone
    with pytest.raises(PluginCheckError, match=r"other output in \d+ chunks of 1, .* samples"):
        check_plugin(Late(), files, check_errors=False)
    check_plugin(ToyPlugin(), files, check_errors=False)  # a correct one passes every cutting
