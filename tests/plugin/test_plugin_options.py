"""A plugin's own options and label keywords: ``PluginOption`` parsing, ``Plugin.settings`` /
``configure``, the command-line plumbing that picks ``--<option>`` flags out of the inputs,
pipeline keys naming options, and preprocessing options kept with a model and reapplied by
``predict`` and ``evaluate``.

The end-to-end tests register :class:`OptionPlugin` (defined here) beside the real numpy
plugin through a fake entry point, so it is found exactly as an installed plugin would be.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import shutil
from collections.abc import Iterator, Sequence
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import click
import numpy as np
import pytest
from biosig_numpy import NumpyPlugin
from biosig_numpy.synthetic import synthetic_arrays
from checkpoint_helpers import meta_for

from biosig import BiosigError, LabelledInterval, PluginOption, Preprocessor, Recording
from biosig.checkpoint import CheckpointMeta, PluginStamp
from biosig.cli.common import Options, configure_plugin, reject_flags
from biosig.loading import label_source, load_model_and_plugin
from biosig.nn.model import model_config
from biosig.plugin import registry

#: How ``--labels`` errors say what the numpy plugin takes.
NUMPY_CHOICES = (
    "plugin 'numpy' reads labels.npy / .npz 'labels' (one per recording, in order) or labels.tsv"
)
WITHOPTS_CHOICES = (
    NUMPY_CHOICES.replace("'numpy'", "'withopts'") + ", or takes one of the words beats"
)
#: What the plugin saw: ("labels", source, settings) and ("preprocessor", id, settings).
SEEN: list[tuple[str, Any, dict[str, Any]]] = []

N_RECORDINGS, LENGTH = 12, 256
SMALL = ("--preset", "tiny", "--epochs", "1", "--window", "128", "--hop", "64")
DEFAULTS = {"my_option": 3, "gain": 1.0, "annotator": "atr", "fast": False}
FLAGS = "--my-option, --gain, --annotator, --fast"


class OptionPlugin(NumpyPlugin):
    """Test plugin: numpy arrays, with an option of each type and the label keyword
    ``beats`` (the labels.npy beside the signals, as a record carries its annotations)."""

    name = "withopts"
    version = "2.0"
    summary = "numpy arrays with options (tests only)"
    label_keywords = ("beats",)
    options = (
        PluginOption("my_option", 3, "A number that shapes the input.", int, preprocessing=True),
        PluginOption("gain", 1.0, "Multiplies every sample.", float, preprocessing=True),
        PluginOption("annotator", "atr", "Whose annotations to read."),
        PluginOption("fast", False, "Skip the slow checks.", bool),
    )

    def preprocessor(self, recording: Recording, fs_out: float) -> Preprocessor:
        SEEN.append(("preprocessor", recording.id, self.settings))
        return super().preprocessor(recording, fs_out)

    def labels(self, source: Path | str, recordings: Sequence[Recording]) -> list[LabelledInterval]:
        SEEN.append(("labels", source, self.settings))
        if source == "beats":
            table = np.load(Path(recordings[0].source).with_name("labels.npy"))
            return [
                LabelledInterval(r.id, 0, r.n_samples, str(table[int(r.id)])) for r in recordings
            ]
        return super().labels(source, recordings)


def seen(kind: str) -> list[tuple[Any, dict[str, Any]]]:
    return [(what, settings) for k, what, settings in SEEN if k == kind]


def option(kind: type, default: Any = None) -> PluginOption:
    return PluginOption("my_option", default, "help", kind)


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", autouse=True)
def registered() -> Iterator[None]:
    """The registry sees the real numpy plugin and OptionPlugin as ``withopts``."""
    numpy_entry = next(ep for ep in entry_points(group=registry.GROUP) if ep.name == "numpy")
    ours = EntryPoint(name="withopts", value=f"{__name__}:OptionPlugin", group=registry.GROUP)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(registry, "group_entry_points", lambda: [numpy_entry, ours])
        yield


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def forget_what_was_seen() -> None:
    SEEN.clear()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """signals.npy (12, 256) and labels.npy (three classes); read-only."""
    directory = tmp_path_factory.mktemp("options-data")
    signals, labels = synthetic_arrays(N_RECORDINGS, LENGTH, seed=0)
    np.save(directory / "signals.npy", signals)
    np.save(directory / "labels.npy", labels)
    return directory


@pytest.fixture(scope="module")
def trained(
    registered: None, tmp_path_factory: pytest.TempPathFactory, data: Path, run_cli
) -> dict[str, Any]:
    """One model trained with ``--my-option 7 --annotator=cardiologist --labels beats``; the
    run directory, the CLI result and what the plugin saw while training."""
    work = tmp_path_factory.mktemp("options-train")
    SEEN.clear()
    result = run_cli(
        "train", "--plugin", "withopts", "--input", data / "signals.npy", "--my-option", "7",
        "--labels", "beats", *SMALL, "--annotator=cardiologist", "--out", "model", cwd=work,
    )  # fmt: skip
    assert result.code == 0, result.err
    return {"run": work / "model", "result": result, "seen": list(SEEN)}


def meta_of(checkpoint: Path) -> dict[str, Any]:
    return json.loads((checkpoint / "biosig.json").read_text(encoding="utf-8"))


def one_error_line(result) -> str:
    assert result.code != 0
    assert "Traceback" not in result.err
    assert len(result.err_lines) == 1, result.err
    assert result.err_lines[0].startswith("error: ")
    assert "internal error" not in result.err_lines[0]
    return result.err_lines[0]


# ---------------------------------------------------------------------------- PluginOption


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        (int, "7", 7),
        (int, "-12", -12),
        (int, 7.0, 7),  # a TOML float that is a whole number
        (float, "0.5", 0.5),
        (float, "1e-3", 0.001),
        (float, 2, 2.0),  # a TOML integer for a float option
        (str, "atr", "atr"),
        (str, 5, "5"),
        (str, ["I", "II", "V1"], "I,II,V1"),  # a TOML list for a comma-separated value
        (str, ("Fp1",), "Fp1"),
        (bool, "true", True),
        (bool, "false", False),
    ],
)
def test_parse_converts_to_the_option_type(kind: type, value: Any, expected: Any) -> None:
    parsed = option(kind).parse(value)
    assert parsed == expected
    assert type(parsed) is kind


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        *[(w, True) for w in ("1", "true", "yes", "on", "TRUE", " Yes ", "On")],
        *[(w, False) for w in ("0", "false", "no", "off", "FALSE", " No ", "Off")],
        (True, True),
        (False, False),
        (1, True),
        (0, False),
    ],
)
def test_parse_bool_words(word: Any, expected: bool) -> None:
    assert option(bool).parse(word) is expected


@pytest.mark.parametrize("kind", [int, float, str, bool])
def test_parse_keeps_none_and_typed_values(kind: type) -> None:
    assert option(kind).parse(None) is None
    typed = {int: 4, float: 2.5, str: "x", bool: True}[kind]
    assert option(kind).parse(typed) is typed


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        (int, "seven", "--my-option: expected int, got 'seven'"),
        (int, "7.5", "--my-option: expected int, got '7.5'"),
        (int, "", "--my-option: expected int, got ''"),
        (int, [1, 2], "--my-option: expected int, got [1, 2]"),
        (float, "loud", "--my-option: expected float, got 'loud'"),
        (bool, "maybe", "--my-option: expected true or false, got 'maybe'"),
        (bool, "", "--my-option: expected true or false, got ''"),
        (bool, 2, "--my-option: expected true or false, got 2"),
    ],
)
def test_parse_errors_name_the_flag(kind: type, value: Any, message: str) -> None:
    with pytest.raises(BiosigError) as error:
        option(kind).parse(value)
    assert str(error.value) == message


@pytest.mark.parametrize(("kind", "value"), [(int, 7.5), (int, True), (float, True)])
def test_parse_refuses_a_toml_value_of_the_wrong_kind(kind: type, value: Any) -> None:
    with pytest.raises(BiosigError, match="--my-option: expected"):
        option(kind).parse(value)


def test_flag_is_the_name_with_dashes() -> None:
    assert PluginOption("max_gap_seconds", 1.0, "h", float).flag == "--max-gap-seconds"
    assert PluginOption("leads", None, "h").flag == "--leads"


# ---------------------------------------------------------------------------- settings


def test_settings_are_defaults_until_configured() -> None:
    plugin = OptionPlugin()
    assert plugin.settings == DEFAULTS
    plugin.configure({"my_option": "7", "fast": "on"})
    assert plugin.settings == {**DEFAULTS, "my_option": 7, "fast": True}
    plugin.configure({"gain": 2})  # later calls add to the earlier ones
    assert plugin.settings == {**DEFAULTS, "my_option": 7, "fast": True, "gain": 2.0}
    assert type(plugin.settings["gain"]) is float


def test_configure_takes_names_with_dashes() -> None:
    plugin = OptionPlugin()
    plugin.configure({"my-option": "9"})
    assert plugin.settings["my_option"] == 9


def test_configure_is_per_instance() -> None:
    first, second = OptionPlugin(), OptionPlugin()
    first.configure({"annotator": "cardiologist"})
    assert second.settings == DEFAULTS
    assert OptionPlugin().settings == DEFAULTS


def test_configure_an_unknown_name_lists_the_flags() -> None:
    plugin = OptionPlugin()
    with pytest.raises(BiosigError) as error:
        plugin.configure({"bogus": 1})
    assert str(error.value) == f"plugin 'withopts' has no option 'bogus' (its options: {FLAGS})"
    with pytest.raises(BiosigError, match=r"has no option 'x' \(its options: none\)"):
        NumpyPlugin().configure({"x": 1})


def test_a_failed_configure_changes_nothing() -> None:
    plugin = OptionPlugin()
    with pytest.raises(BiosigError, match="--gain: expected float, got 'loud'"):
        plugin.configure({"my_option": 5, "gain": "loud"})
    assert plugin.settings == DEFAULTS
    plugin.configure({"fast": True})
    with pytest.raises(BiosigError, match="has no option 'bogus'"):
        plugin.configure({"my_option": 5, "bogus": 1})
    assert plugin.settings == {**DEFAULTS, "fast": True}


def test_a_plugin_without_options_has_no_settings() -> None:
    plugin = NumpyPlugin()
    plugin.configure({})
    assert plugin.settings == {}


# ---------------------------------------------------------------------------- configure_plugin


def test_configure_plugin_picks_flags_out_of_the_inputs() -> None:
    plugin = OptionPlugin()
    tokens = ["a.npy", "--my-option", "7", "b.npy", "--gain=0.5", "--annotator", "x=y", "c.npy"]
    assert configure_plugin(plugin, tokens) == ["a.npy", "b.npy", "c.npy"]
    assert plugin.settings == {**DEFAULTS, "my_option": 7, "gain": 0.5, "annotator": "x=y"}


def test_configure_plugin_takes_the_next_token_as_the_value() -> None:
    plugin = OptionPlugin()
    assert configure_plugin(plugin, ["--gain", "-2", "--fast", "yes", "-"]) == ["-"]
    assert (plugin.settings["gain"], plugin.settings["fast"]) == (-2.0, True)


def test_configure_plugin_the_last_flag_wins() -> None:
    plugin = OptionPlugin()
    configure_plugin(plugin, ["--my-option", "1", "--my-option=2"])
    assert plugin.settings["my_option"] == 2


def test_configure_plugin_without_flags_changes_nothing() -> None:
    plugin = OptionPlugin()
    assert configure_plugin(plugin, ["a.npy", "b.npy"]) == ["a.npy", "b.npy"]
    assert configure_plugin(plugin, []) == []
    assert plugin.settings == DEFAULTS


@pytest.mark.parametrize("token", ["--x", "--x=3", "--my_option"])
def test_configure_plugin_unknown_flag_lists_the_plugins_flags(token: str) -> None:
    flag = token.partition("=")[0]
    with pytest.raises(click.UsageError) as error:
        configure_plugin(OptionPlugin(), ["a.npy", token, "3"])
    assert (
        error.value.format_message() == f"no such option: {flag}; plugin 'withopts' takes {FLAGS}"
    )
    with pytest.raises(click.UsageError) as error:
        configure_plugin(NumpyPlugin(), [token, "3"])
    assert error.value.format_message() == f"no such option: {flag}"


def test_configure_plugin_flag_without_value_at_the_end() -> None:
    with pytest.raises(click.UsageError) as error:
        configure_plugin(OptionPlugin(), ["a.npy", "--my-option"])
    assert error.value.format_message() == "option --my-option requires an argument"


def test_configure_plugin_bad_value_names_the_flag() -> None:
    with pytest.raises(BiosigError, match="--my-option: expected int, got 'seven'"):
        configure_plugin(OptionPlugin(), ["--my-option", "seven"])


def model_meta(**options: Any) -> CheckpointMeta:
    meta = meta_for(model_config("tiny", 1, 2), ["a", "b"])
    return dataclasses.replace(meta, plugin=PluginStamp("withopts", "0", options))


def test_configure_plugin_warns_when_a_preprocessing_option_differs(biosig_log) -> None:
    plugin = OptionPlugin()
    trained = model_meta(my_option=7, gain=1.0, annotator="atr", fast=False)
    tokens = ["a.npy", "--my-option", "5", "--annotator", "other", "--gain", "1", "--fast", "1"]
    assert configure_plugin(plugin, tokens, trained) == ["a.npy"]
    # annotator and fast changed too, but they are not preprocessing; gain is the same
    assert biosig_log.messages == [
        "--my-option 5 differs from the model's 7: its input is prepared differently"
    ]
    assert [r.name for r in biosig_log.records] == ["biosig"]
    assert biosig_log.records[0].levelno == logging.WARNING


@pytest.mark.parametrize(
    "meta",
    [
        model_meta(my_option=7),  # the same value
        model_meta(gain=1.0),  # an option the model does not record
        model_meta(),  # a model from before options
        None,  # no model (train)
    ],
)
def test_configure_plugin_no_warning_when_nothing_differs(
    biosig_log, meta: CheckpointMeta | None
) -> None:
    plugin = OptionPlugin()
    configure_plugin(plugin, ["--my-option", "7"], meta)
    assert plugin.settings["my_option"] == 7
    assert biosig_log.messages == []


def test_reject_flags_without_a_plugin() -> None:
    reject_flags(["a.npy", "b.npy", "-"])
    reject_flags([])
    with pytest.raises(click.UsageError) as error:
        reject_flags(["a.npy", "--gain=2", "--x"])
    assert error.value.format_message() == "no such option: --gain"


def test_label_source_keyword_file_or_error(tmp_path: Path) -> None:
    plugin = OptionPlugin()
    source = label_source(plugin, "beats")
    assert source == "beats" and type(source) is str
    assert type(label_source(plugin, Path("beats"))) is str
    labels = tmp_path / "labels.tsv"
    labels.write_text("0\tN\n", encoding="utf-8")
    assert label_source(plugin, str(labels)) == labels
    assert isinstance(label_source(plugin, str(labels)), Path)
    missing = tmp_path / "beats.tsv"
    with pytest.raises(BiosigError) as error:
        label_source(plugin, str(missing))
    assert str(error.value) == f"{missing}: labels file not found; {WITHOPTS_CHOICES}"
    with pytest.raises(BiosigError) as error:
        label_source(NumpyPlugin(), "beats")  # another plugin's keyword is just a name
    assert str(error.value) == f"beats: labels file not found; {NUMPY_CHOICES}"
    with pytest.raises(BiosigError) as error:
        label_source(NumpyPlugin(), None)  # no default keyword: say what it takes
    assert str(error.value) == f"--labels is required: {NUMPY_CHOICES}"


def test_a_plugins_default_label_word_is_used_without_labels() -> None:
    from biosig_vibration import VibrationPlugin

    assert label_source(VibrationPlugin(), None) == "folder"
    assert label_source(VibrationPlugin(), "manifest") == "manifest"


# ---------------------------------------------------------------------------- Options


def options_for(tmp_path: Path, pipeline_text: str) -> tuple[Options, Path]:
    from biosig.cli.train import train

    pipeline = tmp_path / "task.toml"
    pipeline.write_text(pipeline_text, encoding="utf-8")
    ctx = train.make_context("train", ["--pipeline", str(pipeline)])
    return Options(ctx, pipeline), pipeline


def test_options_configure_plugin_from_the_pipeline_then_flags(tmp_path: Path) -> None:
    opts, _ = options_for(
        tmp_path, 'epochs = 1\nmy-option = 9\n[plugin-options]\nannotator = ["a", "b"]\ngain = 3\n'
    )
    plugin = OptionPlugin()
    assert opts.configure_plugin(plugin, ["x.npy", "--gain", "0.5"]) == ["x.npy"]
    assert plugin.settings == {**DEFAULTS, "my_option": 9, "annotator": "a,b", "gain": 0.5}
    assert opts.get("epochs") == 1  # the core's own keys are untouched


def test_options_unknown_pipeline_key_lists_core_and_plugin_keys(tmp_path: Path) -> None:
    opts, pipeline = options_for(tmp_path, "epochs = 1\nx = 1\n")
    plugin = OptionPlugin()
    with pytest.raises(BiosigError) as error:
        opts.configure_plugin(plugin, [])
    message = str(error.value)
    assert message.startswith(f"{pipeline}: unknown key 'x' (known: ")
    known = message.partition("(known: ")[2].rstrip(")").split(", ")
    assert known == sorted(known)
    assert {"annotator", "epochs", "fast", "gain", "labels", "my_option", "plugin"} <= set(known)
    assert "pipeline" not in known and "more_inputs" not in known
    assert plugin.settings == DEFAULTS


def test_options_bad_pipeline_value_names_the_flag(tmp_path: Path) -> None:
    opts, _ = options_for(tmp_path, 'my_option = "seven"\n')
    with pytest.raises(BiosigError, match="--my-option: expected int, got 'seven'"):
        opts.configure_plugin(OptionPlugin(), [])


# ---------------------------------------------------------------------------- end to end


def test_train_flags_reach_the_plugin_and_the_checkpoint(trained: dict[str, Any]) -> None:
    labels = [(source, settings) for k, source, settings in trained["seen"] if k == "labels"]
    expected = {**DEFAULTS, "my_option": 7, "annotator": "cardiologist"}
    # the keyword reaches labels() as the word, not as a path
    assert labels == [("beats", expected)]
    assert type(labels[0][0]) is str
    prepared = [(rid, s) for k, rid, s in trained["seen"] if k == "preprocessor"]
    assert {rid for rid, _ in prepared} == {str(i) for i in range(N_RECORDINGS)}
    assert all(settings == expected for _, settings in prepared)
    for checkpoint in ("best", "last"):
        plugin = meta_of(trained["run"] / checkpoint)["plugin"]
        assert plugin == {"name": "withopts", "version": "2.0", "options": expected}
    assert "warning" not in trained["result"].err


def test_pipeline_keys_name_plugin_options(in_tmp: Path, data: Path, run_cli) -> None:
    pipeline = in_tmp / "task.toml"
    pipeline.write_text(
        f"""plugin = "withopts"
