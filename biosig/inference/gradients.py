"""Integrated gradients: how much each input sample moved a window's predicted class.

Behind ``biosig predict --explain gradient``. Attention pooling only says which tokens the
pooled vector was averaged from; a model can classify perfectly with nearly uniform
attention, because the convolutions and the Transformer have already moved the evidence
into every token. Integrated gradients (Sundararajan, Taly & Yan, 2017) attribute the
output itself to the input samples instead, and they are *complete*: a window's
attributions add up to its predicted-class logit minus the logit of the baseline, so a
large value means a sample that moved the decision, whatever path through the network the
evidence took.

The baseline is the all-zero window in the model's input space, after normalisation: for
per-window and dataset z-scores zero is the mean level (a flat signal, no shape), for
unnormalised input it is silence. The path integral is a midpoint Riemann sum of ``steps``
points; each point is one forward and backward pass over the whole batch, so memory stays
that of one training step and the cost is about ``3 × steps`` predictions.
"""

from __future__ import annotations

import torch

#: Points on the path from the baseline to the input. On a tiny classifier of a planted
#: segment, 8 points left a median completeness gap of 1.3 % of the logit difference (4:
#: 8 %, 16: 0.3 %) and put the same share of attribution in the segment as 32 did, at about
#: 20 times the cost of prediction on a CPU (40 times with 16).
IG_STEPS = 8


def integrated_gradients(
    model: torch.nn.Module,
    x: torch.Tensor,
    lengths: torch.Tensor,
    target: torch.Tensor,
    steps: int = IG_STEPS,
) -> torch.Tensor:
    """Integrated gradients of ``model``'s output for class ``target[b]`` with respect to
    the model-ready windows ``x`` ``[B, C, T]`` (valid up to ``lengths[b]``), from the
    all-zero baseline, summed over channels: ``[B, T]`` float32, zero past each length.

    Computed in float32 outside any autocast (a bf16 path integral loses the completeness
    that makes the values comparable) and with gradients enabled even when the caller runs
    under ``torch.inference_mode``. Frozen, non-differentiable parts of a model (the
    random-kernel ridge branch counts positive values, a step function) contribute no
    gradient, so their share of a decision is not attributed.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    # A clone made outside inference mode is an ordinary tensor autograd may save.
    with torch.inference_mode(False), torch.enable_grad():
        x = x.detach().clone().float()
        lengths = lengths.detach().clone()
        index = target.detach().clone().long().view(-1, 1)
        total = torch.zeros_like(x)
        with torch.autocast(x.device.type, enabled=False):
            for k in range(steps):
                point = (x * ((k + 0.5) / steps)).requires_grad_(True)
                chosen = model(point, lengths).float().gather(1, index).sum()
                (grad,) = torch.autograd.grad(chosen, point)
                total += grad
        attribution = (x * total / steps).sum(dim=1)
        valid = torch.arange(x.shape[-1], device=x.device)[None, :] < lengths[:, None]
        return torch.where(valid, attribution, torch.zeros_like(attribution)).detach()
