"""The training loop: AdamW, cosine schedule with warm-up, gradient clipping, bf16 autocast
on CUDA, label smoothing, focal or cross-entropy loss with class weights (or a class-balanced
sampler), augmentation and mixing on the device, an optional moving average of the weights,
validation split by group, early stopping on validation macro-F1, and resumable runs.

Under ``torchrun --nproc-per-node N`` (see :func:`fit`'s ``world``) the same loop trains with
DistributedDataParallel: every rank draws the same epoch order and trains on its
:func:`~biosig.training.distributed.epoch_shard` of it, validation is shared out and gathered, and
rank 0 alone writes and speaks."""

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight
from torch import Tensor
from tqdm.auto import tqdm

from ..atomic import atomic_file
from ..checkpoint import CheckpointMeta, save_checkpoint
from ..data.normalize import NormalizationSpec, normalize
from ..data.store import ExampleStore
from ..device import autocast, memory_for
from ..errors import BiosigError
from ..metrics import classification_report
from ..nn.augment import build_augmentation
from ..nn.losses import build_loss
from ..nn.model import SignalNet
from .config import TrainConfig
from .distributed import (
    World,
    all_ok,
    all_ok_after,
    broadcast_buffers,
    broadcast_int,
    epoch_shard,
    gather_objects,
    gather_rows,
    reduce_sum,
    shard,
)
from .kernel_features import KernelLogits, fit_random_kernels

log = logging.getLogger("biosig")

#: ``run_dir/RESUME_DIR`` holds what ``biosig train --resume`` needs: the training state
#: after the last finished epoch (:data:`STATE_FILE`) and the run's settings (written by
#: the CLI).
RESUME_DIR = "resume"
STATE_FILE = "state.pt"
#: ``run_dir/resume/settings.json``: the run's request with every default resolved, so that
#: ``--resume`` repeats it exactly (inputs and labels as absolute paths).
SETTINGS_FILE = "settings.json"
STATE_FORMAT = 1


class TrainingObserver(Protocol):
    """Watches a :class:`Trainer` from outside the loop (the data-parallel tests install
    one in every rank, to record what each was given and to fail one mid-epoch)."""

    def epoch_started(
        self, trainer: Trainer, epoch: int, order: np.ndarray, mine: np.ndarray
    ) -> None: ...

    def step(self, trainer: Trainer, epoch: int) -> None: ...

    def finished(self, trainer: Trainer) -> None: ...


#: The observers every :class:`Trainer` tells of its epochs, steps and end; none unless
#: someone (a test) appends one.
OBSERVERS: list[TrainingObserver] = []


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
    normalization: NormalizationSpec,
    device: torch.device,
    batch_size: int = 256,
    kernel_logits: KernelLogits | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Class probabilities ``[len(indices), K]`` for stored windows (their random-kernel
    ridge logits taken from ``kernel_logits`` when given); ``progress`` shows a bar of the
    windows scored, on a terminal."""
    model.eval()
    out = []
    with tqdm(
        total=len(indices), desc="scoring", unit=" windows", leave=False,
        disable=None if progress else True,
    ) as bar:  # fmt: skip
        for start in range(0, len(indices), batch_size):
            idx = indices[start : start + batch_size]
            x, lengths = batch_to_device(store, idx, device)
            ridge = kernel_logits[idx] if kernel_logits is not None else None
            with autocast(device):
                logits = model(normalize(x, lengths, normalization), lengths, kernel_logits=ridge)
            out.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
            bar.update(len(idx))
    return np.concatenate(out) if out else np.zeros((0, len(store.classes)), dtype=np.float32)


def stacked_loss(
    loss_fn: torch.nn.Module,
    logits: torch.Tensor,
    target: torch.Tensor,
    ridge: torch.Tensor | None,
) -> torch.Tensor:
    """The training loss of ``logits`` (the network's head plus the ridge logits ``ridge``,
    when the model has the random-kernel branch): the mean of the loss of the sum, which
    teaches the network what the ridge model gets wrong on windows it has not seen, and of
    the network's own logits alone, so that it also learns the task where the ridge model
    is right on every training window and wrong on new ones."""
    if ridge is None:
        return loss_fn(logits.float(), target)
    together = loss_fn(logits.float(), target)
    alone = loss_fn((logits - ridge.to(logits.dtype)).float(), target)
    return 0.5 * (together + alone)


def mix_batch(
    augment: Any,
    x: torch.Tensor,
    lengths: torch.Tensor,
    targets: torch.Tensor,
    kernel_logits: torch.Tensor | None,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Blend the batch as ``augment`` mixes (mixup, cutmix): signals, float ``targets``
    ``[B, K]`` and, when given, the windows' random-kernel ridge logits, the last two with
    the same weights: a blend's ridge logits are taken to be the blend of its windows'."""
    if kernel_logits is None:
        x, targets = augment.mix(x, lengths, targets, generator)
        return x, targets, None
    k = targets.shape[1]
    x, both = augment.mix(x, lengths, torch.cat([targets, kernel_logits.float()], 1), generator)
    return x, both[:, :k], both[:, k:]


