"""The plugin contract: what a domain plugin offers the core.

A plugin knows a file format, a sampling rate, a filter chain and where labels come from;
the core knows tensors, windows, models and training. Plugins subclass :class:`Plugin` and
register the class (or an instance) under the entry-point group ``biosig.plugins``.
"""

from __future__ import annotations

import contextlib
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from ..errors import BiosigError

#: Version of this contract. A plugin declares the version it was written against in
#: ``Plugin.api_version``; the registry refuses versions it does not support.
API_VERSION = 1
SUPPORTED_API_VERSIONS = frozenset({1})

Normalization = Literal["window", "recording", "dataset", "none"]
NORMALIZATIONS: tuple[str, ...] = ("window", "recording", "dataset", "none")
Split = Literal["auto", "group", "time"]
SPLITS: tuple[str, ...] = ("auto", "group", "time")
#: How window probabilities become one per recording: ``mean`` (of the probabilities),
#: ``geometric`` (normalised mean of log-probabilities: windows as independent evidence, so
#: a few confident windows outweigh many unsure ones, as for a nanopore read) or ``vote``
#: (the fraction of windows predicting each class).
AGGREGATIONS: tuple[str, ...] = ("mean", "geometric", "vote")
#: How ``predict --plot`` draws a plugin's signal (``Plugin.plot_style``): ``plain`` axes,
#: or ``ecg``, the grid of ECG paper (0.2 s by 0.5 mV squares of 0.04 s by 0.1 mV), for
#: signals in volts, millivolts or microvolts.
PLOT_STYLES: tuple[str, ...] = ("plain", "ecg")


@dataclass(frozen=True)
class PluginDefaults:
    """Settings a plugin suggests for its domain; flags and pipelines override them.

    ``window`` and ``hop`` are in samples at ``sample_rate`` (the model's rate, after the
    preprocessor). ``normalization`` says how windows are scaled before the model:
    ``window`` (z-score each window), ``recording`` (the preprocessor already did it),
    ``dataset`` (per-channel statistics of the training set, kept in the checkpoint) or
    ``none``. ``split`` says how ``train`` holds out validation windows: ``group`` (whole
    groups, see ``Plugin.group``), ``time`` (the tail of each recording in time, after a
    gap, for series where the future must not inform the past) or ``auto`` (by group,
    unless some class has a single group, then by time). ``aggregation`` says how
    ``predict`` turns window probabilities into a recording's (see
    :data:`AGGREGATIONS`: ``mean``, ``geometric`` or ``vote``). ``labels`` is the label
    keyword (one of the plugin's ``label_keywords``) used when ``--labels`` is not given:
    ``folder`` for a plugin whose users sort files into one folder per class.
    """

    sample_rate: float
    window: int
    hop: int
    channels: tuple[str, ...] | None = None
    normalization: Normalization = "window"
    split: Split = "auto"
    aggregation: str = "mean"
    labels: str | None = None


@dataclass(frozen=True)
class PluginOption:
    """A setting of one plugin (an annotator, a channel selection, a filter band).

    Commands take it as ``--<name>`` (underscores as dashes) and pipeline files as a key
    ``<name>``. ``preprocessing`` options shape what the model sees (channels, filters):
    ``train`` keeps them in the checkpoint and ``predict``/``evaluate`` reuse them, so a
    model is never fed data prepared differently from its training data.
    """

    name: str
    default: str | int | float | bool | None
    help: str
    type: type = str
    preprocessing: bool = False
    #: the value names a file or folder: a pipeline file's relative value is read from
    #: that file's folder (a flag's, from the working directory)
    path: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def parse(self, value: Any) -> Any:
        """``value`` (a flag's text or a pipeline's TOML value) as this option's type."""
        if value is None:
            return value
        # TOML gives typed values: a bool is no number, and 7.5 is no whole number
        if self.type in (int, float) and isinstance(value, bool):
            raise BiosigError(f"{self.flag}: expected {self.type.__name__}, got {value!r}")
        if self.type is int and isinstance(value, float) and not value.is_integer():
            raise BiosigError(f"{self.flag}: expected int, got {value!r}")
        if isinstance(value, self.type):
            return value
        if self.type is bool:
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise BiosigError(f"{self.flag}: expected true or false, got {value!r}")
        if isinstance(value, (list, tuple)) and self.type is str:
            return ",".join(str(v) for v in value)  # a TOML list for a comma-separated value
        try:
            return self.type(value)
        except (TypeError, ValueError):
            raise BiosigError(
                f"{self.flag}: expected {self.type.__name__}, got {value!r}"
            ) from None


