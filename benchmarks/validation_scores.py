"""The validation scores of the runs ``benchmarks/accuracy.py`` trained under two tags,
side by side: for each run, the epoch with the best validation macro-F1 (the one
``best/`` keeps) and its validation accuracy, read from the run's ``history.tsv``.
Used to judge a change of training (bf16 on the CPU, issue 19) on validation data only.

    python benchmarks/validation_scores.py DIR/runs TAG_A TAG_B
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path


def best_epoch(history: Path) -> tuple[float, float, int]:
    """``(macro_f1, accuracy, epoch)`` of the epoch with the best validation macro-F1."""
    with history.open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    best = max(rows, key=lambda row: float(row["val_macro_f1"]))
    return float(best["val_macro_f1"]), float(best["val_accuracy"]), int(best["epoch"])


def main() -> None:
    runs, tag_a, tag_b = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    print(
        f"| run | {tag_a} val macro-F1 (accuracy, epoch) | {tag_b} val macro-F1 (accuracy, epoch) |"
    )
    print("| --- | --- | --- |")
    for history in sorted((runs / tag_a).glob("*/history.tsv")):
        name = history.parent.name
        other = runs / tag_b / name / "history.tsv"
        cells = [best_epoch(h) if h.exists() else None for h in (history, other)]
        shown = [f"{c[0]:.3f} ({c[1]:.3f}, {c[2]})" if c else "-" for c in cells]
        print(f"| {name} | {shown[0]} | {shown[1]} |")


if __name__ == "__main__":
    main()
