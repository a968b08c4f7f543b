"""Self-supervised pretraining of the classifier's backbone by masked-segment reconstruction.

Contiguous spans of each (normalised) window are replaced by zeros, the backbone encodes
the window as it does for classification (:meth:`SignalNet.encode`), and a light
linear head maps every token back to the ``downsample_factor`` input samples it stands for.
The loss is the mean squared error on the masked valid samples only: padding and the
samples the model could see count for nothing. Unlabelled recordings are read through the
plugin into an :class:`ExampleStore` exactly as labelled ones are (one placeholder class),
so pretraining sees the windows, preprocessing and normalisation that fine-tuning will.

The result is a checkpoint directory like a trained model's, marked ``"pretrained": true``;
:func:`load_pretrained_backbone` copies its backbone into a fresh classifier, whose pooling
and head are then trained on the labels (``biosig train --init``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from ..checkpoint import (
    META,
    WEIGHTS,
    CheckpointMeta,
    read_meta,
    resolve_checkpoint,
    save_checkpoint,
)
from ..data.normalize import NormalizationSpec, normalize
from ..data.store import ExampleStore, build_examples
from ..device import autocast
from ..errors import BiosigError
from ..nn.layers import lengths_to_mask
from ..nn.model import ModelConfig, SignalNet
from ..plugin.contract import LabelledInterval, Plugin, Recording, RecordingError
from .config import PretrainConfig
from .distributed import World
from .trainer import EpochScores, Trainer, batch_to_device

log = logging.getLogger("biosig")

#: The one class every unlabelled window carries in the store.
UNLABELLED = "unlabelled"
#: Checkpoint directory a pretraining run writes inside its run directory.
PRETRAINED_DIR = "pretrained"
#: Top-level modules of :class:`SignalNet` that make up the backbone (everything
#: :meth:`SignalNet.encode` runs); ``pool`` and ``head`` are the classifier's own.
BACKBONE_MODULES = ("stem", "stages", "proj", "blocks", "norm")
#: Model config fields that fix the backbone's tensors or what its weights mean. The rest
#: (``n_classes``, ``pool_heads``, ``dropout``) may differ between pretraining and
#: fine-tuning.
BACKBONE_FIELDS = (
    "in_channels",
    "stem_kernel",
    "stage_channels",
    "stage_strides",
    "blocks_per_stage",
    "kernel_size",
    "dilations",
    "se_reduction",
    "model_dim",
    "n_layers",
    "n_heads",
    "ffn_hidden",
    "rope_base",
)
#: Prefix of the backbone's tensors in a pretraining checkpoint (the Reconstructor's
#: ``backbone`` attribute).
_PREFIX = "backbone."


# ------------------------------------------------------------------------------ masking


def mask_spans(
    lengths: Tensor | Sequence[int],
    T: int,
    ratio: float,
    span: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Contiguous masked spans: ``[B, T]`` bool, ``True`` = hidden from the model.

    Item ``b`` gets ``round(ratio * lengths[b])`` masked samples (at least one, and always
    at least one left visible) in ``k = round(masked / span)`` separate spans (at least 1),
    all inside its first ``lengths[b]`` samples. Span lengths are a uniformly random
    composition of the masked count into ``k`` parts (mean ``span``), the gaps a uniformly
    random one of the visible count, with at least one visible sample between two spans, so
    the ratio is met exactly and the spans never merge. Draws come from ``generator`` (CPU),
    so a seeded generator gives the same masks again.
    """
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"mask ratio must be in (0, 1), got {ratio!r}")
    if span < 1:
        raise ValueError(f"mask span must be at least 1 sample, got {span!r}")
    lengths = torch.as_tensor(lengths).long().cpu()
    if lengths.dim() != 1 or (len(lengths) and (lengths.min() < 0 or lengths.max() > T)):
        raise ValueError(f"lengths must be a 1-D tensor of values in [0, {T}]")
    # NumPy draws, seeded from the torch generator: a few times faster per item than
    # torch's small-tensor ops, and as reproducible.
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    rng = np.random.default_rng(seed)
    mask = np.zeros((len(lengths), T), dtype=bool)
    for b, n in enumerate(lengths.tolist()):
        if n < 2:
            continue  # nothing can be hidden while something stays visible
        masked = min(max(round(ratio * n), 1), n - 1)
        visible = n - masked
        k = min(max(round(masked / span), 1), masked, visible + 1)
        span_lengths = _composition(rng, masked, k)
        # k + 1 gaps (before, between, after), the k - 1 inner ones at least one sample
        # long so that neighbouring spans stay apart.
        gaps = _composition(rng, visible + 2, k + 1) - 1
        gaps[1:-1] += 1
        starts = np.cumsum(gaps[:-1]) + np.cumsum(span_lengths) - span_lengths
        edges = np.zeros(n + 1, dtype=np.int64)
        edges[starts] += 1  # spans are disjoint: no index repeats
        edges[starts + span_lengths] -= 1
        mask[b, :n] = np.cumsum(edges[:n]) > 0
    return torch.from_numpy(mask)


