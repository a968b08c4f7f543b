"""The settings of training and pretraining runs, and the defaults they are sized from.

Kept apart from the code that trains (torch, scikit-learn) so that the command line can show
every option and its default without importing either: ``biosig train --help`` answers in a
fraction of a second.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

#: Share of the data held out to validate, unless told otherwise.
VAL_FRACTION = 0.2

#: Training windows the random-kernel branch's ridge classifier is fitted on, at most (a
#: random sample beyond: its cost grows with the square of their number). Left to biosig,
#: the branch is used only up to this many training windows (see
#: :func:`biosig.training.kernel_features.default_kernel_features`).
RIDGE_WINDOWS = 4096

#: The names :data:`biosig.nn.augment.AUGMENTATIONS` registers (a test keeps the two equal),
#: here so that ``--help`` lists them without importing torch.
AUGMENTATION_NAMES: tuple[str, ...] = (
    "time_warp",
    "window_warp",
    "noise",
    "scale",
    "channel_scale",
    "shift",
    "time_mask",
    "channel_dropout",
    "baseline_wander",
    "mixup",
    "cutmix",
)

#: The schedule's size for ample data: 30 epochs of batches of 64, stopped early after 8
#: epochs without a better validation macro-F1.
EPOCHS, BATCH_SIZE, PATIENCE = 30, 64, 8
#: Fewest optimizer steps a run takes: a training set too small for this many in
#: :data:`EPOCHS` epochs trains for more epochs (see :meth:`TrainConfig.sized_for`).
MIN_STEPS = 300
#: A batch is at most this fraction of the training windows, so an epoch takes several
#: steps even on a few dozen windows.
MAX_BATCH_FRACTION = 1 / 8
MIN_BATCH_SIZE = 8
#: Training sets smaller than this many windows, with the epochs left to biosig, get the
#: small-data recipe (see :meth:`TrainConfig.sized_for`).
SMALL_DATA_WINDOWS = 256
#: The augmentations of a run that names none; small data adds :data:`SMALL_DATA_MIXING`.
AUGMENT = ("time_warp", "noise")
SMALL_DATA_MIXING = "mixup"


@dataclass
class TrainConfig:
    """Optimisation settings; every field is a ``biosig train`` option.

    ``epochs``, ``batch_size``, ``patience``, ``augment`` and ``select`` left ``None`` are
    sized to the training set by :meth:`sized_for` before training.
    """

    epochs: int | None = None
    batch_size: int | None = None
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.05
    grad_clip: float = 1.0
    label_smoothing: float = 0.1
    loss: str = "ce"
    focal_gamma: float = 2.0
    class_weights: bool = True
    #: augmentation specs (see biosig.nn.augment); ``None``: sized to the training set
    augment: list[str] | None = None
    augment_p: float = 0.5
    patience: int | None = None
    seed: int = 0
    #: decay of the moving average of the weights (0: none); see :class:`WeightEMA`
    ema: float = 0.0
    #: draw training windows inversely to their class frequency (class weights then off)
    balance: bool = False
    #: networks trained side by side and averaged (see biosig.nn.model.EnsembleClassifier)
    ensemble: int = 1
    #: ``best/`` holds the epoch with the best validation macro-F1 (ties: lower loss); when
    #: false, the final epoch (no selection, no early stopping); ``None``: sized
    select: bool | None = None

    def small_data(self, n_windows: int) -> bool:
        """Whether ``n_windows`` training windows get the small-data recipe (see
        :meth:`sized_for`): fewer than :data:`SMALL_DATA_WINDOWS`, epochs left to biosig."""
        return self.epochs is None and n_windows < SMALL_DATA_WINDOWS

    def validation_fraction(self, n_windows: int, given: float | None = None) -> float:
        """The share of ``n_windows`` labelled windows to hold out: ``given``, else none
        for the small-data recipe, which selects no epoch on validation (unless told to),
        so that a few dozen series all train; else :data:`VAL_FRACTION`."""
        if given is not None:
            return given
        if self.small_data(n_windows) and self.select is not True:
            return 0.0
        return VAL_FRACTION

    def sized_for(self, n_train_windows: int, small: bool | None = None) -> TrainConfig:
        """This config with the settings left ``None`` sized to the training set.

        Batches of 64 (:data:`BATCH_SIZE`) unless that is more than an eighth of the
        windows: then the power of two nearest below an eighth, at least 8, so that 40
        windows train in 5 steps of 8 per epoch rather than one step of 40. Epochs: 30, or
        as many as :data:`MIN_STEPS` steps take when 30 epochs would take fewer (60 for
        those 40 windows).

        A training set of fewer than :data:`SMALL_DATA_WINDOWS` windows whose epochs are
        left to this sizing (or ``small`` true: the CLI decides on every labelled window,
        before any is held out) gets the small-data recipe, measured on UCR series against
        MiniRocket (docs/benchmarks.md): no early stopping and no epoch selection
        (``select`` false: ``best/`` keeps the final weights), since its validation part is
        a dozen or so windows, whose macro-F1 reaches 1.0 within a few epochs and cannot
        tell later ones apart; and mixup added to the time warping and noise. Either can
        still be set. Otherwise: early stopping after :data:`PATIENCE` epochs without a
        better validation macro-F1, ``best/`` the best epoch, time warping and noise.
        (An ensemble of three networks, ``ensemble=3``, measured no better there than one,
        at three times the cost, so it is not part of the recipe.)
        """
        n = max(1, int(n_train_windows))
        if small is None:
            small = self.small_data(n)
        batch = self.batch_size
        if batch is None:
            fraction = max(1.0, n * MAX_BATCH_FRACTION)
            batch = int(min(BATCH_SIZE, max(MIN_BATCH_SIZE, 2 ** math.floor(math.log2(fraction)))))
        epochs = self.epochs
        if epochs is None:
            epochs = max(EPOCHS, math.ceil(MIN_STEPS / math.ceil(n / batch)))
        patience = self.patience
        if patience is None:
            patience = epochs if small else PATIENCE
        select = (not small) if self.select is None else self.select
        augment = self.augment
        if augment is None:
            augment = [*AUGMENT, SMALL_DATA_MIXING] if small else list(AUGMENT)
        return dataclasses.replace(
            self,
            epochs=epochs,
            batch_size=batch,
            patience=patience,
            select=select,
            augment=augment,
        )


@dataclass
class PretrainConfig:
    """Optimisation and masking settings; every field is a ``biosig pretrain`` option."""

    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.05
    grad_clip: float = 1.0
    #: fraction of each window's valid samples hidden
    mask_ratio: float = 0.3
    #: mean length of a hidden span, in samples at the model rate
    mask_span: int = 32
    seed: int = 0
