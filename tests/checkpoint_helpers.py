"""Checkpoint metadata for tests that build a model by hand rather than train one."""

from __future__ import annotations

from typing import Any

from biosig.checkpoint import CheckpointMeta, PluginStamp
from biosig.data.normalize import NormalizationSpec
from biosig.nn.model import ModelConfig


def meta_for(
    config: ModelConfig,
    classes: list[str] | tuple[str, ...],
    window: int = 96,
    hop: int = 48,
    sample_rate: float = 1.0,
    normalization: str = "window",
    **fields: Any,
) -> CheckpointMeta:
    """Metadata for a model of ``config`` trained (as far as the reader knows) through the
    numpy plugin."""
    return CheckpointMeta(
        model=config,
        plugin=PluginStamp("numpy", "0.1.0"),
        window=window,
        hop=hop,
        sample_rate=sample_rate,
        normalization=NormalizationSpec(normalization),
        classes=tuple(classes),
        **fields,
    )
