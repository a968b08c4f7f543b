"""Where the ``vibration`` plugin takes each file's sample rate from: ``--fs``, then a
sidecar or the manifest, then the time column, then the file or folder name; else one error
line naming the file and the ways to give it. Never a silent default."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from biosig_vibration.rate import name_hint, rate_from_step
from vibration_helpers import open_one, plugin

from biosig import BiosigError


def rate_of(path: Path, **options) -> float:
    return open_one(path, **options).fs


def csv_file(path: Path, fs: float | None = 1000.0, rows: int = 20) -> Path:
    """A CSV with a time column at ``fs`` (none when ``fs`` is None)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(0).normal(size=rows)
    if fs is None:
        lines = ["x"] + [f"{v:.5f}" for v in x]
    else:
        lines = ["time,x"] + [f"{i / fs!r},{v:.5f}" for i, v in enumerate(x)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("path", "rate"),
    [
        ("12k_DE/IR007_0.mat", 12000),  # CWRU's own layout: the folder says it
        ("48k_DE/IR007_0.mat", 48000),
        ("data/run_48k.mat", 48000),
        ("motor_1000Hz.csv", 1000),
        ("x/12kHz/a.csv", 12000),
        ("x/12.8khz-run.csv", 12800),
        ("x/IR007_0.mat", None),
        ("x/B028_0.mat", None),
        ("x/load_2kg.csv", None),  # a unit that is no rate
        ("x/X12k.csv", None),  # a number inside a word
    ],
)
def test_rate_hint_in_file_or_folder_name(path: str, rate: float | None) -> None:
    assert name_hint(Path(path)) == rate


def test_file_name_hint_wins_over_folder_hint() -> None:
    assert name_hint(Path("12k_DE/normal_48k.mat")) == 48000


def test_precedence_flag_then_sidecar_or_manifest_then_time_then_name(tmp_path: Path, caplog):
    path = csv_file(tmp_path / "2000Hz" / "run.csv", fs=1000.0)
    assert rate_of(path) == 1000  # the time column over the folder name
    (path.parent / "run.csv.json").write_text(json.dumps({"fs": 4000}))
    with caplog.at_level(logging.WARNING, logger="biosig"):
        assert rate_of(path) == 4000  # the sidecar over the time column, said
    assert "sidecar gives 4000 Hz but its time column 1000 Hz" in caplog.text
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,fs\n2000Hz/run.csv,4000\n")
    assert rate_of(path, manifest=manifest) == 4000  # both, agreeing
    assert rate_of(path, manifest=manifest, fs=8000) == 8000  # the flag over everything
    manifest.write_text("path,fs\n2000Hz/run.csv,3000\n")
    with pytest.raises(BiosigError, match="sidecar says 4000 Hz but --manifest says 3000 Hz"):
        rate_of(path, manifest=manifest)
    (path.parent / "run.csv.json").unlink()
    assert rate_of(path, manifest=manifest) == 3000


def test_name_hint_is_last_and_nothing_is_an_error(tmp_path: Path) -> None:
    hinted = csv_file(tmp_path / "12k_DE" / "run.csv", fs=None)
    assert rate_of(hinted) == 12000
    bare = csv_file(tmp_path / "plain" / "run.csv", fs=None)
    with pytest.raises(BiosigError) as excinfo:
        rate_of(bare)
    assert str(excinfo.value) == (
        f"{bare}: sample rate unknown; give --fs, a sidecar <file>.json holding "
        '{"fs": …}, an fs column in --manifest, a time column, or a rate in the file or '
        "folder name (12k, 1000Hz)"
    )


def test_stem_sidecar_and_its_errors(tmp_path: Path) -> None:
    path = csv_file(tmp_path / "run.csv", fs=None)
    sidecar = tmp_path / "run.json"
    sidecar.write_text('{"fs": 25600, "sensor": "PCB 352C33"}')
    assert rate_of(path) == 25600
    sidecar.write_text('{"rate": 25600}')
    with pytest.raises(BiosigError, match=r"run\.json: expected \{\"fs\": <Hz>\}"):
        rate_of(path)
    sidecar.write_text("{fs: 1")
    with pytest.raises(BiosigError, match=r"run\.json: not a readable JSON sidecar"):
        rate_of(path)


@pytest.mark.parametrize("fs", ["-1", "nan", "fast"])
def test_bad_fs_is_refused_before_reading(fs: str) -> None:
    with pytest.raises(BiosigError, match="--fs"):
        plugin(fs=fs)


def test_rate_from_the_median_step() -> None:
    t = np.cumsum(np.full(5000, 0.001)) - 0.001  # float noise, as the Kafeel files have
    assert t[9] != 0.009 and rate_from_step(float(np.median(np.diff(t)))) == 1000
    assert rate_from_step(1 / 12000 * (1 + 1e-6)) == 12000
    assert rate_from_step(3.0) == 0.333333  # slower than 1 Hz: 6 significant digits


def test_a_time_column_that_does_not_rise_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "flat.csv"
    path.write_text("time,x\n" + "".join(f"0.5,{i}\n" for i in range(10)))
    with pytest.raises(BiosigError, match=r"flat\.csv: column 'time' does not increase"):
        rate_of(path)
    assert rate_of(path, fs=100) == 100


# A time column that whole numbers step: milliseconds (from 0, or since 1970) or a sample
# counter. Read as seconds it gave 0.25 Hz or 1 Hz, and training then upsampled the file
# thousands of times over to the model's 12 kHz.
WHOLE_STEPS = {
    "ms": ("timestamp", np.arange(40) * 4.0),
    "epoch_ms": ("timestamp", 1_700_000_000_000 + np.arange(40) * 4.0),
    "counter": ("time", np.arange(40) + 1.0),
    "slow_ms": ("time_ms", np.arange(40) * 2500.0),  # 0.4 Hz
}


@pytest.mark.parametrize("kind", list(WHOLE_STEPS))
def test_a_time_column_of_whole_steps_or_under_1_hz_gives_no_rate(tmp_path, kind, caplog):
    name, times = WHOLE_STEPS[kind]
    x = np.random.default_rng(0).normal(size=times.size)
    path = tmp_path / "log.csv"
    rows = [f"{float(t)!r},{v:.5f}\n" for t, v in zip(times, x, strict=True)]
    path.write_text(f"{name},x\n" + "".join(rows))
    with pytest.raises(BiosigError) as excinfo:
        rate_of(path)
    message = str(excinfo.value)
    assert message.startswith(f"{path}: column {name!r} ")
    for way in ("--fs", "--manifest", "sidecar"):
        assert way in message, message
    assert ("if it holds milliseconds" in message) == (kind != "slow_ms"), message
    # a rate given over it: the column is not used for the rate, nor warned about
    with caplog.at_level(logging.WARNING, logger="biosig"):
        assert rate_of(path, fs=250) == 250
        (tmp_path / "log.json").write_text('{"fs": 500}')
        assert rate_of(path) == 500
    assert not caplog.records, caplog.text


def test_milliseconds_named_as_such_give_the_rate(tmp_path: Path) -> None:
    times = 1_700_000_000_000 + np.arange(40) * 4.0
    path = tmp_path / "log.csv"
    rows = [f"{float(t)!r},{i}\n" for i, t in enumerate(times)]
    path.write_text("timestamp_ms,x\n" + "".join(rows))
    assert rate_of(path) == 250
