"""``biosig evaluate --report DIR``: metrics.json, confusion and learning-curve PNGs, the
per-class table in the text output, and one-line errors for a directory it cannot write."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

CLASSES = ["background", "rhythm", "spikes"]
N_RECORDINGS, LENGTH, WINDOW = 30, 256, 128
#: One epoch of the tiny model: the report's content, not the model's quality, is tested.
TINY = ("--preset", "tiny", "--epochs", "1", "--window", str(WINDOW), "--hop", "64")
DATA = ("--input", "signals.npy", "--labels", "labels.npy")
REPORT_FILES = ["confusion.png", "learning_curves.png", "metrics.json"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory, synthetic_npy: Path, run_cli) -> Path:
    """A directory with the synthetic data and one trained run, runs/numpy/<timestamp>
    (linked from runs/numpy/latest)."""
    work = tmp_path_factory.mktemp("evaluate-report")
    for name in ("signals.npy", "labels.npy"):
        shutil.copy(synthetic_npy / name, work / name)
    trained = run_cli("train", "--plugin", "numpy", *DATA, *TINY, cwd=work)
    assert trained.code == 0, trained.err
    assert (work / "runs" / "numpy" / "latest" / "history.tsv").is_file()
    return work


def test_report_writes_metrics_confusion_and_curves(work: Path, run_cli) -> None:
    result = run_cli("evaluate", "--model", "runs/numpy/latest", *DATA, "--report", "rep", cwd=work)
    assert result.code == 0, result.err
    report = work / "rep"
    # exactly these files: nothing temporary left behind
    assert sorted(p.name for p in report.iterdir()) == REPORT_FILES
    metrics = json.loads((report / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["classes"] == CLASSES
    assert metrics["n"] == N_RECORDINGS * LENGTH // WINDOW
    assert np.sum(metrics["confusion"]) == metrics["n"]
    assert imread(report / "confusion.png").shape == (700, 800, 4)
    assert imread(report / "learning_curves.png").shape == (800, 900, 4)

    # the text output still goes to stdout, per-class table included, matching the JSON
    rows = {}
    for line in result.out.splitlines():
        parts = line.split()
        if parts and parts[0] in CLASSES and len(parts) == 5:
            rows[parts[0]] = parts[1:]
    assert list(rows) == CLASSES
    for name, (precision, recall, f1, support) in rows.items():
        expected = metrics["per_class"][name]
        assert float(precision) == pytest.approx(expected["precision"], abs=5e-5)
        assert float(recall) == pytest.approx(expected["recall"], abs=5e-5)
        assert float(f1) == pytest.approx(expected["f1"], abs=5e-5)
        assert int(support) == expected["support"] == 20
    assert "precision" in result.out and "support" in result.out


def test_report_with_json_prints_the_same_json(work: Path, run_cli) -> None:
    args = ("evaluate", "--model", "runs/numpy/latest", *DATA, "--json", "--report", "j/k")
    result = run_cli(*args, cwd=work)
    assert result.code == 0, result.err
    assert len(result.out.strip().splitlines()) == 1
    written = json.loads((work / "j" / "k" / "metrics.json").read_text(encoding="utf-8"))
    assert json.loads(result.out) == written  # and the parents of DIR were created


def model_paths(work: Path) -> dict[str, tuple[list[str], bool]]:
    """Ways to name the model -> (arguments, whether its run's history is found)."""
    run = (work / "runs" / "numpy" / "latest").resolve()
    copied = work / "copied-model"
    if not copied.exists():
        shutil.copytree(run / "best", copied)
    # a history.tsv beside a model copied out of its run is not taken for the model's
    shutil.copy(run / "history.tsv", work / "history.tsv")
    return {
        "run-dir": (["--model", str(run)], True),
        "best-checkpoint": (["--model", str(run / "best")], True),
        "latest-link-best": (["--model", "runs/numpy/latest/best"], True),
        "plugin-latest": (["--plugin", "numpy"], True),
        "copied-checkpoint": (["--model", copied.name], False),
    }


@pytest.mark.parametrize(
    "how",
    ["run-dir", "best-checkpoint", "latest-link-best", "plugin-latest", "copied-checkpoint"],
)
def test_history_is_found_from_any_model_path(work: Path, run_cli, how: str) -> None:
    args, has_history = model_paths(work)[how]
    result = run_cli("evaluate", *args, *DATA, "--json", "--report", f"by-{how}", cwd=work)
    assert result.code == 0, result.err
    written = sorted(p.name for p in (work / f"by-{how}").iterdir())
    if has_history:
        assert written == REPORT_FILES
    else:
        assert written == ["confusion.png", "metrics.json"]


def assert_one_error_line(result, fragments: list[str]) -> None:
    assert result.code == 2
    assert result.out == ""
    # a single line: the evaluation never started (its progress bars would be on stderr)
    assert len(result.err_lines) == 1, result.err
    line = result.err_lines[0]
    assert line.startswith("error: ") and "internal error" not in line
    for fragment in fragments:
        assert fragment in line


def test_report_into_a_file_is_one_error_line(work: Path, run_cli) -> None:
    (work / "taken").write_text("not a directory", encoding="utf-8")
    for target, fragments in [
        ("taken", ["taken: not a directory"]),
        ("taken/sub", ["taken/sub: cannot create it", "taken is not a directory"]),
    ]:
        result = run_cli(
            "evaluate", "--model", "runs/numpy/latest", *DATA, "--report", target, cwd=work
        )
        assert_one_error_line(result, fragments)
    assert (work / "taken").read_text(encoding="utf-8") == "not a directory"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write anywhere")
def test_report_into_a_read_only_directory_is_one_error_line(work: Path, run_cli) -> None:
    locked = work / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        result = run_cli(
            "evaluate", "--model", "runs/numpy/latest", *DATA, "--report", "locked/rep", cwd=work
        )
        assert_one_error_line(result, ["locked/rep: not writable", "permission denied"])
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_a_write_failure_after_evaluating_is_one_error_line(
    work: Path, run_cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The directory passes the check but a file cannot be written (disk full, or the
    directory replaced meanwhile): one line, nothing on stdout."""
    import biosig.inference.evaluation as evaluate_module

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device", str(work / "full" / "metrics.json"))

    monkeypatch.setattr(evaluate_module, "atomic_file", full)
    result = run_cli(
        "evaluate", "--model", "runs/numpy/latest", *DATA, "--report", "full", cwd=work
    )
    assert result.code == 2
    assert result.out == ""
    assert (
        result.err_lines[-1] == f"error: {work / 'full' / 'metrics.json'}: No space left on device"
    )
    assert "Traceback" not in result.err
