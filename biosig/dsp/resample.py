"""Chunk-consistent rational resampling for streaming preprocessors.

A plugin's preprocessor sees a recording as a sequence of ``[C, n]`` chunks and must give the
same output whichever way the recording is cut (the plugin contract: "feeding a recording in
one chunk or in many must give the same output"). :class:`StreamingResampler` reproduces
``scipy.signal.resample_poly(x, up, down, axis=1)`` on the whole signal — same anti-aliasing
FIR, same alignment, same output length ``ceil(n * up / down)`` — while holding only a short
tail of input samples between calls.

How output samples relate to input samples (derived from scipy's ``resample_poly``, which
pads the filter so that the outputs land on the filter's centre): with the FIR ``h`` of
length ``2 * L + 1`` (``L = half_len``) already scaled by ``up``,

    y[m] = sum_i x[i] * h[m * down + L - i * up]        (x[i] = 0 outside 0 <= i < n)

Writing ``t = m * down + L``, ``i_top = t // up`` and ``r = t % up`` this is a dot product of
the polyphase branch ``h[r], h[r + up], h[r + 2 up], ...`` with ``x[i_top], x[i_top - 1], ...``.
Output ``m`` can therefore be emitted as soon as input ``i_top(m)`` has arrived; the outputs
that still need samples past the end of the stream (which count as zero) come out of
:meth:`StreamingResampler.flush`.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import numpy as np
from scipy.signal import firwin

__all__ = ["StreamingResampler"]

#: Cap on the float64 elements of one block's temporaries (input span and accumulators),
#: about 4 MB, so a chunk of any length is resampled in bounded memory.
_BLOCK_ELEMENTS = 1 << 19
#: Preferred number of outputs per block; larger blocks amortise the per-tap Python loop.
_BLOCK_OUTPUTS = 65536


@functools.lru_cache(maxsize=16)
def _polyphase(up: int, down: int) -> tuple[np.ndarray, list[int]]:
    """The FIR of ``resample_poly`` split into its ``up`` polyphase branches, designed once
    per ratio: an awkward ratio (249.89 Hz to 360 Hz is 36000/24989) needs a filter of
    720 001 taps, which every recording of a run would otherwise redesign. Row ``r`` holds
    ``h[r], h[r + up], ...`` zero-padded to a rectangle; the true length of each branch is
    returned beside it so the padding is never multiplied. Treat the arrays as read-only."""
    max_rate = max(up, down)
    if up == down == 1:
        h = np.ones(1)
    else:
        h = firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0)) * up
    n_taps_max = -(-h.size // up)
    padded = np.zeros(n_taps_max * up)
    padded[: h.size] = h
    branches = padded.reshape(n_taps_max, up).T.copy()
    return branches, [-(-(h.size - r) // up) for r in range(up)]


class StreamingResampler:
    """Resample [C, n] float32 chunks from fs_in to fs_out, chunk by chunk, with output identical
    (within float32 rounding) to scipy.signal.resample_poly on the whole signal.

    ``up / down`` is ``Fraction(fs_out / fs_in).limit_denominator(max_denominator)``, and
    ``fs_out`` is set to the rate actually produced, ``fs_in * up / down``. Concatenating the
    outputs of every ``__call__`` and of :meth:`flush` gives ``resample_poly(x, up, down,
    axis=1)`` of the whole recording. Each output sample is computed with the same float64
    operations in the same order whatever the chunking, so different chunkings agree exactly.
    After :meth:`flush` the resampler is reset and can take a new stream.
    """

    fs_in: float
    fs_out: float
    n_channels: int
    up: int
    down: int

    def __init__(
        self, fs_in: float, fs_out: float, n_channels: int, max_denominator: int = 100_000
    ) -> None:
        if not (math.isfinite(fs_in) and fs_in > 0):
            raise ValueError(f"fs_in must be a positive finite rate, got {fs_in!r}")
        if not (math.isfinite(fs_out) and fs_out > 0):
            raise ValueError(f"fs_out must be a positive finite rate, got {fs_out!r}")
        if int(n_channels) != n_channels or n_channels < 1:
            raise ValueError(f"n_channels must be a positive integer, got {n_channels!r}")
        if int(max_denominator) != max_denominator or max_denominator < 1:
            raise ValueError(f"max_denominator must be a positive integer, got {max_denominator!r}")
        ratio = Fraction(fs_out / fs_in).limit_denominator(int(max_denominator))
        if ratio <= 0:
            raise ValueError(
                f"fs_out / fs_in = {fs_out / fs_in!r} has no rational approximation with "
                f"denominator <= {max_denominator}; raise max_denominator"
            )
        self.fs_in = float(fs_in)
        self.n_channels = int(n_channels)
        self.up = ratio.numerator
        self.down = ratio.denominator
        self.fs_out = self.fs_in * self.up / self.down
        #: Equal rates: chunks go straight through (resample_poly would return a copy).
        self._passthrough = self.up == self.down == 1

        # The filter scipy.signal.resample_poly designs by default, kept in float64 (scipy
        # casts it to the data's dtype; the difference is float32 rounding). At equal rates
        # there is no filter (resample_poly copies the input; firwin rejects cutoff 1).
        max_rate = max(self.up, self.down)
        self._half_len = 10 * max_rate
        self._branches, self._n_taps = _polyphase(self.up, self.down)
        self._n_taps_max = self._branches.shape[1]

        # Outputs per block: enough that every phase gets a run of outputs, few enough that
        # the float64 input span (about block * down / up samples per channel) stays small.
        span_per_output = max(1.0, self.down / self.up)
        budget = int(_BLOCK_ELEMENTS / (self.n_channels * span_per_output))
        self._block = max(1, min(max(_BLOCK_OUTPUTS, 1024 * self.up), budget))
        self._reset()

    # -- state -------------------------------------------------------------------------------

    def _reset(self) -> None:
        """Forget the stream: no samples seen, no outputs emitted."""
        self._n_seen = 0  # input samples received so far (global counter)
        self._m_next = 0  # index of the next output sample to emit
        self._tail = np.zeros((self.n_channels, 0), dtype=np.float32)
        self._tail_start = 0  # global index of self._tail[:, 0]

    def _top(self, m: int) -> int:
        """Index of the latest input sample that output ``m`` depends on."""
        return (m * self.down + self._half_len) // self.up

    # -- public API --------------------------------------------------------------------------

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        """Take the next ``[C, n]`` chunk; return the ``[C, m]`` float32 outputs now complete.

        ``m`` may be 0 (e.g. for a short chunk while the filter still waits on future input).
        """
        chunk = self._check(chunk)
        if self._passthrough:
            return chunk
        chunk_start = self._n_seen
        self._n_seen += chunk.shape[1]
        # Output m is complete once input _top(m) has arrived: m * down + L <= n * up - 1.
        m_stop = max(0, (self._n_seen * self.up - 1 - self._half_len) // self.down + 1)
        out = self._emit(self._m_next, m_stop, chunk, chunk_start)
        self._m_next = max(self._m_next, m_stop)
        # Keep only the input the next outputs can reach back to (the filter's span).
        keep_from = min(self._n_seen, max(0, self._top(self._m_next) - self._n_taps_max + 1))
        tail = self._segment(keep_from, self._n_seen, chunk, chunk_start)
        self._tail = tail.astype(np.float32)  # exact: the samples were float32 to begin with
        self._tail_start = keep_from
        return out

    def flush(self) -> np.ndarray:
        """Return the outputs still owed at the end of the stream, then reset.

        Those are the last outputs up to ``ceil(n * up / down)`` in total, computed with the
        samples after the end of the stream taken as zero, as ``resample_poly`` does.
        """
        if self._passthrough:
            return np.zeros((self.n_channels, 0), dtype=np.float32)
        n_out = -(-self._n_seen * self.up // self.down)
        out = self._emit(self._m_next, n_out, None, self._n_seen)
        self._reset()
        return out

    # -- internals ---------------------------------------------------------------------------

    def _check(self, chunk: np.ndarray) -> np.ndarray:
        """Validate a chunk's shape and bring it to float32 (copy-free when it already is)."""
        chunk = np.asarray(chunk, dtype=np.float32)
        if chunk.ndim != 2 or chunk.shape[0] != self.n_channels:
            raise ValueError(
                f"expected a [{self.n_channels}, n] chunk, got shape {tuple(chunk.shape)}"
            )
        return chunk

    def _segment(self, lo: int, hi: int, chunk: np.ndarray | None, chunk_start: int) -> np.ndarray:
        """Input samples ``lo <= i < hi`` (global indices) as float64 ``[C, hi - lo]``.

        They come from the kept tail and the current chunk; indices before the stream or
        past the samples seen are zero, which is resample_poly's zero padding.
        """
        seg = np.zeros((self.n_channels, max(0, hi - lo)))
        sources = [(self._tail, self._tail_start)]
        if chunk is not None:
            sources.append((chunk, chunk_start))
        for data, start in sources:
            a, b = max(lo, start), min(hi, start + data.shape[1])
            if a < b:
                seg[:, a - lo : b - lo] = data[:, a - start : b - start]
        return seg

    def _emit(
        self, m_start: int, m_stop: int, chunk: np.ndarray | None, chunk_start: int
    ) -> np.ndarray:
        """Compute outputs ``m_start <= m < m_stop`` block by block as float32 ``[C, M]``."""
        out = np.empty((self.n_channels, max(0, m_stop - m_start)), dtype=np.float32)
        up, down = self.up, self.down
        for b0 in range(m_start, m_stop, self._block):
            b1 = min(b0 + self._block, m_stop)
            lo = self._top(b0) - self._n_taps_max + 1
            seg = self._segment(lo, self._top(b1 - 1) + 1, chunk, chunk_start)
            block = out[:, b0 - m_start : b1 - m_start]
            # Outputs b0 + p, b0 + p + up, ... share polyphase branch r, and their top input
            # indices advance by exactly `down`, so each tap is one strided slice of seg
            # times a scalar: no gathered index matrices, and the float64 operations for an
            # output depend only on m, never on where the block or the chunk boundaries fall.
            for p in range(min(up, b1 - b0)):
                t = (b0 + p) * down + self._half_len
                top, r = t // up - lo, t % up
                count = len(range(p, b1 - b0, up))
                span = down * (count - 1) + 1
                acc = np.zeros((self.n_channels, count))
                tmp = np.empty_like(acc)
                branch = self._branches[r]
                for k in range(self._n_taps[r]):
                    np.multiply(seg[:, top - k : top - k + span : down], branch[k], out=tmp)
                    acc += tmp
                block[:, p::up] = acc
        return out
