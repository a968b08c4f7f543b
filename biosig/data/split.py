"""Validation splits that leak nothing: by group, so windows of one recording (or patient)
never sit on both sides, or in time, so that no training window (label horizon included)
reaches within a window of the validation part of its recording."""

from __future__ import annotations

import logging

import numpy as np
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

from ..errors import BiosigError
from .store import ExampleStore

log = logging.getLogger("biosig")


def choose_split(mode: str, groups: np.ndarray, y: np.ndarray) -> str:
    """``mode``, with ``auto`` resolved: by group when every class has at least two groups
    (one can then sit on each side), else in time."""
    if mode != "auto":
        return mode
    groups_per_class = [len(np.unique(groups[y == c])) for c in np.unique(y)]
    return "group" if min(groups_per_class) >= 2 else "time"


def split_examples(
    store: ExampleStore, mode: str, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, str]:
    """Indices ``(train, val)`` of ``store`` and the split used (``group`` or ``time``;
    ``none`` when ``val_fraction`` is 0: every window trains, none validates)."""
    if val_fraction == 0:
        return np.arange(len(store)), np.empty(0, dtype=np.int64), "none"
    mode = choose_split(mode, store.groups, store.y)
    if mode == "group":
        return (*split_by_group(store.groups, store.y, val_fraction, seed), mode)
    if mode != "time":
        raise BiosigError(f"--split {mode}: choose auto, group or time")
    window_lengths = store.label_ends - store.starts
    calendar = None
    if np.isfinite(store.start_times).all() and np.isfinite(store.end_times).all():
        calendar = (store.start_times, store.end_times)
    train, val = split_in_time(
        store.recording_ids,
        store.starts,
        store.label_ends,
        window_lengths,
        val_fraction,
        calendar,
    )
    missing = set(np.unique(store.y)) - set(np.unique(store.y[val]))
    if missing:
        log.warning("validation split lacks %d of the classes", len(missing))
    return train, val, mode


def split_in_time(
    recording_ids: np.ndarray,
    starts: np.ndarray,
    label_ends: np.ndarray,
    gaps: np.ndarray,
    val_fraction: float,
    calendar: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, val)``: the windows starting in the last ``val_fraction`` of the
    time the windows cover validate; a training window is kept only when its label end plus
    its gap (at least its own length) comes no later than the first validation window of
    its recording. Windows in between are left out (purged).

    Without ``calendar`` each recording is cut on its own. With it, ``(start_times,
    end_times)`` of each window and of the last sample its label depends on, all recordings
    are cut at one moment, and no training label may reach it: one price series cannot
    train on the days another validates on.

    ``label_ends`` is where what a window's label depends on ends (its own end, or a
    forecast's horizon); ``gaps`` the embargo per window, in the same original samples.
    """
    if not 0 < val_fraction < 1:
        raise BiosigError(f"--val-fraction must be between 0 and 1, got {val_fraction}")
    in_train = np.zeros(len(starts), dtype=bool)
    in_val = np.zeros(len(starts), dtype=bool)
    if calendar is not None:
        start_times, end_times = calendar
        lo, hi = start_times.min(), end_times.max()
        cut = lo + (1 - val_fraction) * (hi - lo)
        in_val = start_times >= cut
        in_train = end_times < cut
    for rid in np.unique(recording_ids):
        idx = np.flatnonzero(recording_ids == rid)
        if calendar is None:
            lo, hi = starts[idx].min(), label_ends[idx].max()
            cut = lo + (1 - val_fraction) * (hi - lo)
            held_out = starts[idx] >= cut
            if held_out.all() or not held_out.any():  # a single window: keep it to train
                in_train[idx] = True
                continue
            in_val[idx] = held_out
            in_train[idx] = True
        if not in_val[idx].any():
            continue
        first_val = starts[idx][in_val[idx]].min()
        in_train[idx] &= label_ends[idx] + np.maximum(gaps[idx], 0) <= first_val
        in_train[idx] &= ~in_val[idx]
    train, val = np.flatnonzero(in_train), np.flatnonzero(in_val)
    if not len(val) or not len(train):
        raise BiosigError(
            "cannot hold out a validation part in time: the recordings are too short for "
            "training and validation windows a window apart; add data or lower --window"
        )
    purged = len(starts) - len(train) - len(val)
    if purged:
        log.info("%d windows between the training and validation parts left out", purged)
    return train, val


def split_by_group(
    groups: np.ndarray, y: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, val)`` with whole groups on each side, classes stratified as far as
    the groups allow."""
    if not 0 < val_fraction < 1:
        raise BiosigError(f"--val-fraction must be between 0 and 1, got {val_fraction}")
    unique_groups = np.unique(groups)
    if len(unique_groups) < 2:
        raise BiosigError(
            "cannot hold out a validation set: every labelled window comes from one group "
            f"({str(unique_groups[0])!r}); add recordings"
        )
    n_splits = min(max(2, round(1 / val_fraction)), len(unique_groups))
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    if np.bincount(y).max() < n_splits:
        # Every class has fewer windows than folds (two series per class, say), which
        # StratifiedGroupKFold refuses: folds of shuffled groups, unstratified, instead.
        splitter = GroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    # StratifiedGroupKFold warns when a class has fewer groups than splits; it still
    # splits by group, which is the property that matters here.
    folds = list(splitter.split(np.zeros(len(y)), y, groups))
    classes = set(np.unique(y))
    # With few groups (three patients) a fold may miss a class on one side; take the first
    # fold whose both sides hold every class, so early stopping sees every class.
    train_idx, val_idx = next(
        (
            (t, v)
            for t, v in folds
            if set(np.unique(y[t])) == classes and set(np.unique(y[v])) == classes
        ),
        folds[0],
    )
    missing = classes - set(np.unique(y[val_idx]))
    if missing:
        log.warning("validation split lacks %d of the classes (too few groups)", len(missing))
    return np.sort(train_idx), np.sort(val_idx)
