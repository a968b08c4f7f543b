"""Training-step speed of the ``small`` preset under variants that issue 19 names: eager
float32, AdamW's fused CPU kernel, bf16 autocast, and ``torch.compile``, alone and combined.

    python benchmarks/training_step_variants.py [WINDOW] [VARIANTS]
    python benchmarks/training_step_variants.py 4096 fp32,fused,bf16,bf16-fused,compile,bf16-compile

Each variant builds :func:`biosig.training.throughput.training_step` with the optimiser
and autocast that :mod:`biosig.training.throughput` looks up swapped for the variant's, so
the step is otherwise the one ``bench --train`` times (batch 64, augmentation, clipping).
Prints windows per second over at least 8 s after three warm-up steps, and the first
step's seconds (compilation included).
"""

from __future__ import annotations

import contextlib
import sys
import time

import torch

import biosig.training.throughput as throughput
from biosig.data.normalize import NormalizationSpec
from biosig.inference.bench import timed
from biosig.nn.model import SignalNet, model_config
from biosig.training.trainer import adamw

BATCH = 64


def fused_adamw(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    groups = adamw(model, lr, weight_decay).param_groups
    return torch.optim.AdamW(groups, lr=lr, fused=True)


def main() -> None:
    window = int(sys.argv[1]) if len(sys.argv) > 1 else 4096
    variants = (sys.argv[2] if len(sys.argv) > 2 else "fp32,fused,bf16,compile").split(",")
    for variant in variants:
        torch.manual_seed(0)
        network = SignalNet(model_config("small", 1, 2))
        throughput.adamw = fused_adamw if "fused" in variant else adamw
        if "bf16" in variant:
            throughput.autocast = lambda device: torch.autocast("cpu", dtype=torch.bfloat16)
        else:
            throughput.autocast = lambda device: contextlib.nullcontext()
        model = torch.compile(network) if "compile" in variant else network
        cpu = torch.device("cpu")
        step = throughput.training_step(model, 1, window, BATCH, cpu, NormalizationSpec("window"))
        started = time.perf_counter()
        step()
        first = time.perf_counter() - started
        measured = timed(step, BATCH, cpu, 8.0)
        print(f"{variant}: {measured.per_second:.2f} windows/s (first step {first:.1f} s)")


if __name__ == "__main__":
    main()
