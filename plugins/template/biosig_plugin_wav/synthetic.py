"""Synthetic heart sounds for ``biosig demo`` and the tests, written as real WAV files.

Three classes, one folder each (``--labels folder``), every window carrying its evidence:

* ``normal``: the two heart sounds of each beat, S1 (a low thump, about 50 Hz) and S2 (a
  shorter, higher one, about 80 Hz, a third of a beat later), over faint noise;
* ``murmur``: the same with a hiss (150-400 Hz noise) filling the gap between S1 and S2;
* ``gallop``: the same with a third, softer sound (S3, about 40 Hz) just after S2.

The heart rate, loudness and timing vary from file to file, so the classes differ in shape,
not in level.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from biosig import DemoData
from scipy.io import wavfile
from scipy.signal import butter, sosfilt

CLASSES = ("normal", "murmur", "gallop")
RATE = 4000


def _thump(rng: np.random.Generator, fs: int, freq: float, length_s: float) -> np.ndarray:
    t = np.arange(int(length_s * fs)) / fs
    envelope = np.sin(np.pi * t / length_s) ** 2
    return envelope * np.sin(2 * np.pi * freq * rng.uniform(0.9, 1.1) * t)


def _add(x: np.ndarray, at: int, sound: np.ndarray) -> None:
    """Add ``sound`` to ``x`` from sample ``at`` on, cut at the end of ``x``."""
    if at < len(x):
        piece = sound[: len(x) - at]
        x[at : at + len(piece)] += piece


def heart_sound(rng: np.random.Generator, label: str, seconds: float, fs: int = RATE) -> np.ndarray:
    """One recording of class ``label``: float64 samples within about [-1, 1]."""
    if label not in CLASSES:
        raise ValueError(f"unknown synthetic class {label!r}")
    n = int(seconds * fs)
    x = 0.02 * rng.normal(size=n)
    hiss = sosfilt(butter(4, [150, 400], btype="bandpass", fs=fs, output="sos"), rng.normal(size=n))
    beat = 60.0 / rng.uniform(55, 95)  # seconds per beat
    start = rng.uniform(0, beat)
    while start < seconds:
        s1 = int(start * fs)
        s2 = int((start + beat * rng.uniform(0.3, 0.36)) * fs)
        _add(x, s1, _thump(rng, fs, 50, 0.10))
        _add(x, s2, 0.8 * _thump(rng, fs, 80, 0.07))
        if label == "murmur":
            a, b = s1 + int(0.1 * fs), min(s2, n)
            if a < b:
                x[a:b] += 0.25 * hiss[a:b] / hiss.std()
        elif label == "gallop":
            _add(x, s2 + int(rng.uniform(0.12, 0.16) * fs), 0.5 * _thump(rng, fs, 40, 0.06))
        start += beat * rng.uniform(0.95, 1.05)
    return x * rng.uniform(0.4, 0.9) / max(np.abs(x).max(), 1e-9)


def write_wav(path: Path, samples: np.ndarray, fs: int = RATE) -> Path:
    """``samples`` (``[n]`` or ``[n, channels]``, within [-1, 1]) as 16-bit PCM."""
    path.parent.mkdir(parents=True, exist_ok=True)
    wavfile.write(path, fs, np.round(np.clip(samples, -1, 1 - 2**-15) * 32768).astype(np.int16))
    return path


def write_demo_data(
    directory: Path, seed: int = 0, per_class: int = 12, seconds: float = 6.0
) -> DemoData:
    """``per_class`` files of each class in ``directory/<class>/``, 16-bit mono at 4 kHz."""
    directory = Path(directory)
    rng = np.random.default_rng(seed)
    for label in CLASSES:
        for i in range(per_class):
            write_wav(directory / label / f"{label}_{i:03d}.wav", heart_sound(rng, label, seconds))
    return DemoData(
        inputs=(directory,),
        labels="folder",
        description=(
            f"{per_class * len(CLASSES)} synthetic heart sounds of {seconds:g} s at {RATE} Hz "
            f"(16-bit WAV), one folder per class: {', '.join(CLASSES)}"
        ),
        settings={"epochs": 6},
    )
