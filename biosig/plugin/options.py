"""Giving a plugin its options, by name or by flag, as the command line and the library do."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import BiosigError
from .contract import Plugin

if TYPE_CHECKING:  # the checkpoint module imports torch, which --help need not load
    from ..checkpoint import CheckpointMeta

log = logging.getLogger("biosig")


class UnknownPluginOption(BiosigError):
    """A plugin option the plugin does not take."""


def set_plugin_options(
    plugin: Plugin, values: Mapping[str, Any], meta: CheckpointMeta | None = None
) -> None:
    """Give ``plugin`` the options in ``values``, keyed by option name (``group_pattern``)
    or flag (``--group-pattern``).

    One that changes a preprocessing option the model (checkpoint ``meta``) was trained
    with is warned about, since the model then sees data prepared differently from its
    training data.
    """
    by_key = {key: o.name for o in plugin.options for key in (o.name, o.flag)}
    for key in values:
        if key not in by_key:
            flags = ", ".join(o.flag for o in plugin.options)
            takes = f"; plugin {plugin.name!r} takes {flags}" if flags else ""
            shown = key if key.startswith("--") else "--" + key.replace("_", "-")
            raise UnknownPluginOption(f"no such option: {shown}{takes}")
    values = {by_key[key]: value for key, value in values.items()}
    plugin.configure(dict(values))
    trained = meta.plugin.options if meta else {}
    for option in plugin.options:
        now = plugin.settings[option.name]
        if option.preprocessing and option.name in trained and now != trained[option.name]:
            log.warning(
                "%s %s differs from the model's %s: its input is prepared differently",
                option.flag,
                now,
                trained[option.name],
            )
