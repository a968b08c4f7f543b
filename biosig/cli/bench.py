"""``biosig bench``: prediction throughput of the model alone and from files, and memory."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click
import torch

from ..bench import (
    bf16_matmul_rate,
    end_to_end_throughput,
    flops_per_window,
    model_throughput,
    peak_host_mb,
)
from ..device import resolve_device
from ..errors import BiosigError
from ..model import PRESETS, SignalNet, count_parameters, model_config
from ..plugin import iter_recordings
from ..registry import get_plugin
from .common import device_option, workers_option


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
    type=click.IntRange(min=1),
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
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
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
    as_json: bool,
) -> None:
    """Windows per second of the model alone (random windows already on the device) and
    end to end (files through the plugin, as `biosig predict` reads them), their ratio,
    peak host and device memory, and on CUDA the model FLOPs utilisation against the
    device's measured bf16 matrix rate. The model is untrained: speed does not depend on
    the weights."""
    plugin = get_plugin(plugin_name)
    torch_device = resolve_device(device)
    window = int(window or plugin.defaults.window)
    with tempfile.TemporaryDirectory(prefix="biosig-bench-") as scratch:
        if not inputs:
            demo = plugin.make_demo_data(Path(scratch), seed=0)
            if demo is None:
                raise BiosigError(f"plugin {plugin_name!r} has no demo data: give --input")
            plugin.configure(demo.settings.get("options", {}))
            inputs = tuple(str(p) for p in demo.inputs)
        recordings = list(iter_recordings(plugin, plugin.find(inputs)))
        if not recordings:
            raise BiosigError(f"no recordings found in {', '.join(inputs)}")
        n_channels = len(recordings[0].channels)
        classifier = SignalNet(model_config(preset, n_channels, 2)).to(torch_device)
        model = torch.compile(classifier) if compile_model else classifier
        normalization = {"mode": "window"}
        meta = {
            "window": window,
            "hop": window,  # each sample once, as a long recording is predicted
            "sample_rate": float(plugin.defaults.sample_rate),
            "model": {"in_channels": n_channels},
            "normalization": normalization,
            "classes": ["a", "b"],
        }
        if torch_device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(torch_device)
        alone = model_throughput(
            model, n_channels, window, batch_size, torch_device, normalization, seconds
        )
        # as many windows as the model-only figure ran, in full batches
        e2e = end_to_end_throughput(
            model,
            meta,
            plugin,
            recordings,
            torch_device,
            batch_size,
            alone.windows,
            workers,
            fixed_shapes=compile_model,
        )
    mfu = None
    peak_device = None
    if torch_device.type == "cuda":
        peak_device = torch.cuda.max_memory_allocated(torch_device) / 2**20
        flops = flops_per_window(classifier, n_channels, window)
        mfu = alone.per_second * flops / bf16_matmul_rate(torch_device)
    result = {
        "device": str(torch_device),
        "preset": preset,
        "window": window,
        "batch_size": batch_size,
        "workers": workers,
        "compile": compile_model,
        "model_windows_per_s": alone.per_second,
        "e2e_windows_per_s": e2e.per_second,
        "e2e_over_model": e2e.per_second / alone.per_second if alone.per_second else None,
        "peak_host_mb": peak_host_mb(),
        "peak_device_mb": peak_device,
        "mfu": mfu,
    }
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(
        "\n".join(
            [
                f"plugin              {plugin.name} ({len(recordings)} recordings, "
                f"{e2e.windows} windows end to end)",
                f"device              {result['device']}",
                f"preset              {preset} ({count_parameters(classifier):,} parameters)"
                + (", compiled" if compile_model else ""),
                f"window              {window}",
                f"batch size          {batch_size}",
                f"reader threads      {workers}",
                f"model only          {alone.per_second:,.1f} windows/s",
                f"end to end          {e2e.per_second:,.1f} windows/s",
                f"end to end / model  {result['e2e_over_model']:.3f}",
                f"peak host memory    {result['peak_host_mb']:,.0f} MiB",
                "peak device memory  "
                + ("-" if peak_device is None else f"{peak_device:,.0f} MiB"),
                "MFU                 " + ("-" if mfu is None else f"{mfu:.3f}"),
            ]
        )
    )
