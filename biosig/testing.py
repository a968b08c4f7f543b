"""Conformance checks for plugins: call :func:`check_plugin` from your plugin's tests.

::

    from biosig.testing import check_plugin, check_demo_data

    def test_conforms(tmp_path):
        report = check_plugin(XyzPlugin(), ["tests/data/small.xyz"], labels="tests/data/labels.tsv")
        assert report.n_recordings == 2

    def test_demo_data_conforms(tmp_path):
        check_demo_data(XyzPlugin(), tmp_path)

:func:`check_plugin` runs a plugin through everything the core relies on (the contract's
attributes, ``find``, ``open``, ``chunks``, the streaming preprocessor, labels, and the
errors for missing and damaged files) and raises :class:`PluginCheckError`, an
``AssertionError``, naming the plugin, the file and what is wrong. It returns a
:class:`CheckReport` of what it checked. It reads only the files given (plus a few it
writes in a temporary directory), so keep the sample files small.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data.windows import make_preprocessor, model_length
from .errors import BiosigError
from .plugin.contract import (
    AGGREGATIONS,
    NORMALIZATIONS,
    SPLITS,
    LabelledInterval,
    Plugin,
    PluginDefaults,
    PluginOption,
    Recording,
    RecordingError,
    describe,
    recording_times,
)
from .plugin.registry import check_contract

__all__ = ["CheckReport", "PluginCheckError", "check_demo_data", "check_plugin"]

#: Chunk sizes ``chunks(n)`` is read with; ``None`` stands for the recording's length.
CHUNK_SIZES: tuple[int | None, ...] = (1, 7, 4096, None)
#: Sizes the raw samples are cut into, in turn, to feed the preprocessor in many chunks.
PIECES = (1, 7, 4096, 1, 13, 997, 2, 65536)
#: Random cuttings of each recording fed to the preprocessor besides :data:`PIECES`.
CHUNKINGS = 6
#: Cuts per random cutting: half among the first :data:`EARLY` samples (many chunks of a
#: few samples, where a state carried wrongly shows first), half anywhere in the recording.
CUTS, EARLY = 48, 64


class PluginCheckError(AssertionError):
    """A plugin does not do what the contract says; the message names the plugin, the file
    and what is wrong."""


@dataclass
class CheckReport:
    """What :func:`check_plugin` checked (all of it passed)."""

    plugin: str
    files: list[Path] = field(default_factory=list)
    #: recording id -> number of samples, for those whose samples were read
    recordings: dict[str, int] = field(default_factory=dict)
    chunk_sizes: list[int] = field(default_factory=list)
    n_intervals: int = 0
    label_classes: list[str] = field(default_factory=list)
    #: names of the checks that ran, in order
    checks: list[str] = field(default_factory=list)

    @property
    def n_recordings(self) -> int:
        return len(self.recordings)

    def __str__(self) -> str:
        return (
            f"plugin {self.plugin!r}: {len(self.files)} files, {self.n_recordings} recordings, "
            f"{self.n_intervals} labelled intervals; checked {', '.join(self.checks)}"
        )


def check_plugin(
    plugin: Plugin | type[Plugin],
    sample_files: Sequence[str | Path],
    *,
    labels: Path | str | None = None,
    fs_out: float | None = None,
    chunk_sizes: Sequence[int | None] = CHUNK_SIZES,
    max_recordings: int = 8,
    max_chunks: int = 32,
    chunkings: int = CHUNKINGS,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    check_errors: bool = True,
    accepts_any_bytes: bool = False,
) -> CheckReport:
    """Check ``plugin`` against the plugin contract on real ``sample_files``.

    Checks, in order:

    * the contract (:func:`biosig.plugin.registry.check_contract`: subclass, API version, name,
      defaults), and the types of ``name``, ``version``, ``summary``, ``defaults``,
      ``label_formats``, ``label_keywords`` and ``options``;
    * ``find(sample_files)`` returns every file given (and something under every directory
      given), as existing paths;
    * ``open`` yields recordings with an id unique across files, a positive rate, channel
      names and a length (and ``times``, if any, one ascending per sample); a damaged one in
      a sample file is a failure. The checks below read ``max_recordings`` of them, spread
      over the files;
    * ``chunks(n)`` for each ``n`` in ``chunk_sizes`` (``None``: the whole length) gives
      float32 ``[C, <=n]`` blocks, ``C == len(channels)``, the same samples whatever ``n``,
      adding up to ``n_samples`` (sizes needing more than ``max_chunks`` blocks are read for
      their first ``max_chunks`` only);
    * the preprocessor at ``fs_out`` (default: the plugin's sample rate) gives float32
      ``[C, m]`` chunks, about ``n_samples * fs_out / fs`` samples in all, never infinite
      nor NaN (a missing sample to biosig) unless the raw samples hold NaN, and the same
      output (within ``rtol`` and ``atol`` times its largest magnitude, or ``atol`` when it
      is all zero) for the recording in one chunk as in many chunks: the sizes of
      :data:`PIECES` in turn, and ``chunkings`` random cuttings (fixed seed) of up to
      :data:`CUTS` chunks each, half of the cuts among the first :data:`EARLY` samples and
      half anywhere, so that a state carried wrongly between chunks shows whatever the
      recording's length; ``flush()`` included;
    * ``group`` gives a string per recording;
    * with ``labels`` (a file or one of ``label_keywords``): every interval names a checked
      recording and lies inside it (``0 <= start < stop <= n_samples``, ``label_end`` from
      ``stop`` to ``n_samples``), with a non-empty class;
    * with ``check_errors``: ``find`` and ``open`` of a missing path raise
      :class:`biosig.BiosigError` naming it, and a file of random bytes and a truncated
      copy of a sample file (each with the sample's suffix) raise ``BiosigError`` or
      ``RecordingError`` naming the file (from ``find``, ``open`` or ``chunks``, or yielded
      by ``open``), never another exception. A truncated file may also read as a shorter
      recording, and with ``accepts_any_bytes`` (headerless raw formats) random bytes may.

    Arguments:

    * ``plugin``: the plugin, or its class (instantiated with no arguments); configure its
      options before the call;
    * ``sample_files``: real files (or directories) in the plugin's format, or one path;
    * ``labels``: a label file or keyword to check ``labels()`` with (``None``: skipped);
    * ``fs_out``: the model rate the preprocessor is checked at (default: the plugin's);
    * ``chunk_sizes``: the sizes ``chunks(n)`` is read with (default :data:`CHUNK_SIZES`);
    * ``max_recordings``: how many recordings, spread over the files, are read;
    * ``max_chunks``: the most blocks of one ``chunks(n)`` read;
    * ``chunkings``: random cuttings fed to the preprocessor (default :data:`CHUNKINGS`);
    * ``rtol``, ``atol``: how close chunked and whole preprocessing must be;
    * ``check_errors``, ``accepts_any_bytes``: as above.

    Raises :class:`PluginCheckError` on the first problem; returns a :class:`CheckReport`.
    """
    if isinstance(plugin, type):
        plugin = plugin()
    if isinstance(sample_files, (str, Path)):
        sample_files = [sample_files]  # one path, not a sequence of characters
    checker = _Checker(plugin, rtol=rtol, atol=atol, max_chunks=max_chunks, chunkings=chunkings)
    report = checker.report
    checker.contract()
    files = checker.find(sample_files)
    recordings = checker.open(files)
    fs = float(fs_out) if fs_out is not None else float(plugin.defaults.sample_rate)
    for recording in _spread(recordings, max_recordings):
        report.recordings[recording.id] = int(recording.n_samples)
        raw = checker.chunks(recording, chunk_sizes)
        checker.preprocessing(recording, raw, fs)
        checker.group(recording)
    report.checks += ["chunks", "preprocessing", "group"]
    if labels is not None:
        checker.labels(labels, recordings)
    if check_errors:
        checker.errors(files, accepts_any_bytes)
    return report


def check_demo_data(
    plugin: Plugin | type[Plugin], directory: str | Path | None = None, *, seed: int = 0, **kwargs
) -> CheckReport | None:
    """Write the plugin's demo data (``make_demo_data``) into ``directory`` (a temporary one
    when ``None``) and :func:`check_plugin` it with the demo's labels and options.

    Returns ``None`` when the plugin has no demo data. Keyword arguments go to
    :func:`check_plugin`.
    """
    if isinstance(plugin, type):
        plugin = plugin()
    with _directory(directory) as where:
        try:
            demo = plugin.make_demo_data(where, seed=seed)
        except BiosigError as exc:
            raise PluginCheckError(f"plugin {plugin.name!r}: make_demo_data failed: {exc}") from exc
        if demo is None:
            return None
        options = dict(demo.settings.get("options", {}))
        if options:
            plugin.configure(options)
        kwargs.setdefault("labels", demo.labels)
        return check_plugin(plugin, list(demo.inputs), **kwargs)


@contextmanager
def _directory(directory: str | Path | None) -> Iterator[Path]:
    if directory is not None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        yield Path(directory)
        return
    with tempfile.TemporaryDirectory(prefix="biosig-check-") as tmp:
        yield Path(tmp)


class _Checker:
    def __init__(
        self, plugin: Plugin, *, rtol: float, atol: float, max_chunks: int, chunkings: int
    ) -> None:
        self.plugin = plugin
        self.name = getattr(plugin, "name", "") or type(plugin).__name__
        self.rtol, self.atol, self.max_chunks = rtol, atol, max_chunks
        self.chunkings = chunkings
        self.report = CheckReport(self.name)

    def fail(self, where: object, what: str) -> PluginCheckError:
        prefix = f"plugin {self.name!r}: " + (f"{where}: " if where is not None else "")
        return PluginCheckError(prefix + what)

    def expect(self, condition: object, where: object, what: str) -> None:
        if not condition:
            raise self.fail(where, what)

    # ------------------------------------------------------------------ attributes

    def contract(self) -> None:
        p = self.plugin
        problem = check_contract(p)
        self.expect(problem is None, None, f"breaks the plugin contract: {problem}")
        for attr in ("name", "version", "summary", "label_formats"):
            value = getattr(p, attr)
            self.expect(isinstance(value, str), None, f"{attr} is {value!r}, expected a str")
        self.expect(
            p.name.strip() == p.name and p.name, None, f"name {p.name!r} is blank or padded"
        )
        self.expect(p.summary.strip(), None, "summary is empty")
        self.expect(
            isinstance(p.label_keywords, tuple)
            and all(isinstance(k, str) and k for k in p.label_keywords),
            None,
            f"label_keywords is {p.label_keywords!r}, expected a tuple of words",
        )
        self._defaults(p.defaults)
        self._options(p.options)
        self.report.checks.append("contract")

    def _defaults(self, d: object) -> None:
        def bad(what: str) -> PluginCheckError:
            return self.fail(None, f"defaults: {what}")

        if not isinstance(d, PluginDefaults):
            raise bad(f"{d!r} is not a biosig.PluginDefaults")
        rate = d.sample_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0:
            raise bad(f"sample_rate {rate!r} is not a positive number")
        if not math.isfinite(rate):
            raise bad(f"sample_rate {rate!r} is not finite")
        for attr in ("window", "hop"):
            value = getattr(d, attr)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise bad(f"{attr} {value!r} is not a positive whole number of samples")
        if d.channels is not None and not (
            isinstance(d.channels, tuple) and all(isinstance(c, str) for c in d.channels)
        ):
            raise bad(f"channels {d.channels!r} is neither None nor a tuple of names")
        for attr, allowed in (
            ("normalization", NORMALIZATIONS),
            ("split", SPLITS),
            ("aggregation", AGGREGATIONS),
        ):
            value = getattr(d, attr)
            if value not in allowed:
                raise bad(f"{attr} {value!r} is not one of {', '.join(allowed)}")
        keywords = tuple(getattr(self.plugin, "label_keywords", ()) or ())
        if d.labels is not None and d.labels not in keywords:
            raise bad(
                f"labels {d.labels!r} is not one of the plugin's label_keywords "
                f"({', '.join(map(str, keywords)) or 'none'})"
            )

    def _options(self, options: object) -> None:
        if not isinstance(options, tuple):
            raise self.fail(None, f"options is {options!r}, expected a tuple of PluginOption")
        seen: set[str] = set()
        for option in options:
            if not isinstance(option, PluginOption):
                raise self.fail(None, f"option {option!r} is not a biosig.PluginOption")
            where = f"option {option.name!r}"
            self.expect(option.name.isidentifier(), where, "its name is not an identifier")
            self.expect(option.name not in seen, where, "is declared twice")
            seen.add(option.name)
            self.expect(isinstance(option.help, str) and option.help.strip(), where, "has no help")
            self.expect(isinstance(option.type, type), where, f"type {option.type!r} is no type")
            if option.default is not None:
                try:
                    parsed = option.parse(option.default)
                except BiosigError as exc:
                    raise self.fail(where, f"its default does not parse: {exc}") from None
                # kept in checkpoints as JSON: a converter type must give plain values
                self.expect(
                    isinstance(parsed, (str, int, float, bool)),
                    where,
                    f"default {option.default!r} parses to {parsed!r}, not a str, int, float "
                    "or bool",
                )

    # ------------------------------------------------------------------ files and recordings

    def find(self, sample_files: Sequence[str | Path]) -> list[Path]:
        self.expect(len(sample_files) > 0, None, "check_plugin needs at least one sample file")
        inputs = [Path(f) for f in sample_files]
        for path in inputs:
            if not path.exists():
                raise PluginCheckError(f"check_plugin: sample file {path} does not exist")
        try:
            found = self.plugin.find(inputs)
        except BiosigError as exc:
            raise self.fail(_names(inputs), f"find() refused the sample files: {exc}") from exc
        except Exception as exc:
            raise self.fail(_names(inputs), f"find() raised {_exc(exc)}") from exc
        self.expect(
            isinstance(found, list) and all(isinstance(p, Path) for p in found),
            _names(inputs),
            f"find() returned {found!r}, expected a list of Paths",
        )
        resolved = [p.resolve() for p in found]
        for path, given in zip(inputs, sample_files, strict=True):
            if path.is_dir():
                inside = any(path.resolve() in r.parents for r in resolved)
                self.expect(inside, path, "find() returned no file under this directory")
            else:
                self.expect(path.resolve() in resolved, given, "find() did not return it")
        for path in found:
            self.expect(path.exists(), path, "find() returned a path that does not exist")
        self.report.files = found
        self.report.checks.append("find")
        return found

    def open(self, files: list[Path]) -> list[Recording]:
        """Every recording of every file (metadata only: opening must not read samples)."""
        recordings: list[Recording] = []
        first_seen: dict[str, Path] = {}
        for path in files:
            try:
                for item in self.plugin.open(path):
                    if isinstance(item, RecordingError):
                        raise self.fail(path, f"open() yielded damage for a sample file: {item}")
                    self._recording(item, path)
                    self.expect(
                        item.id not in first_seen,
                        path,
                        f"recording id {item.id!r} was already read from {first_seen.get(item.id)}",
                    )
                    first_seen[item.id] = path
                    recordings.append(item)
            except PluginCheckError:
                raise
            except BiosigError as exc:
                raise self.fail(path, f"open() failed on a sample file: {exc}") from exc
            except Exception as exc:
                raise self.fail(path, f"open() raised {_exc(exc)}") from exc
        self.expect(recordings, _names(files), "open() yielded no recordings")
        self.report.checks.append("open")
        return recordings

    def _recording(self, rec: Recording, path: Path) -> None:
        for attr in ("id", "fs", "channels", "n_samples", "chunks"):
            self.expect(hasattr(rec, attr), path, f"open() yielded {rec!r}, which has no {attr}")
        where = f"{path}: recording {rec.id!r}"
        self.expect(isinstance(rec.id, str) and rec.id, path, f"recording id {rec.id!r} is no text")
        fs = rec.fs
        self.expect(
            isinstance(fs, (int, float, np.floating))
            and not isinstance(fs, bool)
            and math.isfinite(fs)
            and fs > 0,
            where,
            f"fs {fs!r} is not a positive number",
        )
        self.expect(
            isinstance(rec.channels, tuple)
            and rec.channels
            and all(isinstance(c, str) for c in rec.channels),
            where,
            f"channels {rec.channels!r} is not a non-empty tuple of names",
        )
        n = rec.n_samples
        self.expect(
            isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n > 0,
            where,
            f"n_samples {n!r} is not a positive whole number",
        )
        try:
            recording_times(rec)  # the core's own check of `times`, when there are any
        except BiosigError as exc:
            raise self.fail(None, str(exc)) from None

    def _read(self, rec: Recording, n: int, limit: int | None) -> tuple[np.ndarray, bool]:
        """Up to ``limit`` chunks of ``chunks(n)`` (all when ``None``), checked one by one;
        returns them joined and whether the recording was read to its end."""
        where = describe(rec)
        blocks, complete = [], True
        try:
            for i, chunk in enumerate(rec.chunks(n)):
                if limit is not None and i >= limit:
                    complete = False
                    break
                self.expect(
                    isinstance(chunk, np.ndarray),
                    where,
                    f"chunks({n}) gave a {type(chunk).__name__}",
                )
                self.expect(
                    chunk.dtype == np.float32, where, f"chunks({n}) gave {chunk.dtype}, not float32"
                )
                self.expect(
                    chunk.ndim == 2 and chunk.shape[0] == len(rec.channels),
                    where,
                    f"chunks({n}) gave shape {chunk.shape}, expected "
                    f"[{len(rec.channels)} channels, <={n}]",
                )
                self.expect(
                    0 < chunk.shape[1] <= n,
                    where,
                    f"chunks({n}) gave a block of {chunk.shape[1]} samples, expected 1 to {n}",
                )
                blocks.append(chunk)
        except PluginCheckError:
            raise
        except BiosigError as exc:
            raise self.fail(where, f"chunks({n}) failed on a sample file: {exc}") from exc
        except Exception as exc:
            raise self.fail(where, f"chunks({n}) raised {_exc(exc)}") from exc
        if not blocks:
            return np.zeros((len(rec.channels), 0), dtype=np.float32), complete
        return np.concatenate(blocks, axis=1), complete

    def chunks(self, rec: Recording, sizes: Sequence[int | None]) -> np.ndarray:
        """Checks ``chunks(n)`` for each size; returns the whole recording's samples."""
        where = describe(rec)
        whole, _ = self._read(rec, int(rec.n_samples), None)
        self.expect(
            whole.shape[1] == rec.n_samples,
            where,
            f"chunks({rec.n_samples}) gave {whole.shape[1]} samples, but n_samples is "
            f"{rec.n_samples}",
        )
        for size in sizes:
            n = int(rec.n_samples) if size is None else int(size)
            if n not in self.report.chunk_sizes:
                self.report.chunk_sizes.append(n)
            if n == rec.n_samples:
                continue
            data, complete = self._read(rec, n, self.max_chunks)
            if complete:
                self.expect(
                    data.shape[1] == rec.n_samples,
                    where,
                    f"chunks({n}) gave {data.shape[1]} samples in all, but n_samples is "
                    f"{rec.n_samples}",
                )
            self.expect(
                np.array_equal(data, whole[:, : data.shape[1]], equal_nan=True),
                where,
                f"chunks({n}) gave other samples than chunks({rec.n_samples})",
            )
        return whole

    def preprocessing(self, rec: Recording, raw: np.ndarray, fs_out: float) -> None:
        where = describe(rec)
        n_channels = len(rec.channels)
        # NaN is a missing sample to the core (its windows are skipped): a preprocessor may
        # carry NaN through from the raw samples, never make it of finite ones.
        nan_ok = bool(np.isnan(raw).any())
        one = self._preprocess(rec, fs_out, [raw], where, nan_ok)
        expected = model_length(rec, fs_out)
        self.expect(
            abs(one.shape[1] - expected) <= 1,
            where,
            f"the preprocessor gave {one.shape[1]} samples at {fs_out:g} Hz, expected "
            f"{expected} ({rec.n_samples} samples at {rec.fs:g} Hz)",
        )
        for bounds in _cuttings(raw.shape[1], self.chunkings):
            pieces = [raw[:, a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
            many = self._preprocess(rec, fs_out, pieces, where, nan_ok)
            self._same_output(where, one, many, pieces)
        self.expect(n_channels == one.shape[0], where, "the preprocessor changed the channels")

    def _same_output(
        self, where: str, one: np.ndarray, many: np.ndarray, pieces: list[np.ndarray]
    ) -> None:
        sizes = [p.shape[1] for p in pieces]
        shown = ", ".join(map(str, sizes[:12])) + (", …" if len(sizes) > 12 else "")
        self.expect(
            one.shape == many.shape,
            where,
            f"the preprocessor gave {one.shape[1]} samples from one chunk but {many.shape[1]} "
            f"from {len(pieces)} chunks of {shown} samples",
        )
        scale = float(np.nanmax(np.abs(one))) if one.size and not np.isnan(one).all() else 0.0
        # Relative to the signal's scale, whatever its unit (EEG in volts is ~1e-5); an
        # all-zero output is held to atol itself.
        atol = self.atol * scale if scale > 0 else self.atol
        close = np.isclose(many, one, rtol=self.rtol, atol=atol, equal_nan=True)
        if not close.all():
            c, t = (int(v) for v in np.argwhere(~close)[0])
            raise self.fail(
                where,
                f"the preprocessor gives other output in {len(pieces)} chunks of {shown} "
                f"samples than in one: channel {c}, sample {t}: {many[c, t]!r} instead of "
                f"{one[c, t]!r} ({int((~close).sum())} samples differ); carry its state "
                "across chunks",
            )

    def _preprocess(
        self, rec: Recording, fs_out: float, pieces: list[np.ndarray], where: str, nan_ok: bool
    ) -> np.ndarray:
        try:
            preprocess = make_preprocessor(self.plugin, rec, fs_out)
            outputs = [(f"chunk {i}", preprocess(piece.copy())) for i, piece in enumerate(pieces)]
            outputs.append(("flush()", preprocess.flush()))
        except BiosigError as exc:
            raise self.fail(where, f"preprocessing failed on a sample file: {exc}") from exc
        except Exception as exc:
            raise self.fail(where, f"the preprocessor raised {_exc(exc)}") from exc
        for what, out in outputs:
            self.expect(
                isinstance(out, np.ndarray) and out.ndim == 2,
                where,
                f"the preprocessor's output for {what} is not a [C, n] array: {out!r:.80}",
            )
            self.expect(
                out.dtype == np.float32,
                where,
                f"the preprocessor's output for {what} is {out.dtype}, not float32",
            )
            self.expect(
                out.shape[0] == len(rec.channels) or out.shape[1] == 0,
                where,
                f"the preprocessor's output for {what} has {out.shape[0]} channels, expected "
                f"{len(rec.channels)}",
            )
            self.expect(
                not np.isinf(out).any(),
                where,
                f"the preprocessor's output for {what} holds infinite values",
            )
            self.expect(
                nan_ok or not np.isnan(out).any(),
                where,
                f"the preprocessor's output for {what} holds NaN, though its raw samples hold "
                "none: NaN marks a missing sample, whose windows biosig skips",
            )
        parts = [out for _, out in outputs if out.shape[1]]
        if not parts:
            return np.zeros((len(rec.channels), 0), dtype=np.float32)
        return np.concatenate(parts, axis=1)

    def group(self, rec: Recording) -> None:
        try:
            key = self.plugin.group(rec)
        except Exception as exc:
            raise self.fail(describe(rec), f"group() raised {_exc(exc)}") from exc
        self.expect(isinstance(key, str), describe(rec), f"group() gave {key!r}, expected a str")

    # ------------------------------------------------------------------ labels

    def labels(self, source: Path | str, recordings: list[Recording]) -> None:
        where = source
        try:
            intervals = self.plugin.labels(source, recordings)
        except BiosigError as exc:
            raise self.fail(where, f"labels() failed: {exc}") from exc
        except Exception as exc:
            raise self.fail(where, f"labels() raised {_exc(exc)}") from exc
        self.expect(
            isinstance(intervals, list) and intervals,
            where,
            f"labels() gave {type(intervals).__name__} {intervals!r:.60}, expected a non-empty "
            "list of LabelledInterval",
        )
        lengths = {r.id: int(r.n_samples) for r in recordings}
        classes: set[str] = set()
        for interval in intervals:
            if not isinstance(interval, LabelledInterval):
                raise self.fail(where, f"labels() gave {interval!r}, not a LabelledInterval")
            n = lengths.get(interval.recording_id)
            self.expect(
                n is not None,
                where,
                f"{interval} names recording {interval.recording_id!r}, which is not among "
                f"the {len(lengths)} recordings given",
            )
            self.expect(
                0 <= interval.start < interval.stop <= n,
                where,
                f"{interval} lies outside its recording (0 <= start < stop <= {n} samples)",
            )
            if interval.label_end is not None:
                self.expect(
                    interval.stop <= interval.label_end <= n,
                    where,
                    f"{interval}: label_end must lie from stop to {n} samples",
                )
            self.expect(
                isinstance(interval.label, str) and interval.label,
                where,
                f"{interval}: its class is not a non-empty str",
            )
            classes.add(interval.label)
        self.report.n_intervals = len(intervals)
        self.report.label_classes = sorted(classes)
        self.report.checks.append("labels")

    # ------------------------------------------------------------------ errors

    def errors(self, files: list[Path], accepts_any_bytes: bool) -> None:
        suffixes = list(dict.fromkeys(p.suffix for p in files if p.is_file()))
        examples = {p.suffix: p for p in reversed(files) if p.is_file()}
        rng = np.random.default_rng(0)
        with tempfile.TemporaryDirectory(prefix="biosig-check-") as tmp:
            tmp_path = Path(tmp)
            for suffix in suffixes or [""]:
                missing = tmp_path / f"missing{suffix}"
                self._missing("find", missing, lambda p: self.plugin.find([p]))
                self._missing("open", missing, lambda p: list(self.plugin.open(p)))
                garbage = tmp_path / f"random-bytes{suffix}"
                garbage.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
                self._damaged(garbage, must_fail=not accepts_any_bytes)
                if suffix in examples:
                    sample = examples[suffix].read_bytes()
                    truncated = tmp_path / f"truncated{suffix}"
                    truncated.write_bytes(sample[: len(sample) // 2])
                    self._damaged(truncated, must_fail=False)
        self.report.checks.append("errors")

    def _missing(self, method: str, path: Path, call) -> None:
        try:
            call(path)
        except BiosigError as exc:
            self.expect(
                path.name in str(exc),
                path,
                f"{method}() of a missing path raised BiosigError without naming it: {exc}",
            )
            return
        except Exception as exc:
            raise self.fail(
                path, f"{method}() of a missing path raised {_exc(exc)}, expected BiosigError"
            ) from exc
        raise self.fail(path, f"{method}() of a missing path raised no error")

    def _damaged(self, path: Path, must_fail: bool) -> None:
        """The damaged file is reported as ``BiosigError`` naming it, wherever it shows."""
        stage = "find()"
        try:
            found = self.plugin.find([path])
            stage = "open()"
            for target in found:
                for item in self.plugin.open(target):
                    if isinstance(item, RecordingError):
                        self._names(item, path, "open() yielded")
                        return
                    stage = f"chunks() of recording {getattr(item, 'id', item)!r}"
                    for _ in item.chunks(1 << 16):
                        pass
                    stage = "open()"
        except BiosigError as exc:
            self._names(exc, path, f"{stage} raised")
            return
        except Exception as exc:
            raise self.fail(
                path,
                f"{stage} of a damaged file raised {_exc(exc)}; expected biosig.BiosigError "
                "(or RecordingError) naming the file",
            ) from exc
        self.expect(
            not must_fail,
            path,
            "a file of random bytes was read as recordings without an error; raise "
            "biosig.RecordingError naming it (or pass accepts_any_bytes=True for a raw format)",
        )

    def _names(self, error: BaseException, path: Path, how: str) -> None:
        self.expect(
            path.name in str(error),
            path,
            f"{how} {type(error).__name__} for a damaged file without naming it: {error}",
        )


def _cuttings(n: int, count: int) -> list[np.ndarray]:
    """Chunk boundaries (``0 … n``) for feeding ``n`` samples to a preprocessor: the sizes
    of :data:`PIECES` in turn (47 of them, then the rest), then ``count`` random cuttings
    with a fixed seed, each cut at up to :data:`CUTS` points, half among the first
    :data:`EARLY` samples and half anywhere, whatever the recording's length (so a
    100-sample recording is fed in dozens of chunks of 1 to a few samples, a long one in
    chunks of every size)."""
    bounds, start, i = [0], 0, 0
    while start < n:
        start = min(n, start + (PIECES[i % len(PIECES)] if i < 47 else n))
        bounds.append(start)
        i += 1
    cuttings = [np.array(bounds)]
    rng = np.random.default_rng(0)
    for _ in range(count if n > 1 else 0):
        early = rng.integers(1, min(n, EARLY + 1), size=CUTS // 2)
        anywhere = rng.integers(1, n, size=CUTS // 2)
        cuts = np.unique(np.concatenate([early, anywhere]))
        cuttings.append(np.concatenate([[0], cuts, [n]]))
    return cuttings


def _spread(recordings: list[Recording], k: int) -> list[Recording]:
    """At most ``k`` of ``recordings``, spread evenly over them (first and last included)."""
    if len(recordings) <= k:
        return recordings
    picks = np.unique(np.linspace(0, len(recordings) - 1, max(k, 1)).round().astype(int))
    return [recordings[i] for i in picks]


def _names(paths: Sequence[Path]) -> str:
    return ", ".join(str(p) for p in paths[:3]) + (" …" if len(paths) > 3 else "")


def _exc(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
