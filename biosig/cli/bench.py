"""``biosig bench``: prediction throughput of the model alone and from files, memory, MFU,
and with ``--train`` the speed of training steps."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from ..data.windows import MAX_WINDOW
from ..nn.presets import KERNEL_FEATURES, PRESETS
from ..training.config import BATCH_SIZE
from .common import (
    compute_threads,
    device_option,
    quiet,
    threads_option,
    verbosity_options,
    workers_option,
)

if TYPE_CHECKING:
    from ..inference.bench import BenchResult


@click.command()
@click.option("--plugin", "plugin_name", default="numpy", show_default=True)
@click.option(
    "--input",
    "inputs",
    multiple=True,
    help="Files to read end to end [default: the plugin's demo data, written to a "
    "temporary directory].",
)
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default="small", show_default=True)
@click.option(
    "--window",
    type=click.IntRange(1, MAX_WINDOW),
    help="Window in samples at the model rate [default: the plugin's].",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@device_option
@click.option(
    "--seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=2.0,
    show_default=True,
    help="Least time the model-only measurement runs.",
)
@workers_option
@click.option(
    "--compile/--no-compile",
    "compile_model",
    default=False,
    show_default=True,
    help="torch.compile the model for both measurements; compilation is not timed.",
)
@click.option(
    "--kernel-features",
    type=click.IntRange(min=0),
    default=KERNEL_FEATURES,
    show_default=True,
    metavar="N",
    help="Random-kernel features of the model's ridge branch, as training gives a model of "
    "up to 4096 windows (0: the network alone).",
)
@click.option(
    "--train",
    is_flag=True,
    help="Also time training steps (augmentation, forward, backward, AdamW) and their MFU.",
)
@click.option(
    "--train-batch-size",
    type=click.IntRange(min=1),
    default=BATCH_SIZE,
    show_default=True,
    help="Windows per training step, with --train.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@threads_option
@verbosity_options
def bench(
    plugin_name: str,
    inputs: tuple[str, ...],
    preset: str,
    window: int | None,
    batch_size: int,
    device: str,
    seconds: float,
    workers: int,
    compile_model: bool,
    kernel_features: int,
    train: bool,
    train_batch_size: int,
    as_json: bool,
) -> None:
    """Windows per second of the model alone (random windows already on the device) and
    end to end (files through the plugin, as `biosig predict` reads them), their ratio,
    peak host and device memory, and the model FLOPs utilisation (MFU) against the device's
    float32 and bf16 matrix rates, measured in the same run. --train adds training steps
    per second and their MFU. The model is untrained: speed does not depend on the
    weights."""
    compute_threads(workers)  # before torch loads OpenMP
    # Imported here, not above: torch takes seconds to import, which --help need not pay.
    from ..inference.bench import run_bench

    result = run_bench(
        plugin_name, inputs, preset, window, batch_size, device, seconds, workers, compile_model,
        kernel_features, progress=not quiet(), train=train, train_batch_size=train_batch_size,
    )  # fmt: skip
    if as_json:
        click.echo(json.dumps(result.as_dict()))
        return
    click.echo("\n".join(_report(result)))


def _report(result: BenchResult) -> list[str]:
    """The lines ``biosig bench`` prints without ``--json``."""
    lines = [
        f"plugin              {result.plugin} ({result.n_recordings} recordings, "
        f"{result.e2e_windows} windows end to end)",
        f"device              {result.device}",
        f"preset              {result.preset} ({result.parameters:,} parameters)"
        + (", compiled" if result.compile else ""),
        f"random kernels      {result.kernel_features or 'none'}",
        f"window              {result.window}",
        f"batch size          {result.batch_size}",
        f"reader threads      {result.workers}",
        f"compute threads     {result.threads}",
        f"model only          {result.model_windows_per_s:,.1f} windows/s",
        f"end to end          {result.e2e_windows_per_s:,.1f} windows/s",
        f"end to end / model  {result.e2e_over_model:.3f}",
        f"peak host memory    {result.peak_host_mb:,.0f} MiB",
        "peak device memory  "
        + ("-" if result.peak_device_mb is None else f"{result.peak_device_mb:,.0f} MiB"),
        f"matrix rate         {result.matmul_fp32_gflops:,.0f} GFLOP/s float32, "
        f"{result.matmul_bf16_gflops:,.0f} GFLOP/s bf16 (measured)",
        f"MFU                 {result.mfu:.3f} ({result.mfu_bf16:.3f} of the bf16 rate)",
    ]
    if result.training is not None:
        trained = result.training
        lines += [
            f"training            {trained.windows_per_s:,.1f} windows/s "
            f"(batches of {trained.batch_size})",
            f"training MFU        {trained.mfu:.3f} ({trained.mfu_bf16:.3f} of the bf16 rate)",
        ]
    return lines
