"""What the README promises and CI runs stay one and the same: the Quick start's two
commands, the second of which `.ci/run` runs verbatim, and pipeline files whose keys are
all `biosig train` options."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from biosig.cli.train import train
from biosig.pipeline import load_pipeline

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
def test_pipeline_keys_are_train_options(path: Path) -> None:
    # Only the keys: a pipeline may name a plugin that is not installed here.
    options = {p.name for p in train.params} - {"pipeline", "more_inputs"}
    assert load_pipeline(path, options)
