"""Training-time augmentation of whole padded batches, run on the training device.

There are two kinds of augmentation:

* **Signal transforms** (:class:`BatchTransform`) change each item on its own. They take a
  batch ``x`` of shape ``[B, C, T]`` (float32, bfloat16, ...) in which item ``i`` holds
  ``lengths[i]`` valid samples followed by zero padding, and return a new tensor of the same
  shape, dtype and device.
* **Batch mixing** (:class:`BatchMix`: mixup, cutmix) blends each item with another item
  of the batch and blends their soft targets ``[B, K]`` with the same weight.

Both kinds share the rules of :class:`Augmentation`: padding is never touched, so it stays
exactly zero; each item is augmented with probability ``p`` and items that are not picked
come back bit-for-bit unchanged; ``strength == 0`` (or ``p == 0``) is exactly the identity;
all randomness is drawn from the ``torch.Generator`` passed in, so a fixed seed reproduces
the same augmentation. Strengths are meant for normalised windows (see
:mod:`biosig.data.normalize`, which runs before augmentation in training).

The generator may live on a different device than ``x`` (a CPU generator with a CUDA batch
works): random numbers are drawn where the generator lives and moved to ``x``. A generator
on ``x``'s device avoids that copy and is the fast choice during training. No transform
reads a value back to the host, so none makes the device synchronise.

Augmentation is for training only; evaluation and prediction never call it.

:func:`build_augmentation` builds a :class:`Compose` from specs such as
``"time_warp,noise:0.1,mixup:0.2:0.3"`` (``name[:strength[:p]]``). Calling the
``Compose`` applies its signal transforms; :meth:`Compose.mix` applies its mixing ones, and
is meant to run after them, on the batch and its one-hot (or already soft) targets.

To add a signal transform, subclass :class:`BatchTransform`, implement ``_transform`` (apply
to every item; selection by ``p`` is done by the base class), give it ``name`` and
``default_strength`` (and ``max_strength`` when strength has an upper bound), and add it to
:data:`AUGMENTATIONS`. A mixing transform subclasses :class:`BatchMix` and implements
``_mix`` instead.
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
    "Augmentation",
    "BaselineWander",
    "BatchMix",
    "BatchTransform",
    "ChannelDropout",
    "ChannelScale",
    "Compose",
    "CutMix",
    "GaussianNoise",
    "MixUp",
    "Scale",
    "Shift",
    "TimeMask",
    "TimeWarp",
    "WindowWarp",
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


def _randperm(n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """A random permutation of ``0 .. n-1`` (long) drawn on the generator's device."""
    where = generator.device if generator is not None else device
    return torch.randperm(n, generator=generator, device=where).to(device)


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


