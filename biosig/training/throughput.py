"""Training speed: windows per second through the steps ``biosig train`` takes, and the
floating-point operations each window costs there."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..data.normalize import NormalizationSpec, normalize
from ..device import autocast, memory_for
from ..nn.augment import build_augmentation
from ..nn.losses import build_loss
from .config import AUGMENT, TrainConfig
from .trainer import adamw


def training_step(
    model: torch.nn.Module,
    n_channels: int,
    window: int,
    batch_size: int,
    device: torch.device,
    normalization: NormalizationSpec,
    config: TrainConfig | None = None,
) -> Callable[[], None]:
    """One optimiser step as :class:`~biosig.training.trainer.Trainer` takes it on a batch
    of random windows (two classes): normalisation, the default augmentations (time warping
    and noise), the forward pass under the device's autocast, the label-smoothed loss, the
    backward pass, gradient clipping and AdamW. Reading the windows from the store is left
    out: it is a copy from memory."""
    config = config or TrainConfig()
    generator = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(batch_size, n_channels, window, device=device, generator=generator)
    lengths = torch.full((batch_size,), window, device=device)
    y = torch.randint(0, 2, (batch_size,), device=device, generator=generator)
    augment = build_augmentation(config.augment or list(AUGMENT), p=config.augment_p)
    loss_fn = build_loss(config.loss, 2, label_smoothing=config.label_smoothing).to(device)
    optimizer = adamw(model, config.lr, config.weight_decay)
    what = f"a training batch of {batch_size} windows of {window} samples on {device}"

    def step() -> None:
        with memory_for(what, "use a smaller --batch-size or --window"):
            batch = augment(normalize(x, lengths, normalization), lengths, generator)
            with autocast(device):
                logits = model(batch, lengths)
            loss = loss_fn(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()

    return step


def training_flops_per_window(model: torch.nn.Module, n_channels: int, window: int) -> float:
    """Floating-point operations of the forward and backward pass on one window (a
    multiply-add counts two), counted by ``torch.utils.flop_counter`` on the CPU; the
    optimiser's few operations per parameter are left out, as MFU conventionally does."""
    was = next(model.parameters()).device
    model = model.to("cpu").train()
    x = torch.randn(1, n_channels, window)
    lengths = torch.full((1,), window)
    with FlopCounterMode(display=False) as counter:
        model(x, lengths).sum().backward()
    model.zero_grad(set_to_none=True)
    model.to(was)
    return float(counter.get_total_flops())
