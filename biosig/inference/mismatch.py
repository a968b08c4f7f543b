"""Warnings when the recordings given to a model differ from those it was trained on.

A model reads channels by position and was trained on recordings at some rates: a record
with leads MLII, V5 given to a model of leads I, II is classified without complaint, and so
is one at a rate the plugin's preprocessing was never tried at. Neither is an error (the
names may differ only in spelling; resampling is the plugin's job), but a user should hear
of it once, with both sides named, rather than find out from the results.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from ..checkpoint import CheckpointMeta
from ..plugin.contract import Recording, describe

log = logging.getLogger("biosig")


class InputMismatch:
    """Checks each recording against the model's training inputs; warns once per kind."""

    def __init__(self, meta: CheckpointMeta) -> None:
        self.channels = tuple(meta.channels)
        self.rates = [float(r) for r in (meta.training or {}).get("input_rates", []) or []]
        self._warned: set[str] = set()

    def check(self, recording: Recording) -> None:
        channels = tuple(recording.channels)
        if self.channels and channels != self.channels and "channels" not in self._warned:
            self._warned.add("channels")
            log.warning(
                "%s has channels %s; the model was trained on %s: it reads channels by "
                "position, so check they are the same signals in the same order",
                describe(recording),
                ", ".join(channels),
                ", ".join(self.channels),
            )
        rate = float(recording.fs)
        known = any(math.isclose(rate, r, rel_tol=1e-3) for r in self.rates)
        if self.rates and not known and "rate" not in self._warned:
            self._warned.add("rate")
            log.warning(
                "%s is at %g Hz; the model was trained on recordings at %s Hz: the plugin "
                "resamples it, but its preprocessing was not tried at this rate",
                describe(recording),
                rate,
                ", ".join(f"{r:g}" for r in self.rates),
            )


def warn_if_trained_on(files: list[Path], meta: CheckpointMeta) -> None:
    """Warn when files to score overlap the model's training inputs (the same file, or one
    inside a training folder): scores of recordings a model was trained on overstate what
    it does on new ones, and nothing else would say so."""
    trained = [Path(p) for p in (meta.training or {}).get("inputs", []) or []]
    if not trained:
        return
    overlap = sorted({str(f) for f in files if any(_within(Path(f), t) for t in trained)})
    if overlap:
        shown = ", ".join(overlap[:3]) + (
            f" and {len(overlap) - 3} more" if len(overlap) > 3 else ""
        )
        log.warning(
            "%d of the %d files scored were among the model's training inputs (%s): their "
            "scores overstate what it does on recordings it has not seen",
            len(overlap),
            len(files),
            shown,
        )


def _within(path: Path, trained: Path) -> bool:
    try:
        path, trained = path.resolve(), trained.resolve()
    except OSError:
        return False
    return path == trained or trained in path.parents
