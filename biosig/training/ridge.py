"""Ridge regression on the random-kernel features, in closed form, with leave-one-out
predictions: the linear classifier MiniRocket uses, and what lets the learned network be
stacked on it.

The classes are coded ±1 and regressed on the features (with an intercept). The penalty is
chosen among :data:`ALPHAS` by the leave-one-out error, which for ridge costs one
eigendecomposition of the ``n x n`` Gram matrix (Hastie et al., *Elements of Statistical
Learning*, 7.10.1; scikit-learn's RidgeClassifierCV does the same). The decision values are
then scaled into logits by the temperature that minimises the training loss (cross-entropy,
label smoothing included) of the leave-one-out ones, so that they carry calibrated
confidence next to the network's logits.

The leave-one-out decision value of a training window is what the ridge model says of it
without having seen it. Training the network on ``ridge(LOO) + network`` logits teaches it
to correct the ridge model where it errs on unseen windows (stacking), rather than learning
nothing from ridge logits that fit every training window already.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import minimize_scalar

#: Penalties tried, as MiniRocket's classifier does.
ALPHAS = np.logspace(-3, 3, 10)
#: Largest temperature considered: logits up to ~T for decision values of about 1.
MAX_TEMPERATURE = 50.0


@dataclass
class RidgeFit:
    """A fitted ridge classifier: ``logits = temperature * (features @ weight.T + bias)``."""

    weight: torch.Tensor  # [K, F], the temperature folded in
    bias: torch.Tensor  # [K]
    #: held-out (leave-one-out, or leave-one-group-out) logits of the training windows,
    #: ``[n, K]`` (temperature applied)
    loo_logits: torch.Tensor
    alpha: float
    temperature: float
    #: accuracy of those held-out logits
    loo_accuracy: float


def fit_ridge(
    features: torch.Tensor,
    y: np.ndarray,
    n_classes: int,
    label_smoothing: float = 0.0,
    groups: np.ndarray | None = None,
) -> RidgeFit:
    """Ridge classifier of ``features`` ``[n, F]`` (float) for labels ``y`` (``0..K-1``),
    its logits scaled for the loss training uses (cross-entropy with ``label_smoothing``).

    The held-out predictions leave out one of ``groups`` at a time (``None``: one window
    at a time): windows that overlap, or come from one recording, are near-copies, and
    leaving one out while its neighbour stays in would score it almost as seen."""
    x = features.double()
    n = x.shape[0]
    targets = -torch.ones(n, n_classes, dtype=torch.float64)
    targets[torch.arange(n), torch.as_tensor(y, dtype=torch.long)] = 1.0
    x_mean, t_mean = x.mean(0), targets.mean(0)
    xc, tc = x - x_mean, targets - t_mean
    # Gram matrix eigendecomposition: every alpha's fit and held-out predictions from one
    # solve.
    eigenvalues, q = torch.linalg.eigh(xc @ xc.T)
    eigenvalues = eigenvalues.clamp(min=0)
    qt_t = q.T @ tc
    members = _group_members(groups, n)
    best = None
    for alpha in ALPHAS:
        shrink = eigenvalues / (eigenvalues + alpha)
        fitted = q @ (shrink[:, None] * qt_t) + t_mean
        held_out = _held_out(q, shrink, fitted, targets, members)
        error = float(((held_out - targets) ** 2).mean())
        if best is None or error < best[0]:
            best = (error, float(alpha), held_out)
    _, alpha, held_out = best
    # Primal weights from the dual solution: w = Xc^T (K + alpha I)^-1 Tc.
    dual = q @ ((1.0 / (eigenvalues + alpha))[:, None] * qt_t)
    weight = (xc.T @ dual).T  # [K, F]
    bias = t_mean - weight @ x_mean
    temperature = _temperature(held_out, y, label_smoothing)
    loo_accuracy = float((held_out.argmax(1).numpy() == np.asarray(y)).mean())
    return RidgeFit(
        weight=(temperature * weight).float(),
        bias=(temperature * bias).float(),
        loo_logits=(temperature * held_out).float(),
        alpha=alpha,
        temperature=temperature,
        loo_accuracy=loo_accuracy,
    )


def _group_members(groups: np.ndarray | None, n: int) -> list[torch.Tensor] | None:
    """Row indices of each group, or ``None`` when every group is one window."""
    if groups is None:
        return None
    _, inverse = np.unique(np.asarray(groups), return_inverse=True)
    n_groups = int(inverse.max(initial=-1)) + 1
    if n_groups == n or n_groups < 2:  # one window each, or nothing to leave out but all
        return None
    return [torch.from_numpy(np.flatnonzero(inverse == g)) for g in range(inverse.max() + 1)]


def _held_out(
    q: torch.Tensor,
    shrink: torch.Tensor,
    fitted: torch.Tensor,
    targets: torch.Tensor,
    members: list[torch.Tensor] | None,
) -> torch.Tensor:
    """Predictions of each window by the ridge model fitted without its group (Hastie et
    al. 7.10.1, by blocks): ``t_G - (I - H_GG)^-1 (t_G - fitted_G)``, where the hat
    matrix is the centred one plus the intercept's ``1/n``."""
    n = q.shape[0]
    residual = targets - fitted
    if members is None:
        hat = (q**2 @ shrink) + 1.0 / n
        return targets - residual / (1.0 - hat[:, None]).clamp(min=1e-9)
    held_out = torch.empty_like(targets)
    for rows in members:
        q_g = q[rows]
        hat = (q_g * shrink) @ q_g.T + 1.0 / n
        # I - H_GG is positive definite for a positive penalty; the jitter guards rounding
        eye = torch.eye(len(rows), dtype=hat.dtype)
        held_out[rows] = targets[rows] - torch.linalg.solve(eye * (1 + 1e-9) - hat, residual[rows])
    return held_out


def _temperature(decisions: torch.Tensor, y: np.ndarray, label_smoothing: float) -> float:
    """The scale of ``decisions`` whose softmax gives ``y`` the lowest cross-entropy, with
    the training loss's label smoothing: logits as confident as the loss asks, so that a
    network trained on top of them is not pushed to undo an over-confident ridge model."""
    labels = torch.as_tensor(y, dtype=torch.long)

    def loss(t: float) -> float:
        return float(
            torch.nn.functional.cross_entropy(
                t * decisions, labels, label_smoothing=label_smoothing
            )
        )

    return float(minimize_scalar(loss, bounds=(0.0, MAX_TEMPERATURE), method="bounded").x)
