"""Synthetic vibration for the demo and the tests: bearing-like signals in CWRU's MATLAB
layout, and motor-like tri-axial CSVs.

A bearing signal is shaft harmonics (fr about 29.95 Hz, 1797 rpm) plus noise. A localised
fault adds an impulse each time a ball rolls over it, at the fault's characteristic
frequency (multiples of fr for CWRU's SKF 6205 drive-end bearing), every impulse ringing a
structural resonance near 3 kHz that decays within a millisecond or two. An inner-race
fault turns with the shaft, so its impulses are amplitude-modulated at fr; a ball fault's
at the cage frequency. The impulse spacing slips by a percent or so, as real rolling
elements do, so a model must learn the pattern, not one period.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from biosig import DemoData

SHAFT_HZ = 1797 / 60  # 29.95 Hz at CWRU's 0 hp load
#: Fault frequencies as multiples of the shaft rate (CWRU drive-end bearing geometry).
BPFI, BPFO, BSF, FTF = 5.4152, 3.5848, 2.357, 0.3983
RESONANCE_HZ = 3000.0
CLASSES = ("normal", "inner_race", "ball", "outer_race")
#: CWRU's own rates: the normal baseline at 48 kHz, the fault files at 12 kHz.
CWRU_RATES = {"normal": 48000, "inner_race": 12000, "ball": 12000, "outer_race": 12000}
#: CWRU-like file stems and record numbers, one per class.
CWRU_FILES = {
    "normal": ("Normal_0", 97),
    "inner_race": ("IR007_0", 105),
    "ball": ("B007_0", 118),
    "outer_race": ("OR007@6_0", 130),
}
#: Each fault's impact rate (a multiple of the shaft's) and impact strength.
FAULTS = {"inner_race": (BPFI, 0.8), "ball": (BSF, 0.35), "outer_race": (BPFO, 1.0)}


def _resonance(impulses: np.ndarray, fs: float, rng: np.random.Generator) -> np.ndarray:
    """Impulses ringing a damped resonance (a two-pole filter: cheap at any length)."""
    from scipy.signal import lfilter

    freq = RESONANCE_HZ * rng.uniform(0.9, 1.1)
    radius = np.exp(-2 * np.pi * 400.0 / fs)  # about 400 Hz wide: rings for ~1-2 ms
    theta = 2 * np.pi * freq / fs
    return lfilter([1.0], [1.0, -2 * radius * np.cos(theta), radius**2], impulses)


def bearing_signal(
    label: str, fs: float, seconds: float, rng: np.random.Generator, rpm: float = 1797
) -> np.ndarray:
    """One drive-end accelerometer trace of class ``label`` (see :data:`CLASSES`), float64
    in g-like units."""
    if label not in CLASSES:
        raise ValueError(f"unknown bearing class {label!r}; choose from {', '.join(CLASSES)}")
    n = int(round(seconds * fs))
    t = np.arange(n) / fs
    fr = rpm / 60
    x = sum(
        amplitude * np.sin(2 * np.pi * k * fr * t + rng.uniform(0, 2 * np.pi))
        for k, amplitude in ((1, 0.02), (2, 0.008), (3, 0.004))
    )
    x = x + 0.01 * np.sin(2 * np.pi * 360 * t + rng.uniform(0, 2 * np.pi))  # a line CWRU shows
    if label != "normal":
        multiple, strength = FAULTS[label]
        period = fs / (multiple * fr)
        # impulse times slip by about 1 % per period, as rolling elements do
        times = np.cumsum(period * (1 + 0.01 * rng.standard_normal(int(n / period) + 2)))
        times = times[times < n - 1] - rng.uniform(0, period)
        times = times[times >= 0]
        impulses = np.zeros(n)
        amplitude = strength * rng.uniform(0.8, 1.2, size=times.size)
        if label == "inner_race":  # the defect turns in and out of the load zone
            amplitude *= 1 + 0.6 * np.cos(2 * np.pi * fr * times / fs)
        elif label == "ball":  # the ball is carried round by the cage
            amplitude *= 1 + 0.5 * np.cos(2 * np.pi * FTF * fr * times / fs)
        np.add.at(impulses, times.astype(int), amplitude)
        x = x + _resonance(impulses, fs, rng)
    noise = 0.02 * rng.standard_normal(n) * rng.uniform(0.8, 1.2)
    return (x + noise) * rng.uniform(0.5, 2.0)


def write_cwru_like(directory: Path, seed: int = 0, seconds: float = 2.0) -> dict[str, Path]:
    """CWRU-like MATLAB v5 files, one per class: ``Normal_0.mat`` at 48 kHz holding
    ``X097_DE_time``, ``X097_FE_time`` and ``X097RPM``; fault files at 12 kHz that add
    ``_BA_time``. Variables are ``(N, 1)`` float64 as CWRU's are. Returns paths by class."""
    import scipy.io

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = {}
    for label in CLASSES:
        stem, number = CWRU_FILES[label]
        fs = CWRU_RATES[label]
        rpm = 1797 + int(rng.integers(-1, 2))
        name = f"X{number:03d}"
        variables = {
            f"{name}_DE_time": bearing_signal(label, fs, seconds, rng, rpm)[:, None],
            f"{name}_FE_time": 0.4 * bearing_signal(label, fs, seconds, rng, rpm)[:, None],
        }
        if label != "normal":  # as in CWRU: its 48 kHz files have no base-plate channel
            variables[f"{name}_BA_time"] = 0.1 * bearing_signal(label, fs, seconds, rng)[:, None]
        variables[f"{name}RPM"] = np.array([[rpm]], dtype=np.uint16)
        path = directory / f"{stem}.mat"
        scipy.io.savemat(path, variables, format="5")
        paths[label] = path
    return paths


