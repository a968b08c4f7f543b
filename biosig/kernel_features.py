"""Training-time care of the frozen random-kernel branch
(:class:`~biosig.layers.random_kernels.RandomKernelFeatures`): its biases and statistics
drawn from the training windows before training, and each window's features computed once.

The features are a fixed function of a window, so training computes them once from each
unaugmented window, as prediction will see it, rather than at every step from the augmented
batch: the learned network gets the augmented signal, the head the clean window's features
(mixed with the same weights as the targets when mixup blends windows; the head is linear
in them). That keeps a training step as cheap as without the branch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .examples import ExampleStore
from .normalize import normalize

#: Training windows that the biases and feature statistics are drawn from, at most (a
#: random sample of them when there are more).
FIT_WINDOWS = 512
#: Cached features kept in memory at most (float32): beyond this, training computes them
#: from each augmented batch instead.
CACHE_LIMIT_BYTES = 1 << 30
#: Windows read and featurised at once while filling the cache.
CACHE_BATCH = 64


def _branches(model: torch.nn.Module) -> list[torch.nn.Module]:
    members = getattr(model, "members", [model])
    return [m.random_kernels for m in members if m.random_kernels is not None]


def _windows(
    store: ExampleStore, idx: np.ndarray, normalization: dict[str, Any]
) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(np.asarray(store.x[idx]))
    lengths = torch.from_numpy(store.lengths[idx])
    return normalize(x, lengths, normalization), lengths


def fit_random_kernels(
    model: torch.nn.Module,
    store: ExampleStore,
    train_idx: np.ndarray,
    normalization: dict[str, Any],
    seed: int,
) -> None:
    """Draw the random-kernel biases and statistics from (up to :data:`FIT_WINDOWS`)
    training windows, normalised as the model sees them; a model without the branch is left
    as it is. Every network of an ensemble gets the same features."""
    branches = _branches(model)
    if not branches:
        return
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.permutation(np.asarray(train_idx))[:FIT_WINDOWS])
    x, lengths = _windows(store, idx, normalization)
    for branch in branches:
        branch.fit(x, lengths, torch.Generator().manual_seed(seed))


class KernelFeatureCache:
    """The random-kernel features of chosen store windows, computed once on ``device``."""

    def __init__(
        self,
        model: torch.nn.Module,
        store: ExampleStore,
        indices: np.ndarray,
        normalization: dict[str, Any],
        device: torch.device,
    ) -> None:
        branch = _branches(model)[0]
        self._row = np.full(len(store), -1, dtype=np.int64)
        indices = np.unique(indices)
        self._row[indices] = np.arange(len(indices))
        rows = []
        with torch.no_grad():
            for start in range(0, len(indices), CACHE_BATCH):
                x, lengths = _windows(store, indices[start : start + CACHE_BATCH], normalization)
                rows.append(branch(x.to(device), lengths.to(device)))
        self.features = torch.cat(rows) if rows else torch.zeros(0, branch.n_features)

    @classmethod
    def for_model(
        cls,
        model: torch.nn.Module,
        store: ExampleStore,
        indices: np.ndarray,
        normalization: dict[str, Any],
        device: torch.device,
    ) -> KernelFeatureCache | None:
        """A cache of ``indices``' features, or ``None`` when ``model`` has no random-kernel
        branch or the cache would take more than :data:`CACHE_LIMIT_BYTES`."""
        branches = _branches(model)
        if not branches:
            return None
        size = len(np.unique(indices)) * branches[0].n_features * 4
        if size > CACHE_LIMIT_BYTES:
            return None
        return cls(model, store, indices, normalization, device)

    def __getitem__(self, idx: np.ndarray) -> torch.Tensor:
        """Features ``[len(idx), n_features]`` of store windows ``idx`` (all cached)."""
        rows = self._row[np.asarray(idx)]
        if (rows < 0).any():
            raise KeyError("window not in the random-kernel feature cache")
        return self.features[torch.from_numpy(rows).to(self.features.device)]
