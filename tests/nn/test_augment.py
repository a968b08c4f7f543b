"""Behaviour of the batch augmentations in biosig.nn.augment."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from biosig.nn.augment import (
    AUGMENTATIONS,
    Augmentation,
    BaselineWander,
    BatchMix,
    BatchTransform,
    ChannelDropout,
    ChannelScale,
    Compose,
    CutMix,
    GaussianNoise,
    MixUp,
    Scale,
    Shift,
    TimeMask,
    TimeWarp,
    WindowWarp,
    _sample_beta,
    build_augmentation,
)
from biosig.nn.losses import FocalLoss, build_loss
from biosig.training.config import AUGMENTATION_NAMES

T = 96
# Full, partial, very short and empty items: every transform must cope with each.
LENGTHS = [T, 80, 57, 33, 2, 1, 0, T]
N_CLASSES = 4

DTYPES = [torch.float32, torch.bfloat16]

SIGNAL = [name for name, cls in AUGMENTATIONS.items() if issubclass(cls, BatchTransform)]
MIXING = [name for name, cls in AUGMENTATIONS.items() if issubclass(cls, BatchMix)]


def _maker(cls: type[Augmentation]) -> Callable[[float, float], Augmentation]:
    return lambda p, s: cls(p=p, strength=s)


MAKERS: dict[str, Callable[[float, float], Augmentation | Compose]] = {
    name: _maker(cls) for name, cls in AUGMENTATIONS.items()
}
MAKERS["compose"] = lambda p, s: Compose([cls(p=p, strength=s) for cls in AUGMENTATIONS.values()])


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def valid_mask(lengths: Tensor, n: int) -> Tensor:
    return torch.arange(n)[None, :] < lengths[:, None]


def one_hot(batch: int) -> Tensor:
    return F.one_hot(torch.arange(batch) % N_CLASSES, N_CLASSES).float()


def make_batch(
    dtype: torch.dtype = torch.float32, channels: int = 3, lengths: list[int] = LENGTHS
) -> tuple[Tensor, Tensor]:
    """Smooth random signals with exact zero padding after each item's length."""
    g = torch.Generator().manual_seed(1234)
    lens = torch.tensor(lengths, dtype=torch.long)
    t = torch.arange(T, dtype=torch.float32)
    freq = torch.rand(len(lengths), channels, 1, generator=g) * 0.3 + 0.05
    phase = torch.rand(len(lengths), channels, 1, generator=g) * 6.28
    x = torch.sin(freq * t + phase) + 0.3 * torch.randn(len(lengths), channels, T, generator=g)
    x = x * valid_mask(lens, T)[:, None, :]
    return x.to(dtype), lens