def fit(
    model: SignalNet,
    store: ExampleStore,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    config: TrainConfig,
    normalization: NormalizationSpec,
    device: torch.device,
    run_dir: Path,
    meta: CheckpointMeta,
    progress: bool = True,
    echo: Callable[[str], None] = print,
    state: dict[str, Any] | None = None,
    world: World | None = None,
) -> TrainResult:
    """Train ``model`` on ``store[train_idx]``, validating on ``store[val_idx]`` each epoch.

    ``config``'s schedule settings left ``None`` are sized to ``len(train_idx)`` (see
    :meth:`TrainConfig.sized_for`).

    Writes ``run_dir/best`` (highest validation macro-F1; at equal macro-F1, lowest
    validation loss), ``run_dir/last``,
    ``run_dir/history.tsv`` and ``run_dir/resume/state.pt`` (everything needed to continue
    after the epoch); ``meta`` is stored in each checkpoint with the metrics added. With
    EMA on, validation and both checkpoints use the averaged weights.

    ``state`` (from :func:`load_training_state`) continues a run after its last finished
    epoch: the result is the one the uninterrupted run would have had. Its settings must be
    ``config``'s, except that ``config.epochs`` may be larger (the cosine schedule is then
    stretched over the new total from the current step on).

    ``world`` (several processes, inside :func:`~biosig.training.distributed.process_group`;
    every rank calls ``fit`` with the same data and settings) trains with
    DistributedDataParallel:

    * each epoch every rank draws the same order (the same seeded generator, balanced draws
      included) and trains on its :func:`~biosig.training.distributed.epoch_shard` of it,
      so the ranks see every window once, a few of them twice as padding;
      ``config.batch_size`` is per rank (the global batch is ``world_size`` times it; the
      learning rate is not scaled). Augmentation draws differ between ranks (generator
      seeded ``seed + rank``);
    * validation is shared out (a contiguous part of ``val_idx`` per rank, with rank 0's
      BatchNorm statistics) and the probabilities gathered, so every rank computes the same
      metrics, and rank 0's early-stopping decision is broadcast so all stop together;
    * only rank 0 echoes, shows progress and writes; after writing each epoch the ranks
      agree whether it succeeded (rank 0 failing to write fails them all, none waits), and
      they meet once more before returning. A rank that fails mid-epoch leaves its peers
      in a gradient exchange: it exits, and torchrun stops them;
    * the training state holds every rank's random streams; a run resumes with as many
      processes as it was started with.
    """
    config = config.sized_for(len(train_idx))
    if not len(val_idx):
        # Nothing held out: no epoch can be chosen, nor training stopped, on validation.
        config = dataclasses.replace(config, select=False, patience=config.epochs)
    if not 0.0 <= config.ema < 1.0:
        raise BiosigError(f"ema must be in [0, 1), got {config.ema}")
    # An EnsembleClassifier's networks, each fitted to its own loss.
    config = dataclasses.replace(config, ensemble=max(1, len(getattr(model, "members", ()))))
    objective = Classification(normalization, meta)
    trainer = Trainer(
        model, store, train_idx, val_idx, config, objective, device, run_dir,
        progress=progress, echo=echo, world=world,
    )  # fmt: skip
    return trainer.start(state)


