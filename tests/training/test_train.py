"""The training loop: schedule, convergence, checkpoints and history, early stopping,
reproducibility, class weights, and the classification report."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from checkpoint_helpers import meta_for

import biosig.training.config as config_module
import biosig.training.trainer as train_module
from biosig.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint
from biosig.data.normalize import NormalizationSpec
from biosig.data.store import ExampleStore
from biosig.metrics import classification_report, macro_f1
from biosig.nn.model import EnsembleClassifier, SignalNet, model_config
from biosig.training.config import TrainConfig
from biosig.training.trainer import cosine_with_warmup, fit, predict_store

W = 128
CPU = torch.device("cpu")
WINDOW_NORM = NormalizationSpec("window")
HISTORY_COLUMNS = [
    "epoch",
    "train_loss",
    "val_loss",
    "val_accuracy",
    "val_macro_f1",
    "lr",
    "seconds",
    # then validation F1 of each class, in the store's class order
    "val_f1_noise",
    "val_f1_sine",
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------------------- helpers


def sine_or_noise(n: int, seed: int = 0) -> ExampleStore:
    """``n`` one-channel windows alternating white noise (class 0) and a noisy sine (1)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    t = np.arange(W)
    x = rng.normal(size=(n, 1, W)).astype(np.float32)
    for i in np.flatnonzero(y):
        freq, phase = rng.uniform(0.03, 0.08), rng.uniform(0, 2 * np.pi)
        x[i, 0] = np.sin(2 * np.pi * freq * t + phase) + 0.1 * x[i, 0]
    return store_of(x, y, ["noise", "sine"])


def store_of(x: np.ndarray, y: np.ndarray, classes: list[str]) -> ExampleStore:
    n = len(y)
    ids = np.array([f"r{i}" for i in range(n)])
    return ExampleStore(
        x=x.astype(np.float32),
        lengths=np.full(n, x.shape[-1], dtype=np.int64),
        y=np.asarray(y, dtype=np.int64),
        groups=ids,
        recording_ids=ids,
        starts=np.zeros(n, dtype=np.int64),
        classes=classes,
        label_ends=np.full(n, x.shape[-1], dtype=np.int64),
    )


def tiny_model(n_classes: int = 2, seed: int = 0) -> SignalNet:
    torch.manual_seed(seed)
    return SignalNet(model_config("tiny", 1, n_classes))


def meta_of(model: SignalNet, store: ExampleStore, **fields) -> CheckpointMeta:
    return meta_for(model.config, store.classes, W, W, training={"preset": "tiny"}, **fields)


def run_fit(store, train_idx, val_idx, run_dir: Path, model=None, **config):
    model = model if model is not None else tiny_model(len(store.classes))
    messages: list[str] = []
    result = fit(
        model,
        store,
        np.asarray(train_idx),
        np.asarray(val_idx),
        TrainConfig(**config),
        WINDOW_NORM,
        CPU,
        run_dir,
        meta_of(model, store),
        progress=False,
        echo=messages.append,
    )
    return model, result, messages