def apply(
    aug: Augmentation | Compose,
    x: Tensor,
    lengths: Tensor,
    g: torch.Generator,
    targets: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Run any augmentation as training would; returns ``(x, targets)``."""
    if targets is None:
        targets = one_hot(x.shape[0])
    if isinstance(aug, BatchMix):
        return aug(x, lengths, targets, g)
    if isinstance(aug, Compose):
        return aug.mix(aug(x, lengths, g), lengths, targets, g)
    return aug(x, lengths, g), targets


def ramp_batch(dtype: torch.dtype, lengths: list[int] = LENGTHS) -> tuple[Tensor, Tensor]:
    """Strictly increasing ramps, different per channel; exact in bf16 (integers <= 256)."""
    lens = torch.tensor(lengths)
    ramp = (
        torch.arange(1, T + 1, dtype=torch.float32)[None, None, :]
        + torch.tensor([0.0, 50.0])[None, :, None]
    )
    x = ramp.expand(len(lengths), 2, T) * valid_mask(lens, T)[:, None, :]
    return x.to(dtype), lens


# --- rules every augmentation follows -----------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", list(MAKERS))
def test_shape_dtype_device_and_padding(kind: str, dtype: torch.dtype) -> None:
    x, lengths = make_batch(dtype)
    targets = one_hot(len(x))
    before, targets_before = x.clone(), targets.clone()
    out, mixed = apply(MAKERS[kind](1.0, 0.3), x, lengths, gen(), targets)
    assert out.shape == x.shape
    assert out.dtype == dtype
    assert out.device == x.device
    assert mixed.shape == targets.shape and mixed.dtype == targets.dtype
    pad = ~valid_mask(lengths, T)[:, None, :].expand_as(out)
    assert torch.all(out[pad] == 0)
    assert torch.equal(x, before), "the input must not be modified in place"
    assert torch.equal(targets, targets_before), "the targets must not be modified in place"
    # It did something to the valid part of the items long enough to change.
    assert not torch.equal(out[:4], x[:4])
    assert torch.isfinite(out.float()).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", list(MAKERS))
def test_strength_zero_and_p_zero_are_identity(kind: str, dtype: torch.dtype) -> None:
    x, lengths = make_batch(dtype)
    targets = one_hot(len(x))
    for p, strength in [(1.0, 0.0), (0.0, 0.5)]:
        out, mixed = apply(MAKERS[kind](p, strength), x, lengths, gen(), targets)
        assert torch.equal(out, x)
        assert torch.equal(mixed, targets)


@pytest.mark.parametrize("kind", SIGNAL)
def test_transform_math_is_identity_at_zero_strength(kind: str) -> None:
    # Bypass the short cut in __call__: each transform must itself be exact at strength 0.
    x, lengths = make_batch()
    transform = AUGMENTATIONS[kind](p=1.0, strength=0.0)
    assert isinstance(transform, BatchTransform)
    assert torch.equal(transform._transform(x, lengths, gen()), x)


@pytest.mark.parametrize("kind", SIGNAL + MIXING)
def test_unpicked_items_are_unchanged(kind: str) -> None:
    x, lengths = make_batch(lengths=[T] * 64)
    targets = one_hot(64)
    out, mixed = apply(MAKERS[kind](0.5, 0.5), x, lengths, gen(3), targets)
    same = (out == x).flatten(1).all(dim=1)
    if kind in MIXING:  # an unpicked item keeps its target too
        assert torch.all((mixed == targets).all(dim=1)[same])
        assert not torch.equal(mixed, targets)
    assert 16 <= int(same.sum()) <= 48, int(same.sum())  # some picked, some not: p is per item


@pytest.mark.parametrize("kind", list(MAKERS))
def test_seed_reproduces_and_differs(kind: str) -> None:
    x, lengths = make_batch()
    transform = MAKERS[kind](0.8, 0.3)
    a = apply(transform, x, lengths, gen(11))
    b = apply(transform, x, lengths, gen(11))
    c = apply(transform, x, lengths, gen(12))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_registry_names_and_defaults() -> None:
    assert set(SIGNAL) == {
        "time_warp",
        "window_warp",
        "noise",
        "scale",
        "channel_scale",
        "shift",
        "time_mask",
        "channel_dropout",
        "baseline_wander",
    }
    assert set(MIXING) == {"mixup", "cutmix"}
    # the names --help lists without importing torch are these, in this order
    assert tuple(AUGMENTATIONS) == AUGMENTATION_NAMES
    for name, cls in AUGMENTATIONS.items():
        assert cls.name == name
        assert 0.0 < cls.default_strength <= cls.max_strength
        assert cls.__doc__ and ("strength" in cls.__doc__ or "alpha" in cls.__doc__)


# --- time warping ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("strength", [0.2, 0.7, 2.0])
@pytest.mark.parametrize("kind", ["time_warp", "window_warp"])
def test_warps_are_monotone_within_each_length(
    kind: str, dtype: torch.dtype, strength: float
) -> None:
    x, lens = ramp_batch(dtype)
    out = AUGMENTATIONS[kind](p=1.0, strength=strength)(x, lens, gen(7))
    changed = False
    for i, n in enumerate(LENGTHS):
        if n == 0:
            continue
        got, ref = out[i, :, :n].float(), x[i, :, :n].float()
        assert torch.all(got[:, 1:] - got[:, :-1] >= 0), f"item {i} not monotone"
        assert torch.equal(got[:, 0], ref[:, 0])
        assert torch.equal(got[:, -1], ref[:, -1])
        assert torch.all(out[i, :, n:] == 0)
        changed |= not torch.equal(got, ref)
    assert changed


@pytest.mark.parametrize("kind", ["time_warp", "window_warp"])
def test_warps_keep_constant_signal_constant(kind: str) -> None:
    lens = torch.tensor(LENGTHS)
    x = 2.5 * valid_mask(lens, T)[:, None, :].expand(len(LENGTHS), 2, T).float()
    out = AUGMENTATIONS[kind](p=1.0, strength=0.5)(x, lens, gen())
    assert torch.equal(out, x)


@pytest.mark.parametrize("strength", [0.3, 0.7, 1.5])
def test_window_warp_changes_speed_of_one_window_by_exp_strength(strength: float) -> None:
    # On a float64 ramp x[t] = t the output is the source position itself, so its slope is
    # the reading speed: one value outside the window and that value / factor inside it.
    n = 400
    lens = torch.full((16,), n)
    x = torch.arange(n, dtype=torch.float64).expand(16, 1, n).contiguous()
    out = WindowWarp(p=1.0, strength=strength, window=0.2)(x, lens, gen(2))
    slopes = out[:, 0].diff(dim=1)
    ratios = []
    for row in slopes:
        lo, hi = row.min(), row.max()
        ratios.append((hi / lo).item())
        at_lo, at_hi = torch.isclose(row, lo, rtol=1e-9), torch.isclose(row, hi, rtol=1e-9)
        # Only two slopes, plus at most the two steps that straddle the window's edges.
        assert int((~(at_lo | at_hi)).sum()) <= 2
        assert int(at_lo.sum()) >= 10 and int(at_hi.sum()) >= 10
    assert ratios == pytest.approx([math.exp(strength)] * 16, rel=1e-9)


def test_window_warp_of_the_whole_item_is_the_identity() -> None:
    # With the window covering everything, the uniform stretch is undone by the resampling.
    x, lengths = make_batch()
    out = WindowWarp(p=1.0, strength=1.0, window=1.0)(x, lengths, gen())
    assert torch.allclose(out, x, atol=1e-5)


# --- noise, scaling, wander ------------------------------------------------------------------


def test_noise_std_is_strength_times_signal_std() -> None:
    g = gen(5)
    channels, n = 4, 4000
    lens = torch.tensor([n, n // 2])
    scale = torch.tensor([0.01, 1.0, 30.0, 1000.0])[None, :, None]
    x = torch.randn(2, channels, n, generator=g) * scale + 5.0 * scale
    x = x * valid_mask(lens, n)[:, None, :]
    strength = 0.1
    out = GaussianNoise(p=1.0, strength=strength)(x, lens, gen(6))
    for i, length in enumerate(lens.tolist()):
        noise = (out - x)[i, :, :length]
        signal_std = x[i, :, :length].std(dim=1)
        ratio = noise.std(dim=1) / (strength * signal_std)
        assert torch.allclose(ratio, torch.ones(channels), atol=0.1), ratio
        assert abs(noise.mean().item()) < 0.1 * strength * signal_std.max().item()
        assert torch.all(out[i, :, length:] == 0)


@pytest.mark.parametrize("cls", [GaussianNoise, BaselineWander])
def test_level_relative_transforms_leave_flat_channel_flat(cls: type[BatchTransform]) -> None:
    x = torch.zeros(2, 2, T)
    lens = torch.tensor([T, 40])
    x[:, 0, :] = 3.0 * valid_mask(lens, T)
    out = cls(p=1.0, strength=0.5)(x, lens, gen())
    assert torch.equal(out, x)


@pytest.mark.parametrize("cls", [Scale, ChannelScale])
def test_scale_ratios_are_positive_and_constant_in_time(cls: type[Scale]) -> None:
    batch, channels, n = 2000, 3, 32
    lens = torch.full((batch,), n)
    x = torch.rand(batch, channels, n, generator=gen(1)) + 0.5  # no zeros to divide by
    strength = 0.2
    out = cls(p=1.0, strength=strength)(x, lens, gen(2))
    ratio = out / x
    assert torch.all(ratio > 0)
    assert torch.allclose(ratio, ratio[..., :1].expand_as(ratio), rtol=1e-6)
    gain = ratio[..., 0]  # [B, C]
    across_channels = torch.allclose(gain, gain[:, :1].expand_as(gain), rtol=1e-6)
    assert across_channels == (cls is Scale)
    # log-gain ~ N(0, strength^2)
    assert gain.log().std().item() == pytest.approx(strength, rel=0.05)
    assert abs(gain.log().mean().item()) < 0.02


def test_baseline_wander_is_a_slow_drift_of_the_stated_size() -> None:
    batch, channels, n = 300, 2, 500
    lens = torch.full((batch,), n)
    lens[::2] = 300
    x = torch.randn(batch, channels, n, generator=gen(1)) * torch.tensor([1.0, 5.0])[:, None]
    x = x * valid_mask(lens, n)[:, None, :]
    strength, k = 0.3, 3
    out = BaselineWander(p=1.0, strength=strength, n_components=k)(x, lens, gen(2))
    drift = out - x
    power = []
    for i in range(batch):
        length = int(lens[i])
        d = drift[i, :, :length]
        amplitude = strength * x[i, :, :length].std(dim=1, unbiased=False)  # [C]
        # |sum_k a_k sin(.)| <= ||a|| sqrt(k), with ||a|| = amplitude.
        assert torch.all(d.abs().amax(dim=1) <= amplitude * math.sqrt(k) * (1 + 1e-5))
        # Slow: at most 2 cycles per item, so the second difference is tiny.
        bound = amplitude * math.sqrt(k) * (2 * math.pi * 2.0 / length) ** 2
        assert torch.all(d.diff(n=2, dim=1).abs().amax(dim=1) <= bound * 1.01 + 1e-5)
        power.append((d.pow(2).mean(dim=1) / amplitude**2).mean())
        assert torch.all(out[i, :, length:] == 0)
    # Over random phases a sinusoid's mean power is half its squared amplitude.
    assert torch.stack(power).mean().item() == pytest.approx(0.5, abs=0.05)


# --- shift, masking, channel dropout ---------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_shift_is_a_rotation_of_the_valid_part(dtype: torch.dtype) -> None:
    x, lengths = make_batch(dtype)
    strength = 0.3
    out = Shift(p=1.0, strength=strength)(x, lengths, gen(4))
    rotated = 0
    for i, n in enumerate(LENGTHS):
        got, ref = out[i, :, :n], x[i, :, :n]
        assert torch.equal(got.sort(dim=1).values, ref.sort(dim=1).values)  # same multiset
        limit = round(strength * n)
        offsets = [k for k in range(-limit, limit + 1) if torch.equal(got, ref.roll(k, dims=1))]
        assert offsets, f"item {i} is not a rotation by at most {limit}"
        rotated += n > 2 and 0 not in offsets
    assert rotated >= 3


@pytest.mark.parametrize("strength", [0.1, 0.25, 1.0])
@pytest.mark.parametrize("n_spans", [1, 3])
def test_time_mask_blanks_strength_times_length_samples(strength: float, n_spans: int) -> None:
    lengths = torch.tensor(LENGTHS * 4)
    x = torch.randn(len(lengths), 3, T, generator=gen(8)) * valid_mask(lengths, T)[:, None, :]
    out = TimeMask(p=1.0, strength=strength, n_spans=n_spans)(x, lengths, gen(9))
    for i, n in enumerate(lengths.tolist()):
        changed = (out[i] != x[i]).any(dim=0)  # [T]
        assert not changed[n:].any()
        if n <= 1:  # a single sample is its own mean
            continue
        # Rounded in float32 as the transform does (a half can round either way in float64).
        assert int(changed.sum()) == int(torch.tensor(float(n)).mul(strength).round())
        # Masked samples hold each channel's mean; the spans are at most n_spans runs.
        mean = x[i, :, :n].mean(dim=1, keepdim=True).expand(3, int(changed.sum()))
        assert torch.allclose(out[i][:, changed], mean, atol=1e-6)
        runs = int((changed[1:] & ~changed[:-1]).sum()) + int(changed[0])
        assert runs <= n_spans


def test_channel_dropout_zeroes_whole_channels_but_never_all() -> None:
    batch, channels = 2000, 4
    lengths = torch.full((batch,), T)
    lengths[::3] = 40
    x = (torch.rand(batch, channels, T, generator=gen(1)) + 0.5) * valid_mask(lengths, T)[
        :, None, :
    ]
    for strength in (0.5, 1.0):
        out = ChannelDropout(p=1.0, strength=strength)(x, lengths, gen(2))
        zero = (out == 0).all(dim=2)  # [B, C]: whole channel zero, padding included
        kept = (out == x).all(dim=2)
        assert torch.all(zero ^ kept), "a channel is either dropped or untouched"
        assert torch.all(kept.any(dim=1)), "never every channel of an item"
        if strength == 1.0:
            assert torch.all(kept.sum(dim=1) == 1)
        else:
            # P(dropped) = 0.5, less the sparing of one channel when all four fall: 1/64.
            assert zero.float().mean().item() == pytest.approx(0.5 - 1 / 64, abs=0.02)
    # A single channel is never dropped.
    single = ChannelDropout(p=1.0, strength=1.0)(x[:, :1], lengths, gen())
    assert torch.equal(single, x[:, :1])


# --- mixing ----------------------------------------------------------------------------------


def force(mix: BatchMix, lam: float, shift: int = 1) -> BatchMix:
    """Pin the mixing weight to ``lam`` and each item's partner to item ``i + shift``."""
    mix._sample_lambda = lambda batch, generator, device: torch.full((batch,), lam)
    mix._partners = lambda batch, generator, device: (torch.arange(batch) + shift) % batch
    return mix


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", MIXING + ["compose"])
def test_mixed_targets_are_distributions(kind: str, dtype: torch.dtype) -> None:
    x, lengths = make_batch(dtype, lengths=LENGTHS * 8)
    targets = one_hot(len(x))
    _, mixed = apply(MAKERS[kind](1.0, 0.4), x, lengths, gen(1), targets)
    assert torch.allclose(mixed.sum(dim=1), torch.ones(len(x)), atol=1e-6)
    assert torch.all((mixed >= 0) & (mixed <= 1))
    assert not torch.equal(mixed, targets)


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.75])
def test_mixup_equals_the_hand_computed_mix(lam: float) -> None:
    x, lengths = make_batch()
    targets = one_hot(len(x))
    out, mixed = force(MixUp(p=1.0, strength=0.2), lam)(x, lengths, targets, gen())
    for i, n in enumerate(LENGTHS):
        j = (i + 1) % len(LENGTHS)
        m = min(n, LENGTHS[j])  # mixed only where both are valid
        expected = x[i].clone()
        expected[:, :m] = lam * x[i, :, :m] + (1 - lam) * x[j, :, :m]
        assert torch.allclose(out[i], expected, atol=1e-6), i
        keep = 1.0 - (1.0 - lam) * m / max(n, 1)
        assert torch.allclose(mixed[i], keep * targets[i] + (1 - keep) * targets[j], atol=1e-6)


