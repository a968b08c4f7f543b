"""Synthetic vibration: bearing faults ring at their characteristic frequencies, files
in CWRU's MATLAB layout and the motor CSVs' layout, and demo data that a tiny model learns
well enough to classify files of another seed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.io
from biosig_vibration.synthetic import (
    BPFI,
    BPFO,
    BSF,
    SHAFT_HZ,
    bearing_signal,
    write_cwru_like,
    write_demo_data,
    write_motor_csv,
)

from biosig.plugin.registry import get_plugin


def envelope_peak_ratio(x: np.ndarray, fs: float, freq: float) -> float:
    """How far the envelope spectrum (2-5 kHz band) at ``freq`` stands above its median."""
    from scipy.signal import butter, hilbert, sosfiltfilt

    band = sosfiltfilt(butter(4, [2000, 5000], "bandpass", fs=fs, output="sos"), x)
    envelope = np.abs(hilbert(band))
    spectrum = np.abs(np.fft.rfft(envelope - envelope.mean()))
    f = np.fft.rfftfreq(envelope.size, 1 / fs)
    return float(spectrum[np.abs(f - freq) < 2].max() / np.median(spectrum[(f > 20) & (f < 500)]))


def test_synthetic_faults_ring_at_their_characteristic_frequencies() -> None:
    rng = np.random.default_rng(0)
    faults = {"inner_race": BPFI, "outer_race": BPFO, "ball": BSF}
    for label in faults:
        x = bearing_signal(label, 12000, 2.0, rng)
        for other, other_multiple in faults.items():
            ratio = envelope_peak_ratio(x, 12000, other_multiple * SHAFT_HZ)
            assert (ratio > 20) if other == label else (ratio < 5), (label, other, ratio)
    normal = bearing_signal("normal", 48000, 1.0, rng)
    assert max(envelope_peak_ratio(normal, 48000, m * SHAFT_HZ) for m in faults.values()) < 5


def test_synthetic_motor_csv_reads_like_the_real_files(tmp_path: Path) -> None:
    path = write_motor_csv(tmp_path / "faulty" / "F1.csv", faulty=True, seconds=2.0)
    assert path.read_text().splitlines()[0] == "timestamp,accX,accY,accZ"
    p = get_plugin("vibration")
    (rec,) = p.open(path)
    assert rec.fs == 1000 and rec.channels == ("accX", "accY", "accZ") and rec.n_samples == 2000
    z = np.concatenate(list(rec.chunks(700)), axis=1)[2]
    assert np.mean((z == z.min()) | (z == z.max())) > 0.2  # saturated at its rails


def test_demo_data_trains_and_generalises_to_another_seed(tmp_path: Path, run_cli) -> None:
    demo = get_plugin("vibration").make_demo_data(tmp_path / "demo", seed=0)
    assert demo.labels == "manifest" and len(list((tmp_path / "demo").rglob("*.mat"))) == 4
    # The demo's files, made cheap for two shared cores: 1 s each (not 2), 512-sample
    # windows every 256 (not 1024 every 512), two epochs (not 5) at a higher rate.
    train = write_demo_data(tmp_path / "train", seed=0, seconds=1.0)
    test = write_demo_data(tmp_path / "test", seed=1, seconds=1.0)
    settings = train.settings
    result = run_cli(
        "train", "--plugin", "vibration", "--input", *train.inputs, "--labels", train.labels,
        "--manifest", settings["options"]["manifest"], "--preset", "tiny", "--epochs", "2",
        "--lr", "3e-3", "--batch-size", settings["batch_size"], "--window", "512",
        "--hop", "256", "--out", tmp_path / "model",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "classes: ball, inner_race, normal, outer_race" in result.out
    # the model keeps the training manifest, whose paths (cwru/Normal_0.mat…) match the
    # test files too: their classes and rates come from it
    report = run_cli(
        "evaluate", "--model", tmp_path / "model", "--input", *test.inputs,
        "--labels", "manifest", "--json",
    )  # fmt: skip
    assert report.code == 0, report.err
    metrics = json.loads(report.out)
    # four classes, chance 0.25 (measured: 0.98)
    assert metrics["recordings"]["n"] == 4 and metrics["accuracy"] >= 0.8, metrics

    # prediction names each held-out recording's class (windows span its original samples)
    predicted = run_cli(
        "predict", "--model", tmp_path / "model", "--out", tmp_path / "out", *test.inputs
    )
    assert predicted.code == 0, predicted.err
    rows = [
        line.split("\t") for line in (tmp_path / "out" / "recordings.tsv").read_text().splitlines()
    ]
    assert rows[0][:5] == ["recording", "file", "label", "confidence", "n_windows"]
    by_id = {row[0]: row[2] for row in rows[1:]}
    assert by_id == {"Normal_0": "normal", "IR007_0": "inner_race", "B007_0": "ball",
                     "OR007@6_0": "outer_race"}  # fmt: skip


def test_synthetic_cwru_like_files_have_cwru_layout(tmp_path: Path) -> None:
    paths = write_cwru_like(tmp_path, seconds=0.5)
    whos = {label: scipy.io.whosmat(path) for label, path in paths.items()}
    assert whos["normal"] == [
        ("X097_DE_time", (24000, 1), "double"),
        ("X097_FE_time", (24000, 1), "double"),
        ("X097RPM", (1, 1), "uint16"),
    ]
    assert [v for v, _, _ in whos["ball"]] == [
        "X118_DE_time", "X118_FE_time", "X118_BA_time", "X118RPM"
    ]  # fmt: skip
    assert whos["outer_race"][0][1] == (6000, 1)  # 12 kHz
