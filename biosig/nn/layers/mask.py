"""Padding-mask helpers shared by the layers and the model.

A batch of variable-length signals is zero-padded to a common length ``T``; ``lengths``
says how many leading samples of each item are real. Masks are ``True`` where valid.
"""

from __future__ import annotations

import torch
from torch import Tensor


def lengths_to_mask(lengths: Tensor, max_len: int) -> Tensor:
    """Boolean mask ``[B, max_len]``, ``True`` at positions ``< lengths[b]``."""
    positions = torch.arange(max_len, device=lengths.device)
    return positions.unsqueeze(0) < lengths.unsqueeze(1)


def downsample_lengths(lengths: Tensor | int, stride: int) -> Tensor | int:
    """Valid length after a stride-``stride`` conv with kernel 3, padding 1: ``ceil(len/stride)``.

    Works on tensors and plain ints. Output position ``j`` of such a conv reads inputs
    ``stride*j - 1 .. stride*j + 1``; it is valid when its centre ``stride*j`` is valid, and
    the input at ``stride*j + 1`` is then either valid or the zero the conv would pad with.
    """
    return -(-lengths // stride)


def masked_mean(x: Tensor, mask: Tensor | None, dim: int = -1, keepdim: bool = False) -> Tensor:
    """Mean of ``x`` over ``dim`` counting only positions where ``mask`` is true.

    ``mask`` broadcasts against ``x`` (bool or 0/1 float); ``None`` means all valid. Padded
    values are replaced rather than multiplied away, so even NaN padding cannot leak in.
    An all-padded slice gives 0 rather than NaN.
    """
    if mask is None:
        return x.mean(dim=dim, keepdim=keepdim)
    mask = mask if mask.dtype == torch.bool else mask != 0
    total = torch.where(mask, x, 0.0).sum(dim=dim, keepdim=keepdim)
    count = mask.expand_as(x).sum(dim=dim, keepdim=keepdim).clamp(min=1)
    return total / count.to(total.dtype)
