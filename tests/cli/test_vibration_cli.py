"""The ``vibration`` plugin through the ``biosig`` commands: a broken file, an unknown rate
or a missing manifest is one ``error:`` line and a non-zero exit, never a traceback; without
``--strict`` a broken file is skipped with its line named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

FAST = ("--preset", "tiny", "--epochs", "1", "--window", "256", "--hop", "256")


def signal_csv(path: Path, rows: int = 3000, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    lines = ["t,x,y"] + [f"{i / 1000!r},{rng.normal():.4f},{rng.normal():.4f}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def one_error_line(result, *fragments: str) -> str:
    assert result.code != 0
    assert len(result.err_lines) == 1, result.err_lines
    line = result.err_lines[0]
    assert line.startswith("error: ") and "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in line, line
    return line


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        ("cell", "bad.csv: line 2501: x is 'oops', not a number"),
        ("ragged", "bad.csv: line 2501: 4 fields where the header has 3"),
        ("empty", "bad.csv: empty file (no rows)"),
    ],
)
def test_a_broken_csv_stops_strict_training_in_one_line(in_tmp: Path, run_cli, damage, fragment):
    signal_csv(in_tmp / "good.csv")
    bad = signal_csv(in_tmp / "bad.csv", seed=1)
    lines = bad.read_text().splitlines()
    if damage == "cell":
        lines[2500] = "2.499,oops,1.0"
    elif damage == "ragged":
        lines[2500] += ",7"
    else:
        lines = []
    bad.write_text("\n".join(lines))
    (in_tmp / "labels.tsv").write_text("good\ta\nbad\tb\n")
    result = run_cli(
        "train", "--plugin", "vibration", "--input", "good.csv", "--input", "bad.csv",
        "--labels", "labels.tsv", "--sample-rate", "1000", "--strict", *FAST,
    )  # fmt: skip
    one_error_line(result, fragment)
    assert not (in_tmp / "runs").exists()


def test_without_strict_a_broken_file_is_skipped_with_its_line(in_tmp: Path, run_cli) -> None:
    for i in range(2):
        signal_csv(in_tmp / f"a{i}.csv", seed=i)
        signal_csv(in_tmp / f"b{i}.csv", seed=10 + i)
    bad = in_tmp / "b1.csv"
    bad.write_text(bad.read_text().replace("\n2.0,", "\n2.0,1.0,2.0,3.0,", 1))
    (in_tmp / "labels.tsv").write_text("a0\ta\na1\ta\nb0\tb\nb1\tb\n")
    result = run_cli(
        "train", "--plugin", "vibration", "--input", ".", "--labels", "labels.tsv",
        "--sample-rate", "1000", "--split", "time", *FAST,
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "b1.csv: line 2002: 6 fields where the header has 3 (skipped)" in result.err
    assert "skipped 1 damaged file(s)" in result.err


def test_unknown_rate_and_missing_manifest_are_one_line(in_tmp: Path, run_cli) -> None:
    (in_tmp / "run.csv").write_text("x,y\n0.5,2\n-1.25,4\n0.75,6\n")
    (in_tmp / "labels.tsv").write_text("run\ta\nother\tb\n")
    args = ("train", "--plugin", "vibration", "--input", "run.csv", "--labels", "labels.tsv")
    one_error_line(run_cli(*args), "run.csv: sample rate unknown; give --fs")
    one_error_line(
        run_cli(*args, "--manifest", "nope.csv"), f"{in_tmp / 'nope.csv'}: manifest not found"
    )
    one_error_line(run_cli(*args, "--fs", "-5"), "--fs -5.0: give a rate in Hz, or 0")


def test_a_v73_mat_file_is_one_line(in_tmp: Path, run_cli) -> None:
    import h5py

    with h5py.File(in_tmp / "new.mat", "w") as handle:
        handle["X1_DE_time"] = np.zeros((1, 100))
    (in_tmp / "labels.tsv").write_text("new\ta\n")
    result = run_cli(
        "train", "--plugin", "vibration", "--input", "new.mat", "--labels", "labels.tsv",
        "--fs", "12000", "--strict",
    )  # fmt: skip
    one_error_line(result, "new.mat: MATLAB v7.3 (HDF5) files are not read: save with -v7")


def test_without_labels_the_folders_name_the_classes(in_tmp: Path, run_cli) -> None:
    # `folder` is the plugin's default label word: files sorted into one folder per class
    # train without --labels, and evaluate scores them the same way.
    for cls, seed in (("normal", 0), ("faulty", 10)):
        (in_tmp / "data" / cls).mkdir(parents=True)
        for i in range(2):
            signal_csv(in_tmp / "data" / cls / f"{cls}{i}.csv", seed=seed + i)
    trained = run_cli(
        "train", "--plugin", "vibration", "--input", "data", "--sample-rate", "1000",
        "--split", "time", "--out", "model", *FAST,
    )  # fmt: skip
    assert trained.code == 0, trained.err
    evaluated = run_cli("evaluate", "--model", "model", "--input", "data", "--json")
    assert evaluated.code == 0, evaluated.err
    report = json.loads(evaluated.out)
    assert sorted(report["classes"]) == ["faulty", "normal"]
