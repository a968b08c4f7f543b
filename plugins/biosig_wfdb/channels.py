"""Channel selection by index, shared by the WFDB and EDF readers (names can repeat, so
indices are the only unambiguous choice)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from biosig import RecordingError


def select_channels(
    source: Path, n_channels: int, channels: Sequence[int] | None, holds: str
) -> list[int]:
    """The indices ``channels`` asks for (all when ``None``), each checked against the
    ``n_channels`` the file holds; an error names the file and says what it ``holds``
    (``"record has 2 channels"``)."""
    picked = list(range(n_channels)) if channels is None else [int(c) for c in channels]
    if not picked:
        raise RecordingError(f"{source}: --channels selects no channel")
    for index in picked:
        if not 0 <= index < n_channels:
            raise RecordingError(
                f"{source}: {holds} (indices 0-{n_channels - 1}); --channels asks for {index}"
            )
    return picked
