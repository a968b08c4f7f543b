"""Where a file's sample rate comes from, in order of precedence.

1. ``--fs`` (or the pipeline's ``fs``): the user said so.
2. A sidecar ``<file name>.json`` or ``<stem>.json`` holding ``{"fs": …}``, or the fs
   column of ``--manifest`` (the two must agree when both are given).
3. A CSV time column: ``round(1 / median(diff(t)))``. One stepping by whole numbers
   (milliseconds, a counter) or slower than 1 Hz gives no rate: with none given above
   it, that is the error, naming the column and the ways to give the rate.
4. A hint in the file name, else in its parent folder's name (``12k_DE/IR007_0.mat``,
   ``48kHz``, ``1000Hz``).

Nothing found is an error naming the file and the four ways: a wrong rate would scale
every frequency the model learns, so there is never a silent default.
"""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path

from biosig import BiosigError

log = logging.getLogger("biosig")

#: Relative spread of the time steps above which the time column is said to jitter.
JITTER_TOLERANCE = 0.01

# "12k", "48kHz", "1000Hz", "12.8khz": a number starting at a word boundary (an underscore
# counts as one: "data_12k"), then a unit not followed by a letter ("12k_DE" but not "12kg").
_HINT = re.compile(r"(?<![A-Za-z0-9.])(\d+(?:\.\d+)?)\s*(khz|k|hz)(?![A-Za-z])", re.IGNORECASE)

WAYS = (
    'give --fs, a sidecar <file>.json holding {"fs": …}, an fs column in --manifest, '
    "a time column, or a rate in the file or folder name (12k, 1000Hz)"
)


def name_hint(path: Path) -> float | None:
    """The rate a file name states (``…_48k.mat``), else its parent folder's
    (``12k_DE/``), in Hz; ``None`` when neither states one."""
    for name in (Path(path).stem, Path(path).parent.name):
        match = _HINT.search(name)
        if match:
            value, unit = float(match.group(1)), match.group(2).lower()
            rate = value * 1000 if unit in ("k", "khz") else value
            if rate > 0:
                return rate
    return None


def sidecar_rate(path: Path) -> float | None:
    """``fs`` from ``<file name>.json`` (``H5.csv.json``) or ``<stem>.json`` (``H5.json``)
    beside the file; ``None`` when there is no sidecar. A sidecar that cannot be read or
    holds no positive ``fs`` is an error naming it."""
    path = Path(path)
    for sidecar in (path.with_name(path.name + ".json"), path.with_suffix(".json")):
        if sidecar == path or not sidecar.is_file():
            continue
        try:
            meta = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BiosigError(f"{sidecar}: not a readable JSON sidecar ({exc})") from None
        value = meta.get("fs") if isinstance(meta, dict) else None
        rate = _positive(value)
        if rate is None:
            raise BiosigError(f'{sidecar}: expected {{"fs": <Hz>}}, got {meta!r:.80}')
        return rate
    return None


def rate_from_step(step: float) -> float:
    """The sample rate of a median step in seconds: ``round(1 / step)`` in Hz (to 6
    significant digits below 1 Hz)."""
    rate = 1.0 / step
    return float(round(rate)) if rate >= 1 else float(f"{rate:.6g}")


def resolve_rate(
    path: Path,
    flag: float | None,
    manifest: float | None,
    time_column: float | None = None,
    time_problem: str | None = None,
) -> tuple[float, str]:
    """The rate of one file and where it came from (for messages), by the precedence in this
    module's docstring; ``time_column`` is the rate a CSV's time column gave, if any, and
    ``time_problem`` why its time column gives none (whole-number steps: milliseconds or a
    counter), which is the error when no rate is given above it."""
    sidecar = sidecar_rate(path)
    if sidecar is not None and manifest is not None and not math.isclose(sidecar, manifest):
        raise BiosigError(
            f"{path}: its sidecar says {sidecar:g} Hz but --manifest says {manifest:g} Hz"
        )
    given = [(flag or None, "--fs"), (sidecar, "sidecar"), (manifest, "--manifest")]
    rate, source = next(((float(r), s) for r, s in given if r is not None), (None, ""))
    if rate is not None:
        if time_column is not None and abs(time_column - rate) > JITTER_TOLERANCE * rate:
            # Said, not refused: the given rate wins (a time column in the wrong unit).
            log.warning(
                "%s: %s gives %g Hz but its time column %g Hz; using %g Hz",
                path,
                source,
                rate,
                time_column,
                rate,
            )
        return rate, source
    if time_problem is not None:
        raise BiosigError(time_problem)
    if time_column is not None:
        return time_column, "time column"
    hint = name_hint(path)
    if hint is not None:
        return hint, "name"
    raise BiosigError(f"{path}: sample rate unknown; {WAYS}")


def _positive(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        rate = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return rate if math.isfinite(rate) and rate > 0 else None


def parse_rate(text: str, where: str) -> float | None:
    """A rate cell (a manifest's ``fs``): empty is ``None``; otherwise a positive number."""
    text = text.strip()
    if not text:
        return None
    rate = _positive(text)
    if rate is None:
        raise BiosigError(f"{where}: fs must be a positive number of Hz, got {text!r}")
    return rate
