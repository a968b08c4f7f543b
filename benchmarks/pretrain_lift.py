"""Does ``biosig pretrain`` on many unlabelled recordings lift accuracy with few labels?

Issue 7: "Show on a task with few labels that pretraining on many unlabelled recordings
lifts accuracy". Everything runs through the command line (``python -m biosig``) on
synthetic data this script writes, so nothing is downloaded.

The task: ECG-like beat morphology
----------------------------------
Every recording is ``--length`` samples (default 256) of a repeated beat built, as in
McSharry et al.'s ECGSYN, from five Gaussian waves per beat (P, Q, R, S, T at fixed phase
offsets from the R peak). Three classes differ only in the shape of the beat:

* ``normal``: the reference beat;
* ``wide_qrs``: Q, R and S 1.45x as wide (a bundle-branch-block-like widening), R 0.9x;
* ``st_depression``: a broad negative wave between S and T (depth 0.12-0.22 of R) and a
  T wave 0.7x as tall.

The nuisance variation, drawn independently for every recording whatever its class, is
of the same order as the class differences, so a few labels cannot tell them apart from
the shape of one recording alone:

* every wave's amplitude x U(0.8, 1.2) and width x U(0.85, 1.15) (the person's own beat),
  and the whole beat's time scale x U(0.85, 1.15);
* heart rate 50-110 beats/min at 100 Hz (a beat every 55-120 samples), each RR interval
  jittered by 4 % (sinus arrhythmia); a random phase (where the first beat falls);
* gain x U(0.5, 2) and a random offset; baseline wander (two sinusoids of 0.05-0.5 Hz,
  0.1-0.4 of R each); white noise (sigma 0.03-0.12 of R) and, in half the recordings,
  a muscle-noise burst (band-passed noise of 0.1-0.3 of R over 20-40 % of the window).

Files (``DIR/data/``), all ``.npy`` for the ``numpy`` plugin, one recording per row:

* ``pool.npy`` (``--pool`` recordings, default 2000, classes drawn equally, no labels
  written: the unlabelled pool), seed 1;
* ``train{K}.npy`` and ``train{K}_labels.npy`` for each ``K`` in ``--sizes`` (labels per
  class; default 8 and 16), seed 100 + K;
* ``test.npy`` and ``test_labels.npy`` (``--test`` recordings, default 999, 333 per
  class), seed 2.

The protocol
------------
::

    biosig pretrain --plugin numpy --input pool.npy --out DIR/pretrained \\
        --window L --hop L --preset P --epochs E
    # for each K in --sizes and each seed S in --seeds, both arms:
    biosig train --plugin numpy --input trainK.npy --labels trainK_labels.npy \\
        --out DIR/runs/kK-sS-{pretrained,scratch} --window L --hop L --seed S \\
        (--init DIR/pretrained | --preset P)
    biosig evaluate --model RUN --input test.npy --labels test_labels.npy --json

A whole recording is one window (``--window L --hop L``). Everything else is biosig's
default (for these small sets: batches of at most an eighth of the training windows, at
least 300 steps, mixup, the final epoch's weights; see ``biosig train --help``, which
decides whether an ensemble is trained). The scratch arm
passes ``--preset P`` (the pretrained one takes the preset, window and normalisation from
its checkpoint); by default ``biosig train`` then narrows the scratch network to the data
size (``--fit-model``), which it cannot do to a pretrained backbone. ``--scratch-args``
adds flags to the scratch arm only (``--no-fit-model`` gives it the pretrained arm's
exact architecture).

Recorded per run: test accuracy (``evaluate --json``), train wall and CPU seconds (user +
system of the ``biosig train`` process and its threads), the 1-minute load average before
and after, and both commands; for pretraining its wall/CPU seconds and the first and last
rows of its ``history.tsv`` (reconstruction loss on the masked samples, train and
held-out, and the held-out loss of predicting zeros). Prints a table and writes everything
to ``--json-out``. Data and the pretraining run are reused when present (``--fresh``
redoes them). ``--tag T`` keeps another configuration's pretraining and runs beside
these (``DIR/pretrainedT``, ``DIR/runsT``) on the same data.

On a shared CPU run it as ``OMP_NUM_THREADS=1 python benchmarks/pretrain_lift.py ...``:
with torch's default threads a loaded 2-core machine ran an epoch 15x slower.

Usage::

    python benchmarks/pretrain_lift.py [--dir pretrain-lift] [--preset tiny]
        [--pretrain-epochs 16] [--sizes 8,16] [--seeds 0,1,2] [--length 256]
        [--pool 2000] [--test 999] [--json-out results.json] [--scratch-args "..."]
        [--arms scratch,pretrained] [--tag=T]
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from timed_run import timed  # the sibling module: run as python benchmarks/pretrain_lift.py

CLASSES = ("normal", "wide_qrs", "st_depression")
FS = 100.0  # nominal samples per second of the synthetic recordings

# Reference beat: (name, offset from R in seconds, width sigma in seconds, amplitude).
WAVES = (
    ("P", -0.20, 0.025, 0.15),
    ("Q", -0.03, 0.010, -0.12),
    ("R", 0.00, 0.012, 1.00),
    ("S", 0.03, 0.010, -0.20),
    ("T", 0.28, 0.045, 0.30),
)


# --------------------------------------------------------------------------- the data
def beat_waves(rng: np.random.Generator, label: str) -> list[tuple[float, float, float]]:
    """The (offset, sigma, amplitude) of one recording's waves, in seconds and R units."""
    scale = rng.uniform(0.85, 1.15)  # the whole beat's time scale
    waves = []
    for name, offset, sigma, amp in WAVES:
        amp = amp * rng.uniform(0.8, 1.2)
        sigma = sigma * rng.uniform(0.85, 1.15)
        if label == "wide_qrs" and name in ("Q", "R", "S"):
            sigma *= 1.45
            offset *= 1.45
            if name == "R":
                amp *= 0.9
        if label == "st_depression" and name == "T":
            amp *= 0.7
        waves.append((offset * scale, sigma * scale, amp))
    if label == "st_depression":
        depth = rng.uniform(0.12, 0.22)
        waves.append((0.14 * scale, 0.05 * scale, -depth))
    return waves


