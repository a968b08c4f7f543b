"""``biosig bench``: prediction throughput of the model alone and from files, and memory."""

from __future__ import annotations

import json

import click

from ..data.windows import MAX_WINDOW
from ..nn.presets import KERNEL_FEATURES, PRESETS
from .common import device_option, quiet, verbosity_options, workers_option


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
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
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
    as_json: bool,
) -> None:
    """Windows per second of the model alone (random windows already on the device) and
    end to end (files through the plugin, as `biosig predict` reads them), their ratio,
    peak host and device memory, and on CUDA the model FLOPs utilisation against the
    device's measured bf16 matrix rate. The model is untrained: speed does not depend on
    the weights."""
    # Imported here, not above: torch takes seconds to import, which --help need not pay.
    from ..inference.bench import run_bench

    result = run_bench(
        plugin_name, inputs, preset, window, batch_size, device, seconds, workers, compile_model,
        kernel_features, progress=not quiet(),
    )  # fmt: skip
    if as_json:
        click.echo(json.dumps(result.as_dict()))
        return
    click.echo(
        "\n".join(
            [
                f"plugin              {result.plugin} ({result.n_recordings} recordings, "
                f"{result.e2e_windows} windows end to end)",
                f"device              {result.device}",
                f"preset              {preset} ({result.parameters:,} parameters)"
                + (", compiled" if compile_model else ""),
                f"random kernels      {result.kernel_features or 'none'}",
                f"window              {result.window}",
                f"batch size          {batch_size}",
                f"reader threads      {workers}",
                f"model only          {result.model_windows_per_s:,.1f} windows/s",
                f"end to end          {result.e2e_windows_per_s:,.1f} windows/s",
                f"end to end / model  {result.e2e_over_model:.3f}",
                f"peak host memory    {result.peak_host_mb:,.0f} MiB",
                "peak device memory  "
                + ("-" if result.peak_device_mb is None else f"{result.peak_device_mb:,.0f} MiB"),
                "MFU                 " + ("-" if result.mfu is None else f"{result.mfu:.3f}"),
            ]
        )
    )
