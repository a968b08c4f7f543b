"""Weight EMA, the class-balanced sampler, mixing augmentations in the training step, and
resuming an interrupted run (``fit(state=...)`` and ``biosig train --resume``) to the end an
uninterrupted run reaches."""

from __future__ import annotations

import csv
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from checkpoint_helpers import meta_for
from safetensors.numpy import load_file
from torch import nn

import biosig.training.trainer as train_module
from biosig.checkpoint import load_checkpoint
from biosig.cli.common import Options
from biosig.cli.train import train as train_command
from biosig.data.normalize import NormalizationSpec
from biosig.data.store import ExampleStore
from biosig.errors import BiosigError
from biosig.nn.augment import build_augmentation
from biosig.nn.model import SignalNet, model_config
from biosig.training.trainer import (
    RESUME_DIR,
    STATE_FILE,
    TrainConfig,
    WeightEMA,
    balanced_probabilities,
    epoch_order,
    fit,
    load_training_state,
    predict_store,
)

W = 64
CPU = torch.device("cpu")
NORM = NormalizationSpec("window")
#: EMA, the balanced sampler, augmentation and dropout all draw on the saved random states.
RESUMED = {"epochs": 2, "batch_size": 8, "lr": 3e-3, "ema": 0.9, "balance": True, "seed": 5}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------------------- helpers


def make_store(y: np.ndarray, seed: int = 0) -> ExampleStore:
    """One-channel windows: white noise for class 0, a noisy sine for the others."""
    rng = np.random.default_rng(seed)
    y = np.asarray(y, dtype=np.int64)
    n = len(y)
    t = np.arange(W)
    x = rng.normal(size=(n, 1, W)).astype(np.float32)
    for i in np.flatnonzero(y):
        x[i, 0] = np.sin(2 * np.pi * rng.uniform(0.05, 0.15) * t) + 0.1 * x[i, 0]
    ids = np.array([f"r{i}" for i in range(n)])
    return ExampleStore(
        x=x,
        lengths=np.full(n, W, dtype=np.int64),
        y=y,
        groups=ids,
        recording_ids=ids,
        starts=np.zeros(n, dtype=np.int64),
        classes=[f"c{k}" for k in range(int(y.max()) + 1)],
        label_ends=np.full(n, W, dtype=np.int64),
    )


#: 16 training and 8 validation windows, 3:1 imbalanced in training.
STORE = make_store(np.array([0, 0, 0, 1] * 4 + [0, 1] * 4))
TRAIN, VAL = np.arange(16), np.arange(16, 24)


class Interrupted(Exception):
    """Stands in for a kill: raised part-way through a run."""


