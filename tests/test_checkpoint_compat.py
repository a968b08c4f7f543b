"""Every checkpoint an earlier biosig version wrote still loads and predicts what it did
(``tests/fixtures/checkpoint-<version>/``, written by ``tests/fixtures/make_checkpoint.py``
and never rewritten)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import biosig
from biosig.device import CPU_BF16_ENV

FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("checkpoint-*"))

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_there_is_a_fixture_of_this_version() -> None:
    assert any(f.name == f"checkpoint-{biosig.__version__}" for f in FIXTURES)


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda f: f.name)
@pytest.mark.parametrize(
    ("cpu_bf16", "atol"),
    # the fixtures' probabilities were computed in float32: equal in float32, and within
    # bf16's precision where the CPU computes in bf16
    [("0", 1e-6), ("1", 1e-3)],
    ids=["float32", "bf16"],
)
def test_an_old_checkpoint_predicts_what_it_did(
    fixture: Path, cpu_bf16: str, atol: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CPU_BF16_ENV, cpu_bf16)
    model = biosig.load_model(fixture / "model")
    scores = model.predict(np.load(fixture / "input.npy")).recordings
    expected = np.load(fixture / "probabilities.npy")
    columns = [f"p_{c}" for c in model.classes]
    rtol = 1e-4 if cpu_bf16 == "0" else 0
    np.testing.assert_allclose(scores[columns].to_numpy(), expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda f: f.name)
def test_an_old_checkpoint_serves_the_commands(fixture: Path, in_tmp: Path, run_cli) -> None:
    np.save(in_tmp / "x.npy", np.load(fixture / "input.npy"))
    result = run_cli("predict", "--model", fixture / "model", "x.npy")
    assert result.code == 0, result.err
    rows = result.out.splitlines()
    assert rows[0].startswith("recording\tfile\tlabel") and len(rows) == 1 + 24
    meta = json.loads((fixture / "model" / "biosig.json").read_text(encoding="utf-8"))
    assert {row.split("\t")[2] for row in rows[1:]} <= set(meta["classes"])


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("window", 10**9, "window must be an integer from 1 to"),
        ("classes", ["fast"], "1 classes named for a model of 2"),
        ("model", [], "model must be a table"),
    ],
)
def test_a_tampered_checkpoint_is_one_line_naming_it(
    in_tmp: Path, run_cli, field: str, value, message: str
) -> None:
    fixture = FIXTURES[-1]
    shutil.copytree(fixture / "model", in_tmp / "model")
    meta_path = in_tmp / "model" / "biosig.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta[field] = value
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    np.save(in_tmp / "x.npy", np.load(fixture / "input.npy"))
    result = run_cli("predict", "--model", "model", "x.npy")
    assert result.code == 2 and result.out == ""  # 2: bad input, as for any unusable file
    (line,) = result.err.strip().splitlines()
    assert line.startswith("error: ") and f"biosig.json: {message}" in line
