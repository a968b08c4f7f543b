"""The Python API: ``biosig.training.trainer``, ``biosig.load_model`` (predict, evaluate) and the
scikit-learn estimator, each giving what the matching command gives."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

import biosig
from biosig import BiosigError
from biosig.api import train_request
from biosig.plugin.options import UnknownPluginOption
from biosig.training.config import TrainConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

QUICK = {"preset": "tiny", "epochs": 2}


def two_tones(n: int, length: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``[n, 1, length]`` noisy sines of 3 or 9 cycles, labelled ``low``/``high``."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / length
    cycles = np.where(np.arange(n) % 2 == 0, 3, 9)
    x = np.sin(2 * np.pi * cycles[:, None] * t) + 0.3 * rng.normal(size=(n, length))
    return x[:, None].astype(np.float32), np.where(cycles == 3, "low", "high")


@pytest.fixture(scope="module")
def tone_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tones")
    x, y = two_tones(40)
    np.save(directory / "train.npy", x[:30])
    np.save(directory / "train_labels.npy", y[:30])
    np.save(directory / "test.npy", x[30:])
    np.save(directory / "test_labels.npy", y[30:])
    return directory


@pytest.fixture(scope="module")
def trained(tone_files: Path) -> biosig.Run:
    return biosig.train(
        "numpy",
        tone_files / "train.npy",
        tone_files / "train_labels.npy",
        out=tone_files / "run",
        **QUICK,
    )


def test_train_returns_the_run_with_its_history_and_metrics(trained: biosig.Run) -> None:
    assert (trained.best / "model.safetensors").is_file()
    assert (trained.last / "biosig.json").is_file()
    assert list(trained.history["epoch"]) == [1, 2]
    assert trained.metrics["classes"] == ["high", "low"]
    assert 0 <= trained.metrics["accuracy"] <= 1


def test_predict_gives_the_tables_the_command_writes(
    trained: biosig.Run, tone_files: Path, run_cli, in_tmp: Path
) -> None:
    model = biosig.load_model(trained.best)
    assert model.classes == ["high", "low"]
    tables = model.predict(tone_files / "test.npy")
    written = run_cli("predict", "--model", trained.best, tone_files / "test.npy", "--out", "pred")
    assert written.code == 0, written.err
    for name in ("windows", "recordings", "segments"):
        cli = pd.read_csv(in_tmp / "pred" / f"{name}.tsv", sep="\t", dtype={"recording": str})
        ours = getattr(tables, name)
        assert list(ours.columns) == list(cli.columns)
        assert len(ours) == len(cli) > 0
        for column in cli.columns:
            if column in ("start_time", "end_time"):  # no calendar: empty cells, NaT
                assert ours[column].equals(pd.to_datetime(cli[column]))
            elif cli[column].dtype.kind in "fi" and ours[column].dtype.kind in "fi":
                np.testing.assert_allclose(ours[column], cli[column], rtol=1e-5)
            else:
                assert list(ours[column].astype(str)) == list(cli[column].astype(str))


def test_predict_takes_arrays_as_the_files_hold_them(trained: biosig.Run, tone_files: Path):
    model = biosig.load_model(trained.best)
    from_file = model.predict(tone_files / "test.npy").recordings
    batch = np.load(tone_files / "test.npy")
    from_batch = model.predict(batch).recordings
    from_list = model.predict(list(batch)).recordings
    one = model.predict(batch[0, 0]).recordings  # [n]: one single-channel recording
    for table in (from_batch, from_list):
        np.testing.assert_allclose(table["p_low"], from_file["p_low"], rtol=1e-5)
    assert one["p_low"].iloc[0] == pytest.approx(from_file["p_low"].iloc[0], rel=1e-5)
    with pytest.raises(BiosigError, match="expected \\[n\\], \\[C, n\\] or \\[N, C, n\\]"):
        model.predict(np.zeros((1, 1, 1, 128), dtype=np.float32))


def test_evaluate_gives_the_metrics_evaluate_json_prints(
    trained: biosig.Run, tone_files: Path, run_cli
) -> None:
    model = biosig.load_model(trained.best)
    ours = model.evaluate(tone_files / "test.npy", tone_files / "test_labels.npy")
    printed = run_cli(
        "evaluate",
        "--model",
        trained.best,
        "--input",
        tone_files / "test.npy",
        "--labels",
        tone_files / "test_labels.npy",
        "--json",
    )
    assert printed.code == 0, printed.err
    assert json.loads(printed.out) == json.loads(json.dumps(ours))


def test_load_model_applies_the_saved_options_and_warns_on_a_changed_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The fixture checkpoint, its metadata saying it was trained with the ecg plugin.
    fixture = Path(__file__).parent / "fixtures" / f"checkpoint-{biosig.__version__}" / "model"
    model_dir = tmp_path / "model"
    shutil.copytree(fixture, model_dir)
    meta = json.loads((model_dir / "biosig.json").read_text())
    saved = {"band": "0.5,40", "unannotated": "N", "annotator": "qrs"}
    meta["plugin"] = {"name": "ecg", "version": "0.1.0", "options": saved}
    (model_dir / "biosig.json").write_text(json.dumps(meta))

    as_trained = biosig.load_model(model_dir)
    assert as_trained.plugin.name == "ecg"
    assert {k: as_trained.plugin.settings[k] for k in saved} == saved
    assert not [r for r in caplog.records if "differs from the model" in r.getMessage()]

    overridden = biosig.load_model(model_dir, band="1,30", annotator="atr")
    assert overridden.plugin.settings["band"] == "1,30"
    warnings = [
        r.getMessage() for r in caplog.records if "differs from the model" in r.getMessage()
    ]
    # band shapes the model's input (a preprocessing option); the annotator does not
    assert warnings == [
        "--band 1,30 differs from the model's 0.5,40: its input is prepared differently"
    ]
    with pytest.raises(UnknownPluginOption, match="no such option: --no-such"):
        biosig.load_model(model_dir, no_such=1)


def test_train_defaults_are_the_commands_defaults() -> None:
    from biosig.cli.train import train as train_command

    request = train_request("numpy", ["x.npy"], "y.npy", {})
    fields = {**dataclasses.asdict(request), **dataclasses.asdict(request.config)}
    for param in train_command.params:
        if param.name in fields and param.name not in ("plugin", "labels", "config"):
            default = (
                None
                if param.default is not None and "UNSET" in repr(param.default)
                else (param.default)
            )
            assert fields[param.name] == default, param.name
    assert request.config == TrainConfig()


def test_train_refuses_an_option_nobody_takes() -> None:
    with pytest.raises(UnknownPluginOption, match="no such option: --epochz"):
        train_request("numpy", ["x.npy"], "y.npy", {"epochz": 3})


def test_plugin_options_reach_the_plugin_by_name(tmp_path: Path) -> None:
    request = train_request("ecg", ["r.hea"], "rhythm", {"unannotated": "N", "epochs": 3})
    assert request.plugin_options["unannotated"] == "N" and request.config.epochs == 3


# ---------------------------------------------------------------------- SignalClassifier


def test_the_estimator_fits_predicts_and_scores_with_any_label_type() -> None:
    x, y = two_tones(40)
    labels = np.where(y == "low", 7, 1)
    clf = biosig.SignalClassifier(**QUICK).fit(x[:30], labels[:30])
    assert list(clf.classes_) == [1, 7]
    proba = clf.predict_proba(x[30:])
    assert proba.shape == (10, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    predicted = clf.predict(x[30:])
    assert predicted.dtype == labels.dtype and set(predicted) <= {1, 7}
    assert clf.score(x[30:], labels[30:]) == np.mean(predicted == labels[30:])
    assert clf.score(x[30:], labels[30:]) >= 0.9


def test_the_estimator_clones_and_works_in_cross_validation_and_pipelines() -> None:
    x, y = two_tones(24)
    clf = biosig.SignalClassifier(preset="tiny", epochs=1, seed=3)
    copy = clone(clf)
    assert copy.get_params() == clf.get_params() and copy.get_params()["seed"] == 3
    assert clone(clf).set_params(epochs=4).epochs == 4
    scores = cross_val_score(clf, x, y, cv=2)
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))
    pipeline = make_pipeline(FunctionTransformer(lambda a: 2 * a), clone(clf))
    assert pipeline.fit(x[:16], y[:16]).predict(x[16:]).shape == (8,)


def test_the_estimator_takes_series_of_unequal_length() -> None:
    x, y = two_tones(30, length=160)
    series = [x[i, :, : 100 + 2 * i] for i in range(30)]
    clf = biosig.SignalClassifier(**QUICK).fit(series[:20], y[:20])
    assert clf.model_.window == 100 + 2 * 19  # the longest training series
    assert clf.predict(series[20:]).shape == (10,)


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (np.full((4, 1, 32), np.nan), ["a", "b"] * 2, "Input X contains NaN"),
        ([np.zeros((1, 32)), np.full((1, 30), np.inf)], ["a", "b"], "case 1 holds NaN or inf"),
        (np.zeros((4, 1, 32)), ["a"] * 4, "need at least two classes, got 1 class"),
        (np.zeros((4, 1, 32)), ["a", "b"], "inconsistent numbers of samples"),
        ([np.zeros((1, 32)), np.zeros((2, 32))], ["a", "b"], "case 1 has 2 channels"),
        (np.zeros((2, 2, 2, 2)), ["a", "b"], "expected \\[n_cases, n_channels"),
    ],
)
def test_the_estimator_refuses_bad_input_in_one_line(x, y, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        biosig.SignalClassifier(**QUICK).fit(x, y)


def test_the_estimator_scores_as_train_then_evaluate_does(
    tone_files: Path, run_cli, in_tmp: Path
) -> None:
    """Same data, settings and seed: the same model, so the same test accuracy."""
    trained = run_cli(
        "train",
        "--plugin",
        "numpy",
        "--input",
        tone_files / "train.npy",
        "--labels",
        tone_files / "train_labels.npy",
        "--preset",
        "tiny",
        "--epochs",
        "2",
        "--seed",
        "5",
        "--out",
        "cli",
    )
    assert trained.code == 0, trained.err
    model = biosig.load_model(in_tmp / "cli" / "best")
    cli = model.evaluate(tone_files / "test.npy", tone_files / "test_labels.npy")
    x_train, y_train = np.load(tone_files / "train.npy"), np.load(tone_files / "train_labels.npy")
    x_test, y_test = np.load(tone_files / "test.npy"), np.load(tone_files / "test_labels.npy")
    clf = biosig.SignalClassifier(preset="tiny", epochs=2, seed=5).fit(x_train, y_train)
    assert clf.score(x_test, y_test) == pytest.approx(cli["recordings"]["accuracy"])
    ours = clf.predict_proba(x_test)
    theirs = model.predict(x_test, hop=model.window).recordings[["p_high", "p_low"]]
    np.testing.assert_allclose(ours, theirs.to_numpy(), rtol=1e-4, atol=1e-6)


def test_messages_stay_quiet_unless_verbose(capsys: pytest.CaptureFixture) -> None:
    x, y = two_tones(12)
    biosig.SignalClassifier(preset="tiny", epochs=1).fit(x, y)
    assert "epoch" not in capsys.readouterr().out
    biosig.SignalClassifier(preset="tiny", epochs=1, verbose=True).fit(x, y)
    assert "epoch   1" in capsys.readouterr().out


def test_warnings_reach_the_callers_logging_while_progress_stays_quiet(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture
) -> None:
    """Noise with labels that mean nothing: training says, through the ``biosig`` logger,
    that it has not learnt; the progress lines stay off stdout."""
    caplog.set_level(logging.INFO, logger="biosig")
    x = np.random.default_rng(0).normal(size=(12, 1, 128)).astype(np.float32)
    biosig.SignalClassifier(preset="tiny", epochs=1).fit(x, np.array(["a", "b"] * 6))
    assert caplog.records
    assert all(r.name.startswith("biosig") for r in caplog.records)
    assert any("has not learnt" in r.getMessage() for r in caplog.records)
    assert "epoch" not in capsys.readouterr().out


def test_the_estimator_passes_scikit_learns_estimator_checks() -> None:
    import warnings

    from sklearn.utils.estimator_checks import check_estimator

    from biosig.estimator import WAIVED_CHECKS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(
            biosig.SignalClassifier(preset="tiny", epochs=1),
            expected_failed_checks=WAIVED_CHECKS,
            on_fail=None,
        )
    failed = [r["check_name"] for r in results if r["status"] == "failed"]
    assert failed == [] and len(results) > 40


def test_pretrain_then_fine_tune_from_its_backbone(tone_files: Path) -> None:
    run = biosig.pretrain(
        "numpy", tone_files / "train.npy", out=tone_files / "pre", preset="tiny", epochs=1
    )
    assert (run.backbone / "biosig.json").is_file() and list(run.history["epoch"]) == [1]
    tuned = biosig.train(
        "numpy",
        tone_files / "train.npy",
        tone_files / "train_labels.npy",
        out=tone_files / "tuned",
        init=str(run.backbone),
        **QUICK,
    )
    assert json.loads((tuned.best / "biosig.json").read_text())["training"]["init"] == str(
        run.backbone
    )


def test_labels_that_look_like_a_table_header_train_every_case() -> None:
    x, y = two_tones(20, length=160)
    series = [x[i, :, : 100 + 2 * i] for i in range(20)]  # unequal: one file per case
    labels = np.where(y == "low", "y", "n")  # "y" heads a label table's class column
    clf = biosig.SignalClassifier(**QUICK).fit(series, labels)
    assert clf.model_.meta.training["n_recordings"] == 20
    with pytest.raises(ValueError, match="start or end with blanks"):
        biosig.SignalClassifier(**QUICK).fit(series, np.where(y == "low", " a", "b"))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        biosig.SignalClassifier(**QUICK).fit(series, labels[:-1])


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"epochs": 0}, "--epochs 0: give 1 or more"),
        ({"batch_size": 0}, "--batch-size 0: give 1 or more"),
        ({"lr": -1.0}, "--lr -1: give a positive learning rate"),
        ({"label_smoothing": 1.5}, "--label-smoothing 1.5: give a value in [0, 1)"),
        ({"loss": "hinge"}, "--loss hinge: choose from ce, focal"),
        ({"kernel_features": 10}, "--kernel-features 10: give 0 (none) or at least 84"),
    ],
)
def test_train_checks_values_as_the_command_does(
    tone_files: Path, tmp_path: Path, option: dict, message: str
) -> None:
    with pytest.raises(BiosigError, match=re.escape(message)):
        biosig.train(
            "numpy", tone_files / "train.npy", tone_files / "train_labels.npy",
            out=tmp_path / "r", **option,
        )  # fmt: skip
    assert not (tmp_path / "r").exists()  # refused before anything was read or written


def test_augment_none_is_spelled_as_the_command_spells_it() -> None:
    request = train_request("numpy", ["x.npy"], "y.npy", {"augment": "none"})
    assert request.config.augment == []


def test_predict_leaves_a_damaged_recording_out_unless_strict(
    trained: biosig.Run, tone_files: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = biosig.load_model(trained.best)
    good = np.load(tone_files / "test.npy")[0]
    gaps = np.full_like(good, np.nan)
    tables = model.predict([gaps, good])
    assert list(tables.recordings["recording"]) == ["1"]
    assert any("every window holds missing samples" in r.getMessage() for r in caplog.records)
    with pytest.raises(BiosigError, match="every window holds missing samples"):
        model.predict([gaps, good], strict=True)
