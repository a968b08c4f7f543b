"""Training-time care of the frozen random-kernel branch: its biases and statistics drawn
from the training windows (:class:`~biosig.nn.layers.random_kernels.RandomKernelFeatures`),
the ridge classifier fitted on their features (:mod:`biosig.training.ridge`), and the ridge logits
of every window trained or scored, computed once.

Training windows get their leave-one-out ridge logits, so the network learns to correct
what the ridge model gets wrong on windows it has not seen (stacking); validation windows,
which the ridge model never saw, get its ordinary logits. Both are fixed for the run, so
no step computes a random-kernel feature: a step costs what it costs without the branch.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..data.normalize import NormalizationSpec, dataset_statistics, normalize
from ..data.split import choose_split
from ..data.store import ExampleStore
from ..nn.layers.random_kernels import RandomKernelFeatures
from .config import RIDGE_WINDOWS
from .ridge import RidgeFit, fit_ridge

#: Training windows that the biases and feature statistics are drawn from, at most.
FIT_WINDOWS = 512
#: Training windows the normalisation is chosen on, at most (a random sample beyond).
CHOICE_WINDOWS = 1024
#: Windows featurised at once.
BATCH = 64


def default_kernel_features(n_train_windows: int, features: int) -> int:
    """``features`` random-kernel features for up to :data:`RIDGE_WINDOWS` training
    windows, where a ridge model of them is strongest beside a network still short of data;
    none beyond, where the network has data enough and the branch would cost a feature
    pass over every training window."""
    return features if n_train_windows <= RIDGE_WINDOWS else 0


def _branch_of(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The networks of ``model`` (itself, or an ensemble's members) with the branch."""
    members = getattr(model, "members", [model])
    return [m for m in members if m.random_kernels is not None]


def _features(
    branch: torch.nn.Module,
    store: ExampleStore,
    idx: np.ndarray,
    normalization: NormalizationSpec,
) -> torch.Tensor:
    """Random-kernel features ``[len(idx), F]`` of store windows, normalised as the model
    sees them (on the CPU, where training starts)."""
    rows = []
    with torch.no_grad():
        for start in range(0, len(idx), BATCH):
            part = np.asarray(idx[start : start + BATCH])
            x = torch.from_numpy(np.asarray(store.x[part]))
            lengths = torch.from_numpy(store.lengths[part])
            rows.append(branch(normalize(x, lengths, normalization), lengths))
    return torch.cat(rows) if rows else torch.zeros(0, branch.n_features)