def _composition(rng: np.random.Generator, total: int, parts: int) -> np.ndarray:
    """``parts`` positive integers summing to ``total``, uniformly among all such."""
    cuts = np.sort(rng.choice(total - 1, parts - 1, replace=False)) + 1
    return np.diff(np.concatenate(([0], cuts, [total])))


def reconstruction_loss(
    pred: Tensor, target: Tensor, mask: Tensor, lengths: Tensor | None = None
) -> Tensor:
    """Mean squared error over the masked valid samples (all channels) of ``[B, C, T]``.

    ``mask: [B, T]`` marks the hidden samples; with ``lengths`` samples past an item's length
    are left out even where ``mask`` is set. No masked sample at all gives 0.
    """
    if lengths is not None:
        mask = mask & lengths_to_mask(lengths.to(mask.device), mask.shape[-1])
    weight = mask.unsqueeze(1).to(pred.dtype)
    # where(), not a product, so that NaN/inf anywhere outside the mask cannot leak in.
    squared = torch.where(mask.unsqueeze(1), (pred - target) ** 2, 0.0)
    count = weight.sum() * pred.shape[1]
    return squared.sum() / count.clamp_min(1)


# ------------------------------------------------------------------------------ the model


class Reconstructor(nn.Module):
    """A :class:`SignalNet`'s backbone with a linear head that reconstructs its input.

    ``forward(x, lengths, mask)`` takes a normalised ``[B, C, T]`` batch, sets the masked
    samples (``mask: [B, T]``, all channels) to zero -- the per-channel mean after window or
    dataset normalisation, so a hidden span carries no level of its own -- encodes it, and
    maps each token to its ``downsample_factor`` samples of every channel: ``[B, C, T]``
    aligned with the input. The classifier's pooling and head are kept (unused, untrained)
    so that the backbone stays a whole ``SignalNet`` with its own state-dict names.
    """

    def __init__(self, backbone: SignalNet) -> None:
        super().__init__()
        self.backbone = backbone
        self.factor = backbone.downsample_factor
        channels = backbone.config.in_channels
        self.decoder = nn.Linear(backbone.config.model_dim, self.factor * channels)
        nn.init.trunc_normal_(self.decoder.weight, std=0.02)
        nn.init.zeros_(self.decoder.bias)
        # The classifier's own parts (pooling, head, random-kernel ridge) get no gradient
        # here: frozen, so that DistributedDataParallel expects none from them.
        for name, param in backbone.named_parameters():
            if name.split(".", 1)[0] not in BACKBONE_MODULES:
                param.requires_grad_(False)

    @property
    def config(self) -> ModelConfig:
        return self.backbone.config

    def forward(self, x: Tensor, lengths: Tensor | None, mask: Tensor) -> Tensor:
        b, c, t = x.shape
        x = torch.where(mask.unsqueeze(1), 0.0, x)
        tokens, _ = self.backbone.encode(x, lengths)  # [B, T', D], T' = ceil(longest / f)
        out = self.decoder(tokens)  # [B, T', f * C]
        n_tokens = out.shape[1]
        out = out.view(b, n_tokens, c, self.factor).permute(0, 2, 1, 3)
        out = out.reshape(b, c, n_tokens * self.factor)
        if out.shape[-1] >= t:
            return out[..., :t]
        # encode() drops the steps every item pads: give them back (as zeros, never scored)
        return nn.functional.pad(out, (0, t - out.shape[-1]))

    def loss(self, x: Tensor, lengths: Tensor | None, mask: Tensor) -> Tensor:
        """Reconstruction loss of the normalised batch ``x`` with ``mask`` hidden."""
        with autocast(x.device):
            pred = self(x, lengths, mask)
        return reconstruction_loss(pred.float(), x, mask, lengths)


