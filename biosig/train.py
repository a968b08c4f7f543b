"""The training loop: AdamW, cosine schedule with warm-up, gradient clipping, bf16 autocast
on CUDA, label smoothing, focal or cross-entropy loss with class weights (or a class-balanced
sampler), augmentation and mixing on the device, an optional moving average of the weights,
validation split by group, early stopping on validation macro-F1, and resumable runs."""

from __future__ import annotations

import copy
import csv
import dataclasses
import hashlib
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
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight
from tqdm.auto import tqdm

from .atomic import atomic_file
from .augment import build_augmentation
from .checkpoint import save_checkpoint
from .device import autocast
from .errors import BiosigError
from .examples import ExampleStore
from .losses import build_loss
from .metrics import classification_report
from .model import SignalClassifier
from .normalize import normalize

log = logging.getLogger("biosig")

#: ``run_dir/RESUME_DIR`` holds what ``biosig train --resume`` needs: the training state
#: after the last finished epoch (:data:`STATE_FILE`) and the run's settings (written by
#: the CLI).
RESUME_DIR = "resume"
STATE_FILE = "state.pt"
STATE_FORMAT = 1


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
    #: decay of the moving average of the weights (0: none); see :class:`WeightEMA`
    ema: float = 0.0
    #: draw training windows inversely to their class frequency (class weights then off)
    balance: bool = False


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


class WeightEMA:
    """An exponential moving average of a model's weights, kept in a copy of the model.

    After every optimizer step each floating-point parameter moves towards the trained one,
    ``avg = d * avg + (1 - d) * param``, with ``d = min(decay, (1 + n) / (10 + n))`` for the
    ``n``-th update (counted from 0): the warm-up lets the first updates follow the trained
    weights almost fully (``d`` is 0.1, 0.18, 0.25, ...), so a short run is not held near its
    random initialisation; ``d`` reaches ``decay`` = 0.999 after about 9,000 steps, 0.99
    after 900. Buffers (BatchNorm running statistics and its batch counter) are copied, not
    averaged: they are the statistics of the current weights' activations.

    Written here rather than with ``torch.optim.swa_utils.AveragedModel``: that wraps the
    copy (``module.``-prefixed keys and an ``n_averaged`` buffer in its state dict), so the
    checkpoint would need unwrapping, and its buffers are either averaged too or left stale.
    This copy has exactly the model's keys, so it is saved, loaded and evaluated as the
    model itself is.
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.module = copy.deepcopy(getattr(model, "module", model)).eval()
        self.module.requires_grad_(False)
        self.updates = 0

    def current_decay(self) -> float:
        """The decay the next update uses."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        model = getattr(model, "module", model)
        weight = 1.0 - self.current_decay()
        for avg, now in zip(self.module.parameters(), model.parameters(), strict=True):
            if avg.is_floating_point():
                avg.lerp_(now.detach(), weight)
            else:
                avg.copy_(now)
        for avg, now in zip(self.module.buffers(), model.buffers(), strict=True):
            avg.copy_(now)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])


def balanced_probabilities(y: np.ndarray) -> np.ndarray:
    """Drawing probability of each window, inversely proportional to its class's count, so
    that every class present is drawn equally often."""
    counts = np.bincount(y)
    p = 1.0 / counts[y]
    return p / p.sum()


