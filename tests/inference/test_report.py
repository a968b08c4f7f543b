"""Run reports: learning curves drawn from history.tsv, the confusion matrix figure, and
the files a run directory gets."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import AxesImage, imread

from biosig.errors import BiosigError
from biosig.metrics import classification_report
from biosig.report import (
    CONFUSION,
    LEARNING_CURVES,
    confusion_figure,
    confusion_png,
    history_frame,
    history_path,
    learning_curves_figure,
    learning_curves_png,
    read_history,
    row_normalised,
    write_run_report,
)

#: One class name holds a comma, so the CSV header must be quoted to be read back.
CLASSES = ["normal", "artefact", "event, rare"]
#: (height, width) of the PNGs, pixels: fixed whatever the data.
CURVES_PX = (800, 900)
CONFUSION_PX = (700, 800)


def history_rows(n_epochs: int, classes=CLASSES) -> list[dict[str, float]]:
    """Rows as ``biosig.training.trainer.fit`` writes them; macro-F1 peaks (twice) at epoch 3."""
    f1 = [0.2, 0.5, 0.8, 0.6, 0.8, 0.7][:n_epochs]
    return [
        {
            "epoch": e + 1,
            "train_loss": 1.5 / (e + 1),
            "val_loss": 1.7 / (e + 1) + 0.05 * e,
            "val_accuracy": 0.3 + 0.1 * e,
            "val_macro_f1": f1[e],
            "lr": 1e-3 * (1 - e / 10),
            "seconds": 2.0,
            **{f"val_f1_{c}": f1[e] * (k + 1) / len(classes) for k, c in enumerate(classes)},
        }
        for e in range(n_epochs)
    ]


def _separator(path: Path) -> str:
    return "," if path.suffix == ".csv" else "\t"


def write_csv(path: Path, rows: list[dict]) -> Path:
    """A history table, tab-separated as biosig writes it, or comma-separated as a run
    written before biosig 0.2 has it when ``path`` ends in .csv."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=_separator(path))
        writer.writeheader()
        writer.writerows(rows)
    return path


def csv_columns(path: Path) -> dict[str, list[float]]:
    """The file's columns read independently of biosig.report."""
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter=_separator(path)))
    return {name: [float(row[name]) for row in rows] for name in rows[0]}


def lines_by_gid(fig) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {
        line.get_gid(): (np.asarray(line.get_xdata()), np.asarray(line.get_ydata()))
        for ax in fig.axes
        for line in ax.lines
        if line.get_gid() not in (None, "best")
    }


# ----------------------------------------------------------------------- learning curves


def test_learning_curves_draw_every_column_of_the_csv(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "history.tsv", history_rows(6))
    columns = csv_columns(path)
    fig = learning_curves_figure(read_history(path))

    loss_ax, score_ax, lr_ax = fig.axes[:3]
    assert [ax.get_ylabel() for ax in (loss_ax, score_ax, lr_ax)] == [
        "loss",
        "validation score",
        "learning rate",
    ]
    assert lr_ax.get_xlabel() == "epoch"
    lines = lines_by_gid(fig)
    drawn = ["train_loss", "val_loss", "val_accuracy", "val_macro_f1", "lr"]
    assert set(lines) == {*drawn, *(f"val_f1_{c}" for c in CLASSES)}  # not epoch, seconds
    for gid, (x, y) in lines.items():
        assert x.tolist() == columns["epoch"]
        np.testing.assert_allclose(y, columns[gid], rtol=0, atol=0)
    # each quantity on its own axis
    assert {line.get_gid() for line in loss_ax.lines} >= {"train_loss", "val_loss"}
    assert {line.get_gid() for line in lr_ax.lines} == {"lr", "best"}
    # per-class F1 thinner than the summary lines
    width = {line.get_gid(): line.get_linewidth() for line in score_ax.lines}
    assert width[f"val_f1_{CLASSES[0]}"] < width["val_macro_f1"]
    # the best epoch is the first with the highest macro-F1 (epoch 3, tied by epoch 5),
    # the checkpoint training kept
    best = [line for line in loss_ax.lines if line.get_gid() == "best"]
    assert len(best) == 1 and list(best[0].get_xdata()) == [3, 3]
    assert "best epoch 3 (val macro-F1 0.8000)" in fig.get_suptitle()
    legend = [t.get_text() for t in score_ax.get_legend().get_texts()]
    assert legend == [*(f"F1 {c}" for c in CLASSES), "accuracy", "macro-F1"]