def held_out_groups(store: ExampleStore, idx: np.ndarray) -> np.ndarray:
    """What the ridge model's held-out predictions leave out together, per window of
    ``idx``: the store's groups (a series, a recording, a patient) where every class has two
    or more of them, as a group split would hold out; else blocks of each recording's
    windows two windows long in time, so that a window's overlapping neighbours are left
    out with it."""
    groups, y = store.groups[idx], store.y[idx]
    if choose_split("auto", groups, y) == "group":
        return groups
    span = np.maximum(store.label_ends[idx] - store.starts[idx], 1)
    blocks = (store.starts[idx] // (2 * span)).astype(str)
    return np.char.add(np.char.add(store.recording_ids[idx].astype(str), "\0"), blocks)


def _fit_branch(
    branch: torch.nn.Module,
    store: ExampleStore,
    idx: np.ndarray,
    normalization: NormalizationSpec,
    seed: int,
) -> None:
    """Draw ``branch``'s biases and statistics from store windows ``idx``, normalised."""
    x = torch.from_numpy(np.asarray(store.x[idx]))
    lengths = torch.from_numpy(store.lengths[idx])
    branch.fit(normalize(x, lengths, normalization), lengths, torch.Generator().manual_seed(seed))


class KernelLogits:
    """Fixed random-kernel ridge logits of store windows: ``cache[idx]`` ``[len(idx), K]``."""

    def __init__(self, n_windows: int, indices: np.ndarray, logits: torch.Tensor) -> None:
        self._row = np.full(n_windows, -1, dtype=np.int64)
        self._row[indices] = np.arange(len(indices))
        self.logits = logits

    def to(self, device: torch.device) -> KernelLogits:
        self.logits = self.logits.to(device)
        return self

    def __getitem__(self, idx: np.ndarray) -> torch.Tensor:
        rows = self._row[np.asarray(idx)]
        if (rows < 0).any():
            raise KeyError("window without cached random-kernel logits")
        return self.logits[torch.from_numpy(rows).to(self.logits.device)]


def fit_random_kernels(
    model: torch.nn.Module,
    store: ExampleStore,
    train_idx: np.ndarray,
    scored_idx: np.ndarray,
    normalization: NormalizationSpec,
    seed: int,
    label_smoothing: float = 0.0,
    echo: Callable[[str], None] = print,
) -> KernelLogits | None:
    """Fit ``model``'s random-kernel branch on training windows (biases and statistics,
    then the ridge classifier, copied into every network of an ensemble) and return the
    ridge logits of ``train_idx`` (leave-one-out) and ``scored_idx`` (as predicted),
    scaled for a loss with ``label_smoothing``; ``None`` for a model without the branch."""
    members = _branch_of(model)
    if not members:
        return None
    rng = np.random.default_rng(seed)
    train_idx = np.asarray(train_idx)
    branch = members[0].random_kernels
    _fit_branch(
        branch, store, np.sort(rng.permutation(train_idx)[:FIT_WINDOWS]), normalization, seed
    )
    for member in members[1:]:
        member.random_kernels.load_state_dict(branch.state_dict())
    ridge_idx = np.sort(rng.permutation(train_idx)[:RIDGE_WINDOWS])
    fitted = _fit_ridge_of(members, store, ridge_idx, normalization, label_smoothing)
    echo(
        f"random-kernel ridge model: {branch.n_features} features, alpha {fitted.alpha:.3g}, "
        f"held-out accuracy {fitted.loo_accuracy:.4f} on {len(ridge_idx)} training windows"
    )
    # Everything else scored (validation, training windows beyond the ridge's sample) gets
    # the fitted model's logits.
    others = np.setdiff1d(np.union1d(train_idx, scored_idx), ridge_idx)
    other_logits = members[0].ridge_logits_of(_features(branch, store, others, normalization))
    indices = np.concatenate([ridge_idx, others])
    return KernelLogits(len(store), indices, torch.cat([fitted.loo_logits, other_logits]))


def refit_ridge(
    models: list[torch.nn.Module],
    store: ExampleStore,
    labelled_idx: np.ndarray,
    normalization: NormalizationSpec,
    seed: int,
    label_smoothing: float = 0.0,
) -> RidgeFit | None:
    """Fit the ridge classifier of ``models`` (saved states of one training run, whose
    random-kernel branches are the same frozen features) again, once, on ``labelled_idx``:
    the training and the validation windows, once validation has chosen the epoch; copied
    into every network of each. The branch's biases and statistics stay as training drew
    them. ``None`` for models without the branch.

    Validation windows are labelled data the closed-form model has not learnt from; with
    them it learns from a quarter more (a fifth held out), as MiniRocket, which selects
    nothing, learns from every training series. The network was trained on the ridge
    model's held-out logits, which stand for its logits on windows it has not seen."""
    members = [member for model in models for member in _branch_of(model)]
    if not members:
        return None
    rng = np.random.default_rng(seed)
    ridge_idx = np.sort(rng.permutation(np.asarray(labelled_idx))[:RIDGE_WINDOWS])
    return _fit_ridge_of(members, store, ridge_idx, normalization, label_smoothing)


def _fit_ridge_of(
    members: list[torch.nn.Module],
    store: ExampleStore,
    ridge_idx: np.ndarray,
    normalization: NormalizationSpec,
    label_smoothing: float,
) -> RidgeFit:
    """The ridge model of windows ``ridge_idx``' random-kernel features, copied into every
    network of ``members``."""
    fitted = fit_ridge(
        _features(members[0].random_kernels, store, ridge_idx, normalization),
        store.y[ridge_idx],
        len(store.classes),
        label_smoothing,
        held_out_groups(store, ridge_idx),
    )
    for member in members:
        member.ridge_weight.copy_(fitted.weight)
        member.ridge_bias.copy_(fitted.bias)
    return fitted


def normalization_spec(mode: str, store: ExampleStore, train_idx: np.ndarray) -> NormalizationSpec:
    """The normalisation ``mode`` as the model keeps it: with the training windows'
    per-channel statistics for ``dataset``."""
    if mode == "dataset":
        return dataset_statistics(store.x, store.lengths, train_idx)
    return NormalizationSpec(mode)


def choose_normalization(
    candidates: list[str],
    store: ExampleStore,
    train_idx: np.ndarray,
    window: int,
    n_features: int,
    seed: int,
) -> tuple[str, dict[str, float]]:
    """The normalisation among ``candidates`` under which a ridge model of random-kernel
    features classifies the training windows best, held out as :func:`held_out_groups`
    says (on up to :data:`CHOICE_WINDOWS` of them), and every candidate's held-out
    accuracy. Ties go to the earlier candidate (the plugin's).

    Training data only: per-window scaling drops the level and the scale that tell classes
    apart in some data (an appliance's current), and keeps the shape that tells them apart
    in others (a gesture's accelerometer), which only the data can say."""
    rng = np.random.default_rng(seed)
    train_idx = np.asarray(train_idx)
    fit_idx = np.sort(rng.permutation(train_idx)[:FIT_WINDOWS])
    ridge_idx = np.sort(rng.permutation(train_idx)[:CHOICE_WINDOWS])
    groups = held_out_groups(store, ridge_idx)
    scores: dict[str, float] = {}
    for mode in candidates:
        spec = normalization_spec(mode, store, train_idx)
        branch = RandomKernelFeatures(store.n_channels, window, n_features, seed=0)
        _fit_branch(branch, store, fit_idx, spec, seed)
        features = _features(branch, store, ridge_idx, spec)
        fitted = fit_ridge(features, store.y[ridge_idx], len(store.classes), groups=groups)
        scores[mode] = fitted.loo_accuracy
    best = max(candidates, key=lambda mode: (scores[mode], -candidates.index(mode)))
    return best, scores