def epoch_order(
    train_idx: np.ndarray, rng: np.random.Generator, probabilities: np.ndarray | None = None
) -> np.ndarray:
    """The training windows of one epoch: a permutation of ``train_idx``, or, given
    ``probabilities`` (see :func:`balanced_probabilities`), as many windows drawn from it
    with replacement."""
    if probabilities is None:
        return rng.permutation(train_idx)
    return rng.choice(train_idx, size=len(train_idx), replace=True, p=probabilities)


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
    state: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``model`` on ``store[train_idx]``, validating on ``store[val_idx]`` each epoch.

    Writes ``run_dir/best`` (highest validation macro-F1), ``run_dir/last``,
    ``run_dir/history.csv`` and ``run_dir/resume/state.pt`` (everything needed to continue
    after the epoch); ``meta`` is stored in each checkpoint with the metrics added. With
    EMA on, validation and both checkpoints use the averaged weights.

    ``state`` (from :func:`load_training_state`) continues a run after its last finished
    epoch: the result is the one the uninterrupted run would have had. Its settings must be
    ``config``'s, except that ``config.epochs`` may be larger (the cosine schedule is then
    stretched over the new total from the current step on).
    """
    if not 0.0 <= config.ema < 1.0:
        raise BiosigError(f"ema must be in [0, 1), got {config.ema}")
    generator = seed_everything(config.seed)
    shuffle_rng = np.random.default_rng(config.seed)
    model.to(device)
    n_classes = len(store.classes)
    weights = None
    # The balanced sampler already corrects the imbalance; weighting too would overcorrect.
    if config.class_weights and not config.balance:
        present = np.unique(store.y[train_idx])
        balanced = compute_class_weight("balanced", classes=present, y=store.y[train_idx])
        full = np.ones(n_classes)
        full[present] = balanced
        weights = torch.tensor(full, dtype=torch.float32, device=device)
    loss_fn = build_loss(
        config.loss, n_classes, weights, config.label_smoothing, gamma=config.focal_gamma
    ).to(device)
    augment = build_augmentation(config.augment, p=config.augment_p) if config.augment else None
    # mixup / cutmix: the batch and one-hot targets are mixed, and the loss gets soft targets
    mixes = bool(getattr(augment, "mixes", False))
    draw_p = balanced_probabilities(store.y[train_idx]) if config.balance else None

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
    ema = WeightEMA(model, config.ema) if config.ema > 0 else None
    evaluated = ema.module if ema is not None else model
    fingerprint = data_fingerprint(store, train_idx, val_idx)

    history: list[dict[str, float]] = []
    best_f1, best_epoch, best_metrics = -1.0, 0, {}
    first_epoch, stopped = 1, False
    if state is not None:
        _check_state(state, config, fingerprint, run_dir)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        _set_rng_state(state["rng"], generator, shuffle_rng)
        history = [dict(row) for row in state["history"]]
        best_f1, best_epoch = float(state["best"]["f1"]), int(state["best"]["epoch"])
        best_metrics = state["best"]["metrics"]
        first_epoch, stopped = int(state["epoch"]) + 1, bool(state["stopped"])
    else:
        # A state left by an earlier run in this directory must not outlive this one's start.
        (Path(run_dir) / RESUME_DIR / STATE_FILE).unlink(missing_ok=True)

    # An early-stopped run has nothing left to train, whatever its number of epochs.
    last_epoch = first_epoch - 1 if stopped else config.epochs
    for epoch in range(first_epoch, last_epoch + 1):
        model.train()
        started = time.perf_counter()
        order = epoch_order(train_idx, shuffle_rng, draw_p)
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
            target: torch.Tensor = y
            if augment is not None:
                x = augment(x, lengths, generator)
                if mixes:
                    x, target = augment.mix(x, lengths, F.one_hot(y, n_classes).float(), generator)
            with autocast(device):
                logits = model(x, lengths)
            loss = loss_fn(logits.float(), target)
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
            if ema is not None:
                ema.update(model)
            running += loss_value * len(idx)
            seen += len(idx)
            bar.update(len(idx))
            bar.set_postfix(loss=f"{running / seen:.4f}")
        bar.close()

        probs = predict_store(evaluated, store, val_idx, normalization, device)
        y_val = store.y[val_idx]
        y_hat = probs.argmax(1)
        report = classification_report(y_val, y_hat, store.classes)
        # Cross entropy of log-probabilities equals that of the logits they came from.
        log_probs = torch.from_numpy(np.log(np.maximum(probs, 1e-12))).to(device)
        val_loss = float(loss_fn(log_probs, torch.from_numpy(y_val).to(device)))
        row = {
            "epoch": epoch,
            "train_loss": running / max(seen, 1),
            "val_loss": val_loss,
            "val_accuracy": float((y_hat == y_val).mean()),
            "val_macro_f1": report["macro_f1"],
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": time.perf_counter() - started,
            **{f"val_f1_{c}": report["per_class"][c]["f1"] for c in store.classes},
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
            best_f1, best_epoch, best_metrics = row["val_macro_f1"], epoch, report
            save_checkpoint(run_dir / "best", evaluated, {**epoch_meta, "metrics": report})
        save_checkpoint(run_dir / "last", evaluated, {**epoch_meta, "metrics": report})
        stopped = epoch - best_epoch >= config.patience
        save_training_state(
            run_dir,
            {
                "format": STATE_FORMAT,
                "epoch": epoch,
                "stopped": stopped,
                "config": dataclasses.asdict(config),
                "data": fingerprint,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "ema": ema.state_dict() if ema is not None else None,
                "rng": _rng_state(generator, shuffle_rng),
                "history": history,
                "best": {"f1": best_f1, "epoch": best_epoch, "metrics": best_metrics},
            },
        )
        if stopped:
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


# ------------------------------------------------------------------------- training state


def save_training_state(run_dir: Path, state: dict[str, Any]) -> None:
    """Write ``run_dir/resume/state.pt`` atomically (a crash leaves the previous one)."""
    with atomic_file(Path(run_dir) / RESUME_DIR / STATE_FILE, "wb") as handle:
        torch.save(state, handle)


def load_training_state(run_dir: Path) -> dict[str, Any] | None:
    """The state :func:`fit` saved after the last finished epoch of the run in ``run_dir``
    (tensors on the CPU), or ``None`` when no epoch finished."""
    path = Path(run_dir) / RESUME_DIR / STATE_FILE
    if not path.exists():
        return None
    try:
        # Our own file, but never unpickled beyond tensors and plain containers.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated zip, a bad pickle, an I/O error: all "corrupt"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BiosigError(f"{path}: cannot read the training state ({first})") from None
    keys = ("epoch", "stopped", "config", "data", "model", "optimizer", "scheduler", "rng")
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise BiosigError(f"{path}: not a biosig training state (format {STATE_FORMAT})")
    missing = [k for k in (*keys, "ema", "history", "best") if k not in state]
    if missing:
        raise BiosigError(f"{path}: damaged training state (no {', '.join(missing)})")
    return state


def data_fingerprint(store: ExampleStore, train_idx: np.ndarray, val_idx: np.ndarray) -> str:
    """A digest of the classes, the labels and the split, to refuse resuming on other data."""
    digest = hashlib.sha256()
    digest.update("\0".join(store.classes).encode())
    digest.update(repr(tuple(store.x.shape)).encode())
    for array in (store.y, train_idx, val_idx):
        digest.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
    return digest.hexdigest()


def _check_state(
    state: dict[str, Any], config: TrainConfig, fingerprint: str, run_dir: Path
) -> None:
    where = Path(run_dir) / RESUME_DIR / STATE_FILE
    saved = dict(state["config"])
    now = dataclasses.asdict(config)
    changed = sorted(k for k in now if k != "epochs" and saved.get(k) != now[k])
    if changed:
        raise BiosigError(
            f"{where}: saved with other settings ({', '.join(changed)}); a run resumes with its own"
        )
    if config.epochs < saved["epochs"]:
        raise BiosigError(
            f"{where}: the run has {saved['epochs']} epochs; resuming can only raise that, "
            f"not lower it to {config.epochs}"
        )
    if state["data"] != fingerprint:
        raise BiosigError(
            f"{where}: the training data differ from the run's (recordings, labels or split "
            "changed since it started); it cannot be resumed on them"
        )


def _rng_state(generator: torch.Generator, shuffle_rng: np.random.Generator) -> dict[str, Any]:
    """Every random stream training draws from, as tensors and plain values."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "augment": generator.get_state(),
        "shuffle": shuffle_rng.bit_generator.state,
    }


def _set_rng_state(
    state: dict[str, Any], generator: torch.Generator, shuffle_rng: np.random.Generator
) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    cuda = state["cuda"]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    elif cuda:
        log.warning(
            "the run's GPU random state (%d devices) cannot be restored on %d: random draws on "
            "the GPU differ from the uninterrupted run's",
            len(cuda),
            torch.cuda.device_count() if torch.cuda.is_available() else 0,
        )
    generator.set_state(state["augment"])
    shuffle_rng.bit_generator.state = state["shuffle"]
