"""The command line end to end: the user's train → predict → evaluate workflow on small
synthetic arrays, output tables, pipeline files, reproducibility, and how bad input fails."""

from __future__ import annotations

import csv
import importlib
import io
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from safetensors.numpy import load_file

from biosig.cli import main

CLASSES = ["background", "rhythm", "spikes"]
P_COLUMNS = [f"p_{c}" for c in CLASSES]
WINDOW_COLUMNS = [
    "recording", "file", "start", "end", "start_s", "end_s", "start_time", "end_time", "label",
    "confidence", *P_COLUMNS,
]  # fmt: skip
RECORDING_COLUMNS = ["recording", "file", "label", "confidence", "n_windows", *P_COLUMNS]
N_RECORDINGS, LENGTH, WINDOW, HOP = 30, 256, 128, 64
#: Window starts of one 256-sample recording cut into 128-sample windows every 64 samples.
STARTS = [0, 64, 128]
#: Keep every training run tiny: the suite runs on a 2-core CPU.
SMALL = ("--preset", "tiny", "--epochs", "2", "--window", str(WINDOW), "--hop", str(HOP))
#: Probabilities are written with 6 significant digits.
TOLERANCE = 1e-5


def train_args(signals: str | Path, labels: str | Path, *extra: str | Path) -> list[str | Path]:
    """The user's command, ``biosig train --plugin numpy --input S --labels L``, kept small."""
    return ["train", "--plugin", "numpy", "--input", signals, "--labels", labels, *SMALL, *extra]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, synthetic_npy: Path, run_cli) -> Path:
    """A working directory holding signals.npy and labels.npy, in which the user's workflow
    has trained one model (runs/numpy/<timestamp>, runs/numpy/latest)."""
    work = tmp_path_factory.mktemp("workflow")
    for name in ("signals.npy", "labels.npy"):
        shutil.copy(synthetic_npy / name, work / name)
    result = run_cli(*train_args("signals.npy", "labels.npy"), cwd=work)
    assert result.code == 0, result.err
    return work


def read_table(path: Path) -> list[dict[str, str]]:
    """Rows of a TSV, CSV, JSONL or Parquet prediction table (JSONL and Parquet values as
    text, for comparison)."""
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
        return [{k: str(v) for k, v in row.items()} for row in frame.to_dict("records")]
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [{k: str(v) for k, v in json.loads(line).items()} for line in text.splitlines()]
    return list(csv.DictReader(text.splitlines(), delimiter="\t" if path.suffix == ".tsv" else ","))


def table_columns(path: Path) -> list[str]:
    """The header of a TSV or CSV table; the keys of a JSONL table's first row; a Parquet
    table's columns."""
    if path.suffix == ".parquet":
        return list(pq.read_schema(path).names)
    first = path.read_text(encoding="utf-8").splitlines()[0]
    if path.suffix == ".jsonl":
        return list(json.loads(first))
    return first.split("\t" if path.suffix == ".tsv" else ",")


def probabilities(row: dict[str, str]) -> np.ndarray:
    return np.array([float(row[c]) for c in P_COLUMNS])


def assert_prediction_row(row: dict[str, str]) -> None:
    """Probabilities sum to one; label and confidence are the most probable class."""
    p = probabilities(row)
    assert p.sum() == pytest.approx(1.0, abs=TOLERANCE)
    assert row["label"] == CLASSES[int(p.argmax())]
    assert float(row["confidence"]) == pytest.approx(p.max(), abs=TOLERANCE)