def fit_run(run_dir: Path, *, model_seed=0, state=None, echo=None, store=STORE, **config):
    torch.manual_seed(model_seed)
    model = SignalNet(model_config("tiny", 1, len(store.classes)))
    meta = meta_for(model.config, store.classes, training={})
    result = fit(
        model,
        store,
        TRAIN if store is STORE else np.arange(len(store) - 4),
        VAL if store is STORE else np.arange(len(store) - 4, len(store)),
        TrainConfig(**config),
        NORM,
        CPU,
        run_dir,
        meta,
        progress=False,
        echo=echo or (lambda _: None),
        state=state,
    )
    return model, result


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal within float32 rounding (torch.testing's first call costs seconds to import)."""
    return a.shape == b.shape and torch.allclose(a, b, rtol=1e-6, atol=1e-6)


def stop_at_epoch(epoch: int):
    """An ``echo`` that interrupts the run at the end of ``epoch``, after its history row is
    written but before its checkpoints and state are: the state still holds the epoch
    before."""

    def echo(message: str) -> None:
        if message.startswith(f"epoch {epoch:>3}"):
            raise Interrupted

    return echo


def without_seconds(history) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def history_csv(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "history.tsv", newline="", encoding="utf-8") as handle:
        return without_seconds(csv.DictReader(handle, delimiter="\t"))


def assert_same_files(a: Path, b: Path) -> None:
    for checkpoint in ("best", "last"):
        wa = load_file(a / checkpoint / "model.safetensors")
        wb = load_file(b / checkpoint / "model.safetensors")
        assert wa.keys() == wb.keys()
        for key in wa:
            np.testing.assert_array_equal(wa[key], wb[key], err_msg=f"{checkpoint}: {key}")
        ma = json.loads((a / checkpoint / "biosig.json").read_text(encoding="utf-8"))
        mb = json.loads((b / checkpoint / "biosig.json").read_text(encoding="utf-8"))
        assert ma["metrics"] == mb["metrics"]
        assert ma["training"]["epoch"] == mb["training"]["epoch"]
    assert history_csv(a) == history_csv(b)


class Recording(nn.Module):
    """A loss that notes the targets it is given: ``seen["train"]`` in training steps
    (logits that need a gradient), ``seen["val"]`` in validation."""

    def __init__(self, loss: nn.Module, seen: dict) -> None:
        super().__init__()
        self.loss, self.seen = loss, seen

    def forward(self, logits, target):
        self.seen["train" if logits.requires_grad else "val"].append(target.detach().clone())
        return self.loss(logits, target)


def loss_recorder(monkeypatch) -> dict:
    """Make ``fit`` record its loss's targets; returns the record (and ``["loss"]``, the
    loss module ``build_loss`` built)."""
    seen: dict = {"train": [], "val": []}
    real = train_module.build_loss

    def build(*args, **kwargs):
        seen["loss"] = real(*args, **kwargs)
        return Recording(seen["loss"], seen)

    monkeypatch.setattr(train_module, "build_loss", build)
    return seen


# ------------------------------------------------------------------------------- EMA


def test_ema_warms_up_then_averages_with_its_decay_and_copies_buffers() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = WeightEMA(net, decay=0.5)
    assert ema.module is not net and not ema.module.training
    assert not any(p.requires_grad for p in ema.module.parameters())
    w0 = net[0].weight.detach().clone()

    with torch.no_grad():
        net[0].weight.add_(1.0)
    net.train()(torch.randn(4, 2))  # moves BatchNorm's running statistics
    assert ema.current_decay() == pytest.approx(0.1)  # (1 + 0) / (10 + 0)
    ema.update(net)
    assert close(ema.module[0].weight, w0 + 0.9)  # 0.1 * w0 + 0.9 * (w0 + 1)
    assert torch.equal(ema.module[1].running_mean, net[1].running_mean)  # copied, not averaged
    assert int(ema.module[1].num_batches_tracked) == 1

    with torch.no_grad():
        net[0].weight.add_(1.0)
    d = 2 / 11
    assert ema.current_decay() == pytest.approx(d)
    ema.update(net)
    assert close(ema.module[0].weight, d * (w0 + 0.9) + (1 - d) * (w0 + 2))
    ema.updates = 100
    assert ema.current_decay() == 0.5  # the warm-up ends at the decay asked for

    state = ema.state_dict()
    other = WeightEMA(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)), decay=0.5)
    other.load_state_dict(state)
    assert other.updates == 100
    assert torch.equal(other.module[0].weight, ema.module[0].weight)
    with pytest.raises(ValueError, match="decay"):
        WeightEMA(net, decay=1.0)


# -------------------------------------------------------------------------- sampler


def test_balanced_sampler_draws_a_nine_to_one_store_close_to_evenly() -> None:
    y = np.array([0] * 900 + [1] * 100)
    train_idx = np.arange(1000)
    p = balanced_probabilities(y[train_idx])
    assert p[:900].sum() == pytest.approx(0.5) and p[900:].sum() == pytest.approx(0.5)
    order = epoch_order(train_idx, np.random.default_rng(3), p)
    assert len(order) == 1000  # same epoch length, with replacement
    assert 0.45 <= y[order].mean() <= 0.55
    assert len(np.unique(order)) < 1000
    assert np.array_equal(order, epoch_order(train_idx, np.random.default_rng(3), p))
    # Off: a permutation, so the minority class stays at 10 %.
    plain = epoch_order(train_idx, np.random.default_rng(3))
    assert np.array_equal(np.sort(plain), train_idx)


@pytest.mark.parametrize("balance", [False, True])
def test_fit_balances_the_drawn_windows_and_then_drops_class_weights(
    tmp_path: Path, monkeypatch, balance: bool
) -> None:
    store = make_store(np.array([0] * 45 + [1] * 5 + [0, 1, 0, 1]))  # 9:1, then 4 to validate
    seen = loss_recorder(monkeypatch)
    fit_run(tmp_path, store=store, epochs=1, batch_size=25, balance=balance, augment=[])
    drawn = torch.cat(seen["train"])
    assert drawn.dtype == torch.long and len(drawn) == 50
    minority = int((drawn == 1).sum())
    if balance:
        assert 19 <= minority <= 31  # 25 expected; 10 % would be 5
        assert seen["loss"].weight is None  # class_weights=True, yet off
    else:
        assert minority == 5
        np.testing.assert_allclose(seen["loss"].weight.numpy(), [50 / 90, 50 / 10])


