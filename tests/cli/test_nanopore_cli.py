"""The user's nanopore commands end to end on synthetic FAST5/POD5 reads: train on a
directory with labels.tsv, predict one row per read, evaluate per read; damaged files are
skipped with a warning, or stop the command with --strict."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from biosig_nanopore.synthetic import write_synthetic_run

#: Small and quick on a 2-core CPU: ~3-5k-sample reads, 1024-sample windows, tiny model.
FAST = (
    "--preset",
    "tiny",
    "--epochs",
    "2",
    "--window",
    "1024",
    "--hop",
    "1024",
    "--sample-rate",
    "4000",
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, run_cli) -> Path:
    """A working directory with reads/ (gzip FAST5, VBZ FAST5, POD5), labels.tsv and a
    model trained by the user's command."""
    work = tmp_path_factory.mktemp("nanopore")
    write_synthetic_run(work, n_reads=24, seed=3, reads_per_file=4, n_bases=(300, 500))
    result = run_cli(
        "train",
        "--plugin",
        "nanopore",
        "--input",
        "reads/",
        "--labels",
        "labels.tsv",
        *FAST,
        cwd=work,
    )
    assert result.code == 0, result.err
    return work


def read_ids(work: Path) -> list[str]:
    lines = (work / "labels.tsv").read_text().splitlines()[1:]
    return [line.split("\t")[0] for line in lines]


def test_train_reads_every_file_kind(run_dir: Path) -> None:
    kinds = sorted(p.name.split("_")[-1] for p in (run_dir / "reads").iterdir())
    assert {"gzip.fast5", "vbz.fast5"} <= set(kinds) and any(k.endswith(".pod5") for k in kinds)
    meta = json.loads((run_dir / "runs/nanopore/latest/best/biosig.json").read_text())
    assert meta["plugin"]["name"] == "nanopore"
    assert meta["sample_rate"] == 4000.0
    assert meta["training"]["n_recordings"] == 24
    assert meta["classes"] == ["motif", "plain"]


def test_predict_writes_one_row_per_read(run_dir: Path, tmp_path: Path, run_cli) -> None:
    result = run_cli("predict", "--plugin", "nanopore", "reads/", "--out", tmp_path, cwd=run_dir)
    assert result.code == 0, result.err
    with open(tmp_path / "recordings.tsv") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert sorted(r["recording"] for r in rows) == sorted(read_ids(run_dir))
    for row in rows:
        assert row["label"] in ("motif", "plain")
        assert abs(float(row["p_motif"]) + float(row["p_plain"]) - 1) < 1e-4
    printed = run_cli("predict", "--plugin", "nanopore", "reads/", cwd=run_dir)
    assert printed.code == 0
    assert len(printed.out.strip().splitlines()) == 1 + len(rows)  # header + a row per read


def test_reader_threads_share_no_file_handles(run_dir: Path, tmp_path: Path, run_cli) -> None:
    # Several threads read reads from the same FAST5/POD5 files at once; each keeps its own
    # open handles, so the windows table is byte for byte the inline reader's.
    tables = {}
    for workers in ("0", "4"):
        out = tmp_path / workers
        result = run_cli(
            "predict", "--plugin", "nanopore", "reads/", "--out", out, "--workers", workers,
            cwd=run_dir,
        )  # fmt: skip
        assert result.code == 0, result.err
        tables[workers] = (out / "windows.tsv").read_text()
    assert tables["0"] == tables["4"]
    assert len(tables["0"].splitlines()) > 24


def test_evaluate_reports_read_level_metrics(run_dir: Path, run_cli) -> None:
    result = run_cli(
        "evaluate",
        "--plugin",
        "nanopore",
        "--input",
        "reads/",
        "--labels",
        "labels.tsv",
        "--json",
        cwd=run_dir,
    )
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["recordings"]["n"] == 24
    assert sum(map(sum, report["recordings"]["confusion"])) == 24
    assert report["n"] >= 24  # at least one window per read


def test_a_damaged_file_is_skipped_with_a_warning_or_fatal_when_strict(
    run_dir: Path, tmp_path: Path, run_cli
) -> None:
    reads = tmp_path / "reads"
    shutil.copytree(run_dir / "reads", reads)
    pod5 = next(reads.glob("*.pod5"))
    data = pod5.read_bytes()
    pod5.write_bytes(data[: len(data) // 2])  # truncated in transfer
    model = ("--model", run_dir / "runs" / "nanopore" / "latest")
    result = run_cli(
        "predict", "--plugin", "nanopore", "reads/", *model, "--out", "out", cwd=tmp_path
    )
    assert result.code == 0, result.err
    assert f"{pod5.name}: truncated POD5 file" in result.err
    assert "skipped 1 damaged file(s)" in result.err
    with open(tmp_path / "out" / "recordings.tsv") as handle:
        assert len(list(csv.DictReader(handle, delimiter="\t"))) == 20  # 24 reads less 4
    strict = run_cli(
        "predict",
        "--plugin",
        "nanopore",
        "reads/",
        *model,
        "--out",
        "strict",
        "--strict",
        cwd=tmp_path,
    )
    assert strict.code != 0
    assert strict.err_lines == [
        f"error: {Path('reads') / pod5.name}: truncated POD5 file (no closing signature)"
    ]
    assert not (tmp_path / "strict").exists() or not any((tmp_path / "strict").iterdir())


def test_labels_that_match_no_read_are_one_error_line(run_dir: Path, tmp_path, run_cli) -> None:
    (tmp_path / "labels.tsv").write_text("read_id\tclass\nnot-a-read\tmotif\nother\tplain\n")
    result = run_cli(
        "train",
        "--plugin",
        "nanopore",
        "--input",
        run_dir / "reads",
        "--labels",
        tmp_path / "labels.tsv",
        *FAST,
        cwd=tmp_path,
    )
    assert result.code == 2
    assert len(result.err_lines) == 1 and "none of its 2 ids match" in result.err_lines[0]
