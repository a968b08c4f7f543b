"""biosig from Python: train a model, load one, predict and evaluate, as the commands do.

    import biosig
    run = biosig.train(plugin="numpy", inputs=["train.npy"], labels="labels.npy", epochs=5)
    model = biosig.load_model(run.best)
    tables = model.predict(["test.npy"])          # DataFrames: windows, recordings, segments
    metrics = model.evaluate(["test.npy"], labels="test_labels.npy")
    backbone = biosig.pretrain(plugin="numpy", inputs=["unlabelled.npy"]).backbone

Each function runs the same code as its command (``biosig train``, ``predict``,
``evaluate``), with the same defaults and outputs; the commands are thin layers over it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .checkpoint import CheckpointMeta, read_meta
from .data.damaged import DamagePolicy
from .errors import BiosigError
from .inference.evaluation import run_evaluation
from .inference.output import (
    recording_columns,
    recording_row,
    segment_columns,
    segment_rows,
    window_columns,
    window_rows,
)
from .inference.stream import RecordingPrediction, predict_recordings
from .loading import load_model_and_plugin
from .plugin.contract import ArrayRecording, Plugin, Recording, iter_recordings
from .plugin.options import set_plugin_options
from .training.config import PretrainConfig, TrainConfig
from .training.pretrain_runs import PretrainRequest, run_pretraining
from .training.pretraining import PRETRAINED_DIR
from .training.runs import TrainRequest, run_training

log = logging.getLogger("biosig")


@dataclasses.dataclass
class Run:
    """A finished training run: its directory, checkpoints, per-epoch history and the
    kept model's metrics (on the validation windows, or the training windows where none
    were held out)."""

    directory: Path
    history: pd.DataFrame
    metrics: dict[str, Any]

    @property
    def best(self) -> Path:
        """The kept model (``best/``), for :func:`load_model` or ``--model``."""
        return self.directory / "best"

    @property
    def last(self) -> Path:
        """The last epoch's model (``last/``)."""
        return self.directory / "last"

    @classmethod
    def read(cls, directory: Path) -> Run:
        """The run written in ``directory``."""
        from .report import history_frame  # matplotlib: only when a run is read

        directory = Path(directory)
        meta = read_meta(directory / "best")
        return cls(directory, history_frame(directory), dict(meta.metrics or {}))


def train(
    plugin: str,
    inputs: str | Path | Sequence[str | Path],
    labels: str | Path | None = None,
    *,
    progress: bool = False,
    **options: Any,
) -> Run:
    """Train a model on the labelled recordings of ``inputs``, as ``biosig train`` does.

    ``options`` are the command's options by name (``epochs=5``, ``preset="tiny"``,
    ``out="runs/x"``, ``kernel_features=0``…) and the plugin's own (``annotator="atr"``);
    left out, each takes the command's default. Without ``labels``, the plugin's default
    label word (``folder`` for ``vibration``), if it has one. Without ``out`` the run goes to
    ``runs/<plugin>/<time>`` and ``runs/<plugin>/latest`` points at it. Progress lines go
    to stdout as the command prints them; warnings to the ``biosig`` logger.
    """
    request = train_request(plugin, inputs, labels, options)
    return Run.read(run_training(request, progress=progress))


def train_request(
    plugin: str,
    inputs: str | Path | Sequence[str | Path],
    labels: str | Path | None,
    options: Mapping[str, Any],
) -> TrainRequest:
    """The request ``biosig train`` would build from these options (by name)."""
    text = None if labels is None else str(labels)
    return _request(TrainRequest, TrainConfig, plugin, inputs, options, labels=text)


@dataclasses.dataclass
class PretrainRun:
    """A finished pretraining run: its directory and per-epoch history."""

    directory: Path
    history: pd.DataFrame

    @property
    def backbone(self) -> Path:
        """The pretrained backbone, for ``train(..., init=run.backbone)`` or ``--init``."""
        return self.directory / PRETRAINED_DIR


