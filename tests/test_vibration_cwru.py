"""Acceptance on the real CWRU files: trained on the first 70 % of each recording (the
pipeline's manifest gives classes and rates, the 48 kHz baseline resampled to 12 kHz),
evaluated on the last 25 %, which no training or validation window touches: accuracy at
least 0.99 over normal, inner race, ball and outer race."""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PIPELINE = REPO / "pipelines" / "cwru-bearing.toml"
MANIFEST = REPO / "pipelines" / "cwru-manifest.csv"

# The pipeline as written, made cheap enough for two shared CPU cores: 1024-sample windows
# every 2048 samples for four epochs, instead of 2048 every 1024 for twelve. Validation
# accuracy reaches 1.0 at the third.
FAST = ("--window", "1024", "--hop", "2048", "--batch-size", "8", "--epochs", "4")


def test_cwru_time_block_split_reaches_99_percent(shared_data: Path, in_tmp: Path, run_cli):
    cwru = shared_data / "vibration" / "cwru"
    trained = run_cli(
        "train", "--pipeline", PIPELINE, "--input", cwru, "--manifest", MANIFEST,
        *FAST, "--out", "model",
    )  # fmt: skip
    assert trained.code == 0, trained.err
    assert "classes: ball, inner_race, normal, outer_race" in trained.out
    meta = json.loads((in_tmp / "model" / "best" / "biosig.json").read_text())
    assert meta["sample_rate"] == 12000 and meta["channels"] == ["X118_DE_time"]
    assert meta["normalization"]["mode"] == "window"  # amplitudes differ 30-fold by file
    assert meta["plugin"]["options"]["manifest"] == str(MANIFEST)

    # the held-out tail, from another directory: the model's manifest path is absolute
    report = run_cli(
        "evaluate", "--model", in_tmp / "model", "--input", cwru, "--labels", "manifest",
        "--span", "0.75:1", "--json", cwd=cwru.parent,
    )  # fmt: skip
    assert report.code == 0, report.err
    metrics = json.loads(report.out)
    assert metrics["recordings"]["n"] == 6
    assert {c: v["support"] > 0 for c, v in metrics["per_class"].items()} == {
        "ball": True, "inner_race": True, "normal": True, "outer_race": True,
    }  # fmt: skip
    assert metrics["accuracy"] >= 0.99, metrics["confusion"]