@pytest.mark.parametrize("lam", [0.0, 0.4, 0.9])
def test_cutmix_pastes_one_segment_of_the_partner(lam: float) -> None:
    x, lengths = make_batch()
    targets = one_hot(len(x))
    for seed in range(5):
        out, mixed = force(CutMix(p=1.0, strength=1.0), lam)(x, lengths, targets, gen(seed))
        for i, n in enumerate(LENGTHS):
            j = (i + 1) % len(LENGTHS)
            seg = min(round((1 - lam) * n), min(n, LENGTHS[j]))
            pasted = (out[i] != x[i]).any(dim=0)  # the items differ at every valid sample
            assert int(pasted.sum()) == seg, (i, seed)
            where = pasted.nonzero().flatten()
            if seg:
                assert int(where[-1] - where[0]) + 1 == seg  # one contiguous segment
                assert int(where[-1]) < min(n, LENGTHS[j])  # inside both valid parts
            assert torch.equal(out[i][:, pasted], x[j][:, pasted])
            keep = 1.0 - seg / max(n, 1)
            expected = keep * targets[i] + (1 - keep) * targets[j]
            assert torch.allclose(mixed[i], expected, atol=1e-6)


@pytest.mark.parametrize("kind", MIXING)
@pytest.mark.parametrize("smoothing", [0.1, 0.3])
def test_label_smoothing_commutes_with_mixing(kind: str, smoothing: float) -> None:
    x, lengths = make_batch(lengths=LENGTHS * 4)
    targets = one_hot(len(x))
    smoothed = targets * (1 - smoothing) + smoothing / N_CLASSES
    mix = MAKERS[kind](1.0, 0.4)
    _, mixed = mix(x, lengths, targets, gen(5))
    _, mixed_smoothed = mix(x, lengths, smoothed, gen(5))  # same seed: same pairs and weights
    assert torch.allclose(mixed * (1 - smoothing) + smoothing / N_CLASSES, mixed_smoothed)

    logits = torch.randn(len(x), N_CLASSES, generator=gen(6)) * 2
    smooth_in_loss = build_loss("ce", N_CLASSES, None, smoothing)(logits, mixed)
    smooth_before = build_loss("ce", N_CLASSES, None, 0.0)(logits, mixed_smoothed)
    assert torch.allclose(smooth_in_loss, smooth_before, atol=1e-6)


