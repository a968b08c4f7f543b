"""Throughput and memory of prediction (the model alone, and files through a plugin) and
of training steps.

``model_throughput`` times the model on random windows already on the device (the ceiling);
``end_to_end_throughput`` times the whole prediction path (reading, preprocessing,
windowing, batching, copies, model) on real files, so their ratio says how much of the
ceiling the input pipeline leaves. The model's FLOPs per window over the device's
measured matrix rate give the model FLOPs utilisation (MFU), on a CPU as on CUDA: against
the float32 rate and the bf16 rate, both measured in the same run. ``training_figures``
times the optimiser steps ``biosig train`` takes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

from ..checkpoint import CheckpointMeta, plugin_stamp
from ..data.normalize import NormalizationSpec, normalize
from ..data.windows import plan_windows
from ..device import autocast, computes_in_bf16, memory_for, resolve_device
from ..errors import BiosigError
from ..nn.model import SignalNet, count_parameters, model_config
from ..nn.presets import KERNEL_FEATURES, MIN_KERNEL_FEATURES
from ..plugin.contract import Plugin, Recording, iter_recordings
from ..plugin.registry import get_plugin
from ..training.config import BATCH_SIZE
from ..training.throughput import training_step
from .stream import predict_recordings

#: Each measurement runs at least this long (after a warm-up), so timer noise stays small.
MIN_SECONDS = 2.0


@dataclass
class Throughput:
    """Windows per second over ``windows`` windows timed for ``seconds``."""

    windows: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.windows / self.seconds if self.seconds > 0 else 0.0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def model_throughput(
    model: torch.nn.Module,
    n_channels: int,
    window: int,
    batch_size: int,
    device: torch.device,
    normalization: NormalizationSpec,
    min_seconds: float = MIN_SECONDS,
) -> Throughput:
    """The model alone on random ``[batch_size, n_channels, window]`` batches on the device,
    normalised as in prediction; three warm-up batches are not counted."""
    model.eval()
    what = f"--batch-size {batch_size} windows of {window} samples on {device}"
    with memory_for(what, "use a smaller --batch-size or --window"):
        x = torch.randn(batch_size, n_channels, window, device=device)
        lengths = torch.full((batch_size,), window, device=device)

    def step() -> None:
        with (
            memory_for(what, "use a smaller --batch-size or --window"),
            torch.inference_mode(),
            autocast(device),
        ):
            model(normalize(x, lengths, normalization), lengths)

    return timed(step, batch_size, device, min_seconds)


def timed(
    step: Callable[[], None], batch_size: int, device: torch.device, min_seconds: float
) -> Throughput:
    """``step`` (one batch of ``batch_size`` windows) run after three uncounted warm-up
    steps, until at least three steps and ``min_seconds`` have passed."""
    for _ in range(3):
        step()
    _sync(device)
    batches, started = 0, time.perf_counter()
    while True:
        step()
        batches += 1
        if batches >= 3:
            _sync(device)
            elapsed = time.perf_counter() - started
            if elapsed >= min_seconds:
                return Throughput(batches * batch_size, elapsed)


def end_to_end_throughput(
    model: torch.nn.Module,
    meta: CheckpointMeta,
    plugin: Plugin,
    recordings: Sequence[Recording],
    device: torch.device,
    batch_size: int,
    min_windows: int = 0,
    workers: int = 1,
    fixed_shapes: bool = False,
    progress: bool = False,
) -> Throughput:
    """Every window of ``recordings`` through :func:`biosig.inference.stream.predict_recordings`,
    from the files on disk to probabilities on the host, with ``workers`` reader threads;
    the recordings are read again, in one stream, until at least ``min_windows`` windows
    have passed, so that a small data set still fills the batches the model-only figure is
    measured on. ``progress`` shows a bar of the windows through, on a terminal."""
    window, hop, fs = meta.window, meta.hop, meta.sample_rate
    per_pass = sum(len(plan_windows(r, fs, window, hop)[1]) for r in recordings)
    passes = max(1, math.ceil(min_windows / max(per_pass, 1)))
    stream = (rec for _ in range(passes) for rec in recordings)
    windows, started = 0, time.perf_counter()
    # None: shown on a terminal only; its updates, once a batch, cost nothing measurable
    with tqdm(
        total=passes * per_pass, desc="end to end", unit=" windows",
        disable=None if progress else True,
    ) as bar:  # fmt: skip
        predictions = predict_recordings(
            model, meta, plugin, stream, device, batch_size, workers=workers,
            fixed_shapes=fixed_shapes, on_windows=bar.update,
        )  # fmt: skip
        for prediction in predictions:
            windows += len(prediction.starts)
        _sync(device)
    return Throughput(windows, time.perf_counter() - started)


def flops_per_window(
    model: torch.nn.Module, n_channels: int, window: int, backward: bool = False
) -> float:
    """Floating-point operations on one window (a multiply-add counts two) of the forward
    pass, or with ``backward`` of the forward and backward passes as training takes them
    (the optimiser's few operations per parameter left out, as MFU conventionally does),
    counted by ``torch.utils.flop_counter`` on the CPU."""
    was = next(model.parameters()).device
    model = model.to("cpu").train(backward)
    x = torch.randn(1, n_channels, window)
    lengths = torch.full((1,), window)
    grad = contextlib.nullcontext() if backward else torch.inference_mode()
    with grad, FlopCounterMode(display=False) as counter:
        logits = model(x, lengths)
        if backward:
            logits.sum().backward()
    model.zero_grad(set_to_none=True)
    model.to(was)
    return float(counter.get_total_flops())


def matmul_rate(device: torch.device, dtype: torch.dtype, min_seconds: float = 1.0) -> float:
    """The device's measured square matrix-multiply rate in FLOP/s for ``dtype``: the
    denominator of MFU, measured rather than taken from a data sheet (8192² on CUDA, 2048²
    on a CPU, where a larger product takes seconds)."""
    n = 8192 if device.type == "cuda" else 2048
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    products = timed(lambda: a @ b, 1, device, min_seconds)
    return 2 * n**3 * products.per_second


def peak_host_mb() -> float:
    """This process's peak resident memory so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS


@dataclass
class BenchResult:
    """What ``biosig bench`` measured (:meth:`as_dict` is what ``--json`` prints)."""

    device: str
    preset: str
    window: int
    batch_size: int
    workers: int
    compile: bool
    model_windows_per_s: float
    e2e_windows_per_s: float
    e2e_over_model: float | None
    peak_host_mb: float
    peak_device_mb: float | None
    mfu: float | None
    plugin: str = ""
    n_recordings: int = 0
    e2e_windows: int = 0
    parameters: int = 0
    kernel_features: int = 0
    #: the measured matrix-multiply rates MFU is taken against, in GFLOP/s
    matmul_fp32_gflops: float = 0.0
    matmul_bf16_gflops: float = 0.0
    #: model-only FLOP/s over the bf16 rate (``mfu`` is over the rate of the precision the
    #: model runs in: bf16 on CUDA and on a CPU with AMX, where the two are the same)
    mfu_bf16: float | None = None
    training: TrainingFigures | None = None
    #: torch's intra-op threads during the measurement (biosig's thread policy, --threads)
    threads: int = 0

    def as_dict(self) -> dict[str, Any]:
        keys = (
            "device", "preset", "window", "batch_size", "workers", "compile",
            "model_windows_per_s", "e2e_windows_per_s", "e2e_over_model", "peak_host_mb",
            "peak_device_mb", "mfu", "mfu_bf16", "matmul_fp32_gflops", "matmul_bf16_gflops",
            "kernel_features", "threads",
        )  # fmt: skip
        figures = {k: getattr(self, k) for k in keys}
        if self.training is not None:
            figures.update({f"train_{k}": v for k, v in dataclasses.asdict(self.training).items()})
        return figures


@dataclass
class TrainingFigures:
    """``bench --train``: optimiser steps per second as ``train`` takes them, and their MFU
    (forward and backward FLOPs over the measured float32 and bf16 matrix rates)."""

    windows_per_s: float
    batch_size: int
    mfu: float
    mfu_bf16: float


@dataclass
class MatmulRates:
    """The device's measured matrix-multiply rates in FLOP/s, and the one its models run at."""

    fp32: float
    bf16: float
    device: torch.device

    @property
    def native(self) -> float:
        """The rate of the precision the models run in (:func:`biosig.device.autocast`)."""
        return self.bf16 if computes_in_bf16(self.device) else self.fp32


def measure_matmul_rates(device: torch.device, seconds: float) -> MatmulRates:
    """float32 and bf16 rates, each measured for about half of ``seconds``."""
    return MatmulRates(
        matmul_rate(device, torch.float32, seconds / 2),
        matmul_rate(device, torch.bfloat16, seconds / 2),
        device,
    )


def training_figures(
    preset: str,
    n_channels: int,
    window: int,
    batch_size: int,
    device: torch.device,
    rates: MatmulRates,
    seconds: float,
    compile_model: bool = False,
) -> TrainingFigures:
    """Training windows per second of an untrained ``preset`` network (the random-kernel
    branch left out: its features are computed once per window before training, not per
    step) in batches of ``batch_size``, and its MFU."""
    network = SignalNet(model_config(preset, n_channels, 2)).to(device)
    flops = flops_per_window(network, n_channels, window, backward=True)
    model = torch.compile(network) if compile_model else network
    step = training_step(model, n_channels, window, batch_size, device, NormalizationSpec("window"))
    throughput = timed(step, batch_size, device, seconds)
    achieved = throughput.per_second * flops
    return TrainingFigures(
        throughput.per_second, batch_size, achieved / rates.native, achieved / rates.bf16
    )


def run_bench(
    plugin_name: str,
    inputs: Sequence[str],
    preset: str = "small",
    window: int | None = None,
    batch_size: int = 256,
    device: str = "auto",
    seconds: float = MIN_SECONDS,
    workers: int = 1,
    compile_model: bool = False,
    kernel_features: int = KERNEL_FEATURES,
    progress: bool = False,
    train: bool = False,
    train_batch_size: int = BATCH_SIZE,
) -> BenchResult:
    """Windows per second of an untrained ``preset`` model alone and end to end on
    ``inputs`` (the plugin's demo data when none), as ``biosig bench`` reports them.

    The model has the random-kernel branch that training gives a model of up to
    :data:`~biosig.training.config.RIDGE_WINDOWS` windows (``kernel_features`` features;
    0: none), since its feature pass is part of every prediction's cost. MFU is measured on
    every device, against the matrix rates measured in the same run. ``train`` adds the
    training steps' speed (:func:`training_figures`) in batches of ``train_batch_size``."""
    if 0 < kernel_features < MIN_KERNEL_FEATURES:
        raise BiosigError(
            f"--kernel-features {kernel_features}: give 0 (none) or at least {MIN_KERNEL_FEATURES}"
        )
    plugin = get_plugin(plugin_name)
    torch_device = resolve_device(device)
    window = int(window or plugin.defaults.window)
    with tempfile.TemporaryDirectory(prefix="biosig-bench-") as scratch:
        recordings = _bench_recordings(plugin, inputs, Path(scratch))
        n_channels = len(recordings[0].channels)
        branch = {
            "kernel_features": kernel_features,
            "kernel_window": window if kernel_features else 0,
        }
        classifier = SignalNet(model_config(preset, n_channels, 2, **branch)).to(torch_device)
        model = torch.compile(classifier) if compile_model else classifier
        normalization = NormalizationSpec("window")
        meta = CheckpointMeta(
            model=classifier.config,
            plugin=plugin_stamp(plugin),
            window=window,
            hop=window,  # each sample once, as a long recording is predicted
            sample_rate=float(plugin.defaults.sample_rate),
            channels=tuple(recordings[0].channels),
            normalization=normalization,
            classes=("a", "b"),
        )
        if torch_device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(torch_device)
        alone = model_throughput(
            model, n_channels, window, batch_size, torch_device, normalization, seconds
        )
        # as many windows as the model-only figure ran, in full batches
        e2e = end_to_end_throughput(
            model, meta, plugin, recordings, torch_device, batch_size, alone.windows, workers,
            fixed_shapes=compile_model, progress=progress,
        )  # fmt: skip
    peak_device = None
    if torch_device.type == "cuda":
        peak_device = torch.cuda.max_memory_allocated(torch_device) / 2**20
    rates = measure_matmul_rates(torch_device, seconds)
    achieved = alone.per_second * flops_per_window(classifier, n_channels, window)
    trained = None
    if train:
        trained = training_figures(
            preset, n_channels, window, train_batch_size, torch_device, rates, seconds,
            compile_model,
        )  # fmt: skip
    return BenchResult(
        str(torch_device), preset, window, batch_size, workers, compile_model,
        alone.per_second, e2e.per_second,
        e2e.per_second / alone.per_second if alone.per_second else None,
        peak_host_mb(), peak_device, achieved / rates.native, plugin.name, len(recordings),
        e2e.windows, count_parameters(classifier), classifier.config.kernel_features,
        rates.fp32 / 1e9, rates.bf16 / 1e9, achieved / rates.bf16, trained,
        torch.get_num_threads(),
    )  # fmt: skip


def _bench_recordings(plugin: Plugin, inputs: Sequence[str], scratch: Path) -> list[Recording]:
    """The recordings of ``inputs``, or of the plugin's demo data written to ``scratch``."""
    if not inputs:
        demo = plugin.make_demo_data(scratch, seed=0)
        if demo is None:
            raise BiosigError(f"plugin {plugin.name!r} has no demo data: give --input")
        plugin.configure(demo.settings.get("options", {}))
        inputs = tuple(str(p) for p in demo.inputs)
    recordings = list(iter_recordings(plugin, plugin.find(inputs)))
    if not recordings:
        raise BiosigError(f"no recordings found in {', '.join(inputs)}")
    return recordings
