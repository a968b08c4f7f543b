"""biosig against MiniRocket, side by side, on real data, over seeds: one command.

biosig runs as a user runs it: ``biosig train`` (with the plugin's or the pipeline's
defaults, nothing tuned per set) then ``biosig evaluate --model RUN … --json``, once per
seed. MiniRocket (aeon's ``MiniRocketClassifier``, default settings,
``random_state=seed``) is fit on the same training data and scored on the same test data.
Suites (``--suites``, comma-separated):

``ucr``
    GunPoint, ItalyPowerDemand, BasicMotions (shipped inside aeon) and Coffee, Trace, PigCVP,
    PLAID (``../shared/data/ucr/NAME/NAME_{TRAIN,TEST}.ts``); ``--datasets`` picks some.
    Equal-length sets are written as ``(N, C, L)`` float32 ``.npy`` plus a labels ``.npy``;
    PLAID (unequal lengths) as a directory of one ``(C, L)`` ``.npy`` per series plus
    ``labels.tsv``, and zero-padded at the end to its longest series for MiniRocket.
    ``biosig train --plugin numpy --input TRAIN --labels LABELS --seed S --out RUN`` (no
    window, hop, epochs or preset). Metric: accuracy per series (evaluate's per-recording
    accuracy, so a series cut into several windows counts once).
``ecg``
    Leave one patient out over CPSC 2021 patients 8, 21 and 101
    (``../shared/data/wfdb/cpsc2021``): ``biosig train --pipeline pipelines/ecg-rhythm.toml
    --input <the other two patients' .hea files>`` (``--input`` on the command line
    replaces the pipeline's ``input``), then ``biosig evaluate --plugin ecg --input <the
    held-out patient's .hea files> --labels rhythm`` (the annotator, ``unannotated = "N"``,
    the band-pass and the window come with the model). Metrics: AF F1 over windows (class
    ``AFIB``: 2TP / (2TP + FP + FN) from evaluate's confusion matrix; undefined, reported
    as null, where the held-out patient has no AF window and none is called AF, as for
    patient 21), window accuracy, and evaluate's per-record accuracy (records whose windows
    all carry one rhythm). The folds are also pooled (confusion matrices summed).
``cwru``
    ``biosig train --pipeline pipelines/cwru-bearing.toml`` (trains on span 0:0.7), then
    ``biosig evaluate --plugin vibration --input ../shared/data/vibration/cwru/ --labels
    manifest --manifest pipelines/cwru-manifest.csv --span 0.75:1``. Window accuracy.
``motor``
    ``pipelines/motor-csv.toml`` on the 12 Kafeel et al. CSVs, three folds by run: fold k
    holds out the k-th normal run and the k-th faulty run of ``pipelines/motor-manifest.csv``
    (two files each, so four files), trains on the other four runs (eight files) with the
    pipeline (``--input`` the eight files) and evaluates on the held-out four with
    ``--labels folder``. Window accuracy, per fold and pooled.
``wav``
    The WAV template plugin (``plugins/template``, plugin name ``wav``) on (a) its own demo
    data, split as ``biosig demo`` splits it (``make_demo_data`` with seed 0 to train, 1 to
    test), and (b) two tones: 24 one-second 8 kHz clips to train (12 per class: 300 Hz vs
    1800 Hz, each in white noise at -2 to 2 dB SNR, random amplitude and phase) and 12
    held-out clips written with another seed, in class folders (``--labels folder``).
    Window accuracy and, for the demo, accuracy per file.

    How the ``wav`` plugin reaches the CLI: the supported way is installing its package,
    which registers the entry point ``wav`` in group ``biosig.plugins``. When biosig does
    not list it already (``pip install -e plugins/template`` into the venv), a copy of
    ``plugins/template`` is installed with ``pip install --no-deps --no-index
    --target DIR/wav-plugin/site`` (the venv stays untouched) and that directory is put on
    ``PYTHONPATH`` for the biosig commands (and on ``sys.path`` here).

MiniRocket sees the windows biosig sees: for the plugin suites the training windows
(the pipeline's or plugin's hop) and the test windows (non-overlapping, as ``biosig
evaluate`` cuts them) are read through biosig's own path (the plugin configured as the
pipeline says, ``build_examples`` at the model rate and window), normalised as the model
normalises them (a z-score per window and channel), and written as ``.npy``; MiniRocket
then runs in the aeon environment on those arrays. Per-recording scores of MiniRocket are a
majority vote of its window predictions (its probabilities are one-hot, so that is what
averaging them, as evaluate does, gives). If biosig's run used another window than
MiniRocket saw (``biosig.json`` records it), its progress line says so.

aeon pins numpy<2.4, so it usually lives in its own environment: the data of the UCR suite
and every MiniRocket fit run under ``--aeon-python`` (or ``$AEON_PYTHON``) as a subprocess of
this script, unless aeon is importable here. Data and MiniRocket results are cached under
``--dir``, so a rerun only retrains biosig; ``--rerun-minirocket`` prepares the data again
and refits. MiniRocket's first fit in a fresh environment includes numba's compilation
(about 45 s on 2 cores).

``--jobs N`` runs up to N biosig train + evaluate pipelines at once, each with
``OMP_NUM_THREADS=1`` and ``MKL_NUM_THREADS=1`` when N > 1, so N runs share N cores
instead of each starting a thread per core (the dev machine has 2 CPU cores: more than
``--jobs 2`` only queues there). Each run records its commands, the wall and CPU seconds
of training (``wait4`` of the train process), the metrics, what its ``best/biosig.json``
says (window, epochs, batch) and the git commit (``git rev-parse --short HEAD``, the
tracked files that differ from it and a digest of the difference). A biosig run that fails
is reported with its last log line and the rest carry on.

Usage (from the repository root; biosig's venv runs the script)::

    python benchmarks/accuracy.py [--suites ucr,ecg,cwru,motor,wav]
        [--datasets GunPoint,ItalyPowerDemand,BasicMotions,Coffee,Trace,PigCVP,PLAID]
        [--seeds 0,1,2] [--jobs 1] [--dir accuracy-bench] [--tag NAME]
        [--biosig-args "--augment none"] [--aeon-python /path/to/aeon-venv/bin/python]
        [--rerun-minirocket] [--minirocket-only] [--json-out results.json] [--markdown]
        [--write-docs [--docs docs/benchmarks.md]] [--from-json results.json]

``--markdown`` prints the table as Markdown; ``--write-docs`` replaces what lies between
``<!-- accuracy.py:begin -->`` and ``<!-- accuracy.py:end -->`` in ``--docs`` with it (the
markers must be there already); ``--from-json`` renders an earlier run's results instead of
running anything.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import glob
import hashlib
import importlib
import importlib.util
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import ucr  # siblings: run as python benchmarks/accuracy.py
from biosig_cli import evaluate_report, run_summary
from timed_run import timed

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
SUITES = ("ucr", "ecg", "cwru", "motor", "wav")
AEON_SHIPPED = ucr.DEFAULT_DATASETS
UCR_SETS = (*AEON_SHIPPED, "Coffee", "Trace", "PigCVP", "PLAID")
ECG_PATIENTS = ("8", "21", "101")
ECG_PIPELINE = "pipelines/ecg-rhythm.toml"
CWRU_PIPELINE = "pipelines/cwru-bearing.toml"
CWRU_MANIFEST = "pipelines/cwru-manifest.csv"
MOTOR_PIPELINE = "pipelines/motor-csv.toml"
MOTOR_MANIFEST = "pipelines/motor-manifest.csv"
TONES = {"tone300": 300.0, "tone1800": 1800.0}  # class folder -> frequency (Hz)
TONE_RATE = 8000
DOCS_BEGIN, DOCS_END = "<!-- accuracy.py:begin -->", "<!-- accuracy.py:end -->"
PREPARED = "prepared.json"


# =========================================================================== tasks
@dataclasses.dataclass
class Task:
    """One train/test split: its data directory, the biosig commands' arguments (without
    ``--seed``/``--out``), and which metrics the table shows (key -> name shown)."""

    suite: str
    name: str
    data: Path
    train_args: list[str]
    evaluate_args: list[str]
    metrics: dict[str, str]
    positive: str | None = None  # the class whose F1 is "af_f1"
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    pooled: bool = False  # a fold of its suite: also summed into one "all folds" row
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.suite}/{self.name}"

    @property
    def slug(self) -> str:
        return self.label.replace("/", "-").replace("+", "_")


def rel(path: str | Path) -> str:
    """A path as the commands give it: relative to the repository root where that is
    short (``../shared/data/…``, ``pipelines/…``), else absolute."""
    path = os.path.abspath(path)  # not resolved: ../shared may be a link
    relative = os.path.relpath(path, REPO)
    return relative if relative.count("..") <= 1 else path


def input_flags(paths: list[str | Path]) -> list[str]:
    return [token for p in paths for token in ("--input", rel(p))]


# =========================================================================== shared data
def check_shared_data(suites: list[str], datasets: list[str]) -> None:
    """Exit with one line naming the first data file a selected suite needs but lacks."""
    if not SHARED.is_dir():
        sys.exit(f"accuracy.py: {rel(SHARED)}: not found (the real data sits beside the repo)")
    needed: list[Path] = []
    if "ucr" in suites:
        for name in datasets:
            if name not in UCR_SETS:
                known = ", ".join(UCR_SETS)
                sys.exit(f"accuracy.py: unknown UCR set {name!r} (choose from {known})")
            if name not in AEON_SHIPPED:
                needed += [ts_path(name, "TRAIN"), ts_path(name, "TEST")]
    if "ecg" in suites:
        for patient in ECG_PATIENTS:
            headers = ecg_records(patient)
            if not headers:
                sys.exit(f"accuracy.py: {rel(cpsc_dir())}: no record data_{patient}_*.hea")
            needed += [h.with_suffix(s) for h in headers for s in (".dat", ".atr")]
    if "cwru" in suites:
        needed += [SHARED / "vibration" / row["path"] for row in manifest_rows(CWRU_MANIFEST)]
    if "motor" in suites:
        needed += [SHARED / "vibration" / row["path"] for row in manifest_rows(MOTOR_MANIFEST)]
    for path in needed:
        if not path.is_file() or path.stat().st_size == 0:
            sys.exit(f"accuracy.py: {rel(path)}: {'empty' if path.exists() else 'not found'}")


def ts_path(name: str, split: str) -> Path:
    return SHARED / "ucr" / name / f"{name}_{split}.ts"


def cpsc_dir() -> Path:
    return SHARED / "wfdb" / "cpsc2021"


def ecg_records(patient: str) -> list[Path]:
    return sorted(Path(p) for p in glob.glob(str(cpsc_dir() / f"data_{patient}_*.hea")))


def manifest_rows(path: str) -> list[dict[str, str]]:
    with (REPO / path).open(newline="") as handle:
        return list(csv.DictReader(handle))


# =========================================================================== aeon side
def worker_ucr_data(names: list[str], directory: Path) -> None:
    """(aeon environment) Write each UCR set for biosig and for MiniRocket, with
    ``prepared.json`` last."""
    for name in names:
        started = time.perf_counter()
        out = directory / "ucr" / name
        shutil.rmtree(out, ignore_errors=True)
        (out / "minirocket").mkdir(parents=True)
        splits = {split: load_ucr(name, split) for split in ("train", "test")}
        longest = max(series_length(x) for x, _ in splits.values())
        for split, (x, y) in splits.items():
            if is_equal_length(x):
                ucr.write_arrays(out, split, x, y)
            else:
                write_series_dir(out / split, x, y)
            write_minirocket_split(out / "minirocket", split, pad_series(x, longest), y)
        (x_train, y_train), (x_test, _) = splits["train"], splits["test"]
        info = {
            "source": "aeon" if name in AEON_SHIPPED else rel(ts_path(name, "TRAIN")),
            "n_train": len(y_train),
            "n_test": len(splits["test"][1]),
            "channels": int(x_train[0].shape[0]),
            "length": [min(series_length(x, min) for x, _ in splits.values()), longest],
            "equal_length": all(is_equal_length(x) for x, _ in splits.values()),
            "classes": sort_classes({str(v) for v in y_train}),
            "minirocket_input": "zero-padded at the end" if not is_equal_length(x_test) else "",
            "minirocket_length": longest,
            "seconds": round(time.perf_counter() - started, 2),
        }
        (out / PREPARED).write_text(json.dumps(info, indent=2) + "\n")
        print(f"prepared ucr/{name} in {info['seconds']:.1f} s", flush=True)


def load_ucr(name: str, split: str) -> tuple[Any, Any]:
    """(aeon) A UCR split: series as an ``(N, C, L)`` array or a list of ``(C, L)``
    arrays, and the classes as text."""
    import numpy as np

    if name in AEON_SHIPPED:
        from aeon.datasets import load_classification

        x, y = load_classification(name, split=split)
    else:
        from aeon.datasets import load_from_ts_file

        path = ts_path(name, split.upper())
        try:
            x, y = load_from_ts_file(str(path))
        except Exception as exc:  # aeon raises several kinds on a damaged file
            raise SystemExit(f"{rel(path)}: not a readable .ts file ({exc})") from None
        if len(y) == 0 or len(x) != len(y):
            raise SystemExit(f"{rel(path)}: not a .ts file of labelled series")
    return x, np.asarray(y).astype(str)


def is_equal_length(x: Any) -> bool:
    return getattr(x, "ndim", 0) == 3


def series_length(x: Any, pick=max) -> int:
    return int(x.shape[2]) if is_equal_length(x) else int(pick(s.shape[-1] for s in x))


def pad_series(x: Any, length: int) -> Any:
    """``(N, C, length)`` float32, each series zero-padded at its end."""
    import numpy as np

    if is_equal_length(x) and x.shape[2] == length:
        return np.asarray(x, dtype=np.float32)
    out = np.zeros((len(x), x[0].shape[0], length), dtype=np.float32)
    for i, series in enumerate(x):
        out[i, :, : series.shape[-1]] = series
    return out


def write_series_dir(directory: Path, x: Any, y: Any) -> None:
    """One ``(C, L)`` float32 ``.npy`` per series (stem = its index) and ``labels.tsv``."""
    import numpy as np

    directory.mkdir(parents=True)
    lines = []
    for i, (series, label) in enumerate(zip(x, y, strict=True)):
        np.save(directory / f"{i:04d}.npy", np.asarray(series, dtype=np.float32))
        lines.append(f"{i:04d}\t{label}\n")
    (directory / "labels.tsv").write_text("".join(lines))


def write_minirocket_split(directory: Path, split: str, x: Any, y: Any, rec: Any = None) -> None:
    """MiniRocket's input: ``{split}_x.npy`` (N, C, L), ``_y.npy`` (text), ``_rec.npy``
    (the recording of each row; the row itself by default)."""
    import numpy as np

    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / f"{split}_x.npy", np.asarray(x, dtype=np.float32))
    np.save(directory / f"{split}_y.npy", np.asarray(y).astype(str))
    rec = np.arange(len(y)).astype(str) if rec is None else np.asarray(rec).astype(str)
    np.save(directory / f"{split}_rec.npy", rec)


def worker_minirocket(task_dirs: list[Path], seeds: list[int]) -> None:
    """(aeon environment) Fit MiniRocket for every seed not fit yet in each task directory:
    ``minirocket/seed{S}.json`` holds its predictions and the seconds fit + predict took."""
    import aeon
    import numpy as np

    for task_dir in task_dirs:
        arrays = task_dir / "minirocket"
        todo = [s for s in seeds if not (arrays / f"seed{s}.json").exists()]
        if not todo:
            continue
        x_train, y_train, x_test, y_test = (
            np.load(arrays / f"{split}_{k}.npy") for split in ("train", "test") for k in "xy"
        )
        for seed in todo:
            predicted, seconds = ucr.fit_minirocket(x_train, y_train, x_test, seed)
            result = {
                "seed": seed,
                "seconds": round(seconds, 2),
                "aeon_version": aeon.__version__,
                "train_shape": list(x_train.shape),
                "test_shape": list(x_test.shape),
                "predicted": predicted.tolist(),
            }
            (arrays / f"seed{seed}.json").write_text(json.dumps(result) + "\n")
            accuracy = float((predicted == y_test).mean())
            print(
                f"MiniRocket {task_dir.parent.name}/{task_dir.name} seed {seed}: "
                f"window accuracy {accuracy:.3f}, fit + predict {seconds:.1f} s",
                flush=True,
            )


def run_aeon(aeon_python: str, worker: str, extra: list[str], log: Path) -> float:
    """Run this script's ``worker`` step in the aeon environment (its messages in ``log``;
    progress lines pass through); returns its wall seconds. Exits with the worker's last
    error line when it fails."""
    command = [aeon_python, str(Path(__file__).resolve()), "--worker", worker, *extra]
    started = time.perf_counter()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as handle:
        handle.write(shlex.join(command) + "\n")
        handle.flush()
        done = subprocess.run(command, stderr=subprocess.PIPE, text=True, cwd=REPO)
        handle.write(done.stderr)
    if done.returncode:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        sys.exit(f"accuracy.py: {lines[-1] if lines else f'{worker} failed'} (log: {log})")
    return time.perf_counter() - started


def aeon_interpreter(given: str | None) -> str:
    if importlib.util.find_spec("aeon") is not None:
        return sys.executable
    if not given:
        sys.exit(
            "accuracy.py: aeon is not importable here: pass --aeon-python (or set "
            "AEON_PYTHON), the python of an environment that has aeon"
        )
    return given


# =========================================================================== biosig reading
@dataclasses.dataclass(frozen=True)
class Reading:
    """How biosig reads a task's files: the plugin and its options, the labels, and the
    window, hop, rate and normalisation of the model."""

    plugin: str
    options: dict[str, Any]
    labels: str
    window: int
    hop: int
    sample_rate: float
    normalization: str
    span: str | None = None  # the training span


def fresh_plugin(name: str) -> Any:
    """A new, unconfigured instance of the plugin registered as ``name``."""
    from biosig.plugin.registry import get_plugin

    return type(get_plugin(name))()


def pipeline_reading(pipeline: str) -> Reading:
    """The reading a pipeline file sets up (its values over the plugin's defaults)."""
    from biosig.pipeline import load_pipeline, relative_to_pipeline

    flat = load_pipeline(REPO / pipeline)
    plugin = fresh_plugin(flat["plugin"])
    # A path option (the vibration manifest) is read from the pipeline's folder, as `train
    # --pipeline` reads it.
    known = {o.name: o for o in plugin.options}
    options = {
        k: relative_to_pipeline(REPO / pipeline, v) if known[k].path and v else v
        for k, v in flat.items()
        if k in known
    }
    defaults = plugin.defaults
    return Reading(
        plugin=plugin.name,
        options=options,
        labels=str(flat["labels"]),
        window=int(flat.get("window") or defaults.window),
        hop=int(flat.get("hop") or defaults.hop),
        sample_rate=float(flat.get("sample_rate") or defaults.sample_rate),
        normalization=str(flat.get("normalization") or defaults.normalization),
        span=flat.get("span"),
    )


def plugin_reading(name: str, labels: str) -> Reading:
    """The reading of a plugin at its defaults."""
    defaults = fresh_plugin(name).defaults
    return Reading(
        name,
        {},
        labels,
        defaults.window,
        defaults.hop,
        defaults.sample_rate,
        defaults.normalization,
    )


def read_store(
    reading: Reading, inputs: list[str], hop: int, classes: list[str] | None, span: str | None
) -> Any:
    """The labelled windows of ``inputs``, cut as ``biosig train`` (hop = the training hop)
    or ``biosig evaluate`` (hop = window, the model's ``classes``) cuts them."""
    from biosig.data.store import build_examples, check_classes
    from biosig.loading import label_source
    from biosig.plugin.contract import iter_recordings
    from biosig.plugin.labels import parse_span, restrict_to_span

    plugin = fresh_plugin(reading.plugin)
    plugin.configure(reading.options)
    recordings = list(iter_recordings(plugin, plugin.find(inputs)))
    source = label_source(plugin, reading.labels)
    intervals = plugin.labels(source, recordings)
    if span:
        intervals = restrict_to_span(intervals, recordings, parse_span(span))
    if classes is None:
        classes = check_classes(intervals, source)
    intervals = [iv for iv in intervals if iv.label in classes]
    return build_examples(
        plugin,
        recordings,
        intervals,
        classes,
        reading.window,
        hop,
        reading.sample_rate,
        progress=False,
    )


def normalized(store: Any, spec: Any, length: int) -> Any:
    """The store's windows scaled as the model scales them, cut to ``length`` samples
    (zeros past each window's own length)."""
    import torch

    from biosig.data.normalize import normalize

    x = normalize(torch.from_numpy(store.x), torch.from_numpy(store.lengths), spec).numpy()
    return x[:, :, :length]


def normalization_spec(reading: Reading, train: Any) -> Any:
    """The model's normalisation of ``reading``'s windows, as the library makes it."""
    import numpy as np

    from biosig.training.kernel_features import normalization_spec as library_spec

    return library_spec(reading.normalization, train, np.arange(len(train)))


def prepare_windows(
    task_dir: Path,
    reading: Reading,
    train_inputs: list[str],
    test_inputs: list[str],
    test_span: str | None,
    rerun: bool,
) -> dict[str, Any]:
    """Write MiniRocket's arrays for a plugin task (cached, keyed on how it is read)."""
    import numpy as np

    key = {
        "reading": dataclasses.asdict(reading),
        "train": train_inputs,
        "test": test_inputs,
        "test_span": test_span,
    }
    cached = read_prepared(task_dir, key)
    if cached and not rerun:
        return cached
    started = time.perf_counter()
    shutil.rmtree(task_dir / "minirocket", ignore_errors=True)
    train = read_store(reading, train_inputs, reading.hop, None, reading.span)
    test = read_store(reading, test_inputs, reading.window, train.classes, test_span)
    spec = normalization_spec(reading, train)
    length = int(max(train.lengths.max(), test.lengths.max()))  # the longest window's
    for split, store in (("train", train), ("test", test)):
        labels = np.asarray(store.classes)[store.y]
        x = normalized(store, spec, length)
        write_minirocket_split(task_dir / "minirocket", split, x, labels, store.recording_ids)
    info = {
        "key": key,
        "classes": list(train.classes),
        "n_train": len(train),
        "n_test": len(test),
        "channels": train.n_channels,
        "window": reading.window,
        "minirocket_length": length,
        "test_class_counts": dict(Counter(np.asarray(test.classes)[test.y].tolist())),
        "test_recordings": len(set(test.recording_ids)),
        "seconds": round(time.perf_counter() - started, 2),
    }
    write_prepared(task_dir, info)
    return info


def read_prepared(task_dir: Path, key: Any = None) -> dict[str, Any] | None:
    path = task_dir / PREPARED
    if not path.is_file():
        return None
    info = json.loads(path.read_text())
    return info if key is None or info.get("key") == json.loads(json.dumps(key)) else None


def write_prepared(task_dir: Path, info: dict[str, Any]) -> None:
    task_dir.mkdir(parents=True, exist_ok=True)
    (task_dir / PREPARED).write_text(json.dumps(info, indent=2) + "\n")


# =========================================================================== suites
def ucr_tasks(names: list[str], directory: Path, aeon_python: str, rerun: bool) -> list[Task]:
    todo = [n for n in names if rerun or read_prepared(directory / "ucr" / n) is None]
    if todo:
        run_aeon(
            aeon_python,
            "ucr-data",
            ["--dir", str(directory), "--datasets", ",".join(todo)],
            directory / "aeon.log",
        )
    return [ucr_task(name, directory / "ucr" / name) for name in names]


def ucr_task(name: str, data: Path) -> Task:
    info = read_prepared(data) or {}
    if info.get("equal_length", True):
        files = {
            s: (data / f"{s}_signals.npy", data / f"{s}_labels.npy") for s in ("train", "test")
        }
    else:  # a directory of one .npy per series, labels.tsv in it
        files = {s: (data / s, data / s / "labels.tsv") for s in ("train", "test")}
    args = {s: ["--input", str(x), "--labels", str(y)] for s, (x, y) in files.items()}
    metrics = {"record_accuracy": "accuracy"}
    return Task(
        "ucr", name, data, ["--plugin", "numpy", *args["train"]], args["test"], metrics, info=info
    )


def ecg_tasks(directory: Path, rerun: bool) -> list[Task]:
    """Leave one patient out; the held-out patient's records are evaluated."""
    # MiniRocket is given the filtered leads, as a user would give them to it, not the
    # pipeline's derived RR series: the comparison is with what users run today.
    piped = pipeline_reading(ECG_PIPELINE)
    leads = {k: v for k, v in piped.options.items() if k != "signal"}
    reading = dataclasses.replace(piped, options=leads)
    tasks = []
    for held_out in ECG_PATIENTS:
        train = [rel(p) for q in ECG_PATIENTS if q != held_out for p in ecg_records(q)]
        test = [rel(p) for p in ecg_records(held_out)]
        data = directory / "ecg" / f"holdout-{held_out}"
        info = prepare_windows(data, reading, train, test, None, rerun)
        tasks.append(
            Task(
                "ecg",
                f"holdout-{held_out}",
                data,
                ["--pipeline", ECG_PIPELINE, *input_flags(train)],
                ["--plugin", "ecg", *input_flags(test), "--labels", reading.labels],
                {
                    "af_f1": "AF F1 (windows)",
                    "accuracy": "window accuracy",
                    "record_accuracy": "record accuracy",
                },
                positive="AFIB",
                pooled=True,
                info=info,
            )
        )
    return tasks


def cwru_tasks(directory: Path, rerun: bool) -> list[Task]:
    """The pipeline as written (train on 0:0.7 of each file), scored on 0.75:1."""
    reading = pipeline_reading(CWRU_PIPELINE)
    inputs = [rel(SHARED / "vibration" / "cwru")]
    data = directory / "cwru" / "span-0.75-1"
    info = prepare_windows(data, reading, inputs, inputs, "0.75:1", rerun)
    evaluate = [
        "--plugin",
        "vibration",
        *input_flags(inputs),
        "--labels",
        "manifest",
        "--manifest",
        CWRU_MANIFEST,
        "--span",
        "0.75:1",
    ]
    return [
        Task(
            "cwru",
            "span-0.75-1",
            data,
            ["--pipeline", CWRU_PIPELINE],
            evaluate,
            {"accuracy": "window accuracy"},
            info=info,
        )
    ]


def motor_folds() -> list[tuple[str, list[str], list[str]]]:
    """Three folds, each holding out the k-th run of each class (by the manifest's order):
    (fold name, training files, held-out files)."""
    rows = manifest_rows(MOTOR_MANIFEST)
    runs: dict[str, list[str]] = {}  # label -> its runs, in order
    for row in rows:
        runs.setdefault(row["label"], [])
        if row["group"] not in runs[row["label"]]:
            runs[row["label"]].append(row["group"])
    folds = []
    for k in range(min(len(r) for r in runs.values())):
        held = {r[k] for r in runs.values()}
        train = [rel(SHARED / "vibration" / x["path"]) for x in rows if x["group"] not in held]
        test = [rel(SHARED / "vibration" / x["path"]) for x in rows if x["group"] in held]
        folds.append(("+".join(r[k] for r in runs.values()), train, test))
    return folds


def motor_tasks(directory: Path, rerun: bool) -> list[Task]:
    reading = pipeline_reading(MOTOR_PIPELINE)
    tasks = []
    for name, train, test in motor_folds():
        data = directory / "motor" / name
        info = prepare_windows(data, reading, train, test, None, rerun)
        tasks.append(
            Task(
                "motor",
                name,
                data,
                ["--pipeline", MOTOR_PIPELINE, *input_flags(train)],
                ["--plugin", "vibration", *input_flags(test), "--labels", "folder"],
                {"accuracy": "window accuracy"},
                pooled=True,
                info=info,
            )
        )
    return tasks


def wav_tasks(directory: Path, rerun: bool) -> list[Task]:
    env = wav_plugin_env(directory / "wav-plugin")
    reading = plugin_reading("wav", "folder")
    demo, tones = directory / "wav" / "demo", directory / "wav" / "two-tone"
    if rerun or read_prepared(demo) is None:
        plugin = fresh_plugin("wav")
        for split, seed in (("train", 0), ("test", 1)):  # as `biosig demo` splits it
            shutil.rmtree(demo / split, ignore_errors=True)
            plugin.make_demo_data(demo / split, seed=seed)
    if rerun or read_prepared(tones) is None:
        for split, seed, per_class in (("train", 0, 12), ("test", 1, 6)):
            write_tones(tones / split, seed, per_class)
    tasks = []
    for name, data, metrics in (
        ("demo", demo, {"accuracy": "window accuracy", "record_accuracy": "file accuracy"}),
        ("two-tone", tones, {"accuracy": "clip accuracy"}),
    ):
        train, test = [str(data / "train")], [str(data / "test")]
        info = prepare_windows(data, reading, train, test, None, rerun)
        tasks.append(
            Task(
                "wav",
                name,
                data,
                ["--plugin", "wav", *input_flags(train), "--labels", "folder"],
                [*input_flags(test), "--labels", "folder"],
                metrics,
                env=env,
                info=info,
            )
        )
    return tasks


def write_tones(directory: Path, seed: int, per_class: int) -> None:
    """``per_class`` one-second 16-bit clips at 8 kHz per class folder: a tone (300 or
    1800 Hz, random amplitude and phase) in white noise at an SNR of -2 to 2 dB."""
    import numpy as np
    from scipy.io import wavfile

    shutil.rmtree(directory, ignore_errors=True)
    rng = np.random.default_rng(seed)
    t = np.arange(TONE_RATE) / TONE_RATE
    for label, freq in TONES.items():
        (directory / label).mkdir(parents=True)
        for i in range(per_class):
            amplitude = rng.uniform(0.05, 0.25)
            tone = amplitude * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
            noise_rms = amplitude / np.sqrt(2) / 10 ** (rng.uniform(-2, 2) / 20)
            x = np.clip(tone + rng.normal(scale=noise_rms, size=t.size), -1, 1 - 2**-15)
            pcm = np.round(x * 32768).astype(np.int16)
            wavfile.write(directory / label / f"{label}_{i:02d}.wav", TONE_RATE, pcm)


def wav_plugin_env(directory: Path) -> dict[str, str]:
    """Make the ``wav`` plugin available (see the module docstring); returns the
    environment the biosig commands need for it."""
    from importlib.metadata import entry_points

    if any(ep.name == "wav" for ep in entry_points(group="biosig.plugins")):
        return {}
    site, stamp = directory / "site", directory / "template.sha1"
    digest = tree_digest(REPO / "plugins" / "template" / "biosig_plugin_wav")
    if not stamp.is_file() or stamp.read_text() != digest:
        install_template(directory, site)
        stamp.write_text(digest)
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path}


