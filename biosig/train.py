"""The training loop: AdamW, cosine schedule with warm-up, gradient clipping, bf16 autocast
on CUDA, label smoothing, focal or cross-entropy loss with class weights, augmentation on
the device, validation split by group and early stopping on validation macro-F1."""

from __future__ import annotations

import csv
import io
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.utils.class_weight import compute_class_weight
from tqdm.auto import tqdm

from .atomic import atomic_file
from .augment import build_augmentation
from .checkpoint import save_checkpoint
from .device import autocast
from .errors import BiosigError
from .examples import ExampleStore
from .losses import build_loss
from .metrics import classification_report, macro_f1
from .model import SignalClassifier
from .normalize import normalize

log = logging.getLogger("biosig")


@dataclass
class TrainConfig:
    """Optimisation settings; every field is a ``biosig train`` option."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.05
    grad_clip: float = 1.0
    label_smoothing: float = 0.1
    loss: str = "ce"
    focal_gamma: float = 2.0
    class_weights: bool = True
    augment: list[str] = field(default_factory=lambda: ["time_warp", "noise"])
    augment_p: float = 0.5
    patience: int = 8
    seed: int = 0


@dataclass
class TrainResult:
    best_epoch: int
    best_metrics: dict[str, Any]
    history: list[dict[str, float]]


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; returns the generator augmentation draws from."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def cosine_with_warmup(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """LR multiplier: linear warm-up, then cosine decay to 1 % of the peak."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def batch_to_device(
    store: ExampleStore, indices: np.ndarray, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows and lengths for ``indices`` (sorted, so a memory-mapped store reads forward)."""
    x = torch.from_numpy(np.asarray(store.x[indices]))
    lengths = torch.from_numpy(store.lengths[indices])
    if device.type == "cuda":
        x, lengths = x.pin_memory(), lengths.pin_memory()
    return x.to(device, non_blocking=True), lengths.to(device, non_blocking=True)


@torch.inference_mode()
def predict_store(
    model: torch.nn.Module,
    store: ExampleStore,
    indices: np.ndarray,
    normalization: dict[str, Any],
    device: torch.device,
    batch_size: int = 256,
) -> np.ndarray:
    """Class probabilities ``[len(indices), K]`` for stored windows."""
    model.eval()
    out = []
    for start in range(0, len(indices), batch_size):
        idx = indices[start : start + batch_size]
        x, lengths = batch_to_device(store, idx, device)
        with autocast(device):
            logits = model(normalize(x, lengths, normalization), lengths)
        out.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, len(store.classes)), dtype=np.float32)


def fit(
    model: SignalClassifier,
    store: ExampleStore,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    config: TrainConfig,
    normalization: dict[str, Any],
    device: torch.device,
    run_dir: Path,
    meta: dict[str, Any],
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> TrainResult:
    """Train ``model`` on ``store[train_idx]``, validating on ``store[val_idx]`` each epoch.

    Writes ``run_dir/best`` (highest validation macro-F1), ``run_dir/last`` and
    ``run_dir/history.csv``; ``meta`` is stored in each checkpoint with the metrics added.
    """
    generator = seed_everything(config.seed)
    shuffle_rng = np.random.default_rng(config.seed)
    model.to(device)
    n_classes = len(store.classes)
    weights = None
    if config.class_weights:
        present = np.unique(store.y[train_idx])
        balanced = compute_class_weight("balanced", classes=present, y=store.y[train_idx])
        full = np.ones(n_classes)
        full[present] = balanced
        weights = torch.tensor(full, dtype=torch.float32, device=device)
    loss_fn = build_loss(
        config.loss, n_classes, weights, config.label_smoothing, gamma=config.focal_gamma
    ).to(device)
    augment = build_augmentation(config.augment, p=config.augment_p) if config.augment else None

    # Decay weight matrices only: not biases, norm scales, or the pooling queries (a 2-D
    # parameter that is a learned direction, not a weight).
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "pool.query" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 or "pool.query" in n]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=config.lr,
    )
    steps_per_epoch = math.ceil(len(train_idx) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        cosine_with_warmup(total_steps, max(1, int(config.warmup_fraction * total_steps))),
    )

    history: list[dict[str, float]] = []
    best_f1, best_epoch, best_metrics = -1.0, 0, {}
    for epoch in range(1, config.epochs + 1):
        model.train()
        started = time.perf_counter()
        order = shuffle_rng.permutation(train_idx)
        running, seen = 0.0, 0
        bar = tqdm(
            total=len(order),
            desc=f"epoch {epoch}/{config.epochs}",
            unit="win",
            disable=None if progress else True,  # None: off when not a terminal
            leave=False,
        )
        for start in range(0, len(order), config.batch_size):
            idx = np.sort(order[start : start + config.batch_size])
            x, lengths = batch_to_device(store, idx, device)
            y = torch.from_numpy(store.y[idx]).to(device, non_blocking=True)
            x = normalize(x, lengths, normalization)
            if augment is not None:
                x = augment(x, lengths, generator)
            with autocast(device):
                logits = model(x, lengths)
            loss = loss_fn(logits.float(), y)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise BiosigError(
                    f"training diverged at epoch {epoch}: the loss is {loss_value}; "
                    "try a lower --lr"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            running += loss_value * len(idx)
            seen += len(idx)
            bar.update(len(idx))
            bar.set_postfix(loss=f"{running / seen:.4f}")
        bar.close()

        probs = predict_store(model, store, val_idx, normalization, device)
        y_val = store.y[val_idx]
        y_hat = probs.argmax(1)
        # Cross entropy of log-probabilities equals that of the logits they came from.
        log_probs = torch.from_numpy(np.log(np.maximum(probs, 1e-12))).to(device)
        val_loss = float(loss_fn(log_probs, torch.from_numpy(y_val).to(device)))
        row = {
            "epoch": epoch,
            "train_loss": running / max(seen, 1),
            "val_loss": val_loss,
            "val_accuracy": float((y_hat == y_val).mean()),
            "val_macro_f1": macro_f1(y_val, y_hat, n_classes),
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": time.perf_counter() - started,
        }
        history.append(row)
        write_history(run_dir / "history.csv", history)
        improved = row["val_macro_f1"] > best_f1
        echo(
            f"epoch {epoch:>3}  loss {row['train_loss']:.4f}  val loss {val_loss:.4f}  "
            f"val acc {row['val_accuracy']:.4f}  val macro-F1 {row['val_macro_f1']:.4f}"
            + ("  *" if improved else "")
        )
        epoch_meta = {**meta, "training": {**meta.get("training", {}), "epoch": epoch}}
        if improved:
            best_f1, best_epoch = row["val_macro_f1"], epoch
            best_metrics = classification_report(y_val, y_hat, store.classes)
            save_checkpoint(run_dir / "best", model, {**epoch_meta, "metrics": best_metrics})
        save_checkpoint(
            run_dir / "last",
            model,
            {**epoch_meta, "metrics": classification_report(y_val, y_hat, store.classes)},
        )
        if epoch - best_epoch >= config.patience:
            echo(f"early stop: no better validation macro-F1 for {config.patience} epochs")
            break
    return TrainResult(best_epoch, best_metrics, history)


def write_history(path: Path, history: list[dict[str, float]]) -> None:
    """Per-epoch metrics as CSV, rewritten atomically after each epoch."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(history[0]))
    writer.writeheader()
    writer.writerows(history)
    with atomic_file(path) as handle:
        handle.write(buffer.getvalue())
