"""The ``vibration`` plugin on the real motor CSVs of
``../shared/data/vibration/kafeel2021_motor_csv``: the rate from float-noisy timestamps
without a jitter warning, the three axes as channels, values as written (standardised,
saturated runs kept), and pairs of files grouped by run through a manifest."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from vibration_helpers import MOTOR_PIPELINE, plugin, read_all, whole

from biosig.pipeline import load_pipeline, relative_to_pipeline

#: Each file's run: consecutive file numbers are consecutive 5 s of one session (the data
#: README; the runs named by the file numbers it says they span).
RUNS = {
    "H5": "H1-H17", "H6": "H1-H17", "H30": "H22-H33", "H31": "H22-H33",
    "H95": "H89-H103", "H96": "H89-H103",
    "F20": "F15-F80", "F21": "F15-F80", "F85": "F82-F91", "F86": "F82-F91",
    "F108": "F107-F115", "F109": "F107-F115",
}  # fmt: skip


@pytest.fixture(scope="module")
def motor(shared_data: Path) -> Path:
    return shared_data / "vibration" / "kafeel2021_motor_csv"


def rail_fraction(x: np.ndarray) -> float:
    """Share of samples sitting at the minimum or maximum: the sensor's rails."""
    return float(np.mean((x == x.min()) | (x == x.max())))


def test_rate_axes_and_values_of_every_file(motor: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="biosig"):
        recs = read_all(plugin(), motor)
    assert not caplog.records  # 0.009000000000000001: float noise, not jitter
    assert set(recs) == set(RUNS)
    for rec_id, rec in recs.items():
        assert rec.fs == 1000 and rec.channels == ("accX", "accY", "accZ") and rec.n_samples == 5000
        path = motor / ("faulty" if rec_id.startswith("F") else "normal") / f"{rec_id}.csv"
        expected = pd.read_csv(path)[["accX", "accY", "accZ"]].to_numpy(np.float32).T
        x = whole(rec)
        np.testing.assert_array_equal(x, expected)  # nothing rescaled or clipped
        # already standardised by the dataset's authors
        assert np.all(np.abs(x.mean(axis=1)) < 0.1) and np.all(
            (x.std(axis=1) > 0.75) & (x.std(axis=1) < 1.05)
        )


def test_saturated_runs_are_kept(motor: Path) -> None:
    # the README: accZ at its rails 72-74 % of the time in F20/F21, accX 21-23 %
    for name in ("F20", "F21"):
        x = whole(read_all(plugin(), motor / "faulty" / f"{name}.csv")[name])
        assert 0.72 <= rail_fraction(x[2]) <= 0.745 and 0.21 <= rail_fraction(x[0]) <= 0.23
    assert rail_fraction(x[2]) == pytest.approx(0.721)  # F21, exactly as pandas counts it
    normal = whole(read_all(plugin(), motor / "normal" / "H5.csv")["H5"])
    assert 0.05 <= rail_fraction(normal[2]) <= 0.20


def test_manifest_groups_consecutive_files_by_run(motor: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "motor.csv"
    folder = {"F": "faulty", "H": "normal"}
    rows = [f"{folder[f[0]]}/{f}.csv,{folder[f[0]]},{run}" for f, run in RUNS.items()]
    manifest.write_text("path,label,group\n" + "\n".join(rows) + "\n")
    p = plugin(manifest=manifest)
    recs = read_all(p, motor)
    assert {rec_id: p.group(rec) for rec_id, rec in recs.items()} == RUNS
    labels = {iv.recording_id: iv.label for iv in p.labels("manifest", list(recs.values()))}
    folder = {iv.recording_id: iv.label for iv in p.labels("folder", list(recs.values()))}
    assert labels == folder and set(labels.values()) == {"normal", "faulty"}


def test_only_chosen_axes_are_read(motor: Path) -> None:
    rec = read_all(plugin(channels="accZ"), motor / "faulty" / "F85.csv")["F85"]
    assert rec.channels == ("accZ",) and whole(rec).shape == (1, 5000)


def test_the_pipeline_splits_by_run(motor: Path, monkeypatch) -> None:
    monkeypatch.chdir(motor)  # the pipeline's paths are read from its own folder
    settings = load_pipeline(MOTOR_PIPELINE)
    assert settings["split"] == "group" and settings["labels"] == "folder"
    inputs = [relative_to_pipeline(MOTOR_PIPELINE, i) for i in settings["input"]]
    assert Path(inputs[0]).resolve() == motor.resolve()
    manifest = relative_to_pipeline(MOTOR_PIPELINE, settings["manifest"])
    p = plugin(manifest=manifest, channels=settings["channels"])
    recs = read_all(p, *inputs)
    assert {rec_id: p.group(rec) for rec_id, rec in recs.items()} == RUNS
    manifest = {iv.recording_id: iv.label for iv in p.labels("manifest", list(recs.values()))}
    assert manifest == {iv.recording_id: iv.label for iv in p.labels("folder", list(recs.values()))}