input = '{(data / "signals.npy").as_posix()}'
labels = '{(data / "labels.npy").as_posix()}'
my-option = 9
gain = 2
annotator = ["a", "b"]

[model]
preset = "tiny"
window = 128
hop = 64

[train]
epochs = 1
""",
        encoding="utf-8",
    )
    result = run_cli("train", "--pipeline", pipeline, "--gain", "0.5", "--out", "run")
    assert result.code == 0, result.err
    expected = {**DEFAULTS, "my_option": 9, "gain": 0.5, "annotator": "a,b"}
    assert meta_of(in_tmp / "run" / "best")["plugin"]["options"] == expected
    ((source, settings),) = seen("labels")
    assert source == data / "labels.npy"  # a file, as a path
    assert settings == expected
    assert all(s == expected for _, s in seen("preprocessor"))


def test_unknown_pipeline_key_is_one_error_line(in_tmp: Path, data: Path, run_cli) -> None:
    pipeline = in_tmp / "task.toml"
    pipeline.write_text(
        f"plugin = \"withopts\"\ninput = '{(data / 'signals.npy').as_posix()}'\n"
        'labels = "beats"\nepochs = 1\nmy_option = 4\nx = 1\n',
        encoding="utf-8",
    )
    line = one_error_line(run_cli("train", "--pipeline", pipeline))
    assert line.startswith(f"error: {pipeline}: unknown key 'x' (known: ")
    assert re.search(r"\bmy_option\b", line) and re.search(r"\bepochs\b", line)
    assert SEEN == []  # stopped before any data was read
    assert sorted(p.name for p in in_tmp.iterdir()) == ["task.toml"]


def test_predict_reuses_the_models_preprocessing_options(
    trained: dict[str, Any], data: Path, run_cli
) -> None:
    result = run_cli("predict", "--model", trained["run"] / "best", data / "signals.npy")
    assert result.code == 0, result.err
    assert "warning" not in result.err
    assert len(result.out.splitlines()) == 1 + N_RECORDINGS
    prepared = seen("preprocessor")
    assert len(prepared) == N_RECORDINGS
    # every option comes from the model, the ones that label data too
    trained_settings = {**DEFAULTS, "my_option": 7, "annotator": "cardiologist"}
    assert all(s == trained_settings for _, s in prepared)


def test_a_flag_overrides_the_models_option_with_a_warning(
    trained: dict[str, Any], data: Path, run_cli
) -> None:
    result = run_cli(
        "predict", "--plugin", "withopts", "--model", trained["run"] / "best",
        data / "signals.npy", "--my-option", "5", "--annotator=other",
    )  # fmt: skip
    assert result.code == 0, result.err
    warnings = [line for line in result.err_lines if line.startswith("warning: ")]
    assert warnings == [
        "warning: --my-option 5 differs from the model's 7: its input is prepared differently"
    ]
    prepared = seen("preprocessor")
    assert len(prepared) == N_RECORDINGS
    assert all(s == {**DEFAULTS, "my_option": 5, "annotator": "other"} for _, s in prepared)


def test_evaluate_takes_the_label_keyword_and_the_models_options(
    trained: dict[str, Any], data: Path, run_cli
) -> None:
    result = run_cli(
        "evaluate", "--model", trained["run"] / "best", "--input", data / "signals.npy",
        "--labels", "beats", "--gain", "1.0", "--json",
    )  # fmt: skip
    assert result.code == 0, result.err
    # --gain 1.0 is what the model was trained with: the only warning is that these are the
    # very files it was trained on
    warnings = [line for line in result.err_lines if line.startswith("warning: ")]
    assert len(warnings) == 1 and "among the model's training inputs" in warnings[0]
    report = json.loads(result.out)
    assert report["n"] == 2 * N_RECORDINGS  # two 128-sample windows of each recording
    assert report["recordings"]["n"] == N_RECORDINGS
    trained_settings = {**DEFAULTS, "my_option": 7, "annotator": "cardiologist"}
    assert seen("labels") == [("beats", trained_settings)]
    assert all(s == trained_settings for _, s in seen("preprocessor"))


def test_load_model_and_plugin_applies_the_models_options(trained: dict[str, Any]) -> None:
    for name in ("withopts", None):  # named, or taken from the model
        plugin, _, meta, _ = load_model_and_plugin(name, trained["run"] / "best", "cpu")
        assert isinstance(plugin, OptionPlugin)
        assert meta.plugin.options["annotator"] == "cardiologist"
        assert plugin.settings == {**DEFAULTS, "my_option": 7, "annotator": "cardiologist"}


def test_load_model_and_plugin_ignores_options_the_plugin_lost(
    trained: dict[str, Any], tmp_path: Path
) -> None:
    model = tmp_path / "model"
    shutil.copytree(trained["run"] / "best", model)
    info = meta_of(model)
    info["plugin"]["options"]["removed_option"] = "x"
    (model / "biosig.json").write_text(json.dumps(info), encoding="utf-8")
    plugin, *_ = load_model_and_plugin("withopts", model, "cpu")
    assert plugin.settings == {**DEFAULTS, "my_option": 7, "annotator": "cardiologist"}


def test_another_plugins_options_are_not_applied(
    trained: dict[str, Any], tmp_path: Path, biosig_log
) -> None:
    model = tmp_path / "model"
    shutil.copytree(trained["run"] / "best", model)
    info = meta_of(model)
    info["plugin"]["name"] = "ecg"
    (model / "biosig.json").write_text(json.dumps(info), encoding="utf-8")
    plugin, *_ = load_model_and_plugin("withopts", model, "cpu")
    assert plugin.settings == DEFAULTS
    assert biosig_log.messages == [
        f"model {model} was trained with plugin 'ecg', reading with 'withopts'"
    ]


def test_train_label_keyword_and_missing_labels_file(in_tmp: Path, data: Path, run_cli) -> None:
    signals = data / "signals.npy"
    line = one_error_line(
        run_cli("train", "--plugin", "withopts", "--input", signals, "--labels", "nothere.tsv")
    )
    assert line == f"error: nothere.tsv: labels file not found; {WITHOPTS_CHOICES}"
    # the numpy plugin takes no keywords: `beats` is a file name to it
    line = one_error_line(
        run_cli("train", "--plugin", "numpy", "--input", signals, "--labels", "beats")
    )
    assert line == f"error: beats: labels file not found; {NUMPY_CHOICES}"
    line = one_error_line(run_cli("train", "--plugin", "numpy", "--input", signals))
    assert line == f"error: --labels is required: {NUMPY_CHOICES}"
    assert list(in_tmp.iterdir()) == []


def test_evaluate_missing_labels_file(trained: dict[str, Any], data: Path, run_cli) -> None:
    result = run_cli(
        "evaluate", "--model", trained["run"] / "best", "--input", data / "signals.npy",
        "--labels", "nothere.tsv",
    )  # fmt: skip
    # worded as train words it
    assert (
        one_error_line(result) == f"error: nothere.tsv: labels file not found; {WITHOPTS_CHOICES}"
    )
    result = run_cli(
        "evaluate", "--model", trained["run"] / "best", "--input", data / "signals.npy"
    )
    assert one_error_line(result) == f"error: --labels is required: {WITHOPTS_CHOICES}"


TRAIN = ("train", "--plugin", "withopts", "--input", "{signals}", "--labels", "beats", *SMALL)

BAD_FLAGS = {
    "unknown": (
        [*TRAIN, "--bogus", "1"],
        2,
        f"error: no such option: --bogus; plugin 'withopts' takes {FLAGS}",
    ),
    "unknown-with-value": (
        [*TRAIN, "--bogus=1"],
        2,
        f"error: no such option: --bogus; plugin 'withopts' takes {FLAGS}",
    ),
    "no-value": ([*TRAIN, "--my-option"], 2, "error: option --my-option requires an argument"),
    "bad-value": (
        [*TRAIN, "--my-option", "seven"],
        2,
        "error: --my-option: expected int, got 'seven'",
    ),
    "no-plugin": (
        ["train", "--input", "{signals}", "--labels", "beats", "--my-option", "7"],
        2,
        "error: no such option: --my-option",
    ),
    "numpy-takes-none": (
        ["train", "--plugin", "numpy", "--input", "{signals}", "--labels", "x", "--gain", "2"],
        2,
        "error: no such option: --gain",
    ),
    "predict-unknown": (
        ["predict", "--model", "{model}", "{signals}", "--bogus", "1"],
        2,
        f"error: no such option: --bogus; plugin 'withopts' takes {FLAGS}",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FLAGS))
def test_bad_plugin_flags_are_one_error_line(
    case: str, in_tmp: Path, data: Path, trained: dict[str, Any], run_cli
) -> None:
    args, code, expected = BAD_FLAGS[case]
    fill = {"signals": data / "signals.npy", "model": trained["run"] / "best"}
    result = run_cli(*[a.format(**fill) for a in args])
    assert one_error_line(result) == expected
    assert result.code == code
    assert result.out == ""
    assert SEEN == []  # no data was read
    assert list(in_tmp.iterdir()) == []


def show_rows(output: str) -> dict[str, str]:
    """``key   value`` lines of ``plugins show`` before its free-text ``about`` block."""
    rows = {}
    for line in output.split("\nabout")[0].splitlines():
        key, _, value = line.partition("  ")
        rows[key.strip()] = value.strip()
    return rows


def test_plugins_show_lists_the_options(run_cli) -> None:
    result = run_cli("plugins", "show", "withopts")
    assert result.code == 0, result.err
    rows = show_rows(result.out)
    assert rows["status"] == "ok"
    flags = {k: v for k, v in rows.items() if k.startswith("--")}
    assert flags == {
        "--my-option": "A number that shapes the input. "
        "[preprocessing, kept with the model; default: 3]",
        "--gain": "Multiplies every sample. [preprocessing, kept with the model; default: 1.0]",
        "--annotator": "Whose annotations to read. [option; default: 'atr']",
        "--fast": "Skip the slow checks. [option; default: False]",
    }
    assert list(rows).index("--my-option") > list(rows).index("labels")
    assert "Test plugin: numpy arrays" in result.out.split("\nabout")[1]  # its docstring
    assert "(tests only)" in rows["summary"]


def test_plugins_show_numpy_has_no_option_rows(run_cli) -> None:
    result = run_cli("plugins", "show", "numpy")
    assert result.code == 0, result.err
    rows = show_rows(result.out)
    assert (rows["name"], rows["status"], rows["window"]) == ("numpy", "ok", "1024 samples")
    assert not [k for k in rows if k.startswith("--")]
    assert "(N, C, L)" in result.out