class Objective(Protocol):
    """What a :class:`Trainer` optimises, and how it scores, keeps and saves an epoch:
    :class:`Classification` (``biosig train``) or masked reconstruction
    (:class:`~biosig.training.pretraining.Reconstruction`, ``biosig pretrain``). The trainer
    owns what they share: seeding, the epoch order and its shards, the optimiser and
    schedule, the step (with DDP, clipping and the divergence check), the history, the
    state to resume from and early stopping."""

    #: the decay of the weights' moving average (0: none)
    ema: float
    #: draw each epoch's windows with these probabilities (``None``: a permutation)
    draw_p: np.ndarray | None

    def attach(self, trainer: Trainer) -> None:
        """Fit what must be fitted before the first step; the random streams are seeded."""

    def loss(self, trainer: Trainer, epoch: int, idx: np.ndarray) -> tuple[Tensor, Tensor]:
        """The loss to step on for the training windows ``idx``, and the one to log."""

    def clipped(self, trainer: Trainer) -> list[list[torch.nn.Parameter]]:
        """The parameter groups whose gradient norm is clipped, each on its own."""

    def score(self, trainer: Trainer, epoch: int, train_loss: float, started: float) -> EpochScores:
        """The epoch's history row and scores (every rank gets the same)."""

    def keep(self, epoch: int, scores: EpochScores) -> bool:
        """Whether this epoch is the one to keep so far."""

    def stop(self, epoch: int) -> str | None:
        """Why training stops after ``epoch`` (early), or ``None`` to go on."""

    def write(self, trainer: Trainer, epoch: int, scores: EpochScores, improved: bool) -> None:
        """Say how the epoch went and write its checkpoints (rank 0 only)."""

    def state_dict(self) -> dict[str, Any]:
        """What the objective must carry into a resumed run (kept in the training state)."""

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def result(self, trainer: Trainer) -> Any:
        """What the run returns once it ends."""


@dataclass
class EpochScores:
    """One epoch's scores on the scored windows (validation, or training where none)."""

    row: dict[str, float]
    report: dict[str, Any]
    loss: float


