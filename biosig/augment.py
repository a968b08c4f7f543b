"""Training-time augmentation of whole padded batches, run on the training device.

Every transform takes a batch ``x`` of shape ``[B, C, T]`` (float32, bfloat16, ...) in which
item ``i`` holds ``lengths[i]`` valid samples followed by zero padding, and returns a new
tensor of the same shape, dtype and device. Padding is never touched, so it stays exactly
zero. Each item is transformed with probability ``p``; items that are not picked come back
bit-for-bit unchanged. All randomness is drawn from the ``torch.Generator`` passed in, so a
fixed seed reproduces the same augmentation.

The generator may live on a different device than ``x`` (a CPU generator with a CUDA batch
works): random numbers are drawn where the generator lives and moved to ``x``. A generator
on ``x``'s device avoids that copy and is the fast choice during training.

Augmentation is for training only; evaluation and prediction never call it.

To add a transform, subclass :class:`BatchTransform`, implement ``_transform`` (apply to
every item; selection by ``p`` is done by the base class), give it ``name`` and
``default_strength``, and add it to :data:`AUGMENTATIONS`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import ClassVar

import torch
from torch import Tensor

from .layers.mask import lengths_to_mask

__all__ = [
    "AUGMENTATIONS",
    "BatchTransform",
    "Compose",
    "GaussianNoise",
    "TimeWarp",
    "build_augmentation",
]


def _rand(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device
) -> Tensor:
    """Uniform [0, 1) float32 numbers drawn on the generator's device, returned on ``device``."""
    where = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=where).to(device)


def _randn(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device
) -> Tensor:
    """Standard normal float32 numbers drawn on the generator's device, returned on ``device``."""
    where = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=where).to(device)


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    # Positions and statistics in bf16 would be far too coarse (8 bits of mantissa cannot
    # even count to 300), so arithmetic runs in at least float32 and is cast back at the end.
    return torch.promote_types(dtype, torch.float32)


def _check_batch(x: Tensor, lengths: Tensor) -> None:
    if x.dim() != 3:
        raise ValueError(f"expected a batch of shape [B, C, T], got {tuple(x.shape)}")
    if lengths.shape != (x.shape[0],):
        raise ValueError(
            f"lengths must have shape ({x.shape[0]},) to match the batch, "
            f"got {tuple(lengths.shape)}"
        )
    if not x.is_floating_point():
        raise ValueError(f"augmentation needs a floating-point batch, got {x.dtype}")