@pytest.mark.parametrize("loss", ["ce", "focal"])
def test_loss_of_mixed_targets_mixes_the_losses(loss: str) -> None:
    # Per item, the loss of a mixed target is the same blend of the two items' losses,
    # with class weights and label smoothing too.
    lam = 0.3
    x, lengths = make_batch(lengths=[T] * 8)
    y = torch.arange(8) % N_CLASSES
    _, mixed = force(MixUp(p=1.0), lam)(x, lengths, F.one_hot(y, N_CLASSES).float(), gen())
    logits = torch.randn(8, N_CLASSES, generator=gen(6)) * 2
    weight = torch.tensor([0.5, 2.0, 1.0, 3.0])
    if loss == "ce":
        fn = build_loss("ce", N_CLASSES, weight, 0.1)
        fn.reduction = "none"
    else:
        fn = FocalLoss(2.0, weight, 0.1, reduction="none")
    expected = lam * fn(logits, y) + (1 - lam) * fn(logits, y.roll(-1))
    assert torch.allclose(fn(logits, mixed), expected, atol=1e-6)


@pytest.mark.parametrize("alpha", [0.2, 1.0, 4.0])
def test_beta_sampler_moments(alpha: float) -> None:
    lam = _sample_beta(alpha, 20000, gen(int(10 * alpha)), torch.device("cpu"))
    assert lam.dtype == torch.float32 and torch.all((lam >= 0) & (lam <= 1))
    assert lam.mean().item() == pytest.approx(0.5, abs=0.01)
    assert lam.var().item() == pytest.approx(1 / (4 * (2 * alpha + 1)), rel=0.05)
    if alpha == 1.0:  # uniform
        quartiles = torch.quantile(lam, torch.tensor([0.25, 0.5, 0.75]))
        assert torch.allclose(quartiles, torch.tensor([0.25, 0.5, 0.75]), atol=0.015)
    assert torch.isfinite(_sample_beta(1e-3, 1000, gen(), torch.device("cpu"))).all()


