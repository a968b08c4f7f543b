"""The commands' options and the library's typed settings cannot drift apart: every option
of ``train`` and ``pretrain`` sets a field of the request or config dataclass the library
runs, and every field is an option unless it is listed here as the library's own."""

from __future__ import annotations

import dataclasses

import click
import pytest

from biosig.cli.pretrain import pretrain
from biosig.cli.train import train
from biosig.pipeline import SECTIONS, TOP_LEVEL
from biosig.training.config import PretrainConfig, TrainConfig
from biosig.training.pretrain_runs import PretrainRequest
from biosig.training.runs import TrainRequest

#: Options that steer the command rather than set a field.
COMMAND_ONLY = {"pipeline", "resume", "more_inputs"}
#: Option names spelled differently as fields.
FIELD_OF = {"input": "inputs"}
#: Fields no option sets: fixed recipe constants, or what the library fills itself.
LIBRARY_ONLY = {
    "config", "plugin_options", "normalization_scores", "weight_decay", "warmup_fraction",
    "grad_clip", "focal_gamma", "augment_p",
}  # fmt: skip

COMMANDS = [
    pytest.param(train, TrainRequest, TrainConfig, id="train"),
    pytest.param(pretrain, PretrainRequest, PretrainConfig, id="pretrain"),
]


def _options(command: click.Command) -> set[str]:
    return {
        FIELD_OF.get(p.name, p.name)
        for p in command.params
        # -v/-q (expose_value false) say how much to print, not what to train
        if p.name not in COMMAND_ONLY and p.expose_value and not getattr(p, "hidden", False)
    }


def _fields(*types: type) -> set[str]:
    return {f.name for t in types for f in dataclasses.fields(t)}


@pytest.mark.parametrize(("command", "request_type", "config_type"), COMMANDS)
def test_every_option_sets_a_field(command, request_type, config_type) -> None:
    assert _options(command) - _fields(request_type, config_type) == set()


@pytest.mark.parametrize(("command", "request_type", "config_type"), COMMANDS)
def test_every_field_is_an_option_or_the_librarys_own(command, request_type, config_type) -> None:
    assert _fields(request_type, config_type) - _options(command) - LIBRARY_ONLY == set()


def test_every_pipeline_key_is_an_option_of_some_command() -> None:
    keys = {FIELD_OF.get(k, k) for k in set().union(*SECTIONS.values()) | TOP_LEVEL}
    # resume is a flag of both commands that restarts a run rather than a setting of one
    assert keys - _options(train) - _options(pretrain) == {"resume"}
