"""The same small training idle and beside busy processes: biosig's thread policy
(:mod:`biosig.threads`) against a previous version of biosig, which left torch's defaults
(one thread per core, threads spinning a while when they wait), side by side in one run.
``--settings`` adds the OpenMP settings the policy was chosen from (a passive wait, one
thread, a short spin), each given to this version through the environment.

    python benchmarks/threads_under_load.py [--previous 7546cc5] [--busy 0 4] [--repeats 2]

It writes the numpy plugin's demo arrays, then times ``biosig train`` (tiny, 2 epochs, the
random-kernel branch off) once per setting and repeat, for each number of busy processes
(pure-Python spinners of its own, started before each run and stopped after it; a run is
stopped after LIMIT seconds and reported as such). The previous version runs from a git
worktree of ``--previous`` in a temporary directory, with the installed plugins.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRAIN = (
    "train", "--plugin", "numpy", "--input", "signals.npy", "--labels", "labels.npy",
    "--preset", "tiny", "--epochs", "2", "--kernel-features", "0", "-q",
)  # fmt: skip
#: Seconds a run may take before it is stopped.
LIMIT = 300
#: Environment settings ``--settings`` adds, given to this version.
SETTINGS = {
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "OMP_NUM_THREADS=1": {"OMP_NUM_THREADS": "1"},
    "GOMP_SPINCOUNT=10000": {"GOMP_SPINCOUNT": "10000"},
}
REPO = Path(__file__).resolve().parents[1]


def spin(stop_at: float) -> None:
    while time.time() < stop_at:
        pass


def timed_train(work: Path, env: dict[str, str], out: str) -> float | None:
    started = time.perf_counter()
    try:
        subprocess.run(
            [sys.executable, "-m", "biosig", *TRAIN, "--out", out],
            cwd=work, env=env, check=True, timeout=LIMIT, capture_output=True,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return None
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 4])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--previous", default="7546cc5", help="the version to compare with")
    parser.add_argument("--settings", action="store_true", help="also time SETTINGS")
    args = parser.parse_args()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        from biosig_numpy.synthetic import write_demo_arrays

        write_demo_arrays(work)  # signals.npy, labels.npy
        previous = work / "previous"
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(previous), args.previous],
            check=True, capture_output=True,
        )  # fmt: skip
        settings = {
            f"previous ({args.previous}), torch defaults": {"PYTHONPATH": str(previous)},
            "this version, thread policy": {},
            **(SETTINGS if args.settings else {}),
        }
        try:
            time_settings(work, base, settings, args.busy, args.repeats)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(previous)])


def time_settings(
    work: Path, base: dict[str, str], settings: dict[str, dict[str, str]], loads: list[int],
    repeats: int,
) -> None:  # fmt: skip
    """Print one line per run: the load, the repeat, the setting and its seconds."""
    runs = 0
    for load in loads:
        for repeat in range(repeats):
            for name, extra in settings.items():
                runs += 1
                seconds = train_beside(load, work, {**base, **extra}, f"run-{runs}")
                shown = "over the limit" if seconds is None else f"{seconds:.1f} s"
                print(f"busy {load}, repeat {repeat + 1}: {name}: {shown}", flush=True)


def train_beside(load: int, work: Path, env: dict[str, str], out: str) -> float | None:
    """:func:`timed_train` while ``load`` busy processes run."""
    stop_at = time.time() + LIMIT
    busy = [multiprocessing.Process(target=spin, args=(stop_at,)) for _ in range(load)]
    for process in busy:
        process.start()
    try:
        return timed_train(work, env, out)
    finally:
        for process in busy:
            process.terminate()
            process.join()


if __name__ == "__main__":
    main()