def test_mixing_rejects_class_index_targets() -> None:
    x, lengths = make_batch()
    with pytest.raises(ValueError, match="float targets"):
        MixUp(p=1.0)(x, lengths, torch.arange(len(x)), gen())
    with pytest.raises(ValueError, match="float targets"):
        CutMix(p=1.0)(x, lengths, one_hot(len(x) + 1), gen())


# --- Compose and build_augmentation ----------------------------------------------------------


def test_compose_splits_signal_transforms_and_mixing() -> None:
    x, lengths = make_batch()
    targets = one_hot(len(x))
    aug = build_augmentation("mixup:0.4:1, time_warp:0.3:1, cutmix, noise")
    assert aug.mixes
    assert [type(t) for t in aug] == [MixUp, TimeWarp, CutMix, GaussianNoise]
    signal_only = Compose([TimeWarp(1.0, 0.3), GaussianNoise(0.5)])
    assert not signal_only.mixes and not Compose([]).mixes
    # Calling runs only the signal transforms, in order, with the same draws.
    assert torch.equal(aug(x, lengths, gen(1)), signal_only(x, lengths, gen(1)))
    # mix() runs only the mixing transforms.
    mix_only = Compose([MixUp(1.0, 0.4), CutMix(0.5, 1.0)])
    a, b = aug.mix(x, lengths, targets, gen(2)), mix_only.mix(x, lengths, targets, gen(2))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    out, same = signal_only.mix(x, lengths, targets, gen())
    assert out is x and same is targets


