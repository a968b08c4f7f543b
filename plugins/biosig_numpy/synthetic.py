"""Synthetic labelled arrays for ``biosig demo`` and the tests.

Three classes whose evidence runs through the whole recording, so every window carries it:
``background`` (1/f noise), ``rhythm`` (the noise plus a slowly drifting oscillation) and
``spikes`` (the noise plus sharp transients at irregular intervals). Signal-to-noise is
set so a classifier must look at shape, not just level or variance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from biosig import DemoData

CLASSES = ("background", "rhythm", "spikes")


def _pink_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    spectrum = rng.normal(size=n // 2 + 1) + 1j * rng.normal(size=n // 2 + 1)
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1]
    noise = np.fft.irfft(spectrum / np.sqrt(freqs), n)
    return noise / noise.std()


def synthetic_signal(rng: np.random.Generator, label: str, n: int) -> np.ndarray:
    """One recording of class ``label`` with ``n`` samples (float32)."""
    x = _pink_noise(rng, n)
    t = np.arange(n)
    if label == "rhythm":
        freq = rng.uniform(0.02, 0.05) * (1 + 0.1 * np.sin(2 * np.pi * t / rng.uniform(400, 900)))
        x += rng.uniform(0.6, 1.0) * np.sin(2 * np.pi * np.cumsum(freq) + rng.uniform(0, 6.3))
    elif label == "spikes":
        position = int(rng.integers(0, 80))
        while position < n:
            width = rng.uniform(1.5, 3.0)
            x += rng.uniform(2.0, 3.5) * np.exp(-0.5 * ((t - position) / width) ** 2)
            position += int(rng.integers(60, 160))
    elif label != "background":
        raise ValueError(f"unknown synthetic class {label!r}")
    return (x * rng.uniform(0.5, 2.0) + rng.normal(0, 0.2)).astype(np.float32)


def synthetic_arrays(
    n_recordings: int, length: int, seed: int = 0, channels: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """``(signals [N, C, L] or [N, L], labels [N])`` with classes balanced and shuffled."""
    rng = np.random.default_rng(seed)
    labels = np.array([CLASSES[i % len(CLASSES)] for i in range(n_recordings)])
    rng.shuffle(labels)
    signals = np.stack(
        [
            np.stack([synthetic_signal(rng, label, length) for _ in range(channels)])
            for label in labels
        ]
    )
    return (signals[:, 0] if channels == 1 else signals), labels


def write_demo_arrays(directory: Path, seed: int = 0) -> DemoData:
    """Write ``signals.npy`` (N, L) and ``labels.npy`` as the reference workflow uses them."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    signals, labels = synthetic_arrays(n_recordings=150, length=2048, seed=seed)
    np.save(directory / "signals.npy", signals)
    np.save(directory / "labels.npy", labels)
    return DemoData(
        inputs=(directory / "signals.npy",),
        labels=directory / "labels.npy",
        description=f"{len(labels)} synthetic recordings of 2048 samples, classes "
        + ", ".join(CLASSES),
        # 2016 random-kernel features rather than 9996, and 150 series rather than 300,
        # keep the demo to seconds.
        settings={"epochs": 8, "kernel_features": 2016},
    )
