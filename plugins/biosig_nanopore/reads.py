"""One nanopore read as a biosig recording: metadata up front, the int16 signal decoded
when first needed and converted to picoamps one chunk at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from biosig import RecordingError

#: Read-level MAD → standard deviation of a normal distribution.
MAD_TO_STD = 1.4826


class NanoporeRead:
    """A read whose ``chunks`` yield float32 picoamps: ``(raw + offset) * scale``.

    ``raw_blocks`` decodes the int16 signal block by block (POD5 signal rows, FAST5 HDF5
    slices), raising :class:`RecordingError` on damage; the whole read is never held, as
    float or as int16. Normalisation statistics take one pass over the blocks and the
    chunks a second: decoding twice is cheaper than holding a multi-million-sample read.
    """

    channels = ("current_pA",)

    def __init__(
        self,
        read_id: str,
        fs: float,
        n_samples: int,
        offset: float,
        scale: float,
        source: Path,
        decode: Callable[[], Iterator[np.ndarray]],
    ) -> None:
        self.id = read_id
        self.fs = float(fs)
        self.n_samples = int(n_samples)
        self.offset = float(offset)
        self.scale = float(scale)
        self.source = source
        self._decode = decode

    def raw_blocks(self) -> Iterator[np.ndarray]:
        """The int16 signal in blocks, checked against the stored sample count (POD5 damage
        can be silent)."""
        seen = 0
        for block in self._decode():
            seen += len(block)
            if seen > self.n_samples:
                break
            yield block
        if seen != self.n_samples:
            found = f"more than {self.n_samples}" if seen > self.n_samples else str(seen)
            raise RecordingError(
                f"{self.source}: read {self.id}: signal has {found} samples but the file "
                f"says {self.n_samples}"
            )

    def raw(self) -> np.ndarray:
        """The whole int16 signal (for inspection and tests; streaming never needs it)."""
        blocks = list(self.raw_blocks())
        return np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.int16)

    def chunks(self, n: int) -> Iterator[np.ndarray]:
        for block in self.raw_blocks():
            for start in range(0, len(block), n):
                pa = block[start : start + n].astype(np.float32)[None, :]
                # A damaged calibration can overflow to inf: the core names that sample
                # as damage, so NumPy's warning would only add noise.
                with np.errstate(over="ignore", invalid="ignore"):
                    pa += self.offset  # in place: one float copy per chunk, not three
                    pa *= self.scale
                yield pa

    def median_mad(self) -> tuple[float, float]:
        """Median and median absolute deviation in picoamps, exact, from a histogram of the
        int16 values built block by block."""
        counts = np.zeros(1 << 16, dtype=np.int64)
        for block in self.raw_blocks():
            for start in range(0, len(block), 1 << 16):  # bincount's index copy stays small
                part = block[start : start + (1 << 16)].view(np.uint16) ^ 0x8000
                counts += np.bincount(part, minlength=1 << 16)
        values = np.arange(1 << 16, dtype=np.int64) - (1 << 15)
        median = _weighted_median(values, counts)
        mad = _weighted_median(np.abs(values - median), counts)
        return (median + self.offset) * self.scale, mad * abs(self.scale)

    def __repr__(self) -> str:
        return f"NanoporeRead({self.id!r}, fs={self.fs:g}, n_samples={self.n_samples})"


def _weighted_median(values: np.ndarray, counts: np.ndarray) -> float:
    """Median of ``values`` repeated ``counts`` times (mean of the two middle ones when even,
    as ``np.median`` does)."""
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(counts[order])
    total = int(cumulative[-1])
    if total == 0:
        return float("nan")
    lower = values[order][np.searchsorted(cumulative, (total - 1) // 2, side="right")]
    upper = values[order][np.searchsorted(cumulative, total // 2, side="right")]
    return (float(lower) + float(upper)) / 2


class ReadNormalizer:
    """Per-read robust normalisation, ``(pA - median) / (1.4826 * MAD)``, then resampling to
    the model rate. Stateless apart from the resampler, so chunking cannot change it."""

    def __init__(self, read: NanoporeRead, fs_out: float) -> None:
        from biosig import StreamingResampler

        median, mad = read.median_mad()
        self.shift = median
        self.spread = max(MAD_TO_STD * mad, 1e-3)  # a flat read must not divide by zero
        self.fs_out = float(fs_out)
        self._resample = StreamingResampler(read.fs, fs_out, 1) if read.fs != fs_out else None

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        scaled = np.subtract(chunk, self.shift, dtype=np.float32)
        scaled /= self.spread
        return self._resample(scaled) if self._resample else scaled

    def flush(self) -> np.ndarray:
        if self._resample:
            return self._resample.flush()
        return np.zeros((1, 0), dtype=np.float32)
