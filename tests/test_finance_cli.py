"""``finance`` end to end through ``biosig train``/``evaluate`` with spans.

The acceptance run: on a driftless random walk, a model trained on the first 80 % of the
bars predicts the direction of the last 20 % no better than the majority class; anything
better would be a leak of the future through the features, the labels or the split. A
control shows the same recipe finding a planted leak, and the pipeline file runs on a real
intraday file. The slowest finance tests: about a minute of CPU together."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from biosig_finance import FinancePlugin
from biosig_finance.synthetic import random_walk, write_csv

from biosig import LabelledInterval

REPO = Path(__file__).resolve().parents[1]
TRAIN = ("--labels", "direction", "--preset", "tiny", "--out", "model", "--span", "0:0.8")
EVALUATE = ("--model", "model", "--labels", "direction", "--span", "0.8:1", "--json")


@pytest.fixture
def one_torch_thread():
    """One torch thread: on a shared 2-core machine, two threads competing with other
    processes made training about 20 times slower."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def train_and_score(run_cli, path: Path, epochs: int = 2) -> dict:
    """Train on ``--span 0:0.8`` of ``path``, then the metrics on ``--span 0.8:1``."""
    trained = run_cli("train", "--plugin", "finance", "--input", path, *TRAIN, "--epochs", epochs)
    assert trained.code == 0, trained.err
    scored = run_cli("evaluate", "--input", path, *EVALUATE)
    assert scored.code == 0, scored.err
    return json.loads(scored.out)


def test_a_random_walk_tail_is_not_predicted(run_cli, in_tmp: Path, one_torch_thread) -> None:
    # 20 000 bars: 4 000 scored, so chance alone moves accuracy and the majority rate by
    # about 0.01 each, and a gap of 0.03 is no accident.
    path = write_csv(in_tmp / "walk.csv", random_walk(20_000, seed=0), seed=0)
    report = train_and_score(run_cli, path)
    assert report["n"] == 4000 - 5  # every tail bar with 5 bars after it
    assert abs(report["accuracy"] - report["majority_rate"]) <= 0.03, report
    assert abs(report["balanced_accuracy"] - 0.5) <= 0.03, report


def test_the_same_run_finds_a_leak_of_the_future(
    run_cli, in_tmp: Path, one_torch_thread, monkeypatch
) -> None:
    # The control: label the window ending at bar i + h instead of i. The window now holds
    # the very returns its label sums, and accuracy leaves the majority rate far behind.
    honest = FinancePlugin.labels

    def leaky(self, source, recordings):
        return [
            LabelledInterval(iv.recording_id, iv.start + 5, iv.stop + 5, iv.label, iv.label_end)
            for iv in honest(self, source, recordings)
        ]

    monkeypatch.setattr(FinancePlugin, "labels", leaky)
    path = write_csv(in_tmp / "walk.csv", random_walk(3000, seed=1), seed=1)
    report = train_and_score(run_cli, path)
    # about 0.63 against 0.53: far past the 0.03 the random-walk acceptance allows
    assert report["accuracy"] > report["majority_rate"] + 0.06, report


def test_the_pipeline_trains_and_scores_a_real_intraday_file(
    shared_data: Path, run_cli, in_tmp: Path, one_torch_thread
) -> None:
    intraday = shared_data / "finance" / "2006-min-005.txt"
    pipeline = REPO / "pipelines" / "finance-direction.toml"
    trained = run_cli(
        "train", "--pipeline", pipeline, "--input", intraday, "--epochs", "1", "--out", "model"
    )
    assert trained.code == 0, trained.err
    assert "the last part of each recording" in trained.out  # split in time
    scored = run_cli("evaluate", "--input", intraday, *EVALUATE)
    assert scored.code == 0, scored.err
    report = json.loads(scored.out)
    # the last 20 % of 2,142 bars, less the 5 whose future runs past the end
    assert report["n"] == 2142 - round(0.8 * 2142) - 5
    assert set(report["classes"]) == {"up", "down"}
