"""Labels that WFDB and EDF+ recordings carry, as labelled intervals.

Three styles, named by the word given to ``--labels``:

* ``beats``: beat annotations (``.atr``) mapped to the AAMI classes. Each beat is a one-sample
  interval at its fiducial point, so training cuts one window centred on it. Non-beat
  symbols (rhythm changes ``+``, noise ``~``, comments ``"``…) are dropped.
* ``rhythm``: ``+`` annotations whose aux note opens a rhythm, ``(AFIB`` or ``(N``, each
  labelling the span up to the next one (or to the end). A mark at the last sample, or one
  past it (CPSC 2021 writes both), only closes the span before it. The span before the
  first mark, the whole record when it has none, is labelled only when ``unannotated`` names
  a class: CPSC 2021 leaves non-AF records without any rhythm annotation.
* ``events``: EDF+ annotations (onset, duration, text) as segments; a WFDB record's
  ``+``/``(T0`` annotations (the shared EEG record's ``.event``) as in ``rhythm``.

Annotation sample numbers count frames at the header's frame rate; a multi-rate record is
read at a multiple of it, so positions are scaled to the recording's rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from biosig import BiosigError, LabelledInterval

#: AAMI EC57 beat classes by MIT-BIH symbol.
AAMI_CLASSES: dict[str, str] = {
    **dict.fromkeys(("N", "L", "R", "e", "j"), "N"),
    **dict.fromkeys(("A", "a", "J", "S"), "S"),
    **dict.fromkeys(("V", "E"), "V"),
    "F": "F",
    **dict.fromkeys(("/", "f", "Q"), "Q"),
}


def read_annotations(record_path: Path, annotator: str):
    """``wfdb.rdann`` of one record, or one line naming the missing or unreadable file."""
    import wfdb

    path = Path(f"{record_path}.{annotator}")
    if not path.is_file():
        raise BiosigError(f"{path}: annotation file not found (--annotator {annotator})")
    if path.stat().st_size == 0:
        # wfdb reads 0 bytes as a record without events: an AF record would train as N.
        raise BiosigError(f"{path}: empty annotation file (0 bytes), not a record without events")
    try:
        annotation = wfdb.rdann(str(record_path), annotator)
    except Exception as exc:  # wfdb raises bare ValueError/IndexError on a corrupt file
        raise BiosigError(f"{path}: cannot read annotations ({type(exc).__name__}: {exc})") from exc
    # A damaged file can decode into columns of different lengths (wfdb does not check):
    # the marks would then pair with the wrong symbols and notes.
    lengths = {
        name: len(column)
        for name in ("sample", "symbol", "aux_note")
        if (column := getattr(annotation, name, None)) is not None
    }
    if len(set(lengths.values())) > 1:
        counts = ", ".join(f"{n} {name}" for name, n in lengths.items())
        raise BiosigError(f"{path}: damaged annotation file (it decodes to {counts})")
    return annotation


def _positions(samples: np.ndarray, annotation_fs: float | None, recording) -> np.ndarray:
    """Annotation sample numbers at the recording's rate."""
    samples = np.asarray(samples, dtype=np.int64)
    frame_rate = annotation_fs or getattr(recording, "frame_rate", None) or recording.fs
    if frame_rate == recording.fs:
        return samples
    return np.round(samples * (recording.fs / frame_rate)).astype(np.int64)


def beat_intervals(recording, annotation) -> list[LabelledInterval]:
    """One-sample intervals at each beat, labelled with its AAMI class."""
    positions = _positions(annotation.sample, annotation.fs, recording)
    intervals = []
    for position, symbol in zip(positions, annotation.symbol, strict=True):
        label = AAMI_CLASSES.get(symbol)
        if label is not None and 0 <= position < recording.n_samples:
            intervals.append(
                LabelledInterval(recording.id, int(position), int(position) + 1, label)
            )
    return intervals


def rhythm_intervals(
    recording, annotation, unannotated: str | None = None
) -> list[LabelledInterval]:
    """Spans between ``+`` rhythm marks, labelled with the rhythm each one opens."""
    positions = _positions(annotation.sample, annotation.fs, recording)
    aux = annotation.aux_note or [""] * len(positions)
    marks = [
        (int(p), note.strip().strip("\x00").lstrip("(").strip())
        for p, symbol, note in zip(positions, annotation.symbol, aux, strict=True)
        if symbol == "+" and note.strip().startswith("(")
    ]
    return spans(recording, marks, unannotated)


def spans(
    recording, marks: Sequence[tuple[int, str]], unannotated: str | None = None
) -> list[LabelledInterval]:
    """Each ``(position, label)`` mark labels the span to the next mark or the end."""
    n = recording.n_samples
    # a mark at the last sample or past the end opens nothing: it closes the span before it
    opening = sorted((p, label) for p, label in marks if p < n - 1 and label)
    closing = [p for p, _ in marks if p >= n - 1]
    intervals = []
    first = opening[0][0] if opening else (min(closing) if closing else n)
    if unannotated and first > 0:
        intervals.append(LabelledInterval(recording.id, 0, min(first, n), unannotated))
    for i, (start, label) in enumerate(opening):
        stop = opening[i + 1][0] if i + 1 < len(opening) else n
        start = max(start, 0)
        if stop > start:
            intervals.append(LabelledInterval(recording.id, start, min(stop, n), label))
    return intervals


def edf_event_intervals(recording, events: Sequence[tuple[float, float, str]]):
    """EDF+ annotations ``(onset s, duration s, text)`` as intervals; an annotation without
    a duration is an event one sample long."""
    intervals = []
    for onset, duration, text in events:
        label = text.strip()
        start = int(round(onset * recording.fs))
        stop = max(start + 1, int(round((onset + max(duration, 0.0)) * recording.fs)))
        start, stop = max(start, 0), min(stop, recording.n_samples)
        if label and stop > start:
            intervals.append(LabelledInterval(recording.id, start, stop, label))
    return intervals
