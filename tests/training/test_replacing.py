"""A new run into a directory that holds an earlier one: the directory never mixes them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from biosig.training.replacing import RUN_ENTRIES, settle_earlier_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def train(run_cli, data: Path, out: str, *more: str, labels: str = "labels.npy"):
    return run_cli(
        "train", "--plugin", "numpy", "--input", data / "signals.npy", "--labels",
        data / labels, "--preset", "tiny", "--epochs", "1", "--out", out, *more,
    )  # fmt: skip


def snapshot(run: Path) -> dict[str, bytes]:
    """Every file of the run's own entries, by relative path."""
    return {
        str(p.relative_to(run)): p.read_bytes()
        for name in RUN_ENTRIES
        for p in ([run / name] if (run / name).is_file() else sorted((run / name).rglob("*")))
        if p.is_file()
    }


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_new_run_replaces_an_earlier_one_whole_and_keeps_other_files(
    in_tmp: Path, synthetic_npy: Path, run_cli
) -> None:
    first = train(run_cli, synthetic_npy, "run", "--seed", "1")
    assert first.code == 0, first.err
    (in_tmp / "run" / "notes.txt").write_text("mine")
    (in_tmp / "run" / "best" / "stale.txt").write_text("from an older biosig")
    refused = train(run_cli, synthetic_npy, "run", "--seed", "2")
    assert refused.code == 2
    assert refused.err_lines == [
        "error: --out run holds an earlier run: continue it with --resume run, replace it "
        "with --force, or choose another --out"
    ]
    second = train(run_cli, synthetic_npy, "run", "--seed", "2", "--force")
    assert second.code == 0, second.err
    assert "run held an earlier run: this one replaces it" in second.err
    run = in_tmp / "run"
    assert not (run / "best" / "stale.txt").exists()
    assert (run / "notes.txt").read_text() == "mine"
    assert '"seed": 2' in (run / "resume" / "settings.json").read_text()
    assert [p.name for p in in_tmp.iterdir() if p.name.startswith(".")] == []


def test_a_new_run_that_fails_before_its_first_epoch_puts_the_earlier_one_back(
    in_tmp: Path, synthetic_npy: Path, run_cli
) -> None:
    assert train(run_cli, synthetic_npy, "run").code == 0
    before = snapshot(in_tmp / "run")
    np.save(in_tmp / "one_class.npy", np.array(["a"] * 30))
    failed = run_cli(
        "train", "--plugin", "numpy", "--input", synthetic_npy / "signals.npy",
        "--labels", in_tmp / "one_class.npy", "--preset", "tiny", "--out", "run", "--force",
    )  # fmt: skip
    assert failed.code == 2 and "class" in failed.err_lines[-1]
    assert snapshot(in_tmp / "run") == before
    assert [p.name for p in in_tmp.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("new_run_finished_an_epoch", [False, True])
def test_what_a_killed_run_left_aside_is_settled_by_the_next(
    tmp_path: Path, new_run_finished_an_epoch: bool
) -> None:
    run = tmp_path / "run"
    aside = tmp_path / f".run.old-{dead_pid()}"
    (aside / "best").mkdir(parents=True)
    (aside / "best" / "biosig.json").write_text("old")
    (aside / "history.tsv").write_text("old")
    (run / "resume").mkdir(parents=True)
    (run / "resume" / "settings.json").write_text("new")
    if new_run_finished_an_epoch:
        (run / "last").mkdir()
        (run / "last" / "biosig.json").write_text("new")
    settle_earlier_run(run)
    assert not aside.exists()
    if new_run_finished_an_epoch:  # the new run is the one to resume
        assert sorted(p.name for p in run.iterdir()) == ["last", "resume"]
    else:  # the earlier run, whole, and nothing of the new one
        assert sorted(p.name for p in run.iterdir()) == ["best", "history.tsv"]
        assert (run / "best" / "biosig.json").read_text() == "old"


def test_a_run_killed_outright_never_leaves_two_runs_mixed(
    in_tmp: Path, synthetic_npy: Path, run_cli
) -> None:
    assert train(run_cli, synthetic_npy, "run").code == 0
    run = in_tmp / "run"
    old_settings = (run / "resume" / "settings.json").read_text()
    old_best = (run / "best" / "biosig.json").read_text()
    command = [
        sys.executable, "-m", "biosig", "train", "--plugin", "numpy",
        "--input", str(synthetic_npy / "signals.npy"),
        "--labels", str(synthetic_npy / "labels.npy"),
        "--preset", "tiny", "--epochs", "50", "--seed", "7", "--out", "run", "--force",
    ]  # fmt: skip
    child = subprocess.Popen(
        command, cwd=in_tmp, env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    settings = run / "resume" / "settings.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if settings.exists() and settings.read_text() != old_settings:
            break
        time.sleep(0.05)
    else:
        child.kill()
        pytest.fail("the new run never wrote its settings")
    child.send_signal(signal.SIGKILL)
    child.wait()
    # Killed after its settings, maybe before its first checkpoint: no old best/ or last/
    # beside the new settings, whatever the moment.
    for name in ("best", "last"):
        checkpoint = run / name / "biosig.json"
        assert not checkpoint.exists() or checkpoint.read_text() != old_best
    assert '"seed": 7' in settings.read_text()
    assert len([p for p in in_tmp.iterdir() if p.name.startswith(".run.old-")]) == 1
    again = train(run_cli, synthetic_npy, "run", "--seed", "3", "--force")  # settles the rest
    assert again.code == 0, again.err
    assert '"seed": 3' in settings.read_text()
    assert [p.name for p in in_tmp.iterdir() if p.name.startswith(".")] == []


def test_pretraining_into_an_earlier_pretraining_run_replaces_it(
    in_tmp: Path, synthetic_npy: Path, run_cli
) -> None:
    args = ("pretrain", "--plugin", "numpy", "--input", synthetic_npy / "signals.npy",
            "--preset", "tiny", "--epochs", "1", "--out", "pre")  # fmt: skip
    assert run_cli(*args, "--seed", "1").code == 0
    again = run_cli(*args, "--seed", "2", "--force")
    assert again.code == 0, again.err
    assert "pre held an earlier run: this one replaces it" in again.err
    assert '"seed": 2' in (in_tmp / "pre" / "resume" / "settings.json").read_text()