def _masked_moments(xw: Tensor, valid: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and population variance ``[B, C]`` over each item's valid samples.

    ``xw`` is the batch in the work dtype, ``valid`` the ``[B, 1, T]`` mask. An empty item
    gets mean and variance 0.
    """
    m = valid.to(xw.dtype)
    n = lengths.clamp_min(1).to(xw.dtype)[:, None]  # [B, 1]
    mean = (xw * m).sum(dim=2) / n
    var = (((xw - mean[..., None]) * m) ** 2).sum(dim=2) / n
    return mean, var


def _invalid(cls: type[Augmentation], p: float, strength: float) -> str | None:
    """Why ``(p, strength)`` is not valid for ``cls``, or ``None`` when it is."""
    if not 0.0 <= p <= 1.0:
        return f"p must be in [0, 1], got {p}"
    if not (math.isfinite(strength) and strength >= 0.0):
        return f"strength must be finite and >= 0, got {strength}"
    if strength > cls.max_strength:
        return f"strength must be <= {cls.max_strength}, got {strength}"
    return None


class Augmentation:
    """What every augmentation has: a name, a probability ``p`` and a ``strength``.

    ``strength == 0`` and ``p == 0`` are exactly the identity. Subclass
    :class:`BatchTransform` or :class:`BatchMix`, not this class.
    """

    #: Key in :data:`AUGMENTATIONS` and in ``build_augmentation`` specs.
    name: ClassVar[str] = ""
    #: Strength used when none is given.
    default_strength: ClassVar[float] = 0.0
    #: Largest meaningful strength (e.g. 1 for a fraction or a probability).
    max_strength: ClassVar[float] = math.inf

    def __init__(self, p: float = 0.5, strength: float | None = None) -> None:
        if strength is None:
            strength = self.default_strength
        problem = _invalid(type(self), p, strength)
        if problem is not None:
            raise ValueError(f"{type(self).__name__}: {problem}")
        self.p = float(p)
        self.strength = float(strength)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p}, strength={self.strength})"


class BatchTransform(Augmentation, ABC):
    """A random transform of a padded batch, applied to each item with probability ``p``.

    ``strength`` sets how strong the transform is; ``0`` is exactly the identity, and so is
    ``p == 0``. Subclasses implement :meth:`_transform`, which transforms every item; this
    class picks the items and leaves the others unchanged.
    """

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


def _resample(x: Tensor, src: Tensor, lengths: Tensor) -> Tensor:
    """Read each item of ``x`` at the fractional positions ``src`` ``[B, T]`` (linear interp).

    ``src`` must lie in ``[0, lengths - 1]`` on the valid part; padding is kept from ``x``.
    """
    batch, channels, n_samples = x.shape
    work = src.dtype
    last_idx = (lengths - 1).clamp_min(0)
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
        batch, _, n_samples = x.shape
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
        return _resample(x, src, lengths)


class WindowWarp(BatchTransform):
    """Speed up or slow down one random sub-window of each item (Le Guennec et al., 2016).

    A window of ``window`` times the item's valid length (at least one sample step) at a
    random place is stretched by ``exp(strength)`` or squeezed by ``exp(-strength)`` (either
    with probability 1/2); the samples after it move along, and the whole valid part is
    then resampled back to the item's own length by linear interpolation. ``strength`` is
    thus the log of the speed factor: the default ``0.7`` is close to the classic x2 / x1/2
    (``ln 2 = 0.69``). The map is piecewise linear and increasing, so, as for
    :class:`TimeWarp`, the first and last valid samples stay in place and the order of
    samples is kept.
    """

    name: ClassVar[str] = "window_warp"
    default_strength: ClassVar[float] = 0.7

    def __init__(self, p: float = 0.5, strength: float | None = None, window: float = 0.1) -> None:
        super().__init__(p, strength)
        if not 0.0 < window <= 1.0:
            raise ValueError(f"WindowWarp: window must be in (0, 1], got {window}")
        self.window = float(window)

    def _transform(self, x: Tensor, lengths: Tensor, generator: torch.Generator | None) -> Tensor:
        batch, _, n_samples = x.shape
        device, work = x.device, _work_dtype(x.dtype)
        draws = _rand((batch, 2), generator, device).to(work)
        last_idx = (lengths - 1).clamp_min(0)
        last = last_idx.to(work)[:, None]  # [B, 1]
        # Whole-sample window start and width: with factor 1 every branch below is then
        # exact integer arithmetic, so the warp itself is the identity at strength 0.
        width = (self.window * last).round().clamp_min(1.0)
        width = torch.minimum(width, last)
        start = (draws[:, :1] * (last - width + 1.0)).floor().clamp(min=0.0)
        start = torch.minimum(start, last - width)
        sign = torch.where(draws[:, 1:] < 0.5, -1.0, 1.0).to(work)
        factor = torch.exp(self.strength * sign)

        # Warped time of source position u: u before the window, start + (u - start) * factor
        # inside it, shifted by width * (factor - 1) after it. Output sample t sits at warped
        # time t * end / last (the warped axis squeezed back onto [0, last]); invert the
        # piecewise-linear map to find which source position it reads.
        stretched = width * factor
        end = last + (stretched - width)
        steps = torch.arange(n_samples, device=device, dtype=work)[None, :]
        tau = steps * end / last.clamp_min(1.0)
        inside = start + (tau - start) / factor
        after = tau - stretched + width
        src = torch.where(tau < start, tau, torch.where(tau < start + stretched, inside, after))
        # Rounding at a branch boundary could step back by an ulp; a running maximum keeps the
        # map non-decreasing (and leaves an already monotone one, like the identity, as is).
        src = torch.cummax(src.clamp(min=0.0), dim=1).values
        src = torch.minimum(src, last)
        src = torch.where(steps == last, last, src)  # pin the end point against rounding
        return _resample(x, src, lengths)


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
        xw = x.to(work)
        _, var = _masked_moments(xw, valid, lengths)
        sigma = self.strength * var.sqrt()  # [B, C]
        noise = _randn((batch, channels, n_samples), generator, device).to(work)
        out = (xw + noise * sigma[..., None]).to(x.dtype)
        return torch.where(valid, out, x)


class Scale(BatchTransform):
    """Multiply each item by one random gain ``exp(strength * N(0, 1))``.

    ``strength`` is the std of the log-gain: the default ``0.2`` gives gains mostly within
    x0.67 .. x1.5 (two sigmas), a plausible spread of amplitude between recordings and
    subjects that a per-dataset normalisation does not remove. The gain is positive, so the
    shape and sign of the signal are kept.
    """

    name: ClassVar[str] = "scale"
    default_strength: ClassVar[float] = 0.2

    def _gain_shape(self, x: Tensor) -> tuple[int, ...]:
        return (x.shape[0], 1)

    def _transform(self, x: Tensor, lengths: Tensor, generator: torch.Generator | None) -> Tensor:
        work = _work_dtype(x.dtype)
        gain = torch.exp(self.strength * _randn(self._gain_shape(x), generator, x.device))
        out = (x.to(work) * gain.to(work)[..., None]).to(x.dtype)
        # Padding times a finite gain is zero anyway; the mask guards against an overflowing
        # gain (0 * inf = nan) at absurd strengths.
        valid = lengths_to_mask(lengths, x.shape[-1])[:, None, :]
        return torch.where(valid, out, x)


class ChannelScale(Scale):
    """Multiply each channel of each item by its own gain ``exp(strength * N(0, 1))``.

    Models differences in electrode or sensor gain between channels. ``strength`` is the std
    of the log-gain; the default ``0.1`` (gains mostly within x0.82 .. x1.22) is smaller than
    :class:`Scale`'s because changing the channels' relative amplitudes alters more of what
    the model may rely on (e.g. the relation of ECG leads) than a common gain does.
    """

    name: ClassVar[str] = "channel_scale"
    default_strength: ClassVar[float] = 0.1

    def _gain_shape(self, x: Tensor) -> tuple[int, ...]:
        return (x.shape[0], x.shape[1])


class Shift(BatchTransform):
    """Rotate each item's valid part in time by a random offset (circular shift).

    The offset is uniform in ``[-strength * len, strength * len]`` samples (rounded), so
    ``strength`` is the largest shift as a fraction of the item's valid length (at most 1;
    0.5 already reaches every rotation). The default ``0.1`` moves events by up to a tenth
    of the window.

    Circular rather than crop-and-zero-fill: every valid sample is kept, so an event near
    the edge is not cut off (which could change the label) and the item's mean and std are
    unchanged, whereas zero fill would add a flat stretch that looks like a dropout and is
    not what the model sees at prediction time. The price is a single seam where the end
    meets the start, much like the arbitrary cut at a window's edges. Padding stays in place.
    """

    name: ClassVar[str] = "shift"
    default_strength: ClassVar[float] = 0.1
    max_strength: ClassVar[float] = 1.0

    def _transform(self, x: Tensor, lengths: Tensor, generator: torch.Generator | None) -> Tensor:
        batch, channels, n_samples = x.shape
        u = _rand((batch,), generator, x.device)
        offset = ((2.0 * u - 1.0) * self.strength * lengths.to(torch.float32)).round().long()
        n = lengths.clamp_min(1)[:, None]
        steps = torch.arange(n_samples, device=x.device)[None, :]
        # remainder takes the divisor's sign, so a negative offset wraps correctly.
        src = torch.remainder(steps - offset[:, None], n)
        src = torch.where(steps < lengths[:, None], src, steps)
        # A pure gather: values are copied, not recomputed, so any dtype passes unchanged.
        return x.gather(2, src[:, None, :].expand(batch, channels, n_samples))


class TimeMask(BatchTransform):
    """Blank up to ``n_spans`` random time spans of each item, ``strength * len`` samples in all.

    The masked length ``round(strength * len)`` is split into ``n_spans`` near-equal spans
    placed at random without overlapping (adjacent ones merge, hence "up to"), so exactly
    that many samples are blanked; ``strength`` is the masked fraction (at most 1). The
    default ``0.1`` masks a tenth of the window, in 2 spans.

    Masked samples are set to the channel's mean over the item's valid part rather than to
    zero: after the usual per-window normalisation the two are the same (the mean is 0),
    but with ``dataset``, ``recording`` or no normalisation zero can be far from the signal
    and would add a step that no real recording has, while the mean is neutral in every
    mode and leaves the item's mean unchanged.
    """

    name: ClassVar[str] = "time_mask"
    default_strength: ClassVar[float] = 0.1
    max_strength: ClassVar[float] = 1.0

    def __init__(self, p: float = 0.5, strength: float | None = None, n_spans: int = 2) -> None:
        super().__init__(p, strength)
        if n_spans < 1:
            raise ValueError(f"TimeMask: n_spans must be >= 1, got {n_spans}")
        self.n_spans = int(n_spans)

    def _transform(self, x: Tensor, lengths: Tensor, generator: torch.Generator | None) -> Tensor:
        batch, _, n_samples = x.shape
        k = self.n_spans
        total = (self.strength * lengths.to(torch.float32)).round().long()
        total = torch.minimum(total, lengths)  # [B]
        # Split `total` into k spans whose lengths differ by at most one and sum to it.
        cuts = torch.arange(k + 1, device=x.device)
        bounds = total[:, None] * cuts[None, :] // k  # [B, k + 1]
        span = bounds[:, 1:] - bounds[:, :-1]  # [B, k]
        # Place the spans in order, with random unmasked gaps: span j starts after the gap
        # gaps[j] (sorted, within the len - total unmasked samples) plus spans 0 .. j-1.
        room = (lengths - total)[:, None]
        gaps = (_rand((batch, k), generator, x.device) * (room + 1)).floor().long()
        gaps = torch.minimum(gaps, room).sort(dim=1).values
        start = gaps + bounds[:, :-1]
        steps = torch.arange(n_samples, device=x.device)[None, None, :]
        inside = (steps >= start[..., None]) & (steps < (start + span)[..., None])
        masked = inside.any(dim=1)[:, None, :]  # [B, 1, T]

        valid = lengths_to_mask(lengths, n_samples)[:, None, :]
        mean, _ = _masked_moments(x.to(_work_dtype(x.dtype)), valid, lengths)
        return torch.where(masked, mean.to(x.dtype)[..., None], x)


class ChannelDropout(BatchTransform):
    """Zero each channel of an item with probability ``strength``, never all of them.

    Simulates a lost or disconnected lead. Zero is what such a channel becomes after the
    per-window normalisation (a constant maps to 0), so the model meets it as it would at
    prediction time. When every channel of an item is drawn, one of them (chosen at random)
    is kept. ``strength`` is the drop probability (at most 1); the default ``0.1`` is mild
    enough for recordings with few channels. A single-channel batch is never changed. The
    remaining channels are not rescaled: unlike dropout inside a network, the model sees
    the same kind of input at prediction time, when no channel is rescaled.
    """

    name: ClassVar[str] = "channel_dropout"
    default_strength: ClassVar[float] = 0.1
    max_strength: ClassVar[float] = 1.0

    def _transform(self, x: Tensor, lengths: Tensor, generator: torch.Generator | None) -> Tensor:
        batch, channels, n_samples = x.shape
        u = _rand((batch, channels), generator, x.device)
        drop = u < self.strength
        # The channel with the largest draw is a uniformly random one; spare it when all fell.
        spare = torch.nn.functional.one_hot(u.argmax(dim=1), channels).bool()
        drop = drop & ~(drop.all(dim=1, keepdim=True) & spare)
        valid = lengths_to_mask(lengths, n_samples)[:, None, :]
        return torch.where(drop[..., None] & valid, 0.0, x)


class BaselineWander(BatchTransform):
    """Add a slow random drift: a sum of ``n_components`` sinusoids per channel.

    Each component has a frequency uniform in ``[min_cycles, max_cycles]`` cycles per item
    valid length (defaults 0.1 .. 2: periods from half the window to ten windows, i.e. the
    drift of breathing or electrode motion seen through a window), a random phase and a
    random normal weight; the weights are scaled to a root-sum-square of ``strength`` times
    the channel's std over the item's valid part, so a single sinusoid would have amplitude
    ``strength * std`` (the drift's RMS is about ``strength * std / sqrt(2)``). The default
    ``0.3`` is a clearly visible but not dominating wander on normalised windows. Channels
    drift independently; a flat channel gets no drift.
    """

    name: ClassVar[str] = "baseline_wander"
    default_strength: ClassVar[float] = 0.3

    def __init__(
        self,
        p: float = 0.5,
        strength: float | None = None,
        n_components: int = 3,
        min_cycles: float = 0.1,
        max_cycles: float = 2.0,
    ) -> None:
        super().__init__(p, strength)
        if n_components < 1:
            raise ValueError(f"BaselineWander: n_components must be >= 1, got {n_components}")
        if not 0.0 <= min_cycles <= max_cycles:
            raise ValueError(
                f"BaselineWander: need 0 <= min_cycles <= max_cycles, got {min_cycles}, "
                f"{max_cycles}"
            )
        self.n_components = int(n_components)
        self.min_cycles = float(min_cycles)
        self.max_cycles = float(max_cycles)

    def _transform(self, x: Tensor, lengths: Tensor, generator: torch.Generator | None) -> Tensor:
        batch, channels, n_samples = x.shape
        device, work = x.device, _work_dtype(x.dtype)
        shape = (batch, channels, self.n_components)
        span = self.max_cycles - self.min_cycles
        cycles = (self.min_cycles + span * _rand(shape, generator, device)).to(work)
        phase = (2.0 * math.pi * _rand(shape, generator, device)).to(work)
        weight = _randn(shape, generator, device).to(work)
        weight = weight / weight.norm(dim=2, keepdim=True).clamp_min(1e-12)

        # Time on each item's own [0, 1) axis, so the drift spans the same share of every item.
        steps = torch.arange(n_samples, device=device, dtype=work)
        t = (steps[None, :] / lengths.clamp_min(1).to(work)[:, None])[:, None, :]  # [B, 1, T]
        drift = torch.zeros(x.shape, device=device, dtype=work)
        for k in range(self.n_components):  # a loop keeps memory at one [B, C, T] buffer
            angle = 2.0 * math.pi * cycles[..., k, None] * t + phase[..., k, None]
            drift = drift + weight[..., k, None] * torch.sin(angle)

        valid = lengths_to_mask(lengths, n_samples)[:, None, :]
        xw = x.to(work)
        _, var = _masked_moments(xw, valid, lengths)
        amplitude = self.strength * var.sqrt()  # [B, C]
        out = (xw + amplitude[..., None] * drift).to(x.dtype)
        return torch.where(valid, out, x)


def _sample_gamma_log(
    shape: float,
    size: tuple[int, ...],
    generator: torch.Generator | None,
    device: torch.device,
) -> Tensor:
    """``log`` of Gamma(``shape``, 1) samples, float32, drawn only from ``generator``.

    ``torch.distributions`` cannot take a generator, so this is Marsaglia & Tsang (2000) on
    ``shape + 1`` with the boost ``G(a) = G(a + 1) * U ** (1 / a)``, in log space so tiny
    shapes do not underflow. The rejection step is vectorised over a fixed number of
    candidates (each accepted with probability > 0.95), keeping it free of host syncs; in
    the ~1e-11 case that all are rejected the candidate at the mode is used.
    """
    tries = 8
    d = shape + 1.0 - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    z = _randn((*size, tries), generator, device)
    u = _rand((*size, tries), generator, device)
    boost = 1.0 - _rand(size, generator, device)  # (0, 1]: its log is finite
    v = (1.0 + c * z) ** 3
    log_v = torch.log(v.clamp_min(1e-30))
    ok = (v > 0) & (torch.log(u) < 0.5 * z * z + d - d * v + d * log_v)
    first = ok.to(torch.uint8).argmax(dim=-1, keepdim=True)  # first accepted candidate
    log_v = torch.where(ok.any(dim=-1), log_v.gather(-1, first).squeeze(-1), 0.0)
    return math.log(d) + log_v + torch.log(boost) / shape


def _sample_beta(
    alpha: float, n: int, generator: torch.Generator | None, device: torch.device
) -> Tensor:
    """``n`` samples of Beta(``alpha``, ``alpha``) as float32 on ``device``."""
    log_g = _sample_gamma_log(alpha, (n, 2), generator, device)
    # G1 / (G1 + G2) = sigmoid(log G1 - log G2), exact even when both gammas underflow.
    return torch.sigmoid(log_g[:, 0] - log_g[:, 1])


def _check_targets(targets: Tensor, batch: int) -> None:
    if targets.dim() != 2 or targets.shape[0] != batch or not targets.is_floating_point():
        raise ValueError(
            f"mixing needs float targets of shape [{batch}, K] (one-hot or soft), got "
            f"{tuple(targets.shape)} {targets.dtype}"
        )


class BatchMix(Augmentation, ABC):
    """Blend items of a batch with random partners, and their targets with the same weight.

    Each item ``i`` is paired with item ``partner[i]`` of a random permutation (an item may
    draw itself, which leaves it unchanged) and, with probability ``p``, mixed with it by a
    weight ``lam ~ Beta(strength, strength)``; ``strength`` is thus the Beta parameter alpha
    (``0`` means no mixing). The partner is read from the input batch, before any mixing.
    Subclasses define how the signals are blended and what share ``keep`` of the result
    still comes from item ``i``; the targets become ``keep * t_i + (1 - keep) * t_partner``,
    so rows that sum to 1 still do. Each item keeps its own length.

    Label smoothing is left to the loss, on the mixed targets: smoothing
    ``t -> (1 - eps) t + eps / K`` and mixing are both affine maps whose weights sum to 1,
    so smoothing the mix equals mixing the smoothed targets, and the loss (linear in the
    target) of a mixed target is the same blend of the two items' losses.
    """

    def __call__(
        self,
        x: Tensor,
        lengths: Tensor,
        targets: Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Return mixed copies ``(x, targets)``; the inputs are not modified.

        ``x`` is ``[B, C, T]`` with ``lengths`` ``[B]`` as for :class:`BatchTransform`;
        ``targets`` is float ``[B, K]`` (one-hot rows, e.g. ``F.one_hot(y, K).float()``, or
        already soft ones). When nothing can change (``p == 0`` or ``strength == 0``) the
        inputs are returned as they are.
        """
        _check_batch(x, lengths)
        _check_targets(targets, x.shape[0])
        if self.p == 0.0 or self.strength == 0.0:
            return x, targets
        batch, device = x.shape[0], x.device
        lengths = lengths.to(device=device, dtype=torch.long).clamp(0, x.shape[-1])
        targets = targets.to(device)
        picked = _rand((batch,), generator, device) < self.p
        partner = self._partners(batch, generator, device)
        lam = self._sample_lambda(batch, generator, device)
        out, keep = self._mix(x, lengths, partner, lam, generator)
        out = torch.where(picked[:, None, None], out, x)

        work = _work_dtype(targets.dtype)
        t = targets.to(device=device, dtype=work)
        keep = keep.to(work)[:, None]
        mixed = (keep * t + (1.0 - keep) * t[partner]).to(targets.dtype)
        return out, torch.where(picked[:, None], mixed, targets)

    def _partners(
        self, batch: int, generator: torch.Generator | None, device: torch.device
    ) -> Tensor:
        """Partner index of each item: a random permutation (a hook tests can replace)."""
        return _randperm(batch, generator, device)

    def _sample_lambda(
        self, batch: int, generator: torch.Generator | None, device: torch.device
    ) -> Tensor:
        """Mixing weight of each item, Beta(alpha, alpha), float32 ``[B]`` (a test hook)."""
        return _sample_beta(self.strength, batch, generator, device)

    @abstractmethod
    def _mix(
        self,
        x: Tensor,
        lengths: Tensor,
        partner: Tensor,
        lam: Tensor,
        generator: torch.Generator | None,
    ) -> tuple[Tensor, Tensor]:
        """Mix every item with its partner; return the batch and ``keep`` ``[B]`` (float32).

        ``keep`` is the share of item ``i``'s own target in its mixed target. Padding must
        stay as it is in ``x``.
        """


class MixUp(BatchMix):
    """Mixup (Zhang et al., 2018): ``x_i <- lam * x_i + (1 - lam) * x_partner``.

    With unequal lengths the blend covers only the samples valid in both items; the rest of
    item ``i`` stays as it is (its partner's padding is not signal, and blending with it
    would merely fade item ``i`` out). Item ``i`` keeps its length, and the partner's
    target share is weighted by how much of item ``i`` it covers:
    ``keep = 1 - (1 - lam) * min(len_i, len_partner) / len_i`` (just ``lam`` for equal
    lengths). Default alpha ``0.2``, the common choice that keeps most mixes close to one
    of the two items.
    """

    name: ClassVar[str] = "mixup"
    default_strength: ClassVar[float] = 0.2

    def _mix(
        self,
        x: Tensor,
        lengths: Tensor,
        partner: Tensor,
        lam: Tensor,
        generator: torch.Generator | None,
    ) -> tuple[Tensor, Tensor]:
        work = _work_dtype(x.dtype)
        xw = x.to(work)
        overlap = torch.minimum(lengths, lengths[partner])
        both = lengths_to_mask(overlap, x.shape[-1])[:, None, :]
        w = lam.to(work)[:, None, None]
        out = (w * xw + (1.0 - w) * xw[partner]).to(x.dtype)
        share = overlap.to(torch.float32) / lengths.clamp_min(1).to(torch.float32)
        return torch.where(both, out, x), 1.0 - (1.0 - lam) * share


class CutMix(BatchMix):
    """CutMix (Yun et al., 2019) in time: paste a segment of the partner into each item.

    The segment has ``round((1 - lam) * len_i)`` samples, capped at the samples valid in
    both items, and sits at a random place inside both valid parts, at the same time
    positions in both (no shift is added). ``keep = 1 - segment / len_i`` is the share of
    item ``i``'s own samples, recomputed from the actual segment as CutMix does. Default
    alpha ``1.0`` (lam uniform), as in the paper.
    """

    name: ClassVar[str] = "cutmix"
    default_strength: ClassVar[float] = 1.0

    def _mix(
        self,
        x: Tensor,
        lengths: Tensor,
        partner: Tensor,
        lam: Tensor,
        generator: torch.Generator | None,
    ) -> tuple[Tensor, Tensor]:
        batch, _, n_samples = x.shape
        overlap = torch.minimum(lengths, lengths[partner])
        seg = ((1.0 - lam) * lengths.to(torch.float32)).round().long()
        seg = torch.minimum(seg, overlap)
        room = overlap - seg
        u = _rand((batch,), generator, x.device)
        start = torch.minimum((u * (room + 1).to(torch.float32)).floor().long(), room)
        steps = torch.arange(n_samples, device=x.device)[None, :]
        inside = (steps >= start[:, None]) & (steps < (start + seg)[:, None])
        keep = 1.0 - seg.to(torch.float32) / lengths.clamp_min(1).to(torch.float32)
        # A pure copy of the partner's samples: no arithmetic, any dtype passes unchanged.
        return torch.where(inside[:, None, :], x[partner], x), keep


class Compose:
    """A sequence of augmentations: signal transforms via ``__call__``, mixing via :meth:`mix`.

    An empty ``Compose`` (or one without mixing) is the identity for the part it lacks. The
    signal transforms run in their order when the ``Compose`` is called; the mixing ones,
    in their order, when :meth:`mix` is; the training loop calls it first and mixes after,
    so mixing always sees augmented signals whatever order the spec lists them in.
    """

    def __init__(self, transforms: Sequence[Augmentation]) -> None:
        self.transforms: list[Augmentation] = list(transforms)

    def __call__(
        self, x: Tensor, lengths: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """Run every signal transform in order on ``x`` (see :meth:`BatchTransform.__call__`)."""
        for transform in self.transforms:
            if isinstance(transform, BatchTransform):
                x = transform(x, lengths, generator)
        return x

    def mix(
        self,
        x: Tensor,
        lengths: Tensor,
        targets: Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Run every mixing transform in order on ``(x, targets)`` (see :class:`BatchMix`).

        ``targets`` are float ``[B, K]`` (one-hot or soft). Returns ``(x, targets)``
        unchanged when there is no mixing transform.
        """
        for transform in self.transforms:
            if isinstance(transform, BatchMix):
                x, targets = transform(x, lengths, targets, generator)
        return x, targets

    @property
    def mixes(self) -> bool:
        """Whether any transform mixes items (then targets must be soft, see :meth:`mix`)."""
        return any(isinstance(t, BatchMix) for t in self.transforms)

    def __len__(self) -> int:
        return len(self.transforms)

    def __iter__(self) -> Iterator[Augmentation]:
        return iter(self.transforms)

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


#: Augmentations by name. Each class takes ``(p, strength)`` and has a ``default_strength``.
AUGMENTATIONS: dict[str, type[Augmentation]] = {
    cls.name: cls
    for cls in (
        TimeWarp,
        WindowWarp,
        GaussianNoise,
        Scale,
        ChannelScale,
        Shift,
        TimeMask,
        ChannelDropout,
        BaselineWander,
        MixUp,
        CutMix,
    )
}


def _number(entry: str, what: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"augmentation {entry!r}: {what} {text!r} is not a number") from None


def _parse_spec(spec: str, p: float, strength: float | None) -> Augmentation:
    """Build the augmentation of one ``name[:strength[:p]]`` entry."""
    entry = spec.strip()
    name, *fields = (part.strip() for part in entry.split(":"))
    name = name.lower()
    if name not in AUGMENTATIONS:
        known = ", ".join(sorted(AUGMENTATIONS))
        raise ValueError(f"unknown augmentation {name!r}; known: {known}")
    if len(fields) > 2:
        raise ValueError(f"augmentation {entry!r}: expected name, name:strength or name:strength:p")
    cls = AUGMENTATIONS[name]
    # An empty field keeps the default, so "noise::0.2" sets only p.
    if fields and fields[0]:
        strength = _number(entry, "strength", fields[0])
    if len(fields) == 2 and fields[1]:
        p = _number(entry, "p", fields[1])
    problem = _invalid(cls, p, cls.default_strength if strength is None else strength)
    if problem is not None:
        raise ValueError(f"augmentation {entry!r}: {problem}")
    return cls(p=p, strength=strength)


def build_augmentation(
    names: Sequence[str] | str, p: float = 0.5, strength: float | None = None
) -> Compose:
    """Build the augmentations named in ``names``, applied in that order (mixing last).

    Each entry is ``"name"``, ``"name:strength"`` or ``"name:strength:p"`` (e.g.
    ``"noise:0.1"``, ``"mixup:0.2:0.3"``; an empty strength keeps the default, as in
    ``"noise::0.3"``); a single string may list several, comma-separated
    (``"time_warp,noise:0.1,mixup"``). Entries without their own strength use ``strength``,
    or each augmentation's ``default_strength`` when it is ``None``; entries without their
    own probability use ``p``. Bad entries raise a one-line ``ValueError`` naming the entry
    (unknown names list the known ones).
    """
    if isinstance(names, str):
        names = [part for part in names.split(",") if part.strip()]
    return Compose([_parse_spec(spec, p, strength) for spec in names])