def history(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "history.tsv", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def meta(checkpoint: Path) -> dict:
    return json.loads((checkpoint / "biosig.json").read_text(encoding="utf-8"))


def files_under(directory: Path) -> set[Path]:
    """Files (and links) below ``directory``; an empty directory is not an output."""
    return {p.relative_to(directory) for p in directory.rglob("*") if p.is_file() or p.is_symlink()}


# --- the user's workflow ------------------------------------------------------------------


def test_train_writes_a_timestamped_run_and_points_latest_at_it(workdir: Path) -> None:
    runs = workdir / "runs" / "numpy"
    names = sorted(p.name for p in runs.iterdir())
    assert len(names) == 2 and names[1] == "latest", names
    stamp = names[0]
    assert re.fullmatch(r"\d{8}-\d{6}", stamp)
    latest = runs / "latest"
    assert latest.is_symlink()
    assert latest.resolve() == (runs / stamp).resolve()

    run = runs / stamp
    assert {p.name for p in run.iterdir()} == {
        "best",
        "last",
        "history.tsv",
        "resume",
        "learning_curves.png",
        "confusion.png",
    }
    for checkpoint in ("best", "last"):
        assert {p.name for p in (run / checkpoint).iterdir()} == {
            "model.safetensors",
            "biosig.json",
        }
    rows = history(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {"train_loss", "val_loss", "val_accuracy", "val_macro_f1"} <= set(rows[0])
    assert all(np.isfinite(float(r["train_loss"])) for r in rows)

    info = meta(run / "best")
    assert info["classes"] == CLASSES
    assert info["plugin"]["name"] == "numpy"
    assert (info["window"], info["hop"], info["preset"]) == (WINDOW, HOP, "tiny")
    assert info["model"]["in_channels"] == 1
    assert info["training"]["n_recordings"] == N_RECORDINGS
    assert info["training"]["epochs"] == 2


def test_predict_without_model_uses_latest_and_prints_recordings(workdir: Path, run_cli) -> None:
    result = run_cli("predict", "--plugin", "numpy", "signals.npy", cwd=workdir)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split("\t") == RECORDING_COLUMNS
    rows = list(csv.DictReader(lines, delimiter="\t"))
    assert [r["recording"] for r in rows] == [str(i) for i in range(N_RECORDINGS)]
    for row in rows:
        assert int(row["n_windows"]) == len(STARTS)
        assert_prediction_row(row)


def test_predict_out_writes_window_recording_and_segment_tables(
    workdir: Path, tmp_path: Path, run_cli
) -> None:
    out = tmp_path / "predictions"
    result = run_cli("predict", "--plugin", "numpy", "signals.npy", "--out", out, cwd=workdir)
    assert result.code == 0, result.err
    assert f"{N_RECORDINGS} recordings predicted" in result.err
    assert sorted(p.name for p in out.iterdir()) == [
        "recordings.tsv",
        "segments.tsv",
        "windows.tsv",
    ]
    assert table_columns(out / "windows.tsv") == WINDOW_COLUMNS
    assert table_columns(out / "recordings.tsv") == RECORDING_COLUMNS

    windows = read_table(out / "windows.tsv")
    assert len(windows) == N_RECORDINGS * len(STARTS)
    recordings = read_table(out / "recordings.tsv")
    assert [r["recording"] for r in recordings] == [str(i) for i in range(N_RECORDINGS)]
    for rec in recordings:
        mine = [w for w in windows if w["recording"] == rec["recording"]]
        assert [int(w["start"]) for w in mine] == STARTS
        assert [int(w["end"]) for w in mine] == [s + WINDOW for s in STARTS]
        for window in mine:
            assert_prediction_row(window)
        assert int(rec["n_windows"]) == len(mine)
        mean = np.mean([probabilities(w) for w in mine], axis=0)
        np.testing.assert_allclose(probabilities(rec), mean, atol=TOLERANCE)
        assert_prediction_row(rec)
        # segments cover each recording from its first window's start to its last's end
        segments = [
            g for g in read_table(out / "segments.tsv") if g["recording"] == rec["recording"]
        ]
        assert int(segments[0]["start"]) == STARTS[0]
        assert int(segments[-1]["end"]) == STARTS[-1] + WINDOW
        assert sum(int(g["n_windows"]) for g in segments) == len(mine)
        assert all(a["label"] != b["label"] for a, b in itertools.pairwise(segments))
        assert all(a["end"] == b["start"] for a, b in itertools.pairwise(segments))

    # the table printed without --out is the same one
    printed = run_cli("predict", "--plugin", "numpy", "signals.npy", cwd=workdir)
    assert printed.out == (out / "recordings.tsv").read_text(encoding="utf-8")


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_predict_formats(workdir: Path, tmp_path: Path, run_cli, fmt: str) -> None:
    out = tmp_path / fmt
    result = run_cli(
        "predict", "--plugin", "numpy", "signals.npy", "--out", out, "--format", fmt, cwd=workdir
    )
    assert result.code == 0, result.err
    assert sorted(p.name for p in out.iterdir()) == [
        f"recordings.{fmt}",
        f"segments.{fmt}",
        f"windows.{fmt}",
    ]
    assert table_columns(out / f"windows.{fmt}") == WINDOW_COLUMNS
    assert table_columns(out / f"recordings.{fmt}") == RECORDING_COLUMNS
    windows = read_table(out / f"windows.{fmt}")
    recordings = read_table(out / f"recordings.{fmt}")
    assert len(windows) == N_RECORDINGS * len(STARTS)
    assert len(recordings) == N_RECORDINGS
    for row in windows + recordings:
        assert_prediction_row(row)
    if fmt == "jsonl":
        first = json.loads((out / "windows.jsonl").read_text(encoding="utf-8").splitlines()[0])
        assert (first["recording"], first["start"], first["end"]) == ("0", 0, WINDOW)
        assert all(isinstance(first[c], float) for c in ["confidence", *P_COLUMNS])
    if fmt == "parquet":
        frame = pd.read_parquet(out / "windows.parquet")
        assert frame["start"].dtype == np.int64 and frame["start_s"].dtype == np.float64
        twin = run_cli(
            "predict", "--plugin", "numpy", "signals.npy", "--out", tmp_path / "tsv", cwd=workdir
        )
        assert twin.code == 0, twin.err
        tsv = pd.read_csv(tmp_path / "tsv" / "windows.tsv", sep="\t", keep_default_na=False)
        assert (
            frame[["recording", "label"]]
            .astype(str)
            .equals(tsv[["recording", "label"]].astype(str))
        )
        np.testing.assert_allclose(frame[P_COLUMNS], tsv[P_COLUMNS], atol=TOLERANCE)


def test_parquet_needs_a_directory_and_pyarrow(
    workdir: Path, run_cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    predict = ("predict", "--plugin", "numpy", "signals.npy", "--format", "parquet")
    to_stdout = run_cli(*predict, cwd=workdir)
    assert (to_stdout.code, to_stdout.out) == (2, "")
    assert to_stdout.err_lines == ["error: --format parquet writes files: give --out DIRECTORY"]
    import biosig.inference.output as output

    monkeypatch.setattr(output.importlib.util, "find_spec", lambda name: None)
    lean = run_cli(
        "predict", "--plugin", "numpy", "signals.npy", "--format", "parquet", "--out", "pq",
        cwd=workdir,
    )  # fmt: skip
    assert lean.code == 2
    assert lean.err_lines == [
        "error: --format parquet needs pyarrow, which is not installed: "
        "pip install 'biosig[parquet]'"
    ]
    assert not (workdir / "pq").exists()


def test_evaluate_json(workdir: Path, run_cli) -> None:
    result = run_cli(
        "evaluate",
        "--model",
        "runs/numpy/latest",
        "--plugin",
        "numpy",
        "--input",
        "signals.npy",
        "--labels",
        "labels.npy",
        "--json",
        cwd=workdir,
    )
    assert result.code == 0, result.err
    lines = result.out.strip().splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert {"accuracy", "balanced_accuracy", "macro_f1", "classes", "confusion", "n"} <= set(report)
    assert report["classes"] == CLASSES
    # windows do not overlap in evaluation: two 128-sample windows per recording
    assert report["n"] == N_RECORDINGS * LENGTH // WINDOW
    confusion = np.array(report["confusion"])
    assert confusion.shape == (3, 3)
    assert confusion.sum() == report["n"]
    assert confusion.sum(axis=1).tolist() == [20, 20, 20]  # 10 recordings of each class
    assert report["accuracy"] == pytest.approx(np.trace(confusion) / confusion.sum())
    recall = np.diag(confusion) / confusion.sum(axis=1)
    assert report["balanced_accuracy"] == pytest.approx(recall.mean())
    assert 0.0 <= report["macro_f1"] <= 1.0


def test_evaluate_without_model_uses_latest(workdir: Path, run_cli) -> None:
    args = ["--plugin", "numpy", "--input", "signals.npy", "--labels", "labels.npy", "--json"]
    latest = run_cli("evaluate", *args, cwd=workdir)
    assert latest.code == 0, latest.err
    named = run_cli("evaluate", "--model", "runs/numpy/latest", *args, cwd=workdir)
    assert json.loads(latest.out) == json.loads(named.out)


def test_paths_after_input_are_inputs_too(workdir: Path, tmp_path: Path, run_cli) -> None:
    """`--input parts/*.npy` arrives shell-expanded: one flag, then several paths."""
    signals, labels = np.load(workdir / "signals.npy"), np.load(workdir / "labels.npy")
    half = len(signals) // 2
    np.save(tmp_path / "a.npy", signals[:half])
    np.save(tmp_path / "b.npy", signals[half:])
    ids = [f"a:{i}" for i in range(half)] + [f"b:{i}" for i in range(len(signals) - half)]
    (tmp_path / "labels.tsv").write_text(
        "".join(f"{rec}\t{label}\n" for rec, label in zip(ids, labels, strict=True))
    )
    trained = run_cli(
        "train",
        "--plugin",
        "numpy",
        "--input",
        "a.npy",
        "b.npy",
        "--labels",
        "labels.tsv",
        *SMALL,
        "--out",
        "model",
        cwd=tmp_path,
    )
    assert trained.code == 0, trained.err
    meta = json.loads((tmp_path / "model" / "best" / "biosig.json").read_text())
    assert meta["training"]["inputs"] == [str(tmp_path / "a.npy"), str(tmp_path / "b.npy")]
    assert meta["training"]["n_recordings"] == len(signals)
    evaluated = run_cli(
        "evaluate",
        "--model",
        "model",
        "--input",
        "a.npy",
        "b.npy",
        "--labels",
        "labels.tsv",
        "--json",
        cwd=tmp_path,
    )
    assert evaluated.code == 0, evaluated.err
    assert json.loads(evaluated.out)["n"] == N_RECORDINGS * LENGTH // WINDOW


def test_help_and_version_still_print_normally(run_cli) -> None:
    version = run_cli("--version")
    assert (version.code, version.err) == (0, "")
    assert version.out.startswith("biosig, version ")
    helped = run_cli("train", "--help")
    assert (helped.code, helped.err) == (0, "")
    assert helped.out.startswith("Usage: biosig train ")


def test_python_dash_m_biosig_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "biosig", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: ")
    for command in ("train", "predict", "evaluate", "plugins"):
        assert re.search(rf"^\s+{command}\s", result.stdout, re.MULTILINE), command


# --- pipeline files and reproducibility -----------------------------------------------------


def test_pipeline_values_are_used_and_flags_override_them(
    in_tmp: Path, synthetic_npy: Path, run_cli
) -> None:
    pipeline = in_tmp / "task.toml"
    pipeline.write_text(
        f"""description = "a small test pipeline"
plugin = "numpy"
input = ['{(synthetic_npy / "signals.npy").as_posix()}']
labels = '{(synthetic_npy / "labels.npy").as_posix()}'

[model]
preset = "tiny"
window = {WINDOW}
hop = {HOP}

[train]
epochs = 1
batch-size = 32
seed = 3
""",
        encoding="utf-8",
    )
    result = run_cli("train", "--pipeline", pipeline, "--out", "from_toml")
    assert result.code == 0, result.err
    assert len(history(in_tmp / "from_toml")) == 1
    info = meta(in_tmp / "from_toml" / "best")
    assert (info["preset"], info["window"], info["hop"]) == ("tiny", WINDOW, HOP)
    assert (info["training"]["epochs"], info["training"]["batch_size"]) == (1, 32)
    assert info["training"]["seed"] == 3

    result = run_cli(
        "train", "--pipeline", pipeline, "--out", "flags", "--epochs", "2", "--window", "64"
    )
    assert result.code == 0, result.err
    assert len(history(in_tmp / "flags")) == 2
    info = meta(in_tmp / "flags" / "best")
    assert (info["window"], info["hop"], info["training"]["batch_size"]) == (64, HOP, 32)


def test_a_pipelines_paths_are_read_from_its_folder_and_a_flags_from_the_working_one(
    in_tmp: Path, synthetic_npy: Path, run_cli
) -> None:
    task = in_tmp / "task"
    task.mkdir()
    for name in ("signals.npy", "labels.npy"):
        shutil.copy(synthetic_npy / name, task / name)
    pipeline = task / "pipeline.toml"
    pipeline.write_text(
        f"""plugin = "numpy"
input = ["signals.npy"]
labels = "labels.npy"
out = "model"

[model]
preset = "tiny"
window = {WINDOW}
hop = {HOP}

[train]
epochs = 1
""",
        encoding="utf-8",
    )
    elsewhere = in_tmp / "elsewhere"
    elsewhere.mkdir()
    result = run_cli("train", "--pipeline", pipeline, cwd=elsewhere)
    assert result.code == 0, result.err
    info = meta(task / "model" / "best")  # out, input and labels beside the pipeline
    assert info["training"]["inputs"] == [str(task / "signals.npy")]
    assert info["training"]["labels"] == str(task / "labels.npy")
    assert not any(elsewhere.iterdir())

    # a flag's path is the working directory's, as on any command line
    result = run_cli("train", "--pipeline", pipeline, "--out", "here", cwd=elsewhere)
    assert result.code == 0, result.err
    assert (elsewhere / "here" / "best").is_dir()
    missing = run_cli(
        "train", "--pipeline", pipeline, "--labels", "labels.npy", "--out", "there",
        cwd=elsewhere,
    )  # fmt: skip
    assert missing.code != 0 and "labels.npy: labels file not found" in missing.err


def test_the_training_craft_options_are_reachable_from_a_pipeline(
    in_tmp: Path, synthetic_npy: Path, run_cli
) -> None:
    pipeline = in_tmp / "craft.toml"
    pipeline.write_text(
        f"""plugin = "numpy"
input = ['{(synthetic_npy / "signals.npy").as_posix()}']
labels = '{(synthetic_npy / "labels.npy").as_posix()}'
preset = "tiny"
window = {WINDOW}
hop = {HOP}
epochs = 1

[train]
augment = ["noise", "mixup:0.4"]
ema = 0.9
balance = true
loss = "focal"
select = false

[model]
ensemble = 2
drop-path = 0.1
normalize = "dataset"
fit-model = false
""",
        encoding="utf-8",
    )
    result = run_cli("train", "--pipeline", pipeline, "--out", "craft")
    assert result.code == 0, result.err
    info = meta(in_tmp / "craft" / "best")
    training = info["training"]
    assert training["augment"] == ["noise", "mixup:0.4"]
    assert (training["ema"], training["balance"], training["loss"]) == (0.9, True, "focal")
    assert (training["select"], info["ensemble"], training["fit_model"]) == (False, 2, False)
    assert info["model"]["drop_path"] == 0.1
    assert info["normalization"]["mode"] == "dataset"

    # `normalize` is `normalization` spelled as the flag: both at once is refused
    both = in_tmp / "both.toml"
    both.write_text('normalize = "window"\nnormalization = "none"\n', encoding="utf-8")
    clash = run_cli("train", "--pipeline", both, "--out", "clash")
    assert clash.code == 2
    assert clash.err_lines == [
        f"error: {both}: normalize and normalization are one option; give it once"
    ]


def test_pipeline_values_are_converted_by_the_option_types(tmp_path: Path) -> None:
    from biosig.cli.common import Options
    from biosig.cli.train import train

    pipeline = tmp_path / "task.toml"
    pipeline.write_text(
        'input = "a.npy"\nout = "model"\nepochs = "3"\nlr = 0.01\naugment = ["noise"]\n',
        encoding="utf-8",
    )
    ctx = train.make_context("train", ["--pipeline", str(pipeline)])
    opts = Options(ctx, pipeline)
    # one path for a repeatable flag; paths read from the pipeline file's folder
    assert opts.get("input") == (str(tmp_path / "a.npy"),)
    assert opts.get("out") == tmp_path / "model"
    assert opts.get("epochs") == 3  # a string click converts is fine, as on the command line
    assert opts.get("lr") == 0.01
    assert opts.get("augment") == ["noise"]  # a list for a comma-separated option


def test_same_seed_gives_the_same_model_twice(
    in_tmp: Path, synthetic_npy: Path, workdir: Path, run_cli
) -> None:
    signals, labels = synthetic_npy / "signals.npy", synthetic_npy / "labels.npy"
    for name in ("first", "second"):
        result = run_cli(*train_args(signals, labels, "--seed", "7", "--out", name))
        assert result.code == 0, result.err

    def losses(run: Path) -> list[dict[str, str]]:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in history(run)]

    assert losses(in_tmp / "first") == losses(in_tmp / "second")
    for checkpoint in ("best", "last"):
        a = load_file(in_tmp / "first" / checkpoint / "model.safetensors")
        b = load_file(in_tmp / "second" / checkpoint / "model.safetensors")
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)

    # ...and the seed matters: the workflow's model (seed 0, same data and settings) differs
    other = load_file(workdir / "runs" / "numpy" / "latest" / "last" / "model.safetensors")
    last = load_file(in_tmp / "first" / "last" / "model.safetensors")
    assert any(not np.array_equal(other[k], last[k]) for k in last)


def test_runs_started_in_the_same_second_are_kept_apart(
    in_tmp: Path, synthetic_npy: Path, run_cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    stamp = "20250101-120000"
    monkeypatch.setattr(
        importlib.import_module("biosig.training.runs"), "_timestamp", lambda: stamp
    )
    earlier = in_tmp / "runs" / "numpy" / stamp
    earlier.mkdir(parents=True)
    (earlier / "history.tsv").write_text("an earlier run\n", encoding="utf-8")

    result = run_cli(
        *train_args(synthetic_npy / "signals.npy", synthetic_npy / "labels.npy", "--epochs", "1")
    )
    assert result.code == 0, result.err
    assert (earlier / "history.tsv").read_text(encoding="utf-8") == "an earlier run\n"
    latest = (in_tmp / "runs" / "numpy" / "latest").resolve()
    assert latest != earlier.resolve()
    assert latest.name.startswith(stamp)
    assert len(history(latest)) == 1


@pytest.mark.parametrize("wrote_history", [False, True], ids=["before-writing", "after-writing"])
def test_failed_training_leaves_no_empty_run(
    in_tmp: Path, synthetic_npy: Path, run_cli, monkeypatch: pytest.MonkeyPatch, wrote_history: bool
) -> None:
    def interrupted_fit(*args, **kwargs):
        run_dir = args[7]
        if wrote_history:
            (run_dir / "history.tsv").write_text("epoch\n1\n", encoding="utf-8")
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib.import_module("biosig.training.runs"), "fit", interrupted_fit)
    result = run_cli(*train_args(synthetic_npy / "signals.npy", synthetic_npy / "labels.npy"))
    assert result.code == 130
    runs = in_tmp / "runs" / "numpy"
    if wrote_history:  # a run with something in it is kept, but latest does not point at it
        assert not (runs / "latest").exists()
        assert len(list(runs.glob("*/history.tsv"))) == 1
    else:
        assert not (in_tmp / "runs").exists()


# --- bad input ----------------------------------------------------------------------------


def write_bad_inputs(directory: Path) -> None:
    np.save(directory / "flat.npy", np.zeros(300, dtype=np.float32))
    np.save(directory / "one_class.npy", np.array(["rhythm"] * N_RECORDINGS))
    np.save(directory / "two_channels.npy", np.zeros((4, 2, LENGTH), dtype=np.float32))
    (directory / "labels.tsv").write_text("x\tbackground\ny\trhythm\n", encoding="utf-8")
    (directory / "typo.toml").write_text("epochz = 1\n", encoding="utf-8")
    (directory / "hinge.toml").write_text('loss = "hinge"\n', encoding="utf-8")
    (directory / "negative_lr.toml").write_text("lr = -5\n", encoding="utf-8")
    (directory / "zero_batch.toml").write_text("batch_size = 0\n", encoding="utf-8")
    (directory / "list_epochs.toml").write_text("epochs = [1, 2]\n", encoding="utf-8")
    (directory / "a_file").write_text("not a directory\n", encoding="utf-8")


S, L = "{data}/signals.npy", "{data}/labels.npy"
#: name -> (arguments, fragments the error line must hold); {data} is the synthetic data
#: directory and {model} a trained model, the rest are files ``write_bad_inputs`` makes.
BAD_INPUT = {
    "missing-input": (train_args("absent.npy", L), ["absent.npy", "not found"]),
    "unknown-plugin": (
        ["train", "--plugin", "nope", "--input", S, "--labels", L],
        ["unknown plugin 'nope'", "numpy"],
    ),
    "labels-match-nothing": (train_args(S, "labels.tsv"), ["labels.tsv", "match"]),
    "wrong-shape": (train_args("flat.npy", L), ["flat.npy", "(300,)"]),
    "one-class": (train_args(S, "one_class.npy"), ["one_class.npy", "one class"]),
    "missing-labels": (train_args(S, "absent.npy"), ["absent.npy", "labels file not found"]),
    "unknown-pipeline-key": (
        train_args(S, L, "--pipeline", "typo.toml"),
        ["typo.toml", "unknown key 'epochz'"],
    ),
    "pipeline-bad-choice": (
        train_args(S, L, "--pipeline", "hinge.toml"),
        ["hinge.toml: loss:", "'hinge'"],
    ),
    "pipeline-negative-lr": (
        train_args(S, L, "--pipeline", "negative_lr.toml"),
        ["negative_lr.toml: lr:", "-5"],
    ),
    "pipeline-zero-batch": (
        train_args(S, L, "--pipeline", "zero_batch.toml"),
        ["zero_batch.toml: batch_size:", "0"],
    ),
    "pipeline-list-for-one-value": (
        train_args(S, L, "--pipeline", "list_epochs.toml"),
        ["list_epochs.toml: epochs:", "a list"],
    ),
    "unknown-augment": (train_args(S, L, "--augment", "bogus"), ["--augment", "'bogus'"]),
    "train-out-is-a-file": (train_args(S, L, "--out", "a_file"), ["a_file"]),
    "predict-no-model-yet": (
        ["predict", "--plugin", "numpy", S, "--out", "out"],
        ["runs/numpy/latest", "--model"],
    ),
    "predict-unknown-plugin": (
        ["predict", "--plugin", "nope", S],
        ["unknown plugin 'nope'", "numpy"],
    ),
    "predict-out-is-a-file": (["predict", "--model", "{model}", S, "--out", "a_file"], ["a_file"]),
    "predict-missing-input": (
        ["predict", "--model", "{model}", "absent.npy", "--out", "out"],
        ["absent.npy", "not found"],
    ),
    "predict-wrong-shape": (
        ["predict", "--model", "{model}", "flat.npy", "--out", "out"],
        ["flat.npy", "(300,)"],
    ),
    # nothing on stdout either, not even the table's header
    "predict-wrong-shape-to-stdout": (
        ["predict", "--model", "{model}", "flat.npy"],
        ["flat.npy", "(300,)"],
    ),
    "predict-wrong-channels": (
        ["predict", "--model", "{model}", "two_channels.npy", "--out", "out"],
        ["two_channels.npy", "2 channels"],
    ),
    "evaluate-missing-labels": (
        ["evaluate", "--model", "{model}", "--input", S, "--labels", "absent.npy"],
        ["absent.npy", "labels file not found"],
    ),
    "evaluate-no-model-yet": (
        ["evaluate", "--plugin", "numpy", "--input", S, "--labels", L],
        ["runs/numpy/latest", "--model"],
    ),
    "evaluate-neither-model-nor-plugin": (
        ["evaluate", "--input", S, "--labels", L],
        ["give --plugin or --model"],
    ),
    "evaluate-unknown-plugin": (
        ["evaluate", "--plugin", "nope", "--input", S, "--labels", L],
        ["unknown plugin 'nope'", "numpy"],
    ),
}


def assert_one_error_line(result, fragments: list[str]) -> None:
    assert result.code != 0
    assert "Traceback" not in result.err
    assert len(result.err_lines) == 1, result.err
    line = result.err_lines[0]
    assert line.startswith("error: ")
    assert "internal error" not in line
    for fragment in fragments:
        assert fragment in line


@pytest.fixture(scope="module")
def model(workdir: Path) -> Path:
    return workdir / "runs" / "numpy" / "latest"


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_error_line_and_writes_nothing(
    case: str, in_tmp: Path, synthetic_npy: Path, model: Path, run_cli
) -> None:
    write_bad_inputs(in_tmp)
    before = files_under(in_tmp)
    args, fragments = BAD_INPUT[case]
    args = [str(a).format(data=synthetic_npy.as_posix(), model=model) for a in args]
    result = run_cli(*args)
    assert_one_error_line(result, fragments)
    assert result.out == ""
    assert files_under(in_tmp) == before  # no tables, no checkpoints, no temporary files
    assert not (in_tmp / "runs").exists()


USAGE_ERRORS = {
    "bad-choice": (["train", "--preset", "huge"], ["--preset", "'huge'"]),
    "unknown-flag": (["train", "--bogus"], ["--bogus"]),
    "out-of-range": (["train", "--window", "0"], ["--window", "0"]),
    "negative-lr": (["train", "--lr", "-5"], ["--lr", "-5"]),
    "missing-required": (["plugins", "show"], ["NAME"]),
    "unknown-command": (["bogus"], ["bogus"]),
}


@pytest.mark.parametrize("case", list(USAGE_ERRORS))
def test_usage_errors_are_one_line_with_exit_code_2(case: str, in_tmp: Path, run_cli) -> None:
    args, fragments = USAGE_ERRORS[case]
    result = run_cli(*args)
    assert_one_error_line(result, fragments)
    assert result.code == 2
    assert result.out == ""
    assert list(in_tmp.iterdir()) == []


def test_file_system_errors_are_one_line(run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    def refused() -> None:
        raise PermissionError(13, "Permission denied", "runs/numpy")

    monkeypatch.setattr(importlib.import_module("biosig.cli.plugins"), "load_all", refused)
    result = run_cli("plugins", "list")
    assert_one_error_line(result, ["error: runs/numpy: Permission denied"])
    assert result.code == 2


class ClosedPipe(io.StringIO):
    """stdout whose reader has gone away."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_closed_stdout_stops_quietly() -> None:
    err = io.StringIO()
    with redirect_stdout(ClosedPipe()), redirect_stderr(err):
        code = main(["plugins", "list"])
    assert (code, err.getvalue()) == (141, "")


def test_closed_pipe_in_a_real_process_stops_quietly() -> None:
    """`biosig … | head`: no message, not even Python's at exit."""
    process = subprocess.Popen(
        [sys.executable, "-m", "biosig", "plugins", "list"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.close()  # the reader leaves before the first line is written
    err = process.stderr.read()
    assert (process.wait(timeout=120), err) == (141, b"")


CORRUPTIONS: dict[str, Callable[[bytes], bytes]] = {
    "garbage": lambda weights: b"this is not a safetensors file",
    "empty": lambda weights: b"",
    "truncated": lambda weights: weights[: len(weights) // 2],
}


@pytest.mark.parametrize("command", ["predict", "evaluate"])
@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_corrupt_checkpoint_is_one_error_line(
    command: str, corruption: str, in_tmp: Path, synthetic_npy: Path, model: Path, run_cli
) -> None:
    broken = in_tmp / "broken"
    shutil.copytree(model / "best", broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(CORRUPTIONS[corruption](weights.read_bytes()))
    signals = synthetic_npy / "signals.npy"
    if command == "predict":
        args = ["predict", "--model", broken, signals, "--out", "out"]
    else:
        labels = synthetic_npy / "labels.npy"
        args = ["evaluate", "--model", broken, "--input", signals, "--labels", labels]
    result = run_cli(*args)
    assert_one_error_line(result, [str(weights)])
    assert not (in_tmp / "out").exists()


def test_predict_warns_when_the_plugin_version_changed(workdir: Path, tmp_path, run_cli) -> None:
    model = tmp_path / "model"
    shutil.copytree(workdir / "runs" / "numpy" / "latest" / "best", model)
    meta_path = model / "biosig.json"
    meta = json.loads(meta_path.read_text())
    meta["plugin"]["version"] = "0.0.1"
    meta_path.write_text(json.dumps(meta))
    result = run_cli("predict", "--plugin", "numpy", "signals.npy", "--model", model, cwd=workdir)
    assert result.code == 0, result.err
    assert "trained with numpy plugin 0.0.1; this is version 0.1.0" in result.err
    scored = run_cli(
        "evaluate",
        "--model",
        model,
        "--input",
        "signals.npy",
        "--labels",
        "labels.npy",
        cwd=workdir,
    )
    assert scored.code == 0, scored.err
    assert "trained with numpy plugin 0.0.1; this is version 0.1.0" in scored.err


def test_train_on_the_start_of_each_recording_and_evaluate_its_end(
    tmp_path: Path, synthetic_npy: Path, run_cli
) -> None:
    data = ("--input", synthetic_npy / "signals.npy", "--labels", synthetic_npy / "labels.npy")
    short = ("--preset", "tiny", "--epochs", "1", "--window", "32", "--hop", "16")
    trained = run_cli(
        "train",
        "--plugin",
        "numpy",
        *data,
        *short,
        "--split",
        "time",
        "--span",
        "0:0.7",
        "--out",
        tmp_path / "m",
    )
    assert trained.code == 0, trained.err
    assert "the last part of each recording" in trained.out
    training = meta(tmp_path / "m" / "best")["training"]
    assert (training["split"], training["span"]) == ("time", [0.0, 0.7])
    evaluated = run_cli("evaluate", "--model", tmp_path / "m", *data, "--span", "0.75:1", "--json")
    assert evaluated.code == 0, evaluated.err
    # 64 samples of each 256-sample recording, in two 32-sample windows
    assert json.loads(evaluated.out)["n"] == N_RECORDINGS * 2


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_a_bad_span_is_one_line(tmp_path: Path, synthetic_npy: Path, run_cli, command) -> None:
    data = ("--input", synthetic_npy / "signals.npy", "--labels", synthetic_npy / "labels.npy")
    model = () if command == "train" else ("--model", tmp_path / "none")
    result = run_cli(command, "--plugin", "numpy", *model, *data, "--span", "0.8:0.2")
    assert result.code != 0
    assert result.err_lines == [
        "error: --span 0.8:0.2: give fractions of each recording as START:END, "
        "0 <= START < END <= 1 (e.g. 0:0.7)"
    ]


def test_a_fifo_given_as_input_or_labels_is_refused_not_waited_on(
    in_tmp: Path, synthetic_npy: Path, run_cli
) -> None:
    os.mkfifo(in_tmp / "pipe")
    signals = synthetic_npy / "signals.npy"
    refused = "error: pipe: not a regular file or directory"
    as_labels = run_cli("train", "--plugin", "numpy", "--input", signals, "--labels", "pipe")
    assert as_labels.code == 2
    assert as_labels.err_lines == [f"{refused} (labels file refused)"]
    model = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoint-0.1.0" / "model"
    as_input = run_cli("predict", "--model", model, "pipe")
    assert as_input.code == 2
    assert as_input.err_lines == [f"{refused} (input refused)"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("batch_size = 1e400", "batch_size: inf is not a valid value"),
        ("epochs = -1e400", "epochs: -inf is not a valid value"),
    ],
)
def test_a_pipeline_number_no_option_can_hold_is_one_line(
    in_tmp: Path, synthetic_npy: Path, run_cli, line: str, message: str
) -> None:
    pipeline = in_tmp / "task.toml"
    pipeline.write_text(f'plugin = "numpy"\n[train]\n{line}\n', encoding="utf-8")
    signals, labels = synthetic_npy / "signals.npy", synthetic_npy / "labels.npy"
    result = run_cli("train", "--pipeline", pipeline, "--input", signals, "--labels", labels)
    assert result.code == 2
    assert result.err_lines == [
        f"error: {pipeline}: {message} (cannot convert float infinity to integer)"
    ]


def test_what_a_c_library_prints_reaches_stderr_not_the_tables(tmp_path: Path) -> None:
    # As pyedflib's C code prints "filesize … != …" straight to descriptor 1.
    code = (
        "import os\n"
        "from biosig import cli\n"
        "def main(argv=None):\n"
        "    os.write(1, b'filesize 100 != 3*30+256\\n')\n"
        "    print('recording\\tlabel')\n"
        "    return 0\n"
        "cli.main = main\n"
        "cli.run()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert done.returncode == 0
    assert done.stdout == "recording\tlabel\n"
    assert done.stderr == "filesize 100 != 3*30+256\n"


def test_sigterm_stops_a_run_like_ctrl_c_and_leaves_it_resumable(
    tmp_path: Path, synthetic_npy: Path
) -> None:
    command = [
        sys.executable, "-m", "biosig", "train", "--plugin", "numpy",
        "--input", synthetic_npy / "signals.npy", "--labels", synthetic_npy / "labels.npy",
        "--preset", "tiny", "--window", str(WINDOW), "--hop", str(HOP),
        "--epochs", "500", "--patience", "500", "--out", "run",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [str(c) for c in command], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not (tmp_path / "run" / "resume" / "state.pt").exists():
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143
    assert err.strip().splitlines()[-1] == "terminated"
    # nothing half-written left behind: every write goes through a temporary name
    assert not [p for p in (tmp_path / "run").rglob("*") if ".tmp" in p.name]
    # and the run can go on from its last finished epoch
    from biosig.training.runs import read_train_settings
    from biosig.training.trainer import load_training_state

    state = load_training_state(tmp_path / "run")
    assert state is not None and 1 <= state["epoch"] < 500 and not state["stopped"]
    request, _ = read_train_settings(tmp_path / "run")
    assert request.config.epochs == 500
