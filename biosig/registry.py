"""Plugin discovery through the ``biosig.plugins`` entry-point group.

Discovery is lazy and isolated: listing reads only entry-point metadata; a plugin's module
is imported only when that plugin is asked for (or when ``plugins list`` loads each one in
turn), and a plugin that fails to import or declares an unsupported contract version is
reported with its reason without affecting the others.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points

from .errors import BiosigError
from .plugin import SUPPORTED_API_VERSIONS, Plugin

GROUP = "biosig.plugins"


@dataclass
class PluginEntry:
    """One registered plugin: where it comes from, and once loaded, the plugin or why not."""

    name: str
    entry_point: EntryPoint
    distribution: str
    plugin: Plugin | None = None
    error: str | None = None
    duplicates: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.error:
            return f"broken: {self.error}"
        return "ok" if self.plugin is not None else "not loaded"


def _distribution_name(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "?"


def discover() -> dict[str, PluginEntry]:
    """All registered plugins by name, none of them imported.

    Two entry points with one name: the first found is used and the clash is warned about
    and recorded on the entry, since silently picking one would be a debugging trap.
    """
    found: dict[str, PluginEntry] = {}
    for ep in entry_points(group=GROUP):
        source = f"{ep.value} ({_distribution_name(ep)})"
        if ep.name in found:
            first = found[ep.name]
            if first.entry_point.value == ep.value:
                continue  # the same distribution seen twice on sys.path
            first.duplicates.append(source)
            warnings.warn(
                f"two plugins are named {ep.name!r}: using {first.entry_point.value}, "
                f"ignoring {source}",
                stacklevel=2,
            )
            continue
        found[ep.name] = PluginEntry(ep.name, ep, _distribution_name(ep))
    return found


def load_entry(entry: PluginEntry) -> PluginEntry:
    """Import one plugin and check it against the contract; failures land in ``entry.error``."""
    if entry.plugin is not None or entry.error is not None:
        return entry
    try:
        obj = entry.entry_point.load()
        plugin = obj() if isinstance(obj, type) else obj
    except Exception as exc:  # a broken third-party plugin must never take biosig down
        entry.error = f"import failed: {type(exc).__name__}: {exc}"
        return entry
    problem = check_contract(plugin)
    if problem:
        entry.error = problem
    else:
        entry.plugin = plugin
    return entry


def check_contract(plugin: object) -> str | None:
    """The reason ``plugin`` cannot be used, or ``None`` when it can."""
    if not isinstance(plugin, Plugin):
        return f"{type(plugin).__name__} does not subclass biosig.Plugin"
    version = getattr(plugin, "api_version", None)
    if version is None:
        return "declares no api_version (the plugin contract version it was written for)"
    if version not in SUPPORTED_API_VERSIONS:
        supported = ", ".join(str(v) for v in sorted(SUPPORTED_API_VERSIONS))
        return f"declares plugin API version {version!r}; this biosig supports {supported}"
    if not getattr(plugin, "name", ""):
        return "has no name"
    if getattr(plugin, "defaults", None) is None:
        return "has no defaults"
    return None


def get_plugin(name: str) -> Plugin:
    """Load the plugin called ``name``, importing no other plugin."""
    entries = discover()
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none installed"
        raise BiosigError(f"unknown plugin {name!r} (installed: {known})")
    entry = load_entry(entries[name])
    if entry.plugin is None:
        raise BiosigError(f"plugin {name!r} cannot be used: {entry.error}")
    return entry.plugin


def load_all() -> list[PluginEntry]:
    """Every registered plugin, each loaded in isolation, sorted by name."""
    return [load_entry(entry) for _, entry in sorted(discover().items())]