def pretrain(
    plugin: str,
    inputs: str | Path | Sequence[str | Path],
    *,
    progress: bool = False,
    **options: Any,
) -> PretrainRun:
    """Pretrain a backbone on unlabelled recordings, as ``biosig pretrain`` does; options
    by name as for :func:`train` (``mask_ratio=0.3``, ``epochs=20``…)."""
    request = _request(PretrainRequest, PretrainConfig, plugin, inputs, options)
    from .report import history_frame  # matplotlib: only when a run is read

    directory = run_pretraining(request, progress=progress)
    return PretrainRun(directory, history_frame(directory))


def _request(
    request_type: type,
    config_type: type,
    plugin: str,
    inputs: str | Path | Sequence[str | Path],
    options: Mapping[str, Any],
    **fixed: Any,
) -> Any:
    """A command's request from options by name: its own fields, its config's, and the
    rest the plugin's options (refused where the plugin does not take them)."""
    from .plugin.registry import get_plugin

    # what the run itself records (the normalisation's scores) is no option
    internal = {"config", "plugin_options", "normalization_scores"}
    own = {f.name for f in dataclasses.fields(request_type)} - internal
    config_fields = {f.name for f in dataclasses.fields(config_type)}
    reader = get_plugin(plugin)
    set_plugin_options(reader, {k: v for k, v in options.items() if k not in own | config_fields})
    values = {k: v for k, v in options.items() if k in own}
    config = {k: v for k, v in options.items() if k in config_fields}
    if config.get("augment") in ("none", ["none"]):  # as the command spells "no augmentation"
        config["augment"] = []
    if values.get("out") is not None:
        values["out"] = Path(values["out"])
    paths = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    return request_type(
        plugin=reader.name,
        inputs=[str(p) for p in paths],
        config=config_type(**config),
        plugin_options=dict(reader.settings),
        **fixed,
        **values,
    )


@dataclasses.dataclass
class Predictions:
    """What ``biosig predict --out`` writes, as DataFrames with the same columns: one row
    per window, per recording, and per segment (consecutive windows of one class)."""

    windows: pd.DataFrame
    recordings: pd.DataFrame
    segments: pd.DataFrame


def _table(rows: list[list[object]], columns: list[str]) -> pd.DataFrame:
    """Rows as the command writes them, the calendar columns as date-times (``NaT`` where
    a recording has no calendar, as an empty cell reads back)."""
    frame = pd.DataFrame(rows, columns=columns)
    for column in ("start_time", "end_time"):
        frame[column] = pd.to_datetime(frame[column].replace("", None))
    return frame


