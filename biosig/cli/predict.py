"""``biosig predict``: stream recordings through a trained model and write per-window and
per-recording tables."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import click

from ..damaged import DamagePolicy
from ..errors import BiosigError
from ..output import FORMATS, prediction_tables
from ..plugin import describe, iter_recordings
from ..stream import predict_recordings
from .common import (
    batch_option,
    configure_plugin,
    device_option,
    load_model_and_plugin,
    strict_option,
)

log = logging.getLogger("biosig")


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
    echo=click.echo,
) -> int:
    """Predict every recording of ``inputs``; returns the number of recordings."""
    plugin, model, meta, device = load_model_and_plugin(plugin_name, model_path, device_name)
    inputs = configure_plugin(plugin, inputs, meta)
    if not inputs:
        raise BiosigError("no input files given")
    files = plugin.find(inputs)
    classes = meta["classes"]
    damage = DamagePolicy(strict)
    count = 0
    with prediction_tables(out, classes, fmt) as tables:
        for pred in predict_recordings(
            model,
            meta,
            plugin,
            iter_recordings(plugin, files, damage.handle),
            device,
            batch_size=batch_size,
            hop=hop,
            on_damage=damage.handle,
        ):
            tables.write(pred, classes)
            if pred.n_skipped:
                log.warning(
                    "%s: %d of %d windows skipped: they hold missing samples "
                    "(a gap, or the warm-up of trailing features)",
                    describe(pred.recording),
                    pred.n_skipped,
                    pred.n_skipped + len(pred.starts),
                )
            count += 1
        if count == 0:
            raise BiosigError(f"no recordings found in {', '.join(map(str, inputs))}")
    damage.report()
    if out is not None:
        echo(f"{count} recordings predicted; tables written to {out}", err=True)
    return count


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
    device: str,
    strict: bool,
) -> None:
    """Classify every window of every recording in INPUTS.

    With --out, writes windows, recordings and segments (consecutive windows of one class
    joined) tables there. A plugin's own options (`biosig plugins show NAME`) are given as
    further flags; those that shape its input default to the model's.
    """
    run_prediction(plugin, inputs, model_path, out, fmt, batch_size or 256, hop, device, strict)
