"""The ``vibration`` plugin's labels and groups: the parent folder, a manifest (paths
matched by their trailing components, from any working directory), or a labels table by
file stem or name; runs from the manifest or ``--group-pattern``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from biosig_vibration.manifest import read_manifest
from vibration_helpers import plugin, records

from biosig import BiosigError, LabelledInterval


def motor_files(root: Path) -> list[Path]:
    """Six tiny 1 kHz CSVs: normal/H1..H3, faulty/F1..F3."""
    paths = []
    for folder, stem in [("normal", "H"), ("faulty", "F")]:
        for i in (1, 2, 3):
            path = root / folder / f"{stem}{i}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            x = np.random.default_rng(i).normal(size=(40, 2))
            rows = [f"{n / 1000!r},{a:.4f},{b:.4f}" for n, (a, b) in enumerate(x)]
            path.write_text("t,accX,accY\n" + "\n".join(rows) + "\n")
            paths.append(path)
    return paths


def test_labels_from_the_parent_folder(tmp_path: Path) -> None:
    motor_files(tmp_path)
    p = plugin()
    recs = records(p, tmp_path)
    assert {(iv.recording_id, iv.label) for iv in p.labels("folder", recs)} == {
        ("F1", "faulty"), ("F2", "faulty"), ("F3", "faulty"),
        ("H1", "normal"), ("H2", "normal"), ("H3", "normal"),
    }  # fmt: skip
    assert all((iv.start, iv.stop) == (0, 40) for iv in p.labels("folder", recs))


def test_manifest_labels_groups_and_rates_match_trailing_paths(tmp_path, monkeypatch) -> None:
    motor_files(tmp_path / "data")
    manifest = tmp_path / "lists" / "manifest.csv"
    manifest.parent.mkdir()
    manifest.write_text(
        "path,label,group,fs\n"
        "normal/H1.csv,ok,run1,\n"
        "normal/H2.csv,ok,run1,\n"
        "./faulty/F1.csv,bad,run2,2000\n"
        "H3.csv,ok,,\n"
        f"{tmp_path / 'data' / 'faulty' / 'F2.csv'},bad,run3,\n"
    )
    monkeypatch.chdir(manifest.parent)
    p = plugin(manifest="manifest.csv")  # made absolute at once
    assert p.settings["manifest"] == str(manifest.resolve())
    monkeypatch.chdir(tmp_path)
    recs = records(p, tmp_path / "data")
    labels = {iv.recording_id: iv.label for iv in p.labels("manifest", recs)}
    assert labels == {"H1": "ok", "H2": "ok", "F1": "bad", "H3": "ok", "F2": "bad"}  # F3: none
    assert {r.id: p.group(r) for r in recs} == {
        "F1": "run2", "F2": "run3", "F3": "F3", "H1": "run1", "H2": "run1", "H3": "H3",
    }  # fmt: skip
    assert {r.id: r.fs for r in recs}["F1"] == 2000  # the manifest over the time column
    assert {r.id: r.fs for r in recs}["F3"] == 1000


def test_the_longest_matching_manifest_path_wins(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\nrun.csv,a\nx/run.csv,b\n")
    entries = read_manifest(manifest)
    assert entries.lookup(tmp_path / "y" / "x" / "run.csv").label == "b"
    assert entries.lookup(tmp_path / "y" / "run.csv").label == "a"
    assert entries.lookup(tmp_path / "other.csv") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "manifest is empty"),
        ("file,label\na.csv,x\n", "1: expected a header of path,label,group,fs"),
        ("path,label\n", "manifest lists no files"),
        ("path,label\na.csv,x\nb.csv\n", "3: expected 2 fields, got 1"),
        ("path,fs\na.csv,12k\n", "2: fs must be a positive number of Hz, got '12k'"),
        ("path,label\na.csv,x\n./a.csv,y\n", "3: ./a.csv is already listed on line 2"),
    ],
)
def test_manifest_errors_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text(text)
    with pytest.raises(BiosigError, match=f"^{manifest}:{'' if message[0].isdigit() else ' '}"):
        read_manifest(manifest)
    with pytest.raises(BiosigError) as excinfo:
        read_manifest(manifest)
    assert message in str(excinfo.value)


def test_missing_manifest_is_one_line_before_reading(tmp_path: Path) -> None:
    p = plugin(manifest=tmp_path / "nope.csv")
    with pytest.raises(BiosigError, match=r"nope\.csv: manifest not found$"):
        p.find([tmp_path])


def test_manifest_labels_need_a_manifest_with_labels(tmp_path: Path) -> None:
    motor_files(tmp_path)
    with pytest.raises(BiosigError, match="give the manifest with --manifest"):
        plugin().labels("manifest", records(plugin(), tmp_path))
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,fs\nH1.csv,1000\n")
    p = plugin(manifest=manifest)
    with pytest.raises(BiosigError, match="--labels manifest needs a label column"):
        p.labels("manifest", records(p, tmp_path))
    manifest.write_text("path,label\nelsewhere/Z9.csv,x\n")
    p = plugin(manifest=manifest)
    with pytest.raises(BiosigError, match="none of its paths matches an input file"):
        p.labels("manifest", records(p, tmp_path))


def test_labels_table_by_stem_by_file_name_and_in_segments(tmp_path: Path) -> None:
    motor_files(tmp_path)
    p = plugin()
    recs = records(p, tmp_path)
    by_stem = tmp_path / "labels.tsv"
    by_stem.write_text("file\tclass\nH1\tok\nF1\tbad\n")
    assert [(iv.recording_id, iv.label) for iv in p.labels(by_stem, recs)] == [
        ("F1", "bad"), ("H1", "ok")
    ]  # fmt: skip
    by_name = tmp_path / "names.tsv"
    by_name.write_text("H2.csv\tok\nF2.csv\tbad\n")
    assert {iv.recording_id for iv in p.labels(by_name, recs)} == {"H2", "F2"}
    segments = tmp_path / "segments.tsv"
    segments.write_text("F3.csv\t0\t20\tbad\nF3.csv\t20\t40\tok\n")
    assert p.labels(segments, recs) == [
        LabelledInterval("F3", 0, 20, "bad"), LabelledInterval("F3", 20, 40, "ok")
    ]  # fmt: skip


def test_group_pattern_on_the_path(tmp_path: Path) -> None:
    motor_files(tmp_path)
    p = plugin(group_pattern=r"/(normal|faulty)/")
    assert {p.group(r) for r in records(p, tmp_path)} == {"normal", "faulty"}
    p = plugin(group_pattern=r"H(\d)")
    with pytest.raises(BiosigError, match=r"F1\.csv does not match --group-pattern"):
        [p.group(r) for r in records(p, tmp_path)]
    with pytest.raises(BiosigError, match="--group-pattern 'H\\(': not a regular expression"):
        plugin(group_pattern="H(")


def test_manifest_path_option_is_a_plain_absolute_string(tmp_path: Path) -> None:
    p = plugin(manifest="some/where.csv")
    value = p.settings["manifest"]
    assert type(value) is str and Path(value).is_absolute()
    assert value == os.path.join(os.getcwd(), "some", "where.csv")
    assert plugin(manifest="").settings["manifest"] == ""


def same_names_in_two_folders(root: Path) -> None:
    """normal/0.csv, normal/1.csv, faulty/0.csv, faulty/1.csv: the stems repeat."""
    for folder, seed in (("normal", 0), ("faulty", 10)):
        for i in (0, 1):
            x = np.random.default_rng(seed + i).normal(size=(600, 2))
            rows = [f"{n / 1000!r},{a:.4f},{b:.4f}" for n, (a, b) in enumerate(x)]
            path = root / folder / f"{i}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("t,accX,accY\n" + "\n".join(rows) + "\n")


def test_files_of_one_name_in_two_folders_are_all_read(in_tmp: Path, run_cli) -> None:
    same_names_in_two_folders(in_tmp / "data")
    (in_tmp / "data" / "normal" / "2.csv").write_text(
        (in_tmp / "data" / "normal" / "1.csv").read_text()
    )  # a stem found once keeps it as its id
    p = plugin()
    recs = records(p, in_tmp / "data")
    assert [r.id for r in recs] == ["faulty/0", "faulty/1", "normal/0", "normal/1", "2"]
    assert {iv.recording_id: iv.label for iv in p.labels("folder", recs)}["faulty/0"] == "faulty"
    fast = ("--preset", "tiny", "--epochs", "1", "--sample-rate", "1000", "--window", "100")
    trained = run_cli(
        "train", "--plugin", "vibration", "--input", "data", "--labels", "folder",
        "--split", "time", "--hop", "100", *fast, "--out", "model",
    )  # fmt: skip
    assert trained.code == 0, trained.err
    assert "already read" not in trained.err
    assert "5 recordings, classes: faulty, normal" in trained.out, trained.out
    # evaluate finds the same files, and gives them the same ids
    report = run_cli(
        "evaluate", "--model", "model", "--input", "data", "--labels", "folder", "--json"
    )
    assert report.code == 0, report.err
    assert json.loads(report.out)["recordings"]["n"] == 5


def test_a_labels_table_names_repeated_stems_by_their_trailing_path(tmp_path: Path) -> None:
    same_names_in_two_folders(tmp_path / "a")
    p = plugin()
    recs = records(p, tmp_path / "a")
    table = tmp_path / "labels.tsv"
    table.write_text("normal/0\tok\nfaulty/0.csv\tbad\n./normal/1.csv\tok\n")
    assert {(iv.recording_id, iv.label) for iv in p.labels(table, recs)} == {
        ("normal/0", "ok"), ("faulty/0", "bad"), ("normal/1", "ok")
    }  # fmt: skip
    table.write_text("normal/0\tok\nnormal/0.csv\tbad\n")
    with pytest.raises(BiosigError, match=r"'normal/0' and 'normal/0\.csv' both name normal/0"):
        p.labels(table, recs)
    table.write_text("0\tok\n")  # which 0?
    with pytest.raises(BiosigError, match=r"labels\.tsv: '0' names 2 files \(faulty/0, normal/0\)"):
        p.labels(table, recs)
    (tmp_path / "a" / "faulty" / "0.csv").unlink()  # now one: by stem or name again
    recs = records(p, tmp_path / "a")
    assert [r.id for r in recs] == ["faulty/1", "0", "normal/1"]
    table.write_text("0.csv\tok\nfaulty/1\tbad\n")
    assert {(iv.recording_id, iv.label) for iv in p.labels(table, recs)} == {
        ("0", "ok"), ("faulty/1", "bad")
    }  # fmt: skip
