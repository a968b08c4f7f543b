"""``biosig predict``: stream recordings through a trained model and write per-window and
per-recording tables, and optionally attention explanations and plots.

Under ``torchrun --nproc-per-node N -m biosig predict …`` every rank predicts a contiguous
share of the input files into ``OUT/.parts/rank-R/`` and rank 0 merges the parts, so the
tables come out as one process would have written them.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import click
import numpy as np
import torch

from ..atomic import atomic_directory
from ..damaged import DamagePolicy
from ..distributed import (
    PARTS_DIR,
    World,
    all_ok,
    merge_parts,
    part_dir,
    prepare_part_dir,
    process_group,
    rank_device,
    shard,
    total,
    world_from_env,
)
from ..errors import BiosigError
from ..explain import AttentionFiles, safe_name
from ..output import FORMATS, prediction_tables
from ..plugin import describe, iter_recordings
from ..stream import AGGREGATIONS, RecordingPrediction, predict_recordings
from .common import (
    batch_option,
    configure_plugin,
    device_option,
    load_model_and_plugin,
    strict_option,
    workers_option,
)

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
    explain: bool = False,
    plot: bool = False,
    compile_model: bool = False,
    echo=click.echo,
) -> int:
    """Predict every recording of ``inputs``; returns the number of recordings (this rank's,
    under torchrun)."""
    world = world_from_env()
    if (explain or plot) and out is None:
        flag = "--explain" if explain else "--plot"
        raise BiosigError(f"{flag} writes files: give --out DIRECTORY")
    if world.world_size > 1 and out is None:
        raise BiosigError("under torchrun, give --out: each rank writes its part there")
    plugin, model, meta, device = load_model_and_plugin(
        plugin_name, model_path, rank_device(device_name, world)
    )
    inputs = configure_plugin(plugin, inputs, meta)
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
    classes = meta["classes"]
    damage = DamagePolicy(strict)
    # Under torchrun each rank writes into its own part directory, joined by rank 0 below.
    stage = prepare_part_dir(out, world) if world.is_distributed else None
    count = 0
    with process_group(world):
        ok = False
        try:
            with contextlib.ExitStack() as stack:
                tables = stack.enter_context(
                    prediction_tables(stage or out, classes, fmt, aggregation)
                )
                attention = None
                if explain:
                    directory = _output_directory(stack, out, stage, "attention")
                    attention = stack.enter_context(AttentionFiles(directory))
                plots = _output_directory(stack, out, stage, "plots") if plot else None
                for pred in predict_recordings(
                    model,
                    meta,
                    plugin,
                    iter_recordings(plugin, shard(files, world), damage.handle),
                    device,
                    batch_size=batch_size,
                    hop=hop,
                    on_damage=damage.handle,
                    workers=workers,
                    explain=attention or False,
                    fixed_shapes=compile_model,
                ):
                    tables.write(pred, classes)
                    attention_file = attention.save(pred) if attention else None
                    if plots is not None:
                        _plot(plots, pred, classes, attention_file)
                    _warn_skipped(pred)
                    count += 1
                if count == 0 and not world.is_distributed:
                    raise BiosigError(f"no recordings found in {', '.join(map(str, inputs))}")
            ok = True
        finally:
            try:
                everyone = all_ok(ok, world)
            except Exception:
                if ok:
                    raise
                everyone = False  # this rank's own error, already on its way, says more
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


def _output_directory(
    stack: contextlib.ExitStack, out: Path, stage: Path | None, name: str
) -> Path:
    """Where attention files or plots go while the run lasts: the rank's part directory
    under torchrun, else a temporary directory that replaces ``OUT/name`` whole on success,
    so files of an earlier run never mix with this one's tables."""
    if stage is not None:
        return stage / name
    return stack.enter_context(atomic_directory(out / name))


def _join_parts(out: Path, world_size: int, fmt: str, count: int, inputs: Sequence[str]) -> None:
    """Rank 0, once every rank succeeded: the parts' tables merged, their attention files
    and plots gathered, and the parts removed."""
    try:
        if count == 0:
            raise BiosigError(f"no recordings found in {', '.join(map(str, inputs))}")
        parts = [part_dir(out, World(rank, world_size)) for rank in range(world_size)]
        _check_unique_recordings(parts, fmt)
        for name in ("attention", "plots"):
            if any((part / name).is_dir() for part in parts):
                with atomic_directory(out / name) as gathered:
                    for part in parts:
                        for path in sorted((part / name).glob("*")):
                            os.replace(path, gathered / path.name)
        merge_parts(out, [f"{name}.{fmt}" for name in TABLES], world_size)
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
    directory: Path, pred: RecordingPrediction, classes: Sequence[str], attention: Path | None
) -> None:
    # Imported here: matplotlib costs a second of start-up that other commands never need.
    from ..plot import plot_prediction

    plot_prediction(
        directory / f"{safe_name(pred.recording.id)}.png",
        pred,
        classes,
        attention=None if attention is None else np.load(attention, mmap_mode="r"),
    )


# Unknown `--flags` reach INPUTS, where the plugin's own options are picked out.
@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("inputs", nargs=-1)
@click.option("--plugin", help="Plugin that reads the inputs [default: the model's].")
@click.option(
    "--model",
    "model_path",
    type=click.Path(path_type=Path),
    help="Model directory [default: runs/<plugin>/latest].",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Directory for windows and recordings tables [default: recordings to stdout].",
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="tsv", show_default=True)
@batch_option
@click.option(
    "--hop", type=click.IntRange(min=1), help="Hop between windows [default: the model's]."
)
@workers_option
@click.option(
    "--aggregate",
    "aggregation",
    type=click.Choice(AGGREGATIONS),
    help="How window probabilities make a recording's [default: the plugin's, else mean].",
)
@click.option(
    "--explain",
    is_flag=True,
    help="Also write each window's attention per input sample to OUT/attention/<id>.npy.",
)
@click.option(
    "--plot",
    is_flag=True,
    help="Also draw each recording, its windows coloured by class (and the attention, with "
    "--explain) to OUT/plots/<id>.png.",
)
@click.option(
    "--compile/--no-compile",
    "compile_model",
    default=False,
    show_default=True,
    help="torch.compile the model; the last batch is padded to the full batch size so "
    "that shapes stay fixed. Whether it pays is measured in docs/benchmarks.md.",
)
@device_option
@strict_option
def predict(
    inputs: tuple[str, ...],
    plugin: str | None,
    model_path: Path | None,
    out: Path | None,
    fmt: str,
    batch_size: int | None,
    hop: int | None,
    workers: int,
    aggregation: str | None,
    explain: bool,
    plot: bool,
    compile_model: bool,
    device: str,
    strict: bool,
) -> None:
    """Classify every window of every recording in INPUTS.

    With --out, writes windows, recordings and segments (consecutive windows of one class
    joined) tables there. A plugin's own options (`biosig plugins show NAME`) are given as
    further flags; those that shape its input default to the model's. Under `torchrun
    --nproc-per-node N -m biosig predict …` the files are shared out among the ranks and
    the tables merged at the end.
    """
    run_prediction(
        plugin,
        inputs,
        model_path,
        out,
        fmt,
        batch_size or 256,
        hop,
        device,
        strict,
        workers=workers,
        aggregation=aggregation,
        explain=explain,
        plot=plot,
        compile_model=compile_model,
    )
