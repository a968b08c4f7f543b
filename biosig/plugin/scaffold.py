"""``biosig plugins new``: a new plugin package, copied from the WAV plugin template.

The template is a complete, tested third-party package (``plugins/template`` in the source
tree): distribution ``biosig-plugin-wav``, module ``biosig_plugin_wav``, class
``WavPlugin``, entry point ``wav``. A new package is that one with those four names
replaced, so its own tests pass before a line is changed. The template ships inside the
biosig distribution as ``biosig/plugin_template`` (package data, mapped from
``plugins/template`` in ``pyproject.toml``); an editable install reads it from the source
tree instead.
"""

from __future__ import annotations

import contextlib
import fnmatch
import keyword
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import BiosigError
from .registry import installed_names

#: The names the template is written with, replaced in every file and path.
TEMPLATE_NAME = "wav"
#: What is never copied: caches and build outputs a template directory may hold.
IGNORED = (
    "__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".tox", ".venv",
    "venv", "build", "dist", "*.egg-info",
)  # fmt: skip

_NAME = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class PluginNames:
    """The names of one plugin package, all derived from the plugin's name."""

    name: str  # what users type after --plugin, and the entry point's name
    module: str  # the import package
    cls: str  # the Plugin subclass
    distribution: str  # what pip installs

    @classmethod
    def of(cls, name: str) -> PluginNames:
        if not _NAME.fullmatch(name) or keyword.iskeyword(name) or name.endswith("_"):
            raise BiosigError(
                f"plugin name {name!r}: use a lowercase identifier (a letter, then letters, "
                "digits or underscores), e.g. myformat or heart_sounds"
            )
        camel = "".join(part.capitalize() for part in name.split("_"))
        return cls(
            name=name,
            module=f"biosig_plugin_{name}",
            cls=f"{camel}Plugin",
            distribution=f"biosig-plugin-{name.replace('_', '-')}",
        )


def template_dir() -> Path:
    """The template package: inside the installed biosig, else in the source tree."""
    package = Path(__file__).resolve().parents[1]  # biosig/, this module is in biosig/plugin/
    for candidate in (package / "plugin_template", package.parent / "plugins" / "template"):
        if (candidate / "pyproject.toml").is_file():
            return candidate
    raise BiosigError(f"the plugin template is missing from this biosig installation ({package})")


def render(text: str, names: PluginNames) -> str:
    """The template's ``text`` with its names replaced by ``names``.

    Only the names are replaced, never the word "wav" elsewhere: the new package still reads
    WAV files (``.wav``, ``scipy.io.wavfile``) until its author changes it.
    """
    old = PluginNames.of(TEMPLATE_NAME)
    text = text.replace(old.module, names.module)
    text = text.replace(old.distribution, names.distribution)
    text = text.replace(old.cls, names.cls)
    text = text.replace(f"test_{old.name}_", f"test_{names.name}_")  # the tests' file name
    word = re.escape(old.name)
    for pattern, replacement in (
        (rf'^(\s*name = )"{word}"$', rf'\1"{names.name}"'),  # the Plugin's name attribute
        (rf'^{word} = "', f'{names.name} = "'),  # the entry point
        (rf"(--plugin |plugins show |`){word}\b(?!\.)", rf"\g<1>{names.name}"),  # in prose
    ):
        text = re.sub(pattern, replacement, text, flags=re.MULTILINE)
    return text


def rename(part: str, names: PluginNames) -> str:
    """A file or directory name of the template, for the package ``names``."""
    old = PluginNames.of(TEMPLATE_NAME)
    part = part.replace(old.module, names.module)
    return part.replace(f"test_{old.name}_", f"test_{names.name}_")


def new_plugin(name: str, target: Path | None = None) -> tuple[PluginNames, Path]:
    """Write a new plugin package called ``name`` into ``target`` (default:
    ``./biosig-plugin-<name>``); returns its names and directory (absolute).

    ``name`` must not be an installed plugin's. ``target`` must not exist, or be an empty
    directory. The package is written in full into a temporary directory first, then
    renamed into place (a new target) or its entries moved into it (an empty one, which is
    kept: it may be the current directory); a failure leaves nothing half-written.
    """
    names = PluginNames.of(name)
    if names.name in installed_names():
        raise BiosigError(
            f"plugin name {name!r}: an installed plugin is called so (biosig plugins show "
            f"{name}), and two plugins of one name clash; choose another name"
        )
    target = Path(target if target is not None else names.distribution).resolve()
    if target.exists() and not target.is_dir():
        raise BiosigError(f"{target}: already exists and is not a directory; choose another --dir")
    existing = target.is_dir()
    if existing and any(target.iterdir()):
        raise BiosigError(f"{target}: already exists and is not empty; choose another --dir")
    source = template_dir()
    # Beside a new target; inside an existing one, so that nothing is needed of its parent.
    where = target if existing else target.parent
    prefix = f".{names.distribution}.tmp-" if existing else f".{target.name}.tmp-"
    tmp = where / f"{prefix}{os.getpid()}-{secrets.token_hex(4)}"
    try:
        where.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
    except OSError as exc:
        raise BiosigError(f"{target}: cannot be created: {_why(exc, tmp)}") from None
    try:
        _write(source, tmp, names)
        if existing:
            _move_entries(tmp, target)
        else:
            os.rename(tmp, target)
    except OSError as exc:
        raise BiosigError(f"{target}: cannot be written ({_why(exc, tmp)})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return names, target


def _write(source: Path, into: Path, names: PluginNames) -> None:
    """The template ``source``, renamed for ``names``, written into the directory ``into``."""
    for path in sorted(source.rglob("*")):
        parts = path.relative_to(source).parts
        if any(fnmatch.fnmatch(part, pattern) for part in parts for pattern in IGNORED):
            continue
        copy = into.joinpath(*(rename(part, names) for part in parts))
        if path.is_dir():
            copy.mkdir(exist_ok=True)
            continue
        data = path.read_bytes()
        with contextlib.suppress(UnicodeDecodeError):  # what is not text is copied as is
            data = render(data.decode("utf-8"), names).encode("utf-8")
        copy.write_bytes(data)


def _move_entries(tmp: Path, target: Path) -> None:
    """Every entry of ``tmp`` renamed into ``target`` (the same file system: each rename is
    atomic); on a failure those already moved are removed again, leaving ``target`` empty."""
    moved: list[Path] = []
    try:
        for entry in sorted(tmp.iterdir()):
            os.rename(entry, target / entry.name)
            moved.append(target / entry.name)
    except BaseException:
        for path in moved:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        raise


def _why(exc: OSError, tmp: Path) -> str:
    """What went wrong, in the user's terms: never the temporary directory ``tmp``."""
    for ancestor in tmp.parents:  # "File exists", "Not a directory": a file on the way
        if ancestor.exists():
            if not ancestor.is_dir():
                return f"{ancestor} is not a directory"
            break
    reason = exc.strerror or str(exc)
    if not exc.filename:
        return reason
    filename = Path(exc.filename)
    if filename == tmp or tmp in filename.parents:
        return f"{reason} in {tmp.parent}"
    return f"{reason}: {filename}"
