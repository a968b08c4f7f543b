"""The validation scores of the runs ``benchmarks/accuracy.py`` trained under two tags,
side by side: for each run, the epoch with the best validation macro-F1 (the one
``best/`` keeps when the run selects an epoch) and its validation accuracy, and the last
epoch's macro-F1 (what a run that does not select keeps), read from its ``history.tsv``.
Used to judge a change of training (bf16 on the CPU, issue 19) on validation data only.

    python benchmarks/validation_scores.py DIR/runs TAG_A TAG_B
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path


def best_epoch(history: Path) -> tuple[float, float, int, float]:
    """``(macro_f1, accuracy, epoch)`` of the epoch with the best validation macro-F1, and
    the last epoch's macro-F1."""
    with history.open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    best = max(rows, key=lambda row: float(row["val_macro_f1"]))
    scores = float(best["val_macro_f1"]), float(best["val_accuracy"]), int(best["epoch"])
    return (*scores, float(rows[-1]["val_macro_f1"]))


def main() -> None:
    runs, tag_a, tag_b = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    header = "val macro-F1 (accuracy, epoch); last"
    print(f"| run | {tag_a} {header} | {tag_b} {header} |")
    print("| --- | --- | --- |")
    for history in sorted((runs / tag_a).glob("*/history.tsv")):
        name = history.parent.name
        other = runs / tag_b / name / "history.tsv"
        cells = [best_epoch(h) if h.exists() else None for h in (history, other)]
        shown = [f"{c[0]:.3f} ({c[1]:.3f}, {c[2]}); {c[3]:.3f}" if c else "-" for c in cells]
        print(f"| {name} | {shown[0]} | {shown[1]} |")


if __name__ == "__main__":
    main()