class Trainer:
    """One run's loop, in parts: set up (:meth:`__init__`), :meth:`restore` a saved state,
    then :meth:`run` epochs of :meth:`_train_epoch`, the objective's ``score`` and
    ``keep``, and :meth:`_save`. :func:`fit` and
    :func:`~biosig.training.pretraining.pretrain` are how it is used."""

    def __init__(
        self,
        model: torch.nn.Module,
        store: ExampleStore,
        train_idx: np.ndarray,
        val_idx: np.ndarray,
        config: Any,
        objective: Objective,
        device: torch.device,
        run_dir: Path,
        progress: bool = True,
        echo: Callable[[str], None] = print,
        world: World | None = None,
    ) -> None:
        self.world = world = world or World()
        if not world.is_main:  # rank 0 speaks and writes for the run
            progress, echo = False, _silent
        self.store, self.train_idx, self.val_idx = store, train_idx, val_idx
        self.config, self.objective = config, objective
        self.device, self.run_dir = device, Path(run_dir)
        self.progress, self.echo = progress, echo
        self.generator = seed_everything(config.seed)
        # Different augmentation on each rank; rank 0's (and a single process's) is seeded
        # as before. The epoch order is the same on every rank: each takes its shard of it.
        self.generator.manual_seed(config.seed + world.rank)
        self.shuffle_rng = np.random.default_rng(config.seed)
        self.model = model
        objective.attach(self)  # before the move: the random-kernel fit runs on the CPU
        model.to(device)
        self.optimizer = adamw(model, config.lr, config.weight_decay)
        # Each rank takes ceil(n / world_size) windows an epoch (see epoch_shard).
        per_rank = math.ceil(len(train_idx) / world.world_size)
        total_steps = math.ceil(per_rank / config.batch_size) * config.epochs
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            cosine_with_warmup(total_steps, max(1, int(config.warmup_fraction * total_steps))),
        )
        self.ema = WeightEMA(model, objective.ema) if objective.ema > 0 else None
        self.evaluated = self.ema.module if self.ema is not None else model
        self.fingerprint = data_fingerprint(store, train_idx, val_idx)
        self.history: list[dict[str, float]] = []
        self.first_epoch, self.stopped = 1, False

    def start(self, state: dict[str, Any] | None) -> Any:
        """Run from ``state`` (a resumed run) or from the start."""
        if state is not None:
            self.restore(state)
        elif self.world.is_main:
            # A state left by an earlier run in this directory must not outlive this one's.
            (self.run_dir / RESUME_DIR / STATE_FILE).unlink(missing_ok=True)
        return self.run()

    def restore(self, state: dict[str, Any]) -> None:
        """Continue after the last finished epoch of a saved training state."""
        _check_state(state, self.config, self.fingerprint, self.run_dir, self.world)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        ranks_rng = state.get("rng_ranks")
        rng = ranks_rng[self.world.rank] if ranks_rng else state["rng"]
        _set_rng_state(rng, self.generator, self.shuffle_rng)
        self.history = [dict(row) for row in state["history"]]
        try:
            self.objective.load_state_dict(state)
        except (KeyError, TypeError, ValueError) as exc:  # what the objective keeps is gone
            where = self.run_dir / RESUME_DIR / STATE_FILE
            raise BiosigError(f"{where}: damaged training state ({exc!r})") from None
        self.first_epoch, self.stopped = int(state["epoch"]) + 1, bool(state["stopped"])

    def run(self) -> Any:
        """Train the remaining epochs, stopping early where the objective says."""
        # Wrapping broadcasts rank 0's weights and buffers to every rank (equal already: the
        # same seed, or the same state); from here on every step exchanges the gradients.
        self.net: torch.nn.Module = self.model
        if self.world.is_distributed:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)
        # An early-stopped run has nothing left to train, whatever its number of epochs.
        last_epoch = self.first_epoch - 1 if self.stopped else self.config.epochs
        for epoch in range(self.first_epoch, last_epoch + 1):
            started = time.perf_counter()
            train_loss = self._train_epoch(epoch)
            # Each rank's last forward pass updated its BatchNorm statistics from its own
            # batch; rank 0's are the ones saved, so every rank scores with them.
            broadcast_buffers(self.model, self.world)
            if self.ema is not None:
                broadcast_buffers(self.ema.module, self.world)
            scores = self.objective.score(self, epoch, train_loss, started)
            self.history.append(scores.row)
            improved = self.objective.keep(epoch, scores)
            why = self.objective.stop(epoch)
            self.stopped = why is not None
            self._save(epoch, scores, improved)
            # Every rank computed the same scores from the same gathered outputs; rank 0's
            # decision is still the one taken, so the ranks cannot part ways.
            self.stopped = bool(broadcast_int(int(self.stopped), self.world))
            if self.stopped:
                self.echo(f"early stop: {why}")
                break
        # The barrier before shutdown: no rank leaves the group while another still trains.
        if not all_ok(True, self.world):
            raise BiosigError("another process of this run failed (its error is above)")
        for observer in OBSERVERS:
            observer.finished(self)
        return self.objective.result(self)

    def _train_epoch(self, epoch: int) -> float:
        """One pass over this rank's share of the epoch's order; the mean training loss."""
        self.net.train()
        order = epoch_order(self.train_idx, self.shuffle_rng, self.objective.draw_p)
        mine = epoch_shard(order, self.world)
        for observer in OBSERVERS:
            observer.epoch_started(self, epoch, order, mine)
        running, seen = 0.0, 0
        bar = tqdm(
            total=len(mine) * self.world.world_size,  # every rank's windows, padding included
            desc=f"epoch {epoch}/{self.config.epochs}",
            unit="win",
            disable=None if self.progress else True,  # None: off when not a terminal
            leave=False,
        )
        for start in range(0, len(mine), self.config.batch_size):
            idx = np.sort(mine[start : start + self.config.batch_size])
            for observer in OBSERVERS:
                observer.step(self, epoch)
            loss_sum, count = self._step(epoch, idx)
            running += loss_sum
            seen += int(count)
            bar.update(int(count))
            bar.set_postfix(loss=f"{running / seen:.4f}")
        bar.close()
        return running / max(seen, 1)

    def _step(self, epoch: int, idx: np.ndarray) -> tuple[float, float]:
        """One optimiser step on the windows ``idx``; their loss summed over the ranks, and
        how many windows that was."""
        what = f"a training batch of {len(idx)} windows on {self.device}"
        advice = "use a smaller --batch-size (or --window)"
        with memory_for(what, advice):
            loss, logged = self.objective.loss(self, epoch, idx)
        # Summed over the ranks (one value each, before the backward pass) so that every
        # rank logs the loss of the global batch and, should one rank's loss diverge, all
        # stop here together instead of one leaving the others in the gradient exchange.
        loss_sum, count = reduce_sum([logged.item() * len(idx), len(idx)], self.world)
        if not math.isfinite(loss_sum / count):
            raise BiosigError(
                f"training diverged at epoch {epoch}: the loss is {loss_sum / count}; "
                "try a lower --lr"
            )
        self.optimizer.zero_grad(set_to_none=True)
        with memory_for(what, advice):
            loss.backward()
        for group in self.objective.clipped(self):
            torch.nn.utils.clip_grad_norm_(group, self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        return loss_sum, count

    def _save(self, epoch: int, scores: EpochScores, improved: bool) -> None:
        """History, checkpoints and the state to resume from, written by rank 0; every rank
        learns whether that succeeded."""
        # Every rank's random streams, for --resume (a collective: every rank, every epoch).
        rng = gather_objects(_rng_state(self.generator, self.shuffle_rng), self.world)
        written = False
        try:
            if self.world.is_main:  # the others' echo is silent, and they write nothing
                write_history(self.run_dir / "history.tsv", self.history)
                self.objective.write(self, epoch, scores, improved)
                save_training_state(self.run_dir, self._state(epoch, rng))
            written = True
        finally:
            # Rank 0 alone writes; the others wait here to learn whether it could, so that a
            # full disk fails every rank at once instead of leaving them in the next epoch.
            everyone = all_ok_after(written, self.world)
        if not everyone:
            raise BiosigError("another process of this run failed (its error is above)")

    def _state(self, epoch: int, rng: list[Any]) -> dict[str, Any]:
        """Everything needed to continue after ``epoch`` as if the run had not stopped."""
        world = self.world
        return {
            "format": STATE_FORMAT,
            "epoch": epoch,
            "stopped": self.stopped,
            "config": dataclasses.asdict(self.config),
            "data": self.fingerprint,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "rng": rng[0],
            "world_size": world.world_size,
            "rng_ranks": rng if world.is_distributed else None,
            "history": self.history,
            **self.objective.state_dict(),
        }


@dataclass
class _Best:
    """The kept epoch so far: highest macro-F1, at equal macro-F1 lowest loss."""

    f1: float = -1.0
    loss: float = math.inf
    epoch: int = 0
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)


