"""``benchmarks/gpu_check.sh --dry-run``: every step of the GPU check runs on the CPU and
lands in its JSON, so the script a lent GPU gets one short call for has not rotted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"


def run_check(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        ["bash", str(SCRIPT), "--out", str(out), *extra], env=env, capture_output=True,
        text=True, timeout=900,
    )  # fmt: skip


def test_dry_run_runs_every_step_on_the_cpu(tmp_path: Path) -> None:
    out = tmp_path / "check.json"
    done = run_check(out, "--dry-run")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["dry_run"] is True and report["failures"] == {}
    assert set(report["seconds"]) == {"environment", "cuda_tests", "bench", "sharded_predict"}
    assert report["environment"]["device"] == "cpu"
    collected = report["cuda_tests"]["collected"]  # collected, not run, on a CPU
    assert any(test.startswith("tests/test_cuda.py::") for test in collected)
    assert "summary" not in report["cuda_tests"]
    sweep = report["bench"]
    assert [run["batch_size"] for run in sweep] == [16, 32]
    for run in sweep:
        assert run["device"] == "cpu" and run["model_windows_per_s"] > 0
        assert run["train_windows_per_s"] > 0 and 0 < run["mfu"] < 1
    sharded = report["sharded_predict"]
    assert sharded["ranks"] == 2 and "windows.tsv" in sharded["tables"]
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA the real check runs")
def test_without_cuda_the_real_run_fails_loudly(tmp_path: Path) -> None:
    out = tmp_path / "check.json"
    done = run_check(out)
    assert done.returncode == 1
    assert "gpu_check: FAILED: environment" in done.stderr
    assert "CUDA is not available" in json.loads(out.read_text())["failures"]["environment"]
