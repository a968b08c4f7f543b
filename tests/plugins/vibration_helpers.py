"""Helpers shared by the ``vibration`` plugin's tests (``tests/test_vibration_*.py``).

A plain module, not a conftest: pytest's default ``prepend`` import mode puts ``tests/``
(it has no ``__init__.py``) on ``sys.path``, so the tests import it by name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from biosig import Recording
from biosig.plugin.contract import iter_recordings
from biosig.plugin.registry import get_plugin

REPO = Path(__file__).resolve().parents[2]
CWRU_PIPELINE = REPO / "pipelines" / "cwru-bearing.toml"
CWRU_MANIFEST = REPO / "pipelines" / "cwru-manifest.csv"
MOTOR_PIPELINE = REPO / "pipelines" / "motor-csv.toml"


def plugin(**options):
    """A fresh ``vibration`` plugin configured with ``options``."""
    p = get_plugin("vibration")
    p.configure(options)
    return p


def open_one(path: Path, **options) -> Recording:
    """The one recording of ``path``, found and opened as the commands do."""
    p = plugin(**options)
    (rec,) = p.open(p.find([path])[0])
    return rec


def records(p, *inputs) -> list[Recording]:
    """Every recording the inputs hold, in order."""
    return list(iter_recordings(p, p.find(list(inputs))))


def read_all(p, *inputs) -> dict[str, Recording]:
    """Every recording the inputs hold, by id."""
    return {rec.id: rec for rec in records(p, *inputs)}


def whole(rec: Recording, chunk: int = 100_000) -> np.ndarray:
    """A recording read whole, ``chunk`` samples at a time."""
    return np.concatenate(list(rec.chunks(chunk)), axis=1)


def write(path: Path, text: str | bytes) -> Path:
    """``text`` written to ``path`` (its folder made), bytes as given, text as UTF-8."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path
