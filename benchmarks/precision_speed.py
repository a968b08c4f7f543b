"""Training and prediction speed in float32 and in bf16 on this CPU, side by side: ``biosig
bench`` run with ``BIOSIG_CPU_BF16=0`` (float32, what biosig did before it used bf16 on
CPUs with AMX) and ``BIOSIG_CPU_BF16=1``, alternating, one process at a time.

    python benchmarks/precision_speed.py [--repeats 2] [--seconds 10]

Rows: the ``small`` preset's training steps at 4096 samples (batches of 64, augmentation,
AdamW; the random-kernel branch is fitted once before training, so it is not in a step),
and its prediction model-only at 1024 samples with the default random-kernel branch and
without it. Prints a Markdown table of windows per second and MFU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CASES = {
    "training, 4096 samples": ("--window", "4096", "--kernel-features", "0", "--train"),
    "prediction, 1024 samples, random kernels": ("--window", "1024"),
    "prediction, 1024 samples, network alone": ("--window", "1024", "--kernel-features", "0"),
}
PRECISIONS = {"float32": "0", "bf16": "1"}


def bench(case: tuple[str, ...], bf16: str, seconds: float) -> dict:
    command = [
        sys.executable, "-m", "biosig", "bench", "--preset", "small", "--seconds", str(seconds),
        "--json", "-q", *case,
    ]  # fmt: skip
    env = {**os.environ, "BIOSIG_CPU_BF16": bf16}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print("| what | precision | windows/s per repeat | MFU (of its precision's rate) | threads |")
    print("| --- | --- | --- | --- | --- |")
    for name, case in CASES.items():
        key = "train_windows_per_s" if "--train" in case else "model_windows_per_s"
        mfu_key = "train_mfu" if "--train" in case else "mfu"
        runs: dict[str, list[dict]] = {p: [] for p in PRECISIONS}
        for _ in range(args.repeats):
            for precision, flag in PRECISIONS.items():
                runs[precision].append(bench(case, flag, args.seconds))
        for precision, figures in runs.items():
            speeds = ", ".join(f"{f[key]:.1f}" for f in figures)
            mfus = ", ".join(f"{f[mfu_key]:.3f}" for f in figures)
            threads = ", ".join(str(f["threads"]) for f in figures)
            print(f"| {name} | {precision} | {speeds} | {mfus} | {threads} |", flush=True)


if __name__ == "__main__":
    main()
