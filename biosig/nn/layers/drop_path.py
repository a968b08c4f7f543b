"""Stochastic depth: drop a residual branch for whole examples while training."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class DropPath(nn.Module):
    """Zero a residual branch's output for a random ``rate`` of the batch's examples and
    scale the kept ones by ``1 / (1 - rate)``, so the expected output is unchanged; the
    identity at evaluation and at rate 0.

    Per example rather than per element (dropout): each kept example sees the whole branch,
    each dropped one a shallower network, which is what regularises deep residual stacks
    on small data (Huang et al., 2016, "Deep networks with stochastic depth").
    """

    def __init__(self, rate: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"drop-path rate must be in [0, 1), got {rate}")
        self.rate = float(rate)

    def forward(self, x: Tensor) -> Tensor:
        """``x: [B, ...]``, one residual branch's output."""
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        mask = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"rate={self.rate}"