def read_history(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


# ------------------------------------------------------------------------------ schedule


def test_cosine_with_warmup_shape() -> None:
    total, warmup = 100, 10
    f = cosine_with_warmup(total, warmup)
    values = np.array([f(s) for s in range(total + 1)])
    assert values[0] == pytest.approx(0.1)
    assert np.all(np.diff(values[: warmup + 1]) >= 0)  # rises during warm-up
    assert values[warmup - 1] == pytest.approx(1.0) and values[warmup] == pytest.approx(1.0)
    assert values.max() == pytest.approx(1.0)
    assert np.all(np.diff(values[warmup:]) <= 1e-12)  # then only decays
    assert f(warmup + (total - warmup) // 2) == pytest.approx(0.01 + 0.99 * 0.5)
    assert values[-1] == pytest.approx(0.01)
    assert f(total + 50) == pytest.approx(0.01)  # stays at the floor


def test_cosine_without_warmup_starts_at_peak() -> None:
    f = cosine_with_warmup(10, 0)
    assert f(0) == pytest.approx(1.0)
    assert f(10) == pytest.approx(0.01)


# --------------------------------------------------------------------------- convergence


@pytest.fixture(scope="module")
def separable_run(tmp_path_factory):
    store = sine_or_noise(60)
    run_dir = tmp_path_factory.mktemp("run")
    epochs = 6
    model, result, messages = run_fit(
        store, np.arange(48), np.arange(48, 60), run_dir, epochs=epochs, batch_size=8, lr=3e-3
    )
    return store, run_dir, model, result, messages, epochs


def test_fit_learns_separable_problem(separable_run) -> None:
    store, _, _, result, _, _ = separable_run
    assert result.best_metrics["accuracy"] >= 0.9
    assert max(row["val_accuracy"] for row in result.history) >= 0.9
    assert result.best_metrics["n"] == 12
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_fit_writes_history(separable_run) -> None:
    _, run_dir, _, result, messages, epochs = separable_run
    rows = read_history(run_dir / "history.tsv")
    assert list(rows[0]) == HISTORY_COLUMNS
    assert len(rows) == len(result.history) == epochs
    assert [int(r["epoch"]) for r in rows] == list(range(1, epochs + 1))
    for row, kept in zip(rows, result.history, strict=True):
        for column in HISTORY_COLUMNS[1:]:
            assert float(row[column]) == pytest.approx(kept[column])
    # The schedule ends at 1 % of the peak learning rate.
    assert result.history[-1]["lr"] == pytest.approx(3e-3 * 0.01)
    assert len(messages) == epochs and messages[0].startswith("epoch   1")
    assert sorted(p.name for p in run_dir.iterdir()) == ["best", "history.tsv", "last", "resume"]
    assert [p.name for p in (run_dir / "resume").iterdir()] == ["state.pt"]


def test_history_holds_each_class_f1_of_the_validated_model(separable_run) -> None:
    store, run_dir, _, result, _, epochs = separable_run
    rows = read_history(run_dir / "history.tsv")
    # The last epoch's columns are the per-class F1 of the last checkpoint's report...
    report = load_checkpoint(run_dir / "last")[1].metrics
    for name in store.classes:
        assert float(rows[-1][f"val_f1_{name}"]) == pytest.approx(report["per_class"][name]["f1"])
    # ...and every epoch's macro-F1 is their mean (two classes, both in the validation set).
    for row in rows:
        f1s = [float(row[f"val_f1_{name}"]) for name in store.classes]
        assert all(0.0 <= f <= 1.0 for f in f1s)
        assert float(row["val_macro_f1"]) == pytest.approx(sum(f1s) / 2)
    assert max(float(row["val_f1_sine"]) for row in rows) >= 0.9


def test_fit_writes_best_and_last_checkpoints(separable_run) -> None:
    store, run_dir, model, result, _, epochs = separable_run
    best, best_meta = load_checkpoint(run_dir / "best")
    last, last_meta = load_checkpoint(run_dir / "last")
    assert best_meta.training == {"preset": "tiny", "epoch": result.best_epoch}
    assert last_meta.training["epoch"] == epochs
    assert best_meta.metrics == result.best_metrics
    assert best_meta.classes == ("noise", "sine")
    # The best checkpoint reproduces its recorded validation accuracy.
    val = np.arange(48, 60)
    probs = predict_store(best, store, val, WINDOW_NORM, CPU)
    accuracy = float((probs.argmax(1) == store.y[val]).mean())
    assert accuracy == pytest.approx(best_meta.metrics["accuracy"])
    # The last checkpoint holds the model as training left it.
    for key, value in model.state_dict().items():
        assert torch.equal(last.state_dict()[key], value.cpu()), key
    best_f1 = max(row["val_macro_f1"] for row in result.history)
    assert result.history[result.best_epoch - 1]["val_macro_f1"] == best_f1
    assert result.best_metrics["macro_f1"] == pytest.approx(best_f1)


# --------------------------------------------------------------- schedule sized to the data


@pytest.mark.parametrize(
    ("n", "batch", "epochs", "small"),
    [
        (10_000, 64, 30, False),  # ample data: the plain defaults
        (1000, 64, 30, False),  # 16 steps an epoch: 30 epochs are 480 steps
        (512, 64, 38, False),  # 8 steps an epoch: 38 epochs for 300 steps
        (256, 32, 38, False),  # the first size past small data
        (255, 16, 30, True),  # an eighth of 255 is 31.9: batches of 16, 16 steps an epoch
        (54, 8, 43, True),  # ItalyPowerDemand's training part: 7 steps an epoch
        (40, 8, 60, True),  # GunPoint's: 5 steps an epoch
        (5, 8, 300, True),  # fewer windows than the smallest batch: one step an epoch
    ],
)
def test_schedule_is_sized_to_the_training_set(n, batch, epochs, small) -> None:
    sized = TrainConfig().sized_for(n)
    assert (sized.batch_size, sized.epochs) == (batch, epochs)
    steps = math.ceil(n / sized.batch_size) * sized.epochs
    assert steps >= config_module.MIN_STEPS
    if small:  # the small-data recipe: every epoch, the last kept, mixup
        assert (sized.patience, sized.select) == (epochs, False)
        assert sized.augment == ["time_warp", "noise", "mixup"]
    else:
        assert (sized.patience, sized.select) == (8, True)
        assert sized.augment == ["time_warp", "noise"]
    assert sized.ensemble == 1
    assert sized.sized_for(7) == sized  # once sized, a config stays as it is


def test_given_settings_are_kept_and_given_epochs_mean_no_small_data_recipe() -> None:
    given = TrainConfig(batch_size=32, epochs=5, patience=2, ensemble=2, select=False)
    given = given.sized_for(40)
    assert (given.batch_size, given.epochs, given.patience) == (32, 5, 2)
    assert (given.ensemble, given.select) == (2, False)
    assert TrainConfig(augment=[]).sized_for(40).augment == []  # none stays none
    # epochs chosen by the user: the ordinary defaults, even on 40 windows
    chosen = TrainConfig(epochs=10).sized_for(40)
    assert (chosen.batch_size, chosen.patience, chosen.select) == (8, 8, True)
    assert chosen.augment == ["time_warp", "noise"]
    # a given batch size sizes the epochs: 40 windows in batches of 20 are 2 steps an epoch
    assert TrainConfig(batch_size=20).sized_for(40).epochs == 150


# ------------------------------------------------------------------------------ ensembles


def test_each_network_of_an_ensemble_trains_as_it_would_alone(tmp_path: Path) -> None:
    """Members get their own loss, gradient and clipping on the same batches: without
    random draws during training (no dropout, augmentation or drop path), member 0 ends
    exactly where the same network trained alone ends."""
    store = sine_or_noise(24, seed=4)
    config = model_config("tiny", 1, 2, dropout=0.0)
    torch.manual_seed(0)
    ensemble = EnsembleClassifier(config, 3)
    alone = SignalNet(config)
    alone.load_state_dict(ensemble.members[0].state_dict())
    settings = dict(epochs=2, batch_size=8, augment=[], patience=5)
    meta = meta_of(alone, store, ensemble=3)
    _, result, _ = run_fit(store, range(16), range(16, 24), tmp_path / "ens", ensemble, **settings)
    run_fit(store, range(16), range(16, 24), tmp_path / "alone", alone, **settings)
    for (name, a), b in zip(
        ensemble.members[0].state_dict().items(), alone.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, msg=name)
    first, second = ensemble.members[0], ensemble.members[1]
    assert not torch.allclose(first.head.weight, second.head.weight)
    assert result.history[-1]["train_loss"] > 0
    # the run records the ensemble it trained, and its checkpoint loads as one
    state = train_module.load_training_state(tmp_path / "ens")
    assert state["config"]["ensemble"] == 3
    save_checkpoint(tmp_path / "saved", ensemble, meta)
    loaded, _ = load_checkpoint(tmp_path / "saved")
    x = torch.from_numpy(store.x[:4])
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), ensemble.eval()(x))


