"""How `biosig train` chooses its model: fitted to the window and the data size, or taken
from a pretrained backbone with `--init`; and the report figures every run gets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from biosig.nn.model import model_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def train(run_cli, synthetic_npy: Path, out: Path, *extra: str | Path):
    return run_cli(
        "train", "--plugin", "numpy",
        "--input", synthetic_npy / "signals.npy", "--labels", synthetic_npy / "labels.npy",
        "--preset", "tiny", "--epochs", "1", "--out", out, "--device", "cpu", *extra,
    )  # fmt: skip


def meta(run: Path) -> dict:
    return json.loads((run / "best" / "biosig.json").read_text())


def test_a_short_window_keeps_a_token_per_sample_and_few_windows_a_narrow_model(
    tmp_path: Path, synthetic_npy: Path, run_cli
) -> None:
    # two 24-sample windows per recording (at 0 and at the end): fewer than 64 to train on
    fitted = train(run_cli, synthetic_npy, tmp_path / "fitted", "--window", "24", "--hop", "240")
    assert fitted.code == 0, fitted.err
    model = meta(tmp_path / "fitted")["model"]
    assert model["stage_strides"] == [1, 1, 1]  # 24 samples: 24 tokens, not 3
    preset = model_config("tiny", 1, 3)
    assert meta(tmp_path / "fitted")["training"]["n_train_windows"] < 64
    assert model["stage_channels"] == [16, 32, 32, 32]  # no stage wider than 32
    assert model["model_dim"] == 32 < preset.model_dim

    plain = train(
        run_cli, synthetic_npy, tmp_path / "plain", "--window", "24", "--hop", "240",
        "--no-fit-model",
    )  # fmt: skip
    assert plain.code == 0, plain.err
    model = meta(tmp_path / "plain")["model"]
    assert model["stage_strides"] == [2, 2, 2]
    assert model["stage_channels"] == list(preset.stage_channels)


def test_every_run_draws_its_learning_curves_and_confusion(
    tmp_path: Path, synthetic_npy: Path, run_cli
) -> None:
    result = train(run_cli, synthetic_npy, tmp_path / "run", "--window", "128", "--hop", "64")
    assert result.code == 0, result.err
    for name in ("learning_curves.png", "confusion.png"):
        assert (tmp_path / "run" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_init_fine_tunes_a_pretrained_backbone(tmp_path: Path, synthetic_npy: Path, run_cli):
    pre = run_cli(
        "pretrain", "--plugin", "numpy", "--input", synthetic_npy / "signals.npy",
        "--out", tmp_path / "pre", "--preset", "tiny", "--window", "128", "--hop", "64",
        "--epochs", "1", "--device", "cpu",
    )  # fmt: skip
    assert pre.code == 0, pre.err
    result = train(
        run_cli, synthetic_npy, tmp_path / "tuned", "--init", tmp_path / "pre", "--ensemble", "2"
    )
    assert result.code == 0, result.err
    assert "backbone initialised from" in result.out
    info = meta(tmp_path / "tuned")
    pretrained = json.loads((tmp_path / "pre" / "pretrained" / "biosig.json").read_text())
    # the backbone's window and architecture, a classifier head for the three classes
    assert info["window"] == 128 and info["hop"] == 64
    assert info["training"]["init"].endswith("pretrained")
    for key in ("stage_channels", "stage_strides", "model_dim", "n_layers"):
        assert info["model"][key] == pretrained["model"][key]
    assert info["model"]["n_classes"] == 3
    # one epoch of fine-tuning moves the weights away from the pretrained ones, but they
    # started there: the stem's weights are far closer to them than a fresh init is
    # every network of an ensemble starts from the backbone
    assert info["ensemble"] == 2
    tuned = load_file(str(tmp_path / "tuned" / "best" / "model.safetensors"))
    start = load_file(str(tmp_path / "pre" / "pretrained" / "model.safetensors"))
    key = "stem.conv.weight"
    for member in range(2):
        moved = np.abs(tuned[f"members.{member}.{key}"] - start[f"backbone.{key}"]).mean()
        assert moved < 0.5 * np.abs(start[f"backbone.{key}"]).mean()


def test_init_with_a_missing_backbone_is_one_line(tmp_path: Path, synthetic_npy: Path, run_cli):
    result = train(run_cli, synthetic_npy, tmp_path / "x", "--init", tmp_path / "nowhere")
    assert result.code == 2
    assert result.err_lines == [f"error: {tmp_path / 'nowhere'}: model not found"]


def test_normalize_chooses_training_set_statistics(tmp_path: Path, synthetic_npy: Path, run_cli):
    result = train(
        run_cli, synthetic_npy, tmp_path / "run", "--window", "128", "--hop", "128",
        "--normalize", "dataset",
    )  # fmt: skip
    assert result.code == 0, result.err
    normalization = meta(tmp_path / "run")["normalization"]
    assert normalization["mode"] == "dataset"
    signals = np.load(synthetic_npy / "signals.npy")
    # per-channel statistics of training windows: close to the whole set's
    assert abs(normalization["mean"][0] - signals.mean()) < 0.5 * signals.std()


def test_batch_size_is_sized_to_the_data_and_recorded_with_drop_path(
    tmp_path: Path, synthetic_npy: Path, run_cli
) -> None:
    # 30 whole 256-sample recordings: about 24 to train on, so batches of 8, not 64
    run = tmp_path / "run"
    result = train(
        run_cli, synthetic_npy, run, "--window", "256", "--hop", "256", "--epochs", "2",
        "--drop-path", "0.2", "--ensemble", "3",
    )  # fmt: skip
    assert result.code == 0, result.err
    training = meta(run)["training"]
    assert training["n_train_windows"] < 64
    assert (training["batch_size"], training["epochs"], training["patience"]) == (8, 2, 8)
    settings = json.loads((run / "resume" / "settings.json").read_text())
    assert settings["config"]["batch_size"] == 8  # --resume repeats the sized schedule
    assert settings["drop_path"] == 0.2
    assert meta(run)["model"]["drop_path"] == 0.2
    # an ensemble of three networks, which evaluate reads as one model
    assert meta(run)["ensemble"] == settings["config"]["ensemble"] == 3
    assert "an ensemble of 3 networks" in result.out
    evaluated = run_cli(
        "evaluate", "--model", run, "--input", synthetic_npy / "signals.npy",
        "--labels", synthetic_npy / "labels.npy", "--json", "--device", "cpu",
    )  # fmt: skip
    assert evaluated.code == 0, evaluated.err
    assert json.loads(evaluated.out)["n"] == 30


def _short_series(directory: Path, values: np.ndarray) -> tuple[Path, Path]:
    """``values`` ``[N, L]`` as the numpy plugin's signals, labelled a, b, a, b …"""
    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / "x.npy", values.astype(np.float32))
    np.save(directory / "y.npy", np.array(["a", "b"] * (len(values) // 2)))
    return directory / "x.npy", directory / "y.npy"


def test_short_series_are_one_window_each_and_the_recipe_holds_none_out(
    tmp_path: Path, run_cli
) -> None:
    # 40 series of 60 samples: far shorter than the numpy plugin's 1024-sample window
    signals, labels = _short_series(tmp_path, np.random.default_rng(0).standard_normal((40, 60)))
    result = run_cli(
        "train", "--plugin", "numpy", "--input", signals, "--labels", labels,
        "--preset", "tiny", "--epochs", "1", "--val-fraction", "0", "--out", tmp_path / "r",
    )  # fmt: skip
    assert result.code == 0, result.err
    info = meta(tmp_path / "r")
    assert (info["window"], info["hop"]) == (60, 60)
    assert info["training"]["n_train_windows"] == 40 and info["training"]["n_val_windows"] == 0
    assert "none held out to validate" in result.out and "train-set acc" in result.out
    assert info["model"]["kernel_features"] == 9996 and info["model"]["kernel_window"] == 60


def test_the_small_data_recipe_holds_out_no_validation_unless_told() -> None:
    from biosig.training.config import TrainConfig

    assert TrainConfig().validation_fraction(40) == 0.0  # recipe: epochs left to biosig
    assert TrainConfig(select=True).validation_fraction(40) == 0.2  # selection asked for
    assert TrainConfig(epochs=5).validation_fraction(40) == 0.2  # epochs given: no recipe
    assert TrainConfig().validation_fraction(4000) == 0.2  # ample data
    assert TrainConfig().validation_fraction(40, given=0.3) == 0.3


def test_training_that_learnt_nothing_says_so(tmp_path: Path, run_cli) -> None:
    # identical (all-zero) series under two labels: no model can tell them apart
    signals, labels = _short_series(tmp_path, np.zeros((16, 32)))
    result = run_cli(
        "train", "--plugin", "numpy", "--input", signals, "--labels", labels,
        "--preset", "tiny", "--epochs", "1", "--val-fraction", "0", "--out", tmp_path / "r",
    )  # fmt: skip
    assert result.code == 0, result.err
    warning = [line for line in result.err_lines if "has not learnt" in line]
    assert len(warning) == 1, result.err
    assert "for every window" in warning[0] and "--epochs" in warning[0]


def test_the_saved_ridge_model_learns_from_the_validation_windows_too(
    tmp_path: Path, run_cli, synthetic_npy: Path
) -> None:
    result = train(run_cli, synthetic_npy, tmp_path / "r", "--val-fraction", "0.3")
    assert result.code == 0, result.err
    info = meta(tmp_path / "r")
    labelled = info["training"]["n_train_windows"] + info["training"]["n_val_windows"]
    assert info["training"]["n_val_windows"] > 0
    assert info["training"]["ridge_windows"] == labelled
    last = json.loads((tmp_path / "r" / "last" / "biosig.json").read_text())
    assert last["training"]["ridge_windows"] == labelled
    assert f"ridge model refitted on the {labelled} training and validation windows" in result.out
    # nothing held out, nothing to add: the ridge model already learnt from every window
    plain = train(run_cli, synthetic_npy, tmp_path / "p", "--val-fraction", "0")
    assert plain.code == 0, plain.err
    assert "ridge_windows" not in meta(tmp_path / "p")["training"]
