"""Lean installs: each first-party plugin's libraries are an extra of biosig, and a plugin
whose extra is missing is listed with the `pip install` line that fixes it."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from importlib.metadata import distribution
from pathlib import Path

import pytest

from biosig.plugin.extras import install_hint

REPO = Path(__file__).resolve().parents[2]

#: The modules each first-party plugin cannot load without, and the extra that has them.
PLUGIN_MODULES = {
    "nanopore": ["h5py", "vbz_h5py_plugin", "pod5"],
    "ecg": ["wfdb", "pyedflib"],
    "eeg": ["wfdb", "pyedflib"],
}


@dataclass
class FakeDistribution:
    name: str
    requires: list[str] = field(default_factory=list)


@dataclass
class FakeEntryPoint:
    name: str
    dist: FakeDistribution | None


THIRD_PARTY = FakeDistribution(
    "biosig-plugin-xyz",
    ["biosig>=0.1", "numpy", 'py-EDF.lib>=1; extra == "edf"', 'vbz_thing; extra == "fast"'],
)


@pytest.mark.parametrize(
    ("plugin", "missing", "hint"),
    [
        ("xyz", "py_edf_lib", "pip install 'biosig-plugin-xyz[edf]'"),
        ("xyz", "py_edf_lib.reader", "pip install 'biosig-plugin-xyz[edf]'"),
        ("xyz", "vbz_thing", "pip install 'biosig-plugin-xyz[fast]'"),
        ("xyz", "numpy", "pip install 'biosig-plugin-xyz'"),
        ("xyz", "not_required", None),
        ("xyz", None, None),
    ],
)
def test_the_hint_names_the_extra_holding_the_missing_module(plugin, missing, hint) -> None:
    assert install_hint(FakeEntryPoint(plugin, THIRD_PARTY), missing) == hint


def test_no_hint_without_a_distribution() -> None:
    assert install_hint(FakeEntryPoint("xyz", None), "h5py") is None


def test_a_module_in_two_extras_gets_the_plugins_own() -> None:
    both = FakeDistribution("biosig", ['wfdb; extra == "ecg"', 'wfdb; extra == "eeg"'])
    assert install_hint(FakeEntryPoint("eeg", both), "wfdb") == "pip install 'biosig[eeg]'"
    assert install_hint(FakeEntryPoint("ecg", both), "wfdb") == "pip install 'biosig[ecg]'"
    # a third plugin needing it gets the first extra listed
    assert install_hint(FakeEntryPoint("other", both), "wfdb") == "pip install 'biosig[ecg]'"


def _installed_extras() -> dict[str, set[str]]:
    """The requirements of each of biosig's extras, as its installed metadata says."""
    extras: dict[str, set[str]] = {}
    for line in distribution("biosig").requires or ():
        requirement, _, marker = line.partition(";")
        if "extra ==" in marker:
            extra = marker.split("==")[1].strip().strip("\"'")
            name = requirement.split("[")[0].split(">")[0].split("=")[0].strip()
            extras.setdefault(extra, set()).add(name.lower())
    return extras


def test_every_plugin_has_an_extra_and_all_has_them_all() -> None:
    extras = _installed_extras()
    for plugin in ("nanopore", "ecg", "eeg", "vibration", "finance"):
        # an extra without requirements leaves no line in the metadata, only its name
        assert plugin in distribution("biosig").metadata.get_all("Provides-Extra")
    assert extras["nanopore"] >= {"h5py", "vbz-h5py-plugin", "pod5"}
    assert extras["ecg"] == extras["eeg"] == {"wfdb", "pyedflib", "soundfile"}
    # the test extra (the Quick start's second line) brings every plugin's libraries
    assert any(r.startswith("biosig") for r in extras["test"])
    base = {
        line.split(";")[0].split(">")[0].split("=")[0].strip().lower()
        for line in distribution("biosig").requires or ()
        if "extra ==" not in line
    }
    # none of the plugins' libraries is a dependency of biosig itself
    assert base.isdisjoint({"h5py", "pod5", "wfdb", "pyedflib", "soundfile", "pyarrow"})


@pytest.mark.parametrize(("plugin", "modules"), PLUGIN_MODULES.items())
def test_hints_for_biosigs_own_plugins(plugin: str, modules: list[str]) -> None:
    (entry_point,) = [
        ep for ep in distribution("biosig").entry_points if ep.group == "biosig.plugins"
        and ep.name == plugin
    ]  # fmt: skip
    for module in modules:
        assert install_hint(entry_point, module) == f"pip install 'biosig[{plugin}]'"


def _without(module: str, tmp_path: Path) -> dict[str, str]:
    """An environment in which importing ``module`` fails as it does when it is not
    installed: a package of that name, first on the path, raising ModuleNotFoundError."""
    shadow = tmp_path / "shadow" / module
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        f'raise ModuleNotFoundError("No module named {module!r}", name={module!r})\n'
    )
    return {**os.environ, "PYTHONPATH": str(tmp_path / "shadow"), "BIOSIG_PLUGINS": ""}


def _biosig(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "biosig", *args], capture_output=True, text=True, env=env,
        cwd=cwd, timeout=300,
    )  # fmt: skip


def _lean_distribution(site: Path) -> None:
    """An installed plugin distribution, as pip leaves one, whose plugin ``lean`` needs a
    library of its ``lean`` extra that is not installed (and one that is)."""
    info = site / "biosig_plugin_lean-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: biosig-plugin-lean\nVersion: 0.1\n"
        "Requires-Dist: numpy\n"
        'Requires-Dist: no-such-library-xyz>=1; extra == "lean"\n'
        'Requires-Dist: numpy; extra == "lean"\n'
        "Provides-Extra: lean\n"
    )
    (info / "entry_points.txt").write_text("[biosig.plugins]\nlean = biosig_plugin_lean:Plugin\n")


def test_plugins_list_shows_the_install_line_for_a_missing_extra(tmp_path: Path) -> None:
    _lean_distribution(tmp_path / "site")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "BIOSIG_PLUGINS": ""}
    listed = _biosig("plugins", "list", env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:] if line.strip()}
    assert rows["lean"].endswith(
        "broken: needs no-such-library-xyz, not installed: pip install 'biosig-plugin-lean[lean]'"
    )
    # biosig's own plugins have every library of their extras here
    assert all(" ok " in rows[name] for name in ("ecg", "eeg", "nanopore", "numpy", "vibration"))
    used = _biosig("train", "--plugin", "lean", "--input", str(tmp_path), env=env, cwd=tmp_path)
    assert used.returncode == 2
    assert used.stderr.strip().splitlines() == [
        "error: plugin 'lean' cannot be used: needs no-such-library-xyz, not installed: "
        "pip install 'biosig-plugin-lean[lean]'"
    ]


def test_a_library_missing_when_a_file_is_read_is_one_line_with_the_fix(tmp_path: Path) -> None:
    """The ECG plugin imports wfdb when it reads a record, not when it loads: the error
    then is the same one line."""
    header = "100 1 360 650000\n100.dat 212 200 11 1024 995 -22131 0 MLII\n"
    (tmp_path / "100.hea").write_text(header)
    done = _biosig(
        "train", "--plugin", "ecg", "--input", str(tmp_path), "--labels", "rhythm",
        env=_without("wfdb", tmp_path), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: wfdb is not installed: pip install 'biosig[ecg]'"
    ]