# --------------------------------------------------------------------------- mixing


class FakeMix:
    """The shape of a mixing ``Compose``: signal transforms, then ``mix``."""

    mixes = True

    def __init__(self) -> None:
        self.targets: list[torch.Tensor] = []

    def __call__(self, x, lengths, generator):
        return x

    def mix(self, x, lengths, targets, generator):
        self.targets.append(targets.clone())
        return 0.75 * x + 0.25 * x.flip(0), 0.75 * targets + 0.25 * targets.flip(0)


def test_a_mixing_augmentation_gets_one_hot_targets_and_the_loss_their_mix(
    tmp_path: Path, monkeypatch
) -> None:
    fake = FakeMix()
    monkeypatch.setattr(train_module, "build_augmentation", lambda names, p: fake)
    seen = loss_recorder(monkeypatch)
    _, result = fit_run(tmp_path, epochs=1, batch_size=8, augment=["anything"])
    assert len(fake.targets) == len(seen["train"]) == 2
    for one_hot, target in zip(fake.targets, seen["train"], strict=True):
        assert one_hot.dtype == torch.float32 and one_hot.shape == (8, 2)
        assert torch.equal(one_hot.sum(1), torch.ones(8))
        assert set(one_hot.unique().tolist()) <= {0.0, 1.0}
        assert close(target, 0.75 * one_hot + 0.25 * one_hot.flip(0))
    assert any((t.max(1).values < 1).any() for t in seen["train"])  # really mixed
    assert all(t.dtype == torch.long for t in seen["val"])  # validation scores indices
    assert np.isfinite(result.history[0]["train_loss"])


def test_mixup_from_build_augmentation_trains_on_soft_targets(tmp_path: Path, monkeypatch) -> None:
    try:
        augment = build_augmentation(["mixup"])
    except ValueError:
        pytest.skip("biosig.nn.augment has no 'mixup' yet")
    assert augment.mixes
    seen = loss_recorder(monkeypatch)
    _, result = fit_run(tmp_path, epochs=1, batch_size=8, augment=["mixup"], augment_p=1.0)
    for target in seen["train"]:
        assert target.is_floating_point() and target.shape == (8, 2)
        assert close(target.sum(1), torch.ones(8))
        assert ((target >= 0) & (target <= 1)).all()
    assert any((t.max(1).values < 1).any() for t in seen["train"])
    assert np.isfinite(result.history[0]["train_loss"])


# ---------------------------------------------------------------------------- resume


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    model, result = fit_run(run_dir, **RESUMED)
    return run_dir, model, result


def assert_same_run(run_dir: Path, model, result, reference) -> None:
    ref_dir, ref_model, ref_result = reference
    for key, value in ref_model.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert without_seconds(result.history) == without_seconds(ref_result.history)
    assert result.best_epoch == ref_result.best_epoch
    assert result.best_metrics == ref_result.best_metrics
    assert_same_files(run_dir, ref_dir)
    assert load_training_state(run_dir)["epoch"] == 2


def test_ema_weights_are_validated_and_saved(uninterrupted) -> None:
    run_dir, model, result = uninterrupted
    last, meta = load_checkpoint(run_dir / "last")
    trained = model.state_dict()
    saved = last.state_dict()
    assert any(not torch.equal(saved[k], v) for k, v in trained.items() if v.is_floating_point())
    # The recorded validation scores are the saved (averaged) weights' own.
    probs = predict_store(last, STORE, VAL, NORM, CPU)
    assert float((probs.argmax(1) == STORE.y[VAL]).mean()) == pytest.approx(
        meta.metrics["accuracy"]
    )
    assert result.history[-1]["val_accuracy"] == pytest.approx(meta.metrics["accuracy"])
    state = load_training_state(run_dir)
    assert state["ema"]["updates"] == 2 * 2  # one per optimizer step: 2 epochs of 2 batches
    for key, value in state["model"].items():
        assert torch.equal(value, trained[key]), key  # the state keeps the trained weights


def test_resume_from_an_epoch_cut_short_ends_where_the_uninterrupted_run_does(
    tmp_path: Path, uninterrupted
) -> None:
    with pytest.raises(Interrupted):
        fit_run(tmp_path, echo=stop_at_epoch(2), **RESUMED)
    assert len(history_csv(tmp_path)) == 2  # written before the interruption...
    state = load_training_state(tmp_path)
    assert state["epoch"] == 1 and len(state["history"]) == 1  # ...the state was not
    model, result = fit_run(tmp_path, model_seed=99, state=state, **RESUMED)
    assert_same_run(tmp_path, model, result, uninterrupted)


