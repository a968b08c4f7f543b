"""Scaling windows before the model, identically in training and prediction.

Modes: ``window`` z-scores each window per channel (over its valid samples); ``dataset``
uses per-channel statistics of the training windows kept in the checkpoint, which keeps
level information that per-window scaling throws away; ``recording`` and ``none`` leave the
windows as the plugin's preprocessor made them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..nn.layers.mask import lengths_to_mask
from ..plugin.contract import NORMALIZATIONS

EPS = 1e-6


@dataclass(frozen=True)
class NormalizationSpec:
    """How a model scales its windows: the mode, and for ``dataset`` the per-channel
    statistics of its training windows. Checkpoints keep it as JSON (:meth:`to_json`)."""

    mode: str
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.mode not in NORMALIZATIONS:
            raise ValueError(
                f"unknown normalisation {self.mode!r}; choose from {', '.join(NORMALIZATIONS)}"
            )
        if self.mode != "dataset":
            return
        for name in ("mean", "std"):
            values = getattr(self, name)
            if not isinstance(values, (list, tuple)) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                for v in values
            ):
                raise ValueError(f"dataset normalisation needs finite numbers as {name}")
            object.__setattr__(self, name, tuple(float(v) for v in values))
        if len(self.mean) != len(self.std) or not self.mean:
            raise ValueError("dataset normalisation needs one mean and one std per channel")

    def to_json(self) -> dict[str, Any]:
        if self.mode == "dataset":
            return {"mode": self.mode, "mean": list(self.mean), "std": list(self.std)}
        return {"mode": self.mode}

    @classmethod
    def from_json(cls, data: Any) -> NormalizationSpec:
        """The spec a checkpoint holds; a :class:`ValueError` says what is wrong with it."""
        if not isinstance(data, dict) or not isinstance(data.get("mode"), str):
            raise ValueError(f"normalisation must be a table with a mode, got {data!r}")
        return cls(data["mode"], data.get("mean"), data.get("std"))


def normalize(x: torch.Tensor, lengths: torch.Tensor, spec: NormalizationSpec) -> torch.Tensor:
    """Scale ``x`` ``[B, C, T]`` (valid up to ``lengths``) as ``spec`` says."""
    mode = spec.mode
    if mode in ("none", "recording"):
        return x
    mask = lengths_to_mask(lengths, x.shape[-1]).unsqueeze(1).to(x.dtype)
    if mode == "window":
        count = mask.sum(-1, keepdim=True).clamp_min(1)
        mean = (x * mask).sum(-1, keepdim=True) / count
        var = (((x - mean) * mask) ** 2).sum(-1, keepdim=True) / count
        return (x - mean) / (var.sqrt() + EPS) * mask
    if mode == "dataset":
        mean = torch.tensor(spec.mean, dtype=x.dtype, device=x.device)[None, :, None]
        std = torch.tensor(spec.std, dtype=x.dtype, device=x.device)[None, :, None]
        return (x - mean) / (std + EPS) * mask
    raise AssertionError(f"unhandled normalisation {mode!r}")  # NormalizationSpec checked it


def dataset_statistics(
    x: np.ndarray, lengths: np.ndarray, indices: np.ndarray
) -> NormalizationSpec:
    """Per-channel mean and std over the valid samples of the given windows, accumulated in
    float64 block by block (the store may be memory-mapped)."""
    n_channels, width = x.shape[1], x.shape[2]
    total = np.zeros(n_channels)
    total_sq = np.zeros(n_channels)
    count = 0
    for start in range(0, len(indices), 1024):
        idx = np.sort(indices[start : start + 1024])
        block = np.asarray(x[idx], dtype=np.float64)
        mask = np.arange(width)[None, :] < lengths[idx][:, None]
        block = block * mask[:, None, :]
        total += block.sum(axis=(0, 2))
        total_sq += (block**2).sum(axis=(0, 2))
        count += int(mask.sum())
    mean = total / max(count, 1)
    std = np.sqrt(np.maximum(total_sq / max(count, 1) - mean**2, 0))
    return NormalizationSpec("dataset", tuple(mean.tolist()), tuple(std.tolist()))