@dataclass(frozen=True)
class LabelledInterval:
    """A span ``[start, stop)`` of one recording, in original samples, with its class.

    With ``label_end`` the label is a *forecast*, derived from samples the model must not
    see: exactly one window is labelled, the one ending at ``stop``, and its label was
    computed from samples up to ``label_end`` (exclusive, at least ``stop``). Time splits
    keep a training window's ``[start, label_end)`` clear of every validation window.
    """

    recording_id: str
    start: int
    stop: int
    label: str
    label_end: int | None = None


class RecordingError(BiosigError):
    """A damaged file or recording (corrupt, truncated, undecodable signal).

    Commands skip it with a warning naming it, and summarise at the end; with ``--strict``
    they stop instead. Raise it from ``open`` or from ``chunks``; raise it before the first
    chunk where the damage can be seen up front, so no part of the recording is used.
    """


@runtime_checkable
class Recording(Protocol):
    """One lazily read signal: metadata up front, samples only when ``chunks`` is iterated.

    A recording may also carry ``times``: one ascending timestamp per original sample
    (``datetime64`` or seconds), for series sampled irregularly on a shared calendar (price
    bars). When every recording has them, time splits and ``--span`` cut all recordings at
    the same moment, so one series never trains on days another is validated on.
    """

    id: str
    fs: float
    channels: tuple[str, ...]
    n_samples: int

    def chunks(self, n: int) -> Iterator[np.ndarray]:
        """Yield float32 blocks shaped ``[C, <=n]`` in order, read from disk as asked for."""
        ...


class Preprocessor(Protocol):
    """Stateful transform of raw chunks into model-ready chunks at ``fs_out``.

    Feeding a recording in one chunk or in many must give the same concatenated output:
    carry filter state across calls. ``flush`` returns whatever is held back at the end.
    """

    fs_out: float

    def __call__(self, chunk: np.ndarray) -> np.ndarray: ...

    def flush(self) -> np.ndarray: ...


class IdentityPreprocessor:
    """Passes chunks through as float32; for plugins whose data is already model-ready."""

    def __init__(self, fs: float, n_channels: int | None = None) -> None:
        self.fs_out = float(fs)
        self._n_channels = n_channels

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        return np.asarray(chunk, dtype=np.float32)

    def flush(self) -> np.ndarray:
        return np.zeros((self._n_channels or 0, 0), dtype=np.float32)


class Chain:
    """Preprocessors applied in order, as one preprocessor (filter, then resample, …).

    ``flush`` drains each stage into the next, so what a stage holds back at the end still
    passes through every stage after it.
    """

    def __init__(self, *stages: Preprocessor) -> None:
        if not stages:
            raise ValueError("a chain needs at least one stage")
        self.stages = stages
        self.fs_out = stages[-1].fs_out

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        for stage in self.stages:
            chunk = stage(chunk)
        return chunk

    def flush(self) -> np.ndarray:
        pieces = []
        for i, stage in enumerate(self.stages):
            tail = stage.flush()
            for later in self.stages[i + 1 :]:
                tail = later(tail)
            pieces.append(tail)
        return np.concatenate(pieces, axis=1)


@dataclass(frozen=True)
class DemoData:
    """Synthetic labelled files a plugin writes for ``biosig demo``.

    ``labels`` is a labels file or one of the plugin's label keywords. ``settings`` may
    adjust the demo's training run (``epochs``, ``window``, ``hop``, ``batch_size``,
    ``sample_rate``, ``normalization``, ``kernel_features``, and ``options``: the plugin's
    own options by name) so that the whole demo, every plugin's, takes under three minutes
    on a 2-core CPU; choose them on the demo's own held-out figures.
    """

    inputs: tuple[Path, ...]
    labels: Path | str
    description: str
    settings: dict = field(default_factory=dict)