def test_resume_after_the_state_was_saved_ends_where_the_uninterrupted_run_does(
    tmp_path: Path, uninterrupted, monkeypatch
) -> None:
    real = train_module.save_training_state

    def save_then_stop(run_dir, state):
        real(run_dir, state)
        if state["epoch"] == 1:
            raise Interrupted

    monkeypatch.setattr(train_module, "save_training_state", save_then_stop)
    with pytest.raises(Interrupted):
        fit_run(tmp_path, **RESUMED)
    monkeypatch.setattr(train_module, "save_training_state", real)
    state = load_training_state(tmp_path)
    assert state["epoch"] == 1 and state["ema"]["updates"] == 2
    messages: list[str] = []
    model, result = fit_run(tmp_path, model_seed=99, state=state, echo=messages.append, **RESUMED)
    assert [m[:9] for m in messages] == ["epoch   2"]  # only the epoch left is trained
    assert_same_run(tmp_path, model, result, uninterrupted)


def test_resume_with_more_epochs_continues_the_history(tmp_path: Path, uninterrupted) -> None:
    ref_dir, _, ref_result = uninterrupted
    shutil.copytree(ref_dir, tmp_path, dirs_exist_ok=True)
    state = load_training_state(tmp_path)
    _, result = fit_run(tmp_path, state=state, **{**RESUMED, "epochs": 3})
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    assert without_seconds(result.history[:2]) == without_seconds(ref_result.history)
    # The schedule is stretched over the new total and ends at its floor again.
    assert result.history[2]["lr"] == pytest.approx(RESUMED["lr"] * 0.01)
    assert load_training_state(tmp_path)["epoch"] == 3
    assert len(history_csv(tmp_path)) == 3


def test_resume_refuses_other_settings_fewer_epochs_and_other_data(
    tmp_path: Path, uninterrupted
) -> None:
    state = load_training_state(uninterrupted[0])
    with pytest.raises(BiosigError, match=r"other settings \(ema, lr\)"):
        fit_run(tmp_path, state=state, **{**RESUMED, "lr": 1e-2, "ema": 0.5})
    with pytest.raises(BiosigError, match="can only raise that, not lower it to 1"):
        fit_run(tmp_path, state=state, **{**RESUMED, "epochs": 1})
    other = make_store(np.array([0, 1] * 12))
    with pytest.raises(BiosigError, match="training data differ"):
        fit_run(tmp_path, state=state, store=other, **RESUMED)
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_a_state_saved_before_ensembles_and_selection_existed_still_resumes(
    tmp_path: Path, uninterrupted
) -> None:
    ref_dir, _, ref_result = uninterrupted
    shutil.copytree(ref_dir, tmp_path, dirs_exist_ok=True)
    state = load_training_state(tmp_path)
    for key in ("ensemble", "select"):
        del state["config"][key]  # as an earlier biosig wrote it
    del state["best"]["loss"]
    _, result = fit_run(tmp_path, state=state, **{**RESUMED, "epochs": 3})
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    assert without_seconds(result.history[:2]) == without_seconds(ref_result.history)


