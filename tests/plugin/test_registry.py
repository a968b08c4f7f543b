"""Plugin discovery: entry points, contract checks, isolation of broken plugins, and the
``biosig plugins`` commands."""

from __future__ import annotations

import sys
import textwrap
import warnings
from importlib.metadata import EntryPoint
from pathlib import Path
from types import SimpleNamespace

import pytest

from biosig import BiosigError
from biosig.plugin import registry
from biosig.plugin.registry import GROUP, discover, get_plugin, load_all

# Modules written for the fake entry points; unique names so nothing real is shadowed.
MODULES = {
    "biosig_fake_broken": 'raise ImportError("needs libfoo, which is not installed")\n',
    "biosig_fake_future": """
        from biosig_fake_good import GoodPlugin

        class FuturePlugin(GoodPlugin):
            name = "future"
            api_version = 99
    """,
    "biosig_fake_stranger": """
        class Stranger:
            name = "stranger"
    """,
    "biosig_fake_good": """
        from biosig import Plugin, PluginDefaults

        class GoodPlugin(Plugin):
            api_version = 1
            name = "good"
            version = "1.2.3"
            summary = "a plugin that works"
            defaults = PluginDefaults(sample_rate=250.0, window=500, hop=250)

            def find(self, inputs):
                return []

            def open(self, path):
                return iter(())

            def labels(self, source, recordings):
                return []

        class OtherGood(GoodPlugin):
            summary = "a second plugin that calls itself good"
    """,
}


def entry(name: str, value: str, dist: str | None = None) -> EntryPoint:
    """An entry point, from the distribution ``dist`` (``"name version"``) if given."""
    ep = EntryPoint(name=name, value=value, group=GROUP)
    if dist is not None:
        dist_name, version = dist.split()
        ep = ep._for(SimpleNamespace(name=dist_name, version=version))  # as metadata does
    return ep


FAKE_ENTRIES = [
    entry("broken", "biosig_fake_broken:Plugin"),
    entry("future", "biosig_fake_future:FuturePlugin"),
    entry("stranger", "biosig_fake_stranger:Stranger"),
    entry("good", "biosig_fake_good:GoodPlugin"),
]