# ------------------------------------------------------------------------------ data


def unlabelled_intervals(recordings: Sequence[Recording]) -> list[LabelledInterval]:
    """One interval over each whole recording, all of the placeholder class: the store
    then holds every window the hop cuts (one padded window for a recording shorter than
    the window), read and preprocessed as labelled windows are."""
    return [LabelledInterval(rec.id, 0, int(rec.n_samples), UNLABELLED) for rec in recordings]


def build_unlabelled_store(
    plugin: Plugin,
    recordings: Sequence[Recording],
    window: int,
    hop: int,
    fs_out: float,
    store_dir: Path | None = None,
    progress: bool = True,
    on_damage: Callable[[RecordingError], None] | None = None,
) -> ExampleStore:
    """Every window of ``recordings`` (tiled with ``hop``) in an :class:`ExampleStore`."""
    return build_examples(
        plugin,
        recordings,
        unlabelled_intervals(recordings),
        [UNLABELLED],
        window,
        hop,
        fs_out,
        store_dir=store_dir,
        progress=progress,
        on_damage=on_damage,
    )


# ------------------------------------------------------------------------------ training


@dataclass
class PretrainResult:
    val_loss: float
    #: the validation loss of predicting zeros (the mean, after normalisation) everywhere
    val_zero_loss: float
    history: list[dict[str, float]]
    checkpoint: Path


@torch.inference_mode()
def validation_loss(
    model: Reconstructor,
    store: ExampleStore,
    indices: np.ndarray,
    config: PretrainConfig,
    normalization: NormalizationSpec,
    device: torch.device,
    batch_size: int = 256,
) -> tuple[float, float]:
    """``(loss, zero_loss)`` over ``store[indices]``: the reconstruction loss and that of
    predicting zeros, averaged over masked samples. The masks come from a generator seeded
    afresh on each call, so every epoch is scored on the same hidden spans."""
    model.eval()
    generator = torch.Generator().manual_seed(config.seed + 1)
    total = zero = count = 0.0
    for start in range(0, len(indices), batch_size):
        idx = indices[start : start + batch_size]
        x, lengths = batch_to_device(store, idx, device)
        x = normalize(x, lengths, normalization)
        # drawn from the stored lengths: no device round trip
        mask = mask_spans(
            store.lengths[idx], x.shape[-1], config.mask_ratio, config.mask_span, generator
        ).to(device)
        n = float(mask.sum()) * x.shape[1]
        total += float(model.loss(x, lengths, mask)) * n
        zero += float(reconstruction_loss(torch.zeros_like(x), x, mask, lengths)) * n
        count += n
    return total / max(count, 1.0), zero / max(count, 1.0)


def pretrain(
    model: Reconstructor,
    store: ExampleStore,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    config: PretrainConfig,
    normalization: NormalizationSpec,
    device: torch.device,
    run_dir: Path,
    meta: CheckpointMeta,
    progress: bool = True,
    echo: Callable[[str], None] = print,
    state: dict[str, Any] | None = None,
    world: World | None = None,
) -> PretrainResult:
    """Pretrain ``model`` on ``store[train_idx]``, scoring reconstruction of
    ``store[val_idx]`` each epoch, with :func:`~biosig.training.trainer.fit`'s loop (so
    ``state`` resumes a run and ``world`` trains under torchrun, as there).

    After each epoch writes ``run_dir/pretrained`` (the latest weights, with ``meta`` and
    the epoch's losses), ``run_dir/history.tsv`` and the state to resume from.
    """
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise BiosigError("pretraining needs windows on both sides of the validation split")
    trainer = Trainer(
        model, store, train_idx, val_idx, config, Reconstruction(normalization, meta),
        device, run_dir, progress=progress, echo=echo, world=world,
    )  # fmt: skip
    return trainer.start(state)


