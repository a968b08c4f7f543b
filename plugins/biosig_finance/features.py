"""Model inputs from bars, each computed only from the bar itself and those before it.

Every channel at bar ``t`` reads bars ``<= t`` only (trailing windows, no centring, no
whole-series statistics), so a window ending at the decision bar holds nothing of the future
its label is drawn from. With ``w`` the ``vol_window`` option:

=============  ================================================================================
channel        value at bar t
=============  ================================================================================
log_return     r_t = log P_t - log P_{t-1}, the one-bar log return (unscaled: jumps stay visible)
return_z       r_t / sigma_t, sigma_t the standard deviation of r over the last w bars
price_z        z-score of log P_t among the last w log prices (where the price sits in its range)
vol_regime     log(sigma_short / sigma_t), sigma_short over the last max(2, w // 4) bars
range_z        log(High_t / Low_t) / sigma_t, the bar's range in units of typical moves
volume_z       z-score of log1p(volume_t) among the last w bars; 0 when they have no spread
=============  ================================================================================

Bars before ``w`` (trailing windows not yet full) are NaN in every channel: the core skips
windows holding one. A spread of zero (a flat price stretch, all-zero volume) gives 0 rather
than a division by zero, and the ratio channels are clipped to +-10, so a halted market
cannot blow up the dataset statistics that normalise windows; every value after the warm-up
is finite.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

FEATURES = ("log_return", "return_z", "price_z", "vol_regime", "range_z", "volume_z")
#: The unit of each feature, for plot axes: sigmas for the z-scores, none for the log return
#: and the log ratio of volatilities.
FEATURE_UNITS = ("", "σ", "σ", "", "σ", "σ")
#: Ratio channels are clipped to +-CLIP.
CLIP = 10.0
#: A trailing spread this small relative to the level counts as none (rounding residue).
_TINY = 1e-12


def short_window(vol_window: int) -> int:
    """Bars of the short volatility in ``vol_regime``."""
    return max(2, vol_window // 4)


def trailing_mean_std(x: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample standard deviation of ``x[t - window + 1 : t + 1]`` at each ``t``;
    NaN where the window is not full (``t < window - 1``) or holds a NaN."""
    n = len(x)
    mean = np.full(n, np.nan)
    std = np.full(n, np.nan)
    if n >= window >= 2:
        # Two passes over explicit windows: exact zeros for constant stretches, which a
        # running-sum variance would leave as rounding residue.
        view = sliding_window_view(x, window)
        mean[window - 1 :] = view.mean(axis=1)
        std[window - 1 :] = np.sqrt(
            ((view - mean[window - 1 :, None]) ** 2).sum(axis=1) / (window - 1)
        )
    return mean, std


def _ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """``top / bottom``, 0 where ``bottom`` is no spread at all, NaN kept, clipped."""
    out = np.divide(top, bottom, out=np.zeros_like(top), where=bottom > _TINY)
    out[np.isnan(top) | np.isnan(bottom)] = np.nan
    return np.clip(out, -CLIP, CLIP)


def log_returns(close: np.ndarray) -> np.ndarray:
    """One-bar log returns, NaN at the first bar."""
    log_price = np.log(close)
    return np.concatenate([[np.nan], np.diff(log_price)])


def volatility(close: np.ndarray, window: int) -> np.ndarray:
    """sigma_t: the standard deviation of the last ``window`` one-bar log returns (those up
    to and including bar ``t``); NaN before bar ``window``."""
    return trailing_mean_std(log_returns(close), window)[1]


def compute_features(
    close: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    volume: np.ndarray,
    vol_window: int,
) -> np.ndarray:
    """The channels of :data:`FEATURES`, ``[6, n]`` float32, for bars with (adjusted)
    ``close``, ``high``, ``low`` and ``volume`` (zeros when unknown)."""
    close, high, low = (np.asarray(a, dtype=np.float64) for a in (close, high, low))
    volume = np.nan_to_num(np.asarray(volume, dtype=np.float64), nan=0.0)
    r = log_returns(close)
    sigma = trailing_mean_std(r, vol_window)[1]
    sigma_short = trailing_mean_std(r, short_window(vol_window))[1]
    log_price = np.log(close)
    price_mean, price_std = trailing_mean_std(log_price, vol_window)
    volume_level = np.log1p(np.maximum(volume, 0.0))
    volume_mean, volume_std = trailing_mean_std(volume_level, vol_window)

    regime = np.log(
        np.divide(sigma_short, sigma, out=np.ones_like(sigma), where=sigma > _TINY),
        out=np.zeros_like(sigma),
        where=sigma_short > _TINY,
    )
    regime[np.isnan(sigma) | np.isnan(sigma_short)] = np.nan
    features = np.stack(
        [
            r,
            _ratio(r, sigma),
            _ratio(log_price - price_mean, price_std),
            np.clip(regime, -CLIP, CLIP),
            _ratio(np.log(high / low), sigma),
            _ratio(volume_level - volume_mean, volume_std),
        ]
    )
    # Every channel starts together, at the first bar whose longest trailing window is full.
    features[:, :vol_window] = np.nan
    return features.astype(np.float32)
