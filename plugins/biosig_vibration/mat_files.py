"""MATLAB v5 ``.mat`` recordings (the CWRU bearing data): one recording per file, one
channel per chosen vector variable.

CWRU files hold ``X097_DE_time``, ``X097_FE_time``, ``X105_BA_time``, ``X105RPM``…, and the
number need not match the file name (``B028_0.mat`` holds ``X048_DE_time``), so channels
are chosen by pattern (``_DE_time$`` unless ``--channels`` says otherwise). ``open`` reads
only the variable directory (``scipy.io.whosmat``); the data is loaded when ``chunks`` is
first iterated. MATLAB v7.3 files are HDF5, which scipy does not read: they are refused in
one line.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from biosig import RecordingError, check_claim

from .channels import match_channels
from .mat_layout import check_variable_tags

#: The drive-end accelerometer, CWRU's usual channel.
DEFAULT_CHANNELS = ("_DE_time$",)
V73 = "MATLAB v7.3 (HDF5) files are not read: save with -v7 or export CSV"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_NUMERIC = {
    "double",
    "single",
    "logical",
    *(f"{s}int{b}" for s in ("", "u") for b in (8, 16, 32, 64)),
}


def check_not_v73(path: Path) -> None:
    """Refuse a v7.3 file (an HDF5 file behind a 512-byte MATLAB header, or plain HDF5)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(520)
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if b"MATLAB 7.3" in head[:116] or head.startswith(_HDF5_SIGNATURE):
        raise RecordingError(f"{path}: {V73}")
    if head[512:520] == _HDF5_SIGNATURE:
        raise RecordingError(f"{path}: {V73}")


def mat_variables(path: Path) -> list[tuple[str, tuple[int, ...], str]]:
    """``(name, shape, class)`` of every variable, read from the file's directory only."""
    import scipy.io

    check_not_v73(path)
    try:
        return [(n, tuple(s), c) for n, s, c in scipy.io.whosmat(str(path))]
    except NotImplementedError:
        raise RecordingError(f"{path}: {V73}") from None
    except Exception as exc:  # scipy raises ValueError, TypeError, OSError… on a bad file
        raise RecordingError(f"{path}: not a readable MATLAB file ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _length(shape: tuple[int, ...]) -> int | None:
    """Samples of a vector shaped ``(N, 1)``, ``(1, N)`` or ``(N,)``; ``None`` otherwise."""
    if len(shape) == 1:
        return shape[0]
    if len(shape) == 2 and 1 in shape:
        return max(shape)
    return None


class MatRecording:
    """Chosen vector variables of one ``.mat`` file, loaded when first read."""

    def __init__(
        self, path: Path, names: Sequence[str], n_samples: int, fs: float, id: str | None = None
    ) -> None:
        self.id = id or path.stem
        self.source = path
        self.fs = float(fs)
        self.channels = tuple(names)
        self.n_samples = int(n_samples)

    def load(self) -> np.ndarray:
        """The chosen variables as float64 ``[C, n]`` (the whole file: MATLAB v5 keeps each
        variable in one compressed block)."""
        import scipy.io

        # The shapes come from the file's directory: a claim, checked before scipy inflates
        # the variables (read, then stacked: twice the float64 samples).
        check_claim(
            self.source,
            f"variables {', '.join(self.channels)} ({self.n_samples:,} samples each)",
            2 * 8 * self.n_samples * len(self.channels),
        )
        check_variable_tags(self.source, self.channels)
        try:
            loaded = scipy.io.loadmat(str(self.source), variable_names=list(self.channels))
        except NotImplementedError:
            raise RecordingError(f"{self.source}: {V73}") from None
        except Exception as exc:  # a truncated or corrupt block
            raise RecordingError(
                f"{self.source}: cannot load {', '.join(self.channels)} ({_first_line(exc)})"
            ) from None
        rows = []
        for name in self.channels:
            if name not in loaded:
                raise RecordingError(f"{self.source}: variable {name} could not be read")
            values = np.asarray(loaded[name])
            if values.size != self.n_samples or not np.issubdtype(values.dtype, np.number):
                raise RecordingError(
                    f"{self.source}: variable {name} holds {values.shape} {values.dtype}, "
                    f"expected {self.n_samples} numbers"
                )
            rows.append(values.astype(np.float64, copy=False).ravel())
        return np.stack(rows)

    def chunks(self, n: int) -> Iterator[np.ndarray]:
        # Loaded per pass and not kept: a run over many files holds one at a time.
        data = self.load()
        for start in range(0, self.n_samples, max(1, int(n))):
            # A value beyond float32 becomes inf, which the core names as damage.
            with np.errstate(over="ignore", invalid="ignore"):
                yield data[:, start : start + n].astype(np.float32)

    def __repr__(self) -> str:
        return (
            f"MatRecording(id={self.id!r}, fs={self.fs:g}, channels={self.channels}, "
            f"n_samples={self.n_samples})"
        )


def inspect_mat(path: Path, items: Sequence[str]) -> tuple[list[str], int]:
    """The variables ``items`` choose (default ``_DE_time$``) and their common length. A
    pattern matching nothing, or a choice that is not a vector of numbers, is a
    :class:`RecordingError` listing the variables the file holds."""
    path = Path(path)
    variables = mat_variables(path)
    if not variables:
        raise RecordingError(f"{path}: holds no variables")
    names = [name for name, _, _ in variables]
    picked = match_channels(names, items or DEFAULT_CHANNELS, path, "variables")
    chosen = [variables[i] for i in picked]
    lengths = set()
    for name, shape, kind in chosen:
        length = _length(shape)
        if length is None or length < 2 or kind not in _NUMERIC:
            listing = ", ".join(f"{n} {'x'.join(map(str, s))}" for n, s, _ in variables)
            raise RecordingError(
                f"{path}: variable {name} ({'x'.join(map(str, shape))} {kind}) is not a "
                f"signal vector (its variables: {listing})"
            )
        lengths.add(length)
    if len(lengths) > 1:
        listing = ", ".join(f"{n} {_length(s)}" for n, s, _ in chosen)
        raise RecordingError(f"{path}: the chosen variables differ in length ({listing})")
    return [name for name, _, _ in chosen], lengths.pop()
