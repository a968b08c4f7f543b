"""``SignalClassifier`` against ``biosig train`` + ``biosig evaluate``: same data, defaults
and seed, side by side; the test accuracies should be equal.

Reads the arrays ``benchmarks/accuracy.py``'s ucr suite writes
(``DIR/ucr/NAME/{train,test}_{signals,labels}.npy``):

    python benchmarks/estimator_parity.py --dir /tmp/acc --datasets Coffee,GunPoint --seed 0
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import biosig


def command_accuracy(data: Path, seed: int, run: Path) -> float:
    """``biosig train`` then ``biosig evaluate --json``: per-series accuracy."""
    biosig_cli = [sys.executable, "-m", "biosig"]
    train = ["train", "--plugin", "numpy", "--seed", str(seed), "--out", str(run)]
    subprocess.run(
        [*biosig_cli, *train, "--input", str(data / "train_signals.npy"),
         "--labels", str(data / "train_labels.npy")],
        check=True, capture_output=True,
    )  # fmt: skip
    printed = subprocess.run(
        [*biosig_cli, "evaluate", "--model", str(run), "--json",
         "--input", str(data / "test_signals.npy"), "--labels", str(data / "test_labels.npy")],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(printed.stdout)["recordings"]["accuracy"]


def estimator_accuracy(data: Path, seed: int) -> float:
    x_train, y_train = np.load(data / "train_signals.npy"), np.load(data / "train_labels.npy")
    x_test, y_test = np.load(data / "test_signals.npy"), np.load(data / "test_labels.npy")
    return biosig.SignalClassifier(seed=seed).fit(x_train, y_train).score(x_test, y_test)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--datasets", default="Coffee,GunPoint")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name in args.datasets.split(","):
        data = args.dir / "ucr" / name
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            cli = command_accuracy(data, args.seed, Path(tmp) / "run")
            cli_seconds = time.perf_counter() - start
        start = time.perf_counter()
        ours = estimator_accuracy(data, args.seed)
        ours_seconds = time.perf_counter() - start
        print(
            f"{name} seed {args.seed}: train + evaluate {cli:.4f} ({cli_seconds:.0f} s), "
            f"SignalClassifier {ours:.4f} ({ours_seconds:.0f} s)"
        )


if __name__ == "__main__":
    main()
