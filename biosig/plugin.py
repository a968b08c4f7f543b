"""The plugin contract: what a domain plugin offers the core.

A plugin knows a file format, a sampling rate, a filter chain and where labels come from;
the core knows tensors, windows, models and training. Plugins subclass :class:`Plugin` and
register the class (or an instance) under the entry-point group ``biosig.plugins``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np

#: Version of this contract. A plugin declares the version it was written against in
#: ``Plugin.api_version``; the registry refuses versions it does not support.
API_VERSION = 1
SUPPORTED_API_VERSIONS = frozenset({1})

Normalization = Literal["window", "recording", "dataset", "none"]
NORMALIZATIONS: tuple[str, ...] = ("window", "recording", "dataset", "none")


@dataclass(frozen=True)
class PluginDefaults:
    """Settings a plugin suggests for its domain; flags and pipelines override them.

    ``window`` and ``hop`` are in samples at ``sample_rate`` (the model's rate, after the
    preprocessor). ``normalization`` says how windows are scaled before the model:
    ``window`` (z-score each window), ``recording`` (the preprocessor already did it),
    ``dataset`` (per-channel statistics of the training set, kept in the checkpoint) or
    ``none``.
    """

    sample_rate: float
    window: int
    hop: int
    channels: tuple[str, ...] | None = None
    normalization: Normalization = "window"


@dataclass(frozen=True)
class LabelledInterval:
    """A span ``[start, stop)`` of one recording, in original samples, with its class."""

    recording_id: str
    start: int
    stop: int
    label: str


@runtime_checkable
class Recording(Protocol):
    """One lazily read signal: metadata up front, samples only when ``chunks`` is iterated."""

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


@dataclass(frozen=True)
class DemoData:
    """Synthetic labelled files a plugin writes for ``biosig demo``."""

    inputs: tuple[Path, ...]
    labels: Path
    description: str


class Plugin(ABC):
    """Base class for biosig plugins.

    Subclasses set the class attributes and implement ``find``, ``open`` and ``labels``.
    ``preprocessor``, ``group`` and ``make_demo_data`` have defaults.
    """

    api_version: int = API_VERSION
    name: str = ""
    version: str = "0"
    summary: str = ""
    defaults: PluginDefaults
    #: Which label sources ``labels`` accepts, for help texts (e.g. "labels.tsv or .npy").
    label_formats: str = "labels.tsv (id<TAB>class)"

    @abstractmethod
    def find(self, inputs: Sequence[str | Path]) -> list[Path]:
        """Expand files, directories and globs into the files this plugin reads.

        Raise :class:`biosig.BiosigError` naming a path that is missing or unreadable.
        """

    @abstractmethod
    def open(self, path: Path) -> Iterator[Recording]:
        """Yield the recordings held in one file."""

    def preprocessor(self, fs: float, n_channels: int) -> Preprocessor:
        """A fresh stateful preprocessor for one recording sampled at ``fs``."""
        return IdentityPreprocessor(fs, n_channels)

    @abstractmethod
    def labels(self, source: Path, recordings: Sequence[Recording]) -> list[LabelledInterval]:
        """Labelled intervals, in original samples, for the given recordings."""

    def group(self, recording: Recording) -> str:
        """Key for leakage-safe splits: windows of one group never straddle train and
        validation. Defaults to the recording itself."""
        return recording.id

    def make_demo_data(self, directory: Path, seed: int = 0) -> DemoData | None:
        """Write a small synthetic labelled data set for ``biosig demo``; ``None`` if the
        plugin has none."""
        return None


def iter_recordings(plugin: Plugin, files: Iterable[Path]) -> Iterator[Recording]:
    """All recordings of all files, in order."""
    for path in files:
        yield from plugin.open(path)


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
