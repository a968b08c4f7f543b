"""Synthetic ECG and EEG recordings, written in the real WFDB and EDF+ formats.

Real PhysioNet records cannot be bundled with the project, so the demo and the tests use these
stand-ins. They are written with the reference writers (``wfdb.wrsamp`` / ``wfdb.wrann`` and
``pyedflib.EdfWriter``) and follow the conventions of the databases they imitate, so the readers
in this plugin meet the same headers, annotation files and label conventions as on real data
(see ``../shared/data/wfdb/README.md`` for the real records they mirror).

ECG (after MIT-BIH Arrhythmia and CPSC 2021): two leads, MLII and V1, in mV.

* **beats** - every beat is a sum of Gaussians (P, Q, R, S, T), the usual caricature of the
  PQRST complex. ``N`` beats come from the sinus node: P wave ~170 ms before a narrow QRS
  (~80 ms), T wave whose delay grows with the square root of the preceding RR (QT adapts to
  rate). ``A`` (premature atrial) beats arrive early with an abnormal (inverted, flat) P and a
  normal QRS, and reset the sinus node. ``V`` (premature ventricular) beats arrive early with no
  P, a wide (~150 ms), large, bizarre QRS and a large T of opposite polarity, followed by a
  compensatory pause. Ectopic beats are a few percent each, so an AAMI N/S/V mapping finds all
  three classes. Morphology varies per patient (wave amplitudes, PVC polarity), per record
  (lead gains) and per beat (jitter, respiratory modulation), so amplitude alone says little.
* **rhythm** - a record is in normal sinus rhythm (RR with respiratory and slower variability,
  CV ~3-5%), persistent atrial fibrillation (no P waves; RR independent and irregular, CV
  ~20-30%; fibrillatory f-waves of 4-8 Hz and a few tens of uV, largest in V1), or paroxysmal
  AF: alternating sinus and AF episodes of 20-60 s.
* **noise** - baseline wander (a 0.1-0.3 Hz sinusoid plus slow drift, up to a few tenths of a
  mV), 50 or 60 Hz mains hum (depending on the patient's "hospital") and white noise of ~10 uV.

Annotations follow CPSC 2021: beat symbols at the R peak, ``+`` rhythm annotations with aux
``(AFIB`` / ``(N``. A persistent-AF record has ``(AFIB`` at sample 0 and a closing ``(N`` at the
last sample; a non-AF record has beat annotations only; a paroxysmal record starts its first
episode at sample 0 and alternates. The record-level class is the header comment.

EEG (after the PhysioNet EEG Motor Movement/Imagery database): channels over the
sensorimotor cortex (C3, Cz, C4, ...) in uV, with back-to-back task intervals T0 (rest),
T1 (imagined left fist) and T2 (imagined right fist) of about 4 s each.

* **background** - 1/f noise (partly shared between channels, as volume conduction mixes
  sources), tens of uV, plus posterior alpha (8-12 Hz), mains hum and white noise.
* **mu rhythm** - a left and a right sensorimotor mu source (narrow band at the subject's alpha
  frequency) project mostly onto channels of their own hemisphere. Imagining a movement
  desynchronises the contralateral mu rhythm (event-related desynchronisation): during T1 the
  right-hemisphere source weakens, during T2 the left one, with a ~0.5 s ramp. The classes are
  told apart by the lateralised 8-13 Hz power, not by overall level (per-run gains vary).

Events are written as a WFDB ``.event`` annotation file (``+`` with aux ``(T0``/``(T1``/``(T2``
at each interval's start, the first at sample 0) or, with ``edf=True``, as EDF+ annotations.

Everything is drawn from ``np.random.default_rng`` seeded by ``seed`` (and by patient/record
numbers, so a record does not change when more are asked for): the same seed writes
byte-identical files.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

import numpy as np

#: Record-level classes as CPSC 2021 writes them in the first header comment.
ECG_CLASSES = (
    "non atrial fibrillation",
    "persistent atrial fibrillation",
    "paroxysmal atrial fibrillation",
)
ECG_LEADS = ("MLII", "V1")
#: MIT-BIH storage: format 212 (12-bit), 200 ADC units per mV (5 uV steps, +-10 mV range).
ECG_FMT = "212"
ECG_GAIN = 200.0

#: Task intervals of the motor-imagery runs and what they stand for.
EEG_EVENTS = {"T0": "rest", "T1": "imagined left fist", "T2": "imagined right fist"}
#: Channel order: the motor strip first, then symmetric neighbours. 10-20 names: odd numbers
#: lie over the left hemisphere, even numbers over the right, ``z`` on the midline.
EEG_CHANNELS = (
    "C3", "Cz", "C4", "FC3", "FC4", "CP3", "CP4", "Pz", "C1", "C2", "C5", "C6", "FC1", "FC2",
    "CP1", "CP2", "FCz", "CPz", "F3", "F4", "P3", "P4", "Fz", "O1", "O2", "Oz",
)  # fmt: skip
#: 16-bit samples at 10 ADC units per uV (0.1 uV steps, +-3276.8 uV range), WFDB and EDF alike.
EEG_FMT = "16"
EEG_GAIN = 10.0

# The Gaussian waves of a beat, one column each: P, Q, R, S, T. Centres (s from the R peak)
# and widths (s) of a normal beat:
_CENTRE = np.array([-0.17, -0.028, 0.0, 0.03, 0.0])  # T's centre is set from the RR interval
_WIDTH = np.array([0.025, 0.009, 0.010, 0.010, 0.06])
#: Amplitudes (mV) of a normal beat in MLII and V1: tall R in MLII; small r, deep S in V1.
_AMPLITUDE = np.array([[0.15, -0.12, 1.0, -0.25, 0.30], [0.08, 0.0, 0.25, -0.90, 0.12]])
#: A beat is drawn from -0.35 s to +0.7 s around its R peak (the T of a slow beat ends by then).
_BEAT_SPAN = (-0.35, 0.7)
#: Beats keep this far (s) from either end of the record so every complex is whole.
_EDGE = 0.4


# --------------------------------------------------------------------------------------------
# ECG
# --------------------------------------------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, n: int, fs: float, knot_seconds: float) -> np.ndarray:
    """Unit-scale random wander: Gaussian knots every ``knot_seconds``, linearly interpolated."""
    step = max(1, int(knot_seconds * fs))
    knots = np.arange(0, n + step, step)
    return np.interp(np.arange(n), knots, rng.normal(size=len(knots)))


def _episodes(rng: np.random.Generator, rhythm: str, seconds: float) -> list[tuple[float, bool]]:
    """Draft rhythm episodes ``[(start_s, is_af), ...]``, the first starting at 0.

    Paroxysmal records alternate 20-60 s episodes from a random first state. There are always
    at least two, and the last lasts at least 10 s where the record allows it (it is merged into
    the one before, or with only two, their boundary moves earlier).
    """
    if rhythm != "paroxysmal":
        return [(0.0, rhythm == "persistent")]
    af = bool(rng.random() < 0.5)
    starts = [0.0]
    while starts[-1] < seconds:
        starts.append(starts[-1] + rng.uniform(20.0, 60.0))
    starts = starts[:-1]  # the last drawn start lies past the end
    if len(starts) > 2 and seconds - starts[-1] < 10.0:
        starts.pop()
    if len(starts) == 1:  # a short record: split it so that both rhythms occur
        starts.append(seconds * rng.uniform(0.3, 0.7))
    elif len(starts) == 2:
        starts[1] = min(starts[1], max(seconds - 10.0, 0.5 * seconds))
    return [(start, af ^ bool(i % 2)) for i, start in enumerate(starts)]


def _beat_train(
    rng: np.random.Generator,
    seconds: float,
    episodes: Sequence[tuple[float, bool]],
    sinus_rr: float,
    af_rr: float,
    af_cv: float,
    p_atrial: float,
    p_ventricular: float,
) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """R-peak times (s), beat symbols, AF flags and preceding RR (s) of one record.

    Sinus RR follows respiration (0.2-0.3 Hz) and slower (~0.1 Hz) oscillations plus 1% jitter;
    AF RR is independent gamma-distributed. If chance has not produced them by then, a ``V``
    and (in sinus rhythm) an ``A`` are forced early on, so even a short record carries ectopic
    beats; an ``A`` whose beat falls in AF after an episode change is written as ``N``.
    """
    starts = np.array([start for start, _ in episodes])
    is_af = np.array([af for _, af in episodes])
    resp_f, resp_phase = rng.uniform(0.2, 0.3), rng.uniform(0, 2 * np.pi)
    lf_f, lf_phase = rng.uniform(0.05, 0.12), rng.uniform(0, 2 * np.pi)
    gamma_shape = 1.0 / af_cv**2  # gamma with mean af_rr and coefficient of variation af_cv
    expected = seconds / min(sinus_rr, af_rr)
    forced_v = int(rng.integers(2, max(3, int(expected * 0.1))))
    forced_a = forced_v + int(rng.integers(2, max(3, int(expected * 0.1))))

    def base_rr(t: float, af: bool) -> float:
        if af:
            return max(0.33, rng.gamma(gamma_shape, af_rr / gamma_shape))
        modulation = 0.03 * np.sin(2 * np.pi * resp_f * t + resp_phase)
        modulation += 0.02 * np.sin(2 * np.pi * lf_f * t + lf_phase)
        return sinus_rr * (1.0 + modulation + rng.normal(0.0, 0.01))

    times, symbols, af_flags, rrs = [], [], [], []
    seen: set[str] = set()
    t, symbol, rr = rng.uniform(_EDGE, _EDGE + 0.6), "N", sinus_rr
    while t < seconds - _EDGE:
        af = bool(is_af[np.searchsorted(starts, t, side="right") - 1])
        if symbol == "A" and af:
            symbol = "N"  # no organised atrial activity to be premature in AF
        seen.add(symbol)
        times.append(t)
        symbols.append(symbol)
        af_flags.append(af)
        rrs.append(rr)
        base = base_rr(t, af)
        # Prematurity is relative to the typical interval, not to one random AF interval, so
        # an ectopic beat never lands inside the previous QRS.
        typical = af_rr if af else base
        if symbol == "V" and af:  # conduction is concealed for a while: a pause after the PVC
            next_symbol, rr = "N", max(base, af_rr) * rng.uniform(1.0, 1.2)
        elif symbol == "V":  # the sinus node is undisturbed: a full compensatory pause
            next_symbol, rr = "N", max(2.0 * base - rr, base)
        elif symbol == "A":  # the sinus node is reset: a slightly long, non-compensatory pause
            next_symbol, rr = "N", base * rng.uniform(1.0, 1.1)
        else:
            u = rng.random()
            # len(times) is the index of the next beat
            if u < p_ventricular or ("V" not in seen and len(times) >= forced_v):
                next_symbol, rr = "V", typical * rng.uniform(0.55, 0.7)
            elif not af and (
                u < p_ventricular + p_atrial or ("A" not in seen and len(times) >= forced_a)
            ):
                next_symbol, rr = "A", base * rng.uniform(0.6, 0.75)
            else:
                next_symbol, rr = "N", base
        t, symbol = t + rr, next_symbol
    return np.array(times), symbols, np.array(af_flags, dtype=bool), np.array(rrs)


def _render_beats(
    rng: np.random.Generator,
    n: int,
    fs: float,
    times: np.ndarray,
    symbols: Sequence[str],
    af: np.ndarray,
    rr_before: np.ndarray,
    morphology: dict[str, np.ndarray | float],
) -> np.ndarray:
    """The two-lead beat signal (n, 2) in mV: one Gaussian per wave per beat, vectorised."""
    nb = len(times)
    symbols_arr = np.array(symbols)
    is_v, is_a = symbols_arr == "V", symbols_arr == "A"
    centre = np.tile(_CENTRE, (nb, 1))
    width = np.tile(_WIDTH, (nb, 1))
    amp = np.tile(morphology["normal"], (nb, 1, 1))  # (beat, lead, wave)
    # QT shortens with rate (Bazett-like square root); T centre ~280 ms at 60 bpm.
    centre[:, 4] = 0.28 * np.sqrt(np.clip(rr_before, 0.4, 1.6))
    # Atrial ectopics: an earlier, narrower, inverted-to-flat P from a low atrial focus.
    centre[is_a, 0] = -0.12
    width[is_a, 0] = 0.02
    amp[is_a, :, 0] *= rng.uniform(-0.8, 0.3, size=(int(is_a.sum()), 1))
    # AF: no P waves at all (the f-waves are added separately).
    amp[af, :, 0] = 0.0
    # Ventricular ectopics: the patient's PVC shape (no P, wide lobes, opposite T).
    centre[is_v] = [0.0, 0.0, 0.0, 0.05, 0.33]
    width[is_v] = [0.02, 0.01, morphology["pvc_width"], 0.03, 0.08]
    amp[is_v] = morphology["pvc"]
    # Beat-to-beat variation: overall jitter and respiratory modulation of the QRS axis.
    amp *= rng.normal(1.0, 0.04, size=(nb, 1, 1))
    amp[:, :, 1:4] *= (
        1.0
        + morphology["resp_depth"]
        * np.sin(2 * np.pi * morphology["resp_f"] * times + morphology["resp_phase"])[:, None, None]
    )

    offsets = np.arange(int(_BEAT_SPAN[0] * fs), int(_BEAT_SPAN[1] * fs) + 1)
    index = np.rint(times * fs).astype(np.int64)[:, None] + offsets  # (beat, sample)
    # Time from the exact (sub-sample) R peak, so the annotation is within half a sample.
    dt = index / fs - times[:, None]
    shape = np.exp(-0.5 * ((dt[:, None, :] - centre[:, :, None]) / width[:, :, None]) ** 2)
    waves = np.einsum("blw,bws->bls", amp, shape)  # (beat, lead, sample)
    inside = (index >= 0) & (index < n)
    signal = np.empty((n, 2))
    for lead in range(2):
        signal[:, lead] = np.bincount(
            index[inside], weights=waves[:, lead, :][inside], minlength=n
        )[:n]
    return signal


def _fibrillatory_waves(rng: np.random.Generator, n: int, fs: float) -> np.ndarray:
    """AF f-waves (n, 2) in mV: 4-8 Hz, wandering frequency and amplitude, bigger in V1."""
    freq = np.clip(rng.uniform(5.0, 7.0) + 0.8 * _smooth_noise(rng, n, fs, 0.5), 4.0, 8.0)
    phase = 2 * np.pi * np.cumsum(freq) / fs
    envelope = np.clip(1.0 + 0.3 * _smooth_noise(rng, n, fs, 1.0), 0.3, None)
    wave = envelope * (np.sin(phase) + 0.3 * np.sin(2 * phase + rng.uniform(0, 2 * np.pi)))
    amplitude = rng.uniform(0.02, 0.05)
    return np.column_stack([amplitude * wave, 1.8 * amplitude * wave])


def _ecg_noise(rng: np.random.Generator, n: int, fs: float, mains: float) -> np.ndarray:
    """Baseline wander, mains hum and white noise (n, 2) in mV."""
    t = np.arange(n) / fs
    noise = np.empty((n, 2))
    for lead in range(2):
        wander = rng.uniform(0.05, 0.2) * np.sin(
            2 * np.pi * rng.uniform(0.1, 0.3) * t + rng.uniform(0, 2 * np.pi)
        )
        wander += 0.03 * _smooth_noise(rng, n, fs, 3.0)
        hum = rng.uniform(0.005, 0.02) * np.sin(2 * np.pi * mains * t + rng.uniform(0, 2 * np.pi))
        if mains >= fs / 2:  # a hum above Nyquist would alias; real front ends filter it out
            hum[:] = 0.0
        noise[:, lead] = wander + hum + rng.normal(0.0, rng.uniform(0.005, 0.015), size=n)
    return noise


def _patient_morphology(rng: np.random.Generator) -> dict[str, np.ndarray | float]:
    """Per-patient beat shapes: scaled normal waves and one unifocal PVC shape."""
    normal = _AMPLITUDE * rng.uniform(0.8, 1.2, size=_AMPLITUDE.shape)
    sign = rng.choice([-1.0, 1.0])  # PVC focus: mainly up or mainly down in MLII
    size = rng.uniform(1.3, 1.8)
    #      P    Q    main lobe              late lobe            T (opposite to the main lobe)
    pvc = np.array(
        [
            [0.0, 0.0, sign * size, -sign * 0.3 * size, -sign * 0.4 * size],
            [0.0, 0.0, -sign * 0.8 * size, sign * 0.25 * size, sign * 0.3 * size],
        ]
    )
    return {
        "normal": normal,
        "pvc": pvc,
        "pvc_width": rng.uniform(0.018, 0.024),
        "resp_depth": rng.uniform(0.02, 0.06),
    }


def _rhythm_annotations(
    times: np.ndarray, episodes: Sequence[tuple[float, bool]], rhythm: str, n: int, fs: float
) -> tuple[list[int], list[str]]:
    """Samples and aux notes of the ``+`` rhythm annotations (CPSC 2021 conventions).

    Paroxysmal episode boundaries are moved to midway between the last beat of one rhythm and
    the first of the next, so no rhythm annotation shares a sample with a beat (the beats keep
    their rhythm: the boundary stays between the same two beats).
    """
    if rhythm == "normal":
        return [], []
    samples, notes = [], []
    for i, (start, af) in enumerate(episodes):
        if i == 0:
            sample = 0
        else:
            after = int(np.searchsorted(times, start))
            if 0 < after < len(times):
                start = 0.5 * (times[after - 1] + times[after])
            sample = min(int(np.rint(start * fs)), n - 2)
        samples.append(sample)
        notes.append("(AFIB" if af else "(N")
    if episodes[-1][1]:  # AF runs to the end: close it on the last sample
        samples.append(n - 1)
        notes.append("(N")
    return samples, notes


def _assign_rhythms(rng: np.random.Generator, n_patients: int) -> list[str]:
    """Rhythm type per patient: the three types in turn, shuffled, so with six or more
    patients each type has at least two."""
    types = [("normal", "persistent", "paroxysmal")[i % 3] for i in range(n_patients)]
    return [types[i] for i in rng.permutation(n_patients)]


def _ecg_record(
    seed: int, patient: int, record: int, rhythm: str, seconds: float, fs: int
) -> tuple[np.ndarray, np.ndarray, list[str], list[str], str]:
    """One record: ``(signal (n, 2) mV, annotation samples, symbols, aux notes, class)``."""
    patient_rng = np.random.default_rng([seed, patient])
    morphology = _patient_morphology(patient_rng)
    mains = 50.0 if patient_rng.random() < 0.5 else 60.0
    sinus_bpm = patient_rng.uniform(62.0, 88.0)

    rng = np.random.default_rng([seed, patient, record])
    # A paroxysmal-AF patient is not in AF in every recording: a third of theirs after the
    # first are sinus throughout, as in real Holter collections.
    if rhythm == "paroxysmal" and record > 1 and rng.random() < 1 / 3:
        rhythm = "normal"
    n = int(round(seconds * fs))
    episodes = _episodes(rng, rhythm, seconds)
    morphology.update(resp_f=rng.uniform(0.2, 0.3), resp_phase=rng.uniform(0, 2 * np.pi))
    times, symbols, af, rr_before = _beat_train(
        rng,
        seconds,
        episodes,
        sinus_rr=60.0 / (sinus_bpm * rng.uniform(0.95, 1.05)),
        af_rr=60.0 / rng.uniform(75.0, 110.0),
        af_cv=rng.uniform(0.18, 0.28),
        p_atrial=rng.uniform(0.02, 0.05),
        p_ventricular=rng.uniform(0.02, 0.05),
    )
    signal = _render_beats(rng, n, fs, times, symbols, af, rr_before, morphology)
    signal *= rng.uniform(0.8, 1.2, size=2)  # electrode placement differs between recordings

    rhythm_samples, rhythm_notes = _rhythm_annotations(times, episodes, rhythm, n, fs)
    if rhythm_samples:
        af_mask = np.zeros(n, dtype=bool)
        # Each annotation's rhythm holds until the next one (or the end of the record).
        bounds = pairwise([*rhythm_samples, n])
        for (start, stop), note in zip(bounds, rhythm_notes, strict=True):
            af_mask[start:stop] = note == "(AFIB"
        signal += _fibrillatory_waves(rng, n, fs) * af_mask[:, None]
    signal += _ecg_noise(rng, n, fs, mains)

    beat_samples = np.rint(times * fs).astype(np.int64)
    samples = np.concatenate([beat_samples, np.array(rhythm_samples, dtype=np.int64)])
    all_symbols = [*symbols, *["+"] * len(rhythm_samples)]
    aux = [*[""] * len(symbols), *rhythm_notes]
    order = np.argsort(samples, kind="stable")
    label = ECG_CLASSES[("normal", "persistent", "paroxysmal").index(rhythm)]
    return (
        signal,
        samples[order],
        [all_symbols[i] for i in order],
        [aux[i] for i in order],
        label,
    )


def write_ecg_records(
    directory: Path,
    n_patients: int = 6,
    records_per_patient: int = 2,
    seconds: float = 120.0,
    fs: int = 360,
    seed: int = 0,
) -> list[Path]:
    """Write 2-lead ECG WFDB records with beat and rhythm annotations; return the ``.hea`` paths.

    Each record ``p{patient:02d}_{k}`` (patients and ``k`` counted from 1, so the group pattern
    ``p(\\d+)_`` finds the patient) is ``.hea`` + ``.dat`` (format 212, 200 units/mV, leads MLII
    and V1 in mV) + ``.atr`` (beats ``N``/``A``/``V`` at the R peaks, ``+`` rhythm annotations
    ``(AFIB``/``(N``). The header's first comment is the record class, one of
    :data:`ECG_CLASSES`. Patients get rhythm types in turn (shuffled by ``seed``): a patient's
    records share their type, except that a paroxysmal patient's later records may be sinus.
    """
    import wfdb

    if n_patients < 1 or records_per_patient < 1:
        raise ValueError("n_patients and records_per_patient must be at least 1")
    if seconds < 5.0:
        raise ValueError(f"records must last at least 5 s, got {seconds}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rhythms = _assign_rhythms(np.random.default_rng(seed), n_patients)
    paths = []
    for patient, rhythm in enumerate(rhythms, start=1):
        for k in range(1, records_per_patient + 1):
            signal, samples, symbols, aux, label = _ecg_record(
                seed, patient, k, rhythm, seconds, fs
            )
            name = f"p{patient:02d}_{k}"
            wfdb.wrsamp(
                name,
                fs,
                units=["mV", "mV"],
                sig_name=list(ECG_LEADS),
                p_signal=signal,
                fmt=[ECG_FMT, ECG_FMT],
                adc_gain=[ECG_GAIN, ECG_GAIN],
                baseline=[0, 0],
                comments=[label],
                write_dir=str(directory),
            )
            wfdb.wrann(name, "atr", samples, symbol=symbols, aux_note=aux, write_dir=str(directory))
            paths.append(directory / f"{name}.hea")
    return paths


# --------------------------------------------------------------------------------------------
# EEG
# --------------------------------------------------------------------------------------------


def _pink(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Unit-variance 1/f noise along the last axis (power inversely proportional to frequency)."""
    n = shape[-1]
    spectrum = rng.normal(size=(*shape[:-1], n // 2 + 1)) + 1j * rng.normal(
        size=(*shape[:-1], n // 2 + 1)
    )
    freqs = np.fft.rfftfreq(n)
    spectrum[..., 1:] /= np.sqrt(freqs[1:])
    spectrum[..., 0] = 0.0
    noise = np.fft.irfft(spectrum, n)
    return noise / noise.std(axis=-1, keepdims=True)


def _narrowband(
    rng: np.random.Generator, count: int, n: int, fs: float, centre: float, width: float
) -> np.ndarray:
    """``count`` unit-variance oscillations with a Gaussian spectral peak: waxing and waning
    bursts, like a real alpha or mu rhythm rather than a pure sine."""
    spectrum = rng.normal(size=(count, n // 2 + 1)) + 1j * rng.normal(size=(count, n // 2 + 1))
    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    spectrum *= np.exp(-0.5 * ((freqs - centre) / width) ** 2)
    wave = np.fft.irfft(spectrum, n)
    return wave / wave.std(axis=-1, keepdims=True)


def _hemisphere(name: str) -> str:
    """``'left'``, ``'right'`` or ``'mid'`` from a 10-20 name (odd digit = left)."""
    if name[-1].isdigit():
        return "left" if int(name[-1]) % 2 else "right"
    return "mid"


def _event_intervals(rng: np.random.Generator, n: int, fs: float) -> list[tuple[int, int, str]]:
    """Back-to-back ``(start, stop, label)`` intervals tiling ``0..n``: rest (T0, ~4.2 s)
    alternating with T1/T2 (~4.1 s) in a shuffled, balanced order, as in eegmmidb runs."""
    n_tasks = int(n / fs / 7.9) + 2  # more than fit, even if every pair is short
    tasks = np.array(["T1", "T2"] * (n_tasks // 2 + 1))[:n_tasks]
    rng.shuffle(tasks)
    intervals, start, task = [], 0, iter(tasks)
    while start < n:
        label = "T0" if len(intervals) % 2 == 0 else str(next(task))
        low, high = (4.0, 4.4) if label == "T0" else (3.9, 4.3)
        stop = min(n, start + int(rng.integers(round(low * fs), round(high * fs) + 1)))
        if n - stop < fs:  # no sliver of less than 1 s at the end: stretch this interval
            stop = n
        intervals.append((start, stop, label))
        start = stop
    return intervals


def _eeg_run(
    seed: int, subject: int, run: int, n: int, fs: float, names: Sequence[str]
) -> tuple[np.ndarray, list[tuple[int, int, str]]]:
    """One run: ``(signal (n, C) uV, event intervals)``."""
    subject_rng = np.random.default_rng([seed, subject])
    alpha_f = subject_rng.uniform(9.0, 11.5)  # individual alpha frequency
    mu_uv = subject_rng.uniform(10.0, 16.0)
    # Fraction of mu amplitude lost contralaterally: 75-90% of the band power, at the strong end
    # of real ERD so that a small model learns it from a few minutes of data.
    erd_depth = subject_rng.uniform(0.5, 0.7)
    background_uv = subject_rng.uniform(15.0, 25.0, size=len(names))

    rng = np.random.default_rng([seed, subject, run])
    intervals = _event_intervals(rng, n, fs)
    c = len(names)
    shared = _pink(rng, (1, n))
    background = (0.5 * shared + 0.85 * _pink(rng, (c, n))) * background_uv[:, None]

    # Mu sources (left, right hemisphere) and posterior alpha. ERD: a causal 0.5 s Hann ramp
    # of each task indicator scales the contralateral mu source down during the task.
    left_mu, right_mu, posterior = _narrowband(rng, 3, n, fs, alpha_f, 1.0)
    ramp = np.hanning(int(0.5 * fs) + 2)[1:-1]
    ramp /= ramp.sum()
    for task, source in (("T1", right_mu), ("T2", left_mu)):
        indicator = np.zeros(n)
        for start, stop, label in intervals:
            indicator[start:stop] = label == task
        source *= 1.0 - erd_depth * np.convolve(indicator, ramp)[:n]
    weights = {"left": (1.0, 0.2), "mid": (0.6, 0.6), "right": (0.2, 1.0)}
    signal = np.empty((c, n))
    for i, name in enumerate(names):
        w_left, w_right = weights[_hemisphere(name)]
        w_post = 0.8 if name[0] in "PO" else 0.3 if name.startswith("CP") else 0.1
        signal[i] = background[i] + mu_uv * (
            w_left * left_mu + w_right * right_mu + w_post * posterior
        )
    t = np.arange(n) / fs
    if fs / 2 > 60.0:  # eegmmidb was recorded in the US: 60 Hz mains
        signal += rng.uniform(0.5, 2.0) * np.sin(2 * np.pi * 60.0 * t + rng.uniform(0, 2 * np.pi))
    signal += rng.normal(0.0, 1.0, size=(c, n))
    signal *= rng.uniform(0.75, 1.3)  # amplifier and electrode impedance differ between runs
    return signal.T, intervals


def _write_edf(
    path: Path,
    signal: np.ndarray,
    fs: int,
    names: Sequence[str],
    intervals: Sequence[tuple[int, int, str]],
    name: str,
) -> None:
    """EDF+ file with 1-s data records, 0.1 uV steps and the intervals as EDF+ annotations."""
    import pyedflib

    headers = [
        {
            "label": channel,
            "dimension": "uV",
            "sample_frequency": fs,
            "physical_min": -3276.8,
            "physical_max": 3276.7,
            "digital_min": -32768,
            "digital_max": 32767,
            "transducer": "",
            "prefilter": "",
        }
        for channel in names
    ]
    writer = pyedflib.EdfWriter(str(path), len(names), file_type=pyedflib.FILETYPE_EDFPLUS)
    try:
        writer.setSignalHeaders(headers)
        # A fixed start time: EdfWriter would otherwise stamp the current time in the header.
        writer.setStartdatetime(datetime.datetime(2009, 8, 12, 16, 15, 0))
        writer.setPatientCode(name[:4])
        writer.setEquipment("biosig_synthetic")  # EDF header fields: no spaces
        limit = 3276.7
        writer.writeSamples([np.clip(signal[:, i], -limit, limit) for i in range(len(names))])
        for start, stop, label in intervals:
            writer.writeAnnotation(start / fs, (stop - start) / fs, label)
    finally:
        writer.close()


def write_eeg_records(
    directory: Path,
    n_subjects: int = 4,
    runs_per_subject: int = 2,
    seconds: float = 60.0,
    fs: int = 160,
    n_channels: int = 8,
    seed: int = 0,
    edf: bool = False,
) -> list[Path]:
    """Write motor-imagery EEG runs ``S{subject:03d}R{run:02d}`` (both from 1); return paths.

    As WFDB (default): ``.hea`` + ``.dat`` (format 16, 10 units/uV) + ``.event``, whose ``+``
    annotations with aux ``(T0``/``(T1``/``(T2`` start back-to-back intervals, the first at
    sample 0; the ``.hea`` paths are returned. With ``edf=True``: EDF+ files with the intervals
    as annotations (onset, duration, ``T0``...); the ``.edf`` paths are returned, and
    ``seconds`` must be whole (EDF data records last 1 s). Channels are the first
    ``n_channels`` of :data:`EEG_CHANNELS`.
    """
    if not 1 <= n_channels <= len(EEG_CHANNELS):
        raise ValueError(f"n_channels must be 1..{len(EEG_CHANNELS)}, got {n_channels}")
    if n_subjects < 1 or runs_per_subject < 1:
        raise ValueError("n_subjects and runs_per_subject must be at least 1")
    n = int(round(seconds * fs))
    if n < 10 * fs:
        raise ValueError(f"runs must last at least 10 s, got {seconds}")
    if edf and n % fs:
        raise ValueError(f"EDF data records last 1 s: seconds must be whole, got {seconds}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    names = EEG_CHANNELS[:n_channels]
    paths = []
    for subject in range(1, n_subjects + 1):
        for run in range(1, runs_per_subject + 1):
            name = f"S{subject:03d}R{run:02d}"
            signal, intervals = _eeg_run(seed, subject, run, n, fs, names)
            if edf:
                path = directory / f"{name}.edf"
                _write_edf(path, signal, fs, names, intervals, name)
            else:
                path = _write_eeg_wfdb(directory, name, signal, fs, names, intervals)
            paths.append(path)
    return paths


def _write_eeg_wfdb(
    directory: Path,
    name: str,
    signal: np.ndarray,
    fs: int,
    names: Sequence[str],
    intervals: Sequence[tuple[int, int, str]],
) -> Path:
    """WFDB record plus ``.event`` annotations; returns the ``.hea`` path."""
    import wfdb

    c = len(names)
    wfdb.wrsamp(
        name,
        fs,
        units=["uV"] * c,
        sig_name=list(names),
        p_signal=signal,
        fmt=[EEG_FMT] * c,
        adc_gain=[EEG_GAIN] * c,
        baseline=[0] * c,
        comments=["task: imagined opening/closing of left (T1) or right (T2) fist; T0 = rest"],
        write_dir=str(directory),
    )
    wfdb.wrann(
        name,
        "event",
        np.array([start for start, _, _ in intervals], dtype=np.int64),
        symbol=["+"] * len(intervals),
        aux_note=[f"({label}" for _, _, label in intervals],
        write_dir=str(directory),
    )
    return directory / f"{name}.hea"
