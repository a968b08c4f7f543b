"""Streaming windowed inference in constant memory.

Each recording is read chunk by chunk through its plugin's preprocessor and cut into
windows, on background reader threads (:mod:`biosig.data.readahead`) with bounded queues, so
reading runs ahead of the model while memory stays flat. Windows from consecutive
recordings share batches; the model runs under ``inference_mode`` and autocast; a
recording's result is yielded as soon as its last window has been scored, so outputs are
written while later recordings are still being read.

Batches are assembled in input order whatever the number of readers, so the predictions do
not depend on it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from ..checkpoint import CheckpointMeta
from ..data.normalize import normalize
from ..data.readahead import read_ahead
from ..data.windows import (
    Windows,
    make_preprocessor,
    plan_windows,
    stream_windows,
    to_original,
)
from ..device import autocast, memory_for
from ..errors import BiosigError
from ..plugin.contract import AGGREGATIONS, Plugin, Recording, RecordingError, describe
from .choices import EXPLANATIONS
from .gradients import IG_STEPS, integrated_gradients
from .mismatch import InputMismatch


@dataclass
class RecordingPrediction:
    """Per-window probabilities of one recording, positions in original samples.

    Windows that held missing samples (gaps) are not among them; ``n_skipped`` counts them,
    and ``index`` gives each kept window's position among all planned windows. ``lengths``
    are the windows' valid samples at the model rate (the window length, except for a
    recording shorter than one window). With explanations, ``explanation[index[i]]`` is
    window ``i``'s explanation per model-rate input sample (``[n_planned, window]``, zero
    past the window's ``lengths[i]`` samples), of the kind ``method`` names: attention
    (each row summing to 1) or integrated gradients (signed, each row summing to about the
    predicted class's logit minus the all-zero window's).
    """

    recording: Recording
    starts: np.ndarray
    ends: np.ndarray
    probabilities: np.ndarray  # [n_windows, K]
    n_skipped: int = 0
    explanation: np.ndarray | None = None
    index: np.ndarray | None = None
    lengths: np.ndarray | None = None
    method: str | None = None

    @property
    def attention(self) -> np.ndarray | None:
        """The explanation under its older name (it was attention only)."""
        return self.explanation

    def aggregate(self, method: str = "mean") -> np.ndarray:
        """One probability per class for the whole recording (see :data:`AGGREGATIONS`)."""
        probs = self.probabilities
        if method == "mean":
            return probs.mean(axis=0)
        if method == "geometric":
            log_mean = np.log(np.clip(probs, 1e-12, 1.0)).mean(axis=0)
            weights = np.exp(log_mean - log_mean.max())
            return (weights / weights.sum()).astype(np.float32)
        if method == "vote":
            votes = np.bincount(probs.argmax(1), minlength=probs.shape[1])
            return (votes / max(len(probs), 1)).astype(np.float32)
        raise ValueError(f"unknown aggregation {method!r}; choose from {', '.join(AGGREGATIONS)}")

    def segments(self) -> list[Segment]:
        """Runs of consecutive windows of one predicted class, joined into segments.

        Overlapping windows split the overlap at the midpoint between their centres; where
        windows do not touch (skipped gap windows between them), a segment ends at its last
        window's end, so a gap is never covered by a class.
        """
        best = self.probabilities.argmax(1)
        segments: list[Segment] = []
        for i in range(len(self.starts)):
            start, end = int(self.starts[i]), int(self.ends[i])
            if segments and self.starts[i] <= self.ends[i - 1]:
                boundary = (int(self.starts[i - 1]) + int(self.ends[i - 1]) + start + end) // 4
                if best[i] == best[i - 1]:
                    segments[-1].extend(end, self.probabilities[i, best[i]])
                    continue
                segments[-1].end = boundary
                start = boundary
            segments.append(Segment(start, end, int(best[i]), [self.probabilities[i, best[i]]]))
        return segments


@dataclass
class Segment:
    """Consecutive windows of one class: ``[start, end)`` in original samples."""

    start: int
    end: int
    label: int  # class index
    confidences: list[float]

    def extend(self, end: int, confidence: float) -> None:
        self.end = end
        self.confidences.append(float(confidence))

    @property
    def confidence(self) -> float:
        """Mean probability of the class over the segment's windows."""
        return float(np.mean(self.confidences))