class Plugin(ABC):
    """Base class for biosig plugins.

    Subclasses set the class attributes and implement ``find``, ``open`` and ``labels``.
    ``preprocessor``, ``group`` and ``make_demo_data`` have defaults.
    """

    #: The contract version the plugin was written against: declare it as a literal
    #: (``api_version = 1``), never as ``biosig.API_VERSION``, so a plugin written for an
    #: older contract is refused rather than silently taking the newest number.
    api_version: int
    name: str = ""
    version: str = "0"
    summary: str = ""
    defaults: PluginDefaults
    #: Which label sources ``labels`` accepts, for help texts (e.g. "labels.tsv or .npy").
    label_formats: str = "labels.tsv (id<TAB>class)"
    #: Words ``--labels`` may give instead of a file, naming labels the recordings carry
    #: themselves (``beats``: a WFDB record's beat annotations). ``labels`` then receives
    #: the word as a ``str``.
    label_keywords: tuple[str, ...] = ()
    #: What a user can do about recordings a label keyword leaves without labels (printed
    #: with the warning naming them), e.g. ``"give --unannotated N to label them N"``.
    unlabelled_hint: str = ""
    #: Settings particular to this plugin; see :class:`PluginOption`.
    options: tuple[PluginOption, ...] = ()
    #: The unit of the samples ``Recording.chunks`` yields (``"mV"``, ``"pA"``, ``"g"``),
    #: which plots put on their y axes; "" when not known. A recording carrying ``units``
    #: (one per channel, as a WFDB header gives them) overrides it; see :func:`channel_units`.
    signal_unit: str = ""
    #: How ``predict --plot`` draws the signal: one of :data:`PLOT_STYLES`.
    plot_style: str = "plain"

    @property
    def settings(self) -> dict[str, Any]:
        """Every option's value: as configured, else its default."""
        configured = getattr(self, "_configured", {})
        return {o.name: configured.get(o.name, o.default) for o in self.options}

    def configure(self, values: dict[str, Any]) -> None:
        """Set options by name (values as text or typed); an unknown name is an error
        listing the plugin's options."""
        known = {o.name: o for o in self.options}
        configured = dict(getattr(self, "_configured", {}))
        for name, value in values.items():
            option = known.get(name.replace("-", "_"))
            if option is None:
                flags = ", ".join(o.flag for o in self.options) or "none"
                raise BiosigError(
                    f"plugin {self.name!r} has no option {name!r} (its options: {flags})"
                )
            configured[option.name] = option.parse(value)
        self._configured = configured

    @abstractmethod
    def find(self, inputs: Sequence[str | Path]) -> list[Path]:
        """Expand files, directories and globs into the files this plugin reads.

        Raise :class:`biosig.BiosigError` naming a path that is missing or unreadable.
        """

    @abstractmethod
    def open(self, path: Path) -> Iterator[Recording | RecordingError]:
        """Yield the recordings held in one file.

        Raise :class:`RecordingError` when the whole file is damaged; yield one in place of
        a single damaged recording, so the file's other recordings are still read.
        """

    def preprocessor(self, recording: Recording, fs_out: float) -> Preprocessor:
        """A fresh stateful preprocessor turning ``recording``'s chunks into model-ready
        chunks at the model's rate ``fs_out``.

        It receives the recording, not just its rate, so that it can use what the plugin
        knows of it (calibration, cheap whole-read statistics). The default resamples when
        the rates differ and otherwise passes samples through.
        """
        n_channels = len(recording.channels)
        if recording.fs == fs_out:
            return IdentityPreprocessor(fs_out, n_channels)
        from ..dsp.resample import StreamingResampler  # scipy is imported only when needed

        return StreamingResampler(recording.fs, fs_out, n_channels)

    @abstractmethod
    def labels(self, source: Path | str, recordings: Sequence[Recording]) -> list[LabelledInterval]:
        """Labelled intervals, in original samples, for the given recordings.

        ``source`` is the labels file, or one of ``label_keywords`` as a ``str``.
        """

    def group(self, recording: Recording) -> str:
        """Key for leakage-safe splits: windows of one group never straddle train and
        validation. Defaults to the recording itself."""
        return recording.id

    def make_demo_data(self, directory: Path, seed: int = 0) -> DemoData | None:
        """Write a small synthetic labelled data set for ``biosig demo``; ``None`` if the
        plugin has none."""
        return None


def recording_times(recording: Recording) -> np.ndarray | None:
    """The recording's ``times`` as float seconds (``None`` when it has none)."""
    times = getattr(recording, "times", None)
    if times is None:
        return None
    times = np.asarray(times)
    if np.issubdtype(times.dtype, np.datetime64):
        seconds = times.astype("datetime64[ns]").astype(np.int64) / 1e9
    else:
        seconds = times.astype(np.float64)
    if len(seconds) != recording.n_samples or np.any(np.diff(seconds) < 0):
        raise BiosigError(
            f"{describe(recording)}: its times must be one ascending timestamp per sample "
            f"(got {len(seconds)} for {recording.n_samples} samples)"
        )
    return seconds


def channel_units(plugin: Plugin, recording: Recording) -> tuple[str, ...]:
    """The unit of each of ``recording``'s channels, "" where unknown: the recording's own
    ``units`` where it carries them (and names one), else the plugin's ``signal_unit``."""
    own = getattr(recording, "units", None)
    default = str(getattr(plugin, "signal_unit", "") or "")
    n = len(recording.channels)
    if own is None or len(own) != n:
        return (default,) * n
    return tuple(str(unit or default) for unit in own)


