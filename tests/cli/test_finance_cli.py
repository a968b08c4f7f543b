"""``finance`` end to end through ``biosig train``/``evaluate`` with spans.

The acceptance run: on a driftless random walk, a model trained on the first part of the
bars predicts the direction of the rest no better than the majority class; anything better
would be a leak of the future through the features, the labels or the split. A control runs
the very same recipe on the very same walk with a leak planted, and finds it, so that the
acceptance run is not passed by a model that learns nothing. The pipeline file runs on a
real intraday file, and two files over different years are cut on one calendar date."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from biosig_finance import FinancePlugin
from biosig_finance.ohlcv import read_bars
from biosig_finance.synthetic import random_walk, write_csv

from biosig import LabelledInterval
from biosig.plugin.contract import iter_recordings
from biosig.plugin.labels import restrict_to_span
from biosig.plugin.registry import get_plugin

REPO = Path(__file__).resolve().parents[2]
EVALUATE = ("--model", "model", "--labels", "direction", "--span", "0.8:1", "--json")

#: The acceptance recipe, shared with its control. Training costs per training label and
#: scoring is cheap, so the walk is cut early: 6 000 bars, the first 30 % to train on (1 800
#: labels, 2 epochs at a brisk learning rate: about 10 s on one thread) and the other 70 %
#: scored, 4 195 bars. Chance moves accuracy and the majority rate by about 0.015 each there,
#: so a gap of 0.03 is no accident. On this recipe a planted leak scores about 0.76.
N_BARS = 6000
CUT = 0.3
RECIPE = (
    "--labels", "direction", "--preset", "tiny", "--out", "model",
    "--span", f"0:{CUT}", "--epochs", "2", "--batch-size", "64", "--lr", "3e-3",
)  # fmt: skip


def train_and_score(run_cli, path: Path) -> dict:
    """Train with :data:`RECIPE` on ``path``, then the metrics on the rest of it."""
    trained = run_cli("train", "--plugin", "finance", "--input", path, *RECIPE)
    assert trained.code == 0, trained.err
    scored = run_cli(
        "evaluate", "--input", path, "--model", "model", "--labels", "direction",
        "--span", f"{CUT}:1", "--json",
    )  # fmt: skip
    assert scored.code == 0, scored.err
    return json.loads(scored.out)


def bars_from(path: Path, fraction: float) -> int:
    """Bars of ``path`` at or after the moment ``fraction`` of the way through its calendar,
    where the core cuts a recording with ``times``; e.g. the 2006 5-minute file's 80 % falls
    on the night before its last four days."""
    times = read_bars(path).times
    moment = times[0] + fraction * (times[-1] - times[0])
    return int(np.sum(times >= moment))


def walk(directory: Path) -> Path:
    """The acceptance run's random walk, seed 0."""
    return write_csv(directory / "walk.csv", random_walk(N_BARS, seed=0), seed=0)


def test_a_random_walk_tail_is_not_predicted(run_cli, in_tmp: Path, one_torch_thread) -> None:
    path = walk(in_tmp)
    report = train_and_score(run_cli, path)
    assert report["n"] == bars_from(path, CUT) - 5 >= 4000  # every tail bar with 5 after it
    assert abs(report["accuracy"] - report["majority_rate"]) <= 0.03, report
    assert abs(report["balanced_accuracy"] - 0.5) <= 0.03, report

    # prediction: one forecast per bar, for every bar whose window is past the warm-up
    predicted = run_cli("predict", "--model", "model", "--out", "out", path)
    assert predicted.code == 0, predicted.err
    windows = pd.read_csv(in_tmp / "out" / "windows.tsv", sep="\t")
    warm_up, window = 20, 64
    assert windows["start"].tolist() == list(range(warm_up, N_BARS - window + 1))
    assert (windows["end"] - windows["start"] == window).all()
    assert np.allclose(windows[["p_down", "p_up"]].sum(axis=1), 1, atol=1e-5)
    # each row's calendar: the dates of its first bar and of the bar it forecasts from
    times = read_bars(path).times
    assert windows["start_time"].tolist() == [
        pd.Timestamp(times[s]).isoformat() for s in windows["start"]
    ]
    assert windows["end_time"].tolist() == [
        pd.Timestamp(times[e - 1]).isoformat() for e in windows["end"]
    ]
    segments = pd.read_csv(in_tmp / "out" / "segments.tsv", sep="\t")
    assert segments["start_time"].iloc[0] == windows["start_time"].iloc[0]
    assert segments["end_time"].iloc[-1] == windows["end_time"].iloc[-1]
    recordings = pd.read_csv(in_tmp / "out" / "recordings.tsv", sep="\t")
    assert recordings["n_windows"].tolist() == [len(windows)]


