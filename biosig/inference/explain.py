"""Explanations written to disk as recordings finish.

``biosig predict --explain [attention|gradient]`` keeps, for every window, a value per
input sample of the window: the attention-pooling weights spread over the samples (see
:func:`biosig.inference.stream.attention_per_sample`), or integrated gradients of the
predicted class (see :mod:`biosig.inference.gradients`). A 24-hour record has tens of
thousands of windows, so the values go straight into a memory-mapped ``.npy`` file under a
temporary name while the recording streams, and are renamed into place when it is
complete: ``<out>/<method>/<recording>.npy``, shape ``[n_windows, window]`` float32, row
``i`` belonging to the recording's ``i``-th row of the windows table.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np

from ..plugin.contract import Recording
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


def explanation_path(out_dir: Path, recording_id: str, method: str = "attention") -> Path:
    """Where ``biosig predict --explain METHOD --out OUT_DIR`` puts a recording's
    explanation: ``OUT_DIR/METHOD/<recording>.npy``."""
    return Path(out_dir) / method / f"{safe_name(recording_id)}.npy"


def attention_path(out_dir: Path, recording_id: str) -> Path:
    """Where ``biosig predict --explain --out OUT_DIR`` puts a recording's attention."""
    return explanation_path(out_dir, recording_id, "attention")


class ExplanationFiles:
    """A :class:`biosig.inference.stream.ExplanationStore` writing
    ``<directory>/<recording>.npy``, whichever the explanation.

    Each array is a memory-mapped ``.npy`` under a temporary name until its recording is
    saved. Use as a context manager: the files of recordings that never finished (damaged
    part-way, or the run failed) are removed at exit, so no half-written file is left.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._open: dict[str, Path] = {}

    def __enter__(self) -> ExplanationFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        for temp in self._open.values():
            temp.unlink(missing_ok=True)
        self._open.clear()

    def _final(self, recording_id: str) -> Path:
        return self.directory / f"{safe_name(recording_id)}.npy"

    def allocate(self, recording: Recording, n_windows: int, window: int) -> np.ndarray:
        final = self._final(recording.id)
        final.parent.mkdir(parents=True, exist_ok=True)
        temp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
        self._open[recording.id] = temp
        return np.lib.format.open_memmap(
            temp, mode="w+", dtype=np.float32, shape=(n_windows, window)
        )

    def discard(self, recording: Recording) -> None:
        temp = self._open.pop(recording.id, None)
        if temp is not None:
            temp.unlink(missing_ok=True)

    def save(self, prediction: RecordingPrediction) -> Path:
        """Move the finished recording's explanation into place, keeping only the rows of
        the windows it predicted (gap windows dropped), in the windows table's order."""
        temp = self._open.pop(prediction.recording.id)
        final = self._final(prediction.recording.id)
        array, index = prediction.explanation, prediction.index
        if index is None or len(index) == len(array):
            array.flush()
            os.replace(temp, final)
            return final
        kept_temp = temp.with_name(temp.name + "-kept")
        kept = np.lib.format.open_memmap(
            kept_temp, mode="w+", dtype=np.float32, shape=(len(index), array.shape[1])
        )
        for begin in range(0, len(index), _COPY_ROWS):
            rows = index[begin : begin + _COPY_ROWS]
            kept[begin : begin + len(rows)] = array[rows]
        kept.flush()
        temp.unlink()
        os.replace(kept_temp, final)
        return final


#: The name this had when attention was the only explanation.
AttentionFiles = ExplanationFiles
