"""Pool a variable-length token sequence into one vector with learned attention."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class AttentionPool(nn.Module):
    """Multi-head attention pooling with one learned query per head.

    Each head scores every token against its query, takes a masked softmax over tokens
    and averages that head's slice of the value projection with those weights. The
    weights say which parts of the signal the decision rests on, so they are returned for
    explanation. Padded tokens get exactly zero weight and their values are never read.
    """

    def __init__(self, dim: int, n_heads: int) -> None:
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"AttentionPool: dim {dim} is not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.head_dim = dim // n_heads
        self.query = nn.Parameter(torch.empty(n_heads, self.head_dim))
        nn.init.trunc_normal_(self.query, std=0.02)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``x: [B, T, dim]``, ``mask: [B, T]`` bool (``True`` = valid) or ``None``.

        Returns the pooled ``[B, dim]`` and the weights ``[B, n_heads, T]``.
        Every item needs at least one valid token.
        """
        b, t, _ = x.shape
        keys = self.key(x).view(b, t, self.n_heads, self.head_dim)
        values = self.value(x).view(b, t, self.n_heads, self.head_dim)
        scores = torch.einsum("bthd,hd->bht", keys, self.query) / math.sqrt(self.head_dim)
        if mask is not None:
            scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
            # where(), not a product: 0 * NaN would still leak garbage padding into the sum.
            values = torch.where(mask[:, :, None, None], values, 0.0)
        # float32 softmax even under autocast: the weights are also an explanation output.
        weights = scores.softmax(dim=-1, dtype=torch.float32)
        pooled = torch.einsum("bht,bthd->bhd", weights.to(values.dtype), values)
        return pooled.reshape(b, -1), weights
