"""Label tables and the intervals they give, shared by every plugin.

The core turns one labelling style into intervals itself: one class per recording
(``id<TAB>class``) covers the recording's whole span. Events, segments and derived labels
are the plugins' to produce as :class:`~biosig.plugin.contract.LabelledInterval` lists.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import BiosigError
from .contract import LabelledInterval, Recording, recording_times

log = logging.getLogger("biosig")

_HEADER_CLASS_NAMES = {"class", "label", "labels", "target", "y", "category"}


def read_label_table(path: Path) -> dict[str, str]:
    """Read ``id<TAB>class`` lines (a header line is optional; ``#`` lines are comments).

    Commas are accepted where a line has no tab. A line with more than two fields is an
    error naming it, so another labelling style (segments) is never misread as this one. An
    id given twice with different classes is an error naming both lines.
    """
    path = Path(path)
    text = _read_text(path)
    table: dict[str, str] = {}
    first_line: dict[str, int] = {}
    seen_content = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        sep = "\t" if "\t" in line else ","
        fields = [f.strip() for f in line.split(sep)]
        if len(fields) < 2 or not fields[0] or not fields[1]:
            raise BiosigError(f"{path}:{number}: expected 'id<TAB>class', got {raw!r}")
        if len(fields) > 2:
            # A segments file (id start stop class) read as id<TAB>class would label every
            # recording with its start sample.
            raise BiosigError(f"{path}:{number}: expected 'id<TAB>class', got {len(fields)} fields")
        if not seen_content:
            seen_content = True
            if fields[1].lower() in _HEADER_CLASS_NAMES:
                continue
        key, label = fields[0], fields[1]
        if key in table and table[key] != label:
            raise BiosigError(
                f"{path}:{number}: id {key!r} is labelled {label!r} here but "
                f"{table[key]!r} on line {first_line[key]}"
            )
        table[key] = label
        first_line.setdefault(key, number)
    if not table:
        raise BiosigError(f"{path}: labels file holds no labels")
    return table


def whole_recording_intervals(
    table: Mapping[str, str],
    recordings: Sequence[Recording],
    source: Path,
    case_insensitive: bool = False,
    resolve_id: Callable[[str], str] | None = None,
) -> list[LabelledInterval]:
    """One interval spanning each labelled recording.

    ``resolve_id`` turns a table's key into a recording id, for plugins whose tables may
    name a recording otherwise (``H5.csv`` for id ``H5``); two keys naming one recording are
    an error. Ids in the table but not among the recordings, and recordings without a
    label, are counted and logged; no match at all is an error, since training on nothing
    would otherwise fail much later and less clearly.
    """

    def norm(key: str) -> str:
        key = resolve_id(key) if resolve_id else key
        return key.lower() if case_insensitive else key

    wanted: dict[str, str] = {}
    key_of: dict[str, str] = {}
    for key, label in table.items():
        rid = norm(key)
        if rid in key_of and resolve_id is not None:
            raise BiosigError(f"{source}: {key_of[rid]!r} and {key!r} both name {rid}")
        key_of[rid] = key
        wanted[rid] = label
    intervals = []
    matched: set[str] = set()
    for rec in recordings:
        label = wanted.get(norm(rec.id))
        if label is None:
            continue
        matched.add(norm(rec.id))
        intervals.append(LabelledInterval(rec.id, 0, rec.n_samples, label))
    if not intervals:
        ids = ", ".join(list(table)[:3])
        recs = ", ".join(r.id for r in recordings[:3]) or "none"
        raise BiosigError(
            f"{source}: none of its {len(table)} ids match a recording "
            f"(labels start {ids}; recordings start {recs})"
        )
    missing = len(wanted) - len(matched)
    unlabelled = len(recordings) - len(intervals)
    if missing:
        log.warning("%s: %d labelled ids match no recording", source, missing)
    if unlabelled:
        log.warning("%s: %d recordings have no label and are left out", source, unlabelled)
    return intervals


def table_intervals(
    path: Path,
    recordings: Sequence[Recording],
    case_insensitive: bool = False,
    resolve_id: Callable[[str], str] | None = None,
) -> list[LabelledInterval]:
    """Intervals from a labels table in either of its two shapes, told apart by the number
    of fields: ``id<TAB>class`` (one class per recording, its whole span) or
    ``id<TAB>start<TAB>stop<TAB>class`` (segments, in original samples). ``resolve_id``
    maps a key to a recording id (see :func:`whole_recording_intervals`)."""
    path = Path(path)
    if _first_row_width(path) == 4:
        return segment_intervals(path, recordings, case_insensitive, resolve_id)
    return whole_recording_intervals(
        read_label_table(path), recordings, path, case_insensitive, resolve_id
    )


def _read_text(path: Path) -> str:
    """A labels file's text, or one line saying why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise BiosigError(f"{path}: labels file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BiosigError(f"{path}: cannot read labels file ({exc})") from None


def _first_row_width(path: Path) -> int:
    for raw in _read_text(path).splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            return len(line.split("\t" if "\t" in line else ","))
    return 0


def segment_intervals(
    path: Path,
    recordings: Sequence[Recording],
    case_insensitive: bool = False,
    resolve_id: Callable[[str], str] | None = None,
) -> list[LabelledInterval]:
    """Read ``id<TAB>start<TAB>stop<TAB>class`` lines (a header line is optional) into
    intervals of the given recordings.

    A segment outside its recording, or with ``stop <= start``, is an error naming its
    line: a mistyped sample number must not quietly label the wrong span.
    """
    path = Path(path)
    by_id = {(r.id.lower() if case_insensitive else r.id): r for r in recordings}
    intervals: list[LabelledInterval] = []
    unmatched: set[str] = set()
    first = True
    text = _read_text(path)
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split("\t" if "\t" in line else ",")]
        if len(fields) != 4:
            raise BiosigError(
                f"{path}:{number}: expected 'id<TAB>start<TAB>stop<TAB>class', "
                f"got {len(fields)} fields"
            )
        key, start_text, stop_text, label = fields
        try:
            start, stop = int(start_text), int(stop_text)
        except ValueError:
            if first:  # a header line
                first = False
                continue
            raise BiosigError(
                f"{path}:{number}: start and stop must be whole sample numbers, "
                f"got {start_text!r} and {stop_text!r}"
            ) from None
        first = False
        rid = resolve_id(key) if resolve_id else key
        rec = by_id.get(rid.lower() if case_insensitive else rid)
        if rec is None:
            unmatched.add(key)
            continue
        if not 0 <= start < stop <= rec.n_samples:
            raise BiosigError(
                f"{path}:{number}: segment {start}-{stop} is not inside recording {key} "
                f"(0-{rec.n_samples})"
            )
        intervals.append(LabelledInterval(rec.id, start, stop, label))
    if not intervals:
        raise BiosigError(f"{path}: no segment belongs to one of the {len(recordings)} recordings")
    if unmatched:
        log.warning("%s: %d ids match no recording", path, len(unmatched))
    return intervals


