"""expand_inputs: what every plugin's find() starts from."""

from __future__ import annotations

from pathlib import Path

import pytest

from biosig import BiosigError, expand_inputs


def test_files_directories_and_globs_in_order(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    for name in ("b.x", "a.x", "d/c.x"):
        (tmp_path / name).write_text("")
    got = expand_inputs([tmp_path / "d", str(tmp_path / "*.x"), str(tmp_path / "**" / "c.x")])
    assert got == [tmp_path / "d", tmp_path / "a.x", tmp_path / "b.x", tmp_path / "d" / "c.x"]


def test_missing_path_and_empty_pattern_name_themselves(tmp_path: Path) -> None:
    with pytest.raises(BiosigError, match=r"nope\.x: file not found"):
        expand_inputs([tmp_path / "nope.x"])
    with pytest.raises(BiosigError, match=r"\*\.y: pattern matches no file"):
        expand_inputs([str(tmp_path / "*.y")])
