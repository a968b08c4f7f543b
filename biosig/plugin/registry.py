"""Plugin discovery through the ``biosig.plugins`` entry-point group.

Discovery is lazy and isolated: listing reads only entry-point metadata; a plugin's module
is imported only when that plugin is asked for (or when ``plugins list`` loads each one in
turn), and a plugin that fails to import or declares an unsupported contract version is
reported with its reason without affecting the others.

``BIOSIG_PLUGINS`` (comma-separated names, e.g. ``numpy,ecg``) restricts which plugins are
discovered at all: the others are never imported, their name clashes are not reported,
and asking for one is an error saying it is excluded. Unset or blank, every installed
plugin is available.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, distributions

from ..errors import BiosigError
from .contract import SUPPORTED_API_VERSIONS, Plugin, PluginDefaults
from .extras import install_hint, missing_extra

GROUP = "biosig.plugins"
#: Environment variable restricting discovery to the plugins it names.
ENV_VAR = "BIOSIG_PLUGINS"


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


#: The distribution whose plugins are first-party: one of the same name installed by
#: another never replaces them.
FIRST_PARTY = "biosig"


def group_entry_points() -> list[EntryPoint]:
    """Every ``biosig.plugins`` entry point, distribution by distribution, so that one
    distribution's unreadable metadata (a non-UTF-8 ``entry_points.txt``) is skipped with
    a warning instead of breaking every command."""
    found: list[EntryPoint] = []
    for dist in distributions():
        try:
            found.extend(ep for ep in dist.entry_points if ep.group == GROUP)
        except Exception as exc:  # decoding or parsing someone else's metadata
            name = _metadata_name(dist)
            warnings.warn(
                f"{name}: its entry-point metadata cannot be read ({type(exc).__name__}: "
                f"{exc}); its plugins, if any, are left out",
                stacklevel=2,
            )
    return found


def _metadata_name(dist) -> str:
    try:
        return str(dist.metadata["Name"])
    except Exception:  # as unreadable as the rest
        return str(getattr(dist, "_path", "a distribution"))


def _distribution_name(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "?"


def selected_names() -> tuple[str, ...] | None:
    """The plugin names ``BIOSIG_PLUGINS`` allows, in its order (whitespace and empty items
    ignored), or ``None`` when it is unset or blank: then every plugin is allowed."""
    text = os.environ.get(ENV_VAR, "")
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    return names or None


def installed_names() -> list[str]:
    """The names of every registered plugin, sorted, whatever ``BIOSIG_PLUGINS`` says;
    reads entry-point metadata only."""
    return sorted({ep.name for ep in group_entry_points()})


def excluded_names() -> list[str]:
    """Installed plugins that ``BIOSIG_PLUGINS`` leaves out (none when it is unset)."""
    selected = selected_names()
    if selected is None:
        return []
    return [name for name in installed_names() if name not in selected]


def missing_names() -> list[str]:
    """Names in ``BIOSIG_PLUGINS`` that no installed plugin has."""
    installed = set(installed_names())
    return [name for name in selected_names() or () if name not in installed]


def discover() -> dict[str, PluginEntry]:
    """All registered plugins by name (those ``BIOSIG_PLUGINS`` allows), none imported.

    Two entry points with one name: biosig's own is used if one of them is (a third-party
    package cannot replace a first-party plugin by taking its name), else the first found;
    the clash is recorded on the entry (``duplicates``), since silently picking one would
    be a debugging trap: :func:`get_plugin` warns about it, ``plugins list`` and ``plugins
    show`` list it.
    """
    selected = selected_names()
    found: dict[str, PluginEntry] = {}
    for ep in group_entry_points():
        if selected is not None and ep.name not in selected:
            continue
        if ep.name not in found:
            found[ep.name] = PluginEntry(ep.name, ep, _distribution_name(ep))
            continue
        first = found[ep.name]
        if (ep.value, _dist_key(ep)) == (first.entry_point.value, _dist_key(first.entry_point)):
            continue  # the same distribution seen twice on sys.path
        if _dist_key(ep) == FIRST_PARTY and _dist_key(first.entry_point) != FIRST_PARTY:
            ours = PluginEntry(ep.name, ep, _distribution_name(ep))
            ours.duplicates = [_source(first.entry_point), *first.duplicates]
            found[ep.name] = ours
            continue
        first.duplicates.append(_source(ep))
    return found


def _source(ep: EntryPoint) -> str:
    return f"{ep.value} ({_distribution_name(ep)})"


def _dist_key(ep: EntryPoint) -> str | None:
    """The normalised name of the distribution registering ``ep`` (None when unknown)."""
    dist = getattr(ep, "dist", None)
    name = getattr(dist, "name", None)
    return re.sub(r"[-_.]+", "-", name).lower() if name else None


def clash(entry: PluginEntry) -> str | None:
    """One line about the other plugins named as ``entry`` is, or None when there are none."""
    if not entry.duplicates:
        return None
    return (
        f"two plugins are named {entry.name!r}: using {entry.entry_point.value} "
        f"({entry.distribution}), ignoring {', '.join(entry.duplicates)}"
    )


def load_entry(entry: PluginEntry, isolate: bool = False) -> PluginEntry:
    """Import one plugin and check it against the contract; failures land in ``entry.error``.

    With ``isolate`` (listing and showing plugins, which import plugins nobody chose), a
    third-party plugin is first imported in a child process: one that exits, crashes or
    hangs at import is reported broken instead of taking the command with it.
    """
    if entry.plugin is not None or entry.error is not None:
        return entry
    entry.error = missing_extra(entry.entry_point)
    if entry.error is not None:
        return entry
    if isolate and _dist_key(entry.entry_point) != FIRST_PARTY:
        entry.error = probe_import(entry.entry_point)
        if entry.error is not None:
            return entry
    try:
        obj = entry.entry_point.load()
        plugin = obj() if isinstance(obj, type) else obj
    except ModuleNotFoundError as exc:
        hint = install_hint(entry.entry_point, exc.name)
        if hint is None:
            entry.error = f"import failed: {type(exc).__name__}: {exc}"
        else:
            entry.error = f"needs {exc.name}, which is not installed: {hint}"
        return entry
    except (
        Exception,
        SystemExit,
    ) as exc:  # a broken third-party plugin must never take biosig down
        entry.error = f"import failed: {type(exc).__name__}: {exc}"
        return entry
    problem = check_contract(plugin)
    if problem is None and plugin.name != entry.name:
        # A checkpoint records the plugin's own name and predict looks the plugin up by it.
        problem = f"entry point {entry.name!r} loads a plugin named {plugin.name!r}"
    if problem:
        entry.error = problem
    else:
        entry.plugin = plugin
    return entry


#: Seconds a third-party plugin's import may take in :func:`probe_import`.
IMPORT_TIMEOUT = 60.0

_PROBE = """
import json, sys
path, name, value, group = json.loads(sys.argv[1])
sys.path[:] = path
from importlib.metadata import EntryPoint
EntryPoint(name=name, value=value, group=group).load()
"""


def probe_import(ep: EntryPoint, timeout: float | None = None) -> str | None:
    """Why importing ``ep`` in a child process went wrong in a way no ``except`` could
    catch (the process exited, crashed or did not finish within ``timeout`` seconds, default
    :data:`IMPORT_TIMEOUT`), or ``None``: an import that merely raised is left to the
    in-process load, whose message is better."""
    timeout = IMPORT_TIMEOUT if timeout is None else timeout
    argv = json.dumps([sys.path, ep.name, ep.value, ep.group])
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, argv],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return f"import did not finish within {timeout:g} s"
    except OSError as exc:
        return f"import could not be tried in a child process ({exc})"
    if done.returncode < 0:
        return f"import crashed the process ({_signal_name(-done.returncode)})"
    if done.returncode != 0 and "Traceback" not in done.stderr:
        return f"import exited the process with code {done.returncode}"
    return None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


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
    for field_name in ("name", "version", "summary"):
        if not isinstance(getattr(plugin, field_name, ""), str):
            value = getattr(plugin, field_name)
            return f"{field_name} is {value!r}, expected a str"
    defaults = getattr(plugin, "defaults", None)
    if defaults is None:
        return "has no defaults"
    if not isinstance(defaults, PluginDefaults):
        return f"its defaults are a {type(defaults).__name__}, not biosig.PluginDefaults"
    return None


def module_install_hint(module: str | None) -> str | None:
    """The ``pip install`` line for a module a plugin imported and did not find (see
    :func:`biosig.plugin.extras.install_hint`), from the first plugin distribution that
    requires it; ``None`` when none does."""
    hints = (install_hint(ep, module) for ep in group_entry_points())
    return next((hint for hint in hints if hint is not None), None)


def get_plugin(name: str) -> Plugin:
    """Load the plugin called ``name``, importing no other plugin."""
    entries = discover()
    if name not in entries:
        raise BiosigError(unavailable(name, entries))
    entry = load_entry(entries[name])
    message = clash(entry)
    if message:
        warnings.warn(message, stacklevel=2)
    if entry.plugin is None:
        raise BiosigError(f"plugin {name!r} cannot be used: {entry.error}")
    return entry.plugin


def unavailable(name: str, entries: dict[str, PluginEntry]) -> str:
    """Why ``name`` is not among the discovered ``entries``: excluded by
    ``BIOSIG_PLUGINS``, or not installed."""
    if name in excluded_names():
        return (
            f"plugin {name!r} is excluded by {ENV_VAR}={os.environ.get(ENV_VAR, '')!r} "
            f"(add it there, or unset {ENV_VAR})"
        )
    if selected_names() is not None:
        known = ", ".join(sorted(entries)) or "none"
        return f"unknown plugin {name!r} (installed and allowed by {ENV_VAR}: {known})"
    known = ", ".join(sorted(entries)) or "none installed"
    return f"unknown plugin {name!r} (installed: {known})"


def load_all() -> list[PluginEntry]:
    """Every registered plugin (that ``BIOSIG_PLUGINS`` allows), each loaded in isolation,
    sorted by name."""
    return [load_entry(entry, isolate=True) for _, entry in sorted(discover().items())]