class Reconstruction:
    """Masked-span reconstruction as a :class:`~biosig.training.trainer.Trainer`
    objective: hidden spans drawn from a stream of their own, the masked mean squared error,
    the validation loss beside that of predicting zeros, and the latest weights kept in
    ``pretrained/`` every epoch (no selection, no early stopping)."""

    ema = 0.0
    draw_p = None

    def __init__(self, normalization: NormalizationSpec, meta: CheckpointMeta) -> None:
        self.normalization, self.meta = normalization, meta

    def attach(self, trainer: Trainer) -> None:
        self.config: PretrainConfig = trainer.config
        # Masks from their own seeded stream: the same run draws the same masks whatever
        # else (dropout, shuffling) consumes random numbers.
        self.masks = torch.Generator().manual_seed(self.config.seed)

    def loss(self, trainer: Trainer, epoch: int, idx: np.ndarray) -> tuple[Tensor, Tensor]:
        config, store = self.config, trainer.store
        x, lengths = batch_to_device(store, idx, trainer.device)
        x = normalize(x, lengths, self.normalization)
        mask = mask_spans(
            store.lengths[idx], x.shape[-1], config.mask_ratio, config.mask_span, self.masks
        ).to(trainer.device, non_blocking=True)
        # Through the (possibly DistributedDataParallel) network's forward.
        with autocast(x.device):
            pred = trainer.net(x, lengths, mask)
        loss = reconstruction_loss(pred.float(), x, mask, lengths)
        return loss, loss

    def clipped(self, trainer: Trainer) -> list[list[torch.nn.Parameter]]:
        # The classifier's pool and head are frozen here; clip what is trained.
        return [[p for p in trainer.model.parameters() if p.requires_grad]]

    def score(self, trainer: Trainer, epoch: int, train_loss: float, started: float) -> EpochScores:
        # Every rank scores all of the (small) validation part: the same masks, the same
        # numbers as one process.
        val_loss, val_zero = validation_loss(
            trainer.evaluated, trainer.store, trainer.val_idx, self.config,
            self.normalization, trainer.device,
        )  # fmt: skip
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "val_zero_loss": val_zero,
            "lr": trainer.optimizer.param_groups[0]["lr"],
            "seconds": time.perf_counter() - started,
        }
        return EpochScores(row, {"val_zero_loss": val_zero}, val_loss)

    def keep(self, epoch: int, scores: EpochScores) -> bool:
        return True  # the latest epoch is the one kept

    def stop(self, epoch: int) -> str | None:
        return None

    def write(self, trainer: Trainer, epoch: int, scores: EpochScores, improved: bool) -> None:
        row = scores.row
        trainer.echo(
            f"epoch {epoch:>3}  loss {row['train_loss']:.4f}  val loss {row['val_loss']:.4f}  "
            f"(zeros: {row['val_zero_loss']:.4f})"
        )
        pretraining = {
            **(self.meta.pretraining or {}),
            "epoch": epoch,
            "train_loss": row["train_loss"],
            "val_loss": row["val_loss"],
            "val_zero_loss": row["val_zero_loss"],
        }
        meta = dataclasses.replace(self.meta, pretraining=pretraining)
        save_checkpoint(trainer.run_dir / PRETRAINED_DIR, trainer.model, meta)

    def state_dict(self) -> dict[str, Any]:
        return {"masks": self.masks.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.masks.set_state(state["masks"])

    def result(self, trainer: Trainer) -> PretrainResult:
        last = trainer.history[-1] if trainer.history else {}
        return PretrainResult(
            float(last.get("val_loss", math.nan)),
            float(last.get("val_zero_loss", math.nan)),
            trainer.history,
            trainer.run_dir / PRETRAINED_DIR,
        )


def pretrain_meta(config: PretrainConfig) -> dict[str, Any]:
    """The ``pretraining`` settings a checkpoint records (losses are added per epoch)."""
    return {**dataclasses.asdict(config), "mask_value": "zero", "loss": "mse_masked"}


# ------------------------------------------------------------------------------ reuse


@dataclass(frozen=True)
class PretrainedSettings:
    """What a pretrained (or trained) checkpoint fixes for a model fine-tuned from it: its
    directory and metadata (``meta.pretrained``: from ``biosig pretrain``, else a trained
    classifier)."""

    path: Path
    meta: CheckpointMeta

    def classifier_config(self, n_classes: int, **overrides: Any) -> ModelConfig:
        """The checkpoint's model config for ``n_classes`` classes; ``overrides`` may set
        fields outside the backbone (``dropout``, ``pool_heads``). Changing a backbone
        field is a :class:`BiosigError`: its weights could not be loaded then."""
        changed = sorted(set(overrides) & set(BACKBONE_FIELDS))
        if changed:
            raise BiosigError(
                f"{self.path}: cannot change {', '.join(changed)} of a pretrained backbone"
            )
        try:
            return dataclasses.replace(self.meta.model, **overrides, n_classes=n_classes)
        except (TypeError, ValueError) as exc:
            raise BiosigError(f"{self.path}: {exc}") from None


def pretrained_settings(path: Path) -> PretrainedSettings:
    """Settings of the checkpoint at ``path`` (a pretraining run, its ``pretrained``
    directory, or any trained model) that ``biosig train --init`` defaults to."""
    directory = _resolve(path)
    return PretrainedSettings(directory, read_meta(directory))


def load_pretrained_backbone(model: SignalNet, path: Path) -> list[str]:
    """Copy the backbone (stem, stages, projection, Transformer blocks, final norm; weights
    and BatchNorm statistics) of the checkpoint at ``path`` into ``model``.

    ``path`` is a pretraining run, its ``pretrained`` directory, or any trained biosig model
    (its backbone is reused the same way). ``model``'s attention pooling and head are left
    as they are. Returns the state-dict names loaded. A checkpoint whose backbone differs
    from ``model``'s (channels, widths, depth, ...) is a :class:`BiosigError` naming the path
    and the difference, as is one missing a backbone tensor.
    """
    settings = pretrained_settings(path)
    directory = settings.path
    theirs = dataclasses.asdict(settings.meta.model)
    ours = dataclasses.asdict(model.config)
    mismatch = []
    for name in BACKBONE_FIELDS:
        a, b = theirs.get(name), ours[name]
        if isinstance(a, list):
            a = tuple(a)
        if a != b:
            mismatch.append(f"{name} {_show(a)} (checkpoint) vs {_show(b)} (model)")
    if mismatch:
        raise BiosigError(
            f"{directory}: its backbone does not fit this model: {'; '.join(mismatch)}"
        )
    try:
        state = load_file(str(directory / WEIGHTS), device="cpu")
    except (OSError, SafetensorError) as exc:
        raise BiosigError(f"{directory / WEIGHTS}: cannot load weights ({exc})") from None
    if settings.meta.pretrained or any(k.startswith(_PREFIX) for k in state):
        state = {k[len(_PREFIX) :]: v for k, v in state.items() if k.startswith(_PREFIX)}

    own = model.state_dict()
    names = [k for k in own if k.split(".", 1)[0] in BACKBONE_MODULES]
    missing = [k for k in names if k not in state]
    wrong = [k for k in names if k in state and state[k].shape != own[k].shape]
    if missing or wrong:
        problems = [f"missing {_few(missing)}"] if missing else []
        problems += [f"other shapes for {_few(wrong)}"] if wrong else []
        raise BiosigError(f"{directory / WEIGHTS}: backbone {'; '.join(problems)}")
    with torch.no_grad():
        for k in names:
            own[k].copy_(state[k])  # state_dict() tensors share storage with the model
    return names


def _resolve(path: Path) -> Path:
    """A checkpoint directory for ``path``: itself, a run's ``best``, or a pretraining
    run's ``pretrained``."""
    path = Path(path)
    for candidate in (path, path / "best", path / PRETRAINED_DIR):
        if (candidate / META).is_file() and (candidate / WEIGHTS).is_file():
            return candidate
    return resolve_checkpoint(path)  # the usual error: not found, or not a model


def _show(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _few(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