def test_random_states_round_trip_through_the_state_file(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(1)
    shuffle = np.random.default_rng(2)
    random.seed(3)
    np.random.seed(4)
    torch.manual_seed(5)
    for draw in (random.random, np.random.rand, lambda: torch.rand(1), shuffle.random):
        draw()
    saved = train_module._rng_state(generator, shuffle)
    train_module.save_training_state(tmp_path, {"rng": saved})
    loaded = torch.load(tmp_path / RESUME_DIR / STATE_FILE, weights_only=True)["rng"]

    def draws():
        return (
            random.random(),
            float(np.random.rand()),
            float(torch.rand(1)),
            float(torch.rand(1, generator=generator)),
            float(shuffle.random()),
        )

    expected = draws()
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    generator.manual_seed(0)
    shuffle = np.random.default_rng(0)
    train_module._set_rng_state(loaded, generator, shuffle)
    assert draws() == expected


def test_a_corrupt_or_foreign_state_file_is_a_biosig_error(tmp_path: Path, uninterrupted) -> None:
    assert load_training_state(tmp_path) is None  # no epoch finished: nothing to resume from
    path = tmp_path / RESUME_DIR / STATE_FILE
    path.parent.mkdir()
    good = (uninterrupted[0] / RESUME_DIR / STATE_FILE).read_bytes()
    cases = {
        b"not a state": "cannot read the training state",
        good[: len(good) // 2]: "cannot read the training state",  # truncated
    }
    for content, message in cases.items():
        path.write_bytes(content)
        with pytest.raises(BiosigError, match=message) as caught:
            load_training_state(tmp_path)
        assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    torch.save({"format": 99}, path)
    with pytest.raises(BiosigError, match="not a biosig training state"):
        load_training_state(tmp_path)
    torch.save({"format": 1, "epoch": 1}, path)
    with pytest.raises(BiosigError, match="damaged training state"):
        load_training_state(tmp_path)
    torch.save({"format": 1, "payload": Interrupted()}, path)  # arbitrary objects: refused
    with pytest.raises(BiosigError, match="cannot read the training state"):
        load_training_state(tmp_path)


# ------------------------------------------------------------------------- the CLI

#: The first half of each recording (one window) keeps these runs short; the span is a
#: setting the resumed run must keep, too.
SMALL = ("--preset", "tiny", "--window", "128", "--hop", "64", "--epochs", "2", "--span", "0:0.5")


def cli_train(data: Path, *extra: str | Path) -> list[str | Path]:
    signals, labels = data / "signals.npy", data / "labels.npy"
    return ["train", "--plugin", "numpy", "--input", signals, "--labels", labels, *SMALL, *extra]


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory, synthetic_npy: Path, run_cli):
    """In one directory: ``full``, a two-epoch run with --ema and --balance; and the same run
    without --out (``runs/numpy/<stamp>``) interrupted in its second epoch."""
    work = tmp_path_factory.mktemp("cli")
    flags = ("--ema", "0.9", "--balance", "--seed", "4")
    full = run_cli(*cli_train(synthetic_npy, *flags, "--out", "full"), cwd=work)
    assert full.code == 0, full.err
    real = train_module.write_history

    def interrupt(path, history):
        real(path, history)
        if len(history) == 2:
            raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_module, "write_history", interrupt)
        cut = run_cli(*cli_train(synthetic_npy, *flags), cwd=work)
    assert cut.code == 130, cut.err
    (run,) = (work / "runs" / "numpy").iterdir()  # kept, and no latest link yet
    return work, run


