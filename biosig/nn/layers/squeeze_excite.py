"""Channel attention for 1-D feature maps."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from biosig.nn.layers.mask import masked_mean


class SqueezeExcite1d(nn.Module):
    """Squeeze-and-excitation: rescale channels by a gate computed from their time average.

    The squeeze is a mean over *valid* time steps only (``mask: [B, 1, T]``), so an item's
    gates do not depend on how much padding its batch added.
    """

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)
        self.act = nn.GELU()

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``x: [B, C, T]``; ``mask: [B, 1, T]`` (bool or 0/1) or ``None`` for all valid."""
        squeezed = masked_mean(x, mask, dim=-1)
        gate = torch.sigmoid(self.fc2(self.act(self.fc1(squeezed))))
        return x * gate.unsqueeze(-1)
