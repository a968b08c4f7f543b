"""Run reports: learning curves from ``history.tsv`` and the confusion matrix, as PNGs.

``biosig train`` writes them into its run directory at the end (:func:`write_run_report`,
with the best checkpoint's validation metrics); ``biosig evaluate --report DIR`` writes the
same for the data it scored. As in :mod:`biosig.inference.plot`, figures are built with
:class:`matplotlib.figure.Figure` and drawn by the Agg canvas, never through ``pyplot``
(no global figure registry, no window, safe in worker threads), and written under a
temporary name then renamed into place. Every figure has a fixed size in pixels, so
reports of different runs line up side by side.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .atomic import atomic_file
from .errors import BiosigError
from .inference.plot import class_colour

#: File names in a run directory (and in ``biosig evaluate --report DIR``). Tables are
#: tab-separated, as ``biosig predict`` writes its own by default.
HISTORY = "history.tsv"
#: The history of a run written before biosig 0.2, comma-separated; still read.
HISTORY_CSV = "history.csv"
LEARNING_CURVES = "learning_curves.png"
CONFUSION = "confusion.png"

_DPI = 100
#: Learning curves: 900 x 800 pixels.
CURVES_SIZE_IN = (9.0, 8.0)
#: Confusion matrix up to :data:`ANNOTATE_MAX_CLASSES` classes: 800 x 700 pixels. More
#: classes get a proportionally larger figure (up to 3x), so cells stay a few pixels wide.
CONFUSION_SIZE_IN = (8.0, 7.0)
#: Up to this many classes each cell carries its count; beyond it digits no longer fit.
ANNOTATE_MAX_CLASSES = 20
#: Per-class F1 lines get a legend entry each up to this many classes, one shared beyond.
_LEGEND_MAX_CLASSES = 10
#: Tick labels longer than this are shortened, so that one long class name does not
#: squeeze the matrix into a corner.
_TICK_CHARS = 24
#: At most this many tick labels per axis; beyond it every k-th class is named.
_MAX_TICKS = 60
_F1_PREFIX = "val_f1_"


# ---------------------------------------------------------------------------- history


def history_path(run_dir: Path) -> Path | None:
    """A run directory's per-epoch history: ``history.tsv``, or the ``history.csv`` of a
    run written before biosig 0.2; ``None`` when it has neither."""
    for name in (HISTORY, HISTORY_CSV):
        if (Path(run_dir) / name).is_file():
            return Path(run_dir) / name
    return None


def history_frame(run_dir: Path) -> pd.DataFrame:
    """A run directory's history as a DataFrame, one row per epoch."""
    path = history_path(run_dir)
    if path is None:
        raise BiosigError(f"{run_dir}: no {HISTORY} (not a training run, or no epoch finished)")
    return pd.read_csv(path, sep=_separator(path))


def _separator(path: Path) -> str:
    return "," if Path(path).suffix == ".csv" else "\t"


def read_history(path: Path) -> dict[str, np.ndarray]:
    """The columns of a ``history.tsv`` (as :func:`biosig.training.trainer.write_history` writes it)
    as float arrays, one entry per epoch; an empty cell is NaN.

    Raises :class:`~biosig.errors.BiosigError` for a file without an ``epoch`` column,
    without rows, or with a value that is not a number.
    """
    path = Path(path)
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter=_separator(path))
        names = list(reader.fieldnames or [])
        if "epoch" not in names:
            raise BiosigError(f"{path}: not a training history (no 'epoch' column)")
        columns: dict[str, list[float]] = {name: [] for name in names}
        for row in reader:
            for name in names:
                text = (row.get(name) or "").strip()
                try:
                    columns[name].append(float(text) if text else math.nan)
                except ValueError:
                    raise BiosigError(
                        f"{path}: line {reader.line_num}: {name} is not a number: {text!r}"
                    ) from None
    if not columns["epoch"]:
        raise BiosigError(f"{path}: no epochs recorded")
    return {name: np.asarray(values, dtype=np.float64) for name, values in columns.items()}


