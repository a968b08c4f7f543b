"""docs/python.md's examples, run in order in one namespace in a fresh directory: the
page shows what works."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "python.md"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_the_page_has_examples_for_every_entry_point() -> None:
    code = "\n".join(examples())
    for call in ("biosig.train(", "biosig.load_model(", ".predict(", ".evaluate(",
                 "biosig.pretrain(", "biosig.SignalClassifier("):  # fmt: skip
        assert call in code, call


def test_every_example_runs_in_order(in_tmp: Path) -> None:
    namespace: dict = {}
    for i, block in enumerate(examples()):
        exec(compile(block, f"{DOC.name} example {i + 1}", "exec"), namespace)
    assert (in_tmp / "run" / "best" / "model.safetensors").is_file()
    assert 0 <= namespace["clf"].score(namespace["x_test"], namespace["y_test"]) <= 1
    assert set(namespace["metrics"]) >= {"accuracy", "macro_f1", "confusion"}