# ------------------------------------------------------------------------ early stopping


def scripted_validation(monkeypatch, probabilities: list[list[float]]) -> None:
    """Make every validation window get ``probabilities[epoch - 1]`` at that epoch, so the
    validation macro-F1 and loss follow a script instead of the training."""
    epochs = iter(probabilities)

    def predict(model, store, indices, normalization, device, batch_size=256, kernel_logits=None):
        return np.tile(np.asarray(next(epochs), dtype=np.float32), (len(indices), 1))

    monkeypatch.setattr(train_module, "predict_store", predict)


@pytest.mark.parametrize("patience", [1, 2])
def test_early_stopping_when_validation_cannot_improve(
    tmp_path: Path, monkeypatch, patience: int
) -> None:
    store = sine_or_noise(24, seed=1)
    scripted_validation(monkeypatch, [[0.8, 0.2]] * 6)  # the same prediction every epoch
    _, result, messages = run_fit(
        store,
        np.arange(16),
        np.arange(16, 24),
        tmp_path,
        epochs=6,
        batch_size=8,
        patience=patience,
        augment=[],
    )
    assert len(result.history) == patience + 1 < 6
    assert result.best_epoch == 1
    losses = [row["val_loss"] for row in result.history]
    assert losses == pytest.approx([losses[0]] * (patience + 1))
    assert messages[-1] == (
        "early stop: no better validation macro-F1 (nor, at equal macro-F1, lower loss) "
        f"for {patience} epochs"
    )
    assert len(read_history(tmp_path / "history.tsv")) == patience + 1
    assert load_checkpoint(tmp_path / "best")[1].training["epoch"] == 1
    assert load_checkpoint(tmp_path / "last")[1].training["epoch"] == patience + 1


