"""Choosing channels by name: ``--channels accX,accZ`` or ``--channels _DE_time$``.

Each comma-separated item is a column or variable name, or else a regular expression
searched in the names (every name it matches, in file order). Names keep the order the
items give, each once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from biosig import BiosigError, RecordingError


def parse_channels(text: str) -> list[str]:
    """The items of a ``--channels`` value, each checked to be a name or a valid regular
    expression."""
    items = [item.strip() for item in str(text).split(",") if item.strip()]
    for item in items:
        try:
            re.compile(item)
        except re.error as exc:
            raise BiosigError(
                f"--channels {text}: {item!r} is not a regular expression ({exc})"
            ) from None
    return items


def match_channels(
    names: Sequence[str], items: Sequence[str], path: Path, what: str = "columns"
) -> list[int]:
    """Indices into ``names`` that ``items`` choose, in the items' order. An item that
    matches nothing is a :class:`RecordingError` listing the names there are."""
    chosen: list[int] = []
    for item in items:
        if item in names:
            found = [list(names).index(item)]
        else:
            pattern = re.compile(item)
            found = [i for i, name in enumerate(names) if pattern.search(name)]
        if not found:
            raise RecordingError(
                f"{path}: no {what[:-1]} matches {item!r} (its {what}: {', '.join(names)})"
            )
        chosen.extend(i for i in found if i not in chosen)
    return chosen
