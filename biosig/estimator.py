"""``SignalClassifier``: biosig as a scikit-learn estimator, on arrays in aeon's layout.

    from biosig import SignalClassifier
    clf = SignalClassifier(epochs=20).fit(X_train, y_train)     # X: [n_cases, C, T]
    clf.score(X_test, y_test)

``fit`` runs exactly what ``biosig train --plugin numpy`` runs (same defaults, same seed,
same result): the arrays are written as ``.npy`` files to a temporary directory that the
numpy plugin reads, as a user's files would be, and removed afterwards; the trained model
stays in memory (``model_``; its ``evaluate`` needs files of a run directory, which is
removed: use ``score``). ``predict_proba`` scores each case as ``biosig evaluate`` does
(windows that do not overlap, their probabilities averaged per case).
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from .api import Model, load_model, train
from .device import resolve_device

#: scikit-learn's estimator checks that SignalClassifier does not pass, and why
#: (docs/python.md; tests/test_api.py runs the others).
WAIVED_CHECKS = {
    "check_methods_subset_invariance": (
        "probabilities of a case differ in the 7th digit with the batch it is scored in "
        "(float32 matrix kernels sum in another order for another batch size)"
    ),
}

#: The constructor's parameters that are ``biosig train`` options of the same name.
TRAIN_OPTIONS = (
    "preset",
    "epochs",
    "batch_size",
    "lr",
    "window",
    "hop",
    "normalization",
    "kernel_features",
    "augment",
    "label_smoothing",
    "seed",
    "device",
)


class SignalClassifier(ClassifierMixin, BaseEstimator):
    """biosig's classifier (multi-scale CNN, Transformer, random-kernel ridge branch) for
    1-D signals.

    ``X`` is ``[n_cases, n_channels, n_timepoints]`` (aeon's layout), ``[n_cases,
    n_timepoints]`` (one channel), or a list of ``[n_channels, n_timepoints]`` arrays of
    different lengths. Each parameter left ``None`` takes ``biosig train``'s default (the
    window sized to the longest series, batch size and epochs sized to the data, the
    normalisation chosen on the training windows).
    """

    def __init__(
        self,
        preset: str = "small",
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float = 1e-3,
        window: int | None = None,
        hop: int | None = None,
        normalization: str | None = None,
        kernel_features: int | None = None,
        augment: Sequence[str] | None = None,
        label_smoothing: float = 0.1,
        seed: int = 0,
        device: str = "auto",
        verbose: bool = False,
    ) -> None:
        self.preset = preset
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.window = window
        self.hop = hop
        self.normalization = normalization
        self.kernel_features = kernel_features
        self.augment = augment
        self.label_smoothing = label_smoothing
        self.seed = seed
        self.device = device
        self.verbose = verbose

    def fit(self, X: Any, y: Any) -> SignalClassifier:
        """Train on ``X`` labelled ``y``."""
        series, y = self._validate(X, y, reset=True)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        names = [str(c) for c in self.classes_]
        if len(set(names)) < len(names):
            raise ValueError(f"labels {list(self.classes_)} are not distinct as text")
        odd = [n for n in names if n != n.strip() or not n or any(c in n for c in "\t\n\r")]
        if odd:
            raise ValueError(f"labels {odd} start or end with blanks, or hold tabs or newlines")
        if len(self.classes_) < 2:
            raise ValueError(f"need at least two classes, got 1 class: {names}")
        options = {k: getattr(self, k) for k in TRAIN_OPTIONS if getattr(self, k) is not None}
        with tempfile.TemporaryDirectory(prefix="biosig-fit-") as tmp:
            inputs, labels = write_series(Path(tmp), series, [str(v) for v in y])
            with self._quiet():
                run = train("numpy", inputs, labels, out=Path(tmp) / "run", **options)
                self.model_: Model = load_model(run.best, device=self.device)
        self.history_ = run.history
        self.n_channels_ = series[0].shape[0]
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """``[n_cases, n_classes]`` probabilities, columns in :attr:`classes_` order."""
        check_is_fitted(self, "model_")
        series, _ = self._validate(X, None, reset=False)
        if series[0].shape[0] != self.n_channels_:
            raise ValueError(
                f"X has {series[0].shape[0]} channels; the model was fitted on {self.n_channels_}"
            )
        with tempfile.TemporaryDirectory(prefix="biosig-predict-") as tmp:
            inputs, _ = write_series(Path(tmp), series, None)
            with self._quiet():
                tables = self.model_.predict(inputs, hop=self.model_.window)
        columns = [f"p_{c}" for c in self.classes_]
        return tables.recordings[columns].to_numpy(dtype=np.float64)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each case."""
        proba = self.predict_proba(X)  # first: it says "not fitted" before classes_ is read
        return self.classes_[proba.argmax(axis=1)]

    def _validate(self, X: Any, y: Any, reset: bool) -> tuple[list[np.ndarray], Any]:
        """Arrays through scikit-learn's checks (``n_features_in_`` is the channel count of a
        3-D ``X``, the length of a 2-D one); a list of series of unequal length through
        :func:`as_series`."""
        if not isinstance(X, np.ndarray) and _unequal_lengths(X):
            series = as_series(X)
            if reset:
                y = column_or_1d(y, warn=True)
                check_consistent_length(series, y)
                self.n_features_in_ = series[0].shape[0]  # the channels, as for 3-D X
            return series, y
        if y is None and reset:
            raise ValueError("SignalClassifier requires y to be passed, but the target y is None")
        if reset:
            X, y = validate_data(self, X, y, reset=True, allow_nd=True, dtype=np.float32)
        else:
            X = validate_data(self, X, reset=False, allow_nd=True, dtype=np.float32)
        return as_series(X), y

    @contextlib.contextmanager
    def _quiet(self):
        """Training's progress lines only when ``verbose``."""
        if self.verbose:
            yield
            return
        with contextlib.redirect_stdout(io.StringIO()):
            yield

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        # CUDA kernels need not give the same result twice; the CPU's do
        tags.non_deterministic = resolve_device(self.device).type != "cpu"
        return tags