@dataclass
class _Pending:
    """One recording between reading and its result: planned windows, filled by batches."""

    recording: Recording
    model_starts: np.ndarray
    model_lengths: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    probabilities: np.ndarray
    explanation: np.ndarray | None = None
    filled: int = 0
    read_done: bool = False
    skipped: list[np.ndarray] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.read_done and self.filled == len(self.starts)

    def result(self, method: str | None = None) -> RecordingPrediction:
        index = np.arange(len(self.starts))
        if self.skipped:
            keep = np.ones(len(self.starts), dtype=bool)
            keep[np.concatenate(self.skipped)] = False
            index = index[keep]
        full = len(index) == len(self.starts)
        return RecordingPrediction(
            self.recording,
            self.starts if full else self.starts[index],
            self.ends if full else self.ends[index],
            self.probabilities if full else self.probabilities[index],
            n_skipped=len(self.starts) - len(index),
            explanation=self.explanation,
            index=index,
            lengths=self.model_lengths if full else self.model_lengths[index],
            method=method if self.explanation is not None else None,
        )


@dataclass
class _Batch:
    blocks: list[np.ndarray] = field(default_factory=list)
    lengths: list[np.ndarray] = field(default_factory=list)
    owners: list[tuple[_Pending, np.ndarray]] = field(default_factory=list)
    size: int = 0

    def drop(self, owner: _Pending) -> None:
        """Forget the windows of ``owner`` (a recording found damaged part-way)."""
        kept = [i for i, (o, _) in enumerate(self.owners) if o is not owner]
        self.blocks = [self.blocks[i] for i in kept]
        self.lengths = [self.lengths[i] for i in kept]
        self.owners = [self.owners[i] for i in kept]
        self.size = sum(len(index) for _, index in self.owners)


class ExplanationStore(Protocol):
    """Where ``predict_recordings(explain=…)`` puts each recording's per-window explanation
    (attention or gradients).

    :class:`InMemoryExplanations` keeps it in arrays; the CLI's
    :class:`biosig.inference.explain.ExplanationFiles` returns memory-mapped files, so a
    24-hour record's explanation never sits in memory.
    """

    def allocate(self, recording: Recording, n_windows: int, window: int) -> np.ndarray:
        """A zeroed float32 ``[n_windows, window]`` array for ``recording``."""
        ...

    def discard(self, recording: Recording) -> None:
        """Forget ``recording``'s array: it was found damaged and yields no prediction."""
        ...


class InMemoryExplanations:
    """:class:`ExplanationStore` in plain arrays."""

    def allocate(self, recording: Recording, n_windows: int, window: int) -> np.ndarray:
        return np.zeros((n_windows, window), dtype=np.float32)

    def discard(self, recording: Recording) -> None:
        pass


#: The names these had when attention was the only explanation.
AttentionStore = ExplanationStore
InMemoryAttention = InMemoryExplanations