def recording(rng: np.random.Generator, label: str, n: int) -> np.ndarray:
    """One recording of class ``label``, ``n`` samples at :data:`FS` (float32)."""
    t = np.arange(n) / FS
    waves = beat_waves(rng, label)
    period = 60.0 / rng.uniform(50, 110)
    # R peaks: a random phase, RR intervals jittered by 4 %; beats one period past both
    # ends so that waves reaching into the window are drawn.
    beats, r = [], -period + rng.uniform(0, period)
    while r < t[-1] + period:
        beats.append(r)
        r += period * (1 + 0.04 * rng.standard_normal())
    x = np.zeros(n)
    for r in beats:
        for offset, sigma, amp in waves:
            x += amp * np.exp(-0.5 * ((t - r - offset) / sigma) ** 2)
    for _ in range(2):  # baseline wander
        f = rng.uniform(0.05, 0.5)
        x += rng.uniform(0.1, 0.4) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    x += rng.uniform(0.03, 0.12) * rng.standard_normal(n)
    if rng.random() < 0.5:  # a muscle-noise burst: band-passed noise over part of the window
        width = int(n * rng.uniform(0.2, 0.4))
        start = int(rng.integers(0, n - width))
        burst = np.convolve(rng.standard_normal(width + 4), np.ones(5) / 5, "valid")
        burst -= np.convolve(burst, np.ones(9) / 9, "same")
        x[start : start + width] += rng.uniform(0.1, 0.3) * burst / burst.std()
    x = rng.uniform(0.5, 2.0) * x + rng.normal(0, 0.5)
    return x.astype(np.float32)


def write_set(path: Path, labels: list[str], n: int, seed: int, write_labels: bool) -> None:
    rng = np.random.default_rng(seed)
    x = np.stack([recording(rng, label, n) for label in labels])[:, None, :]
    np.save(path, x)
    if write_labels:
        np.save(path.with_name(path.stem + "_labels.npy"), np.asarray(labels, dtype=str))


def balanced(per_class: int, rng: np.random.Generator) -> list[str]:
    labels = [c for c in CLASSES for _ in range(per_class)]
    return [labels[i] for i in rng.permutation(len(labels))]