def _unequal_lengths(X: Any) -> bool:
    """A list (or tuple) of arrays that are not all of one shape."""
    if not isinstance(X, (list, tuple)) or not X:
        return False
    shapes = {np.shape(x) for x in X}
    return len(shapes) > 1


def as_series(X: Any) -> list[np.ndarray]:
    """``X`` as a list of float32 ``[C, T]`` arrays, one per case, all of one channel count
    and none with a missing or infinite value."""
    if isinstance(X, np.ndarray) and X.dtype != object:
        if X.ndim == 2:
            X = X[:, None, :]
        if X.ndim != 3:
            raise ValueError(f"expected [n_cases, n_channels, n_timepoints], got {X.shape}")
        cases = list(X)
    else:
        cases = [np.asarray(x) for x in X]
        cases = [x[None] if x.ndim == 1 else x for x in cases]
    if not cases:
        raise ValueError("X holds no cases")
    series = [np.asarray(x, dtype=np.float32) for x in cases]
    for i, x in enumerate(series):
        if x.ndim != 2 or x.shape[1] == 0:
            raise ValueError(f"case {i}: expected [n_channels, n_timepoints], got {x.shape}")
        if x.shape[0] != series[0].shape[0]:
            raise ValueError(f"case {i} has {x.shape[0]} channels, case 0 {series[0].shape[0]}")
        if not np.isfinite(x).all():
            raise ValueError(f"case {i} holds NaN or infinity")
    return series


def write_series(
    directory: Path, series: list[np.ndarray], labels: list[str] | None
) -> tuple[list[str], str | None]:
    """The cases as the numpy plugin reads them: one ``(N, C, T)`` file when all lengths
    agree, else a directory of one file per case (named so that they sort in case order);
    the labels, when given, as a ``.npy`` in case order. Returns the inputs and the labels
    file."""
    if len({x.shape[1] for x in series}) == 1:
        inputs = directory / "signals.npy"
        np.save(inputs, np.stack(series))
    else:
        inputs = directory / "cases"
        inputs.mkdir()
        for i, x in enumerate(series):
            np.save(inputs / f"{i:08d}.npy", x)
    if labels is None:
        return [str(inputs)], None
    np.save(directory / "labels.npy", np.asarray(labels))
    return [str(inputs)], str(directory / "labels.npy")
