"""Pipeline files: tables group the options they name, and a key in the wrong table or a
key given twice is an error naming it, before anything is read."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from biosig import BiosigError
from biosig.cli.pretrain import pretrain
from biosig.cli.train import train
from biosig.pipeline import SECTIONS, TOP_LEVEL, load_pipeline

REPO = Path(__file__).resolve().parents[1]
NOT_IN_TABLES = {*TOP_LEVEL, "pipeline", "more_inputs"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("shipped", sorted((REPO / "pipelines").glob("*.toml")), ids=str)
def test_every_shipped_pipeline_keeps_its_keys_in_their_tables(shipped: Path) -> None:
    assert load_pipeline(shipped)["plugin"]


def test_every_command_option_has_one_table() -> None:
    homes: dict[str, str] = {}
    for table, names in SECTIONS.items():
        for name in names:
            assert name not in homes, f"{name} in [{homes[name]}] and [{table}]"
            homes[name] = table
    for command in (train, pretrain):
        for param in command.params:
            # -v/-q (expose_value false) say how much to print: no setting, so in no table
            shown = not getattr(param, "hidden", False) and param.expose_value
            if shown and param.name not in NOT_IN_TABLES:
                assert param.name in homes, f"{command.name} --{param.name} has no table"


def test_tables_flatten_and_top_level_keys_still_work(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'plugin = "numpy"\nepochs = 3\n[model]\npreset = "tiny"\n[train]\nbatch-size = 8\n'
        '[preprocessing]\nchannels = "0"\n',
    )
    assert load_pipeline(path) == {
        "plugin": "numpy",
        "epochs": 3,
        "preset": "tiny",
        "batch_size": 8,
        "channels": "0",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[model]\nlr = 0.5\n", "lr belongs in [train], not [model]"),
        ("[preprocessing]\nepochs = 2\n", "epochs belongs in [train], not [preprocessing]"),
        ("[train]\nannotator = 'atr'\n", "annotator is no [train] option; the plugin's options"),
        ("[modle]\npreset = 'tiny'\n", "preset belongs in [model], not [modle]"),
        ("epochs = 2\n[train]\nepochs = 3\n", "epochs is given twice (the top level and [train])"),
        ("[train]\nbatch_size = 2\nbatch-size = 3\n", "batch_size is given twice ([train] and"),
    ],
)
def test_a_key_out_of_place_is_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(BiosigError, match=re.escape(message)):
        load_pipeline(write(tmp_path, 'plugin = "numpy"\n' + text))


def test_the_command_says_it_in_one_line(tmp_path: Path, run_cli) -> None:
    path = write(tmp_path, 'plugin = "numpy"\n[model]\nlr = 0.5\n')
    result = run_cli("train", "--pipeline", path)
    assert result.code != 0 and result.err_lines == [
        f"error: {path}: lr belongs in [train], not [model]"
    ]


def test_what_to_read_stays_at_the_top_level(tmp_path: Path) -> None:
    with pytest.raises(
        BiosigError, match=re.escape("plugin belongs at the top level, not in [data]")
    ):
        load_pipeline(write(tmp_path, '[data]\nplugin = "numpy"\n'))