def attention_per_sample(weights: torch.Tensor, factor: int, lengths: np.ndarray, window: int):
    """Attention-pooling weights ``[B, heads, T']`` as ``[B, window]`` weights per input
    sample: heads averaged, each token's weight spread evenly over the valid samples it
    stands for (``factor`` of them, fewer at the end of an item of ``lengths[b]``
    samples), zero past ``lengths[b]``. Each row sums to 1."""
    per_token = weights.float().mean(dim=1).cpu().numpy()  # [B, T']
    lengths = np.asarray(lengths, dtype=np.int64)[:, None]
    samples = np.arange(window)
    token = np.minimum(samples // factor, per_token.shape[1] - 1)
    in_token = np.clip(lengths - token * factor, 0, factor)  # valid samples of each one's token
    valid = samples < lengths
    weight = np.take_along_axis(per_token, np.broadcast_to(token, valid.shape), axis=1)
    return np.where(valid, weight / np.maximum(in_token, 1), 0.0).astype(np.float32)


def predict_recordings(
    model: torch.nn.Module,
    meta: CheckpointMeta,
    plugin: Plugin,
    recordings: Iterable[Recording],
    device: torch.device,
    batch_size: int = 256,
    hop: int | None = None,
    on_damage: Callable[[RecordingError], None] | None = None,
    workers: int = 0,
    chunk_size: int | None = None,
    explain: bool | ExplanationStore = False,
    fixed_shapes: bool = False,
    method: str = "attention",
    steps: int = IG_STEPS,
    on_windows: Callable[[int], None] | None = None,
) -> Iterator[RecordingPrediction]:
    """Yield each recording's window probabilities, in input order, as it completes.

    ``workers`` reader threads read and preprocess recordings ahead of the model (0: on
    this thread, one recording at a time); ``chunk_size`` is the samples read per step.
    Neither changes the predictions. With ``explain`` (``True`` or an
    :class:`ExplanationStore`), each result also carries a per-sample explanation of its
    windows, of the kind ``method`` names (see :data:`EXPLANATIONS`; ``gradient`` takes
    ``steps`` forward and backward passes per batch). ``fixed_shapes`` pads the last,
    partial batch to ``batch_size`` with blank windows, so a compiled model
    (``torch.compile``, CUDA graphs) never sees a new shape and never recompiles. A
    recording whose reading raises :class:`RecordingError` goes to ``on_damage`` (which may
    re-raise) and yields nothing; without ``on_damage`` the error propagates.
    ``on_windows`` is called with the number of windows in each batch scored (a progress
    bar's update: a day-long recording completes only at its end).
    """
    if method not in EXPLANATIONS:
        raise BiosigError(f"unknown explanation {method!r}; choose from {', '.join(EXPLANATIONS)}")
    predictor = _Predictor(
        model, meta, plugin, device, batch_size, hop, chunk_size, explain, fixed_shapes,
        method, steps, on_windows,
    )  # fmt: skip
    yield from predictor.predict(recordings, on_damage, workers)


class _Predictor:
    """Streaming prediction in three parts: a batch assembler (:meth:`_add`) filling
    batches of ``batch_size`` windows across recordings, a scoring step
    (:meth:`_score_batch`) running the model on one batch and handing each window's
    probabilities back to its recording, and the queue of pending recordings, released in
    input order as they fill (:meth:`_finished`)."""

    def __init__(
        self,
        model: torch.nn.Module,
        meta: CheckpointMeta,
        plugin: Plugin,
        device: torch.device,
        batch_size: int,
        hop: int | None,
        chunk_size: int | None,
        explain: bool | ExplanationStore,
        fixed_shapes: bool,
        method: str = "attention",
        steps: int = IG_STEPS,
        on_windows: Callable[[int], None] | None = None,
    ) -> None:
        self.model, self.plugin, self.device = model, plugin, device
        self.on_windows = on_windows
        self.batch_size, self.chunk_size, self.fixed_shapes = batch_size, chunk_size, fixed_shapes
        self.window = meta.window
        self.fs_out = meta.sample_rate
        self.hop = int(hop or meta.hop)
        self.n_channels = meta.model.in_channels
        self.normalization = meta.normalization
        self.n_classes = len(meta.classes)
        self.mismatch = InputMismatch(meta)
        self.store: ExplanationStore | None = None
        if explain:
            self.store = InMemoryExplanations() if explain is True else explain
        self.method, self.steps = method, steps
        self.factor = _downsample_factor(model)
        model.eval()
        self.pending: deque[_Pending] = deque()
        self.batch = _Batch()

    def predict(
        self,
        recordings: Iterable[Recording],
        on_damage: Callable[[RecordingError], None] | None,
        workers: int,
    ) -> Iterator[RecordingPrediction]:
        plans = self._plans(recordings, on_damage)
        for state, blocks in read_ahead(plans, self._read, workers):
            if self.store is not None:
                state.explanation = self.store.allocate(
                    state.recording, len(state.starts), self.window
                )
            self.pending.append(state)
            try:
                for block in blocks:
                    yield from self._add(state, block)
            except RecordingError as error:
                self._abandon(state, error, on_damage)
                continue
            state.read_done = True
            if state.skipped and sum(map(len, state.skipped)) == len(state.starts):
                rec = state.recording
                error = RecordingError(
                    f"{describe(rec)}: every window holds missing samples (gaps)"
                )
                self._abandon(state, error, on_damage)
                continue
            yield from self._finished()
        self._score_batch()
        yield from self._finished()

    def _plans(
        self,
        recordings: Iterable[Recording],
        on_damage: Callable[[RecordingError], None] | None,
    ) -> Iterator[_Pending]:
        """Each recording's plan; one whose claims cannot be planned (a sample count whose
        windows would not fit in memory) is damage, before anything of it is read."""
        for rec in recordings:
            try:
                yield self._plan(rec)
            except RecordingError as error:
                if on_damage is None:
                    raise
                on_damage(error)

    def _plan(self, rec: Recording) -> _Pending:
        """The recording's windows, in model samples and in its own."""
        if len(rec.channels) != self.n_channels:
            raise BiosigError(
                f"{describe(rec)} has {len(rec.channels)} channels; "
                f"the model was trained on {self.n_channels}"
            )
        self.mismatch.check(rec)
        n_model, starts = plan_windows(rec, self.fs_out, self.window, self.hop)
        ends = np.minimum(starts + self.window, n_model)
        # A window that reaches the end of the resampled signal ends at the last original
        # sample, whatever the rounding of the rate conversion says.
        ends_original = np.where(
            ends == n_model, rec.n_samples, to_original(ends, rec, self.fs_out)
        )
        return _Pending(
            rec,
            starts,
            np.clip(n_model - starts, 1, self.window),
            to_original(starts, rec, self.fs_out),
            ends_original,
            np.zeros((len(starts), self.n_classes), dtype=np.float32),
        )

    def _read(self, state: _Pending) -> Iterator[Windows]:
        preprocess = make_preprocessor(self.plugin, state.recording, self.fs_out)
        yield from stream_windows(
            state.recording, preprocess, state.model_starts, self.window, self.chunk_size
        )

    def _add(self, state: _Pending, block: Windows) -> Iterator[RecordingPrediction]:
        """Put a block of the recording's windows into batches, scoring each as it fills."""
        if len(block.skipped):
            state.skipped.append(block.skipped)
            state.filled += len(block.skipped)
        begin = 0
        while begin < len(block.index):
            # Take only what fills the batch, so every batch has batch_size windows.
            part = slice(begin, begin + self.batch_size - self.batch.size)
            self.batch.blocks.append(block.data[part])
            self.batch.lengths.append(block.lengths[part])
            self.batch.owners.append((state, block.index[part]))
            self.batch.size += len(block.index[part])
            begin = part.stop
            if self.batch.size >= self.batch_size:
                self._score_batch()
                yield from self._finished()

    def _abandon(
        self,
        state: _Pending,
        error: RecordingError,
        on_damage: Callable[[RecordingError], None] | None,
    ) -> None:
        """Drop a damaged recording's windows and results, and report it."""
        if on_damage is None:
            raise error
        self.pending.remove(state)
        self.batch.drop(state)
        if self.store is not None:
            self.store.discard(state.recording)
        on_damage(error)

    def _score_batch(self) -> None:
        """Run the model on the assembled batch and hand each window's probabilities (and
        explanation) back to its recording."""
        batch = self.batch
        if not batch.size:
            return
        if self.fixed_shapes and batch.size < self.batch_size:
            blank = self.batch_size - batch.size
            batch.blocks.append(np.zeros((blank, self.n_channels, self.window), dtype=np.float32))
            batch.lengths.append(np.full(blank, self.window, dtype=np.int64))
        host_lengths = np.concatenate(batch.lengths)
        what = f"a batch of {len(host_lengths)} windows of {self.window} samples on {self.device}"
        with memory_for(what, "use a smaller --batch-size"):
            probs, explanation = self._forward(np.concatenate(batch.blocks), host_lengths)
        offset = 0
        for owner, index in batch.owners:
            part = slice(offset, offset + len(index))
            owner.probabilities[index] = probs[part]
            if explanation is not None:
                owner.explanation[index] = explanation[part]
            owner.filled += len(index)
            offset += len(index)
        self.batch = _Batch()
        if self.on_windows is not None:
            self.on_windows(offset)

    def _forward(
        self, windows: np.ndarray, host_lengths: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        x, lengths = torch.from_numpy(windows), torch.from_numpy(host_lengths)
        if self.device.type == "cuda":
            x, lengths = x.pin_memory(), lengths.pin_memory()
        x = x.to(self.device, non_blocking=True)
        lengths = lengths.to(self.device, non_blocking=True)
        weights = None
        attention = self.store is not None and self.method == "attention"
        with torch.inference_mode(), autocast(self.device):
            x = normalize(x, lengths, self.normalization)
            # Called alike with and without explanations apart from the flag, so a compiled
            # model keeps one graph per mode.
            if not attention:
                logits = self.model(x, lengths)
            else:
                logits, weights = self.model(x, lengths, return_attention=True)
        probs = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        if weights is not None:
            return probs, attention_per_sample(weights, self.factor, host_lengths, self.window)
        if self.store is None:
            return probs, None
        # The class the tables report, explained: the argmax of these probabilities.
        target = torch.from_numpy(probs.argmax(1)).to(self.device)
        attribution = integrated_gradients(self.model, x, lengths, target, self.steps)
        return probs, attribution.cpu().numpy().astype(np.float32)

    def _finished(self) -> Iterator[RecordingPrediction]:
        while self.pending and self.pending[0].done:
            yield self.pending.popleft().result(self.method)


def _downsample_factor(model: torch.nn.Module) -> int:
    # A compiled or DDP-wrapped model keeps the classifier as an attribute.
    inner = getattr(model, "_orig_mod", getattr(model, "module", model))
    return int(getattr(inner, "downsample_factor", 1))