def write_motor_csv(
    path: Path, faulty: bool, seed: int = 0, seconds: float = 5.0, fs: int = 1000
) -> Path:
    """A motor-like tri-axial CSV (``timestamp,accX,accY,accZ``) at ``fs`` Hz: timestamps in
    seconds with float noise (``0.009000000000000001``), standardised axes, and a faulty
    motor's stronger harmonics and rail saturation."""
    rng = np.random.default_rng(seed)
    n = int(seconds * fs)
    # summed, not multiplied, as a logger accumulating its clock writes them
    t = np.cumsum(np.full(n, 1.0 / fs)) - 1.0 / fs
    axes = []
    for axis in range(3):
        base = rng.uniform(24, 26)
        x = np.sin(2 * np.pi * base * t + rng.uniform(0, 6.3))
        if faulty:
            x += 0.8 * np.sin(2 * np.pi * 2 * base * t + rng.uniform(0, 6.3))
            x += 0.5 * np.sign(np.sin(2 * np.pi * 3 * base * t))
        x += 0.5 * rng.standard_normal(n)
        x = (x - x.mean()) / x.std()
        if faulty and axis == 2:
            x = np.clip(x, -0.6, 0.6)  # the sensor's rail, hit often
        axes.append(x)
    data = np.column_stack([t, *axes])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("timestamp,accX,accY,accZ\n")
        for row in data:
            handle.write(",".join(repr(float(v)) for v in row) + "\n")
    return path


def write_demo_data(directory: Path, seed: int = 0, seconds: float = 2.0) -> DemoData:
    """Four CWRU-like bearing files of ``seconds`` each (normal at 48 kHz, three faults at
    12 kHz) and a manifest giving each its class and rate, for ``biosig demo``."""
    directory = Path(directory)
    paths = write_cwru_like(directory / "cwru", seed=seed, seconds=seconds)
    manifest = directory / "manifest.csv"
    lines = ["path,label,fs"] + [
        f"cwru/{paths[label].name},{label},{CWRU_RATES[label]}" for label in CLASSES
    ]
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return DemoData(
        inputs=(directory / "cwru",),
        labels="manifest",
        description=(
            "4 synthetic CWRU-like bearing recordings (normal 48 kHz, inner race, ball, outer "
            "race 12 kHz), one per class, split in time"
        ),
        # 1024-sample windows (85 ms, 14 inner-race impacts) keep the demo within seconds
        settings={
            "epochs": 5,
            "batch_size": 8,
            "window": 1024,
            "hop": 512,
            "options": {"manifest": str(manifest)},
        },
    )
