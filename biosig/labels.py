"""Label tables and the intervals they give, shared by every plugin.

The core turns one labelling style into intervals itself: one class per recording
(``id<TAB>class``) covers the recording's whole span. Events, segments and derived labels
are the plugins' to produce as :class:`~biosig.plugin.LabelledInterval` lists.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from .errors import BiosigError
from .plugin import LabelledInterval, Recording

log = logging.getLogger("biosig")

_HEADER_CLASS_NAMES = {"class", "label", "labels", "target", "y", "category"}


def read_label_table(path: Path) -> dict[str, str]:
    """Read ``id<TAB>class`` lines (a header line is optional; ``#`` lines are comments).

    Commas are accepted where a line has no tab. A line with more than two fields is an
    error naming it, so another labelling style (segments) is never misread as this one. An
    id given twice with different classes is an error naming both lines.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise BiosigError(f"{path}: labels file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BiosigError(f"{path}: cannot read labels file ({exc})") from None
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
) -> list[LabelledInterval]:
    """One interval spanning each labelled recording.

    Ids in the table but not among the recordings, and recordings without a label, are
    counted and logged; no match at all is an error, since training on nothing would
    otherwise fail much later and less clearly.
    """

    def norm(key: str) -> str:
        return key.lower() if case_insensitive else key

    wanted = {norm(k): v for k, v in table.items()}
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
