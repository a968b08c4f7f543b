"""Classification metrics, from scikit-learn, in one report shape for training and
evaluation."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)


def _quiet(function):
    """Run a scikit-learn metric without its warnings about classes absent from a small
    validation split: the report states those zeros itself, and stderr stays readable."""

    def wrapper(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # UndefinedMetricWarning subclasses it
            return function(*args, **kwargs)

    wrapper.__doc__ = function.__doc__
    wrapper.__name__ = function.__name__
    return wrapper


@_quiet
def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Macro-F1 over all classes (a class absent from both counts as 0, not skipped)."""
    return float(
        f1_score(y_true, y_pred, labels=list(range(n_classes)), average="macro", zero_division=0)
    )


@_quiet
def classification_report(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> dict:
    """Accuracy, balanced accuracy, macro-F1, per-class precision/recall/F1, the confusion
    matrix (rows true, columns predicted) and the majority-class rate to compare against."""
    labels = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    counts = np.bincount(y_true, minlength=len(classes))
    majority = int(np.argmax(counts))
    return {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "macro_f1": macro_f1(y_true, y_pred, len(classes)),
        "majority_class": classes[majority],
        "majority_rate": float(counts[majority] / max(len(y_true), 1)),
        "classes": list(classes),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(classes)
        },
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def format_report(report: dict) -> str:
    """A human-readable rendering of :func:`classification_report`."""
    lines = [
        f"windows            {report['n']}",
        f"accuracy           {report['accuracy']:.4f}",
        f"balanced accuracy  {report['balanced_accuracy']:.4f}",
        f"macro F1           {report['macro_f1']:.4f}",
        f"majority rate      {report['majority_rate']:.4f}  ({report['majority_class']})",
        "",
        f"{'class':<20}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}",
    ]
    for name, row in report["per_class"].items():
        lines.append(
            f"{name:<20}{row['precision']:>10.4f}{row['recall']:>10.4f}"
            f"{row['f1']:>10.4f}{row['support']:>10d}"
        )
    if "recordings" in report:
        rec = report["recordings"]
        lines += [
            "",
            f"per recording ({rec['n']}, window probabilities averaged): accuracy "
            f"{rec['accuracy']:.4f}, balanced accuracy {rec['balanced_accuracy']:.4f}, "
            f"macro F1 {rec['macro_f1']:.4f}",
        ]
    # wide enough for the longest class name and the largest count, with two spaces
    largest = max((v for row in report["confusion"] for v in row), default=0)
    width = max(max(len(c) for c in report["classes"]), len(str(largest))) + 2
    lines += ["", "confusion (rows true, columns predicted)"]
    lines.append(" " * width + "".join(f"{c:>{width}}" for c in report["classes"]))
    for name, row in zip(report["classes"], report["confusion"], strict=True):
        lines.append(f"{name:<{width}}" + "".join(f"{v:>{width}d}" for v in row))
    return "\n".join(lines)


def not_learned(report: dict) -> str | None:
    """What in ``report`` says the model has not learnt to tell the classes apart: one class
    predicted for every window (of several true classes), or an accuracy below the
    majority-class rate, which always answering that class would reach, without a better
    macro-F1 than that answer's either (a class-weighted model may trade accuracy on the
    majority for the rare classes); ``None`` when neither holds."""
    confusion = np.asarray(report["confusion"])
    if confusion.size == 0 or report["n"] == 0:
        return None
    predicted = np.flatnonzero(confusion.sum(axis=0))
    present = np.flatnonzero(confusion.sum(axis=1))
    if len(predicted) == 1 and len(present) > 1:
        return f"it predicts {report['classes'][predicted[0]]!r} for every window"
    majority = report["majority_rate"]
    # always answering the majority class: F1 2m / (1 + m) for it, 0 for the others
    majority_macro_f1 = 2 * majority / (1 + majority) / len(report["classes"])
    if report["accuracy"] < majority and report["macro_f1"] <= majority_macro_f1:
        return (
            f"its accuracy {report['accuracy']:.3f} is below the majority rate "
            f"{majority:.3f} (always answering {report['majority_class']!r}), and its "
            f"macro-F1 {report['macro_f1']:.3f} no better than that answer's"
        )
    return None
