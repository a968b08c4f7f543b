"""``biosig bench``: the figures it reports, their keys, and its errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from biosig.data.normalize import NormalizationSpec
from biosig.device import computes_in_bf16
from biosig.inference.bench import flops_per_window, model_throughput
from biosig.nn.model import SignalNet, model_config
from biosig.training.throughput import training_step

KEYS = {
    "device", "preset", "window", "batch_size", "model_windows_per_s", "e2e_windows_per_s",
    "e2e_over_model", "peak_host_mb", "peak_device_mb", "mfu",
    "workers", "compile",  # the settings measured, beside the figures the issue names
    "kernel_features",  # the random-kernel branch a default training run gives the model
    "mfu_bf16", "matmul_fp32_gflops", "matmul_bf16_gflops",  # MFU's denominators, measured
    "threads",  # torch's intra-op threads while measuring
}  # fmt: skip
TRAIN_KEYS = {"train_windows_per_s", "train_batch_size", "train_mfu", "train_mfu_bf16"}
CPU = torch.device("cpu")
QUICK = ("--preset", "tiny", "--window", "64", "--batch-size", "32", "--seconds", "0.2")


def test_json_holds_every_figure(synthetic_npy: Path, run_cli) -> None:
    result = run_cli(
        "bench", "--plugin", "numpy", "--input", synthetic_npy / "signals.npy", *QUICK, "--json"
    )
    assert result.code == 0, result.err
    figures = json.loads(result.out)
    assert set(figures) == KEYS
    assert (figures["device"], figures["preset"], figures["window"]) == ("cpu", "tiny", 64)
    assert figures["batch_size"] == 32
    assert (figures["workers"], figures["compile"]) == (1, False)
    assert figures["threads"] == torch.get_num_threads()  # in-process: the test's own
    assert figures["kernel_features"] == 9996
    assert figures["model_windows_per_s"] > 0 and figures["e2e_windows_per_s"] > 0
    ratio = figures["e2e_windows_per_s"] / figures["model_windows_per_s"]
    assert abs(figures["e2e_over_model"] - ratio) < 1e-9
    assert figures["peak_host_mb"] > 50  # torch alone holds more than this
    assert figures["peak_device_mb"] is None  # no CUDA
    # MFU on a CPU: against the rate of the precision the model runs in, and the bf16 rate
    assert figures["matmul_fp32_gflops"] > 1 and figures["matmul_bf16_gflops"] > 0.1
    assert 0 < figures["mfu"] < 1
    assert abs(figures["mfu"] / figures["mfu_bf16"] / bf16_over_native(figures) - 1) < 1e-6


def bf16_over_native(figures: dict) -> float:
    """The bf16 matrix rate over the rate of the precision the model ran in."""
    native = "matmul_bf16_gflops" if computes_in_bf16(CPU) else "matmul_fp32_gflops"
    return figures["matmul_bf16_gflops"] / figures[native]


def test_train_adds_training_steps_and_their_mfu(synthetic_npy: Path, run_cli) -> None:
    result = run_cli(
        "bench", "--plugin", "numpy", "--input", synthetic_npy / "signals.npy", *QUICK,
        "--train", "--train-batch-size", "16", "--json",
    )  # fmt: skip
    assert result.code == 0, result.err
    figures = json.loads(result.out)
    assert set(figures) == KEYS | TRAIN_KEYS
    assert figures["train_batch_size"] == 16
    assert figures["train_windows_per_s"] > 0 and 0 < figures["train_mfu"] < 1
    ratio = figures["train_mfu"] / figures["train_mfu_bf16"]
    assert abs(ratio / bf16_over_native(figures) - 1) < 1e-6


def test_the_network_alone_is_measured_with_no_random_kernels(synthetic_npy: Path, run_cli):
    result = run_cli(
        "bench", "--plugin", "numpy", "--input", synthetic_npy / "signals.npy", *QUICK,
        "--kernel-features", "0", "--json",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert json.loads(result.out)["kernel_features"] == 0


def test_table_names_the_windows_read_end_to_end(synthetic_npy: Path, run_cli) -> None:
    result = run_cli("bench", "--plugin", "numpy", "--input", synthetic_npy / "signals.npy", *QUICK)
    assert result.code == 0, result.err
    # 30 recordings of 256 samples: four 64-sample windows each, without overlap, read as
    # many times as it takes to match the model-only figure's full batches
    match = re.search(r"numpy \(30 recordings, (\d+) windows end to end\)", result.out)
    assert match and int(match.group(1)) % 120 == 0 and int(match.group(1)) >= 3 * 32
    assert "end to end / model" in result.out
    assert re.search(r"MFU                 0\.\d{3} \(0\.\d{3} of the bf16 rate\)", result.out)
    assert re.search(r"matrix rate         [\d,]+ GFLOP/s float32, [\d,]+ GFLOP/s bf16", result.out)
    assert "training" not in result.out  # only with --train


def test_unknown_plugin_is_one_line(run_cli) -> None:
    result = run_cli("bench", "--plugin", "nope")
    assert result.code != 0 and len(result.err_lines) == 1
    assert "nope" in result.err_lines[0]


def test_flops_grow_with_the_window() -> None:
    model = SignalNet(model_config("tiny", 1, 2))
    short, long = flops_per_window(model, 1, 512), flops_per_window(model, 1, 1024)
    assert short > 1e6
    assert 1.8 < long / short < 2.5  # convolutions linear, attention a little more


def test_training_flops_are_forward_and_backward() -> None:
    model = SignalNet(model_config("tiny", 1, 2))
    forward = flops_per_window(model, 1, 512)
    # the backward pass costs about twice the forward: gradients of inputs and of weights
    assert 2.5 < flops_per_window(model, 1, 512, backward=True) / forward < 3.5
    assert all(p.grad is None for p in model.parameters())  # counting leaves no gradients


def test_a_training_step_trains() -> None:
    model = SignalNet(model_config("tiny", 2, 2))
    before = [p.detach().clone() for p in model.parameters()]
    step = training_step(model, 2, 128, 8, torch.device("cpu"), NormalizationSpec("window"))
    step()
    after = list(model.parameters())
    changed = [not torch.equal(a, b.detach()) for a, b in zip(before, after, strict=True)]
    assert sum(changed) > len(changed) // 2  # AdamW moved most parameters
    assert model.training


def test_model_throughput_counts_whole_batches() -> None:
    model = SignalNet(model_config("tiny", 2, 3))
    measured = model_throughput(
        model, 2, 128, 8, torch.device("cpu"), NormalizationSpec("window"), min_seconds=0.05
    )
    assert measured.windows % 8 == 0 and measured.windows >= 24
    assert measured.per_second == measured.windows / measured.seconds


def test_too_few_random_kernels_is_one_line(run_cli) -> None:
    result = run_cli("bench", "--plugin", "numpy", "--kernel-features", "10")
    assert result.code != 0
    assert result.err_lines == ["error: --kernel-features 10: give 0 (none) or at least 84"]