def learning_curves_figure(history: Mapping[str, np.ndarray], title: str | None = None) -> Figure:
    """Build the figure :func:`learning_curves_png` writes, unsaved.

    ``history`` maps ``history.tsv`` column names to per-epoch values (see
    :func:`read_history`); columns it lacks are left out. Each line's ``gid`` is the column
    it draws, so the figure can be checked against the file.
    """
    epochs = np.asarray(history["epoch"], dtype=np.float64)
    fig = Figure(figsize=CURVES_SIZE_IN, dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    loss_ax, score_ax, lr_ax = fig.subplots(
        3, 1, sharex=True, height_ratios=[1.0, 1.2, 0.6], squeeze=True
    )
    # A line through one point draws nothing; markers keep a 1-epoch run (and the points
    # of short runs) visible. Long runs would only be cluttered by them.
    marker = "o" if len(epochs) <= 50 else None

    def draw(ax, column: str, label: str, **style: Any) -> None:
        if column in history:
            ax.plot(epochs, history[column], label=label, gid=column, marker=marker, ms=3, **style)

    draw(loss_ax, "train_loss", "train", color="tab:blue")
    draw(loss_ax, "val_loss", "validation", color="tab:orange")
    loss_ax.set_ylabel("loss")

    per_class = [c for c in history if c.startswith(_F1_PREFIX)]
    for i, column in enumerate(per_class):
        name = column[len(_F1_PREFIX) :]
        # Thin and translucent: they show which class holds macro-F1 back without
        # hiding the two summary lines drawn over them.
        if len(per_class) <= _LEGEND_MAX_CLASSES:
            label = f"F1 {name}"
        else:
            label = "per-class F1" if i == 0 else "_nolegend_"
        score_ax.plot(
            epochs,
            history[column],
            label=label,
            gid=column,
            color=class_colour(i, len(per_class)),
            linewidth=0.8,
            alpha=0.6,
            zorder=1,
        )
    draw(score_ax, "val_accuracy", "accuracy", color="black", linewidth=1.8, zorder=3)
    draw(score_ax, "val_macro_f1", "macro-F1", color="tab:red", linewidth=1.8, zorder=3)
    score_ax.set_ylabel("validation score")
    score_ax.set_ylim(-0.02, 1.02)

    draw(lr_ax, "lr", "learning rate", color="tab:green")
    lr_ax.set_ylabel("learning rate")
    lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    lr_ax.set_xlabel("epoch")
    lr_ax.xaxis.set_major_locator(MaxNLocator(integer=True))

    best = None
    if "val_macro_f1" in history and not np.all(np.isnan(history["val_macro_f1"])):
        # nanargmax takes the first maximum, as training keeps the first epoch that
        # reached the best macro-F1 (later ties do not replace it).
        best = int(np.nanargmax(history["val_macro_f1"]))
        for ax in (loss_ax, score_ax, lr_ax):
            ax.axvline(epochs[best], color="grey", linestyle=":", linewidth=1, gid="best")
    for ax in (loss_ax, score_ax):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small")
    for ax in (loss_ax, score_ax, lr_ax):
        ax.grid(True, alpha=0.3)

    heading = title if title is not None else "learning curves"
    if best is not None:
        heading += (
            f" · best epoch {int(epochs[best])} (val macro-F1 {history['val_macro_f1'][best]:.4f})"
        )
    fig.suptitle(heading)
    return fig


def learning_curves_png(history_file: Path, out: Path, title: str | None = None) -> Path:
    """Write a PNG of a run's ``history.tsv``: train and validation loss; validation
    accuracy, macro-F1 and (thin) per-class F1; the learning rate; over epochs, with the
    best epoch (highest validation macro-F1) marked. 900 x 800 pixels; the title defaults
    to the run directory's name. Returns ``out``."""
    history_file = Path(history_file)
    heading = title if title is not None else _run_name(history_file)
    fig = learning_curves_figure(read_history(history_file), heading)
    return _save(fig, out)


# -------------------------------------------------------------------------- confusion


def confusion_size_px(n_classes: int) -> tuple[int, int]:
    """Width and height in pixels of the confusion figure for ``n_classes``."""
    scale = min(max(n_classes / ANNOTATE_MAX_CLASSES, 1.0), 3.0)
    width, height = CONFUSION_SIZE_IN
    return round(width * scale * _DPI), round(height * scale * _DPI)


def row_normalised(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (the share of each true class predicted as each class);
    a row without examples stays 0."""
    matrix = np.asarray(matrix, dtype=np.float64)
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)


def _short(name: str) -> str:
    return name if len(name) <= _TICK_CHARS else name[: _TICK_CHARS - 1] + "…"


def confusion_figure(
    matrix: np.ndarray, classes: Sequence[str], title: str = "confusion matrix"
) -> Figure:
    """Build the figure :func:`confusion_png` writes, unsaved."""
    matrix = np.asarray(matrix)
    n = len(classes)
    if matrix.shape != (n, n):
        raise ValueError(f"confusion matrix of shape {matrix.shape} for {n} classes")
    width_px, height_px = confusion_size_px(n)
    fig = Figure(figsize=(width_px / _DPI, height_px / _DPI), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    # Colour by share of the true class, not by count: with imbalanced classes raw
    # counts would paint only the largest class, hiding errors on the rare ones.
    shares = row_normalised(matrix)
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    bar = fig.colorbar(image, ax=ax, shrink=0.8)
    bar.set_label("share of the true class")

    if n <= ANNOTATE_MAX_CLASSES and n:
        # Font sized to the cell: ~5 in of matrix split n ways, and the widest count
        # must fit across (a digit is about 0.6 em wide).
        cell_pt = 5.0 * 72 / n
        digits = len(str(int(matrix.max()))) if matrix.size else 1
        size = max(5.0, min(11.0, cell_pt * 0.45, cell_pt * 0.8 / (0.6 * digits)))
        for i in range(n):
            for j in range(n):
                ax.text(
                    j,
                    i,
                    str(int(matrix[i, j])),
                    ha="center",
                    va="center",
                    fontsize=size,
                    # white on the dark half of the colour map, so the number stays legible
                    color="white" if shares[i, j] > 0.5 else "black",
                )

    step = max(1, math.ceil(n / _MAX_TICKS))
    ticks = np.arange(0, n, step)
    labels = [_short(str(classes[k])) for k in ticks]
    fontsize = "small" if n <= ANNOTATE_MAX_CLASSES else "x-small"
    ax.set_xticks(ticks, labels, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(ticks, labels)
    ax.tick_params(labelsize=fontsize)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return fig


def confusion_png(
    matrix: np.ndarray,
    classes: Sequence[str],
    out: Path,
    title: str = "confusion matrix",
) -> Path:
    """Write a PNG of a confusion matrix (rows true, columns predicted, as
    :func:`biosig.metrics.classification_report` gives it).

    Cells are coloured by their share of the row (the true class) and, up to
    :data:`ANNOTATE_MAX_CLASSES` classes, carry their count. The size depends only on the
    number of classes (:func:`confusion_size_px`: 800 x 700 pixels up to 20). Returns
    ``out``.
    """
    return _save(confusion_figure(matrix, classes, title), out)


# ----------------------------------------------------------------------------- reports


def metrics_title(what: str, metrics: Mapping[str, Any]) -> str:
    """A heading such as ``validation · 120 windows · accuracy 0.9500 · macro-F1 0.9490``
    from a :func:`~biosig.metrics.classification_report`; the parts it lacks are left out."""
    parts = [what]
    if "n" in metrics:
        parts.append(f"{metrics['n']} windows")
    for key, name in (("accuracy", "accuracy"), ("macro_f1", "macro-F1")):
        if key in metrics:
            parts.append(f"{name} {metrics[key]:.4f}")
    return " · ".join(parts)


def write_report(
    directory: Path,
    metrics: Mapping[str, Any],
    history_file: Path | None = None,
    classes: Sequence[str] | None = None,
    what: str = "validation",
) -> list[Path]:
    """Write ``directory/confusion.png`` from ``metrics`` (a
    :func:`~biosig.metrics.classification_report`) if it has a confusion matrix, and
    ``directory/learning_curves.png`` from ``history_file`` if given and present. ``what``
    names the data scored in the confusion figure's title. Returns the paths written."""
    directory = Path(directory)
    written = []
    if history_file is not None and Path(history_file).is_file():
        written.append(learning_curves_png(history_file, directory / LEARNING_CURVES))
    if metrics.get("confusion") is not None:
        names = list(classes if classes is not None else metrics["classes"])
        written.append(
            confusion_png(
                np.asarray(metrics["confusion"]),
                names,
                directory / CONFUSION,
                metrics_title(what, metrics),
            )
        )
    return written


def write_run_report(
    run_dir: Path, metrics: Mapping[str, Any], classes: Sequence[str] | None = None
) -> list[Path]:
    """Write a training run's report into ``run_dir``: ``learning_curves.png`` from
    ``run_dir/history.tsv`` (if present) and ``confusion.png`` from ``metrics``, the best
    checkpoint's validation :func:`~biosig.metrics.classification_report` (skipped if it
    has no ``confusion``, as before the first epoch). ``classes`` default to
    ``metrics["classes"]``. Returns the paths written.

    Raises :class:`~biosig.errors.BiosigError` for an unreadable history and ``OSError``
    when the files cannot be written; a caller that must not fail on a report catches them.
    """
    run_dir = Path(run_dir)
    return write_report(run_dir, metrics, run_dir / HISTORY, classes, what="validation")


def _run_name(history_file: Path) -> str:
    """Learning-curves heading: the run directory's name (its timestamp by default)."""
    parent = Path(history_file).resolve().parent.name
    return f"learning curves · {parent}" if parent else "learning curves"


def _save(fig: Figure, out: Path) -> Path:
    out = Path(out)
    # No bbox_inches="tight": it would crop to the content and make the size vary.
    with atomic_file(out, "wb") as handle:
        fig.savefig(handle, format="png", dpi=_DPI)
    return out
