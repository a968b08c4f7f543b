"""Behaviour of the batch augmentations in biosig.augment."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from biosig.augment import (
    AUGMENTATIONS,
    BatchTransform,
    Compose,
    GaussianNoise,
    TimeWarp,
    build_augmentation,
)

T = 96
# Full, partial, very short and empty items: every transform must cope with each.
LENGTHS = [T, 80, 57, 33, 2, 1, 0, T]

DTYPES = [torch.float32, torch.bfloat16]

MAKERS: dict[str, Callable[[float, float], BatchTransform | Compose]] = {
    "time_warp": lambda p, s: TimeWarp(p=p, strength=s),
    "noise": lambda p, s: GaussianNoise(p=p, strength=s),
    "compose": lambda p, s: Compose([TimeWarp(p=p, strength=s), GaussianNoise(p=p, strength=s)]),
}


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def valid_mask(lengths: Tensor, n: int) -> Tensor:
    return torch.arange(n)[None, :] < lengths[:, None]


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


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", list(MAKERS))
def test_shape_dtype_device_and_padding(kind: str, dtype: torch.dtype) -> None:
    x, lengths = make_batch(dtype)
    before = x.clone()
    out = MAKERS[kind](1.0, 0.3)(x, lengths, gen())
    assert out.shape == x.shape
    assert out.dtype == dtype
    assert out.device == x.device
    pad = ~valid_mask(lengths, T)[:, None, :].expand_as(out)
    assert torch.all(out[pad] == 0)
    assert torch.equal(x, before), "the input must not be modified in place"
    # It did something to the valid part of the items long enough to change.
    assert not torch.equal(out[:4], x[:4])
    assert torch.isfinite(out.float()).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", list(MAKERS))
def test_strength_zero_and_p_zero_are_identity(kind: str, dtype: torch.dtype) -> None:
    x, lengths = make_batch(dtype)
    assert torch.equal(MAKERS[kind](1.0, 0.0)(x, lengths, gen()), x)
    assert torch.equal(MAKERS[kind](0.0, 0.5)(x, lengths, gen()), x)


def test_time_warp_math_is_identity_at_zero_strength() -> None:
    # Bypass the short cut in __call__: the warp itself must be exact at speed 1.
    x, lengths = make_batch()
    warp = TimeWarp(p=1.0, strength=0.0)
    assert torch.equal(warp._transform(x, lengths, gen()), x)


@pytest.mark.parametrize("kind", ["time_warp", "noise"])
def test_unpicked_items_are_unchanged(kind: str) -> None:
    x, lengths = make_batch(lengths=[T] * 64)
    out = MAKERS[kind](0.5, 0.3)(x, lengths, gen(3))
    same = (out == x).flatten(1).all(dim=1)
    assert 0 < int(same.sum()) < 64  # some picked, some not: p is per item
    assert 16 <= int(same.sum()) <= 48


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("strength", [0.2, 0.7, 2.0])
def test_time_warp_is_monotone_within_each_length(dtype: torch.dtype, strength: float) -> None:
    lens = torch.tensor(LENGTHS)
    # Strictly increasing ramps, different per channel; exact in bf16 (integers <= 256).
    ramp = (
        torch.arange(1, T + 1, dtype=torch.float32)[None, None, :]
        + torch.tensor([0.0, 50.0])[None, :, None]
    )
    x = (ramp.expand(len(LENGTHS), 2, T) * valid_mask(lens, T)[:, None, :]).to(dtype)
    out = TimeWarp(p=1.0, strength=strength)(x, lens, gen(7))
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


def test_time_warp_keeps_constant_signal_constant() -> None:
    lens = torch.tensor(LENGTHS)
    x = 2.5 * valid_mask(lens, T)[:, None, :].expand(len(LENGTHS), 2, T).float()
    out = TimeWarp(p=1.0, strength=0.5)(x, lens, gen())
    assert torch.equal(out, x)


@pytest.mark.parametrize("kind", list(MAKERS))
def test_seed_reproduces_and_differs(kind: str) -> None:
    x, lengths = make_batch()
    transform = MAKERS[kind](0.8, 0.3)
    a = transform(x, lengths, gen(11))
    b = transform(x, lengths, gen(11))
    c = transform(x, lengths, gen(12))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


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


def test_noise_leaves_flat_channel_flat() -> None:
    x = torch.zeros(2, 2, T)
    lens = torch.tensor([T, 40])
    x[:, 0, :] = 3.0 * valid_mask(lens, T)
    out = GaussianNoise(p=1.0, strength=0.5)(x, lens, gen())
    assert torch.equal(out, x)


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

    assert len(build_augmentation([])) == 0
    x, lengths = make_batch()
    assert torch.equal(build_augmentation([])(x, lengths, gen()), x)
    assert set(AUGMENTATIONS) == {"time_warp", "noise"}


@pytest.mark.parametrize("spec", ["warp", "noise:abc", "noise:-1", "noise:nan", "time_warp:inf"])
def test_build_augmentation_rejects_bad_specs(spec: str) -> None:
    with pytest.raises(ValueError) as info:
        build_augmentation(["noise", spec])
    if spec == "warp":
        assert "time_warp" in str(info.value) and "noise" in str(info.value)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError):
        TimeWarp(p=1.5)
    with pytest.raises(ValueError):
        GaussianNoise(strength=-0.1)
    with pytest.raises(ValueError):
        TimeWarp(n_knots=0)
    with pytest.raises(ValueError):
        TimeWarp(p=1.0)(torch.zeros(2, T), torch.tensor([T, T]), gen())
    with pytest.raises(ValueError):
        TimeWarp(p=1.0)(torch.zeros(2, 1, T), torch.tensor([T]), gen())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("gen_device", ["cpu", "cuda"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_batch(gen_device: str, dtype: torch.dtype) -> None:
    x, lengths = make_batch(dtype)
    x, lengths = x.cuda(), lengths.cuda()
    transform = MAKERS["compose"](1.0, 0.3)
    a = transform(x, lengths, torch.Generator(device=gen_device).manual_seed(1))
    b = transform(x, lengths, torch.Generator(device=gen_device).manual_seed(1))
    assert a.device == x.device and a.dtype == dtype and a.shape == x.shape
    assert torch.equal(a, b)
    pad = ~valid_mask(lengths.cpu(), T)[:, None, :].expand_as(a)
    assert torch.all(a.cpu()[pad] == 0)
