"""Every first-party plugin passes ``biosig.testing.check_plugin``, the conformance suite
third-party plugins run: on a few small real files from ``../shared/data`` (with labels
where the plugin has them) and on its own synthetic demo data."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from biosig.plugin.registry import get_plugin
from biosig.testing import check_demo_data, check_plugin

NANOPORE_FILES = (
    "nanopore/fast5_multi_vbz_8reads.fast5",  # multi-read FAST5, VBZ, 4 kHz
    "nanopore/fast5_single_legacy_v0.6_gzip.fast5",  # single-read legacy layout
    "nanopore/pod5_4reads_r10_4khz.pod5",  # POD5
)


def nanopore_labels(shared_data: Path, tmp_path: Path) -> Path:
    """A labels.tsv naming the reads of NANOPORE_FILES (from the folder's manifest), two
    classes taking turns; read ids upper-cased, as the plugin matches them regardless."""
    manifest = json.loads((shared_data / "nanopore" / "manifest.json").read_text())
    ids = [r["read_id"] for f in NANOPORE_FILES for r in manifest[Path(f).name]["reads"]]
    table = tmp_path / "labels.tsv"
    table.write_text("".join(f"{rid.upper()}\t{'ab'[i % 2]}\n" for i, rid in enumerate(ids)))
    return table


#: plugin, files under ../shared/data, labels (a keyword, or a function writing a table),
#: options, and how many recordings the files hold
REAL: list = [
    pytest.param("nanopore", NANOPORE_FILES, nanopore_labels, {}, 13, id="nanopore"),
    pytest.param("ecg", ["wfdb/mitdb/100.hea"], "beats", {}, 1, id="ecg-mitdb-beats"),
    pytest.param(
        "ecg",
        ["wfdb/cpsc2021/data_101_6.hea", "wfdb/cpsc2021/data_8_4.hea"],
        "rhythm",
        {},
        2,
        id="ecg-cpsc2021-rhythm",
    ),
    pytest.param(
        # a multi-segment record: its gaps are NaN through the preprocessor
        "ecg",
        ["wfdb/formats/multi-segment/041s/041s.hea"],
        None,
        {},
        1,
        id="ecg-multi-segment",
    ),
    pytest.param("eeg", ["wfdb/eeg/S001R04.edf"], "events", {}, 1, id="eeg-edf-events"),
    pytest.param(
        "vibration",
        ["vibration/cwru/B028_0.mat", "vibration/cwru/IR028_0.mat"],
        "folder",
        {"fs": 12000},
        2,
        id="vibration-cwru-mat",
    ),
    pytest.param(
        "vibration",
        [
            "vibration/kafeel2021_motor_csv/normal/H5.csv",
            "vibration/kafeel2021_motor_csv/faulty/F20.csv",
        ],
        "folder",
        {},
        2,
        id="vibration-kafeel-csv",
    ),
    pytest.param(
        "finance",
        ["finance/2006-day-001.txt", "finance/SPY_D.csv"],
        "direction",
        {},
        2,
        id="finance-daily",
    ),
]


@pytest.mark.parametrize(("name", "files", "labels", "options", "n_recordings"), REAL)
def test_first_party_plugin_conforms_on_real_files(
    shared_data: Path,
    tmp_path: Path,
    name: str,
    files: list[str],
    labels: str | Callable[[Path, Path], Path] | None,
    options: dict,
    n_recordings: int,
) -> None:
    plugin = get_plugin(name)
    plugin.configure(options)
    source = labels(shared_data, tmp_path) if callable(labels) else labels
    report = check_plugin(plugin, [shared_data / f for f in files], labels=source)
    assert [p.name for p in report.files] == [Path(f).name for f in files]
    assert report.n_recordings == min(n_recordings, 8)
    assert "errors" in report.checks
    if labels is not None:
        assert report.n_intervals > 0 and report.label_classes


def test_numpy_plugin_conforms_on_arrays(synthetic_npy: Path) -> None:
    report = check_plugin(
        get_plugin("numpy"), [synthetic_npy / "signals.npy"], labels=synthetic_npy / "labels.npy"
    )
    assert report.n_intervals == 30
    assert report.label_classes == ["background", "rhythm", "spikes"]


@pytest.mark.parametrize("name", ["numpy", "nanopore", "ecg", "eeg", "vibration", "finance"])
def test_first_party_plugin_conforms_on_its_demo_data(tmp_path: Path, name: str) -> None:
    report = check_demo_data(get_plugin(name), tmp_path, max_recordings=4)
    assert report is not None, f"{name} has no demo data"
    assert report.n_recordings == 4
    assert report.n_intervals > 0
    assert len(report.label_classes) >= 2