def test_equal_macro_f1_goes_to_the_lower_validation_loss(tmp_path: Path, monkeypatch) -> None:
    """On a small validation set macro-F1 soon stops changing; among epochs with the best
    macro-F1 the best checkpoint is the one whose validation loss is lowest, and such an
    epoch counts as progress for early stopping."""
    store = sine_or_noise(24, seed=1)
    assert list(store.y[16:24]) == [0, 1] * 4  # one prediction for all: macro-F1 stays put
    # With balanced labels the loss grows with the distance of p from 0.5: epoch 2 is worse
    # than 1, epoch 3 the best, 4 and 5 worse again.
    scripted_validation(monkeypatch, [[p, 1 - p] for p in (0.8, 0.85, 0.6, 0.7, 0.75)])
    _, result, _ = run_fit(
        store,
        np.arange(16),
        np.arange(16, 24),
        tmp_path,
        epochs=5,
        batch_size=8,
        patience=2,
        augment=[],
    )
    f1s = [row["val_macro_f1"] for row in result.history]
    losses = [row["val_loss"] for row in result.history]
    assert f1s == pytest.approx([f1s[0]] * 5)
    assert np.argsort(losses).tolist() == [2, 3, 4, 0, 1]
    # Without the tie-break the run would stop at epoch 3 (1 + patience), keeping epoch 1.
    assert len(result.history) == 5
    assert result.best_epoch == 3
    assert load_checkpoint(tmp_path / "best")[1].training["epoch"] == 3


def test_without_selection_best_holds_the_final_epoch(tmp_path: Path, monkeypatch) -> None:
    store = sine_or_noise(24, seed=1)
    # epoch 2 is best by every measure, yet best/ keeps the last: no selection, no stop
    scripted_validation(monkeypatch, [[p, 1 - p] for p in (0.8, 0.5, 0.9, 0.95)])
    _, result, messages = run_fit(
        store,
        np.arange(16),
        np.arange(16, 24),
        tmp_path,
        epochs=4,
        batch_size=8,
        patience=1,
        augment=[],
        select=False,
    )
    assert len(result.history) == 4
    assert result.best_epoch == 4
    assert load_checkpoint(tmp_path / "best")[1].training["epoch"] == 4
    epoch_lines = [line for line in messages if line.startswith("epoch")]
    assert len(epoch_lines) == 4 and all(line.endswith("*") for line in epoch_lines)


# ----------------------------------------------------------------------- reproducibility


def test_same_seed_same_run_different_seed_different_weights(tmp_path: Path) -> None:
    store = sine_or_noise(24, seed=2)
    train, val = np.arange(16), np.arange(16, 24)

    def once(name: str, seed: int):
        model, result, _ = run_fit(
            store,
            train,
            val,
            tmp_path / name,
            model=tiny_model(seed=7),
            epochs=2,
            batch_size=8,
            seed=seed,
        )
        history = [{k: v for k, v in row.items() if k != "seconds"} for row in result.history]
        return model.state_dict(), history

    weights_a, history_a = once("a", 3)
    weights_b, history_b = once("b", 3)
    weights_c, _ = once("c", 4)
    assert history_a == history_b
    for key in weights_a:
        assert torch.equal(weights_a[key], weights_b[key]), key
    assert any(
        not torch.equal(weights_a[key], weights_c[key])
        for key in weights_a
        if weights_a[key].is_floating_point()
    )


