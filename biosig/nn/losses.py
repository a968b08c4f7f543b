"""Classification losses: cross-entropy and focal loss, with class weights and smoothing.

Both take either class indices ``[N]`` or soft targets ``[N, C]`` (float rows of
probabilities, e.g. one-hot rows blended by mixup or cutmix, see :mod:`biosig.nn.augment`).
A soft target is treated as a distribution over labels and its loss is the expectation of
the class-index loss under it::

    loss(logits, t) = sum_k t[k] * loss(logits, k)

so a one-hot row gives exactly the class-index loss, and a mix ``lam * t_a + (1 - lam) *
t_b`` gives ``lam * loss(t_a) + (1 - lam) * loss(t_b)``. For cross-entropy this is
PyTorch's own probability-target cross-entropy. ``reduction="mean"`` divides by
``sum_i sum_k t_ik w_k``, the soft form of PyTorch's ``sum_i w[y_i]``, so weighted means
agree between the two kinds of target too (PyTorch divides soft targets by ``N`` instead).
Label smoothing is applied inside the loss in both cases.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["LOSSES", "FocalLoss", "SoftCrossEntropyLoss", "build_loss"]

_REDUCTIONS = ("mean", "sum", "none")


def _is_soft(who: str, logits: Tensor, target: Tensor) -> bool:
    """Whether ``target`` holds soft targets (``[N, C]``) rather than class indices (``[N]``)."""
    if logits.dim() != 2:
        raise ValueError(f"{who} expects logits [N, C], got {tuple(logits.shape)}")
    if target.shape == logits.shape:
        if not target.is_floating_point():
            raise ValueError(f"{who}: soft targets [N, C] must be float, got {target.dtype}")
        return True
    if target.shape == logits.shape[:1]:
        return False
    raise ValueError(
        f"{who} expects target [N] (class indices) or [N, C] (soft), got "
        f"{tuple(target.shape)} for logits {tuple(logits.shape)}"
    )


def _reduce(loss: Tensor, norm: Tensor, reduction: str) -> Tensor:
    """Apply ``reduction`` to per-example losses; ``"mean"`` divides by ``norm.sum()``."""
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / norm.sum()


class SoftCrossEntropyLoss(nn.CrossEntropyLoss):
    """:class:`torch.nn.CrossEntropyLoss` that also takes soft targets ``[N, C]``.

    Class-index targets ``[N]`` go straight to PyTorch, unchanged. Soft targets (rows of
    probabilities) use PyTorch's probability-target cross-entropy, computed in at least
    float32, with the same ``weight`` and ``label_smoothing``; only a weighted
    ``reduction="mean"`` differs from PyTorch's: it divides by ``sum_i sum_c t_ic w_c``
    (``sum_i w[y_i]`` for one-hot rows, as for class indices) instead of ``N``, so one-hot
    rows give the class-index loss. ``ignore_index`` applies to class indices only.
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        """Loss of ``input`` logits ``[N, C]`` against indices ``[N]`` or soft ``[N, C]``."""
        if not (input.dim() == 2 and _is_soft(type(self).__name__, input, target)):
            return super().forward(input, target)
        work = torch.promote_types(input.dtype, torch.float32)
        logits, target = input.to(work), target.to(work)
        weight = None if self.weight is None else self.weight.to(device=logits.device, dtype=work)
        if weight is None or self.reduction != "mean":
            # Unweighted, PyTorch's mean over N is sum_i sum_c t_ic when rows sum to 1.
            return F.cross_entropy(
                logits,
                target,
                weight=weight,
                label_smoothing=self.label_smoothing,
                reduction=self.reduction,
            )
        total = F.cross_entropy(
            logits, target, weight=weight, label_smoothing=self.label_smoothing, reduction="sum"
        )
        # The normaliser uses the unsmoothed targets: for one-hot rows that is sum_i w[y_i],
        # exactly what PyTorch divides class-index targets by, smoothing or not.
        return total / (target * weight).sum(dim=1).sum()


