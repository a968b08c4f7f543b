"""The synthetic ECG/EEG writers: files read back with wfdb / pyedflib hold what they promise.

Every check reads the written files with the reference readers, never the generator's
internals, so these tests also vouch that the files are valid WFDB / EDF+ as real data is.
"""

from __future__ import annotations

import re
from collections import Counter
from itertools import pairwise
from pathlib import Path

import numpy as np
import pyedflib
import pytest
import wfdb
from biosig_wfdb.synthetic import (
    ECG_CLASSES,
    EEG_CHANNELS,
    write_ecg_records,
    write_eeg_records,
)
from scipy import signal as sps

BEATS = {"N", "A", "V"}
LEFT = ("C3", "FC3", "CP3")  # left-hemisphere channels among the default eight
RIGHT = ("C4", "FC4", "CP4")


def _stem(hea: Path) -> str:
    """The record name wfdb's readers take: the path without ``.hea``."""
    return str(hea.with_suffix(""))


def _rhythm(ann: wfdb.Annotation) -> list[tuple[int, str]]:
    """``(sample, aux)`` of the ``+`` rhythm annotations."""
    return [
        (int(s), a)
        for s, y, a in zip(ann.sample, ann.symbol, ann.aux_note, strict=True)
        if y == "+"
    ]


def _beats(ann: wfdb.Annotation) -> tuple[np.ndarray, list[str]]:
    """Samples and symbols of the beat annotations (everything but ``+``)."""
    keep = [i for i, y in enumerate(ann.symbol) if y != "+"]
    return ann.sample[keep], [ann.symbol[i] for i in keep]


def _highpass(x: np.ndarray, fs: float, cutoff: float = 0.5) -> np.ndarray:
    """Zero-phase removal of baseline wander, as an ECG reader would detrend."""
    b, a = sps.butter(2, cutoff / (fs / 2), "high")
    return sps.filtfilt(b, a, x, axis=0)


def _af_mask(ann: wfdb.Annotation, n: int) -> np.ndarray:
    """Per-sample AF flag from ``+`` annotations: AF from ``(AFIB`` to the next ``(N``."""
    mask = np.zeros(n, dtype=bool)
    rhythm = _rhythm(ann)
    for (start, note), (stop, _) in pairwise([*rhythm, (n, "")]):
        mask[start:stop] = note == "(AFIB"
    return mask


@pytest.fixture(scope="module")
def ecg(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[wfdb.Record, wfdb.Annotation]]:
    """The demo defaults: 6 patients x 2 records of 120 s at 360 Hz."""
    paths = write_ecg_records(tmp_path_factory.mktemp("ecg"))
    return [(wfdb.rdrecord(_stem(p)), wfdb.rdann(_stem(p), "atr")) for p in paths]