class Classification:
    """The classifier's objective: its loss (class weights, label smoothing, augmentation
    and mixing, the random-kernel ridge logits stacked in), macro-F1 on the validation
    windows, ``best/`` and ``last/`` checkpoints, early stopping on macro-F1."""

    def __init__(self, normalization: NormalizationSpec, meta: CheckpointMeta) -> None:
        self.normalization, self.meta = normalization, meta
        self.best = _Best()

    def attach(self, trainer: Trainer) -> None:
        config, store, model = trainer.config, trainer.store, trainer.model
        self.config, self.ema = config, config.ema
        # With nothing held out (the small-data recipe) each epoch is scored on the training
        # windows, unaugmented: nothing is selected on that, but it shows whether the network
        # learnt at all.
        val_idx = trainer.val_idx
        self.scored_idx = val_idx if len(val_idx) else trainer.train_idx
        self.scored = "val" if len(val_idx) else "train-set"
        # The random-kernel branch (biases, ridge model) is fitted to the training windows
        # once, before any step, and so are the ridge logits added to each window's.
        self.kernel_logits = fit_random_kernels(
            model, store, trainer.train_idx, self.scored_idx, self.normalization, config.seed,
            config.label_smoothing, trainer.echo,
        )  # fmt: skip
        if self.kernel_logits is not None:
            self.kernel_logits.to(trainer.device)
        # An EnsembleClassifier's networks, each fitted to its own loss; () for one network.
        self.members = tuple(getattr(model, "members", ()))
        self.loss_fn = _loss_for(config, store, trainer.train_idx, trainer.device)
        self.augment = (
            build_augmentation(config.augment, p=config.augment_p) if config.augment else None
        )
        # mixup / cutmix: the batch and one-hot targets are mixed, and the loss gets soft targets
        self.mixes = bool(getattr(self.augment, "mixes", False))
        self.draw_p = balanced_probabilities(store.y[trainer.train_idx]) if config.balance else None
        self.my_val = np.asarray(shard(self.scored_idx, trainer.world), dtype=np.int64)

    def loss(self, trainer: Trainer, epoch: int, idx: np.ndarray) -> tuple[Tensor, Tensor]:
        store, device = trainer.store, trainer.device
        x, lengths = batch_to_device(store, idx, device)
        y = torch.from_numpy(store.y[idx]).to(device, non_blocking=True)
        x = normalize(x, lengths, self.normalization)
        target: torch.Tensor = y
        ridge = self.kernel_logits[idx] if self.kernel_logits is not None else None
        if self.augment is not None:
            x = self.augment(x, lengths, trainer.generator)
            if self.mixes:
                one_hot = F.one_hot(y, len(store.classes)).float()
                x, target, ridge = mix_batch(
                    self.augment, x, lengths, one_hot, ridge, trainer.generator
                )
        if self.members:
            # Each member's own loss, summed: every member gets the gradient it would get
            # trained alone (and is clipped alone).
            with autocast(device):
                logits = trainer.net(x, lengths, per_member=True, kernel_logits=ridge)
            losses = torch.stack([stacked_loss(self.loss_fn, m, target, ridge) for m in logits])
            return losses.sum(), losses.mean()
        with autocast(device):
            logits = trainer.net(x, lengths, kernel_logits=ridge)
        loss = stacked_loss(self.loss_fn, logits, target, ridge)
        return loss, loss

    def clipped(self, trainer: Trainer) -> list[list[torch.nn.Parameter]]:
        return [list(part.parameters()) for part in self.members or (trainer.model,)]

    def score(self, trainer: Trainer, epoch: int, train_loss: float, started: float) -> EpochScores:
        """Macro-F1 and the rest on the scored windows, shared out among the ranks and
        gathered."""
        store, device = trainer.store, trainer.device
        probs = predict_store(
            trainer.evaluated, store, self.my_val, self.normalization, device,
            kernel_logits=self.kernel_logits,
        )  # fmt: skip
        probs = gather_rows(probs, trainer.world)
        y_val = store.y[self.scored_idx]
        y_hat = probs.argmax(1)
        report = classification_report(y_val, y_hat, store.classes)
        # Cross entropy of log-probabilities equals that of the logits they came from.
        log_probs = torch.from_numpy(np.log(np.maximum(probs, 1e-12))).to(device)
        val_loss = float(self.loss_fn(log_probs, torch.from_numpy(y_val).to(device)))
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "val_accuracy": float((y_hat == y_val).mean()),
            "val_macro_f1": report["macro_f1"],
            "lr": trainer.optimizer.param_groups[0]["lr"],
            "seconds": time.perf_counter() - started,
            **{f"val_f1_{c}": report["per_class"][c]["f1"] for c in store.classes},
        }
        return EpochScores(row, report, val_loss)

    def keep(self, epoch: int, scores: EpochScores) -> bool:
        """Whether this epoch is the one to keep (every epoch, without selection)."""
        f1 = scores.row["val_macro_f1"]
        # A tie in macro-F1 (common on a small validation set, where it soon reaches 1.0)
        # goes to the lower validation loss: the more confident correct model.
        improved = not self.config.select or (
            f1 > self.best.f1 or (f1 == self.best.f1 and scores.loss < self.best.loss)
        )
        if improved:
            self.best = _Best(f1, scores.loss, epoch, scores.report)
        return improved

    def stop(self, epoch: int) -> str | None:
        if epoch - self.best.epoch < self.config.patience:
            return None
        return (
            "no better validation macro-F1 (nor, at equal macro-F1, lower loss) for "
            f"{self.config.patience} epochs"
        )

    def write(self, trainer: Trainer, epoch: int, scores: EpochScores, improved: bool) -> None:
        row, scored = scores.row, self.scored
        trainer.echo(
            f"epoch {epoch:>3}  loss {row['train_loss']:.4f}  {scored} loss "
            f"{scores.loss:.4f}  {scored} acc {row['val_accuracy']:.4f}  {scored} macro-F1 "
            f"{row['val_macro_f1']:.4f}" + ("  *" if improved else "")
        )
        meta = dataclasses.replace(
            self.meta,
            training={**(self.meta.training or {}), "epoch": epoch},
            metrics=scores.report,
        )
        if improved:
            save_checkpoint(trainer.run_dir / "best", trainer.evaluated, meta)
        save_checkpoint(trainer.run_dir / "last", trainer.evaluated, meta)

    def state_dict(self) -> dict[str, Any]:
        best = self.best
        return {
            "best": {"f1": best.f1, "loss": best.loss, "epoch": best.epoch, "metrics": best.metrics}
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        best = state["best"]
        self.best = _Best(
            float(best["f1"]), float(best.get("loss", math.inf)), int(best["epoch"]),
            best["metrics"],
        )  # fmt: skip

    def result(self, trainer: Trainer) -> TrainResult:
        return TrainResult(self.best.epoch, self.best.metrics, trainer.history)


def _loss_for(
    config: TrainConfig, store: ExampleStore, train_idx: np.ndarray, device: torch.device
) -> torch.nn.Module:
    """The configured loss, with balanced class weights unless the sampler balances."""
    n_classes = len(store.classes)
    weights = None
    # The balanced sampler already corrects the imbalance; weighting too would overcorrect.
    if config.class_weights and not config.balance:
        present = np.unique(store.y[train_idx])
        balanced = compute_class_weight("balanced", classes=present, y=store.y[train_idx])
        full = np.ones(n_classes)
        full[present] = balanced
        weights = torch.tensor(full, dtype=torch.float32, device=device)
    return build_loss(
        config.loss, n_classes, weights, config.label_smoothing, gamma=config.focal_gamma
    ).to(device)


def adamw(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW decaying weight matrices only: not biases, norm scales, or the pooling queries
    (a 2-D parameter that is a learned direction, not a weight). Training and pretraining
    both use it."""
    named = list(model.named_parameters())
    decay = [p for n, p in named if p.ndim >= 2 and "pool.query" not in n]
    no_decay = [p for n, p in named if p.ndim < 2 or "pool.query" in n]
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=lr,
    )


def _silent(*_: Any, **__: Any) -> None:
    """``echo`` for ranks other than 0."""


def write_history(path: Path, history: list[dict[str, float]]) -> None:
    """Per-epoch metrics as a tab-separated table, rewritten atomically after each epoch."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(history[0]), delimiter="\t")
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
    missing = [k for k in (*keys, "ema", "history") if k not in state]
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
    state: dict[str, Any],
    config: TrainConfig,
    fingerprint: str,
    run_dir: Path,
    world: World | None = None,
) -> None:
    where = Path(run_dir) / RESUME_DIR / STATE_FILE
    # Each rank's shard of every epoch, and its augmentation draws, depend on the number of
    # processes: with another, the run would not end where the uninterrupted one does.
    # (States written before training could run on several processes have no world_size.)
    saved_world = int(state.get("world_size") or 1)
    now_world = (world or World()).world_size
    if saved_world != now_world:
        raise BiosigError(
            f"{where}: the run was trained by {_processes(saved_world)}; resume it with as "
            f"many (under torchrun), not {_processes(now_world)}"
        )
    # Settings a state predates had the value that reproduces what it did then.
    saved = {"ensemble": 1, "select": True, **state["config"]}
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


def _processes(n: int) -> str:
    return f"{n} process" if n == 1 else f"{n} processes"


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