def test_build_augmentation_defaults_and_overrides() -> None:
    aug = build_augmentation(["time_warp", "noise:0.1"], p=0.3)
    assert [type(t) for t in aug] == [TimeWarp, GaussianNoise]
    assert [t.strength for t in aug] == [0.2, 0.1]
    assert all(t.p == 0.3 for t in aug)
    assert TimeWarp.default_strength == 0.2 and GaussianNoise.default_strength == 0.05

    aug = build_augmentation(["time_warp", "noise:0.1"], strength=0.4)
    assert [t.strength for t in aug] == [0.4, 0.1]

    aug = build_augmentation("time_warp, noise:0.02")
    assert [t.strength for t in aug] == [0.2, 0.02]

    aug = build_augmentation("time_warp,noise,mixup:0.2,cutmix:1.0")
    assert [t.name for t in aug] == ["time_warp", "noise", "mixup", "cutmix"]
    assert [t.strength for t in aug] == [0.2, 0.05, 0.2, 1.0]

    # name:strength:p, with an empty strength keeping the default.
    aug = build_augmentation("shift:0.2:0.9, time_mask::0.25, Channel_Dropout:0.3:", p=0.4)
    assert [(t.name, t.strength, t.p) for t in aug] == [
        ("shift", 0.2, 0.9),
        ("time_mask", 0.1, 0.25),
        ("channel_dropout", 0.3, 0.4),
    ]

    assert len(build_augmentation([])) == 0
    x, lengths = make_batch()
    assert torch.equal(build_augmentation([])(x, lengths, gen()), x)