class BatchTransform(ABC):
    """A random transform of a padded batch, applied to each item with probability ``p``.

    ``strength`` sets how strong the transform is; ``0`` is exactly the identity, and so is
    ``p == 0``. Subclasses implement :meth:`_transform`, which transforms every item; this
    class picks the items and leaves the others unchanged.
    """

    #: Key in :data:`AUGMENTATIONS` and in ``build_augmentation`` specs.
    name: ClassVar[str] = ""
    #: Strength used when none is given.
    default_strength: ClassVar[float] = 0.0

    def __init__(self, p: float = 0.5, strength: float | None = None) -> None:
        if strength is None:
            strength = self.default_strength
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{type(self).__name__}: p must be in [0, 1], got {p}")
        if not (math.isfinite(strength) and strength >= 0.0):
            raise ValueError(
                f"{type(self).__name__}: strength must be finite and >= 0, got {strength}"
            )
        self.p = float(p)
        self.strength = float(strength)

    def __call__(
        self, x: Tensor, lengths: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """Return an augmented copy of ``x`` (``[B, C, T]``); ``x`` itself is not modified.

        ``lengths`` (``[B]``, integer) gives the valid samples per item. ``generator`` is the
        source of all randomness (``None``: torch's global generator). When the transform
        cannot change anything (``p == 0`` or ``strength == 0``) ``x`` is returned as is.
        """
        _check_batch(x, lengths)
        if self.p == 0.0 or self.strength == 0.0:
            return x
        # Clamping instead of checking keeps the call free of device-to-host syncs.
        lengths = lengths.to(device=x.device, dtype=torch.long).clamp(0, x.shape[-1])
        picked = _rand((x.shape[0],), generator, x.device) < self.p
        out = self._transform(x, lengths, generator)
        return torch.where(picked[:, None, None], out, x)

    @abstractmethod
    def _transform(self, x: Tensor, lengths: Tensor, generator: torch.Generator | None) -> Tensor:
        """Transform every item of ``x``; must leave padding as it is in ``x``.

        ``lengths`` is already a long tensor on ``x.device`` clamped to ``[0, T]``; the
        result must have ``x``'s shape, dtype and device.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p}, strength={self.strength})"


class TimeWarp(BatchTransform):
    """Smooth random monotone warp of the time axis of each item, within its valid part.

    The playback speed of each item is drawn at ``n_knots + 1`` evenly spaced knots as
    ``exp(strength * N(0, 1))`` (so ``strength`` is roughly the relative departure of the
    speed from 1), interpolated linearly in between and integrated; the integral is scaled
    so that the warp maps ``[0, len - 1]`` onto itself. Positive speeds make the warp
    monotone, so the first and last valid samples stay in place and no sample order is
    reversed. The signal is resampled at the warped positions by linear interpolation.
    """

    name: ClassVar[str] = "time_warp"
    default_strength: ClassVar[float] = 0.2

    def __init__(self, p: float = 0.5, strength: float | None = None, n_knots: int = 4) -> None:
        super().__init__(p, strength)
        if n_knots < 1:
            raise ValueError(f"TimeWarp: n_knots must be >= 1, got {n_knots}")
        self.n_knots = int(n_knots)

    def _transform(self, x: Tensor, lengths: Tensor, generator: torch.Generator | None) -> Tensor:
        batch, channels, n_samples = x.shape
        device, work = x.device, _work_dtype(x.dtype)
        k = self.n_knots

        knot_speed = torch.exp(self.strength * _randn((batch, k + 1), generator, device)).to(work)
        last_idx = (lengths - 1).clamp_min(0)  # [B], index of the last valid sample
        last = last_idx.to(work)
        steps = torch.arange(n_samples, device=device, dtype=work)

        # Speed of step t -> t+1, read at the step's midpoint on the item's own [0, 1] axis,
        # so every item gets a warp of the same shape however long it is.
        q = ((steps[None, :] + 0.5) / last.clamp_min(1.0)[:, None] * k).clamp(0.0, float(k))
        j = q.floor().clamp(max=k - 1).long()
        frac = q - j.to(work)
        v0 = knot_speed.gather(1, j)
        v1 = knot_speed.gather(1, j + 1)
        # v0 + frac * (v1 - v0) rather than v0 * (1 - frac) + v1 * frac: equal knots then give
        # exactly that speed, keeping a near-identity warp free of rounding drift.
        speed = (v0 + frac * (v1 - v0)).clamp_min(0.0)

        # Source position of output sample t is the integrated speed over steps 0 .. t-1.
        src = torch.cumsum(speed, dim=1)
        src = torch.cat([torch.zeros_like(src[:, :1]), src[:, :-1]], dim=1)
        total = src.gather(1, last_idx[:, None])  # [B, 1]
        scale = torch.where(total > 0, last[:, None] / total.clamp_min(1e-30), 0.0)
        src = torch.minimum(src * scale, last[:, None])
        # Pin the end point exactly; the scaled integral can miss it by an ulp.
        src = torch.where(steps[None, :] == last[:, None], last[:, None], src)

        i0 = src.floor().long().clamp(0, n_samples - 1)
        i1 = torch.minimum(i0 + 1, last_idx[:, None]).clamp(0, n_samples - 1)
        w = (src - i0.to(work))[:, None, :]
        xw = x.to(work)
        x0 = xw.gather(2, i0[:, None, :].expand(batch, channels, n_samples))
        x1 = xw.gather(2, i1[:, None, :].expand(batch, channels, n_samples))
        # x0 + w * (x1 - x0) never overshoots x1, which keeps a monotone input monotone.
        out = (x0 + w * (x1 - x0)).to(x.dtype)

        valid = lengths_to_mask(lengths, n_samples)[:, None, :]
        return torch.where(valid, out, x)


class GaussianNoise(BatchTransform):
    """Additive Gaussian noise scaled to each item's own level.

    The noise std of channel ``c`` of an item is ``strength`` times that channel's (population)
    std over the item's valid samples, so the transform does not depend on the signal's units
    or scale. A flat channel gets no noise.
    """

    name: ClassVar[str] = "noise"
    default_strength: ClassVar[float] = 0.05

    def _transform(self, x: Tensor, lengths: Tensor, generator: torch.Generator | None) -> Tensor:
        batch, channels, n_samples = x.shape
        device, work = x.device, _work_dtype(x.dtype)
        valid = lengths_to_mask(lengths, n_samples)[:, None, :]
        m = valid.to(work)
        xw = x.to(work)
        n = lengths.clamp_min(1).to(work)[:, None]  # [B, 1]
        mean = (xw * m).sum(dim=2) / n
        var = (((xw - mean[..., None]) * m) ** 2).sum(dim=2) / n
        sigma = self.strength * var.sqrt()  # [B, C]
        noise = _randn((batch, channels, n_samples), generator, device).to(work)
        out = (xw + noise * sigma[..., None]).to(x.dtype)
        return torch.where(valid, out, x)


class Compose:
    """Apply transforms one after the other; an empty ``Compose`` is the identity."""

    def __init__(self, transforms: Sequence[BatchTransform]) -> None:
        self.transforms: list[BatchTransform] = list(transforms)

    def __call__(
        self, x: Tensor, lengths: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """Run every transform in order on ``x`` (see :meth:`BatchTransform.__call__`)."""
        for transform in self.transforms:
            x = transform(x, lengths, generator)
        return x

    def __len__(self) -> int:
        return len(self.transforms)

    def __iter__(self) -> Iterator[BatchTransform]:
        return iter(self.transforms)

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


#: Transforms by name. Each class takes ``(p, strength)`` and has a ``default_strength``.
AUGMENTATIONS: dict[str, type[BatchTransform]] = {
    TimeWarp.name: TimeWarp,
    GaussianNoise.name: GaussianNoise,
}


def _parse_spec(spec: str, strength: float | None) -> tuple[type[BatchTransform], float | None]:
    name, sep, value = spec.strip().partition(":")
    name = name.strip().lower()
    if name not in AUGMENTATIONS:
        known = ", ".join(sorted(AUGMENTATIONS))
        raise ValueError(f"unknown augmentation {name!r}; known: {known}")
    if not sep:
        return AUGMENTATIONS[name], strength
    try:
        own = float(value)
    except ValueError:
        raise ValueError(
            f"augmentation {spec.strip()!r}: strength {value.strip()!r} is not a number"
        ) from None
    if not (math.isfinite(own) and own >= 0.0):
        raise ValueError(f"augmentation {spec.strip()!r}: strength must be finite and >= 0")
    return AUGMENTATIONS[name], own


def build_augmentation(
    names: Sequence[str] | str, p: float = 0.5, strength: float | None = None
) -> Compose:
    """Build the transforms named in ``names``, applied in that order.

    Each entry is ``"name"`` or ``"name:strength"`` (e.g. ``"noise:0.1"``); a single string
    may list several, comma-separated (``"time_warp,noise:0.1"``). Entries without their own
    strength use ``strength``, or each transform's ``default_strength`` when it is ``None``.
    Every transform is applied to each item with probability ``p``. Unknown names raise
    ``ValueError`` listing the known ones.
    """
    if isinstance(names, str):
        names = [part for part in names.split(",") if part.strip()]
    transforms: list[BatchTransform] = []
    for spec in names:
        cls, own = _parse_spec(spec, strength)
        transforms.append(cls(p=p, strength=own))
    return Compose(transforms)