class Model:
    """A trained model with the plugin that reads its inputs, configured as in training.

    Made by :func:`load_model`.
    """

    def __init__(
        self,
        path: Path,
        plugin: Plugin,
        network: torch.nn.Module,
        meta: CheckpointMeta,
        device: torch.device,
    ) -> None:
        self.path, self.plugin, self.network, self.meta, self.device = (
            path,
            plugin,
            network,
            meta,
            device,
        )

    @property
    def classes(self) -> list[str]:
        return list(self.meta.classes)

    @property
    def window(self) -> int:
        """Window length in samples at :attr:`sample_rate`."""
        return self.meta.window

    @property
    def sample_rate(self) -> float:
        return self.meta.sample_rate

    def predict(
        self,
        inputs: str | Path | np.ndarray | Sequence[str | Path] | Sequence[np.ndarray],
        fs: float | None = None,
        *,
        hop: int | None = None,
        batch_size: int = 256,
        aggregation: str | None = None,
        strict: bool = False,
    ) -> Predictions:
        """Predict files (paths, directories, globs, read by the model's plugin) or arrays
        (one ``[C, n]`` or ``[n]`` recording, a ``[N, C, n]`` batch, or a list of them,
        sampled at ``fs``: the model's rate when left out).

        Windows at ``hop`` (default: the model's training hop); recordings' probabilities
        aggregated from their windows' by ``aggregation`` (default: the plugin's). A damaged
        recording is left out with a warning, as the command does, or stops the call with
        ``strict``.
        """
        damage = DamagePolicy(strict)
        recordings = self._recordings(inputs, fs, damage)
        aggregation = aggregation or self.plugin.defaults.aggregation
        classes = self.classes
        windows, per_recording, segments = [], [], []
        for pred in self._predict(recordings, hop, batch_size, damage):
            windows += window_rows(pred, classes)
            segments += segment_rows(pred, classes)
            per_recording.append(recording_row(pred, classes, aggregation))
        damage.report()
        if not per_recording:
            raise BiosigError("no recordings to predict")
        return Predictions(
            _table(windows, window_columns(classes)),
            pd.DataFrame(per_recording, columns=recording_columns(classes)),
            _table(segments, segment_columns()),
        )

    def evaluate(
        self,
        inputs: str | Path | Sequence[str | Path],
        labels: str | Path | None = None,
        *,
        hop: int | None = None,
        batch_size: int = 256,
        span: str | None = None,
    ) -> dict[str, Any]:
        """The metrics ``biosig evaluate --json`` prints, on labelled files."""
        paths = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
        return run_evaluation(
            self.path,
            self.plugin.name,
            [str(p) for p in paths],
            labels,
            hop,
            batch_size,
            str(self.device),
            progress=False,
            span=span,
            plugin_options=self.plugin.settings,
        )

    def _predict(
        self,
        recordings: Iterable[Recording],
        hop: int | None,
        batch_size: int,
        damage: DamagePolicy,
    ) -> Iterable[RecordingPrediction]:
        return predict_recordings(
            self.network, self.meta, self.plugin, recordings, self.device,
            batch_size=batch_size, hop=hop, on_damage=damage.handle,
        )  # fmt: skip

    def _recordings(
        self, inputs: Any, fs: float | None, damage: DamagePolicy
    ) -> Iterable[Recording]:
        arrays = _as_arrays(inputs)
        if arrays is None:
            paths = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
            files = self.plugin.find([str(p) for p in paths])
            return iter_recordings(self.plugin, files, damage.handle)
        rate = self.sample_rate if fs is None else float(fs)
        names = list(self.meta.channels)
        return [
            ArrayRecording(
                str(i), a, rate, channels=names if names and len(names) == len(a) else None
            )
            for i, a in enumerate(arrays)
        ]


def _as_arrays(inputs: Any) -> list[np.ndarray] | None:
    """Recordings as ``[C, n]`` arrays, or None where ``inputs`` names files."""
    if isinstance(inputs, np.ndarray):
        if inputs.ndim == 1:
            return [inputs[None]]
        if inputs.ndim == 2:
            return [inputs]
        if inputs.ndim == 3:
            return list(inputs)
        raise BiosigError(f"expected [n], [C, n] or [N, C, n] arrays, got shape {inputs.shape}")
    if isinstance(inputs, (list, tuple)) and inputs and isinstance(inputs[0], np.ndarray):
        return [a[None] if a.ndim == 1 else a for a in (np.asarray(x) for x in inputs)]
    return None


def load_model(
    path: str | Path,
    *,
    plugin: str | None = None,
    device: str = "auto",
    **plugin_options: Any,
) -> Model:
    """The model saved at ``path`` (a run's ``best/`` or ``last/``, or the run directory),
    with its plugin configured as in training; ``plugin_options`` (by name) override the
    saved ones, with a warning where that changes the model's input, as the commands do.
    """
    reader, network, meta, where = load_model_and_plugin(plugin, Path(path), device)
    set_plugin_options(reader, plugin_options, meta)
    network.eval()
    return Model(Path(path), reader, network, meta, where)
