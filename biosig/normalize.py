"""Scaling windows before the model, identically in training and prediction.

Modes: ``window`` z-scores each window per channel (over its valid samples); ``dataset``
uses per-channel statistics of the training windows kept in the checkpoint, which keeps
level information that per-window scaling throws away; ``recording`` and ``none`` leave the
windows as the plugin's preprocessor made them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .layers.mask import lengths_to_mask
from .plugin import NORMALIZATIONS

EPS = 1e-6


def normalize(x: torch.Tensor, lengths: torch.Tensor, spec: dict[str, Any]) -> torch.Tensor:
    """Apply the normalisation ``spec`` (``{"mode": ..., "mean": [...], "std": [...]}``)."""
    mode = spec["mode"]
    if mode in ("none", "recording"):
        return x
    mask = lengths_to_mask(lengths, x.shape[-1]).unsqueeze(1).to(x.dtype)
    if mode == "window":
        count = mask.sum(-1, keepdim=True).clamp_min(1)
        mean = (x * mask).sum(-1, keepdim=True) / count
        var = (((x - mean) * mask) ** 2).sum(-1, keepdim=True) / count
        return (x - mean) / (var.sqrt() + EPS) * mask
    if mode == "dataset":
        mean = torch.tensor(spec["mean"], dtype=x.dtype, device=x.device)[None, :, None]
        std = torch.tensor(spec["std"], dtype=x.dtype, device=x.device)[None, :, None]
        return (x - mean) / (std + EPS) * mask
    raise ValueError(f"unknown normalisation {mode!r}; choose from {', '.join(NORMALIZATIONS)}")


def dataset_statistics(x: np.ndarray, lengths: np.ndarray, indices: np.ndarray) -> dict:
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
    return {"mode": "dataset", "mean": mean.tolist(), "std": std.tolist()}
