"""The ``pip install`` line that gives a plugin a dependency it lacks.

biosig's own plugins need libraries an install may leave out (``pip install biosig`` has
none of them; ``biosig[nanopore]`` adds h5py and pod5, ``biosig[ecg]`` wfdb and pyedflib).
A plugin whose import fails for want of one is listed with the line that fixes it, read
from its distribution's metadata, so a third-party plugin's extras are named the same way.
"""

from __future__ import annotations

import re
from importlib.metadata import EntryPoint, PackageNotFoundError, distribution

#: A requirement's name, and the extra it belongs to, in a ``Requires-Dist`` line such as
#: ``h5py>=3.8; extra == "nanopore"``.
_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EXTRA = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def install_hint(entry_point: EntryPoint, missing: str | None) -> str | None:
    """``pip install 'DIST[EXTRA]'`` when the module ``missing`` (as a
    ``ModuleNotFoundError`` names it) is a requirement of one of the extras of the
    distribution registering ``entry_point``; the extra named as the plugin is preferred
    (wfdb is in both ``ecg`` and ``eeg``). ``pip install DIST`` when it is a requirement
    of the distribution itself (an install that lost it); ``None`` when it is neither."""
    dist = getattr(entry_point, "dist", None)
    if dist is None or not missing:
        return None
    wanted = _normalised(missing.split(".")[0])
    extras: list[str] = []
    for line in getattr(dist, "requires", None) or ():
        name = _NAME.match(line)
        if name is None or _normalised(name.group(1)) != wanted:
            continue
        extra = _EXTRA.search(line)
        if extra is None:
            return f"pip install '{dist.name}'"
        extras.append(extra.group(1))
    if not extras:
        return None
    chosen = entry_point.name if entry_point.name in extras else extras[0]
    return f"pip install '{dist.name}[{chosen}]'"


def missing_extra(entry_point: EntryPoint) -> str | None:
    """What is missing for the plugin of ``entry_point`` to work, or ``None``: the
    requirements of its distribution's extra named as the plugin (``biosig[nanopore]`` for
    ``nanopore``) that are not installed, and the line that installs them. Read from the
    installed metadata, without importing anything: plugins import their libraries only
    when they read files, so a failed import would come too late to list."""
    dist = getattr(entry_point, "dist", None)
    if dist is None:
        return None
    wanted = {name for name, extra in _requirements(dist) if extra == entry_point.name}
    absent = sorted(name for name in wanted if not _installed(name))
    if not absent:
        return None
    fix = f"pip install '{dist.name}[{entry_point.name}]'"
    return f"needs {', '.join(absent)}, not installed: {fix}"


def _requirements(dist) -> list[tuple[str, str | None]]:
    """``(name, extra)`` of each of ``dist``'s requirements that no marker but its extra
    conditions (one for another Python or platform is not this install's concern)."""
    found = []
    for line in getattr(dist, "requires", None) or ():  # None: metadata without requirements
        name = _NAME.match(line)
        requirement, _, marker = line.partition(";")
        extra = _EXTRA.search(marker)
        other_conditions = _EXTRA.sub("", marker).strip(" ()")
        if name is None or other_conditions or "[" in requirement:
            continue
        found.append((name.group(1), extra.group(1) if extra else None))
    return found


def _installed(name: str) -> bool:
    try:
        distribution(name)
    except PackageNotFoundError:
        return False
    return True


def _normalised(name: str) -> str:
    """A distribution or module name as PEP 503 compares them: ``pyEDFlib`` and
    ``pyedflib``, ``vbz-h5py-plugin`` and ``vbz_h5py_plugin`` are one."""
    return re.sub(r"[-_.]+", "-", name).lower()