def describe(recording: Recording) -> str:
    """How messages name a recording: ``<file>: recording <id>`` (just ``recording <id>``
    when it has no file)."""
    source = getattr(recording, "source", None)
    return f"{source}: recording {recording.id}" if source else f"recording {recording.id}"


def iter_recordings(
    plugin: Plugin, files: Iterable[Path], on_damage: Callable[[RecordingError], None] | None = None
) -> Iterator[Recording]:
    """All recordings of all files, in order.

    A damaged file (``open`` raises :class:`RecordingError`) or recording (``open``
    yields one) goes to ``on_damage``, which may re-raise; without ``on_damage`` the error
    propagates.
    """
    first_seen: dict[str, Path] = {}
    for path in files:
        try:
            for item in _opened(plugin, path):
                if not isinstance(item, RecordingError):
                    if item.id not in first_seen:
                        first_seen[item.id] = Path(path)
                        yield item
                        continue
                    # One id, two recordings: labels and outputs keyed by id would mix them.
                    item = RecordingError(
                        f"{path}: recording {item.id} was already read from "
                        f"{first_seen[item.id]}; the second copy is not used"
                    )
                if on_damage is None:
                    raise item
                on_damage(item)
        except RecordingError as error:
            if on_damage is None:
                raise
            on_damage(error)


def _opened(plugin: Plugin, path: Path) -> Iterator[Recording | RecordingError]:
    """``plugin.open(path)``, with any error of the plugin's own (not a
    :class:`RecordingError`, nor a :class:`~biosig.errors.BiosigError` about its settings)
    turned into damage naming the plugin and the file: a third-party reader's
    ``ValueError`` on one odd file is a skipped file, not an internal error. A FIFO or
    device found among the files is damage too: opening it could wait forever."""
    path = Path(path)
    if path.exists() and not (path.is_file() or path.is_dir()):
        raise RecordingError(f"{path}: not a regular file")
    with reader_errors_as_damage(f"{path}: plugin {plugin.name!r} could not read it"):
        for item in plugin.open(path):
            problem = None if isinstance(item, RecordingError) else _claims_problem(item)
            yield item if problem is None else RecordingError(f"{describe(item)}: {problem}")


@contextlib.contextmanager
def reader_errors_as_damage(what: str) -> Iterator[None]:
    """Turn an error of a reader's own (not a :class:`RecordingError`, nor a
    :class:`~biosig.errors.BiosigError` about its settings) into damage: ``what (Type:
    message)``. Opening files and reading recordings both go through it, so a third party's
    ``ValueError`` or ``OSError`` skips one file or recording instead of ending the run."""
    try:
        yield
    except (RecordingError, BiosigError):
        raise
    except Exception as exc:
        raise RecordingError(f"{what} ({type(exc).__name__}: {exc})") from exc


def _claims_problem(recording: Recording) -> str | None:
    """What is wrong with what a recording says of itself (its rate, length, channels),
    checked before anything is planned or allocated from it; ``None`` when nothing."""
    fs, n, channels = recording.fs, recording.n_samples, recording.channels
    if not isinstance(fs, (int, float, np.number)) or not math.isfinite(fs) or fs <= 0:
        return f"sampling rate {fs!r} is not a positive number"
    if not isinstance(n, (int, np.integer)) or n < 0:
        return f"sample count {n!r} is not a whole number of samples"
    if not channels:
        return "no channels"
    return None


class ArrayRecording:
    """A recording backed by an array-like ``[C, n]`` (an ``np.memmap`` reads lazily).

    Chunks are sliced and cast to float32 one block at a time, so a memory-mapped file is
    never converted whole.
    """

    def __init__(
        self,
        id: str,
        data: np.ndarray,
        fs: float,
        channels: Sequence[str] | None = None,
        source: Path | None = None,
    ) -> None:
        if data.ndim != 2:
            raise ValueError(f"recording {id}: expected [C, n] data, got shape {data.shape}")
        self.id = id
        self.fs = float(fs)
        self.channels = tuple(channels) if channels else tuple(f"ch{i}" for i in range(len(data)))
        self.n_samples = int(data.shape[1])
        self.source = source
        self._data = data

    def chunks(self, n: int) -> Iterator[np.ndarray]:
        for start in range(0, self.n_samples, n):
            yield np.asarray(self._data[:, start : start + n], dtype=np.float32)

    def __repr__(self) -> str:
        return (
            f"ArrayRecording(id={self.id!r}, fs={self.fs}, channels={len(self.channels)}, "
            f"n_samples={self.n_samples})"
        )