def test_cli_resume_ends_where_the_uninterrupted_run_does(cli_runs, run_cli) -> None:
    work, run = cli_runs
    assert load_training_state(run)["epoch"] == 1
    resumed = run_cli("train", "--resume", run, cwd=work)
    assert resumed.code == 0, resumed.err
    assert f"resuming {run} after epoch 1 of 2" in resumed.out
    assert_same_files(run, work / "full")
    meta = json.loads((run / "best" / "biosig.json").read_text(encoding="utf-8"))
    assert (meta["training"]["ema"], meta["training"]["balance"]) == (0.9, True)
    # the scores the normalisation was chosen by, before the interruption, are kept in the
    # checkpoint the resumed process wrote
    full_meta = json.loads((work / "full" / "last" / "biosig.json").read_text(encoding="utf-8"))
    last_meta = json.loads((run / "last" / "biosig.json").read_text(encoding="utf-8"))
    scores = full_meta["training"]["normalization_scores"]
    assert scores and last_meta["training"]["normalization_scores"] == scores
    assert (work / "runs" / "numpy" / "latest").resolve() == run.resolve()

    # A finished run is left as it is.
    before = (run / "last" / "model.safetensors").read_bytes()
    again = run_cli("train", "--resume", run, cwd=work)
    assert again.code == 0 and "finished all 2 epochs: nothing to resume" in again.out
    assert (run / "last" / "model.safetensors").read_bytes() == before

    # Raising --epochs trains on, and the raised total is the run's from then on.
    longer = run_cli("train", "--resume", run, "--epochs", "3", cwd=work)
    assert longer.code == 0, longer.err
    assert [row["epoch"] for row in history_csv(run)] == ["1", "2", "3"]
    assert history_csv(run)[:2] == history_csv(work / "full")
    settings = json.loads((run / RESUME_DIR / "settings.json").read_text(encoding="utf-8"))
    assert settings["config"]["epochs"] == 3
    assert json.loads((run / "last" / "biosig.json").read_text())["training"]["epochs"] == 3


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--resume", "absent"], ["--resume absent: no such run directory"]),
        (["--resume", "empty"], ["--resume empty: not a biosig run that can be resumed"]),
        (["--resume", "bad_state"], ["state.pt: cannot read the training state"]),
        (["--resume", "bad_settings"], ["settings.json: unreadable"]),
        (["--resume", "full", "--lr", "0.1"], ["--lr cannot be given with --resume"]),
        (["--resume", "full", "--no-balance"], ["--no-balance cannot be given with --resume"]),
        (["--resume", "full", "--pipeline", "p.toml"], ["--pipeline cannot be given"]),
        (["--resume", "full", "more.npy"], ["more.npy cannot be given with --resume"]),
        (["--resume", "full", "--epochs", "1"], ["--epochs 1", "can only be raised"]),
        (["--ema", "1"], ["--ema", "1"]),
        (["--pipeline", "resume.toml"], ["resume.toml: resume: a run is resumed from the"]),
    ],
    ids=[
        "missing",
        "not-a-run",
        "corrupt-state",
        "corrupt-settings",
        "changed-flag",
        "changed-bool-flag",
        "pipeline",
        "more-inputs",
        "fewer-epochs",
        "ema-out-of-range",
        "resume-in-pipeline",
    ],
)
def test_cli_resume_errors_are_one_line(
    cli_runs, tmp_path: Path, run_cli, extra: list[str], fragments: list[str]
) -> None:
    work, _ = cli_runs
    shutil.copytree(work / "full", tmp_path / "full")
    (tmp_path / "empty").mkdir()
    for name in ("bad_state", "bad_settings"):
        shutil.copytree(work / "full", tmp_path / name)
    (tmp_path / "bad_state" / RESUME_DIR / STATE_FILE).write_bytes(b"\x00garbage")
    (tmp_path / "bad_settings" / RESUME_DIR / "settings.json").write_text("{", encoding="utf-8")
    (tmp_path / "resume.toml").write_text('resume = "full"\n', encoding="utf-8")
    before = (tmp_path / "full" / "last" / "model.safetensors").read_bytes()
    result = run_cli("train", *extra, cwd=tmp_path)
    assert result.code == 2, result.err
    assert len(result.err_lines) == 1 and result.err_lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in result.err_lines[0]
    assert (tmp_path / "full" / "last" / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == [
        "best",
        "confusion.png",
        "history.tsv",
        "last",
        "learning_curves.png",
        "resume",
    ]


def test_ema_and_balance_from_a_pipeline_and_flags(tmp_path: Path) -> None:
    pipeline = tmp_path / "task.toml"
    pipeline.write_text("ema = 0.99\nbalance = true\n", encoding="utf-8")
    opts = Options(train_command.make_context("train", ["--pipeline", str(pipeline)]), pipeline)
    assert (opts.get("ema"), opts.get("balance")) == (0.99, True)
    flags = ["--pipeline", str(pipeline), "--ema", "0.5", "--no-balance"]
    opts = Options(train_command.make_context("train", flags), pipeline)
    assert (opts.get("ema"), opts.get("balance")) == (0.5, False)
    defaults = Options(train_command.make_context("train", []), None)
    assert (defaults.get("ema"), defaults.get("balance")) == (0.0, False)
    pipeline.write_text("ema = 1.0\n", encoding="utf-8")
    with pytest.raises(BiosigError, match="ema"):
        Options(train_command.make_context("train", ["--pipeline", str(pipeline)]), pipeline)


def test_settings_saved_before_the_random_kernel_branch_resume_without_it(cli_runs) -> None:
    from biosig.training.runs import read_train_settings

    work, _ = cli_runs
    old = work / "old-run"
    shutil.copytree(work / "full", old)
    path = old / RESUME_DIR / "settings.json"
    settings = json.loads(path.read_text(encoding="utf-8"))
    assert settings["kernel_features"] in (0, 9996)  # recorded, resolved
    del settings["kernel_features"]  # as an earlier biosig wrote it
    path.write_text(json.dumps(settings), encoding="utf-8")
    request, _ = read_train_settings(old)
    assert request.kernel_features == 0


def test_a_state_without_the_kept_epoch_is_a_damaged_state(tmp_path: Path, uninterrupted) -> None:
    state = load_training_state(uninterrupted[0])
    del state["best"]  # what the classification objective keeps between epochs
    with pytest.raises(BiosigError, match=r"state.pt: damaged training state \(KeyError\('best'\)"):
        fit_run(tmp_path, state=state, **{**RESUMED, "epochs": RESUMED["epochs"] + 1})
