"""The frozen random-kernel branch: its features (biosig.layers.random_kernels), how the
classifier fuses them before its head, and how training fits and caches them
(biosig.kernel_features, biosig.train.mix_batch)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from biosig.augment import build_augmentation
from biosig.checkpoint import load_checkpoint, save_checkpoint
from biosig.examples import ExampleStore
from biosig.kernel_features import KernelFeatureCache, fit_random_kernels
from biosig.layers.random_kernels import RandomKernelFeatures
from biosig.model import build_classifier, model_config
from biosig.train import mix_batch


def _fitted(channels: int = 1, window: int = 200, n_features: int = 840) -> RandomKernelFeatures:
    branch = RandomKernelFeatures(channels, window, n_features, seed=0)
    x = torch.randn(40, channels, window, generator=torch.Generator().manual_seed(1))
    branch.fit(x, torch.full((40,), window), torch.Generator().manual_seed(0))
    return branch


def _store(n: int = 24, channels: int = 2, window: int = 96) -> ExampleStore:
    rng = np.random.default_rng(0)
    lengths = rng.integers(window // 2, window + 1, n)
    x = rng.standard_normal((n, channels, window)).astype(np.float32)
    for i, length in enumerate(lengths):
        x[i, :, length:] = 0.0  # as the store holds short windows: zero past their length
    y = np.arange(n) % 2
    ids = np.array([f"r{i}" for i in range(n)])
    return ExampleStore(
        x=x, lengths=lengths, y=y, groups=ids, recording_ids=ids,
        starts=np.zeros(n, dtype=np.int64), classes=["a", "b"], label_ends=lengths,
    )  # fmt: skip


def test_feature_count_and_shape_follow_the_request() -> None:
    branch = _fitted(n_features=840)
    assert branch.n_features == 840  # 84 kernels x 10 biases, spread over the dilations
    assert branch.dilations[0] == 1 and branch.dilations[-1] <= (200 - 1) // 8
    out = branch(torch.randn(5, 1, 200))
    assert out.shape == (5, 840) and torch.isfinite(out).all()


def test_training_features_are_standardised_to_one_over_sqrt_n() -> None:
    branch = RandomKernelFeatures(1, 128, 840, seed=0)
    x = torch.randn(64, 1, 128, generator=torch.Generator().manual_seed(2))
    branch.fit(x, torch.full((64,), 128), torch.Generator().manual_seed(0))
    features = branch(x)
    varying = branch.scale > 0
    assert varying.sum() > 700  # almost every feature varies over random windows
    assert features[:, varying].mean(0).abs().max() < 1e-4
    spread = features[:, varying].std(0, unbiased=False) * np.sqrt(branch.n_features)
    assert torch.allclose(spread, torch.ones_like(spread), atol=1e-3)
    assert (features[:, ~varying] == 0).all()  # a constant feature is scaled to nothing


def test_a_padded_window_has_the_features_of_the_window_alone() -> None:
    branch = _fitted(channels=3, window=200)
    x = torch.randn(2, 3, 200)
    x[1, :, 120:] = 0.0  # padding, as batches hold it
    together = branch(x, torch.tensor([200, 120]))
    alone = branch(x[1:, :, :120])
    assert torch.allclose(together[1], alone[0], atol=1e-6)


def test_biases_come_from_the_training_windows_and_the_seed() -> None:
    a, b = _fitted(), _fitted()
    assert torch.equal(a.biases, b.biases) and a.biases.abs().sum() > 0
    other = RandomKernelFeatures(1, 200, 840, seed=0)
    other.fit(10 * torch.randn(40, 1, 200), torch.full((40,), 200), torch.Generator())
    assert other.biases.abs().mean() > 3 * a.biases.abs().mean()  # scaled data, scaled biases


def test_the_classifier_fuses_them_before_its_head_and_a_checkpoint_keeps_them(tmp_path) -> None:
    config = model_config("tiny", 2, 3, kernel_features=168, kernel_window=96)
    model = build_classifier(config)
    store = _store()
    fit_random_kernels(model, store, np.arange(len(store)), {"mode": "window"}, seed=0)
    assert model.head.in_features == config.model_dim + 168
    model.eval()
    x, lengths = torch.from_numpy(store.x[:6]), torch.from_numpy(store.lengths[:6])
    before = model(x, lengths)
    save_checkpoint(tmp_path / "m", model, {"model": dataclasses.asdict(config), "ensemble": 1})
    loaded, _ = load_checkpoint(tmp_path / "m")
    assert torch.equal(loaded.random_kernels.biases, model.random_kernels.biases)
    assert torch.allclose(loaded(x, lengths), before, atol=1e-6)
    with pytest.raises(ValueError, match="kernel_features"):
        model_config("tiny", 1, 2, kernel_features=10, kernel_window=96)


def test_cached_features_are_the_ones_the_model_computes() -> None:
    config = model_config("tiny", 2, 2, kernel_features=168, kernel_window=96)
    model = build_classifier(config, n_members=2)  # an ensemble: one cache serves both
    store = _store()
    norm = {"mode": "window"}
    fit_random_kernels(model, store, np.arange(len(store)), norm, seed=0)
    first, second = (m.random_kernels for m in model.members)
    assert torch.equal(first.biases, second.biases)
    cache = KernelFeatureCache.for_model(model, store, np.array([3, 1, 7]), norm, "cpu")
    from biosig.normalize import normalize

    idx = np.array([1, 7])
    x = normalize(torch.from_numpy(store.x[idx]), torch.from_numpy(store.lengths[idx]), norm)
    direct = first(x, torch.from_numpy(store.lengths[idx]))
    assert torch.allclose(cache[idx], direct, atol=1e-6)
    with pytest.raises(KeyError):
        cache[np.array([0])]
    plain = build_classifier(model_config("tiny", 2, 2))
    assert KernelFeatureCache.for_model(plain, store, idx, norm, "cpu") is None


def test_mixing_blends_features_with_the_targets_weights() -> None:
    augment = build_augmentation(["mixup:0.4:1.0"])
    x = torch.randn(8, 1, 32)
    lengths = torch.full((8,), 32)
    targets = torch.nn.functional.one_hot(torch.arange(8) % 4, 4).float()
    # features equal to the targets must come out equal to the mixed targets
    mixed_x, mixed_t, mixed_f = mix_batch(
        augment, x, lengths, targets, targets.clone(), torch.Generator().manual_seed(0)
    )
    assert not torch.equal(mixed_t, targets)  # something was mixed
    assert torch.allclose(mixed_f, mixed_t)
    again_x, again_t, none = mix_batch(
        augment, x, lengths, targets, None, torch.Generator().manual_seed(0)
    )
    assert none is None and torch.equal(again_t, mixed_t) and torch.equal(again_x, mixed_x)
