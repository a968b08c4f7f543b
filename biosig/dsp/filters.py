"""Causal IIR filters that carry their state from chunk to chunk.

A preprocessor must give the same output for a recording fed in one chunk or in many (the
plugin contract). A causal filter does so by construction when its state is carried over:
:class:`StreamingFilter` wraps ``scipy.signal.sosfilt`` with ``zi``, in float64 second-order
sections (stable at the low cut-offs that baseline removal needs, where a transfer-function
form loses precision). It never looks ahead, so a 24-hour record streams in constant memory
and no whole-record statistic is ever taken.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, iirnotch, sosfilt, sosfilt_zi, tf2sos

from ..errors import BiosigError

__all__ = ["StreamingFilter", "band_pass_sos", "notch_sos"]


def band_pass_sos(
    fs: float, low: float | None, high: float | None, order: int = 2
) -> np.ndarray | None:
    """Butterworth sections passing ``low``–``high`` Hz at rate ``fs``.

    ``low`` alone is a high-pass (baseline removal), ``high`` alone a low-pass; neither gives
    ``None`` (no filter). An edge at or above Nyquist is dropped, since a record sampled at
    60 Hz holds nothing above 30 Hz to remove (and a numerics record sampled once a minute
    has no 0.5 Hz baseline to take away).
    """
    if low is not None and high is not None and low >= high:
        raise BiosigError(f"band {low:g}-{high:g} Hz is empty")
    nyquist = fs / 2
    if high is not None and high >= nyquist:
        high = None
    if low is not None and (low <= 0 or low >= nyquist):
        low = None
    if low is None and high is None:
        return None
    if low is not None and high is not None:
        return butter(order, [low, high], btype="bandpass", fs=fs, output="sos")
    if low is not None:
        return butter(order, low, btype="highpass", fs=fs, output="sos")
    return butter(order, high, btype="lowpass", fs=fs, output="sos")


def notch_sos(fs: float, freq: float, quality: float = 30.0) -> np.ndarray | None:
    """Sections of a notch at ``freq`` Hz (mains hum); ``None`` when ``freq`` is at or above
    Nyquist, where there is nothing to remove."""
    if not 0 < freq < fs / 2:
        return None
    b, a = iirnotch(freq, quality, fs=fs)
    return tf2sos(b, a)


class StreamingFilter:
    """Apply second-order sections to ``[C, n]`` chunks, carrying state between calls.

    Input must be finite: one NaN would spread through the state to every later sample, so
    a plugin with gaps fills them first and restarts the filter where the signal resumes.

    The state starts at the filter's steady state for the first sample of each channel
    (``sosfilt_zi`` scaled by it), so a signal sitting on a DC offset does not ring at the
    start; this uses only the first sample, so it too is the same for every chunking.
    """

    def __init__(self, sos: np.ndarray, n_channels: int, fs: float) -> None:
        self.sos = np.asarray(sos, dtype=np.float64)
        self.n_channels = n_channels
        self.fs_out = float(fs)
        self._state: np.ndarray | None = None  # [sections, C, 2]

    def __call__(self, chunk: np.ndarray, restart: np.ndarray | None = None) -> np.ndarray:
        """Filter the next chunk. Channels flagged in ``restart`` start afresh at this
        chunk's first sample, as at the start of a stream (where a signal resumes after a
        gap, so the step from the held value does not ring)."""
        x = np.asarray(chunk, dtype=np.float64)
        if x.shape[1] == 0:
            return x.astype(np.float32)
        steady = sosfilt_zi(self.sos)[:, None, :] * x[None, :, 0, None]  # [sections, C, 2]
        if self._state is None:
            self._state = steady
        elif restart is not None and restart.any():
            self._state[:, restart] = steady[:, restart]
        y, self._state = sosfilt(self.sos, x, axis=1, zi=self._state)
        return y.astype(np.float32)

    def flush(self) -> np.ndarray:
        """A causal filter holds nothing back; resets the state for a new stream."""
        self._state = None
        return np.zeros((self.n_channels, 0), dtype=np.float32)
