"""Validation splits by group, so windows of one recording (or patient) never sit on both
sides."""

from __future__ import annotations

import logging

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from .errors import BiosigError

log = logging.getLogger("biosig")


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
