"""Device choice and mixed precision."""

from __future__ import annotations

import contextlib
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


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (no loss scaling needed, unlike fp16); full precision on CPU,
    where bf16 matmuls are slower than float32 on most processors."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
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
