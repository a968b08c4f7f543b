"""Streaming windowed inference in constant memory.

Each recording is read chunk by chunk through its plugin's preprocessor and cut into
windows; windows from consecutive recordings share batches; the model runs under
``inference_mode`` and autocast; a recording's result is yielded as soon as its last window
has been scored, so outputs are written while later recordings are still being read.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .device import autocast
from .errors import BiosigError
from .normalize import normalize
from .plugin import Plugin, Recording, RecordingError, describe
from .windows import make_preprocessor, model_length, stream_windows, to_original, window_starts


@dataclass
class RecordingPrediction:
    """Per-window probabilities of one recording, positions in original samples.

    Windows that held missing samples (gaps) are not among them; ``n_skipped`` counts them.
    """

    recording: Recording
    starts: np.ndarray
    ends: np.ndarray
    probabilities: np.ndarray  # [n_windows, K]
    n_skipped: int = 0

    @property
    def mean_probabilities(self) -> np.ndarray:
        return self.probabilities.mean(axis=0)

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
    recording: Recording
    starts: np.ndarray
    ends: np.ndarray
    probabilities: np.ndarray
    filled: int = 0
    read_done: bool = False
    skipped: list[np.ndarray] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.read_done and self.filled == len(self.starts)

    def result(self) -> RecordingPrediction:
        if not self.skipped:
            return RecordingPrediction(self.recording, self.starts, self.ends, self.probabilities)
        keep = np.ones(len(self.starts), dtype=bool)
        skipped = np.concatenate(self.skipped)
        keep[skipped] = False
        return RecordingPrediction(
            self.recording,
            self.starts[keep],
            self.ends[keep],
            self.probabilities[keep],
            n_skipped=len(skipped),
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


def predict_recordings(
    model: torch.nn.Module,
    meta: dict[str, Any],
    plugin: Plugin,
    recordings: Iterable[Recording],
    device: torch.device,
    batch_size: int = 256,
    hop: int | None = None,
    on_damage: Callable[[RecordingError], None] | None = None,
) -> Iterator[RecordingPrediction]:
    """Yield each recording's window probabilities, in input order, as it completes.

    A recording whose reading raises :class:`RecordingError` goes to ``on_damage`` (which
    may re-raise) and yields nothing; without ``on_damage`` the error propagates.
    """
    window = int(meta["window"])
    fs_out = float(meta["sample_rate"])
    hop = int(hop or meta["hop"])
    n_channels = int(meta["model"]["in_channels"])
    normalization = meta["normalization"]
    model.eval()
    pending: deque[_Pending] = deque()
    batch = _Batch()

    def run() -> None:
        nonlocal batch
        if not batch.size:
            return
        x = torch.from_numpy(np.concatenate(batch.blocks))
        lengths = torch.from_numpy(np.concatenate(batch.lengths))
        if device.type == "cuda":
            x, lengths = x.pin_memory(), lengths.pin_memory()
        x = x.to(device, non_blocking=True)
        lengths = lengths.to(device, non_blocking=True)
        with torch.inference_mode(), autocast(device):
            logits = model(normalize(x, lengths, normalization), lengths)
        probs = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        offset = 0
        for owner, index in batch.owners:
            owner.probabilities[index] = probs[offset : offset + len(index)]
            owner.filled += len(index)
            offset += len(index)
        batch = _Batch()

    def finished() -> Iterator[RecordingPrediction]:
        while pending and pending[0].done:
            yield pending.popleft().result()

    for rec in recordings:
        if len(rec.channels) != n_channels:
            raise BiosigError(
                f"{describe(rec)} has {len(rec.channels)} channels; "
                f"the model was trained on {n_channels}"
            )
        n_model = model_length(rec, fs_out)
        starts = window_starts(n_model, window, hop)
        ends = np.minimum(starts + window, n_model)
        # A window that reaches the end of the resampled signal ends at the last original
        # sample, whatever the rounding of the rate conversion says.
        ends_original = np.where(ends == n_model, rec.n_samples, to_original(ends, rec, fs_out))
        state = _Pending(
            rec,
            to_original(starts, rec, fs_out),
            ends_original,
            np.zeros((len(starts), len(meta["classes"])), dtype=np.float32),
        )
        pending.append(state)
        try:
            preprocess = make_preprocessor(plugin, rec, fs_out)
            for block in stream_windows(rec, preprocess, starts, window):
                if len(block.skipped):
                    state.skipped.append(block.skipped)
                    state.filled += len(block.skipped)
                begin = 0
                while begin < len(block.index):
                    # Take only what fills the batch, so every batch has batch_size windows.
                    part = slice(begin, begin + batch_size - batch.size)
                    batch.blocks.append(block.data[part])
                    batch.lengths.append(block.lengths[part])
                    batch.owners.append((state, block.index[part]))
                    batch.size += len(block.index[part])
                    begin = part.stop
                    if batch.size >= batch_size:
                        run()
                        yield from finished()
        except RecordingError as error:
            if on_damage is None:
                raise
            on_damage(error)
            pending.remove(state)
            batch.drop(state)
            continue
        state.read_done = True
        if state.skipped and sum(map(len, state.skipped)) == len(starts):
            pending.remove(state)
            error = RecordingError(f"{describe(rec)}: every window holds missing samples (gaps)")
            if on_damage is None:
                raise error
            on_damage(error)
            continue
        yield from finished()
    run()
    yield from finished()
