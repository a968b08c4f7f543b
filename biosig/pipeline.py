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

#: The tables that group the commands' own options, and the options each holds. Keys may
#: also sit at the top level (a flat file); the plugin's options go at the top level or in
#: any other table (``[preprocessing]``).
SECTIONS: dict[str, frozenset[str]] = {
    "model": frozenset(
        {"preset", "sample_rate", "window", "hop", "normalization", "kernel_features",
         "drop_path", "fit_model", "ensemble"}
    ),
    "train": frozenset(
        {"epochs", "batch_size", "lr", "label_smoothing", "loss", "class_weights", "balance",
         "ema", "augment", "val_fraction", "split", "span", "patience", "seed", "strict",
         "select", "init", "device"}
    ),
    "pretrain": frozenset({"mask_ratio", "mask_span"}),
}  # fmt: skip
#: Other spellings of an option (``--normalize`` is ``--normalization``).
ALIASES = {"normalize": "normalization"}
#: Keys a pipeline may give at the top level only: what to read, and where to write.
TOP_LEVEL = frozenset({"plugin", "input", "labels", "out", "force", "resume"})
#: Options that name files or folders. A pipeline's relative value is read from the
#: pipeline file's folder, so that a pipeline means the same from any working directory
#: (``labels`` too, unless it is one of the plugin's keywords, and a plugin's own options
#: declared with ``path=True``).
PATH_OPTIONS = frozenset({"input", "out", "init", "resume"})


def relative_to_pipeline(pipeline: Path, value: str | Path) -> str:
    """``value`` from the pipeline file ``pipeline``: an absolute path (or ``~``) as it is,
    a relative one from the file's folder."""
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else Path(pipeline).parent / path)


PLUGIN_TABLE = "preprocessing"
#: Top-level keys that describe the file and are no option.
DESCRIPTIVE = ("description", "name")


def load_pipeline(path: Path, allowed: set[str] | None = None) -> dict[str, Any]:
    """Read ``path`` into a flat dict of option values. With ``allowed``, a key outside it is
    an error naming the key, since a typo silently ignored would train the wrong model.

    Tables group keys (:data:`SECTIONS`; any other table, such as ``[preprocessing]``,
    holds the plugin's options) and are flattened; a key in a table that is not its own
    and a key given twice (in two tables, or as ``batch_size`` and ``batch-size``) are
    errors naming it.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BiosigError(f"{path}: pipeline file not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BiosigError(f"{path}: not a valid TOML pipeline ({exc})") from None
    flat: dict[str, Any] = {}
    found_in: dict[str, str] = {}
    for key, value in raw.items():
        table = key if isinstance(value, dict) else None
        items = value.items() if table else [(key, value)]
        for spelled, item in items:
            name = spelled.replace("-", "_")
            if table is None and name in DESCRIPTIVE:
                continue
            _check_table(path, table, name)
            if allowed is not None and name not in allowed:
                raise unknown_key(path, name, allowed)
            where = f"[{table}]" if table else "the top level"
            if name in flat:
                raise BiosigError(f"{path}: {name} is given twice ({found_in[name]} and {where})")
            flat[name], found_in[name] = item, where
    return flat


def _check_table(path: Path, table: str | None, name: str) -> None:
    """A key inside one of :data:`SECTIONS` must be one of its; any other table
    (``[preprocessing]``, ``[plugin-options]``…) holds the plugin's options."""
    if table is None:
        return
    if name in TOP_LEVEL:
        raise BiosigError(f"{path}: {name} belongs at the top level, not in [{table}]")
    name = ALIASES.get(name, name)
    home = next((t for t, names in SECTIONS.items() if name in names), None)
    if home == table:
        return
    if home is not None:
        raise BiosigError(f"{path}: {name} belongs in [{home}], not [{table}]")
    if table in SECTIONS:
        raise BiosigError(
            f"{path}: {name} is no [{table}] option; the plugin's options go at the top "
            f"level or in [{PLUGIN_TABLE}]"
        )


def unknown_key(path: Path, name: str, allowed: set[str]) -> BiosigError:
    """The error for a pipeline key that no option takes."""
    return BiosigError(f"{path}: unknown key {name!r} (known: {', '.join(sorted(allowed))})")
