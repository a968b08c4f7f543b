"""The ecg/eeg filter chain on gaps: identical in any chunking, NaN kept where samples are
missing, and no ringing where the signal resumes at another level."""

from __future__ import annotations

import numpy as np
import pytest
from biosig_wfdb.preprocess import filter_chain, parse_band

FS, FS_OUT = 200.0, 360.0


def gappy_signal(seed: int = 0) -> np.ndarray:
    """Two channels, 60 s: a 10 Hz tone on a 1 mV offset; channel 0 starts with a 1 s gap
    and has a 2 s gap after which it resumes 3 mV higher; channel 1 has no gap."""
    t = np.arange(int(60 * FS)) / FS
    x = np.stack([1.0 + 0.1 * np.sin(2 * np.pi * 10 * t)] * 2)
    x += np.random.default_rng(seed).normal(0, 0.01, x.shape)
    x[0, : int(FS)] = np.nan
    x[0, int(30 * FS) :] += 3.0
    x[0, int(28 * FS) : int(30 * FS)] = np.nan
    return x.astype(np.float32)


def run(x: np.ndarray, chunk: int) -> np.ndarray:
    chain = filter_chain(2, FS, FS_OUT, (0.5, 40.0), notch=50.0)
    out = [chain(x[:, i : i + chunk]) for i in range(0, x.shape[1], chunk)]
    return np.concatenate([*out, chain.flush()], axis=1)


@pytest.mark.parametrize("chunk", [3, 199, 200, 5000])
def test_chunking_does_not_change_the_output(chunk: int) -> None:
    x = gappy_signal()
    whole = run(x, x.shape[1])
    np.testing.assert_allclose(run(x, chunk), whole, atol=1e-6)


def test_gaps_stay_nan_and_only_gaps() -> None:
    out = run(gappy_signal(), 12000)
    gap = np.isnan(out[0])
    t = np.arange(out.shape[1]) / FS_OUT
    # the resampler's interpolation may widen a gap by a few samples, never shrink it
    assert gap[(t < 1) | ((t >= 28) & (t < 30))].all()
    assert not gap[((t > 1.1) & (t < 27.9)) | (t > 30.1)].any()
    assert not np.isnan(out[1]).any()


def test_no_ringing_where_the_signal_resumes_at_another_level() -> None:
    out = run(gappy_signal(), 12000)
    t = np.arange(out.shape[1]) / FS_OUT
    steady = np.abs(out[1, (t > 10) & (t < 20)]).max()  # the 10 Hz tone, about 0.1
    after_start = np.abs(out[0, (t > 1.1) & (t < 2.1)]).max()
    after_gap = np.abs(out[0, (t > 30.1) & (t < 31.1)]).max()
    # held at the last value, the 3 mV step would ring at several times the tone's size
    assert after_start < 1.5 * steady and after_gap < 1.5 * steady


@pytest.mark.parametrize(
    ("text", "band"),
    [("0.5,40", (0.5, 40.0)), ("0.5,", (0.5, None)), (",40", (None, 40.0)), ("none", (None, None))],
)
def test_parse_band(text: str, band: tuple) -> None:
    assert parse_band(text) == band


def test_parse_band_refuses_one_edge() -> None:
    with pytest.raises(ValueError, match="low,high"):
        parse_band("40")