def test_learning_curves_png_has_a_fixed_size(tmp_path: Path) -> None:
    for n_epochs in (1, 6):
        history = write_csv(tmp_path / f"h{n_epochs}.csv", history_rows(n_epochs))
        out = learning_curves_png(history, tmp_path / "out" / f"curves{n_epochs}.png")
        assert out == tmp_path / "out" / f"curves{n_epochs}.png"
        image = imread(out)
        assert image.shape == (*CURVES_PX, 4)
        assert image.std() > 0  # something was drawn
    # written under a temporary name and renamed: nothing else is left behind
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["curves1.png", "curves6.png"]


def test_one_epoch_is_drawn_as_points(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "history.tsv", history_rows(1))
    fig = learning_curves_figure(read_history(path))
    for gid, (x, y) in lines_by_gid(fig).items():
        assert x.tolist() == [1.0], gid
        assert len(y) == 1
    train = next(line for line in fig.axes[0].lines if line.get_gid() == "train_loss")
    assert train.get_marker() == "o"  # a one-point line without a marker draws nothing


def test_history_without_optional_columns(tmp_path: Path) -> None:
    """An older history (no per-class F1, no lr) still draws what it has."""
    rows = [
        {k: row[k] for k in ("epoch", "train_loss", "val_loss", "val_macro_f1")}
        for row in history_rows(3)
    ]
    fig = learning_curves_figure(read_history(write_csv(tmp_path / "h.csv", rows)))
    assert set(lines_by_gid(fig)) == {"train_loss", "val_loss", "val_macro_f1"}


def test_blank_cells_read_as_nan(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("epoch,train_loss,val_loss\n1,0.5,\n2,0.4,0.3\n", encoding="utf-8")
    history = read_history(path)
    assert history["epoch"].tolist() == [1.0, 2.0]
    assert np.isnan(history["val_loss"][0]) and history["val_loss"][1] == 0.3


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("epoch\ttrain_loss\n", ["no epochs recorded"]),
        ("", ["no 'epoch' column"]),
        ("loss\n0.5\n", ["no 'epoch' column"]),
        ("epoch\ttrain_loss\n1\t0.5\n2\toops\n", ["line 3", "train_loss", "'oops'"]),
    ],
)
def test_bad_history_is_a_biosig_error(tmp_path: Path, text: str, fragments: list[str]) -> None:
    path = tmp_path / "history.tsv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BiosigError) as caught:
        learning_curves_png(path, tmp_path / "curves.png")
    message = str(caught.value)
    assert message.startswith(str(path))
    for fragment in fragments:
        assert fragment in message
    assert not (tmp_path / "curves.png").exists()


# --------------------------------------------------------------------------- confusion

MATRIX = np.array([[10, 2, 0], [1, 15, 4], [0, 0, 0]])


def cell_texts(fig) -> list[str]:
    return [t.get_text() for t in fig.axes[0].texts]


def test_confusion_cells_show_counts_coloured_by_row_share() -> None:
    fig = confusion_figure(MATRIX, CLASSES, title="validation")
    ax = fig.axes[0]
    # one text per cell, row by row, each the count
    assert cell_texts(fig) == [str(v) for v in MATRIX.ravel()]
    positions = [tuple(t.get_position()) for t in ax.texts]
    assert positions == [(j, i) for i in range(3) for j in range(3)]
    # the colours are the share of each true class; a class never seen stays at 0
    image = next(a for a in ax.get_children() if isinstance(a, AxesImage))
    shares = np.asarray(image.get_array())
    np.testing.assert_allclose(
        shares, [[10 / 12, 2 / 12, 0], [1 / 20, 15 / 20, 4 / 20], [0, 0, 0]], atol=1e-12
    )
    assert image.get_clim() == (0.0, 1.0)
    # dark cells get white numbers
    colours = {t.get_text(): t.get_color() for t in ax.texts}
    assert colours["10"] == "white" and colours["2"] == "black"
    assert [t.get_text() for t in ax.get_xticklabels()] == CLASSES
    assert [t.get_text() for t in ax.get_yticklabels()] == CLASSES
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("predicted", "true", "validation")