def write_data(directory: Path, length: int, pool: int, test: int, sizes: list[int]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng(0)
    if not (directory / "pool.npy").exists():
        write_set(directory / "pool.npy", balanced(-(-pool // 3), order)[:pool], length, 1, False)
    if not (directory / "test.npy").exists():
        write_set(directory / "test.npy", balanced(test // 3, order), length, 2, True)
    for k in sizes:
        if not (directory / f"train{k}.npy").exists():
            labels = balanced(k, np.random.default_rng(k))
            write_set(directory / f"train{k}.npy", labels, length, 100 + k, True)


# --------------------------------------------------------------------------- biosig side


def evaluate(biosig: list[str], run_dir: Path, data: Path) -> tuple[float, str]:
    command = [
        *biosig, "evaluate", "--model", str(run_dir),
        "--input", str(data / "test.npy"), "--labels", str(data / "test_labels.npy"), "--json",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"biosig evaluate failed ({done.returncode}): {done.stderr.strip()}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return float(report["accuracy"]), shlex.join(command)


def pretrain(biosig: list[str], args: argparse.Namespace, data: Path, out: Path) -> dict:
    command = [
        *biosig, "pretrain", "--plugin", "numpy", "--input", str(data / "pool.npy"),
        "--out", str(out), "--window", str(args.length), "--hop", str(args.length),
        "--preset", args.preset, "--epochs", str(args.pretrain_epochs),
        *shlex.split(args.pretrain_args),
    ]  # fmt: skip
    result_path = out / "lift_pretrain.json"
    if result_path.exists() and not args.fresh:
        return json.loads(result_path.read_text())
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    wall, cpu, load0, load1 = timed(command, out.parent / "pretrain.log", "biosig pretrain")
    rows = list(csv.DictReader((out / "history.tsv").open(), delimiter="\t"))

    def losses(row: dict) -> dict:
        return {k: float(row[k]) for k in ("epoch", "train_loss", "val_loss", "val_zero_loss")}

    result = {
        "command": shlex.join(command),
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
        "load_before": load0,
        "load_after": load1,
        "epochs": len(rows),
        "first": losses(rows[0]),
        "last": losses(rows[-1]),
        "val_loss_per_epoch": [round(float(r["val_loss"]), 4) for r in rows],
    }
    result_path.write_text(json.dumps(result, indent=2) + "\n")
    return result


def train_and_evaluate(
    biosig: list[str],
    args: argparse.Namespace,
    data: Path,
    k: int,
    seed: int,
    arm: str,
    pretrained: Path,
) -> dict:
    run_dir = args.dir / f"runs{args.tag}" / f"k{k}-s{seed}-{arm}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    start = ["--init", str(pretrained)] if arm == "pretrained" else ["--preset", args.preset]
    if arm == "scratch":
        start += shlex.split(args.scratch_args)
    command = [
        *biosig, "train", "--plugin", "numpy",
        "--input", str(data / f"train{k}.npy"), "--labels", str(data / f"train{k}_labels.npy"),
        "--out", str(run_dir), "--window", str(args.length), "--hop", str(args.length),
        "--seed", str(seed), *start,
    ]  # fmt: skip
    log_path = run_dir.parent / f"k{k}-s{seed}-{arm}.log"
    wall, cpu, load0, load1 = timed(command, log_path, "biosig train")
    accuracy, eval_command = evaluate(biosig, run_dir, data)
    meta = json.loads((run_dir / "best" / "biosig.json").read_text())
    return {
        "labels_per_class": k,
        "seed": seed,
        "arm": arm,
        "accuracy": accuracy,
        "train_seconds": round(wall, 1),
        "train_cpu_seconds": round(cpu, 1),
        "load_before": load0,
        "load_after": load1,
        "epochs_run": len(list(csv.DictReader((run_dir / "history.tsv").open(), delimiter="\t"))),
        "ensemble": int(meta.get("ensemble", 1)),
        # the settings biosig chose for this training set, as the checkpoint records them
        "settings": {
            k: meta.get("training", {}).get(k)
            for k in ("augment", "batch_size", "epochs", "lr", "select", "init")
        },
        "train_command": shlex.join(command),
        "evaluate_command": eval_command,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("pretrain-lift"), help="data and runs")
    parser.add_argument("--preset", default="tiny", help="model preset of both arms")
    parser.add_argument("--pretrain-epochs", type=int, default=16)
    parser.add_argument("--pretrain-args", default="", help="further `biosig pretrain` flags")
    parser.add_argument("--scratch-args", default="", help="further flags, scratch arm only")
    parser.add_argument("--sizes", default="8,16", help="labels per class, comma-separated")
    parser.add_argument("--seeds", default="0,1,2", help="training seeds, comma-separated")
    parser.add_argument("--length", type=int, default=256, help="samples per recording")
    parser.add_argument("--pool", type=int, default=2000, help="unlabelled recordings")
    parser.add_argument("--test", type=int, default=999, help="test recordings")
    parser.add_argument("--arms", default="scratch,pretrained")
    parser.add_argument(
        "--tag",
        default="",
        help="suffix of the pretraining and runs directories (DIR/pretrainedTAG)",
    )
    parser.add_argument("--biosig", default=f"{sys.executable} -m biosig", help="command")
    parser.add_argument("--json-out", type=Path, help="write the results here")
    parser.add_argument("--fresh", action="store_true", help="rewrite data, pretrain again")
    args = parser.parse_args(argv)

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    biosig = shlex.split(args.biosig)
    data = args.dir / "data"
    if args.fresh and data.exists():
        shutil.rmtree(data)
    started = time.perf_counter()
    write_data(data, args.length, args.pool, args.test, sizes)

    pretrained = args.dir / f"pretrained{args.tag}"
    pre = None
    if "pretrained" in arms:
        pre = pretrain(biosig, args, data, pretrained)
        first, last = pre["first"], pre["last"]
        print(
            f"pretraining ({pre['epochs']} epochs, {pre['wall_seconds']:.0f} s wall, "
            f"{pre['cpu_seconds']:.0f} s CPU): masked val loss {first['val_loss']:.4f} -> "
            f"{last['val_loss']:.4f} (train {first['train_loss']:.4f} -> "
            f"{last['train_loss']:.4f}; predicting zeros {last['val_zero_loss']:.4f})",
            flush=True,
        )

    runs: list[dict] = []
    summary: list[dict] = []

    def save() -> None:
        if args.json_out:
            args.json_out.parent.mkdir(parents=True, exist_ok=True)
            result = {
                "settings": {k: str(v) for k, v in vars(args).items()},
                "classes": list(CLASSES),
                "pretraining": pre,
                "summary": summary,
                "runs": runs,
                "total_wall_seconds": round(time.perf_counter() - started, 1),
            }
            args.json_out.write_text(json.dumps(result, indent=2) + "\n")

    for k in sizes:
        for seed in seeds:  # both arms per seed, so a cut-short sweep still pairs them
            for arm in arms:
                run = train_and_evaluate(biosig, args, data, k, seed, arm, pretrained)
                runs.append(run)
                print(
                    f"k={k} seed={seed} {arm:<10} accuracy {run['accuracy']:.3f}  "
                    f"train {run['train_seconds']:.0f} s wall / {run['train_cpu_seconds']:.0f}"
                    f" s CPU (load {run['load_before']:.1f} -> {run['load_after']:.1f})",
                    flush=True,
                )
                save()
    print(f"{'labels/class':>12} {'arm':<10} {'mean':>6}  {'per seed':<20} train s (wall/cpu)")
    for k in sizes:
        for arm in arms:
            done = [r for r in runs if r["labels_per_class"] == k and r["arm"] == arm]
            accs = [r["accuracy"] for r in done]
            summary.append(
                {
                    "labels_per_class": k,
                    "arm": arm,
                    "mean": statistics.fmean(accs),
                    "per_seed": accs,
                }
            )
            times = " ".join(f"{r['train_seconds']:.0f}/{r['train_cpu_seconds']:.0f}" for r in done)
            print(
                f"{k:>12} {arm:<10} {statistics.fmean(accs):>6.3f}  "
                f"{' '.join(f'{a:.3f}' for a in accs):<20} {times}",
                flush=True,
            )
    print(f"total {time.perf_counter() - started:.0f} s wall")
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
