"""The same small training idle and beside busy processes, under several OpenMP thread
settings: torch's own (one thread per core, threads spinning a while when they wait), a
passive wait, one thread, and a short spin. Issue 19 asks for a policy that is much faster
under load and no slower idle; this measures candidates side by side.

    python benchmarks/threads_under_load.py [--busy 0 4] [--repeats 2]

It writes the numpy plugin's demo arrays, then times ``biosig train`` (tiny, 2 epochs, the
random-kernel branch off) once per setting and repeat, for each number of busy processes
(pure-Python spinners of its own, started before each run and stopped after it; a run is
stopped after LIMIT seconds and reported as such).
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
SETTINGS = {
    "torch defaults": {},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "OMP_NUM_THREADS=1": {"OMP_NUM_THREADS": "1"},
    "GOMP_SPINCOUNT=10000": {"GOMP_SPINCOUNT": "10000"},
}


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
    args = parser.parse_args()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        from biosig_numpy.synthetic import write_demo_arrays

        write_demo_arrays(work)  # signals.npy, labels.npy
        runs = 0
        for load in args.busy:
            for repeat in range(args.repeats):
                for name, extra in SETTINGS.items():
                    stop_at = time.time() + LIMIT
                    busy = [
                        multiprocessing.Process(target=spin, args=(stop_at,)) for _ in range(load)
                    ]
                    for process in busy:
                        process.start()
                    try:
                        runs += 1
                        seconds = timed_train(work, {**base, **extra}, f"run-{runs}")
                    finally:
                        for process in busy:
                            process.terminate()
                            process.join()
                    shown = "over the limit" if seconds is None else f"{seconds:.1f} s"
                    print(f"busy {load}, repeat {repeat + 1}: {name}: {shown}", flush=True)


if __name__ == "__main__":
    main()