@pytest.fixture(scope="module")
def eeg_paths(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_eeg_records(tmp_path_factory.mktemp("eeg"))


@pytest.fixture(scope="module")
def edf_paths(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_eeg_records(tmp_path_factory.mktemp("edf"), edf=True)


# ---------------------------------------------------------------------------------- ECG ------


def test_ecg_records_have_the_promised_layout(ecg) -> None:
    assert len(ecg) == 12
    names = [rec.record_name for rec, _ in ecg]
    assert names[:3] == ["p01_1", "p01_2", "p02_1"]
    for rec, _ in ecg:
        assert re.match(r"p(\d+)_", rec.record_name)
        assert rec.fs == 360
        assert rec.sig_len == 120 * 360
        assert rec.p_signal.shape == (120 * 360, 2)
        assert rec.sig_name == ["MLII", "V1"]
        assert rec.units == ["mV", "mV"]
        assert rec.fmt == ["212", "212"]
        assert rec.comments[0] in ECG_CLASSES
        # A QRS of about a millivolt, not volts or microvolts (p2p over the record).
        assert 0.8 < np.ptp(_highpass(rec.p_signal[:, 0], rec.fs)) < 5.0


def test_rhythm_types_spread_over_patients(ecg) -> None:
    classes: dict[str, set[str]] = {}
    for rec, _ in ecg:
        patient = re.match(r"p(\d+)_", rec.record_name).group(1)
        classes.setdefault(patient, set()).add(rec.comments[0])
    normal, persistent, paroxysmal = ECG_CLASSES
    kinds = Counter()
    for found in classes.values():
        if paroxysmal in found:  # a paroxysmal patient may also have all-sinus records
            assert found <= {paroxysmal, normal}
            kinds[paroxysmal] += 1
        else:
            assert len(found) == 1, found  # the other patients are consistent
            kinds[found.pop()] += 1
    assert all(kinds[c] >= 2 for c in ECG_CLASSES), kinds


def test_beat_symbols_are_n_a_v_with_few_ectopics(ecg) -> None:
    counts = Counter()
    for _, ann in ecg:
        assert set(ann.symbol) <= BEATS | {"+"}
        assert np.all(np.diff(ann.sample) > 0)  # sorted, and no two annotations share a sample
        for symbol, aux in zip(ann.symbol, ann.aux_note, strict=True):
            if symbol != "+":
                assert aux == ""
        counts.update(y for y in ann.symbol if y != "+")
    total = sum(counts.values())
    assert set(counts) == BEATS
    for ectopic in ("A", "V"):
        assert 0.005 < counts[ectopic] / total < 0.08, counts


def test_r_peak_annotations_sit_on_the_qrs_peak(ecg) -> None:
    checked = 0
    for rec, ann in ecg:
        fs = rec.fs
        x = np.abs(_highpass(rec.p_signal[:, 0], fs))
        half = int(0.1 * fs)
        tolerance = round(0.01 * fs)
        for sample, symbol in zip(*_beats(ann), strict=True):
            window = x[sample - half : sample + half + 1]
            assert len(window) == 2 * half + 1  # beats keep away from the record edges
            offset = int(np.argmax(window)) - half
            assert abs(offset) <= tolerance, (rec.record_name, sample, symbol, offset)
            checked += 1
    assert checked > 1500


def test_heart_rate_is_physiological(ecg) -> None:
    for rec, ann in ecg:
        bpm = len(_beats(ann)[0]) / (rec.sig_len / rec.fs / 60)
        if rec.comments[0] == ECG_CLASSES[0]:
            assert 60 <= bpm <= 100, (rec.record_name, bpm)
        else:  # AF: an irregular, often faster ventricular response
            assert 60 <= bpm <= 130, (rec.record_name, bpm)


def test_rhythm_annotations_follow_cpsc2021(ecg) -> None:
    normal, persistent, paroxysmal = ECG_CLASSES
    for rec, ann in ecg:
        rhythm = _rhythm(ann)
        label = rec.comments[0]
        if label == normal:
            assert rhythm == []
        elif label == persistent:
            assert rhythm == [(0, "(AFIB"), (rec.sig_len - 1, "(N")]
        else:
            notes = [note for _, note in rhythm]
            assert rhythm[0][0] == 0
            assert set(notes) == {"(N", "(AFIB"}
            assert all(a != b for a, b in pairwise(notes)), notes  # they alternate
            starts = [s for s, _ in rhythm]
            if notes[-1] == "(N" and starts[-1] == rec.sig_len - 1:
                starts = starts[:-1]  # the closing marker of a final AF episode
            # Whole episodes (not the one the record cuts short) last 20-60 s.
            lengths = np.diff(starts) / rec.fs
            assert np.all((lengths > 19) & (lengths < 61)), lengths


def _clean_rr(ann: wfdb.Annotation, fs: float, af: np.ndarray) -> tuple[list, list]:
    """RR intervals (s) between consecutive N beats with no ectopic beat next to them, split
    by rhythm (both beats in AF / both in sinus)."""
    samples, symbols = _beats(ann)
    sinus, fib = [], []
    for i in range(1, len(samples) - 1):
        if symbols[i - 1 : i + 2] != ["N"] * 3:
            continue
        rr = (samples[i] - samples[i - 1]) / fs
        if af[samples[i]] and af[samples[i - 1]]:
            fib.append(rr)
        elif not af[samples[i]] and not af[samples[i - 1]]:
            sinus.append(rr)
    return sinus, fib


def test_rr_is_irregular_in_af_only(ecg) -> None:
    cv = {"sinus": [], "af": []}
    for rec, ann in ecg:
        sinus, fib = _clean_rr(ann, rec.fs, _af_mask(ann, rec.sig_len))
        for key, rr in (("sinus", sinus), ("af", fib)):
            if len(rr) >= 20:
                cv[key].append(np.std(rr) / np.mean(rr))
    assert len(cv["sinus"]) >= 6 and len(cv["af"]) >= 4
    assert max(cv["sinus"]) < 0.08, cv
    assert min(cv["af"]) > 0.12, cv
    assert min(cv["af"]) > 2 * max(cv["sinus"])


def _average_beat(x: np.ndarray, samples: np.ndarray, fs: float) -> np.ndarray:
    """Mean of ``x`` from -0.35 s to +0.39 s around each sample (an ensemble average cancels
    noise and the unsynchronised f-waves). Beats keep 0.4 s from the record edges."""
    offsets = np.arange(int(-0.35 * fs), int(0.39 * fs))
    return x[samples[:, None] + offsets].mean(axis=0)


def test_p_waves_in_sinus_not_in_af(ecg) -> None:
    """The P wave (~170 ms before R) stands out of the PR segment in sinus beats only."""
    p_height = {"sinus": [], "af": []}
    for rec, ann in ecg:
        fs = rec.fs
        x = _highpass(rec.p_signal[:, 0], fs)
        af = _af_mask(ann, rec.sig_len)
        samples, symbols = _beats(ann)
        # N beats after a long enough RR that the previous T wave has ended before the P.
        rr_before = np.diff(samples, prepend=0) / fs
        normal = samples[(np.array(symbols) == "N") & (rr_before >= 0.7)]
        lead = int(0.35 * fs)
        for key, chosen in (("sinus", normal[~af[normal]]), ("af", normal[af[normal]])):
            if len(chosen) < 20:
                continue
            beat = _average_beat(x, chosen, fs)
            p = beat[lead - int(0.18 * fs) : lead - int(0.16 * fs)].mean()
            pr_segment = beat[lead - int(0.065 * fs) : lead - int(0.055 * fs)].mean()
            p_height[key].append(p - pr_segment)
    assert min(p_height["sinus"]) > 0.06, p_height
    assert max(np.abs(p_height["af"])) < 0.03, p_height


def test_ectopic_beats_are_premature_and_pvcs_wide(ecg) -> None:
    coupling = {"A": [], "V": []}
    for rec, ann in ecg:
        fs = rec.fs
        samples, symbols = _beats(ann)
        rr = np.diff(samples) / fs
        for i in range(2, len(samples)):
            # The interval into an ectopic beat against the normal interval before it.
            # (in sinus records: AF intervals are too irregular to define prematurity)
            normal_before = symbols[i - 2 : i] == ["N", "N"]
            if symbols[i] in coupling and normal_before and rec.comments[0] == ECG_CLASSES[0]:
                coupling[symbols[i]].append(rr[i - 1] / rr[i - 2])
        x = _highpass(rec.p_signal[:, 0], fs)
        symbols_arr = np.array(symbols)
        if (symbols_arr == "V").sum() < 2:
            continue
        widths = {}
        for kind in ("N", "V"):
            beat = _average_beat(x, samples[symbols_arr == kind], fs)
            peak = int(0.35 * fs)
            # QRS width: samples around R where |x| exceeds half the R amplitude.
            above = np.abs(beat) > 0.5 * np.abs(beat[peak])
            lo, hi = peak, peak
            while above[lo - 1]:
                lo -= 1
            while above[hi + 1]:
                hi += 1
            widths[kind] = (hi - lo + 1) / fs
            if kind == "V":  # the T wave (~330 ms after R) is opposite to the main QRS lobe
                assert np.sign(beat[peak + int(0.33 * fs)]) == -np.sign(beat[peak])
        assert widths["V"] > 1.6 * widths["N"], (rec.record_name, widths)
    assert np.median(coupling["A"]) < 0.8 and np.median(coupling["V"]) < 0.75, coupling


def test_short_records_still_carry_every_beat_and_rhythm(tmp_path: Path) -> None:
    paths = write_ecg_records(tmp_path, n_patients=3, records_per_patient=1, seconds=20.0, fs=250)
    labels = set()
    for path in paths:
        rec, ann = wfdb.rdrecord(_stem(path)), wfdb.rdann(_stem(path), "atr")
        assert rec.fs == 250 and rec.sig_len == 5000
        labels.add(rec.comments[0])
        symbols = set(ann.symbol)
        assert "V" in symbols
        if rec.comments[0] != ECG_CLASSES[1]:  # every record with sinus beats has an A
            assert "A" in symbols
        if rec.comments[0] == ECG_CLASSES[2]:
            assert {note for _, note in _rhythm(ann)} == {"(N", "(AFIB"}
    assert labels == set(ECG_CLASSES)


# ---------------------------------------------------------------------------------- EEG ------


def _events(stem: str, sig_len: int) -> list[tuple[int, int, str]]:
    ann = wfdb.rdann(stem, "event")
    assert set(ann.symbol) == {"+"}
    starts = [int(s) for s in ann.sample]
    labels = [note.lstrip("(") for note in ann.aux_note]
    return [
        (a, b, label) for (a, b), label in zip(pairwise([*starts, sig_len]), labels, strict=True)
    ]


def test_eeg_records_have_the_promised_layout(eeg_paths) -> None:
    assert [p.name for p in eeg_paths[:3]] == ["S001R01.hea", "S001R02.hea", "S002R01.hea"]
    assert len(eeg_paths) == 8
    for path in eeg_paths:
        rec = wfdb.rdrecord(_stem(path))
        assert rec.fs == 160 and rec.sig_len == 60 * 160
        assert rec.sig_name == list(EEG_CHANNELS[:8])
        assert rec.sig_name[:3] == ["C3", "Cz", "C4"]
        assert rec.units == ["uV"] * 8
        rms = rec.p_signal.std(axis=0)
        assert np.all((rms > 10) & (rms < 100)), rms  # tens of microvolts


def test_eeg_events_tile_the_record(eeg_paths) -> None:
    labels = Counter()
    for path in eeg_paths:
        sig_len = wfdb.rdheader(_stem(path)).sig_len
        events = _events(_stem(path), sig_len)
        assert events[0][0] == 0
        assert all(a[1] == b[0] for a, b in pairwise(events))  # back to back
        assert events[-1][1] == sig_len
        durations = np.array([stop - start for start, stop, _ in events]) / 160
        assert np.all((durations[:-1] >= 3.9) & (durations[:-1] <= 4.4)), durations
        assert 1.0 <= durations[-1] <= 5.5
        names = [label for _, _, label in events]
        assert names[0::2] == ["T0"] * len(names[0::2])  # rest between every two tasks
        assert set(names[1::2]) == {"T1", "T2"}
        labels.update(names)
    assert labels["T1"] > 20 and labels["T2"] > 20


def _mu_power(path: Path) -> dict[str, dict[str, float]]:
    """Mean 8-13 Hz Welch power per class and channel, skipping each interval's first 0.5 s
    (the desynchronisation takes a moment to set in)."""
    rec = wfdb.rdrecord(_stem(path))
    fs = rec.fs
    power: dict[str, dict[str, list[float]]] = {}
    for start, stop, label in _events(_stem(path), rec.sig_len):
        if stop - start < 3 * fs:
            continue  # a last interval cut short by the end of the record
        segment = rec.p_signal[start + int(0.5 * fs) : stop]
        freqs, psd = sps.welch(segment, fs=fs, nperseg=fs, axis=0)
        band = (freqs >= 8) & (freqs <= 13)
        for name, value in zip(rec.sig_name, psd[band].mean(axis=0), strict=True):
            power.setdefault(label, {}).setdefault(name, []).append(value)
    return {
        label: {name: float(np.mean(v)) for name, v in per.items()} for label, per in power.items()
    }


def test_imagery_desynchronises_the_contralateral_mu_rhythm(eeg_paths) -> None:
    """T1 (left fist) lowers mu power over the right hemisphere, T2 over the left, and
    the other hemisphere barely changes. Band power from ~30 s of each class is noisy (mu comes
    in bursts), so each run must show the contralateral drop and the pooled runs the rest."""
    ratios = {"contra": [], "ipsi": []}
    for path in eeg_paths:
        mu = _mu_power(path)
        for task, contra, ipsi in (("T1", RIGHT, LEFT), ("T2", LEFT, RIGHT)):
            for side, names in (("contra", contra), ("ipsi", ipsi)):
                ratios[side].append(np.mean([mu[task][n] / mu["T0"][n] for n in names]))
            assert ratios["contra"][-1] < 0.7, (path.name, task, ratios)
    contra, ipsi = np.mean(ratios["contra"]), np.mean(ratios["ipsi"])
    assert contra < 0.5 and 0.75 < ipsi < 1.3, ratios
    assert contra < 0.6 * ipsi


def test_eeg_has_an_alpha_peak_over_1_over_f(eeg_paths) -> None:
    rec = wfdb.rdrecord(_stem(eeg_paths[0]))
    freqs, psd = sps.welch(rec.p_signal, fs=rec.fs, nperseg=2 * rec.fs, axis=0)
    mean = psd.mean(axis=1)
    alpha = mean[(freqs >= 8) & (freqs <= 13)].max()
    assert alpha > 3 * mean[(freqs >= 15) & (freqs <= 20)].mean()  # a peak, not a slope
    assert mean[(freqs >= 1) & (freqs <= 3)].mean() > mean[(freqs >= 25) & (freqs <= 35)].mean()


def test_overall_level_does_not_give_the_class_away(eeg_paths) -> None:
    """Broadband power changes far less between classes than it varies between runs."""
    class_ratio, run_level = [], []
    for path in eeg_paths:
        rec = wfdb.rdrecord(_stem(path))
        level = {}
        for start, stop, label in _events(_stem(path), rec.sig_len):
            level.setdefault(label, []).append(rec.p_signal[start:stop].var())
        t0 = np.mean(level["T0"])
        class_ratio += [np.mean(level["T1"]) / t0, np.mean(level["T2"]) / t0]
        run_level.append(t0)
    assert min(class_ratio) > 0.65
    assert max(run_level) / min(run_level) > 1.0 / min(class_ratio)


def test_edf_variant_matches_the_wfdb_one(eeg_paths, edf_paths) -> None:
    assert [p.stem for p in edf_paths] == [p.stem for p in eeg_paths]
    for edf_path, hea in zip(edf_paths, eeg_paths, strict=True):
        rec = wfdb.rdrecord(_stem(hea))
        reader = pyedflib.EdfReader(str(edf_path))
        try:
            assert reader.filetype == pyedflib.FILETYPE_EDFPLUS
            assert reader.getSignalLabels() == list(EEG_CHANNELS[:8])
            assert reader.getFileDuration() == 60
            assert reader.getPhysicalDimension(0) == "uV"
            assert all(reader.getSampleFrequency(i) == 160 for i in range(8))
            samples = np.column_stack([reader.readSignal(i) for i in range(8)])
            onsets, durations, labels = reader.readAnnotations()
        finally:
            reader.close()
        # Same seed, same signal: both formats store 0.1 uV steps.
        assert np.abs(samples - rec.p_signal).max() <= 0.1 + 1e-6
        events = _events(_stem(hea), rec.sig_len)
        assert list(labels) == [label for _, _, label in events]
        np.testing.assert_allclose(onsets, [start / 160 for start, _, _ in events], atol=1e-4)
        np.testing.assert_allclose(
            durations, [(stop - start) / 160 for start, stop, _ in events], atol=1e-4
        )


def test_bad_eeg_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_channels"):
        write_eeg_records(tmp_path, n_channels=len(EEG_CHANNELS) + 1)
    with pytest.raises(ValueError, match="whole"):
        write_eeg_records(tmp_path, seconds=30.5, edf=True)


# ------------------------------------------------------------------------------ determinism --


def _contents(paths: list[Path]) -> dict[str, bytes]:
    directory = paths[0].parent
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.mark.parametrize("kind", ["ecg", "eeg", "edf"])
def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path, kind: str) -> None:
    def write(name: str, seed: int) -> dict[str, bytes]:
        if kind == "ecg":
            paths = write_ecg_records(tmp_path / name, n_patients=3, seconds=30.0, seed=seed)
        else:
            paths = write_eeg_records(
                tmp_path / name, n_subjects=2, seconds=20.0, seed=seed, edf=kind == "edf"
            )
        return _contents(paths)

    first, again, other = write("a", 0), write("b", 0), write("c", 1)
    expected = {"ecg": {".hea", ".dat", ".atr"}, "eeg": {".hea", ".dat", ".event"}, "edf": {".edf"}}
    assert {Path(name).suffix for name in first} == expected[kind]
    assert first == again
    assert first.keys() == other.keys()
    for name in first:
        if not name.endswith(".hea"):  # headers may coincide; the data must not
            assert first[name] != other[name], name
