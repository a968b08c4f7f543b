"""Filtering and resampling of ECG/EEG chunks, identical however a record is chunked.

The chain runs at the record's own rate, then resamples to the model's:

1. Gaps (NaN: a missing segment of a multi-segment record, an invalid sample) are held at
   the channel's last valid value, so the filters run on without their state turning NaN,
   and remembered as a mask.
2. Band-pass (baseline removal and low-pass in one causal Butterworth filter) and an
   optional mains notch, as ``biosig.StreamingFilter`` s carrying state across chunks. Being
   causal they never look ahead, so no whole-record statistic is ever taken and a 24-hour
   record streams in constant memory. Where a record's rate is above the model's, the
   low-pass also helps the resampler's anti-aliasing. Each filter restarts where a gap
   ends, so the signal's return from the held value does not ring.
3. ``biosig.StreamingResampler`` to the model rate, the gap mask riding along as extra
   channels; a resampled sample the mask touches becomes NaN again, and the core skips the
   windows that hold it.

Normalisation is left to the core (per window, the plugins' default).
"""

from __future__ import annotations

import numpy as np

from biosig import Chain, StreamingFilter, StreamingResampler, band_pass_sos, notch_sos

#: A resampled mask value above this marks the sample missing: anything the interpolating
#: filter spread from a gap sample is not trusted.
_MASK_THRESHOLD = 1e-3


class GapHold:
    """Replaces NaN by the channel's last valid sample (zero before the first) and appends
    the gap mask as ``C`` extra channels, carrying the held values across chunks."""

    def __init__(self, n_channels: int, fs: float) -> None:
        self.n_channels = n_channels
        self.fs_out = float(fs)
        self._last = np.zeros(n_channels, dtype=np.float64)

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        x = np.array(chunk, dtype=np.float64)
        gaps = np.isnan(x)
        if gaps.any():
            for c in np.flatnonzero(gaps.any(axis=1)):
                # forward fill: each NaN takes the value of the last valid sample before it
                valid = np.where(~gaps[c], np.arange(x.shape[1]), -1)
                last = np.maximum.accumulate(valid)
                held = np.where(last >= 0, x[c, np.maximum(last, 0)], self._last[c])
                x[c] = held
        if x.shape[1]:
            self._last = x[:, -1].copy()
        return np.concatenate([x, gaps.astype(np.float64)], axis=0)

    def flush(self) -> np.ndarray:
        self._last[:] = 0
        return np.zeros((2 * self.n_channels, 0), dtype=np.float64)


class SignalFilters:
    """The band-pass and notch filters applied to the signal rows only, not the mask.

    Where a channel's gap ends, its filters restart at the first valid sample, as at the
    start of a stream: the signal rarely resumes at the held level, and the step would
    make a 0.5 Hz high-pass ring for seconds into the windows after the gap. Where that is
    depends only on the mask, so the output is the same in any chunking.
    """

    def __init__(self, n_channels: int, fs: float, sections: list[np.ndarray]) -> None:
        self.n_channels = n_channels
        self.fs_out = float(fs)
        self._filters = [StreamingFilter(sos, n_channels, fs) for sos in sections]
        self._in_gap = np.zeros(n_channels, dtype=bool)  # at the end of the last chunk

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        signal, mask = chunk[: self.n_channels], chunk[self.n_channels :] > 0
        if signal.shape[1] == 0:
            return np.zeros((2 * self.n_channels, 0), dtype=np.float32)
        previous = np.concatenate([self._in_gap[:, None], mask[:, :-1]], axis=1)
        resumes = previous & ~mask  # [C, n]: the first valid sample after a gap
        self._in_gap = mask[:, -1].copy()
        bounds = [0, *np.flatnonzero(resumes.any(axis=0)), signal.shape[1]]
        pieces = []
        for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
            if stop == start:
                continue
            piece = signal[:, start:stop]
            for stage in self._filters:
                piece = stage(piece, restart=resumes[:, start])
            pieces.append(piece)
        out = np.concatenate(pieces, axis=1) if pieces else signal.astype(np.float32)
        return np.concatenate([out, mask.astype(np.float32)], axis=0)

    def flush(self) -> np.ndarray:
        for stage in self._filters:
            stage.flush()
        self._in_gap[:] = False
        return np.zeros((2 * self.n_channels, 0), dtype=np.float32)


class RestoreGaps:
    """Turns masked samples back into NaN and drops the mask rows."""

    def __init__(self, n_channels: int, fs: float) -> None:
        self.n_channels = n_channels
        self.fs_out = float(fs)

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        signal = np.array(chunk[: self.n_channels], dtype=np.float32)
        signal[np.abs(chunk[self.n_channels :]) > _MASK_THRESHOLD] = np.nan
        return signal

    def flush(self) -> np.ndarray:
        return np.zeros((self.n_channels, 0), dtype=np.float32)


def filter_chain(
    n_channels: int,
    fs: float,
    fs_out: float,
    band: tuple[float | None, float | None],
    notch: float | None = None,
) -> Chain:
    """Gap hold, band-pass, notch and resampling from ``fs`` to ``fs_out``, as one
    chunk-consistent preprocessor."""
    sections = [band_pass_sos(fs, *band)]
    if notch:
        sections.append(notch_sos(fs, notch))
    stages = [
        GapHold(n_channels, fs),
        SignalFilters(n_channels, fs, [s for s in sections if s is not None]),
    ]
    if fs != fs_out:
        stages.append(StreamingResampler(fs, fs_out, 2 * n_channels))
    stages.append(RestoreGaps(n_channels, stages[-1].fs_out))
    return Chain(*stages)


def parse_band(text: str) -> tuple[float | None, float | None]:
    """``"0.5,40"`` → ``(0.5, 40.0)``; an empty side (``",40"``, ``"0.5,"``) is no edge, and
    ``"none"`` no filter at all."""
    if text.strip().lower() in ("", "none", "off"):
        return None, None
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2:
        raise ValueError(f"expected 'low,high' in Hz, got {text!r}")
    low, high = (float(p) if p else None for p in parts)
    return low, high
