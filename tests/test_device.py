"""Device choice, the precision a CPU computes in, and running out of memory: one line
saying what needed it and what to change."""

from __future__ import annotations

import pytest
import torch

from biosig import BiosigError
from biosig.device import CPU_BF16_ENV, autocast, cpu_bf16, memory_for, out_of_memory


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't "
            "allocate memory: you tried to allocate 4096000000000 bytes."
        ),
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
        MemoryError(),
    ],
)
def test_running_out_of_memory_is_one_line_with_advice(error: Exception) -> None:
    assert out_of_memory(error)
    with pytest.raises(BiosigError) as excinfo, memory_for("a batch of 9 windows", "use less"):
        raise error
    message = str(excinfo.value)
    assert message.startswith("a batch of 9 windows: out of memory (")
    assert message.endswith("; use less") and "\n" not in message


def test_other_errors_pass_through() -> None:
    with pytest.raises(RuntimeError, match="shape mismatch"), memory_for("x", "y"):
        raise RuntimeError("shape mismatch")


def test_a_real_allocation_beyond_the_machine_is_caught() -> None:
    expected = pytest.raises(BiosigError, match=r"huge: out of memory \(.*\); smaller")
    with expected, memory_for("huge", "smaller"):
        torch.empty(2**62, dtype=torch.uint8)


def test_auto_picks_cuda_then_mps_then_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    from biosig.device import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(BiosigError, match="--device mps: Apple's MPS is not available"):
        resolve_device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


def test_cpu_bf16_follows_amx_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CPU_BF16_ENV, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert cpu_bf16()
    monkeypatch.setenv(CPU_BF16_ENV, "0")
    assert not cpu_bf16()
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.delenv(CPU_BF16_ENV)
    assert not cpu_bf16()
    monkeypatch.setenv(CPU_BF16_ENV, "1")
    assert cpu_bf16()


@pytest.mark.parametrize(("told", "dtype"), [("1", torch.bfloat16), ("0", torch.float32)])
def test_autocast_on_the_cpu_computes_in_the_chosen_precision(
    told: str, dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CPU_BF16_ENV, told)
    layer = torch.nn.Linear(4, 2)
    with autocast(torch.device("cpu")):
        assert layer(torch.randn(3, 4)).dtype == dtype