def test_row_normalised() -> None:
    np.testing.assert_array_equal(
        row_normalised(np.array([[1, 3], [0, 0]])), np.array([[0.25, 0.75], [0.0, 0.0]])
    )


def test_confusion_png_size(tmp_path: Path) -> None:
    out = confusion_png(MATRIX, CLASSES, tmp_path / "c.png")
    assert imread(out).shape == (*CONFUSION_PX, 4)
    two = confusion_png(np.array([[1234567, 0], [3, 4]]), ["a", "b"], tmp_path / "two.png")
    assert imread(two).shape == (*CONFUSION_PX, 4)  # the same for any small class count


def test_many_classes_get_no_numbers_and_a_larger_figure() -> None:
    n = 24
    matrix = np.arange(n * n).reshape(n, n)
    names = [f"class {k}" for k in range(n)]
    fig = confusion_figure(matrix, names)
    assert cell_texts(fig) == []
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == names
    # 24 classes: 1.2 times the size of the small-matrix figure (checked on the figure:
    # the PNG of a small one is measured above, and drawing this one is slow)
    assert tuple(fig.get_size_inches() * fig.dpi) == (960, 840)
    # exactly at the limit the numbers are still written
    assert len(cell_texts(confusion_figure(np.ones((20, 20)), names[:20]))) == 400


def test_confusion_shape_must_match_classes() -> None:
    with pytest.raises(ValueError, match=r"\(2, 2\) for 3 classes"):
        confusion_figure(np.zeros((2, 2)), CLASSES)


# ------------------------------------------------------------------------- run reports


def validation_metrics() -> dict:
    y_true = np.array([0] * 12 + [1] * 20 + [2] * 5)
    y_pred = np.array([0] * 10 + [1] * 2 + [0] + [1] * 15 + [2] * 4 + [2] * 3 + [1] * 2)
    return classification_report(y_true, y_pred, CLASSES)


def test_write_run_report(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    write_csv(run / "history.tsv", history_rows(4))
    metrics = validation_metrics()
    written = write_run_report(run, metrics)
    assert written == [run / LEARNING_CURVES, run / CONFUSION]
    assert imread(run / LEARNING_CURVES).shape == (*CURVES_PX, 4)
    assert imread(run / CONFUSION).shape == (*CONFUSION_PX, 4)
    assert sorted(p.name for p in run.iterdir()) == [CONFUSION, "history.tsv", LEARNING_CURVES]
    # the figure it drew holds the metrics' counts (rows true: 12, 20, 5 windows)
    fig = confusion_figure(np.asarray(metrics["confusion"]), CLASSES)
    assert cell_texts(fig) == ["10", "2", "0", "1", "15", "4", "0", "2", "3"]


def test_run_report_without_history_or_metrics(tmp_path: Path) -> None:
    # no history.tsv: the confusion matrix alone
    assert write_run_report(tmp_path / "a", validation_metrics()) == [tmp_path / "a" / CONFUSION]
    # no metrics yet (no epoch finished): the curves alone
    (tmp_path / "b").mkdir()
    write_csv(tmp_path / "b" / "history.tsv", history_rows(1))
    assert write_run_report(tmp_path / "b", {}) == [tmp_path / "b" / LEARNING_CURVES]


def test_run_report_classes_override_the_metrics_names(tmp_path: Path) -> None:
    metrics = validation_metrics()
    write_run_report(tmp_path, metrics, classes=["x", "y", "z"])
    assert imread(tmp_path / CONFUSION).shape == (*CONFUSION_PX, 4)
    with pytest.raises(ValueError):
        write_run_report(tmp_path, metrics, classes=["x", "y"])


def test_a_run_from_before_0_2_keeps_its_comma_separated_history(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    write_csv(old / "history.csv", history_rows(3))
    write_csv(new / "history.tsv", history_rows(3))
    write_csv(new / "history.csv", history_rows(1))  # left by a resumed older run
    assert history_path(old) == old / "history.csv"
    assert history_path(new) == new / "history.tsv"
    assert history_path(tmp_path) is None
    np.testing.assert_allclose(read_history(old / "history.csv")["val_loss"],
                               read_history(new / "history.tsv")["val_loss"])  # fmt: skip
    frame = history_frame(old)
    assert list(frame["epoch"]) == [1, 2, 3]
    assert list(frame.columns) == list(history_rows(3)[0])
