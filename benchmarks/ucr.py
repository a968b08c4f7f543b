"""biosig against MiniRocket on small public benchmark series (UCR/UEA archive, issue 7).

For each data set this loads the standard train and test splits that the ``aeon`` package
ships (``aeon.datasets.load_classification``; GunPoint, ItalyPowerDemand and BasicMotions
come with aeon and need no download), writes them as NumPy arrays the ``numpy`` plugin
reads::

    DIR/NAME/train_signals.npy   float32 (N, C, L), one series per row
    DIR/NAME/train_labels.npy    fixed-width str (N,), the archive's class names
    DIR/NAME/test_signals.npy, DIR/NAME/test_labels.npy

then, side by side on the same split:

* MiniRocket: aeon's ``MiniRocketClassifier`` with its default settings and
  ``random_state=0``, fit on train and scored on test (fit + predict timed);
* biosig, through its command line only, once per seed::

      biosig train --plugin numpy --input train_signals.npy --labels train_labels.npy \\
          --out RUN --window L --hop L --seed S [--biosig-args ...]
      biosig evaluate --model RUN --input test_signals.npy --labels test_labels.npy --json

  A whole series is one example: ``--window L --hop L`` (L = series length) are passed
  unless ``--biosig-args`` sets ``--window``/``--hop`` itself. Training is timed as the
  wall time of the ``biosig train`` process and as its CPU time (user + system, all
  threads; on a shared machine the wall time grows with the load); accuracy is the
  ``accuracy`` of the ``evaluate --json`` report.

Prints one row per data set and writes the same to ``--json-out`` (with each run's
commands, epochs run and the epoch ``best/`` holds).

``--checkpoint last`` scores the run's final weights instead of ``best/``: with a few dozen
training series the validation part is 8 to 14 of them, its macro-F1 reaches 1.0 within a
few epochs, and ``best/`` then keeps that early epoch.

MiniRocket's first fit in a fresh environment includes numba's compilation (about 45 s for
the univariate and again for the multivariate code on a 2-core CPU; aeon caches it, later
fits take under a second): refit with ``--rerun-minirocket`` for the warm time.

The biosig command is ``python -m biosig`` of this interpreter unless ``--biosig`` names
another; run from the repository root that is the checkout's own package.

aeon need not be installed beside biosig: when it cannot be imported here, the data and
MiniRocket steps run under ``--aeon-python`` (a separate environment with aeon) as a
subprocess of this script. The data and the MiniRocket result are cached in
``DIR/NAME/``; ``--rerun-minirocket`` refits.

Usage::

    python benchmarks/ucr.py [--dir ucr-bench] [--datasets GunPoint,ItalyPowerDemand,BasicMotions]
        [--seeds 0,1,2] [--biosig-args "--preset tiny --epochs 100"] [--checkpoint best|last]
        [--json-out results.json] [--aeon-python /path/to/venv/bin/python] [--rerun-minirocket]
        [--tag NAME]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from biosig_cli import evaluate_report, run_summary  # siblings: run as python benchmarks/ucr.py
from timed_run import timed

DEFAULT_DATASETS = ("GunPoint", "ItalyPowerDemand", "BasicMotions")


# --------------------------------------------------------------------------- aeon side
def fit_minirocket(x_train, y_train, x_test, seed: int):
    """aeon's ``MiniRocketClassifier`` (default settings, ``random_state=seed``) fit on the
    training series and asked for the test series' classes; returns the predicted classes
    (as text) and the seconds fit + predict took. Needs aeon importable."""
    import numpy as np
    from aeon.classification.convolution_based import MiniRocketClassifier

    started = time.perf_counter()
    clf = MiniRocketClassifier(random_state=seed)
    clf.fit(np.asarray(x_train, dtype=np.float64), np.asarray(y_train))
    predicted = clf.predict(np.asarray(x_test, dtype=np.float64))
    return np.asarray(predicted).astype(str), time.perf_counter() - started


def write_arrays(out: Path, split: str, x, y) -> None:
    """``out/{split}_signals.npy`` (float32) and ``out/{split}_labels.npy`` (fixed-width
    text, checked to load back without pickling), as the ``numpy`` plugin reads them."""
    import numpy as np

    y = np.asarray(y).astype(str)
    np.save(out / f"{split}_signals.npy", np.asarray(x, dtype=np.float32))
    np.save(out / f"{split}_labels.npy", y)
    # Labels must round-trip as text (no pickled objects, no bytes).
    back = np.load(out / f"{split}_labels.npy", allow_pickle=False)
    assert back.dtype.kind == "U" and (back == y).all()


def prepare(name: str, directory: Path, rerun: bool) -> dict:
    """Write the split as .npy and fit MiniRocket; needs aeon importable. Cached."""
    out = directory / name
    result_path = out / "minirocket.json"
    files = [out / f"{s}_{k}.npy" for s in ("train", "test") for k in ("signals", "labels")]
    if result_path.exists() and all(f.exists() for f in files) and not rerun:
        return json.loads(result_path.read_text())

    import numpy as np
    from aeon.datasets import load_classification

    out.mkdir(parents=True, exist_ok=True)
    data = {}
    for split in ("train", "test"):
        x, y = load_classification(name, split=split)
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 3:
            raise SystemExit(f"{name} {split}: expected equal-length (N, C, L), got {x.shape}")
        y = np.asarray(y).astype(str)
        write_arrays(out, split, x, y)
        data[split] = (x, y)

    (x_train, y_train), (x_test, y_test) = data["train"], data["test"]
    predicted, seconds = fit_minirocket(x_train, y_train, x_test, seed=0)
    import aeon

    result = {
        "dataset": name,
        "n_train": int(x_train.shape[0]),
        "n_test": int(x_test.shape[0]),
        "channels": int(x_train.shape[1]),
        "length": int(x_train.shape[2]),
        "classes": sorted({str(v) for v in y_train}),
        "minirocket_accuracy": float((predicted == y_test).mean()),
        "minirocket_seconds": round(seconds, 2),
        "aeon_version": aeon.__version__,
    }
    result_path.write_text(json.dumps(result, indent=2) + "\n")
    return result


def prepare_anywhere(name: str, directory: Path, rerun: bool, aeon_python: str | None) -> dict:
    if importlib.util.find_spec("aeon") is not None:
        return prepare(name, directory, rerun)
    if not aeon_python:
        raise SystemExit(
            "aeon is not importable here: pip install aeon, or pass --aeon-python "
            "(the python of an environment that has it)"
        )
    command = [aeon_python, __file__, "--prepare-only", "--dir", str(directory), "--datasets", name]
    if rerun:
        command.append("--rerun-minirocket")
    subprocess.run(command, check=True)
    return json.loads((directory / name / "minirocket.json").read_text())


# --------------------------------------------------------------------------- biosig side
def run_biosig(
    biosig: list[str],
    data: Path,
    run_dir: Path,
    length: int,
    seed: int,
    extra: list[str],
    checkpoint: str,
    log_path: Path,
) -> dict:
    args = list(extra)
    if not any(a == "--window" or a.startswith("--window=") for a in args):
        args += ["--window", str(length)]
    if not any(a == "--hop" or a.startswith("--hop=") for a in args):
        args += ["--hop", str(length)]
    if not any(a == "--seed" or a.startswith("--seed=") for a in args):
        args += ["--seed", str(seed)]
    train = [
        *biosig, "train", "--plugin", "numpy",
        "--input", str(data / "train_signals.npy"),
        "--labels", str(data / "train_labels.npy"),
        "--out", str(run_dir), *args,
    ]  # fmt: skip
    train_seconds, train_cpu, _, _ = timed(train, log_path, "biosig train")

    model = run_dir if checkpoint == "best" else run_dir / checkpoint
    evaluate = [
        *biosig, "evaluate", "--model", str(model),
        "--input", str(data / "test_signals.npy"),
        "--labels", str(data / "test_labels.npy"), "--json",
    ]  # fmt: skip
    report, _ = evaluate_report(evaluate, log_path.with_suffix(".evaluate.log"))
    summary = run_summary(run_dir)  # the epoch `best/` holds, as its metadata records it
    epochs, best_epoch = summary["epochs_run"], summary["best_epoch"]
    best_val, ensemble = summary["best_val_accuracy"], summary["ensemble"]
    return {
        "seed": seed,
        "accuracy": float(report["accuracy"]),
        "train_seconds": round(train_seconds, 1),
        "train_cpu_seconds": round(train_cpu, 1),
        "epochs_run": epochs,
        "best_epoch": best_epoch,
        "best_val_accuracy": best_val,
        "ensemble": ensemble,
        "train_command": shlex.join(train),
        "evaluate_command": shlex.join(evaluate),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("ucr-bench"), help="data and runs")
    parser.add_argument("--datasets", default=",".join(DEFAULT_DATASETS))
    parser.add_argument("--seeds", default="0", help="biosig seeds, comma-separated")
    parser.add_argument(
        "--biosig-args", default="", help="further `biosig train` flags, as one string"
    )
    parser.add_argument(
        "--checkpoint",
        choices=("best", "last"),
        default="best",
        help="which checkpoint of the run `biosig evaluate` scores [default: best]",
    )
    parser.add_argument("--biosig", default=f"{sys.executable} -m biosig", help="command")
    parser.add_argument("--json-out", type=Path, help="write the results here")
    parser.add_argument("--tag", default="", help="run-directory suffix for this configuration")
    parser.add_argument(
        "--aeon-python",
        default=os.environ.get("AEON_PYTHON"),
        help="python of an environment with aeon, used when aeon is not importable here",
    )
    parser.add_argument("--rerun-minirocket", action="store_true")
    parser.add_argument("--prepare-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    if args.prepare_only:
        for name in names:
            prepare(name, args.dir, args.rerun_minirocket)
        return 0

    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    extra = shlex.split(args.biosig_args)
    biosig = shlex.split(args.biosig)
    tag = args.tag or "default"
    rows = []
    header = (
        f"{'dataset':<17} {'train':>5} {'test':>5} {'ch':>3} {'len':>4} "
        f"{'MiniRocket':>10} {'MR s':>6} {'biosig mean':>11}  {'per seed':<24} "
        "train s (wall/cpu)"
    )
    print(f"# biosig train args: {args.biosig_args!r}, checkpoint: {args.checkpoint}")
    print(header, flush=True)
    for name in names:
        info = prepare_anywhere(name, args.dir, args.rerun_minirocket, args.aeon_python)
        data = args.dir / name
        runs = []
        for seed in seeds:
            run_dir = args.dir / "runs" / tag / f"{name}-seed{seed}"
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            runs.append(
                run_biosig(
                    biosig,
                    data,
                    run_dir,
                    info["length"],
                    seed,
                    extra,
                    args.checkpoint,
                    run_dir.parent / f"{name}-seed{seed}.log",
                )
            )
        accs = [r["accuracy"] for r in runs]
        times = " ".join(f"{r['train_seconds']:.0f}/{r['train_cpu_seconds']:.0f}" for r in runs)
        row = {
            **info,
            "biosig_args": args.biosig_args,
            "checkpoint": args.checkpoint,
            "biosig_accuracy_mean": statistics.fmean(accs),
            "biosig_accuracy_per_seed": accs,
            "biosig_train_seconds": [r["train_seconds"] for r in runs],
            "biosig_train_cpu_seconds": [r["train_cpu_seconds"] for r in runs],
            "biosig_runs": runs,
        }
        rows.append(row)
        print(
            f"{name:<17} {info['n_train']:>5} {info['n_test']:>5} {info['channels']:>3} "
            f"{info['length']:>4} {info['minirocket_accuracy']:>10.3f} "
            f"{info['minirocket_seconds']:>6.1f} {row['biosig_accuracy_mean']:>11.3f}  "
            f"{' '.join(f'{a:.3f}' for a in accs):<24} "
            f"{times}",
            flush=True,
        )
        if args.json_out:  # after each data set, so a long sweep keeps what it has
            args.json_out.parent.mkdir(parents=True, exist_ok=True)
            args.json_out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