class FocalLoss(nn.Module):
    """Focal loss (Lin et al., 2017) over class-index targets, a drop-in for cross-entropy.

    The per-example cross-entropy, defined exactly as in
    :func:`torch.nn.functional.cross_entropy` with ``weight`` and ``label_smoothing``::

        ce_i = (1 - eps) * w[y_i] * -log p_i[y_i] + eps / C * sum_c w[c] * -log p_i[c]

    is multiplied by ``(1 - p_i[y_i]) ** gamma``, which shrinks the loss of examples the
    model already gets right with confidence and so focuses training on the hard ones.
    ``reduction="mean"`` divides the sum by ``sum_i w[y_i]`` (by ``N`` without weights),
    again as PyTorch does, so ``gamma=0`` reproduces ``cross_entropy`` exactly.

    Args:
        gamma: focusing exponent, ``>= 0``; ``0`` is plain (weighted, smoothed) cross-entropy.
        weight: optional per-class weights, shape ``[C]``.
        label_smoothing: ``eps`` in ``[0, 1)``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Soft targets ``t`` ``[N, C]`` (float rows of probabilities) give the expectation of the
    loss above over labels drawn from ``t``::

        loss_i = sum_k t_ik * (1 - p_i[k]) ** gamma
                 * ((1 - eps) * w[k] * -log p_i[k] + eps / C * sum_c w[c] * -log p_i[c])

    which is exactly the class-index loss for one-hot rows, and ``reduction="mean"`` divides
    by ``sum_i sum_k t_ik w[k]`` (``sum_i w[y_i]`` for one-hot rows). The focusing factor
    belongs to the target class ``k`` and multiplies its whole smoothed cross-entropy, as in
    the class-index form: weighting each smoothed class by its own ``(1 - p[c]) ** gamma``
    instead would give confident correct predictions a large loss from the smoothing mass
    on the wrong classes, which is what focal loss is meant to avoid.

    Shapes: ``logits`` ``[N, C]``, ``target`` ``[N]`` (class indices) or ``[N, C]`` (soft);
    the loss is computed in at least float32 whatever the logits' dtype.
    """

    weight: Tensor | None

    def __init__(
        self,
        gamma: float = 2.0,
        weight: Tensor | None = None,
        label_smoothing: float = 0.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        if not (math.isfinite(gamma) and gamma >= 0.0):
            raise ValueError(f"FocalLoss: gamma must be finite and >= 0, got {gamma}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"FocalLoss: label_smoothing must be in [0, 1), got {label_smoothing}")
        if reduction not in _REDUCTIONS:
            raise ValueError(
                f"FocalLoss: reduction must be one of {_REDUCTIONS}, got {reduction!r}"
            )
        if weight is not None and weight.dim() != 1:
            raise ValueError(f"FocalLoss: weight must be 1-D [C], got {tuple(weight.shape)}")
        self.gamma = float(gamma)
        self.label_smoothing = float(label_smoothing)
        self.reduction = reduction
        # A buffer so .to(device) moves it; not persistent because it is a training setting,
        # not part of the model, and must not leak into checkpoints.
        self.register_buffer(
            "weight", None if weight is None else weight.detach().clone(), persistent=False
        )

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Loss of ``logits`` ``[N, C]`` against class indices ``[N]`` or soft targets."""
        soft = _is_soft("FocalLoss", logits, target)
        n_classes = logits.shape[1]
        work = torch.promote_types(logits.dtype, torch.float32)
        log_p = F.log_softmax(logits.to(work), dim=1)
        weight = None
        if self.weight is not None:
            if self.weight.shape != (n_classes,):
                raise ValueError(
                    f"FocalLoss: weight has {self.weight.shape[0]} classes, logits have {n_classes}"
                )
            weight = self.weight.to(device=log_p.device, dtype=work)
        smooth = -log_p.sum(dim=1) if weight is None else -(log_p * weight).sum(dim=1)

        if soft:
            # The class-index loss for every possible label k at once, [N, C], then its
            # expectation under the target. The element-wise arithmetic is the same as below,
            # so one-hot rows give bit for bit the class-index loss.
            t = target.to(work)
            w = torch.ones_like(log_p[:1]) if weight is None else weight[None, :]
            per_label = self._focal(log_p, w, -log_p, smooth[:, None], n_classes)
            return _reduce((t * per_label).sum(dim=1), (t * w).sum(dim=1), self.reduction)

        target = target.long()
        log_pt = log_p.gather(1, target[:, None]).squeeze(1)  # [N]
        w_t = torch.ones_like(log_pt) if weight is None else weight[target]
        loss = self._focal(log_pt, w_t, -log_pt, smooth, n_classes)
        return _reduce(loss, w_t, self.reduction)

    def _focal(
        self, log_pt: Tensor, w_t: Tensor, nll: Tensor, smooth: Tensor, n_classes: int
    ) -> Tensor:
        """Focal loss for label probabilities ``exp(log_pt)`` with weights ``w_t`` (broadcast)."""
        eps = self.label_smoothing
        loss = (1.0 - eps) * w_t * nll + (eps / n_classes) * smooth
        if self.gamma != 0.0:
            # -expm1(log p) is 1 - p without cancellation for confident examples; the floor
            # keeps the gradient of base**gamma finite for gamma < 1 when p rounds to 1.
            base = (-torch.expm1(log_pt)).clamp_min(torch.finfo(log_pt.dtype).tiny)
            loss = base.pow(self.gamma) * loss
        return loss

    def extra_repr(self) -> str:
        return (
            f"gamma={self.gamma}, label_smoothing={self.label_smoothing}, "
            f"weighted={self.weight is not None}, reduction={self.reduction!r}"
        )


#: Loss names accepted by :func:`build_loss`.
LOSSES: tuple[str, ...] = ("ce", "focal")


def build_loss(
    name: str,
    n_classes: int,
    class_weights: Tensor | None = None,
    label_smoothing: float = 0.0,
    *,
    gamma: float = 2.0,
) -> nn.Module:
    """Build the training loss ``name`` (``"ce"`` or ``"focal"``) for ``n_classes`` classes.

    ``class_weights`` (shape ``[n_classes]``) weight each class as in
    :func:`torch.nn.functional.cross_entropy`; they are stored as float32. ``gamma`` is the
    focal exponent (ignored for ``"ce"``). An unknown name raises ``ValueError``. The module
    takes class indices ``[N]`` or soft targets ``[N, n_classes]`` (see the module docs).
    """
    key = name.strip().lower()
    if key not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; known: {', '.join(LOSSES)}")
    if n_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {n_classes}")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    weight = None
    if class_weights is not None:
        weight = torch.as_tensor(class_weights).detach().to(torch.float32)
        if weight.shape != (n_classes,):
            raise ValueError(
                f"class_weights must have shape ({n_classes},), got {tuple(weight.shape)}"
            )
    if key == "ce":
        return SoftCrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)
    return FocalLoss(gamma=gamma, weight=weight, label_smoothing=label_smoothing)
