"""``--signal rr``: each lead's beat-to-beat interval series, found beat by beat, the same in
any chunking, NaN where samples are missing, irregular in AF and steady in sinus rhythm."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from biosig_wfdb.rhythm import NOMINAL_RR_S, RRIntervals

from biosig import BiosigError
from biosig.data.windows import make_preprocessor
from biosig.plugin.contract import iter_recordings
from biosig.plugin.registry import get_plugin
from biosig.testing import check_plugin

FS = 100.0


def beats_at(times: np.ndarray, seconds: float, fs: float = FS) -> np.ndarray:
    """One lead of spikes (a 20 ms Gaussian QRS, 1 mV) at ``times``, in light noise."""
    t = np.arange(int(seconds * fs)) / fs
    x = sum(np.exp(-0.5 * ((t - b) / 0.02) ** 2) for b in times)
    return x + np.random.default_rng(0).normal(0, 0.01, t.size)


def run(x: np.ndarray, chunk: int, fs: float = FS) -> np.ndarray:
    stage = RRIntervals(x.shape[0], fs)
    parts = [stage(x[:, i : i + chunk]) for i in range(0, x.shape[1], chunk)]
    return np.concatenate([*parts, stage.flush()], axis=1)


def test_each_sample_carries_the_last_interval_between_beats() -> None:
    # 0.8 s apart for 10 s, then 0.5 s apart
    times = np.concatenate([np.arange(0.5, 10.0, 0.8), np.arange(10.1, 20.0, 0.5)])
    out = run(beats_at(times, 20.0)[None], 20_000)[0]
    t = np.arange(out.size) / FS
    assert out.shape == (2000,)
    assert np.all(out[t < 1.2] == NOMINAL_RR_S)  # before the second beat
    np.testing.assert_allclose(out[(t > 1.5) & (t < 9.5)], 0.8, atol=0.02)
    np.testing.assert_allclose(out[(t > 11.0) & (t < 19.5)], 0.5, atol=0.02)


@pytest.mark.parametrize("chunk", [1, 7, 333])
def test_chunking_does_not_change_the_output(chunk: int) -> None:
    rng = np.random.default_rng(1)
    times = np.cumsum(rng.uniform(0.4, 1.2, 60))  # irregular, about 48 s
    x = np.stack([beats_at(times, 50.0), 0.3 * beats_at(times + 0.01, 50.0)])
    x[1, 1200:1500] = np.nan
    np.testing.assert_array_equal(run(x, chunk), run(x, x.shape[1]))


def test_gaps_stay_missing_and_the_beats_before_them_are_forgotten() -> None:
    times = np.arange(0.5, 30.0, 0.7)
    x = beats_at(times, 30.0)[None]
    x[0, 1000:1200] = np.nan  # 10 s to 12 s
    out = run(x, 257)[0]
    t = np.arange(out.size) / FS
    assert np.isnan(out[(t >= 10) & (t < 12)]).all()
    assert not np.isnan(out[(t < 10) | (t >= 12)]).any()
    # after the gap, the nominal interval until two new beats are seen, then 0.7 s again
    assert np.all(out[(t >= 12) & (t < 12.2)] == NOMINAL_RR_S)
    np.testing.assert_allclose(out[(t > 14) & (t < 29)], 0.7, atol=0.02)


def test_a_rate_too_low_for_the_qrs_band_is_refused() -> None:
    with pytest.raises(BiosigError, match="--signal rr: a model rate of 25 Hz is too low"):
        RRIntervals(1, 25.0)


def test_an_unknown_signal_is_refused_before_reading() -> None:
    with pytest.raises(BiosigError, match="--signal beats: choose leads or rr"):
        get_plugin("ecg").configure({"signal": "beats"})


# ------------------------------------------------------------------- on real CPSC 2021 records


@pytest.fixture(scope="module")
def cpsc(shared_data: Path) -> Path:
    return shared_data / "wfdb" / "cpsc2021"


def window_spread(record: Path) -> np.ndarray:
    """The RR series' standard deviation (s) in each 10 s window of lead I."""
    plugin = get_plugin("ecg")
    plugin.configure({"signal": "rr"})
    (rec,) = iter_recordings(plugin, plugin.find([record]))
    preprocess = make_preprocessor(plugin, rec, FS)
    rr = np.concatenate([*(preprocess(b) for b in rec.chunks(4096)), preprocess.flush()], axis=1)
    windows = rr[0, : rr.shape[1] // 1000 * 1000].reshape(-1, 1000)
    return windows.std(axis=1)


def test_af_is_irregular_and_sinus_rhythm_steady(cpsc: Path) -> None:
    af = window_spread(cpsc / "data_8_2.hea")  # persistent AF
    sinus = window_spread(cpsc / "data_21_7.hea")  # no AF
    assert np.median(af) > 3 * np.median(sinus)


def test_the_rr_signal_passes_the_plugin_conformance_check(cpsc: Path) -> None:
    plugin = get_plugin("ecg")
    plugin.configure({"signal": "rr", "unannotated": "N"})
    report = check_plugin(plugin, [cpsc / "data_101_6.hea"], labels="rhythm", fs_out=FS)
    assert "preprocessing" in report.checks and report.n_recordings == 1


def test_the_shipped_rhythm_pipeline_trains_on_rr_and_predicts_with_it(
    cpsc: Path, in_tmp: Path, run_cli
) -> None:
    pipeline = Path(__file__).resolve().parents[2] / "pipelines" / "ecg-rhythm.toml"
    train_on = [arg for p in ("21_7", "101_8") for arg in ("--input", cpsc / f"data_{p}.hea")]
    trained = run_cli("train", "--pipeline", pipeline, *train_on, "--epochs", "1", "--out", "r")
    assert trained.code == 0, trained.err
    saved = json.loads((in_tmp / "r" / "best" / "biosig.json").read_text())
    assert '"signal": "rr"' in json.dumps(saved)

    result = run_cli("predict", "--model", "r", "--plugin", "ecg", cpsc / "data_8_4.hea")
    assert result.code == 0, result.err
    header, row = result.out.splitlines()
    # 8235 samples at 200 Hz are 4117 at the pipeline's 100 Hz: 7 windows of 1000 at hop
    # 500, and one more that ends with the record
    row = dict(zip(header.split("\t"), row.split("\t"), strict=True))
    assert row["n_windows"] == "8"
