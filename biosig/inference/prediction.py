"""Predicting files with a trained model into tables (windows, recordings, segments), and
optionally explanations (attention or gradients) and plots: what ``biosig predict`` runs.

Under ``torchrun --nproc-per-node N -m biosig predict …`` every rank predicts a contiguous
share of the input files into ``OUT/.parts/rank-R/`` and rank 0 merges the parts, so the
tables come out as one process would have written them."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch
from tqdm.auto import tqdm

from ..atomic import atomic_directory
from ..data.damaged import DamagePolicy
from ..errors import BiosigError
from ..loading import label_source, load_model_and_plugin
from ..plugin.contract import (
    LabelledInterval,
    Plugin,
    Recording,
    channel_units,
    describe,
    iter_recordings,
)
from ..plugin.labels import warn_unlabelled
from ..plugin.options import set_plugin_options
from ..training.distributed import (
    PARTS_DIR,
    World,
    all_ok_after,
    merge_parts,
    part_dir,
    prepare_part_dir,
    process_group,
    rank_device,
    shard,
    total,
    world_from_env,
)
from .choices import EXPLANATIONS, FORMATS
from .explain import ExplanationFiles, safe_name
from .output import check_format, prediction_tables
from .stream import AGGREGATIONS, RecordingPrediction, predict_recordings

log = logging.getLogger("biosig")


TABLES = ("windows", "recordings", "segments")


def run_prediction(
    plugin_name: str | None,
    inputs: Sequence[str],
    model_path: Path | None = None,
    out: Path | None = None,
    fmt: str = "tsv",
    batch_size: int = 256,
    hop: int | None = None,
    device_name: str = "auto",
    strict: bool = False,
    workers: int = 1,
    aggregation: str | None = None,
    explain: bool | str | None = False,
    plot: bool = False,
    compile_model: bool = False,
    echo=click.echo,
    plugin_options: Mapping[str, Any] | None = None,
    labels: str | Path | None = None,
    progress: bool = True,
) -> int:
    """Predict every recording of ``inputs``; returns the number of recordings (this rank's,
    under torchrun). ``plugin_options`` (by name) override those the model was trained
    with.

    ``explain`` writes each window's explanation to ``out/<method>/<id>.npy``: ``True`` or
    ``"attention"`` the attention per input sample, ``"gradient"`` integrated gradients
    (see :data:`~biosig.inference.choices.EXPLANATIONS`). ``plot`` draws each recording to
    ``out/plots/<id>.png``; with ``labels`` (a labels file or keyword, as for ``train``
    and ``evaluate``) the plots draw the true classes beside the predicted ones. Labels
    list the recordings' metadata before the stream starts, as ``evaluate`` does.
    ``progress`` shows a bar of the windows predicted and recordings done on a terminal
    (rank 0's alone under torchrun).
    """
    world = world_from_env()
    method = explanation_method(explain)
    _check_outputs(out, fmt, method, plot, labels, world)
    plugin, model, meta, device = load_model_and_plugin(
        plugin_name, model_path, rank_device(device_name, world)
    )
    set_plugin_options(plugin, plugin_options or {}, meta)
    if not inputs:
        raise BiosigError("no input files given")
    files = plugin.find(inputs)
    aggregation = aggregation or plugin.defaults.aggregation
    if aggregation not in AGGREGATIONS:
        raise BiosigError(
            f"plugin {plugin.name!r} asks for aggregation {aggregation!r}; "
            f"known: {', '.join(AGGREGATIONS)}"
        )
    if compile_model:
        model = torch.compile(model)
    damage = DamagePolicy(strict)
    # Under torchrun each rank writes into its own part directory, joined by rank 0 below.
    stage = prepare_part_dir(out, world) if world.is_distributed else None
    stream = functools.partial(
        predict_recordings, model, meta, plugin, device=device, batch_size=batch_size,
        hop=hop, on_damage=damage.handle, workers=workers, fixed_shapes=compile_model,
        method=method or "attention",
    )  # fmt: skip
    recordings: Iterable[Recording] = iter_recordings(plugin, shard(files, world), damage.handle)
    truth = None
    if labels is not None:
        # The plugin labels recordings together (a table names many), so their metadata are
        # listed first; the same recordings then stream, each file opened once.
        recordings = list(recordings)
        truth = true_intervals(plugin, labels, recordings)
    with process_group(world):
        ok, count = False, 0
        try:
            # A rank may have no files; a lone process with no recordings is an error.
            found = ", ".join(map(str, inputs))
            empty = None if world.is_distributed else f"no recordings found in {found}"
            with _written_whole(out, stage) as directory:
                outputs = _Outputs(
                    directory, fmt, aggregation, method, plot, plugin, truth,
                    progress=progress and world.is_main,
                )  # fmt: skip
                count = _write_predictions(outputs, stream, recordings, list(meta.classes), empty)
            ok = True
        finally:
            everyone = all_ok_after(ok, world)
        if not everyone:
            if world.is_main:  # every rank is past writing: nothing of this run is kept
                shutil.rmtree(out / PARTS_DIR, ignore_errors=True)
            raise BiosigError("another process of this run failed (its error is above)")
        everywhere = total(count, world)
        if world.is_distributed and world.is_main:
            _join_parts(out, world.world_size, fmt, everywhere, inputs)
    damage.report()
    if out is not None and world.is_main:
        echo(f"{everywhere} recordings predicted; tables written to {out}", err=True)
    return count


def _check_outputs(
    out: Path | None, fmt: str, method: str | None, plot: bool, labels: object, world: World
) -> None:
    """Refuse, before the model loads, outputs that cannot be written as asked."""
    if (method or plot) and out is None:
        flag = "--explain" if method else "--plot"
        raise BiosigError(f"{flag} writes files: give --out DIRECTORY")
    if labels is not None and not plot:
        raise BiosigError("--labels draws the true classes on the plots: give --plot too")
    if world.world_size > 1 and out is None:
        raise BiosigError("under torchrun, give --out: each rank writes its part there")
    check_format(fmt, out, world.is_distributed)
    if out is not None:
        check_prediction_dir(Path(out))


def explanation_method(explain: bool | str | None) -> str | None:
    """``explain`` as a method of :data:`~biosig.inference.choices.EXPLANATIONS`, or
    ``None`` for no explanation: ``True`` is ``attention``, as ``--explain`` alone."""
    if explain is None or explain is False:
        return None
    if explain is True:
        return "attention"
    if explain not in EXPLANATIONS:
        raise BiosigError(
            f"--explain {explain}: unknown explanation; choose from {', '.join(EXPLANATIONS)}"
        )
    return str(explain)


def true_intervals(
    plugin: Plugin, labels: str | Path, recordings: Sequence[Recording]
) -> dict[str, list[LabelledInterval]]:
    """Each recording's labelled intervals (``predict --labels``), read as ``train`` and
    ``evaluate`` read them; recordings without labels are absent (a keyword's are warned
    about, naming them)."""
    source = label_source(plugin, labels)
    intervals = plugin.labels(source, recordings) if recordings else []
    warn_unlabelled(source, recordings, intervals, plugin.unlabelled_hint)
    by_recording: dict[str, list[LabelledInterval]] = {}
    for interval in intervals:
        by_recording.setdefault(interval.recording_id, []).append(interval)
    return by_recording


#: What ``predict --out`` writes: the tables in any format, explanation files, plots, and
#: under torchrun the ranks' parts.
PREDICTION_ENTRIES = frozenset(
    {f"{table}.{fmt}" for table in TABLES for fmt in FORMATS} | {*EXPLANATIONS, "plots", PARTS_DIR}
)


def check_prediction_dir(out: Path) -> None:
    """``--out`` is replaced whole when a run ends, so it may hold nothing but an earlier
    prediction's files: a directory of the user's own is refused, never emptied."""
    if not out.exists():
        return
    if not out.is_dir():
        raise BiosigError(f"--out {out}: a file, not a directory")
    foreign = sorted(p.name for p in out.iterdir() if p.name not in PREDICTION_ENTRIES)
    if foreign:
        shown = ", ".join(foreign[:5]) + (", …" if len(foreign) > 5 else "")
        raise BiosigError(
            f"--out {out}: holds files that predict did not write ({shown}); predictions "
            "replace their directory whole, so give a new or empty directory, or one "
            "holding only earlier predictions"
        )


@contextlib.contextmanager
def _written_whole(out: Path | None, stage: Path | None) -> Iterator[Path | None]:
    """Where this process writes: a temporary directory that replaces ``out`` whole when
    the run succeeds (a run that fails or is killed leaves the earlier predictions as they
    were, never a mix of two runs); this rank's part directory under torchrun (rank 0
    replaces ``out`` when it joins the parts); nothing (stdout) without ``out``."""
    if out is None or stage is not None:
        yield stage
        return
    with atomic_directory(out) as staging:
        yield staging


@dataclasses.dataclass
class _Outputs:
    """Where a prediction run writes its tables (and explanation files, plots): a
    directory, or without one the recordings table alone, on stdout. ``truth`` holds the
    labelled intervals plots draw, by recording (``None``: no ``--labels``)."""

    directory: Path | None
    fmt: str
    aggregation: str
    explain: str | None
    plot: bool
    plugin: Plugin | None = None
    truth: Mapping[str, list[LabelledInterval]] | None = None
    progress: bool = False


def _write_predictions(
    outputs: _Outputs,
    stream: Callable[..., Iterator[RecordingPrediction]],
    recordings: Iterable[Recording],
    classes: list[str],
    if_none: str | None,
) -> int:
    """Each recording's rows (explanation, plot) written as it completes; how many. With
    none, ``if_none`` is the error, raised before any file is put in place."""
    count = 0
    directory = outputs.directory
    with contextlib.ExitStack() as stack:
        tables = stack.enter_context(
            prediction_tables(directory, classes, outputs.fmt, outputs.aggregation)
        )
        explained = None
        if outputs.explain:
            explained = stack.enter_context(ExplanationFiles(directory / outputs.explain))
        plots = directory / "plots" if outputs.plot else None
        # None: shown on a terminal only, so logs and pipes get no carriage returns
        bar = stack.enter_context(
            tqdm(desc="predicting", unit=" windows", disable=None if outputs.progress else True)
        )
        explain = explained or False
        for pred in stream(recordings=recordings, explain=explain, on_windows=bar.update):
            tables.write(pred, classes)
            explanation_file = explained.save(pred) if explained else None
            if plots is not None:
                _plot(plots, pred, classes, explanation_file, outputs)
            _warn_skipped(pred)
            count += 1
            bar.set_postfix(recordings=count, refresh=False)
        if count == 0 and if_none is not None:
            raise BiosigError(if_none)
    return count


def _join_parts(out: Path, world_size: int, fmt: str, count: int, inputs: Sequence[str]) -> None:
    """Rank 0, once every rank succeeded: the parts' tables merged, their explanation files
    and plots gathered, and the parts removed."""
    try:
        if count == 0:
            raise BiosigError(f"no recordings found in {', '.join(map(str, inputs))}")
        parts = [part_dir(out, World(rank, world_size)) for rank in range(world_size)]
        _check_unique_recordings(parts, fmt)
        # Joined into a directory that replaces ``out`` whole, the parts with it.
        with atomic_directory(out) as joined:
            for name in (*EXPLANATIONS, "plots"):
                for part in parts:
                    if (part / name).is_dir():
                        (joined / name).mkdir(exist_ok=True)
                        for path in sorted((part / name).glob("*")):
                            os.replace(path, joined / name / path.name)
            merge_parts(out, [f"{name}.{fmt}" for name in TABLES], world_size, into=joined)
    except BaseException:
        shutil.rmtree(out / PARTS_DIR, ignore_errors=True)
        raise


def _check_unique_recordings(parts: Sequence[Path], fmt: str) -> None:
    """One process skips a recording id met a second time; ranks cannot see each other's
    ids while they run, so a repeat across ranks is caught here, before anything merges."""
    seen: dict[str, int] = {}
    for rank, part in enumerate(parts):
        path = part / f"recordings.{fmt}"
        if not path.exists() or path.stat().st_size == 0:
            continue
        with path.open(newline="", encoding="utf-8") as handle:
            if fmt == "jsonl":
                ids = [json.loads(line)["recording"] for line in handle if line.strip()]
            else:
                reader = csv.DictReader(handle, delimiter="\t" if fmt == "tsv" else ",")
                ids = [row["recording"] for row in reader]
        for rec_id in ids:
            if rec_id in seen:
                raise BiosigError(
                    f"recording {rec_id} was read by rank {seen[rec_id]} and again by rank "
                    f"{rank}: two input files hold it; give each recording once"
                )
            seen[rec_id] = rank


def _warn_skipped(pred: RecordingPrediction) -> None:
    if pred.n_skipped:
        log.warning(
            "%s: %d of %d windows skipped: they hold missing samples "
            "(a gap, or the warm-up of trailing features)",
            describe(pred.recording),
            pred.n_skipped,
            pred.n_skipped + len(pred.starts),
        )


def _plot(
    directory: Path,
    pred: RecordingPrediction,
    classes: Sequence[str],
    explanation: Path | None,
    outputs: _Outputs,
) -> None:
    # Imported here: matplotlib costs a second of start-up that other commands never need.
    from .plot import plot_prediction

    plugin, rec = outputs.plugin, pred.recording
    plot_prediction(
        directory / f"{safe_name(rec.id)}.png",
        pred,
        classes,
        None if explanation is None else np.load(explanation, mmap_mode="r"),
        method=outputs.explain or "attention",
        truth=None if outputs.truth is None else outputs.truth.get(rec.id, []),
        units=None if plugin is None else channel_units(plugin, rec),
        style="plain" if plugin is None else plugin.plot_style,
    )
