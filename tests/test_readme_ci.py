"""What the README promises and CI runs stay one and the same: the Quick start's two
commands, the second of which `.ci/run` runs verbatim, and pipeline files whose keys are
all `biosig train` options or options of the plugin they name."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from biosig.cli.common import Options
from biosig.cli.train import train
from biosig.pipeline import load_pipeline, relative_to_pipeline
from biosig.plugin.registry import get_plugin

REPO = Path(__file__).resolve().parents[1]
PIPELINES = sorted((REPO / "pipelines").glob("*.toml"))


def quick_start_commands() -> list[str]:
    """The command lines of the one fenced block under ``## Quick start``."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Quick start\n(.*?)(?=^## |\Z)", readme, re.MULTILINE | re.DOTALL)
    assert section, "README.md has no '## Quick start' section"
    blocks = re.findall(r"^```(\w*)\n(.*?)^```", section.group(1), re.MULTILINE | re.DOTALL)
    assert len(blocks) == 1, f"Quick start holds {len(blocks)} fenced blocks, expected one"
    language, body = blocks[0]
    assert language == "bash"
    return [line for line in body.splitlines() if line.strip()]


def test_quick_start_is_two_commands_the_first_running_the_demo() -> None:
    commands = quick_start_commands()
    assert len(commands) == 2, commands
    assert "biosig demo" in commands[0]


def test_ci_runs_the_second_quick_start_command_verbatim() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert quick_start_commands()[1] in ci.splitlines()


def test_there_are_pipeline_files() -> None:
    assert PIPELINES, "pipelines/ holds no .toml file"


@pytest.mark.parametrize("path", PIPELINES, ids=[p.name for p in PIPELINES])
def test_pipeline_keys_are_train_or_plugin_options(path: Path) -> None:
    # The CLI's own reading: train options cast by their click types, the rest the named
    # plugin's options, parsed by it; an unknown key or a bad value raises.
    loaded = load_pipeline(path)
    options = Options(click.Context(train), path)
    plugin = get_plugin(loaded["plugin"])
    assert options.configure_plugin(plugin, []) == []
    plugin_keys = set(loaded) - {p.name for p in train.params}
    assert plugin_keys <= {o.name for o in plugin.options}
    for key in plugin_keys:
        option = next(o for o in plugin.options if o.name == key)
        # a file the pipeline names is read from the pipeline's folder
        given = relative_to_pipeline(path, loaded[key]) if option.path else loaded[key]
        assert plugin.settings[key] == option.parse(given)
        if option.path:
            assert Path(plugin.settings[key]).is_file(), key
