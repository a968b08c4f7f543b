"""Validation splits that leak nothing: by group, so windows of one recording (or patient)
never sit on both sides, or in time, so that no training window (label horizon included)
reaches within a window of the validation part of its recording."""

from __future__ import annotations

import logging

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from .errors import BiosigError
from .examples import ExampleStore

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
    """Indices ``(train, val)`` of ``store`` and the split used (``group`` or ``time``)."""
    mode = choose_split(mode, store.groups, store.y)
    if mode == "group":
        return (*split_by_group(store.groups, store.y, val_fraction, seed), mode)
    if mode != "time":
        raise BiosigError(f"--split {mode}: choose auto, group or time")
    window_lengths = store.label_ends - store.starts
    train, val = split_in_time(
        store.recording_ids, store.starts, store.label_ends, window_lengths, val_fraction
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
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, val)``: in each recording, the windows starting in the last
    ``val_fraction`` of the time its windows cover validate; a training window is kept only
    when its label end plus its gap (at least its own length) comes no later than the
    first validation window's start. Windows in between are left out (purged).

    ``label_ends`` is where what a window's label depends on ends (its own end, or a
    forecast's horizon); ``gaps`` the embargo per window, in the same original samples.
    """
    if not 0 < val_fraction < 1:
        raise BiosigError(f"--val-fraction must be between 0 and 1, got {val_fraction}")
    train: list[np.ndarray] = []
    val: list[np.ndarray] = []
    purged = 0
    for rid in np.unique(recording_ids):
        idx = np.flatnonzero(recording_ids == rid)
        lo, hi = starts[idx].min(), label_ends[idx].max()
        cut = lo + (1 - val_fraction) * (hi - lo)
        held_out = idx[starts[idx] >= cut]
        if len(held_out) == 0:  # a single window: nothing to hold out of this recording
            train.append(idx)
            continue
        first_val = starts[held_out].min()
        kept = idx[label_ends[idx] + np.maximum(gaps[idx], 0) <= first_val]
        purged += len(idx) - len(held_out) - len(kept)
        train.append(kept)
        val.append(held_out)
    if not val or not any(len(t) for t in train):
        raise BiosigError(
            "cannot hold out a validation part in time: the recordings are too short for "
            "training and validation windows a window apart; add data or lower --window"
        )
    if purged:
        log.info("%d windows between the training and validation parts left out", purged)
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


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
