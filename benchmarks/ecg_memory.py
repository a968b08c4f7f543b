"""Peak memory of ``biosig predict`` over a 24-hour and a 1-hour ECG record.

Streaming prediction must hold constant memory however long the recording. This writes a
synthetic 1-hour 2-lead ECG at 360 Hz (WFDB format 212, as MIT-BIH and Holter exports
store it) and a 24-hour record made of that hour 24 times over, trains a ``tiny`` rhythm
model for one epoch on short synthetic records (its accuracy is beside the point here),
then runs ``biosig predict --plugin ecg RECORD.hea`` on each record in a fresh process and
reads the process's peak resident memory (``ru_maxrss``). ``--workers N`` is passed on to
``biosig predict --workers N`` (reader threads; 0 reads inline on the main thread); without
it predict runs with its default.

    python benchmarks/ecg_memory.py [--dir DIR] [--repeats 3] [--fixed-mmap-threshold]
        [--workers N]

Prints one line per run and the ratio of the median peaks; each 24-hour run takes one to
two minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import wfdb
from biosig_wfdb.synthetic import write_ecg_records

FS = 360
HOUR = 3600 * FS


def write_records(directory: Path) -> tuple[Path, Path]:
    """The 1-hour record and the 24-hour one built from it, as WFDB format 212."""
    (hour,) = write_ecg_records(directory / "source", 1, 1, seconds=3600, fs=FS, seed=7)
    record = wfdb.rdrecord(str(hour.with_suffix("")), physical=False)
    paths = []
    for name, repeats in (("hour", 1), ("day", 24)):
        wfdb.wrsamp(
            name,
            fs=FS,
            units=record.units,
            sig_name=record.sig_name,
            d_signal=np.tile(record.d_signal, (repeats, 1)),
            fmt=["212"] * record.n_sig,
            adc_gain=record.adc_gain,
            baseline=record.baseline,
            write_dir=str(directory),
        )
        paths.append(directory / f"{name}.hea")
    return paths[0], paths[1]


def train_model(directory: Path) -> Path:
    data = directory / "training"
    write_ecg_records(data, n_patients=4, records_per_patient=1, seconds=60, fs=FS, seed=0)
    model = directory / "model"
    command = [
        "biosig", "train", "--plugin", "ecg", "--input", str(data), "--labels", "rhythm",
        "--unannotated", "N", "--preset", "tiny", "--epochs", "1", "--out", str(model),
    ]  # fmt: skip
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return model


def peak_memory(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Peak RSS in MiB and wall seconds of ``command`` run in a child of a fresh Python, so
    that ``RUSAGE_CHILDREN`` holds that one process only."""
    probe = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
        "time.perf_counter() - t)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, *command], check=True, capture_output=True, text=True, env=env
    ).stdout.split()
    return int(out[0]) / 1024, float(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("ecg-memory-bench"))
    parser.add_argument("--hop", type=int, default=3600, help="prediction hop (samples)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each record")
    parser.add_argument(
        "--fixed-mmap-threshold",
        action="store_true",
        help="run predict with glibc's MALLOC_MMAP_THRESHOLD_=1 MiB: every large block is "
        "mapped and returned on free, so the peak shows what is live, without the heap's "
        "run-to-run spread (about twice as slow)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="passed on as predict's --workers (reader threads; 0: read inline) "
        "[default: not passed, predict's own default]",
    )
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if args.fixed_mmap_threshold:
        env["MALLOC_MMAP_THRESHOLD_"] = str(1 << 20)
    started = time.perf_counter()
    hour, day = write_records(args.dir)
    model = train_model(args.dir)
    print(f"records and model ready in {time.perf_counter() - started:.0f} s")
    peaks: dict[str, list[float]] = {"1 hour": [], "24 hours": []}
    workers = "default" if args.workers is None else args.workers
    for _ in range(args.repeats):  # alternate, so drifts of the machine hit both alike
        for label, record in (("1 hour", hour), ("24 hours", day)):
            command = [
                "biosig", "predict", "--plugin", "ecg", str(record), "--model", str(model),
                "--hop", str(args.hop), "--batch-size", str(args.batch_size),
                "--out", str(args.dir / f"predictions-{record.stem}"),
            ]  # fmt: skip
            if args.workers is not None:
                command += ["--workers", str(args.workers)]
            peak, seconds = peak_memory(command, env)
            peaks[label].append(peak)
            samples = wfdb.rdheader(str(record.with_suffix(""))).sig_len
            print(
                f"{label:>9}: {samples:>11,} samples x 2 leads, workers {workers}, "
                f"peak RSS {peak:7.1f} MiB, {seconds:6.1f} s",
                flush=True,
            )
    hour_peak, day_peak = (float(np.median(peaks[k])) for k in ("1 hour", "24 hours"))
    print(
        f"median peak RSS: 1 hour {hour_peak:.1f} MiB, 24 hours {day_peak:.1f} MiB; "
        f"24 h / 1 h = {day_peak / hour_peak:.3f} ({day_peak - hour_peak:+.1f} MiB)"
    )


if __name__ == "__main__":
    main()
