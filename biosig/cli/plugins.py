"""``biosig plugins``: what is installed, and whether it loads."""

from __future__ import annotations

import sys

import click

from ..errors import BiosigError
from ..plugin import API_VERSION
from ..registry import discover, load_all, load_entry


@click.group()
def plugins() -> None:
    """List and inspect plugins."""


@plugins.command("list")
def list_plugins() -> None:
    """Every installed plugin with its version, defaults and load status."""
    entries = load_all()
    if not entries:
        click.echo("no plugins installed")
        return
    header = f"{'name':<12}{'version':<10}{'rate':>10}{'window':>8}{'hop':>7}  {'status':<8}summary"
    click.echo(header)
    for entry in entries:
        p = entry.plugin
        if p is None:
            click.echo(f"{entry.name:<12}{'?':<10}{'':>10}{'':>8}{'':>7}  {entry.status}")
            continue
        d = p.defaults
        status = "ok" if not entry.duplicates else "ok (name clash: see `plugins show`)"
        click.echo(
            f"{entry.name:<12}{p.version:<10}{d.sample_rate:>10g}{d.window:>8}"
            f"{d.hop:>7}  {status:<8}{p.summary}"
        )


@plugins.command("show")
@click.argument("name")
def show_plugin(name: str) -> None:
    """Everything about one plugin."""
    entries = discover()
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none installed"
        raise BiosigError(f"unknown plugin {name!r} (installed: {known})")
    entry = load_entry(entries[name])
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
