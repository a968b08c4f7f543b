"""One 7-tap convolution of the training step three ways, forward and backward under bf16
autocast (batch 64, 2 threads): ``nn.Conv1d`` (oneDNN, what the model uses), the same as a
``Conv2d`` of height 1, and as one matrix product per tap, summed (which would run at the
CPU's bf16 matrix rate, were it not for the partial sums). Milliseconds per step.

    python benchmarks/conv_variants.py
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

STEPS = 5
SHAPES = ((64, 4096), (128, 2048), (256, 1024))  # channels, samples: the stages at 4096


def per_tap(x: Tensor, weight: Tensor) -> Tensor:
    """A "same" convolution as a sum over taps of ``weight[:, :, j] @ x shifted by j``."""
    taps, length = weight.shape[-1], x.shape[-1]
    padded = F.pad(x, ((taps - 1) // 2, (taps - 1) // 2))
    return sum(torch.matmul(weight[:, :, j], padded[:, :, j : j + length]) for j in range(taps))


def step_ms(forward: Callable[[Tensor], Tensor], x: Tensor) -> float:
    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = forward(x)
        out.float().sum().backward()

    step()  # warm-up
    started = time.perf_counter()
    for _ in range(STEPS):
        step()
    return (time.perf_counter() - started) / STEPS * 1e3


def main() -> None:
    torch.set_num_threads(2)
    print("| channels × samples | Conv1d | Conv2d (1 × 7) | per-tap matrix products |")
    print("| --- | --- | --- | --- |")
    for channels, samples in SHAPES:
        x = torch.randn(64, channels, samples, requires_grad=True)
        conv1d = nn.Conv1d(channels, channels, 7, padding=3, bias=False)
        conv2d = nn.Conv2d(channels, channels, (1, 7), padding=(0, 3), bias=False)
        times = (
            step_ms(conv1d, x),
            step_ms(lambda t, c=conv2d: c(t.unsqueeze(2)).squeeze(2), x),
            step_ms(lambda t, w=conv1d.weight: per_tap(t, w), x),
        )
        print(f"| {channels} × {samples} | " + " | ".join(f"{t:.0f} ms" for t in times) + " |")


if __name__ == "__main__":
    main()