@pytest.fixture
def fake_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Make ``biosig.plugin.registry`` see the given entry points instead of the installed ones.

    Returns a function taking the entry points; the fake modules are importable from a
    temporary directory and forgotten again after the test.
    """
    for module, source in MODULES.items():
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    for module in MODULES:
        monkeypatch.delitem(sys.modules, module, raising=False)

    def install(entries: list[EntryPoint]) -> None:
        monkeypatch.setattr(registry, "group_entry_points", lambda: list(entries))

    yield install
    for module in MODULES:
        sys.modules.pop(module, None)


# --- the real installation ------------------------------------------------------------------


def test_numpy_plugin_is_discovered_through_its_entry_point() -> None:
    entries = discover()
    assert "numpy" in entries
    numpy_entry = entries["numpy"]
    assert numpy_entry.entry_point.value == "biosig_numpy:NumpyPlugin"
    assert numpy_entry.distribution.startswith("biosig ")
    assert numpy_entry.plugin is None  # discovery imports nothing
    plugin = get_plugin("numpy")
    assert type(plugin).__name__ == "NumpyPlugin"
    assert plugin.name == "numpy"
    assert plugin.defaults.window == 1024


def test_unknown_plugin_lists_installed_names() -> None:
    with pytest.raises(BiosigError, match=r"unknown plugin 'nope' \(installed: .*numpy"):
        get_plugin("nope")


# --- isolation ----------------------------------------------------------------------------


def test_broken_plugins_are_reported_and_do_not_stop_the_good_one(fake_plugins) -> None:
    fake_plugins(FAKE_ENTRIES)
    entries = {e.name: e for e in load_all()}
    assert list(entries) == ["broken", "future", "good", "stranger"]  # sorted by name

    assert entries["good"].plugin is not None
    assert entries["good"].error is None
    assert entries["good"].status == "ok"

    reasons = {
        "broken": "import failed: ImportError: needs libfoo, which is not installed",
        "future": "declares plugin API version 99; this biosig supports 1",
        "stranger": "Stranger does not subclass biosig.Plugin",
    }
    for name, reason in reasons.items():
        assert entries[name].plugin is None
        assert entries[name].error == reason
        assert entries[name].status == f"broken: {reason}"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("broken", "ImportError: needs libfoo"),
        ("future", "API version 99"),
        ("stranger", "does not subclass biosig.Plugin"),
    ],
)
def test_get_plugin_on_a_broken_one_names_the_reason(fake_plugins, name: str, reason: str) -> None:
    fake_plugins(FAKE_ENTRIES)
    with pytest.raises(BiosigError, match=f"plugin '{name}' cannot be used: .*{reason}"):
        get_plugin(name)


def test_get_plugin_imports_no_other_plugin(fake_plugins) -> None:
    fake_plugins(FAKE_ENTRIES)
    plugin = get_plugin("good")
    assert (plugin.name, plugin.version) == ("good", "1.2.3")
    assert "biosig_fake_future" not in sys.modules
    assert "biosig_fake_stranger" not in sys.modules


def test_duplicate_names_are_recorded_and_get_plugin_warns_once(fake_plugins) -> None:
    fake_plugins(
        [
            entry("good", "biosig_fake_good:GoodPlugin"),
            entry("good", "biosig_fake_good:GoodPlugin"),  # same one seen twice: no clash
            entry("good", "biosig_fake_good:OtherGood"),
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # discovery records the clash; its users report it
        entries = discover()
    assert entries["good"].entry_point.value == "biosig_fake_good:GoodPlugin"
    assert entries["good"].duplicates == ["biosig_fake_good:OtherGood (?)"]
    with pytest.warns(UserWarning, match="two plugins are named 'good'") as record:
        assert get_plugin("good").summary == "a plugin that works"  # the first one wins
    assert len(record) == 1
    assert "ignoring biosig_fake_good:OtherGood" in str(record[0].message)


def test_one_class_registered_by_two_distributions_is_a_clash(fake_plugins) -> None:
    """A fork shipping the same ``module:Class`` under another distribution name overwrites
    the other's files: reported, whereas one distribution seen twice on sys.path is not."""
    fake_plugins(
        [
            entry("good", "biosig_fake_good:GoodPlugin", "biosig-plugin-good 1.0"),
            entry("good", "biosig_fake_good:GoodPlugin", "biosig-plugin-good 1.0"),
            entry("good", "biosig_fake_good:GoodPlugin", "biosig-plugin-good-fork 2.0"),
        ]
    )
    entries = discover()
    assert entries["good"].distribution == "biosig-plugin-good 1.0"
    assert entries["good"].duplicates == [
        "biosig_fake_good:GoodPlugin (biosig-plugin-good-fork 2.0)"
    ]


def test_a_third_party_plugin_taking_a_first_party_name_never_replaces_it(
    fake_plugins,
) -> None:
    fake_plugins(
        [
            entry("good", "biosig_fake_good:OtherGood", "biosig-plugin-evil 1.0"),
            entry("good", "biosig_fake_good:GoodPlugin", "biosig 0.1.0"),
        ]
    )
    entries = discover()
    assert entries["good"].entry_point.value == "biosig_fake_good:GoodPlugin"
    assert entries["good"].duplicates == ["biosig_fake_good:OtherGood (biosig-plugin-evil 1.0)"]
    with pytest.warns(UserWarning, match="ignoring biosig_fake_good:OtherGood"):
        assert get_plugin("good").summary == "a plugin that works"


