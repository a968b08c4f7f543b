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
    #: leave-one-out logits of the training windows, ``[n, K]`` (temperature applied)
    loo_logits: torch.Tensor
    alpha: float
    temperature: float
    loo_accuracy: float


def fit_ridge(
    features: torch.Tensor, y: np.ndarray, n_classes: int, label_smoothing: float = 0.0
) -> RidgeFit:
    """Ridge classifier of ``features`` ``[n, F]`` (float) for labels ``y`` (``0..K-1``),
    its logits scaled for the loss training uses (cross-entropy with ``label_smoothing``)."""
    x = features.double()
    n = x.shape[0]
    targets = -torch.ones(n, n_classes, dtype=torch.float64)
    targets[torch.arange(n), torch.as_tensor(y, dtype=torch.long)] = 1.0
    x_mean, t_mean = x.mean(0), targets.mean(0)
    xc, tc = x - x_mean, targets - t_mean
    # Gram matrix eigendecomposition: every alpha's fit and leave-one-out from one solve.
    eigenvalues, q = torch.linalg.eigh(xc @ xc.T)
    eigenvalues = eigenvalues.clamp(min=0)
    qt_t = q.T @ tc
    best = None
    for alpha in ALPHAS:
        shrink = eigenvalues / (eigenvalues + alpha)
        fitted = q @ (shrink[:, None] * qt_t)
        # hat-matrix diagonal, plus the intercept's 1/n
        hat = (q**2 @ shrink) + 1.0 / n
        loo = (fitted + t_mean - hat[:, None] * targets) / (1.0 - hat[:, None]).clamp(min=1e-9)
        error = float(((loo - targets) ** 2).mean())
        if best is None or error < best[0]:
            best = (error, float(alpha), loo)
    _, alpha, loo = best
    # Primal weights from the dual solution: w = Xc^T (K + alpha I)^-1 Tc.
    dual = q @ ((1.0 / (eigenvalues + alpha))[:, None] * qt_t)
    weight = (xc.T @ dual).T  # [K, F]
    bias = t_mean - weight @ x_mean
    temperature = _temperature(loo, y, label_smoothing)
    loo_accuracy = float((loo.argmax(1).numpy() == np.asarray(y)).mean())
    return RidgeFit(
        weight=(temperature * weight).float(),
        bias=(temperature * bias).float(),
        loo_logits=(temperature * loo).float(),
        alpha=alpha,
        temperature=temperature,
        loo_accuracy=loo_accuracy,
    )


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
