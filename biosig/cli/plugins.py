"""``biosig plugins``: what is installed, and whether it loads."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import BiosigError
from ..plugin.contract import API_VERSION
from ..plugin.registry import (
    ENV_VAR,
    clash,
    discover,
    excluded_names,
    load_all,
    load_entry,
    missing_names,
    selected_names,
    unavailable,
)
from .common import verbosity_options


@click.group()
def plugins() -> None:
    """List and inspect plugins."""


@plugins.command("list")
@verbosity_options
def list_plugins() -> None:
    """Every installed plugin with its version, defaults and load status.

    A plugin that fails to load is listed with the reason; two plugins with one name are
    both shown; with BIOSIG_PLUGINS set, the plugins it leaves out and the names in it that
    are not installed are listed too.
    """
    entries = load_all()
    excluded, missing = excluded_names(), missing_names()
    if not entries and not excluded and not missing:
        click.echo("no plugins installed")
        return
    # The name column fits the longest name, so a long third-party name never runs into
    # its version.
    names = [entry.name for entry in entries] + excluded + missing
    w = max(12, *(len(name) + 2 for name in names))
    header = (
        f"{'name':<{w}}{'version':<10}{'rate':>10}{'window':>8}{'hop':>7}  {'status':<8}summary"
    )
    click.echo(header)
    for entry in entries:
        p = entry.plugin
        if p is None:
            click.echo(f"{entry.name:<{w}}{'?':<10}{'':>10}{'':>8}{'':>7}  {entry.status}")
            continue
        d = p.defaults
        status = "ok" if not entry.duplicates else "ok (name clash)"
        click.echo(
            f"{entry.name:<{w}}{p.version:<10}{d.sample_rate:>10g}{d.window:>8}"
            f"{d.hop:>7}  {status:<8}{p.summary}"
        )
    for entry in entries:
        message = clash(entry)
        if message:
            click.echo(f"name clash: {message}")
    for name in excluded:
        click.echo(f"{name:<{w}}{'?':<10}{'':>10}{'':>8}{'':>7}  excluded by {ENV_VAR}")
    for name in missing:
        click.echo(
            f"{name:<{w}}{'?':<10}{'':>10}{'':>8}{'':>7}  not installed (named in {ENV_VAR})"
        )
    if selected_names() is not None:
        click.echo(f"{ENV_VAR}={','.join(selected_names() or ())}: only these plugins are used")


@plugins.command("show")
@click.argument("name")
@verbosity_options
def show_plugin(name: str) -> None:
    """Everything about one plugin."""
    entries = discover()
    if name not in entries:
        raise BiosigError(unavailable(name, entries))
    entry = load_entry(entries[name], isolate=True)
    rows = [
        ("name", entry.name),
        ("entry point", entry.entry_point.value),
        ("distribution", entry.distribution),
        ("status", entry.status),
    ]
    for other in entry.duplicates:
        rows.append(("also named so", f"{other} (ignored)"))
    p = entry.plugin
    if p is not None:
        d = p.defaults
        rows += [
            ("version", p.version),
            ("api version", f"{p.api_version} (biosig speaks {API_VERSION})"),
            ("summary", p.summary),
            ("sample rate", f"{d.sample_rate:g} Hz"),
            ("window", f"{d.window} samples"),
            ("hop", f"{d.hop} samples"),
            ("channels", ", ".join(d.channels) if d.channels else "from the files"),
            ("normalization", d.normalization),
            ("labels", p.label_formats),
        ]
        for option in p.options:
            kind = "preprocessing, kept with the model" if option.preprocessing else "option"
            rows.append((option.flag, f"{option.help} [{kind}; default: {option.default!r}]"))
        doc = type(p).__doc__ or sys.modules[type(p).__module__].__doc__
        if doc:
            rows.append(("about", "\n" + doc.strip()))
    width = max(len(k) for k, _ in rows) + 2
    for key, value in rows:
        click.echo(f"{key:<{width}}{value}")


@plugins.command("new", short_help="Start a plugin package from the WAV plugin template.")
@click.argument("name")
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    help="New or empty directory to write [default: ./biosig-plugin-NAME, underscores as dashes].",
)
@verbosity_options
def new_plugin(name: str, directory: Path | None) -> None:
    """Start a plugin package NAME: a copy of the WAV plugin template, renamed.

    Writes distribution biosig-plugin-NAME with module biosig_plugin_NAME, class
    <Name>Plugin and entry point NAME, its README and its tests, which pass as written.
    NAME is a lowercase identifier (myformat, heart_sounds) that no installed plugin has.
    """
    from ..plugin.scaffold import new_plugin as write_package

    names, target = write_package(name, directory)
    click.echo(f"wrote {names.distribution} to {target}")
    click.echo(f"  module {names.module}, class {names.cls}, entry point {names.name}")
    click.echo(f"  test it:    cd {target} && python -m pytest")
    click.echo(f"  install it: pip install -e {target}   (then: biosig plugins show {names.name})")
