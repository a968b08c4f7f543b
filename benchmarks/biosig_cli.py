"""What the benchmark scripts read back from biosig's command line: the metrics that
``biosig evaluate --json`` prints, and what a training run directory says about itself.

Shared by ``ucr.py`` and ``accuracy.py`` beside it (imported as a sibling module).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from timed_run import timed


def evaluate_report(
    command: list[str], log_path: Path, env: dict[str, str] | None = None
) -> tuple[dict[str, Any], float]:
    """Run a ``biosig evaluate … --json`` command (its messages in ``log_path``) and return
    the metrics it printed and its wall seconds; a failure exits naming the log."""
    stdout_path = Path(log_path).with_suffix(".json")
    wall, _, _, _ = timed(command, log_path, "biosig evaluate", env, stdout_path)
    lines = stdout_path.read_text().strip().splitlines()
    if not lines:
        raise SystemExit(f"biosig evaluate printed nothing; see {log_path}")
    return json.loads(lines[-1]), wall


def run_summary(run_dir: Path) -> dict[str, Any]:
    """What a ``biosig train`` run directory says about the run: epochs run, the epoch
    ``best/`` holds and its validation accuracy, and the window, rate, model and training
    settings its ``best/biosig.json`` records."""
    run_dir = Path(run_dir)
    meta = json.loads((run_dir / "best" / "biosig.json").read_text())
    training = meta.get("training", {})
    best_epoch = int(training["epoch"])
    rows = list(csv.DictReader((run_dir / "history.tsv").open(), delimiter="\t"))
    best_val = float(rows[best_epoch - 1]["val_accuracy"]) if len(rows) >= best_epoch else None
    return {
        "epochs_run": len(rows),
        "best_epoch": best_epoch,
        "best_val_accuracy": best_val,
        "ensemble": int(meta.get("ensemble", 1)),
        "preset": meta.get("preset"),
        "window": meta.get("window"),
        "hop": meta.get("hop"),
        "sample_rate": meta.get("sample_rate"),
        "normalization": (meta.get("normalization") or {}).get("mode"),
        "epochs": training.get("epochs"),
        "batch_size": training.get("batch_size"),
        "n_train_windows": training.get("n_train_windows"),
        "n_val_windows": training.get("n_val_windows"),
        "split": training.get("split"),
    }