def parse_span(text: str) -> tuple[float, float]:
    """``"A:B"`` as fractions ``0 <= A < B <= 1`` of a recording's length (``--span``)."""
    first, sep, second = str(text).partition(":")
    try:
        span = (float(first or 0), float(second or 1))
    except ValueError:
        span = (-1.0, -1.0)
    if not sep or not 0 <= span[0] < span[1] <= 1:
        raise BiosigError(
            f"--span {text}: give fractions of each recording as START:END, "
            "0 <= START < END <= 1 (e.g. 0:0.7)"
        )
    return span


def restrict_to_span(
    intervals: Sequence[LabelledInterval],
    recordings: Sequence[Recording],
    span: tuple[float, float],
) -> list[LabelledInterval]:
    """The parts of ``intervals`` inside ``span`` (fractions) of each recording.

    Intervals are clipped to the span; a forecast is kept only when its decision and its
    whole label horizon lie inside, so that a test span never shares a label's future with
    a training span. When every recording carries ``times``, the span is a fraction of the
    calendar they cover together, the same moment for all (SPY's and NVDA's 80 % are one
    date); else of each recording's own length.
    """
    by_id = {r.id: r for r in recordings}
    times = {r.id: recording_times(r) for r in recordings}
    calendar = all(t is not None and len(t) for t in times.values())
    if calendar:
        lo = min(t[0] for t in times.values())
        hi = max(t[-1] for t in times.values())
        moments = (lo + span[0] * (hi - lo), lo + span[1] * (hi - lo))
    kept = []
    for iv in intervals:
        n = by_id[iv.recording_id].n_samples
        if calendar:
            t = times[iv.recording_id]
            a = int(np.searchsorted(t, moments[0], side="left"))
            b = n if span[1] == 1 else int(np.searchsorted(t, moments[1], side="left"))
        else:
            a, b = int(round(span[0] * n)), int(round(span[1] * n))
        if iv.label_end is not None:
            if a <= iv.start and iv.label_end <= b:
                kept.append(iv)
            continue
        start, stop = max(iv.start, a), min(iv.stop, b)
        if stop > start:
            kept.append(LabelledInterval(iv.recording_id, start, stop, iv.label))
    if not kept:
        raise BiosigError(
            f"--span {span[0]:g}:{span[1]:g}: no labelled part of the recordings lies inside it"
        )
    return kept


def warn_unlabelled(
    source: Path | str,
    recordings: Sequence[Recording],
    intervals: Sequence[LabelledInterval],
    hint: str = "",
) -> None:
    """Warn, naming them, about the recordings that labels from a keyword (labels the
    recordings carry, such as ``rhythm``) leave without a single labelled interval: they are
    left out of training and scoring, which a user should not learn by counting. ``hint``
    is the plugin's advice (``Plugin.unlabelled_hint``). Label files warn on their own."""
    if isinstance(source, Path):
        return
    labelled = {iv.recording_id for iv in intervals}
    left = [r.id for r in recordings if r.id not in labelled]
    if not left:
        return
    shown = ", ".join(left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
    advice = f"; {hint}" if hint else ""
    log.warning(
        "--labels %s: %d of %d recordings have no labels and are left out (%s)%s",
        source,
        len(left),
        len(recordings),
        shown,
        advice,
    )
