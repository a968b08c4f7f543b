"""CUDA correctness: the model under bf16 autocast agrees with float32 on the CPU, a training
step learns, and a model trained and predicted on the GPU gives the CPU's classes. They skip
without CUDA (CI has none); ``benchmarks/gpu_check.sh`` runs them (``-m cuda``)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from biosig.data.normalize import NormalizationSpec
from biosig.device import autocast
from biosig.nn.model import SignalNet, model_config
from biosig.training.throughput import training_step

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]
CUDA = torch.device("cuda")


def test_bf16_autocast_agrees_with_float32_on_the_cpu() -> None:
    torch.manual_seed(0)
    model = SignalNet(model_config("small", 3, 4)).eval()
    x, lengths = torch.randn(64, 3, 1024), torch.full((64,), 1024)
    lengths[::3] = 700  # padded windows too
    with torch.inference_mode():
        expected = model(x, lengths).softmax(-1)
        model.to(CUDA)
        with autocast(CUDA):
            got = model(x.to(CUDA), lengths.to(CUDA)).float().softmax(-1).cpu()
    assert (got - expected).abs().max() < 0.05
    assert (got.argmax(-1) == expected.argmax(-1)).float().mean() >= 0.95


def test_training_steps_on_the_gpu_move_the_weights_and_stay_finite() -> None:
    torch.manual_seed(0)
    model = SignalNet(model_config("tiny", 2, 2)).to(CUDA)
    before = [p.detach().clone() for p in model.parameters()]
    step = training_step(model, 2, 256, 32, CUDA, NormalizationSpec("window"))
    for _ in range(20):
        step()
    torch.cuda.synchronize()
    after = list(model.parameters())
    assert all(torch.isfinite(p).all() for p in after)
    moved = sum(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert moved > len(after) // 2


def _classes(table: Path) -> list[str]:
    with table.open() as handle:
        return [row["label"] for row in csv.DictReader(handle, delimiter="\t")]


def test_trained_and_predicted_on_the_gpu_as_on_the_cpu(synthetic_npy: Path, run_cli, in_tmp):
    data = ("--plugin", "numpy", "--input", synthetic_npy / "signals.npy")
    trained = run_cli(
        "train", *data, "--labels", synthetic_npy / "labels.npy", "--preset", "tiny",
        "--epochs", "2", "--device", "cuda", "--out", "run", "-q",
    )  # fmt: skip
    assert trained.code == 0, trained.err
    for device in ("cuda", "cpu"):
        predicted = run_cli(
            "predict", "--model", "run", "--device", device, "--out", device, "-q",
            synthetic_npy / "signals.npy",
        )  # fmt: skip
        assert predicted.code == 0, predicted.err
    on_gpu, on_cpu = _classes(in_tmp / "cuda/windows.tsv"), _classes(in_tmp / "cpu/windows.tsv")
    assert len(on_gpu) == len(on_cpu) > 0
    agree = sum(a == b for a, b in zip(on_gpu, on_cpu, strict=True)) / len(on_cpu)
    assert agree >= 0.95  # bf16 on the GPU, float32 on the CPU: near-ties may differ
