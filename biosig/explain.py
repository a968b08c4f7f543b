"""Attention explanations written to disk as recordings finish.

``biosig predict --explain`` keeps, for every window, the attention-pooling weights spread
over the window's input samples (see :func:`biosig.stream.attention_per_sample`). A 24-hour
record has tens of thousands of windows, so the weights go straight into a memory-mapped
``.npy`` file under a temporary name while the recording streams, and are renamed into
place when it is complete: ``<out>/attention/<recording>.npy``, shape
``[n_windows, window]`` float32, row ``i`` belonging to the recording's ``i``-th row of the
windows table.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np

from .plugin import Recording
from .stream import RecordingPrediction

#: Rows copied per step when dropping skipped windows, bounding memory.
_COPY_ROWS = 4096


def safe_name(recording_id: str) -> str:
    """A file name for ``recording_id``: itself when it is one already, else its unsafe
    characters replaced and a short hash of the id added, so two ids never share a name."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", recording_id).lstrip(".") or "_"
    if cleaned == recording_id:
        return cleaned
    return f"{cleaned}-{hashlib.sha1(recording_id.encode()).hexdigest()[:8]}"


def attention_path(out_dir: Path, recording_id: str) -> Path:
    """Where ``biosig predict --explain --out OUT_DIR`` puts a recording's attention."""
    return Path(out_dir) / "attention" / f"{safe_name(recording_id)}.npy"


class AttentionFiles:
    """An :data:`biosig.stream.AttentionStore` backed by ``.npy`` files in ``out_dir``.

    Use as a context manager: files of recordings that never finished (damaged part-way,
    or the run failed) are removed at exit, so no half-written file is left behind.
    """

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self._open: dict[str, tuple[Path, np.memmap]] = {}

    def __enter__(self) -> AttentionFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        for temp, array in self._open.values():
            del array
            temp.unlink(missing_ok=True)
        self._open.clear()

    def __call__(self, recording: Recording, n_windows: int, window: int) -> np.ndarray:
        final = attention_path(self.out_dir, recording.id)
        final.parent.mkdir(parents=True, exist_ok=True)
        temp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        array = np.lib.format.open_memmap(
            temp, mode="w+", dtype=np.float32, shape=(n_windows, window)
        )
        self._open[recording.id] = (temp, array)
        return array

    def save(self, prediction: RecordingPrediction) -> Path:
        """Move the finished recording's attention into place, keeping only the rows of the
        windows it predicted (gap windows dropped)."""
        temp, array = self._open.pop(prediction.recording.id)
        final = attention_path(self.out_dir, prediction.recording.id)
        index = prediction.index
        if index is None or len(index) == len(array):
            array.flush()
            del array
            os.replace(temp, final)
            return final
        kept_temp = temp.with_name(temp.name + ".kept")
        kept = np.lib.format.open_memmap(
            kept_temp, mode="w+", dtype=np.float32, shape=(len(index), array.shape[1])
        )
        for begin in range(0, len(index), _COPY_ROWS):
            rows = index[begin : begin + _COPY_ROWS]
            kept[begin : begin + len(rows)] = array[rows]
        kept.flush()
        del kept, array
        temp.unlink()
        os.replace(kept_temp, final)
        return final
