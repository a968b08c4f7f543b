"""Training speed: the optimiser step ``biosig train`` takes, on random windows, for
``bench --train`` to time."""

from __future__ import annotations

from collections.abc import Callable

import torch

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
