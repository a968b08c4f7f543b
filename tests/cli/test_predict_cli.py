"""``biosig predict`` at scale: reader threads, batch sizes and ranks that change nothing,
attention explanations, plots, aggregation, and ``torchrun`` sharding."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from biosig.errors import BiosigError
from biosig.inference.explain import attention_path, explanation_path
from biosig.inference.prediction import true_intervals
from biosig.plugin.contract import iter_recordings
from biosig.plugin.registry import get_plugin

CLASSES = ["background", "rhythm", "spikes"]
WINDOW, HOP = 128, 64
#: Recording lengths: several windows each, one shorter than a window, one odd tail.
LENGTHS = [700, 1000, 90, 513, 640, 257]
TOLERANCE = 1e-4


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, synthetic_npy: Path, run_cli) -> Path:
    """A working directory with a tiny model (``model/``) and ``recordings/``, a folder of
    single-recording .npy files of different lengths."""
    work = tmp_path_factory.mktemp("predict")
    result = run_cli(
        "train",
        "--plugin", "numpy",
        "--input", synthetic_npy / "signals.npy",
        "--labels", synthetic_npy / "labels.npy",
        "--preset", "tiny", "--epochs", "1",
        "--window", WINDOW, "--hop", HOP,
        "--out", work / "model",
        cwd=work,
    )  # fmt: skip
    assert result.code == 0, result.err
    rng = np.random.default_rng(1)
    (work / "recordings").mkdir()
    for i, n in enumerate(LENGTHS):
        np.save(work / "recordings" / f"r{i}.npy", rng.normal(size=n).astype(np.float32))
    return work


def predict(run_cli, work: Path, out: Path, *extra: str | Path):
    return run_cli(
        "predict", "--model", work / "model", "--out", out, work / "recordings", *extra, cwd=work
    )


def read_table(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def probabilities(rows: list[dict[str, str]]) -> np.ndarray:
    return np.array([[float(row[f"p_{c}"]) for c in CLASSES] for row in rows])


def positions(rows: list[dict[str, str]]) -> list[tuple[str, str, str]]:
    return [(row["recording"], row["start"], row["end"]) for row in rows]


def assert_same_predictions(a: Path, b: Path) -> None:
    for table in ("windows.tsv", "recordings.tsv"):
        rows_a, rows_b = read_table(a / table), read_table(b / table)
        key = positions if table == "windows.tsv" else (lambda rows: [r["recording"] for r in rows])
        assert key(rows_a) == key(rows_b)
        np.testing.assert_allclose(probabilities(rows_a), probabilities(rows_b), atol=TOLERANCE)


@pytest.fixture(scope="module")
def reference(trained: Path, run_cli) -> Path:
    out = trained / "reference"
    result = predict(run_cli, trained, out, "--workers", "0")
    assert result.code == 0, result.err
    return out


def test_reference_covers_every_recording(reference: Path) -> None:
    rows = read_table(reference / "recordings.tsv")
    assert [row["recording"] for row in rows] == [f"r{i}" for i in range(len(LENGTHS))]
    windows = read_table(reference / "windows.tsv")
    assert len(windows) == sum(len(range(0, n - WINDOW + 1, HOP)) + 1 for n in LENGTHS) - 1


@pytest.mark.parametrize("workers", ["1", "3"])
def test_reader_threads_change_nothing(trained: Path, reference: Path, run_cli, workers) -> None:
    out = trained / f"workers-{workers}"
    result = predict(run_cli, trained, out, "--workers", workers)
    assert result.code == 0, result.err
    # Batches are assembled in input order whatever the readers, so the bytes agree.
    for table in ("windows.tsv", "recordings.tsv", "segments.tsv"):
        assert (out / table).read_text() == (reference / table).read_text()


def test_batch_size_changes_nothing(trained: Path, reference: Path, run_cli) -> None:
    out = trained / "batch-5"
    result = predict(run_cli, trained, out, "--batch-size", "5", "--workers", "2")
    assert result.code == 0, result.err
    assert_same_predictions(out, reference)


@pytest.fixture(scope="module")
def explained(trained: Path, run_cli) -> Path:
    out = trained / "explained"
    result = predict(run_cli, trained, out, "--explain")
    assert result.code == 0, result.err
    return out


def test_explain_writes_attention_rows_aligned_with_the_windows(
    explained: Path, reference: Path
) -> None:
    out = explained
    assert_same_predictions(out, reference)
    windows = read_table(out / "windows.tsv")
    for i, n in enumerate(LENGTHS):
        rows = [row for row in windows if row["recording"] == f"r{i}"]
        attention = np.load(attention_path(out, f"r{i}"))
        assert attention.shape == (len(rows), WINDOW)
        assert attention.dtype == np.float32
        assert (attention >= 0).all()
        np.testing.assert_allclose(attention.sum(1), 1, atol=1e-5)
        if n < WINDOW:  # a short recording's window: no weight on the padding
            assert attention[0, n:].sum() == 0
    names = sorted(p.name for p in (out / "attention").iterdir())
    assert names == sorted(f"r{i}.npy" for i in range(len(LENGTHS)))  # no temporaries


def test_explain_gradient_writes_attributions_rows_aligned_with_the_windows(
    trained: Path, reference: Path, run_cli
) -> None:
    out = trained / "gradients"
    result = predict(run_cli, trained, out, "--explain", "gradient", "--batch-size", "16")
    assert result.code == 0, result.err
    assert_same_predictions(out, reference)
    assert sorted(p.name for p in out.iterdir()) == [
        "gradient", "recordings.tsv", "segments.tsv", "windows.tsv"
    ]  # fmt: skip
    windows = read_table(out / "windows.tsv")
    for i, n in enumerate(LENGTHS):
        rows = [row for row in windows if row["recording"] == f"r{i}"]
        gradient = np.load(explanation_path(out, f"r{i}", "gradient"))
        assert gradient.shape == (len(rows), WINDOW) and gradient.dtype == np.float32
        assert np.isfinite(gradient).all() and (gradient != 0).any(axis=1).all()
        assert (gradient < 0).any()  # signed: samples may speak against the class
        if n < WINDOW:  # a short recording's window: nothing attributed to the padding
            assert (gradient[0, n:] == 0).all()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("saliency", "'saliency' is not one of attention, gradient"),
        ("", "'' is not one of attention, gradient"),
    ],
)
def test_an_unknown_explanation_is_one_error_line(
    trained: Path, run_cli, value: str, message: str
) -> None:
    result = predict(run_cli, trained, trained / "unknown", "--explain", value)
    assert result.code == 2
    assert len(result.err_lines) == 1
    assert result.err_lines[0].startswith("error: ") and message in result.err_lines[0]
    assert not (trained / "unknown").exists()


def test_a_bare_explain_before_the_inputs_says_what_it_took(trained: Path, run_cli) -> None:
    recordings = trained / "recordings"
    out = trained / "bare"
    result = run_cli(
        "predict", "--model", trained / "model", "--out", out, "--explain", recordings, cwd=trained
    )
    assert result.code == 2 and len(result.err_lines) == 1
    assert f"{str(recordings)!r} is not one of attention, gradient" in result.err_lines[0]
    assert "write --explain attention, or give INPUTS first" in result.err_lines[0]


@pytest.fixture(scope="module")
def labels_file(trained: Path) -> Path:
    path = trained / "truth.tsv"
    path.write_text("".join(f"r{i}\t{CLASSES[i % 3]}\n" for i in range(len(LENGTHS) - 1)))
    return path  # r5 has no label


def test_labels_draw_the_truth_track_on_the_plots(trained: Path, run_cli, labels_file) -> None:
    plain, truthful = trained / "plain-plots", trained / "truth-plots"
    assert predict(run_cli, trained, plain, "--plot").code == 0
    result = predict(run_cli, trained, truthful, "--plot", "--labels", labels_file)
    assert result.code == 0, result.err
    assert "1 recordings have no label" in result.err  # r5: warned, as train warns
    for i in range(len(LENGTHS)):
        without = imread(plain / "plots" / f"r{i}.png")
        with_truth = imread(truthful / "plots" / f"r{i}.png")
        # The truth track adds its row (0.45 in at 100 dpi); the width is unchanged.
        assert with_truth.shape[0] - without.shape[0] == 45
        assert with_truth.shape[1] == without.shape[1]
    # The tables do not depend on the labels.
    for table in ("windows.tsv", "recordings.tsv"):
        assert (plain / table).read_text() == (truthful / table).read_text()


def test_true_intervals_are_read_as_train_reads_them(trained: Path, labels_file) -> None:
    plugin = get_plugin("numpy")
    files = plugin.find([trained / "recordings"])
    recordings = list(iter_recordings(plugin, files))
    truth = true_intervals(plugin, labels_file, recordings)
    assert sorted(truth) == [f"r{i}" for i in range(len(LENGTHS) - 1)]
    (interval,) = truth["r1"]
    assert (interval.start, interval.stop, interval.label) == (0, LENGTHS[1], CLASSES[1])
    with pytest.raises(BiosigError, match="labels file not found"):
        true_intervals(plugin, trained / "nope.tsv", recordings)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ("--labels", "x.tsv"),
            "error: --labels draws the true classes on the plots: give --plot too",
        ),
        (
            ("--plot", "--labels", "x.tsv"),
            "error: x.tsv: labels file not found; plugin 'numpy' reads",
        ),
    ],
)
def test_labels_without_a_plot_or_a_file_are_one_error_line(
    trained: Path, run_cli, extra: tuple[str, ...], message: str
) -> None:
    result = predict(run_cli, trained, trained / "no-labels", *extra)
    assert result.code == 2 and len(result.err_lines) == 1
    assert result.err_lines[0].startswith(message)
    assert not (trained / "no-labels").exists()


def test_a_second_run_replaces_the_attention_of_the_first(trained: Path, run_cli) -> None:
    out = trained / "rerun"
    stale = out / "attention" / "old-recording.npy"
    stale.parent.mkdir(parents=True)
    np.save(stale, np.zeros((1, WINDOW), dtype=np.float32))
    result = predict(run_cli, trained, out, "--explain")
    assert result.code == 0, result.err
    assert not stale.exists()
    assert len(list((out / "attention").iterdir())) == len(LENGTHS)


def test_plot_draws_one_png_per_recording(trained: Path, run_cli) -> None:
    out = trained / "plotted"
    result = predict(run_cli, trained, out, "--explain", "--plot")
    assert result.code == 0, result.err
    pngs = sorted(p.name for p in (out / "plots").iterdir())
    assert pngs == sorted(f"r{i}.png" for i in range(len(LENGTHS)))
    for png in pngs:
        assert (out / "plots" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def files_of(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_a_second_run_replaces_the_first_whole_not_table_by_table(trained: Path, run_cli) -> None:
    out = trained / "replaced"
    assert predict(run_cli, trained, out, "--explain", "--plot").code == 0
    result = predict(run_cli, trained, out, "--format", "csv")
    assert result.code == 0, result.err
    # No tsv tables, attention or plots of the first run beside the second's csv tables.
    assert sorted(p.name for p in out.iterdir()) == [
        "recordings.csv",
        "segments.csv",
        "windows.csv",
    ]
    assert not [p for p in trained.iterdir() if p.name.startswith(".replaced.")]


def test_a_run_that_fails_part_way_leaves_the_earlier_predictions_untouched(
    trained: Path, run_cli
) -> None:
    out = trained / "kept"
    assert predict(run_cli, trained, out, "--explain").code == 0
    before = files_of(out)
    inputs = trained / "with_damage"
    inputs.mkdir()
    for path in sorted((trained / "recordings").glob("*.npy")):
        (inputs / path.name).write_bytes(path.read_bytes())
    (inputs / "zz_truncated.npy").write_bytes((inputs / "r0.npy").read_bytes()[:100])
    failed = run_cli(
        "predict", "--model", trained / "model", "--out", out, "--explain", "--strict", inputs,
        cwd=trained,
    )  # fmt: skip
    assert failed.code == 2 and "zz_truncated.npy" in failed.err_lines[-1]
    assert files_of(out) == before
    assert not [p for p in trained.iterdir() if p.name.startswith(".kept.")]


def test_an_out_directory_of_the_users_own_is_refused_not_emptied(trained: Path, run_cli) -> None:
    out = trained / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    result = predict(run_cli, trained, out)
    assert result.code == 2
    assert result.err_lines == [
        f"error: --out {out}: holds files that predict did not write (notes.txt); predictions "
        "replace their directory whole, so give a new or empty directory, or one holding only "
        "earlier predictions"
    ]
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("flag", ["--explain", "--plot"])
def test_explain_and_plot_need_an_out_directory(trained: Path, run_cli, flag: str) -> None:
    result = run_cli("predict", "--model", trained / "model", trained / "recordings", flag)
    assert result.code != 0
    assert result.err_lines == [f"error: {flag} writes files: give --out DIRECTORY"]
    assert result.out == ""


def test_vote_aggregation_counts_windows(trained: Path, reference: Path, run_cli) -> None:
    out = trained / "vote"
    result = predict(run_cli, trained, out, "--aggregate", "vote")
    assert result.code == 0, result.err
    windows = read_table(reference / "windows.tsv")
    for row in read_table(out / "recordings.tsv"):
        labels = [w["label"] for w in windows if w["recording"] == row["recording"]]
        votes = [labels.count(c) / len(labels) for c in CLASSES]
        np.testing.assert_allclose(probabilities([row])[0], votes, atol=1e-6)
        assert row["label"] == CLASSES[int(np.argmax(votes))]


def torchrun(*args: str | Path) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node 2 -m biosig ARGS`` on the CPU."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "biosig", *args, "--device", "cpu",
    ]  # fmt: skip
    return subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, env=env, timeout=300
    )


def test_torchrun_shards_the_files_and_merges_the_tables(
    trained: Path, reference: Path, explained: Path
) -> None:
    out = trained / "ranks"
    result = torchrun(
        "predict", "--model", trained / "model", "--out", out, trained / "recordings",
        "--explain", "--plot",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert_same_predictions(out, reference)
    segments = (out / "segments.tsv").read_text().splitlines()
    assert segments == (reference / "segments.tsv").read_text().splitlines()
    listing = ["attention", "plots", "recordings.tsv", "segments.tsv", "windows.tsv"]
    assert sorted(p.name for p in out.iterdir()) == listing  # the parts are gone
    for i in range(len(LENGTHS)):
        np.testing.assert_allclose(
            np.load(attention_path(out, f"r{i}")),
            np.load(attention_path(explained, f"r{i}")),
            atol=1e-5,
        )
        assert (out / "plots" / f"r{i}.png").is_file()
    # one summary line, from rank 0, counting every rank's recordings
    assert f"{len(LENGTHS)} recordings predicted" in result.stderr


def test_torchrun_one_failing_rank_fails_the_run_and_writes_nothing(trained: Path) -> None:
    inputs = trained / "with-broken"
    inputs.mkdir()
    for name in ("r0.npy", "r1.npy"):
        (inputs / name).write_bytes((trained / "recordings" / name).read_bytes())
    (inputs / "r9.npy").write_bytes(b"\x93NUMPY broken")  # sorts last: rank 1's file
    out = trained / "failed-ranks"
    result = torchrun("predict", "--model", trained / "model", "--out", out, inputs, "--strict")
    assert result.returncode != 0
    assert "r9.npy" in result.stderr
    assert "another process of this run failed" in result.stderr
    assert not out.exists() or sorted(p.name for p in out.iterdir()) == []


def test_torchrun_refuses_a_recording_read_on_two_ranks(trained: Path) -> None:
    first, second = trained / "copy-a", trained / "copy-b"
    for directory in (first, second):
        directory.mkdir()
        (directory / "r0.npy").write_bytes((trained / "recordings" / "r0.npy").read_bytes())
    out = trained / "twice"
    result = torchrun("predict", "--model", trained / "model", "--out", out, first, second)
    assert result.returncode != 0
    assert "recording r0 was read by rank 0 and again by rank 1" in result.stderr
    assert not (out / "recordings.tsv").exists() and not (out / ".parts").exists()