# --------------------------------------------------------------------------- class weights


class _Stop(Exception):
    pass


def built_loss(monkeypatch, store: ExampleStore, train_idx: np.ndarray, tmp_path: Path, **cfg):
    """The loss module ``fit`` builds for this training set (training is then cut short)."""
    built = {}
    real = train_module.build_loss

    def capture(*args, **kwargs):
        built["loss"] = real(*args, **kwargs)
        raise _Stop

    monkeypatch.setattr(train_module, "build_loss", capture)
    with pytest.raises(_Stop):
        run_fit(store, train_idx, train_idx, tmp_path, **cfg)
    return built["loss"]


def test_class_weights_are_balanced(monkeypatch, tmp_path: Path) -> None:
    y = np.array([0] * 12 + [1] * 4 + [2] * 5)  # class 2 only outside the training set
    store = store_of(np.zeros((len(y), 1, W)), y, ["a", "b", "c"])
    train_idx = np.arange(16)
    loss = built_loss(monkeypatch, store, train_idx, tmp_path, label_smoothing=0.05)
    assert isinstance(loss, torch.nn.CrossEntropyLoss)
    # "balanced": n_samples / (n_present_classes * count); an absent class keeps weight 1.
    expected = [16 / (2 * 12), 16 / (2 * 4), 1.0]
    np.testing.assert_allclose(loss.weight.numpy(), expected, rtol=1e-6)
    assert loss.label_smoothing == pytest.approx(0.05)


def test_class_weights_can_be_turned_off(monkeypatch, tmp_path: Path) -> None:
    store = store_of(np.zeros((10, 1, W)), np.array([0] * 8 + [1] * 2), ["a", "b"])
    loss = built_loss(
        monkeypatch, store, np.arange(10), tmp_path, class_weights=False, loss="focal"
    )
    assert loss.weight is None
    assert loss.gamma == pytest.approx(2.0)


# ------------------------------------------------------------------------------- metrics


Y_TRUE = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
Y_PRED = np.array([0, 0, 1, 2, 1, 1, 2, 2, 0, 2])


def test_classification_report_by_hand() -> None:
    report = classification_report(Y_TRUE, Y_PRED, ["a", "b", "c"])
    assert report["n"] == 10
    assert report["confusion"] == [[2, 1, 1], [0, 2, 0], [1, 0, 3]]
    assert report["accuracy"] == pytest.approx(0.7)
    assert report["balanced_accuracy"] == pytest.approx((2 / 4 + 2 / 2 + 3 / 4) / 3)
    f1 = {"a": 4 / 7, "b": 0.8, "c": 0.75}  # from precision 2/3, 2/3, 3/4; recall 1/2, 1, 3/4
    assert report["macro_f1"] == pytest.approx(sum(f1.values()) / 3)
    assert report["majority_class"] == "a"  # tie between a and c: the first wins
    assert report["majority_rate"] == pytest.approx(0.4)
    assert report["classes"] == ["a", "b", "c"]
    expected = {
        "a": (2 / 3, 1 / 2, 4),
        "b": (2 / 3, 1.0, 2),
        "c": (3 / 4, 3 / 4, 4),
    }
    for name, (precision, recall, support) in expected.items():
        row = report["per_class"][name]
        assert row["precision"] == pytest.approx(precision)
        assert row["recall"] == pytest.approx(recall)
        assert row["f1"] == pytest.approx(f1[name])
        assert row["support"] == support


def test_macro_f1_counts_absent_classes_as_zero() -> None:
    three = (4 / 7 + 0.8 + 0.75) / 3
    assert macro_f1(Y_TRUE, Y_PRED, 3) == pytest.approx(three)
    assert macro_f1(Y_TRUE, Y_PRED, 4) == pytest.approx(three * 3 / 4)
    report = classification_report(Y_TRUE, Y_PRED, ["a", "b", "c", "d"])
    assert report["per_class"]["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert report["confusion"][3] == [0, 0, 0, 0]
    assert math.isclose(report["majority_rate"], 0.4)
