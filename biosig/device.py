"""Device choice and mixed precision."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from .errors import BiosigError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else Apple's MPS when present, else the CPU;
    asking for a device the machine lacks is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BiosigError(f"--device {name}: CUDA is not available on this machine")
    if name.startswith("mps") and not torch.backends.mps.is_available():
        raise BiosigError(f"--device {name}: Apple's MPS is not available on this machine")
    try:
        return torch.device(name)
    except RuntimeError:
        raise BiosigError(f"--device {name}: not a device (use auto, cpu, cuda or mps)") from None


#: ``0`` keeps a CPU with AMX in float32; ``1`` asks for bf16 on any CPU.
CPU_BF16_ENV = "BIOSIG_CPU_BF16"


def cpu_bf16() -> bool:
    """Whether the CPU computes in bf16: where it has AMX tiles, whose bf16 matrix units
    ran the ``small`` preset's training steps 2.1 times and its prediction 3 times as fast
    as float32 (docs/benchmarks.md), unless :data:`CPU_BF16_ENV` says otherwise. Elsewhere
    bf16 is emulated or unmeasured, so float32 stays."""
    chosen = os.environ.get(CPU_BF16_ENV, "").strip()
    if chosen in ("0", "1"):
        return chosen == "1"
    return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


def computes_in_bf16(device: torch.device) -> bool:
    """Whether models on ``device`` run under bf16 autocast: on CUDA (no loss scaling
    needed, unlike fp16) and on a CPU with native bf16 matrix units (:func:`cpu_bf16`)."""
    return device.type == "cuda" or (device.type == "cpu" and cpu_bf16())


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast where :func:`computes_in_bf16`, full precision otherwise. Losses, the
    random-kernel features and the ridge logits stay in float32 either way."""
    if computes_in_bf16(device):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failing for want of memory: CUDA's
    ``OutOfMemoryError``, Python's ``MemoryError``, or the CPU allocator's ``RuntimeError``
    ("can't allocate memory")."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)


@contextlib.contextmanager
def memory_for(what: str, advice: str) -> Iterator[None]:
    """Turn running out of memory inside the block into one line saying what needed the
    memory and what to change (``--batch-size``, ``--window``), instead of an internal
    error quoting the allocator."""
    try:
        yield
    except Exception as exc:
        if not out_of_memory(exc):
            raise
        text = str(exc).strip()
        detail = text.splitlines()[0][:160] if text else type(exc).__name__
        raise BiosigError(f"{what}: out of memory ({detail}); {advice}") from None
