"""Training and prediction speed in float32 and in bf16 on this CPU, side by side: ``biosig
bench`` run with ``BIOSIG_CPU_BF16=0`` (float32, what biosig did before it used bf16 on
CPUs with AMX) and ``BIOSIG_CPU_BF16=1``, alternating, one process at a time.

    python benchmarks/precision_speed.py [--repeats 2] [--seconds 10] [--previous DIR]

``--previous DIR`` adds the prediction rows of another checkout (``git worktree add DIR
REV``), run with ``PYTHONPATH=DIR`` in the same alternation: the version before a change,
measured beside it. Its ``bench`` may predate ``--train``, so it has no training row.

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
import tempfile

CASES = {
    "training, 4096 samples": ("--window", "4096", "--kernel-features", "0", "--train"),
    "prediction, 1024 samples, random kernels": ("--window", "1024"),
    "prediction, 1024 samples, network alone": ("--window", "1024", "--kernel-features", "0"),
}
PRECISIONS = {"float32": {"BIOSIG_CPU_BF16": "0"}, "bf16": {"BIOSIG_CPU_BF16": "1"}}


def bench(case: tuple[str, ...], env: dict[str, str], seconds: float) -> dict:
    command = [
        sys.executable, "-m", "biosig", "bench", "--preset", "small", "--seconds", str(seconds),
        "--json", "-q", *case,
    ]  # fmt: skip
    env = {**os.environ, **env}
    # Not from the repository root, where ``-m biosig`` would import this checkout's package
    # before a PYTHONPATH checkout's.
    done = subprocess.run(
        command, env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def _figure(value: float | None) -> str:
    """Three decimals, or n/a where a version's ``bench`` did not report it (an older
    version gave no MFU on a CPU)."""
    return "n/a" if value is None else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--previous", help="a checkout of the version to compare with")
    args = parser.parse_args()
    print("| what | precision | windows/s per repeat | MFU (of its precision's rate) | threads |")
    print("| --- | --- | --- | --- | --- |")
    for name, case in CASES.items():
        key = "train_windows_per_s" if "--train" in case else "model_windows_per_s"
        mfu_key = "train_mfu" if "--train" in case else "mfu"
        variants = dict(PRECISIONS)
        if args.previous and "--train" not in case:
            variants[f"previous ({args.previous})"] = {"PYTHONPATH": args.previous}
        runs: dict[str, list[dict]] = {v: [] for v in variants}
        for _ in range(args.repeats):
            for variant, env in variants.items():
                runs[variant].append(bench(case, env, args.seconds))
        for precision, figures in runs.items():
            speeds = ", ".join(f"{f[key]:.1f}" for f in figures)
            mfus = ", ".join(_figure(f.get(mfu_key)) for f in figures)
            threads = ", ".join(str(f.get("threads", "?")) for f in figures)
            print(f"| {name} | {precision} | {speeds} | {mfus} | {threads} |", flush=True)


if __name__ == "__main__":
    main()