@pytest.mark.parametrize(
    "spec",
    [
        "warp",
        "noise:abc",
        "noise:-1",
        "noise:nan",
        "time_warp:inf",
        "noise:0.1:1.5",
        "noise:0.1:x",
        "noise:0.1:-0.1",
        "noise:0.1:0.5:1",
        "time_mask:1.5",
        "channel_dropout:2",
        "shift:1.01",
    ],
)
def test_build_augmentation_rejects_bad_specs(spec: str) -> None:
    with pytest.raises(ValueError) as info:
        build_augmentation(["noise", spec])
    message = str(info.value)
    assert "\n" not in message
    if spec == "warp":
        assert "time_warp" in message and "mixup" in message
    else:
        assert repr(spec) in message


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError):
        TimeWarp(p=1.5)
    with pytest.raises(ValueError):
        GaussianNoise(strength=-0.1)
    with pytest.raises(ValueError):
        TimeWarp(n_knots=0)
    with pytest.raises(ValueError):
        WindowWarp(window=0.0)
    with pytest.raises(ValueError):
        TimeMask(n_spans=0)
    with pytest.raises(ValueError):
        ChannelDropout(strength=1.5)
    with pytest.raises(ValueError):
        BaselineWander(min_cycles=3.0, max_cycles=2.0)
    with pytest.raises(ValueError):
        TimeWarp(p=1.0)(torch.zeros(2, T), torch.tensor([T, T]), gen())
    with pytest.raises(ValueError):
        TimeWarp(p=1.0)(torch.zeros(2, 1, T), torch.tensor([T]), gen())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("gen_device", ["cpu", "cuda"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_batch(gen_device: str, dtype: torch.dtype) -> None:
    x, lengths = make_batch(dtype)
    x, lengths = x.cuda(), lengths.cuda()
    targets = one_hot(len(x)).cuda()
    transform = MAKERS["compose"](1.0, 0.3)
    a = apply(transform, x, lengths, torch.Generator(device=gen_device).manual_seed(1), targets)
    b = apply(transform, x, lengths, torch.Generator(device=gen_device).manual_seed(1), targets)
    assert a[0].device == x.device and a[0].dtype == dtype and a[0].shape == x.shape
    assert a[1].device == x.device
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    pad = ~valid_mask(lengths.cpu(), T)[:, None, :].expand_as(a[0])
    assert torch.all(a[0].cpu()[pad] == 0)
