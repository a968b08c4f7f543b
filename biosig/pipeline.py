"""Pipeline files: one TOML per end-to-end task, holding the same keys as the command-line
options (``batch_size`` or ``batch-size``). Flags given on the command line override them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .errors import BiosigError


def load_pipeline(path: Path, allowed: set[str] | None = None) -> dict[str, Any]:
    """Read ``path`` into a flat dict of option values. With ``allowed``, a key outside it is
    an error naming the key, since a typo silently ignored would train the wrong model.

    Tables (``[train]``, ``[model]``…) may group keys for readability; they are flattened.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BiosigError(f"{path}: pipeline file not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BiosigError(f"{path}: not a valid TOML pipeline ({exc})") from None
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        items = value.items() if isinstance(value, dict) else [(key, value)]
        for name, item in items:
            name = name.replace("-", "_")
            if name in ("description", "name"):
                continue
            if allowed is not None and name not in allowed:
                raise unknown_key(path, name, allowed)
            flat[name] = item
    return flat


def unknown_key(path: Path, name: str, allowed: set[str]) -> BiosigError:
    """The error for a pipeline key that no option takes."""
    return BiosigError(f"{path}: unknown key {name!r} (known: {', '.join(sorted(allowed))})")