def test_a_distribution_with_unreadable_entry_point_metadata_breaks_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = tmp_path / "broken_thing-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-thing\nVersion: 1.0\n")
    (info / "entry_points.txt").write_bytes(b"[biosig.plugins]\nx = caf\xe9:Plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(UserWarning, match="broken-thing: its entry-point metadata cannot be read"):
        names = {ep.name for ep in registry.group_entry_points()}
    assert "numpy" in names


def test_an_entry_point_named_other_than_its_plugin_is_broken(fake_plugins, run_cli) -> None:
    """A checkpoint records the plugin's own name, and predict looks the plugin up by it: an
    entry point of another name would train models that predict cannot find a plugin for."""
    fake_plugins([entry("wave", "biosig_fake_good:GoodPlugin"), *FAKE_ENTRIES[:1]])
    entries = {e.name: e for e in load_all()}
    assert entries["wave"].plugin is None
    assert entries["wave"].error == "entry point 'wave' loads a plugin named 'good'"
    with pytest.raises(BiosigError, match="plugin 'wave' cannot be used: entry point 'wave'"):
        get_plugin("wave")
    result = run_cli("plugins", "list")
    row = next(line for line in result.out.splitlines() if line.startswith("wave "))
    assert "broken: entry point 'wave' loads a plugin named 'good'" in row


# --- the CLI ------------------------------------------------------------------------------


def test_plugins_list_shows_the_numpy_plugin(run_cli) -> None:
    result = run_cli("plugins", "list")
    assert result.code == 0
    header, *rows = result.out.splitlines()
    assert header.split() == ["name", "version", "rate", "window", "hop", "status", "summary"]
    row = next(r for r in rows if r.startswith("numpy "))
    assert row.split()[:6] == ["numpy", "0.1.0", "1", "1024", "512", "ok"]
    assert "NumPy arrays" in row


def test_plugins_list_reports_broken_plugins_beside_good_ones(fake_plugins, run_cli) -> None:
    fake_plugins(FAKE_ENTRIES)
    result = run_cli("plugins", "list")
    assert result.code == 0
    rows = {line.split()[0]: line for line in result.out.splitlines()[1:]}
    assert set(rows) == {"broken", "future", "good", "stranger"}
    assert rows["good"].split()[:6] == ["good", "1.2.3", "250", "500", "250", "ok"]
    assert "broken: import failed: ImportError: needs libfoo" in rows["broken"]
    assert "broken: declares plugin API version 99" in rows["future"]
    assert "broken: Stranger does not subclass biosig.Plugin" in rows["stranger"]


def show_fields(output: str) -> dict[str, str]:
    """``key   value`` lines of ``plugins show`` (the free-text ``about`` block is dropped)."""
    fields = {}
    for line in output.split("\nabout")[0].splitlines():
        key, _, value = line.partition("  ")
        fields[key.strip()] = value.strip()
    return fields


def test_plugins_show_numpy(run_cli) -> None:
    result = run_cli("plugins", "show", "numpy")
    assert result.code == 0
    fields = show_fields(result.out)
    assert fields["name"] == "numpy"
    assert fields["entry point"] == "biosig_numpy:NumpyPlugin"
    assert fields["status"] == "ok"
    assert fields["version"] == "0.1.0"
    assert fields["api version"].startswith("1 ")
    assert fields["sample rate"] == "1 Hz"
    assert fields["window"] == "1024 samples"
    assert fields["hop"] == "512 samples"
    assert fields["normalization"] == "window"
    assert "labels.tsv" in fields["labels"]
    assert "(N, C, L)" in result.out  # the module's documentation


def test_plugins_show_a_broken_plugin_gives_its_reason(fake_plugins, run_cli) -> None:
    fake_plugins(FAKE_ENTRIES)
    result = run_cli("plugins", "show", "future")
    assert result.code == 0
    fields = show_fields(result.out)
    assert fields["status"] == "broken: declares plugin API version 99; this biosig supports 1"
    assert "version" not in fields


def test_plugins_show_lists_a_name_clash(fake_plugins, run_cli) -> None:
    fake_plugins(
        [entry("good", "biosig_fake_good:GoodPlugin"), entry("good", "biosig_fake_good:OtherGood")]
    )
    result = run_cli("plugins", "show", "good")
    assert result.code == 0
    assert show_fields(result.out)["also named so"] == "biosig_fake_good:OtherGood (?) (ignored)"
    assert "two plugins are named" not in result.err  # said once, in the listing itself


def test_plugins_show_unknown_is_one_error_line(run_cli) -> None:
    result = run_cli("plugins", "show", "nope")
    assert result.code != 0
    assert result.out == ""
    assert len(result.err_lines) == 1
    assert result.err_lines[0].startswith("error: unknown plugin 'nope' (installed:")
    assert "numpy" in result.err_lines[0]


def test_a_plugin_must_declare_its_api_version() -> None:
    from biosig import Plugin, PluginDefaults
    from biosig.plugin.registry import check_contract

    class Undeclared(Plugin):
        name = "undeclared"
        defaults = PluginDefaults(sample_rate=1.0, window=8, hop=4)

        def find(self, inputs):
            return []

        def open(self, path):
            return iter(())

        def labels(self, source, recordings):
            return []

    assert "declares no api_version" in check_contract(Undeclared())
    Undeclared.api_version = 1
    assert check_contract(Undeclared()) is None


# --- BIOSIG_PLUGINS -----------------------------------------------------------------------


def test_biosig_plugins_restricts_discovery_and_tolerates_whitespace(
    fake_plugins, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_plugins(FAKE_ENTRIES)
    monkeypatch.setenv("BIOSIG_PLUGINS", " good ,nope,, good ")
    assert registry.selected_names() == ("good", "nope")
    assert list(discover()) == ["good"]
    assert [e.name for e in load_all()] == ["good"]
    assert registry.excluded_names() == ["broken", "future", "stranger"]
    assert registry.missing_names() == ["nope"]
    for module in ("biosig_fake_broken", "biosig_fake_future", "biosig_fake_stranger"):
        assert module not in sys.modules  # excluded plugins are never imported


@pytest.mark.parametrize("value", ["", " , "])
def test_a_blank_biosig_plugins_allows_every_plugin(
    fake_plugins, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    fake_plugins(FAKE_ENTRIES)
    monkeypatch.setenv("BIOSIG_PLUGINS", value)
    assert registry.selected_names() is None
    assert list(discover()) == ["broken", "future", "stranger", "good"]
    assert registry.excluded_names() == registry.missing_names() == []


def test_get_plugin_of_an_excluded_plugin_says_so(
    fake_plugins, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_plugins(FAKE_ENTRIES)
    monkeypatch.setenv("BIOSIG_PLUGINS", "good")
    with pytest.raises(BiosigError) as caught:
        get_plugin("future")
    assert str(caught.value) == (
        "plugin 'future' is excluded by BIOSIG_PLUGINS='good' (add it there, or unset "
        "BIOSIG_PLUGINS)"
    )
    assert "biosig_fake_future" not in sys.modules
    with pytest.raises(BiosigError, match=r"unknown plugin 'nope' \(installed and allowed by "):
        get_plugin("nope")
    assert get_plugin("good").name == "good"


def test_a_name_clash_among_excluded_plugins_is_not_warned_about(
    fake_plugins, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_plugins(
        [
            entry("good", "biosig_fake_good:GoodPlugin"),
            entry("good", "biosig_fake_good:OtherGood"),
            entry("future", "biosig_fake_future:FuturePlugin"),
        ]
    )
    monkeypatch.setenv("BIOSIG_PLUGINS", "future")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert list(discover()) == ["future"]


def test_biosig_plugins_on_the_real_installation(monkeypatch: pytest.MonkeyPatch, run_cli) -> None:
    monkeypatch.setenv("BIOSIG_PLUGINS", "numpy")
    assert get_plugin("numpy").name == "numpy"
    with pytest.raises(BiosigError, match="plugin 'ecg' is excluded by BIOSIG_PLUGINS='numpy'"):
        get_plugin("ecg")
    result = run_cli("plugins", "show", "ecg")
    assert result.code != 0
    assert result.err_lines == [
        "error: plugin 'ecg' is excluded by BIOSIG_PLUGINS='numpy' (add it there, or unset "
        "BIOSIG_PLUGINS)"
    ]


def test_plugins_list_shows_excluded_and_missing_names(
    fake_plugins, monkeypatch: pytest.MonkeyPatch, run_cli
) -> None:
    fake_plugins(FAKE_ENTRIES)
    monkeypatch.setenv("BIOSIG_PLUGINS", "good, nope")
    result = run_cli("plugins", "list")
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[-1] == "BIOSIG_PLUGINS=good,nope: only these plugins are used"
    rows = {line.split()[0]: line for line in lines[1:-1]}
    assert set(rows) == {"good", "broken", "future", "stranger", "nope"}
    assert rows["good"].split()[:6] == ["good", "1.2.3", "250", "500", "250", "ok"]
    for name in ("broken", "future", "stranger"):
        assert rows[name].split()[1:] == ["?", "excluded", "by", "BIOSIG_PLUGINS"]
    assert rows["nope"].split()[1:] == ["?", "not", "installed", "(named", "in", "BIOSIG_PLUGINS)"]
    assert "needs libfoo" not in result.out  # an excluded plugin is not even imported


# --- broken plugins and name clashes in the CLI ---------------------------------------------


def test_a_broken_plugin_does_not_break_a_command_using_another(
    fake_plugins, tmp_path: Path, run_cli
) -> None:
    fake_plugins([*FAKE_ENTRIES, entry("numpy", "biosig_numpy:NumpyPlugin")])
    missing = tmp_path / "missing.npy"
    labels = tmp_path / "labels.tsv"
    labels.write_text("0\tquiet\n")
    result = run_cli("train", "--plugin", "numpy", "--input", missing, "--labels", labels)
    # the numpy plugin loaded, and the command went on to its own complaint about the input
    assert result.code != 0
    assert result.err_lines == [f"error: {missing}: file not found"]
    for module in ("biosig_fake_broken", "biosig_fake_future", "biosig_fake_stranger"):
        assert module not in sys.modules


def test_plugins_list_shows_both_sources_of_a_name_clash(fake_plugins, run_cli) -> None:
    fake_plugins(
        [
            entry("good", "biosig_fake_good:GoodPlugin"),
            entry("good", "biosig_fake_good:OtherGood"),
            entry("broken", "biosig_fake_broken:Plugin"),
        ]
    )
    result = run_cli("plugins", "list")
    assert result.code == 0
    lines = result.out.splitlines()
    good = next(line for line in lines if line.startswith("good "))
    assert good.split()[:7] == ["good", "1.2.3", "250", "500", "250", "ok", "(name"]
    assert "a plugin that works" in good  # the first one is used
    assert lines[-1] == (
        "name clash: two plugins are named 'good': using biosig_fake_good:GoodPlugin (?), "
        "ignoring biosig_fake_good:OtherGood (?)"
    )
    broken = next(line for line in lines if line.startswith("broken "))
    assert "broken: import failed: ImportError: needs libfoo" in broken
    assert result.err == ""  # the clash is reported once, by the line above
    assert sum("two plugins are named 'good'" in line for line in lines) == 1


# --- plugins that exit, crash, hang or describe themselves badly ---------------------------

HOSTILE_MODULES = {
    "biosig_fake_exits": "import sys\nsys.exit(3)\n",
    "biosig_fake_hard_exit": "import os\nos._exit(4)\n",
    "biosig_fake_segfault": "import ctypes\nctypes.string_at(0)\n",
    "biosig_fake_sleeps": "import time\ntime.sleep(600)\n",
    "biosig_fake_malformed": """
        from biosig_fake_good import GoodPlugin

        class NoVersion(GoodPlugin):
            name = "noversion"
            version = None

        class DictDefaults(GoodPlugin):
            name = "dictdefaults"
            defaults = {"sample_rate": 1.0}
    """,
}


@pytest.fixture
def hostile_plugins(fake_plugins, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for module, source in HOSTILE_MODULES.items():
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.setattr(registry, "IMPORT_TIMEOUT", 5.0)
    fake_plugins(
        [
            entry("exits", "biosig_fake_exits:Plugin"),
            entry("hardexit", "biosig_fake_hard_exit:Plugin"),
            entry("segfault", "biosig_fake_segfault:Plugin"),
            entry("sleeps", "biosig_fake_sleeps:Plugin"),
            entry("noversion", "biosig_fake_malformed:NoVersion"),
            entry("dictdefaults", "biosig_fake_malformed:DictDefaults"),
            entry("good", "biosig_fake_good:GoodPlugin"),
        ]
    )
    yield
    for module in HOSTILE_MODULES:
        sys.modules.pop(module, None)


def test_plugins_that_exit_crash_hang_or_misdescribe_themselves_are_listed_broken(
    hostile_plugins, run_cli
) -> None:
    result = run_cli("plugins", "list")
    assert result.code == 0, result.err
    status = {line.split()[0]: line for line in result.out.splitlines()[1:]}
    expected = {
        "exits": "broken: import exited the process with code 3",
        "hardexit": "broken: import exited the process with code 4",
        "segfault": "broken: import crashed the process (SIGSEGV)",
        "sleeps": "broken: import did not finish within 5 s",
        "noversion": "broken: version is None, expected a str",
        "dictdefaults": "broken: its defaults are a dict, not biosig.PluginDefaults",
    }
    for name, reason in expected.items():
        assert status[name].endswith(reason), status[name]
    assert "ok" in status["good"].split()
    shown = run_cli("plugins", "show", "segfault")
    assert shown.code == 0 and "import crashed the process (SIGSEGV)" in shown.out


def test_a_chosen_plugin_that_exits_at_import_is_one_line_not_an_exit(hostile_plugins) -> None:
    # Chosen by name, a plugin is imported in the process (no probe's cost), and its
    # sys.exit is caught like any other failed import.
    with pytest.raises(BiosigError, match=r"plugin 'exits' cannot be used: import failed: Sys"):
        get_plugin("exits")
