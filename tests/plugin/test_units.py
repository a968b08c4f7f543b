"""What plugins say of their signal for plots: its unit per channel and the plot style."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from biosig.plugin.contract import PLOT_STYLES, ArrayRecording, channel_units, iter_recordings
from biosig.plugin.registry import get_plugin


def test_a_recordings_own_units_win_over_the_plugins() -> None:
    plugin = get_plugin("nanopore")
    rec = ArrayRecording("r", np.zeros((2, 4)), 1.0)
    assert channel_units(plugin, rec) == ("pA", "pA")
    rec.units = ("mV", "")  # a channel without a unit of its own takes the plugin's
    assert channel_units(plugin, rec) == ("mV", "pA")
    rec.units = ("mV",)  # not one per channel: not trusted
    assert channel_units(plugin, rec) == ("pA", "pA")
    assert channel_units(get_plugin("numpy"), ArrayRecording("r", np.zeros((1, 4)), 1.0)) == ("",)


@pytest.mark.parametrize(
    ("name", "unit", "style"),
    [
        ("ecg", "", "ecg"),  # units come from each record's header
        ("eeg", "", "plain"),
        ("nanopore", "pA", "plain"),
        ("vibration", "g", "plain"),
        ("finance", "", "plain"),  # units per feature, on its recordings
        ("numpy", "", "plain"),
    ],
)
def test_first_party_plugins_declare_units_and_style(name: str, unit: str, style: str) -> None:
    plugin = get_plugin(name)
    assert (plugin.signal_unit, plugin.plot_style) == (unit, style)
    assert plugin.plot_style in PLOT_STYLES


def test_vibration_takes_its_unit_as_an_option() -> None:
    plugin = get_plugin("vibration")
    plugin.configure({"unit": "m/s²"})
    assert plugin.signal_unit == "m/s²"


def test_ecg_records_carry_their_headers_units(tmp_path: Path) -> None:
    from biosig_wfdb.synthetic import write_ecg_records

    (header, *_) = write_ecg_records(tmp_path, n_patients=1, records_per_patient=1, seconds=5)
    plugin = get_plugin("ecg")
    (rec,) = iter_recordings(plugin, plugin.find([header]))
    assert channel_units(plugin, rec) == ("mV", "mV")


def test_finance_features_carry_a_unit_each(tmp_path: Path) -> None:
    from biosig_finance.synthetic import random_walk, write_csv

    write_csv(tmp_path / "walk.csv", random_walk(300), start="2001-01-01")
    plugin = get_plugin("finance")
    (rec,) = iter_recordings(plugin, plugin.find([tmp_path]))
    units = dict(zip(rec.channels, channel_units(plugin, rec), strict=True))
    assert units["return_z"] == units["volume_z"] == "σ"
    assert units["log_return"] == ""  # a log return has no unit
