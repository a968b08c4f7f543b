"""What the ECG model is shown, measured without the network: leads or RR series.

Leave one patient out over the three shared CPSC 2021 patients (8, 21, 101). Each record is
read and preprocessed by the ``ecg`` plugin with ``--signal leads`` or ``--signal rr`` at
100 Hz, cut into 10 s windows at a 5 s hop, each labelled AF where over half its samples lie
in an annotated AF episode, z-scored per window, and turned into biosig's 9996 random-kernel
features (``RandomKernelFeatures``, biases from the training windows); scikit-learn's
``RidgeClassifierCV`` on standardised features is fitted on two patients and scored on the
third. This isolates the representation from the network and the training recipe.

    python benchmarks/ecg_rhythm_signals.py [--data ../shared/data/wfdb/cpsc2021]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import wfdb
from sklearn.linear_model import RidgeClassifierCV
from sklearn.metrics import f1_score
from sklearn.preprocessing import StandardScaler

from biosig.data.windows import make_preprocessor
from biosig.nn.layers.random_kernels import RandomKernelFeatures
from biosig.plugin.contract import iter_recordings
from biosig.plugin.registry import get_plugin

PATIENTS = {"8": (2, 3, 4), "21": (7, 8, 9), "101": (6, 8, 9)}
FS, WINDOW, HOP = 100.0, 1000, 500


def af_mask(header: Path, n: int, fs_record: float) -> np.ndarray:
    """Samples (at FS) inside an annotated AF episode: ``(AFIB`` to the next rhythm mark."""
    annotation = wfdb.rdann(str(header.with_suffix("")), "atr")
    mask, start = np.zeros(n, dtype=bool), None
    marks = zip(annotation.sample, annotation.symbol, annotation.aux_note, strict=True)
    for sample, symbol, note in marks:
        if symbol != "+":
            continue
        at = int(sample * FS / fs_record)
        if note.startswith("(AFIB"):
            start = at
        elif start is not None:
            mask[start:at], start = True, None
    if start is not None:
        mask[start:] = True
    return mask


def patient_windows(data: Path, patient: str, signal: str) -> tuple[np.ndarray, np.ndarray]:
    plugin = get_plugin("ecg")
    plugin.configure({"signal": signal})
    windows, labels = [], []
    for number in PATIENTS[patient]:
        header = data / f"data_{patient}_{number}.hea"
        (rec,) = iter_recordings(plugin, plugin.find([header]))
        preprocess = make_preprocessor(plugin, rec, FS)
        x = np.concatenate([*(preprocess(b) for b in rec.chunks(8192)), preprocess.flush()], 1)
        af = af_mask(header, x.shape[1], rec.fs)
        for start in range(0, x.shape[1] - WINDOW + 1, HOP):
            windows.append(x[:, start : start + WINDOW])
            labels.append(af[start : start + WINDOW].mean() > 0.5)
    x = np.asarray(windows, dtype=np.float32)
    x = (x - x.mean(-1, keepdims=True)) / (x.std(-1, keepdims=True) + 1e-8)
    return x, np.asarray(labels)


def held_out_scores(sets: dict[str, tuple[np.ndarray, np.ndarray]], test: str) -> str:
    train = [p for p in sets if p != test]
    x_train = np.concatenate([sets[p][0] for p in train])
    y_train = np.concatenate([sets[p][1] for p in train])
    x_test, y_test = sets[test]
    kernels = RandomKernelFeatures(x_train.shape[1], WINDOW, 9996)
    with torch.no_grad():
        lengths = torch.full((len(x_train),), WINDOW)
        kernels.fit(torch.from_numpy(x_train), lengths, torch.Generator().manual_seed(0))
        f_train = kernels(torch.from_numpy(x_train)).numpy()
        f_test = kernels(torch.from_numpy(x_test)).numpy()
    scale = StandardScaler().fit(f_train)
    ridge = RidgeClassifierCV(alphas=np.logspace(-3, 3, 10)).fit(scale.transform(f_train), y_train)
    called = ridge.predict(scale.transform(f_test))
    f1 = f1_score(y_test, called, zero_division=0) if y_test.any() or called.any() else None
    f1_text = "n/a" if f1 is None else f"{f1:.3f}"
    return f"AF F1 {f1_text}, accuracy {np.mean(called == y_test):.3f} ({len(y_test)} windows)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/wfdb/cpsc2021"))
    args = parser.parse_args()
    for signal in ("leads", "rr"):
        sets = {p: patient_windows(args.data, p, signal) for p in PATIENTS}
        for test in PATIENTS:
            print(f"--signal {signal}, patient {test} held out: {held_out_scores(sets, test)}")


if __name__ == "__main__":
    main()
