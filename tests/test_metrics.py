"""Classification metrics and the check that a model has learnt anything (biosig.metrics)."""

from __future__ import annotations

import numpy as np

from biosig.metrics import classification_report, not_learned

CLASSES = ["a", "b", "c"]


def test_one_class_for_every_window_has_not_learned() -> None:
    y = np.array([0, 0, 1, 1, 2, 2, 2])
    report = classification_report(y, np.full_like(y, 2), CLASSES)
    assert not_learned(report) == "it predicts 'c' for every window"


def test_below_the_majority_rate_has_not_learned() -> None:
    y = np.array([0, 0, 0, 0, 0, 0, 1, 2])
    guess = np.array([1, 1, 2, 2, 0, 0, 2, 1])  # 0.25 right; always 'a' would be 0.75
    reason = not_learned(classification_report(y, guess, CLASSES))
    assert reason is not None and "below the majority rate 0.750" in reason and "'a'" in reason


def test_trading_majority_accuracy_for_the_rare_class_is_learning() -> None:
    y = np.array([0] * 18 + [1] * 2)  # 90 % majority
    guess = y.copy()
    guess[:3] = 1  # 0.85 right, below the majority rate, but the rare class is found
    report = classification_report(y, guess, ["N", "AF"])
    assert report["accuracy"] < report["majority_rate"] and not_learned(report) is None


def test_a_model_that_beats_the_majority_has_learned() -> None:
    y = np.array([0, 0, 1, 1, 2, 2])
    assert not_learned(classification_report(y, np.array([0, 0, 1, 1, 2, 0]), CLASSES)) is None
    # one class present, and predicted: nothing to tell apart, nothing to warn about
    one = np.zeros(4, dtype=int)
    assert not_learned(classification_report(one, one, CLASSES)) is None
