"""Warnings when what a model is given differs from what it was trained on."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from checkpoint_helpers import meta_for

from biosig import ArrayRecording
from biosig.inference.mismatch import InputMismatch, warn_if_trained_on
from biosig.nn.model import model_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def recording(rec_id: str, channels: tuple[str, ...], fs: float) -> ArrayRecording:
    return ArrayRecording(rec_id, np.zeros((len(channels), 100), np.float32), fs, channels)


def meta(**training) -> object:
    return meta_for(
        model_config("tiny", 2, 2), ["a", "b"], channels=("I", "II"), training=training or None
    )


def warnings_of(log: pytest.LogCaptureFixture) -> list[str]:
    # by number: the CLI, run earlier in the session, renames the level "warning"
    return [r.getMessage() for r in log.records if r.levelno == logging.WARNING]


def test_other_channel_names_and_rates_are_named_once(biosig_log) -> None:
    check = InputMismatch(meta(input_rates=[360.0]))
    with biosig_log.at_level("WARNING", logger="biosig"):
        check.check(recording("same", ("I", "II"), 360.0))
        assert warnings_of(biosig_log) == []
        check.check(recording("100", ("MLII", "V5"), 360.0))
        check.check(recording("101", ("MLII", "V1"), 250.0))
        check.check(recording("102", ("MLII", "V1"), 250.0))
    assert warnings_of(biosig_log) == [
        "recording 100 has channels MLII, V5; the model was trained on I, II: it reads "
        "channels by position, so check they are the same signals in the same order",
        "recording 101 is at 250 Hz; the model was trained on recordings at 360 Hz: the "
        "plugin resamples it, but its preprocessing was not tried at this rate",
    ]


def test_a_model_without_training_rates_warns_of_none(biosig_log) -> None:
    with biosig_log.at_level("WARNING", logger="biosig"):
        InputMismatch(meta()).check(recording("x", ("I", "II"), 1000.0))
    assert warnings_of(biosig_log) == []


def test_scoring_files_the_model_was_trained_on_is_warned_about(tmp_path: Path, biosig_log) -> None:
    (tmp_path / "train").mkdir()
    inside = tmp_path / "train" / "a.npy"
    inside.touch()
    other = tmp_path / "test.npy"
    other.touch()
    trained = meta(inputs=[str(tmp_path / "train")])
    with biosig_log.at_level("WARNING", logger="biosig"):
        warn_if_trained_on([other], trained)
        assert warnings_of(biosig_log) == []
        warn_if_trained_on([inside, other], trained)
    assert warnings_of(biosig_log) == [
        f"1 of the 2 files scored were among the model's training inputs ({inside}): their "
        "scores overstate what it does on recordings it has not seen"
    ]


def test_evaluate_on_the_training_file_warns_and_the_checkpoint_keeps_its_rates(
    in_tmp: Path, synthetic_npy: Path, run_cli
) -> None:
    signals, labels = synthetic_npy / "signals.npy", synthetic_npy / "labels.npy"
    trained = run_cli(
        "train", "--plugin", "numpy", "--input", signals, "--labels", labels,
        "--preset", "tiny", "--epochs", "1", "--out", "m",
    )  # fmt: skip
    assert trained.code == 0, trained.err
    info = json.loads((in_tmp / "m" / "best" / "biosig.json").read_text())
    assert info["training"]["input_rates"] == [1.0]
    scored = run_cli("evaluate", "--model", "m", "--input", signals, "--labels", labels)
    assert scored.code == 0, scored.err
    assert "1 of the 1 files scored were among the model's training inputs" in scored.err


def test_a_file_of_the_same_relative_name_elsewhere_is_not_taken_for_a_training_input(
    in_tmp: Path, synthetic_npy: Path, run_cli, monkeypatch
) -> None:
    # Trained from one folder on data/signals.npy, scored from another on its own
    # data/signals.npy: the checkpoint keeps where the training inputs were, not the
    # relative name as typed.
    for side in ("train", "test"):
        (in_tmp / side / "data").mkdir(parents=True)
        for name in ("signals.npy", "labels.npy"):
            shutil.copy(synthetic_npy / name, in_tmp / side / "data" / name)
    monkeypatch.chdir(in_tmp / "train")
    trained = run_cli(
        "train", "--plugin", "numpy", "--input", "data/signals.npy",
        "--labels", "data/labels.npy", "--preset", "tiny", "--epochs", "1", "--out", "../m",
    )  # fmt: skip
    assert trained.code == 0, trained.err
    info = json.loads((in_tmp / "m" / "best" / "biosig.json").read_text())
    assert info["training"]["inputs"] == [str(in_tmp / "train" / "data" / "signals.npy")]
    monkeypatch.chdir(in_tmp / "test")
    args = ("--model", "../m", "--input", "data/signals.npy", "--labels", "data/labels.npy")
    scored = run_cli("evaluate", *args)
    assert scored.code == 0, scored.err
    assert "training inputs" not in scored.err
