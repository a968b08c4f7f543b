"""Behaviour of the classification losses in biosig.losses."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from biosig.losses import FocalLoss, build_loss

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
    logits = logits.requires_grad_()
    loss = FocalLoss(gamma=gamma, weight=weight, label_smoothing=0.1)(logits, target)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(logits.grad).all()


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
    assert isinstance(ce, nn.CrossEntropyLoss)
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
