"""Behaviour of the classification losses in biosig.nn.losses."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from biosig.nn.losses import FocalLoss, SoftCrossEntropyLoss, build_loss

N, C = 64, 5


def batch(seed: int = 0, scale: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(N, C, generator=g) * scale
    target = torch.randint(0, C, (N,), generator=g)
    return logits, target


WEIGHTS = [None, torch.tensor([0.5, 2.0, 1.0, 3.0, 0.25])]


@pytest.mark.parametrize("weight", WEIGHTS, ids=["unweighted", "weighted"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gamma_zero_equals_cross_entropy(
    weight: torch.Tensor | None, smoothing: float, reduction: str
) -> None:
    logits, target = batch()
    ours = FocalLoss(gamma=0.0, weight=weight, label_smoothing=smoothing, reduction=reduction)
    ref = F.cross_entropy(
        logits, target, weight=weight, label_smoothing=smoothing, reduction=reduction
    )
    # A sum of N float32 losses is only good to its own relative precision.
    rtol = 1e-6 if reduction == "sum" else 0.0
    assert torch.allclose(ours(logits, target), ref, atol=1e-6, rtol=rtol)


@pytest.mark.parametrize("weight", WEIGHTS, ids=["unweighted", "weighted"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_gamma_zero_gradient_matches_cross_entropy(
    weight: torch.Tensor | None, smoothing: float
) -> None:
    logits, target = batch(1)
    a = logits.clone().requires_grad_()
    b = logits.clone().requires_grad_()
    FocalLoss(0.0, weight, smoothing)(a, target).backward()
    F.cross_entropy(b, target, weight=weight, label_smoothing=smoothing).backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-7)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_focal_down_weights_easy_examples(smoothing: float) -> None:
    easy = torch.tensor([[6.0, 0.0, 0.0]])  # confidently right
    hard = torch.tensor([[0.0, 2.0, 0.0]])  # confidently wrong
    target = torch.tensor([0])
    focal = FocalLoss(gamma=2.0, label_smoothing=smoothing)
    ce_easy = F.cross_entropy(easy, target, label_smoothing=smoothing)
    ce_hard = F.cross_entropy(hard, target, label_smoothing=smoothing)
    assert focal(easy, target) < 0.01 * ce_easy
    assert focal(hard, target) < ce_hard
    # The hard example keeps most of its loss; the easy one almost none.
    assert focal(hard, target) / ce_hard > 0.5


def test_larger_gamma_shrinks_loss() -> None:
    logits, target = batch(2)
    losses = [FocalLoss(gamma=g)(logits, target).item() for g in (0.0, 0.5, 1.0, 2.0, 5.0)]
    assert losses == sorted(losses, reverse=True)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("weight", WEIGHTS, ids=["unweighted", "weighted"])
def test_gradient_is_finite_even_for_extreme_logits(
    gamma: float, weight: torch.Tensor | None
) -> None:
    logits, target = batch(3, scale=1e4)  # softmax saturates to exact 0 and 1
    logits[0, target[0]] = 1e5
    soft = 0.7 * F.one_hot(target, C).float() + 0.3 * F.one_hot(target.roll(1), C).float()
    for t in (target, soft):
        leaf = logits.clone().requires_grad_()
        loss = FocalLoss(gamma=gamma, weight=weight, label_smoothing=0.1)(leaf, t)
        loss.backward()
        assert torch.isfinite(loss)
        assert torch.isfinite(leaf.grad).all()


def test_bf16_logits_and_weight_dtype() -> None:
    logits, target = batch(4)
    weight = torch.tensor([1.0, 2.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    loss = FocalLoss(gamma=2.0, weight=weight)(logits.to(torch.bfloat16), target)
    ref = FocalLoss(gamma=2.0, weight=weight)(logits.to(torch.bfloat16).float(), target)
    assert loss.dtype == torch.float32
    assert torch.allclose(loss, ref)


def test_weight_is_a_non_persistent_buffer() -> None:
    loss = FocalLoss(weight=torch.ones(C))
    assert "weight" in dict(loss.named_buffers())
    assert "weight" not in loss.state_dict()


def test_build_loss() -> None:
    logits, target = batch(5)
    weight = torch.tensor([1.0, 2.0, 1.0, 0.5, 1.0], dtype=torch.float64)
    ce = build_loss("ce", C, weight, 0.1)
    assert isinstance(ce, SoftCrossEntropyLoss) and isinstance(ce, nn.CrossEntropyLoss)
    ref = F.cross_entropy(logits, target, weight=weight.float(), label_smoothing=0.1)
    assert torch.allclose(ce(logits, target), ref, atol=1e-6)

    focal = build_loss("focal", C, weight, 0.1)
    assert isinstance(focal, FocalLoss) and focal.gamma == 2.0
    assert focal(logits, target) < ref
    assert build_loss("focal", C, None, 0.0, gamma=0.0)(logits, target).item() == pytest.approx(
        F.cross_entropy(logits, target).item(), abs=1e-6
    )


def test_build_loss_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="ce, focal"):
        build_loss("mse", C, None, 0.0)
    with pytest.raises(ValueError):
        build_loss("ce", C, torch.ones(C + 1), 0.0)
    with pytest.raises(ValueError):
        build_loss("focal", C, None, 1.0)
    with pytest.raises(ValueError):
        FocalLoss(gamma=-1.0)
    with pytest.raises(ValueError):
        FocalLoss(weight=torch.ones(3))(torch.zeros(2, C), torch.zeros(2, dtype=torch.long))


# --- soft targets ----------------------------------------------------------------------------


def make_loss(
    kind: str, weight: torch.Tensor | None, smoothing: float, reduction: str
) -> nn.Module:
    if kind == "ce":
        return SoftCrossEntropyLoss(weight=weight, label_smoothing=smoothing, reduction=reduction)
    gamma = {"focal": 2.0, "focal_0.7": 0.7}[kind]
    return FocalLoss(gamma, weight, smoothing, reduction)


def mixed_targets(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Class indices a and b, per-example weights lam and the soft targets they mix to."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, C, (N,), generator=g)
    b = torch.randint(0, C, (N,), generator=g)
    lam = torch.rand(N, generator=g)
    soft = lam[:, None] * F.one_hot(a, C).float() + (1 - lam[:, None]) * F.one_hot(b, C).float()
    return a, b, lam, soft


@pytest.mark.parametrize("kind", ["ce", "focal", "focal_0.7"])
@pytest.mark.parametrize("weight", WEIGHTS, ids=["unweighted", "weighted"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_one_hot_soft_targets_give_the_index_loss(
    kind: str, weight: torch.Tensor | None, smoothing: float, reduction: str
) -> None:
    logits, target = batch(6)
    loss = make_loss(kind, weight, smoothing, reduction)
    index, soft = loss(logits, target), loss(logits, F.one_hot(target, C).float())
    assert index.shape == soft.shape
    if kind == "ce":
        # PyTorch's probability-target kernel rounds differently from the index one.
        assert torch.allclose(soft, index, atol=1e-6, rtol=1e-6)
    else:
        # Same arithmetic on the one-hot row: bit for bit.
        assert torch.equal(soft, index)


@pytest.mark.parametrize("kind", ["ce", "focal"])
@pytest.mark.parametrize("weight", WEIGHTS, ids=["unweighted", "weighted"])
def test_one_hot_soft_targets_give_the_index_gradient(
    kind: str, weight: torch.Tensor | None
) -> None:
    logits, target = batch(7)
    a = logits.clone().requires_grad_()
    b = logits.clone().requires_grad_()
    loss = make_loss(kind, weight, 0.1, "mean")
    loss(a, target).backward()
    loss(b, F.one_hot(target, C).float()).backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-7)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_mixed_soft_targets_give_the_lambda_weighted_ce(smoothing: float) -> None:
    logits, _ = batch(8)
    a, b, lam, soft = mixed_targets(8)
    for reduction in ("none", "mean", "sum"):
        loss = make_loss("ce", None, smoothing, reduction)
        per_item = lam * make_loss("ce", None, smoothing, "none")(logits, a)
        per_item = per_item + (1 - lam) * make_loss("ce", None, smoothing, "none")(logits, b)
        expected = {"none": per_item, "mean": per_item.mean(), "sum": per_item.sum()}[reduction]
        assert torch.allclose(loss(logits, soft), expected, atol=1e-5, rtol=1e-6)


@pytest.mark.parametrize("kind", ["ce", "focal", "focal_0.7"])
@pytest.mark.parametrize("weight", WEIGHTS, ids=["unweighted", "weighted"])
def test_mixed_soft_targets_mix_the_losses_and_weights(
    kind: str, weight: torch.Tensor | None
) -> None:
    # Per example the loss is linear in the target; a weighted mean divides by the mixed
    # weights sum_i (lam_i w[a_i] + (1 - lam_i) w[b_i]).
    logits, _ = batch(9)
    a, b, lam, soft = mixed_targets(9)
    per_example = make_loss(kind, weight, 0.1, "none")
    expected = lam * per_example(logits, a) + (1 - lam) * per_example(logits, b)
    assert torch.allclose(per_example(logits, soft), expected, atol=1e-6)
    w = torch.ones(C) if weight is None else weight
    norm = (lam * w[a] + (1 - lam) * w[b]).sum()
    mean = make_loss(kind, weight, 0.1, "mean")(logits, soft)
    assert torch.allclose(mean, expected.sum() / norm, atol=1e-6)


@pytest.mark.parametrize("smoothing", [0.1, 0.3])
def test_label_smoothing_commutes_with_mixing(smoothing: float) -> None:
    # Smoothing in the loss of a mixed one-hot equals no smoothing of the mix of the
    # smoothed one-hots (per example; the unweighted mean too).
    logits, _ = batch(10)
    a, b, lam, soft = mixed_targets(10)

    def smooth(t: torch.Tensor) -> torch.Tensor:
        return (1 - smoothing) * t + smoothing / C

    mix_of_smoothed = lam[:, None] * smooth(F.one_hot(a, C).float())
    mix_of_smoothed = mix_of_smoothed + (1 - lam[:, None]) * smooth(F.one_hot(b, C).float())
    assert torch.allclose(smooth(soft), mix_of_smoothed, atol=1e-7)
    for weight, reduction in [(None, "mean"), (None, "none"), (WEIGHTS[1], "none")]:
        ours = make_loss("ce", weight, smoothing, reduction)(logits, soft)
        ref = make_loss("ce", weight, 0.0, reduction)(logits, mix_of_smoothed)
        assert torch.allclose(ours, ref, atol=1e-6)


def test_soft_targets_with_bf16_logits() -> None:
    logits, target = batch(11)
    soft = F.one_hot(target, C).float()
    for kind in ("ce", "focal"):
        loss = make_loss(kind, WEIGHTS[1], 0.1, "mean")
        low = loss(logits.to(torch.bfloat16), soft)
        assert low.dtype == torch.float32
        assert torch.allclose(low, loss(logits.to(torch.bfloat16).float(), soft))


@pytest.mark.parametrize("kind", ["ce", "focal"])
def test_bad_soft_targets_raise(kind: str) -> None:
    logits, target = batch(12)
    loss = make_loss(kind, None, 0.0, "mean")
    with pytest.raises(ValueError, match="float"):
        loss(logits, F.one_hot(target, C))  # integer one-hot
    with pytest.raises(ValueError, match=r"\[N\]"):
        loss(logits, torch.zeros(N, C + 1))