def install_template(directory: Path, site: Path) -> None:
    """``pip install`` a copy of ``plugins/template`` into ``site`` (the copy, so the build
    leaves nothing in the repository)."""
    source = directory / "src"
    for path in (source, site):
        shutil.rmtree(path, ignore_errors=True)
    ignore = shutil.ignore_patterns("tests", "__pycache__", "build", "dist", "*.egg-info")
    shutil.copytree(REPO / "plugins" / "template", source, ignore=ignore)
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-deps",
        "--no-index",
        "--no-build-isolation",
        "--target",
        str(site),
        str(source),
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"accuracy.py: installing the wav plugin failed: {done.stderr.strip()[-300:]}")


def tree_digest(directory: Path) -> str:
    digest = hashlib.sha1()
    for path in sorted(directory.rglob("*.py")):
        digest.update(path.relative_to(directory).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


# =========================================================================== outcomes
# An outcome: {"n": windows, "confusion": {true: {predicted: count}}, "record_n",
# "record_correct"} -- what both sides' metrics are computed from, the same way.
def outcome_from_report(report: dict[str, Any]) -> dict[str, Any]:
    """An outcome from ``biosig evaluate --json``."""
    classes = report["classes"]
    confusion = {
        t: {p: int(c) for p, c in zip(classes, row, strict=True) if c}
        for t, row in zip(classes, report["confusion"], strict=True)
    }
    records = report.get("recordings")
    return {
        "n": int(report["n"]),
        "confusion": confusion,
        "record_n": records["n"] if records else None,
        "record_correct": round(records["accuracy"] * records["n"]) if records else None,
    }


def outcome_from_predictions(
    y_true: list[str], y_pred: list[str], recs: list[str], classes: list[str]
) -> dict[str, Any]:
    """An outcome from window predictions; a recording whose windows share one class is
    called by a majority vote (ties to the class listed first, as argmax does)."""
    confusion: dict[str, dict[str, int]] = {}
    for t, p in zip(y_true, y_pred, strict=True):
        confusion.setdefault(t, {}).setdefault(p, 0)
        confusion[t][p] += 1
    by_record: dict[str, list[tuple[str, str]]] = {}
    for t, p, r in zip(y_true, y_pred, recs, strict=True):
        by_record.setdefault(r, []).append((t, p))
    n = correct = 0
    order = {c: i for i, c in enumerate(classes)}
    for pairs in by_record.values():
        truths = {t for t, _ in pairs}
        if len(truths) != 1:
            continue
        votes = Counter(p for _, p in pairs)
        called = min(votes, key=lambda c: (-votes[c], order.get(c, len(order))))
        n, correct = n + 1, correct + (called in truths)
    return {"n": len(y_true), "confusion": confusion, "record_n": n, "record_correct": correct}


def pooled_outcome(outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    confusion: dict[str, dict[str, int]] = {}
    for outcome in outcomes:
        for t, row in outcome["confusion"].items():
            for p, c in row.items():
                confusion.setdefault(t, {}).setdefault(p, 0)
                confusion[t][p] += c
    records = [o for o in outcomes if o["record_n"] is not None]
    return {
        "n": sum(o["n"] for o in outcomes),
        "confusion": confusion,
        "record_n": sum(o["record_n"] for o in records) if records else None,
        "record_correct": sum(o["record_correct"] for o in records) if records else None,
    }


def class_counts(outcome: dict[str, Any], positive: str) -> dict[str, int]:
    """True positives, false positives and false negatives of ``positive``."""
    confusion = outcome["confusion"]
    tp = confusion.get(positive, {}).get(positive, 0)
    fp = sum(row.get(positive, 0) for t, row in confusion.items() if t != positive)
    fn = sum(c for p, c in confusion.get(positive, {}).items() if p != positive)
    return {"tp": tp, "fp": fp, "fn": fn}


def metric(outcome: dict[str, Any], key: str, positive: str | None = None) -> float | None:
    """``accuracy`` (windows), ``record_accuracy`` or ``af_f1`` (F1 of ``positive``;
    None when it is undefined: no such window and none called so)."""
    if key == "accuracy":
        right = sum(row.get(t, 0) for t, row in outcome["confusion"].items())
        return right / outcome["n"] if outcome["n"] else None
    if key == "record_accuracy":
        n = outcome["record_n"]
        return outcome["record_correct"] / n if n else None
    if key == "af_f1":
        counts = class_counts(outcome, positive or "")
        denominator = 2 * counts["tp"] + counts["fp"] + counts["fn"]
        return 2 * counts["tp"] / denominator if denominator else None
    raise ValueError(key)


def minirocket_outcomes(task: Task, seeds: list[int]) -> dict[int, dict[str, Any]]:
    """MiniRocket's outcome and seconds per seed, from its cached predictions."""
    import numpy as np

    arrays = task.data / "minirocket"
    y_test = np.load(arrays / "test_y.npy").tolist()
    recs = np.load(arrays / "test_rec.npy").tolist()
    classes = task.info.get("classes") or sort_classes(set(y_test))
    outcomes = {}
    for seed in seeds:
        result = json.loads((arrays / f"seed{seed}.json").read_text())
        outcome = outcome_from_predictions(y_test, result["predicted"], recs, classes)
        outcomes[seed] = {**outcome, "seconds": result["seconds"], "aeon": result["aeon_version"]}
    return outcomes


def sort_classes(labels: set[str]) -> list[str]:
    """Class names as biosig orders them: numerically when all are integers."""
    try:
        return sorted(labels, key=int)
    except ValueError:
        return sorted(labels)


# =========================================================================== biosig runs
@dataclasses.dataclass
class RunContext:
    biosig: list[str]
    extra: list[str]
    runs: Path
    jobs: int


def run_biosig(task: Task, seed: int, ctx: RunContext) -> dict[str, Any]:
    """Train and evaluate biosig once; a failure is returned as ``error`` (its last log
    line), not raised."""
    run_dir = ctx.runs / f"{task.slug}-seed{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)
    train = [
        *ctx.biosig,
        "train",
        *task.train_args,
        "--seed",
        str(seed),
        "--out",
        str(run_dir),
        *ctx.extra,
    ]
    evaluate = [*ctx.biosig, "evaluate", "--model", str(run_dir), *task.evaluate_args, "--json"]
    env = dict(task.env)
    if ctx.jobs > 1:
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    result: dict[str, Any] = {
        "task": task.label,
        "seed": seed,
        "train_command": shlex.join(train),
        "evaluate_command": shlex.join(evaluate),
        "env": env,
        "git": git_state(),
    }
    train_log = ctx.runs / f"{task.slug}-seed{seed}.train.log"
    evaluate_log = ctx.runs / f"{task.slug}-seed{seed}.evaluate.log"
    try:
        wall, cpu, load0, load1 = timed(train, train_log, f"biosig train ({task.label})", env)
        result.update(
            train_seconds=round(wall, 1),
            train_cpu_seconds=round(cpu, 1),
            load_before=load0,
            load_after=load1,
        )
        report, eval_wall = evaluate_report(evaluate, evaluate_log, env)
    except SystemExit as exc:
        failed_log = evaluate_log if "train_seconds" in result else train_log
        return {**result, "error": f"{exc}: {last_line(failed_log)}"}
    result.update(
        evaluate_seconds=round(eval_wall, 1),
        run=run_summary(run_dir),
        outcome=outcome_from_report(report),
        evaluate_per_class=report.get("per_class"),
    )
    return result


def last_line(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if len(lines) > 1 else "(no output)"


_git_lock = threading.Lock()


def git_state() -> dict[str, Any]:
    """The commit checked out, the tracked files that differ from it, and a digest of
    those differences (runs with equal digests ran the same code)."""
    with _git_lock:
        head = git("rev-parse", "--short", "HEAD")
        status = git("status", "--porcelain", "--untracked-files=no")
        diff = git("diff", "HEAD")
    changed = [line[3:] for line in status.splitlines() if line.strip()]
    digest = hashlib.sha1(diff.encode()).hexdigest()[:12] if changed else None
    return {"commit": head, "dirty": bool(changed), "changed": changed, "diff_sha1": digest}


def git(*args: str) -> str:
    done = subprocess.run(["git", *args], capture_output=True, text=True, cwd=REPO)
    return done.stdout.rstrip() if done.returncode == 0 else "?"


def run_all(tasks: list[Task], seeds: list[int], ctx: RunContext, save) -> list[dict[str, Any]]:
    """Every task and seed, ``ctx.jobs`` at a time; ``save`` is called after each."""
    results: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=ctx.jobs) as pool:
        futures = {pool.submit(run_biosig, t, s, ctx): t for t in tasks for s in seeds}
        for future in as_completed(futures):  # here, on the main thread
            results.append(future.result())
            print(run_line(futures[future], results[-1]), flush=True)
            save(results)
    return results


def run_line(task: Task, result: dict[str, Any]) -> str:
    head = f"{task.label} seed {result['seed']}:"
    if "error" in result:
        return f"{head} FAILED {result['error']}"
    outcome, run = result["outcome"], result["run"]
    key = next(iter(task.metrics))
    value = metric(outcome, key, task.positive)
    window = run["window"]
    notes = []
    seen = task.info.get("minirocket_length")
    if seen and window != seen:
        notes.append(f"MiniRocket saw {seen} samples")
    if task.info.get("n_test") and outcome["n"] != task.info["n_test"] and task.suite != "ucr":
        notes.append(f"MiniRocket was scored on {task.info['n_test']} windows")
    note = f" ({'; '.join(notes)})" if notes else ""
    return (
        f"{head} biosig {task.metrics[key]} {fmt(value)} on {outcome['n']} windows; train "
        f"{result['train_seconds']:.0f} s wall / {result['train_cpu_seconds']:.0f} s CPU, "
        f"{run['epochs_run']} epochs (best {run['best_epoch']}), window {window}{note}"
    )


# =========================================================================== table
def build_rows(tasks: list[Task], seeds: list[int], runs: list[dict[str, Any]]) -> list[dict]:
    """One row per task and metric; after a suite's folds, one per metric of them pooled."""
    by_task = {(r["task"], r["seed"]): r for r in runs}
    rows = []
    for suite in dict.fromkeys(t.suite for t in tasks):
        members = [t for t in tasks if t.suite == suite]
        sides = [task_sides(t, seeds, by_task) for t in members]
        for task, task_sides_ in zip(members, sides, strict=True):
            rows += [row(task.label, task, key, task_sides_) for key in task.metrics]
        folds = [(t, s) for t, s in zip(members, sides, strict=True) if t.pooled]
        if len(folds) > 1:
            pooled = {
                side: pool_side([s[side] for _, s in folds]) for side in ("minirocket", "biosig")
            }
            first = folds[0][0]
            label = f"{suite}/all {len(folds)} folds (pooled)"
            rows += [row(label, first, key, pooled) for key in first.metrics]
    return rows


def task_sides(task: Task, seeds: list[int], by_task: dict) -> dict[str, dict[int, Any]]:
    """Per side and seed: the outcome (with seconds), or None for a failed run."""
    biosig = {}
    for seed in seeds:
        result = by_task.get((task.label, seed))
        if result and "outcome" in result:
            biosig[seed] = {**result["outcome"], "cpu": result["train_cpu_seconds"]}
        else:
            biosig[seed] = None
    return {"minirocket": minirocket_outcomes(task, seeds), "biosig": biosig}


def pool_side(folds: list[dict[int, Any]]) -> dict[int, Any]:
    pooled = {}
    for seed in folds[0]:
        outcomes = [fold[seed] for fold in folds]
        if any(o is None for o in outcomes):
            pooled[seed] = None
            continue
        pooled[seed] = pooled_outcome(outcomes)
        if all("cpu" in o for o in outcomes):
            pooled[seed]["cpu"] = sum(o["cpu"] for o in outcomes)
    return pooled


def row(label: str, task: Task, key: str, sides: dict[str, dict[int, Any]]) -> dict[str, Any]:
    values = {
        side: {s: (metric(o, key, task.positive) if o else None) for s, o in per_seed.items()}
        for side, per_seed in sides.items()
    }
    means = {side: mean_or_none(list(v.values())) for side, v in values.items()}
    difference = None
    if means["biosig"] is not None and means["minirocket"] is not None:
        difference = means["biosig"] - means["minirocket"]
    cpu = [o["cpu"] for o in sides["biosig"].values() if o and "cpu" in o]
    result = {
        "set": label,
        "metric": task.metrics[key],
        "key": key,
        "minirocket": {"mean": means["minirocket"], "per_seed": values["minirocket"]},
        "biosig": {"mean": means["biosig"], "per_seed": values["biosig"]},
        "difference": difference,
        "biosig_train_cpu_seconds": statistics.fmean(cpu) if cpu else None,
        "n_windows": {
            side: sorted({o["n"] for o in per.values() if o}) for side, per in sides.items()
        },
    }
    if key == "af_f1":
        result["note"] = positive_note(task.positive or "", sides)
    outcomes = [o for per in sides.values() for o in per.values() if o]
    if key == "record_accuracy" and outcomes and not any(o["record_n"] for o in outcomes):
        result["note"] = "every held-out recording mixes classes: no per-recording score"
    return result


def positive_note(positive: str, sides: dict[str, dict[int, Any]]) -> str | None:
    """Where the test windows hold no ``positive`` one: how many each seed called so."""
    outcomes = [o for per in sides.values() for o in per.values() if o]
    if not outcomes or any(sum(o["confusion"].get(positive, {}).values()) for o in outcomes):
        return None
    called = {
        side: ", ".join(str(class_counts(o, positive)["fp"]) if o else "-" for o in per.values())
        for side, per in sides.items()
    }
    return (
        f"no {positive} window to find: F1 is undefined where none is called {positive}; "
        f"windows called {positive} per seed: MiniRocket {called['minirocket']}, biosig "
        f"{called['biosig']} (of {outcomes[0]['n']})"
    )


def mean_or_none(values: list[float | None]) -> float | None:
    return statistics.fmean(values) if values and None not in values else None


def fmt(value: float | None, digits: int = 3, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def seeds_text(per_seed: dict[Any, float | None]) -> str:
    return ", ".join(fmt(v) for v in per_seed.values())


TABLE_HEADER = (
    "set",
    "metric",
    "MiniRocket mean",
    "MiniRocket per seed",
    "biosig mean",
    "biosig per seed",
    "biosig − MiniRocket",
    "biosig train CPU s",
)


def table_cells(rows: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    return [
        (
            r["set"],
            r["metric"],
            fmt(r["minirocket"]["mean"]),
            seeds_text(r["minirocket"]["per_seed"]),
            fmt(r["biosig"]["mean"]),
            seeds_text(r["biosig"]["per_seed"]),
            fmt(r["difference"], signed=True),
            fmt(r["biosig_train_cpu_seconds"], 0),
        )
        for r in rows
    ]


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + " --- |" * len(TABLE_HEADER)]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_cells(rows)]
    notes = [f"- {r['set']}: {r['note']}" for r in rows if r.get("note")]
    lines += ["", *notes] if notes else []
    return "\n".join(lines)


def plain_table(rows: list[dict[str, Any]]) -> str:
    cells = [TABLE_HEADER, *table_cells(rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(TABLE_HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
    lines += [f"{r['set']}: {r['note']}" for r in rows if r.get("note")]
    return "\n".join(lines)


def docs_section(results: dict[str, Any]) -> str:
    """The Markdown that ``--write-docs`` puts between the markers."""
    parts = results.get("parts") or [results]
    lines = [_part_line(part) for part in parts]
    return "\n".join(lines) + f"\n\n{markdown_table(results['rows'])}\n"


def _part_line(part: dict[str, Any]) -> str:
    """One invocation's command, date, commits, MiniRocket version and machine."""
    git_info = part["git"]
    dirty = (
        f" with uncommitted changes to {', '.join(git_info['changed'])}"
        if git_info["dirty"]
        else ""
    )
    runs = [r for r in part["runs"] if "git" in r]
    commits = sorted({r["git"]["commit"] + ("+" if r["git"]["dirty"] else "") for r in runs})
    return (
        f"`{part['command']}` ({part['started'][:10]}; commit {git_info['commit']}{dirty} "
        f"at the start; runs at {', '.join(commits) or 'none'}; MiniRocket from aeon "
        f"{part.get('aeon_version') or '?'}; {part['host']['cpus']} CPU cores, "
        f"{part['settings']['jobs']} job(s) at once)."
    )


def merge_results(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Several ``--json-out`` files as one table (suites run at different times, or a run
    stopped before its table): each file's tasks that it ran, the rows rebuilt."""
    fields = {f.name for f in dataclasses.fields(Task)}
    tasks, runs, seeds = [], [], []
    for part in parts:
        ran = {r["task"] for r in part["runs"]}
        for record in part["tasks"]:
            if f"{record['suite']}/{record['name']}" in ran:
                kept = {k: v for k, v in record.items() if k in fields}
                tasks.append(Task(**{**kept, "data": Path(record["data"])}))
        runs += part["runs"]
        seeds += [s for s in part["settings"]["seeds"] if s not in seeds]
    merged = {**parts[0], "parts": parts, "runs": runs}
    merged["rows"] = build_rows(tasks, seeds, runs)
    return merged


def write_docs(path: Path, section: str) -> None:
    """Replace what lies between the markers in ``path``; the markers must be there."""
    text = path.read_text(encoding="utf-8")
    begin, end = text.find(DOCS_BEGIN), text.find(DOCS_END)
    if begin < 0 or end < begin:
        sys.exit(f"accuracy.py: {path}: no '{DOCS_BEGIN}' … '{DOCS_END}' section to replace")
    head, tail = text[: begin + len(DOCS_BEGIN)], text[end:]
    path.write_text(f"{head}\n{section.strip()}\n{tail}", encoding="utf-8")


# =========================================================================== main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suites", default=",".join(SUITES), help="of " + ",".join(SUITES))
    parser.add_argument("--datasets", default=",".join(UCR_SETS), help="UCR sets of the ucr suite")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated [0,1,2]")
    parser.add_argument("--jobs", type=int, default=1, help="biosig runs at once [1]")
    parser.add_argument("--dir", type=Path, default=Path("accuracy-bench"), help="data and runs")
    parser.add_argument("--tag", default="", help="run-directory name for this configuration")
    parser.add_argument("--biosig-args", default="", help="appended to every `biosig train`")
    parser.add_argument("--biosig", default=f"{sys.executable} -m biosig", help="command")
    parser.add_argument(
        "--aeon-python",
        default=os.environ.get("AEON_PYTHON"),
        help="python of an environment with aeon [$AEON_PYTHON]",
    )
    parser.add_argument(
        "--rerun-minirocket",
        action="store_true",
        help="prepare the data again and refit MiniRocket",
    )
    parser.add_argument(
        "--minirocket-only", action="store_true", help="prepare and fit MiniRocket, no biosig"
    )
    parser.add_argument("--json-out", type=Path, help="write every result here")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--write-docs", action="store_true", help="put the table in --docs")
    parser.add_argument("--docs", type=Path, default=REPO / "docs" / "benchmarks.md")
    parser.add_argument(
        "--from-json",
        type=Path,
        nargs="+",
        help="render these earlier --json-out files only (several: merged into one table)",
    )
    parser.add_argument("--worker", choices=("ucr-data", "minirocket"), help=argparse.SUPPRESS)
    parser.add_argument("--tasks", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("dir", "json_out", "docs"):
        if getattr(args, name) is not None:
            setattr(args, name, getattr(args, name).resolve())
    args.from_json = [path.resolve() for path in args.from_json or []]
    args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    args.suite_list = [s.strip() for s in args.suites.split(",") if s.strip()]
    args.dataset_list = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = sorted(set(args.suite_list) - set(SUITES))
    if unknown:
        parser.error(f"unknown suite(s) {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    if args.jobs < 1 or not args.seed_list:
        parser.error("--jobs must be at least 1 and --seeds name at least one seed")
    return args


def prepare_tasks(args: argparse.Namespace, aeon_python: str) -> list[Task]:
    """Every selected task with its data written (or found cached), MiniRocket fit."""
    makers = {
        "ucr": lambda: ucr_tasks(args.dataset_list, args.dir, aeon_python, args.rerun_minirocket),
        "ecg": lambda: ecg_tasks(args.dir, args.rerun_minirocket),
        "cwru": lambda: cwru_tasks(args.dir, args.rerun_minirocket),
        "motor": lambda: motor_tasks(args.dir, args.rerun_minirocket),
        "wav": lambda: wav_tasks(args.dir, args.rerun_minirocket),
    }
    tasks = []
    for suite in args.suite_list:
        started = time.perf_counter()
        made = makers[suite]()
        print(f"data for {suite}: {time.perf_counter() - started:.1f} s", flush=True)
        tasks += made
    todo = [
        t
        for t in tasks
        if any(not (t.data / "minirocket" / f"seed{s}.json").exists() for s in args.seed_list)
    ]
    if todo:
        extra = ["--seeds", args.seeds, "--tasks", ",".join(str(t.data) for t in todo)]
        seconds = run_aeon(aeon_python, "minirocket", extra, args.dir / "aeon.log")
        print(f"MiniRocket step: {seconds:.1f} s (aeon import and numba included)", flush=True)
    return tasks


def report(results: dict[str, Any], args: argparse.Namespace) -> None:
    print()
    print(markdown_table(results["rows"]) if args.markdown else plain_table(results["rows"]))
    if args.write_docs:
        write_docs(args.docs, docs_section(results))
        print(f"\nwrote the table into {args.docs}")


def run_worker(args: argparse.Namespace) -> int:
    if args.worker == "ucr-data":
        worker_ucr_data(args.dataset_list, args.dir)
    else:
        worker_minirocket([Path(p) for p in args.tasks.split(",") if p], args.seed_list)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return run_worker(args)
    if args.from_json:
        parts = [json.loads(path.read_text()) for path in args.from_json]
        single = len(parts) == 1 and parts[0]["rows"]
        report(parts[0] if single else merge_results(parts), args)
        return 0
    os.chdir(REPO)  # the pipelines' paths are relative to the repository root
    check_shared_data(args.suite_list, args.dataset_list)
    aeon_python = aeon_interpreter(args.aeon_python)
    from biosig import BiosigError

    try:
        tasks = prepare_tasks(args, aeon_python)
    except BiosigError as exc:
        sys.exit(f"accuracy.py: reading the data: {exc}")
    results = {
        "command": shlex.join(["python", "benchmarks/accuracy.py", *(argv or sys.argv[1:])]),
        "started": dt.datetime.now().isoformat(timespec="seconds"),
        "git": git_state(),
        "host": {"cpus": os.cpu_count(), "load": os.getloadavg()[0]},
        "settings": {
            "seeds": args.seed_list,
            "biosig_args": args.biosig_args,
            "tag": args.tag or "default",
            "jobs": args.jobs,
        },
        "aeon_version": aeon_version(tasks, args.seed_list),
        "tasks": [task_record(t) for t in tasks],
        "runs": [],
        "rows": [],
    }
    ctx = RunContext(
        shlex.split(args.biosig),
        shlex.split(args.biosig_args),
        args.dir / "runs" / (args.tag or "default"),
        args.jobs,
    )
    ctx.runs.mkdir(parents=True, exist_ok=True)

    def save(runs: list[dict[str, Any]]) -> None:
        results["runs"] = sorted(runs, key=lambda r: (r["task"], r["seed"]))
        if args.json_out:
            args.json_out.parent.mkdir(parents=True, exist_ok=True)
            args.json_out.write_text(json.dumps(results, indent=2) + "\n")

    if not args.minirocket_only:
        save(run_all(tasks, args.seed_list, ctx, save))
    results["rows"] = build_rows(tasks, args.seed_list, results["runs"])
    results["finished"] = dt.datetime.now().isoformat(timespec="seconds")
    save(results["runs"])
    report(results, args)
    return 1 if any("error" in r for r in results["runs"]) else 0


def aeon_version(tasks: list[Task], seeds: list[int]) -> str | None:
    for task in tasks:
        path = task.data / "minirocket" / f"seed{seeds[0]}.json"
        if path.is_file():
            return json.loads(path.read_text()).get("aeon_version")
    return None


def task_record(task: Task) -> dict[str, Any]:
    """What the JSON keeps of a task: its data, commands' arguments and MiniRocket."""
    record = dataclasses.asdict(task)
    record["data"] = str(task.data)
    record["minirocket_seconds"] = {
        p.stem: json.loads(p.read_text())["seconds"]
        for p in sorted((task.data / "minirocket").glob("seed*.json"))
    }
    return record


if __name__ == "__main__":
    sys.exit(main())
