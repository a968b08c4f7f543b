"""Rotary position embedding (RoPE) for per-head queries and keys."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _rotate_half(x: Tensor) -> Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


class RotaryEmbedding(nn.Module):
    """Rotate pairs of features of ``q`` and ``k`` by angles proportional to position.

    Applied per head *after* the q/k projections (``[B, H, T, head_dim]``), so the score
    ``q_m . k_n`` depends on positions only through ``m - n``. Feature ``i`` is paired with
    ``i + head_dim/2`` (the GPT-NeoX layout).

    cos/sin tables for positions ``0..T-1`` are cached in float32 on the inputs' device
    and grown on demand; the rotation is done in float32 and cast back.
    """

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"RotaryEmbedding: head_dim must be even, got {head_dim}")
        self.head_dim = head_dim
        self.base = base
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        # Not persistent: derived from the config, so checkpoints need not carry it.
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self._cos: Tensor | None = None
        self._sin: Tensor | None = None

    def _tables(self, seq_len: int, device: torch.device) -> tuple[Tensor, Tensor]:
        cos, sin = self._cos, self._sin
        stale = (
            cos is None
            or sin is None
            or cos.shape[0] < seq_len
            or cos.device != device
            # A table built under inference_mode cannot be saved for backward later.
            or (cos.is_inference() and not torch.is_inference_mode_enabled())
        )
        if stale:
            positions = torch.arange(seq_len, device=device, dtype=torch.float32)
            freqs = positions[:, None] * self.inv_freq.to(device=device, dtype=torch.float32)
            angles = torch.cat((freqs, freqs), dim=-1)
            cos, sin = angles.cos(), angles.sin()
            self._cos, self._sin = cos, sin
        return cos[:seq_len], sin[:seq_len]

    def forward(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        """Rotate ``q`` and ``k`` (both ``[B, H, T, head_dim]``); returns them in their dtype."""
        if q.shape[-1] != self.head_dim or k.shape[-1] != self.head_dim:
            raise ValueError(
                f"RotaryEmbedding: expected last dim {self.head_dim}, "
                f"got q {tuple(q.shape)} and k {tuple(k.shape)}"
            )
        cos, sin = self._tables(max(q.shape[-2], k.shape[-2]), q.device)

        def rotate(x: Tensor) -> Tensor:
            t = x.shape[-2]
            x32 = x.float()
            return (x32 * cos[:t] + _rotate_half(x32) * sin[:t]).to(x.dtype)

        return rotate(q), rotate(k)
