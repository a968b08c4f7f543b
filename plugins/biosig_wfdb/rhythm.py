"""Each lead's beat-to-beat (RR) interval series, the signal that rhythm labels depend on.

Atrial fibrillation is told from normal rhythm by irregular RR intervals. Shown the filtered
leads of two CPSC 2021 patients, both MiniRocket and biosig learnt which patient a window
came from (its QRS shape) rather than its rhythm, and called the third patient's windows
the wrong class; shown the RR series, random-kernel features with a ridge model told AF on
the unseen patient (docs/benchmarks.md). ``--signal rr`` gives the model that series.

Beat detection runs on each lead alone, so the model's channels stay the leads it was
trained on: an energy envelope (5-15 Hz band, rectified, 8 Hz low-pass), and a beat where
the envelope is the largest within 0.25 s on either side and at least 0.4 of the largest
within 2 s on either side (looking ahead too, so that noise before a record's first beat
is no beat). Each output sample is the interval, in seconds, between the last two beats at
or before it; before a lead's second beat (and after a gap) it is a nominal 1 s. A
decision looks 2 s ahead, so that much is held back until ``flush``; what is decided
depends only on the samples around it, so the output is the same however a record is
chunked. Gap samples (NaN) stay NaN, and the beats before a gap are forgotten.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import maximum_filter1d

from biosig import BiosigError, StreamingFilter, band_pass_sos

#: No two beats closer than this (a heart rate of 240 per minute).
REFRACTORY_S = 0.25
#: The envelope's peak around a beat that it is judged against, each side: a few beats, so
#: that the threshold follows the signal's amplitude as electrodes move.
HISTORY_S = 2.0
#: A beat's envelope is at least this fraction of the largest in the history.
THRESHOLD = 0.4
#: The interval reported before two beats are known.
NOMINAL_RR_S = 1.0
#: The QRS complex's energy band, Hz; the detector needs a rate above twice its top.
QRS_BAND = (5.0, 15.0)
ENVELOPE_LOW_PASS = 8.0


def check_rr_rate(fs: float) -> None:
    """The RR series needs the QRS band below the model's Nyquist rate."""
    if fs <= 2 * QRS_BAND[1]:
        raise BiosigError(
            f"--signal rr: a model rate of {fs:g} Hz is too low to find beats; "
            f"give --sample-rate above {2 * QRS_BAND[1]:g}"
        )


def _trailing_max(a: np.ndarray, size: int) -> np.ndarray:
    """``out[..., t] = max(a[..., t - size + 1 : t + 1])``, -inf where that runs off the
    start."""
    return maximum_filter1d(a, size, axis=-1, mode="constant", cval=-np.inf, origin=(size - 1) // 2)


class RRIntervals:
    """Preprocessor stage: ``[C, n]`` filtered leads at ``fs`` in, each lead's RR interval
    series (seconds) out, with the same shape."""

    def __init__(self, n_channels: int, fs: float) -> None:
        check_rr_rate(fs)
        self.n_channels = n_channels
        self.fs_out = float(fs)
        self._reach = max(1, round(REFRACTORY_S * fs))
        self._history = max(self._reach, round(HISTORY_S * fs))
        self._band = StreamingFilter(band_pass_sos(fs, *QRS_BAND), n_channels, fs)
        self._smooth = StreamingFilter(band_pass_sos(fs, None, ENVELOPE_LOW_PASS), n_channels, fs)
        self._reset()

    def _reset(self) -> None:
        self._envelope = np.zeros((self.n_channels, 0))
        self._gaps = np.zeros((self.n_channels, 0), dtype=bool)
        self._start = 0  # the absolute sample index of the buffers' first column
        self._decided = 0  # the first sample not yet emitted
        self._beats = np.full((self.n_channels, 2), -1, dtype=np.int64)  # the last two
        self._last_gap = np.full(self.n_channels, -1, dtype=np.int64)

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        x = np.asarray(chunk, dtype=np.float64)
        gaps = np.isnan(x)
        envelope = self._smooth(np.abs(self._band(np.where(gaps, 0.0, x))))
        self._envelope = np.concatenate([self._envelope, envelope], axis=1)
        self._gaps = np.concatenate([self._gaps, gaps], axis=1)
        end = self._start + self._envelope.shape[1]
        return self._emit(end - self._history)

    def flush(self) -> np.ndarray:
        out = self._emit(self._start + self._envelope.shape[1])
        self._band.flush()
        self._smooth.flush()
        self._reset()
        return out

    def _emit(self, stop: int) -> np.ndarray:
        """The RR series for samples ``[decided, stop)``; then drops what no later decision
        needs."""
        if stop <= self._decided:
            return np.zeros((self.n_channels, 0), dtype=np.float32)
        first, last = self._decided - self._start, stop - self._start
        beats = self._find_beats()[:, first:last]
        gaps = self._gaps[:, first:last]
        out = np.empty(beats.shape, dtype=np.float32)
        for c in range(self.n_channels):
            out[c] = self._intervals(c, beats[c], gaps[c])
        self._decided = stop
        keep_from = max(self._start, stop - self._history)
        self._envelope = self._envelope[:, keep_from - self._start :]
        self._gaps = self._gaps[:, keep_from - self._start :]
        self._start = keep_from
        return out

    def _find_beats(self) -> np.ndarray:
        """``[C, n]`` bool over the buffer: a beat where the envelope tops everything within
        the refractory reach (strictly on the left, so a flat top is one beat) and passes
        the threshold. Only columns with ``history`` samples after them are final, save at
        the end of a record."""
        env, reach, history = self._envelope, self._reach, self._history
        n = env.shape[1]
        none = np.full((self.n_channels, history), -np.inf)
        ahead = np.concatenate([env, none], axis=1)
        left = np.concatenate([none[:, :1], _trailing_max(env, reach)[:, :-1]], axis=1)
        right = _trailing_max(ahead, reach + 1)[:, reach : reach + n]
        around = _trailing_max(ahead, 2 * history + 1)[:, history : history + n]
        return (env > left) & (env >= right) & (env >= THRESHOLD * around) & (env > 0) & ~self._gaps

    def _intervals(self, c: int, beats: np.ndarray, gaps: np.ndarray) -> np.ndarray:
        """One lead's RR series over a run of decided samples, carrying its last two beats
        and last gap across calls."""
        start = self._decided
        positions = start + np.arange(len(beats))
        known = self._beats[c][self._beats[c] >= 0]
        times = np.concatenate([known, positions[beats]])
        gap_at = np.where(gaps, positions, -1)
        last_gap = np.maximum.accumulate(np.concatenate([[self._last_gap[c]], gap_at]))[1:]
        rr = np.full(len(beats), NOMINAL_RR_S)
        if len(times) >= 2:
            latest = np.searchsorted(times, positions, side="right") - 1
            previous = times[np.maximum(latest - 1, 0)]
            valid = (latest >= 1) & (previous > last_gap)
            rr[valid] = (times[latest[valid]] - previous[valid]) / self.fs_out
        rr[gaps] = np.nan
        if len(times):
            self._beats[c] = np.concatenate([[-1, -1], times])[-2:]
        if len(last_gap):
            self._last_gap[c] = last_gap[-1]
        return rr