def test_the_same_run_finds_a_leak_of_the_future(
    run_cli, in_tmp: Path, one_torch_thread, monkeypatch
) -> None:
    # The control: label the window ending at bar i + h instead of i. The window now holds
    # the very returns its label sums. Same walk, same recipe, same commands: only the leak.
    honest = FinancePlugin.labels

    def leaky(self, source, recordings):
        return [
            LabelledInterval(iv.recording_id, iv.start + 5, iv.stop + 5, iv.label, iv.label_end)
            for iv in honest(self, source, recordings)
        ]

    monkeypatch.setattr(FinancePlugin, "labels", leaky)
    report = train_and_score(run_cli, walk(in_tmp))
    # about 0.76 against 0.51: far past the 0.03 the acceptance run allows
    assert report["accuracy"] > report["majority_rate"] + 0.1, report
    assert report["balanced_accuracy"] > 0.6, report


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
    # the bars of the last 20 % of the calendar (the last four days, 408 bars), less the 5
    # whose future runs past the end
    assert report["n"] == bars_from(intraday, 0.8) - 5 == 4 * 102 - 5
    assert set(report["classes"]) == {"up", "down"}


def test_overlapping_files_are_cut_on_one_calendar_date(
    run_cli, in_tmp: Path, one_torch_thread
) -> None:
    # Two series over different but overlapping years. Cut file by file, 80 % of the long
    # one (2000-2009) ends in 2008 and 80 % of the short one (2002 to mid-2008) in early
    # 2007: the model would train on the long file's 2007 while the short file's 2007 is
    # scored. Cut on one calendar (the core does so when every recording has ``times``), no
    # label trained on reads a bar on or after the first day scored, in either file.
    data = in_tmp / "prices"
    for name, first, last, seed in (
        ("long", "2000-01-03", "2009-12-31", 3),
        ("short", "2002-01-02", "2008-06-30", 4),
    ):
        n = len(pd.bdate_range(first, last))  # write_csv dates its bars on business days
        write_csv(data / f"{name}.csv", random_walk(n, seed=seed), seed=seed, start=first)
    trained = run_cli(
        "train", "--plugin", "finance", "--input", data, "--labels", "direction",
        "--span", "0:0.8", "--preset", "tiny", "--epochs", "1", "--batch-size", "128",
        "--out", "M",
    )  # fmt: skip
    assert trained.code == 0, trained.err
    scored = run_cli(
        "evaluate", "--model", "M", "--input", data, "--labels", "direction",
        "--span", "0.8:1", "--json",
    )  # fmt: skip
    assert scored.code == 0, scored.err
    training = json.loads((in_tmp / "M" / "best" / "biosig.json").read_text())["training"]
    assert training["span"] == [0.0, 0.8]

    # The spans the two commands took, from the function they call.
    p = get_plugin("finance")
    recordings = list(iter_recordings(p, p.find([data])))
    times = {r.id: r.times for r in recordings}
    labels = p.labels("direction", recordings)
    trained_on = restrict_to_span(labels, recordings, (0.0, 0.8))
    evaluated = restrict_to_span(labels, recordings, (0.8, 1.0))
    assert json.loads(scored.out)["n"] == len(evaluated)
    assert 0 < training["n_train_windows"] + training["n_val_windows"] <= len(trained_on)
    assert {iv.recording_id for iv in evaluated} == {"long", "short"}

    first_scored = min(times[iv.recording_id][iv.start] for iv in evaluated)
    last_decision = max(times[iv.recording_id][iv.start] for iv in trained_on)
    last_read = max(times[iv.recording_id][iv.label_end - 1] for iv in trained_on)
    assert last_decision < first_scored, (last_decision, first_scored)
    assert last_read < first_scored, (
        f"labels trained on read {last_read}, scored from {first_scored}"
    )
