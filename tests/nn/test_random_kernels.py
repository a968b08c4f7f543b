"""The frozen random-kernel branch: its features (biosig.nn.layers.random_kernels), the ridge
model of them (biosig.training.ridge) whose logits the classifier adds to its head's, and how
training fits them and stacks the network on their leave-one-out logits
(biosig.training.kernel_features, biosig.training.trainer.mix_batch)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from checkpoint_helpers import meta_for
from sklearn.linear_model import Ridge

from biosig.checkpoint import load_checkpoint, save_checkpoint
from biosig.data.normalize import NormalizationSpec, normalize
from biosig.data.store import ExampleStore
from biosig.nn.augment import build_augmentation
from biosig.nn.layers.random_kernels import RandomKernelFeatures
from biosig.nn.model import build_classifier, model_config
from biosig.training.kernel_features import (
    KernelLogits,
    choose_normalization,
    fit_random_kernels,
    held_out_groups,
    refit_ridge,
)
from biosig.training.ridge import fit_ridge
from biosig.training.trainer import mix_batch

NORM = NormalizationSpec("window")


def _quiet(_: str) -> None:
    """``echo`` that prints nothing."""


def _fitted(channels: int = 1, window: int = 200, n_features: int = 840) -> RandomKernelFeatures:
    branch = RandomKernelFeatures(channels, window, n_features, seed=0)
    x = torch.randn(40, channels, window, generator=torch.Generator().manual_seed(1))
    branch.fit(x, torch.full((40,), window), torch.Generator().manual_seed(0))
    return branch


def _store(n: int = 24, channels: int = 2, window: int = 96) -> ExampleStore:
    rng = np.random.default_rng(0)
    lengths = rng.integers(window // 2, window + 1, n)
    x = rng.standard_normal((n, channels, window)).astype(np.float32)
    y = np.arange(n) % 2
    x[y == 1] += 2 * np.sin(np.arange(window) / 3).astype(np.float32)  # b: a rhythm in noise
    for i, length in enumerate(lengths):
        x[i, :, length:] = 0.0  # as the store holds short windows: zero past their length
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


def test_training_features_are_standardised() -> None:
    branch = RandomKernelFeatures(1, 128, 840, seed=0)
    x = torch.randn(64, 1, 128, generator=torch.Generator().manual_seed(2))
    branch.fit(x, torch.full((64,), 128), torch.Generator().manual_seed(0))
    features = branch(x)
    varying = branch.scale > 0
    assert varying.sum() > 700  # almost every feature varies over random windows
    assert features[:, varying].mean(0).abs().max() < 1e-4
    spread = features[:, varying].std(0, unbiased=False)
    assert torch.allclose(spread, torch.ones_like(spread), atol=1e-3)
    assert (features[:, ~varying] == 0).all()  # a constant feature is scaled to nothing


def test_a_padded_window_has_the_features_of_the_window_alone() -> None:
    branch = _fitted(channels=3, window=200)
    x = torch.randn(2, 3, 200)
    x[1, :, 120:] = 0.0  # padding, as batches hold it
    together = branch(x, torch.tensor([200, 120]))
    alone = branch(x[1:, :, :120])
    assert torch.allclose(together[1], alone[0], atol=1e-6)


def test_features_are_the_proportion_of_valid_positions_above_each_bias() -> None:
    # A plain reference: one convolution per dilation, every bias compared over the valid
    # positions only; 300 samples is not a whole number of the branch's count groups, and
    # rounded values put outputs exactly on biases, where "above" must stay strict.
    branch = _fitted(channels=2, window=300)
    x = torch.round(3 * torch.randn(3, 2, 300, generator=torch.Generator().manual_seed(2)))
    lengths = torch.tensor([300, 211, 5])
    x[1, :, 211:] = 0.0
    x[2, :, 5:] = 0.0
    expected = []
    for d, biases in enumerate(branch._bias_slices()):
        out = branch._convolve(x, d)  # [3, 84, 300]
        for i, length in enumerate(lengths.tolist()):
            valid = out[i, :, :length, None]  # [84, length, 1]
            above = (valid > branch.biases[None, :, biases].transpose(0, 1)).float().mean(1)
            expected.append((i, above.flatten()))
    reference = torch.stack([torch.cat([e for j, e in expected if j == i]) for i in range(3)])
    branch.mean.zero_()
    branch.scale.fill_(1.0)  # the raw proportions
    assert torch.allclose(branch(x, lengths), reference, atol=1e-6)


def test_biases_come_from_the_training_windows_and_the_seed() -> None:
    a, b = _fitted(), _fitted()
    assert torch.equal(a.biases, b.biases) and a.biases.abs().sum() > 0
    other = RandomKernelFeatures(1, 200, 840, seed=0)
    other.fit(10 * torch.randn(40, 1, 200), torch.full((40,), 200), torch.Generator())
    assert other.biases.abs().mean() > 3 * a.biases.abs().mean()  # scaled data, scaled biases


def test_the_ridge_logits_join_the_heads_and_a_checkpoint_keeps_them(tmp_path) -> None:
    config = model_config("tiny", 2, 2, kernel_features=168, kernel_window=96)
    model = build_classifier(config)
    store = _store()
    logits = fit_random_kernels(
        model, store, np.arange(len(store)), np.arange(len(store)), NORM, seed=0, echo=_quiet
    )
    assert logits is not None and model.ridge_weight.abs().sum() > 0
    model.eval()
    x, lengths = torch.from_numpy(store.x[:6]), torch.from_numpy(store.lengths[:6])
    with torch.no_grad():
        before = model(x, lengths)
        ridge = model.ridge_logits(x, lengths)
        # the head's logits plus the ridge model's
        head = model(x, lengths, kernel_logits=torch.zeros(6, 2))
        assert torch.allclose(before - ridge, head, rtol=1e-4, atol=1e-4)
    save_checkpoint(tmp_path / "m", model, meta_for(config, ["a", "b"]))
    loaded, _ = load_checkpoint(tmp_path / "m")
    assert torch.equal(loaded.random_kernels.biases, model.random_kernels.biases)
    assert torch.equal(loaded.ridge_weight, model.ridge_weight)
    with torch.no_grad():
        assert torch.allclose(loaded(x, lengths), before, atol=1e-5)
    with pytest.raises(ValueError, match="kernel_features"):
        model_config("tiny", 1, 2, kernel_features=10, kernel_window=96)


def test_training_windows_get_leave_one_out_logits_and_the_rest_predicted_ones() -> None:
    config = model_config("tiny", 2, 2, kernel_features=168, kernel_window=96)
    model = build_classifier(config, n_members=2)  # an ensemble: one ridge model for both
    store = _store()
    train, val = np.arange(16), np.arange(16, 24)
    logits = fit_random_kernels(model, store, train, val, NORM, seed=0, echo=_quiet)
    first, second = model.members
    assert torch.equal(first.ridge_weight, second.ridge_weight)
    x = normalize(torch.from_numpy(store.x), torch.from_numpy(store.lengths), NORM)
    with torch.no_grad():
        predicted = first.ridge_logits(x, torch.from_numpy(store.lengths))
    assert torch.allclose(logits[val], predicted[val], atol=1e-4)
    # a training window's logits are those of a ridge model that did not see it
    assert not torch.allclose(logits[train], predicted[train], atol=1e-3)
    with pytest.raises(KeyError):
        KernelLogits(4, np.array([0, 2]), torch.zeros(2, 2))[np.array([1])]
    plain = build_classifier(model_config("tiny", 2, 2))
    assert fit_random_kernels(plain, store, train, val, NORM, seed=0, echo=_quiet) is None


def test_the_ridge_model_is_refitted_on_the_validation_windows_too() -> None:
    config = model_config("tiny", 2, 2, kernel_features=168, kernel_window=96)
    model = build_classifier(config, n_members=2)
    store = _store()
    train, val = np.arange(16), np.arange(16, 24)
    fit_random_kernels(model, store, train, val, NORM, seed=0, echo=_quiet)
    first, second = model.members
    biases, on_train = first.random_kernels.biases.clone(), first.ridge_weight.clone()
    later = copy.deepcopy(model)  # another saved state of the run (last/ beside best/)
    fitted = refit_ridge([model, later], store, np.union1d(train, val), NORM, seed=0)
    assert fitted is not None and len(fitted.loo_logits) == 24
    # the ridge model of all 24 windows' features, in both networks; the branch unchanged
    features = first.random_kernels(
        normalize(torch.from_numpy(store.x), torch.from_numpy(store.lengths), NORM),
        torch.from_numpy(store.lengths),
    )
    expected = fit_ridge(features, store.y, 2, groups=held_out_groups(store, np.arange(24)))
    assert torch.allclose(first.ridge_weight, expected.weight, atol=1e-5)
    assert torch.equal(first.ridge_weight, second.ridge_weight)
    assert all(torch.equal(m.ridge_weight, first.ridge_weight) for m in later.members)
    assert not torch.allclose(first.ridge_weight, on_train, atol=1e-4)
    assert torch.equal(first.random_kernels.biases, biases)
    plain = build_classifier(model_config("tiny", 2, 2))
    assert refit_ridge([plain], store, np.arange(24), NORM, seed=0) is None


def test_ridge_leave_one_out_is_the_refit_without_each_window() -> None:
    rng = np.random.default_rng(0)
    features = torch.from_numpy(rng.standard_normal((30, 50)))
    y = rng.integers(0, 3, 30)
    fitted = fit_ridge(features, y, 3)
    targets = -np.ones((30, 3))
    targets[np.arange(30), y] = 1
    for i in (0, 7, 29):
        keep = np.arange(30) != i
        alone = Ridge(alpha=fitted.alpha).fit(features[keep].numpy(), targets[keep])
        expected = fitted.temperature * alone.predict(features[i : i + 1].numpy())[0]
        assert np.allclose(fitted.loo_logits[i].numpy(), expected, atol=1e-4)
    whole = Ridge(alpha=fitted.alpha).fit(features.numpy(), targets)
    ours = (features.float() @ fitted.weight.T + fitted.bias).numpy()
    assert np.allclose(ours, fitted.temperature * whole.predict(features.numpy()), atol=1e-3)
    assert fitted.temperature > 0 and 0 <= fitted.loo_accuracy <= 1


def test_mixing_blends_ridge_logits_with_the_targets_weights() -> None:
    augment = build_augmentation(["mixup:0.4:1.0"])
    x = torch.randn(8, 1, 32)
    lengths = torch.full((8,), 32)
    targets = torch.nn.functional.one_hot(torch.arange(8) % 4, 4).float()
    # ridge logits equal to the targets must come out equal to the mixed targets
    mixed_x, mixed_t, mixed_f = mix_batch(
        augment, x, lengths, targets, targets.clone(), torch.Generator().manual_seed(0)
    )
    assert not torch.equal(mixed_t, targets)  # something was mixed
    assert torch.allclose(mixed_f, mixed_t)
    again_x, again_t, none = mix_batch(
        augment, x, lengths, targets, None, torch.Generator().manual_seed(0)
    )
    assert none is None and torch.equal(again_t, mixed_t) and torch.equal(again_x, mixed_x)


def test_the_normalisation_is_chosen_on_the_training_windows() -> None:
    rng = np.random.default_rng(0)
    n, window = 40, 64
    y = np.arange(n) % 2
    # the classes differ only in scale: per-window z-scores make them identical
    x = rng.standard_normal((n, 1, window)).astype(np.float32) * np.where(y == 1, 5.0, 1.0)[
        :, None, None
    ].astype(np.float32)
    ids = np.array([f"r{i}" for i in range(n)])
    lengths = np.full(n, window)
    store = ExampleStore(
        x=x, lengths=lengths, y=y, groups=ids, recording_ids=ids,
        starts=np.zeros(n, dtype=np.int64), classes=["a", "b"], label_ends=lengths,
    )  # fmt: skip
    chosen, scores = choose_normalization(
        ["window", "dataset"], store, np.arange(n), window, 168, seed=0
    )
    assert chosen == "dataset" and scores["dataset"] > scores["window"] + 0.3
    # a tie goes to the first candidate (the plugin's own): windows already z-scored look
    # the same unscaled and scaled per window, in either order
    mean, std = x.mean(-1, keepdims=True), x.std(-1, keepdims=True)
    store.x = ((x - mean) / std).astype(np.float32)
    for order in (["none", "window"], ["window", "none"]):
        chosen, scores = choose_normalization(order, store, np.arange(n), window, 168, seed=0)
        assert scores["none"] == pytest.approx(scores["window"], abs=1e-9)
        assert chosen == order[0]


def test_ridge_leave_one_group_out_is_the_refit_without_each_group() -> None:
    rng = np.random.default_rng(1)
    features = torch.from_numpy(rng.standard_normal((24, 40)))
    y = rng.integers(0, 2, 24)
    groups = np.repeat(np.arange(8), 3)  # three windows per recording
    fitted = fit_ridge(features, y, 2, groups=groups)
    targets = -np.ones((24, 2))
    targets[np.arange(24), y] = 1
    for g in (0, 5):
        out = groups == g
        alone = Ridge(alpha=fitted.alpha).fit(features[~out].numpy(), targets[~out])
        expected = fitted.temperature * alone.predict(features[out].numpy())
        assert np.allclose(fitted.loo_logits[out].numpy(), expected, atol=1e-4)


def test_overlapping_windows_are_held_out_together() -> None:
    store = _store(n=8)
    store.recording_ids = np.array(["r"] * 8)
    store.groups = np.array(["r"] * 8)  # one recording: no group split is possible
    store.y = np.array([0] * 4 + [1] * 4)
    store.starts = np.arange(8) * 48  # hop 48 of 96-sample windows: neighbours overlap
    store.label_ends = store.starts + 96
    blocks = held_out_groups(store, np.arange(8))
    # blocks two windows long in time: starts 0, 48, 96, 144 in one, 192 … in the next
    assert len(set(blocks[:4])) == 1 and blocks[3] != blocks[4]
    # where every class has two groups, the groups themselves
    store.groups = np.array(["a", "b", "c", "d"] * 2)
    store.y = np.array([0, 0, 1, 1] * 2)
    assert list(held_out_groups(store, np.arange(8))) == list(store.groups)
