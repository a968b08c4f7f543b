"""Classification losses: cross-entropy and focal loss, with class weights and smoothing."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["LOSSES", "FocalLoss", "build_loss"]

_REDUCTIONS = ("mean", "sum", "none")


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

    Shapes: ``logits`` ``[N, C]``, ``target`` ``[N]`` (long); the loss is computed in at least
    float32 whatever the logits' dtype.
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
        """Loss of ``logits`` ``[N, C]`` against class indices ``target`` ``[N]``."""
        if logits.dim() != 2 or target.shape != logits.shape[:1]:
            raise ValueError(
                f"FocalLoss expects logits [N, C] and target [N], got {tuple(logits.shape)} "
                f"and {tuple(target.shape)}"
            )
        n_classes = logits.shape[1]
        work = torch.promote_types(logits.dtype, torch.float32)
        log_p = F.log_softmax(logits.to(work), dim=1)
        target = target.long()
        log_pt = log_p.gather(1, target[:, None]).squeeze(1)  # [N]

        if self.weight is None:
            w_t = torch.ones_like(log_pt)
            smooth = -log_p.sum(dim=1)
        else:
            if self.weight.shape != (n_classes,):
                raise ValueError(
                    f"FocalLoss: weight has {self.weight.shape[0]} classes, logits have {n_classes}"
                )
            weight = self.weight.to(device=log_p.device, dtype=work)
            w_t = weight[target]
            smooth = -(log_p * weight).sum(dim=1)

        eps = self.label_smoothing
        loss = (1.0 - eps) * w_t * -log_pt + (eps / n_classes) * smooth
        if self.gamma != 0.0:
            # -expm1(log p) is 1 - p without cancellation for confident examples; the floor
            # keeps the gradient of base**gamma finite for gamma < 1 when p rounds to 1.
            base = (-torch.expm1(log_pt)).clamp_min(torch.finfo(work).tiny)
            loss = base.pow(self.gamma) * loss

        if self.reduction == "none":
            return loss
        if self.reduction == "sum":
            return loss.sum()
        return loss.sum() / w_t.sum()

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
    focal exponent (ignored for ``"ce"``). An unknown name raises ``ValueError``.
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
        return nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)
    return FocalLoss(gamma=gamma, weight=weight, label_smoothing=label_smoothing)
