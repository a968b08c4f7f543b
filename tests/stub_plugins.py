"""A plugin for tests that hand recordings over in memory: it finds what it is given,
opens nothing and labels nothing. Tests subclass it with their own name and defaults."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from biosig import LabelledInterval, Plugin, Recording


class InMemoryPlugin(Plugin):
    def find(self, inputs: Sequence[str | Path]) -> list[Path]:
        return [Path(p) for p in inputs]

    def open(self, path: Path) -> Iterator[Recording]:
        return iter(())

    def labels(self, source: Path, recordings: Sequence[Recording]) -> list[LabelledInterval]:
        return []
