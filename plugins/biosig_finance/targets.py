"""Labels derived from future prices, each with the bar where its future ends.

For a decision bar ``i`` (the last bar a model sees) a label reads the log prices of bars
``i .. end - 1`` only, and says so through ``end`` (``LabelledInterval.label_end``), so that
splits can keep every label's future away from the other side:

* ``direction``: ``r = log P[i + h] - log P[i]``; ``up`` when ``r > 0``, else ``down`` (a zero
  return is ``down``: "up" means a gain, as in the usual up-day fractions). With a dead zone
  ``d > 0``, ``flat`` when ``|r| <= d * sigma_i * sqrt(h)``: within ``d`` typical moves over the
  horizon. ``end = i + h + 1``.
* ``barrier`` (triple barrier): the first bar ``j`` in ``i + 1 .. i + h`` whose close is at or
  beyond ``P[i] * exp(+-k * sigma_i)`` gives ``up``/``down`` and ``end = j + 1``; none
  reached by ``i + h`` gives ``flat`` (the time limit) and ``end = i + h + 1``. The barriers
  are ``k`` one-bar sigmas, not ``k * sigma * sqrt(h)``: with the default ``k = 2``, ``h = 5``
  a random walk splits about 27/27/46 % into up/down/flat, where sqrt(h) scaling would label
  almost everything ``flat``. Closes only: a bar's High/Low touching both barriers would
  leave the order unknown.

``sigma_i`` is the trailing volatility known at bar ``i`` (:func:`features.volatility`).
Bars with fewer than ``h`` bars after them, or (where sigma is used) no volatility yet, get
no label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


@dataclass(frozen=True)
class Target:
    """One derived label: decision bar, class, and the end (exclusive) of the bars it read."""

    bar: int
    label: str
    end: int


def direction_targets(
    close: np.ndarray, sigma: np.ndarray, horizon: int, dead_zone: float = 0.0
) -> list[Target]:
    """``up``/``down`` (and ``flat`` with ``dead_zone > 0``) for every bar with ``horizon``
    bars after it; see the module docstring."""
    log_price = np.log(np.asarray(close, dtype=np.float64))
    n = len(log_price) - horizon
    if n <= 0:
        return []
    r = log_price[horizon:] - log_price[:n]
    labels = np.where(r > 0, "up", "down").astype(object)
    usable = np.ones(n, dtype=bool)
    if dead_zone > 0:
        threshold = dead_zone * sigma[:n] * np.sqrt(horizon)
        usable = np.isfinite(threshold)
        labels[usable & (np.abs(r) <= np.where(usable, threshold, 0))] = "flat"
    return [Target(int(i), str(labels[i]), int(i) + horizon + 1) for i in np.flatnonzero(usable)]


def barrier_targets(close: np.ndarray, sigma: np.ndarray, horizon: int, k: float) -> list[Target]:
    """Triple-barrier labels (``up``/``down``/``flat``) for every bar with ``horizon`` bars
    after it and a positive volatility; see the module docstring."""
    log_price = np.log(np.asarray(close, dtype=np.float64))
    n = len(log_price) - horizon
    if n <= 0:
        return []
    # paths[i, m] = log P[i + 1 + m] - log P[i], m < horizon
    paths = sliding_window_view(log_price[1:], horizon)[:n] - log_price[:n, None]
    width = k * sigma[:n]
    usable = np.isfinite(width) & (width > 0)
    width = np.where(usable, width, np.inf)
    up = paths >= width[:, None]
    down = paths <= -width[:, None]
    hit = up | down
    first = np.where(hit.any(axis=1), hit.argmax(axis=1), horizon)
    targets = []
    for i in np.flatnonzero(usable):
        m = int(first[i])
        if m == horizon:
            targets.append(Target(int(i), "flat", int(i) + horizon + 1))
        else:
            targets.append(Target(int(i), "up" if up[i, m] else "down", int(i) + m + 2))
    return targets
