"""Third-party plugins as a first-class path: the template package in ``plugins/template``
(the ``wav`` plugin), ``biosig plugins new`` that copies it, and the template, biosig and a
broken plugin each built into a wheel and installed into a fresh virtual environment,
where ``biosig`` finds, lists, trains with and predicts with the installed plugin.

The template's own tests (``plugins/template/tests``) run in this suite too (see
``testpaths`` in ``pyproject.toml``); here they also run inside a package written by
``biosig plugins new``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from biosig import BiosigError
from biosig.plugin import scaffold

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "plugins" / "template"
#: Left out when sources are copied to be built: what ``plugins new`` leaves out too (caches,
#: virtual environments, build outputs of earlier runs).
IGNORE = shutil.ignore_patterns(*scaffold.IGNORED)


def run(*args: str | Path, cwd: Path, timeout: float = 120) -> str:
    """Run a command in ``cwd`` in a subprocess (torch on one thread, as the rest of the
    suite runs); its stdout, or a failure showing everything it printed. ``cwd`` is never
    the repository, whose ``biosig/`` would be imported before an installed one."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COLUMNS": "200"}
    env.pop("BIOSIG_PLUGINS", None)  # every installed plugin, whatever the caller's shell says
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    command = " ".join(str(a) for a in args)
    assert result.returncode == 0, (
        f"{command} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


# --- the template ships inside biosig -------------------------------------------------------


def test_every_package_on_disk_is_listed_in_pyproject() -> None:
    """Packages are listed in pyproject.toml (so the template can be mapped into biosig): a
    package added without being listed would be missing from biosig's wheel."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
        "setuptools"
    ]
    on_disk = {
        ".".join(init.parent.relative_to(REPO).parts) for init in REPO.glob("biosig/**/__init__.py")
    }
    on_disk |= {init.parent.name for init in REPO.glob("plugins/biosig_*/__init__.py")}
    for module in TEMPLATE.rglob("*.py"):  # every directory of the template's modules
        parts = module.parent.relative_to(TEMPLATE).parts
        if not any(part in ("build", "__pycache__") for part in parts):
            on_disk.add(".".join(("biosig", "plugin_template", *parts)))
    listed = set(setuptools["packages"])
    assert on_disk <= listed, f"not listed in pyproject.toml: {sorted(on_disk - listed)}"
    mapped = setuptools["package-dir"]
    for package in listed:
        parts = package.split(".")
        # a package lies where its nearest mapped ancestor is mapped to, else at its name
        cut = max((k for k in range(1, len(parts) + 1) if ".".join(parts[:k]) in mapped), default=0)
        where = Path(mapped[".".join(parts[:cut])] if cut else "", *parts[cut:])
        assert (REPO / where).is_dir(), f"{package}: {where} does not exist"
    assert setuptools["package-dir"]["biosig.plugin_template"] == "plugins/template"
    assert scaffold.template_dir() == TEMPLATE  # an editable install reads the source tree


# --- biosig plugins new ------------------------------------------------------------------


def test_plugins_new_writes_a_package_whose_own_tests_pass(tmp_path: Path, run_cli) -> None:
    target = tmp_path / "pkg"
    target.mkdir()  # an empty directory may be the target
    result = run_cli("plugins", "new", "my_format", "--dir", target)
    assert result.code == 0, result.err
    assert f"wrote biosig-plugin-my-format to {target}" in result.out
    files = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert files == [
        "README.md",
        "biosig_plugin_my_format/__init__.py",
        "biosig_plugin_my_format/reader.py",
        "biosig_plugin_my_format/synthetic.py",
        "pyproject.toml",
        "tests/test_my_format_plugin.py",
    ]
    project = tomllib.loads((target / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["name"] == "biosig-plugin-my-format"
    assert project["entry-points"]["biosig.plugins"] == {
        "my_format": "biosig_plugin_my_format:MyFormatPlugin"
    }
    module = (target / "biosig_plugin_my_format" / "__init__.py").read_text(encoding="utf-8")
    assert "class MyFormatPlugin(Plugin):" in module and '    name = "my_format"\n' in module
    readme = (target / "README.md").read_text(encoding="utf-8")
    assert readme.startswith("# biosig-plugin-my-format\n")
    assert "biosig train --plugin my_format --input heart/" in readme
    every_text = "".join(p.read_text(encoding="utf-8") for p in target.rglob("*") if p.is_file())
    for old in (
        "biosig_plugin_wav", "biosig-plugin-wav", "WavPlugin", "--plugin wav", "test_wav",
        "the wav plugin",
    ):  # fmt: skip
        assert old not in every_text, old
    assert not list(tmp_path.glob(".pkg.*")), "the temporary directory was left behind"

    out = run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=target)
    assert " passed" in out and "failed" not in out and "error" not in out, out
    run(sys.executable, "-m", "ruff", "check", "--no-cache", ".", cwd=target)


def test_plugins_new_writes_to_biosig_plugin_name_by_default(in_tmp: Path, run_cli) -> None:
    result = run_cli("plugins", "new", "abc")
    assert result.code == 0, result.err
    assert (in_tmp / "biosig-plugin-abc" / "biosig_plugin_abc" / "__init__.py").is_file()


@pytest.mark.parametrize("how", ["relative", "absolute"])
def test_plugins_new_into_the_empty_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli, how: str
) -> None:
    """``--dir .``: the package is written into the directory, which stays the same one
    (never removed and made again under a shell standing in it)."""
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    inode = here.stat().st_ino
    result = run_cli("plugins", "new", "xyz", "--dir", "." if how == "relative" else here)
    assert result.code == 0, result.err
    assert f"wrote biosig-plugin-xyz to {here}" in result.out
    assert here.stat().st_ino == inode
    assert sorted(p.name for p in here.iterdir()) == [
        "README.md", "biosig_plugin_xyz", "pyproject.toml", "tests",
    ]  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here"]  # no temporary left


def test_a_failure_moving_into_an_empty_directory_leaves_it_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "pkg"
    target.mkdir()
    real_rename = os.rename
    moved = []

    def failing_rename(src, dst) -> None:
        if moved:
            raise OSError(28, "No space left on device")
        moved.append(dst)
        real_rename(src, dst)

    monkeypatch.setattr(scaffold.os, "rename", failing_rename)
    with pytest.raises(BiosigError, match=rf"^{target}: cannot be written \(No space left"):
        scaffold.new_plugin("xyz", target)
    assert moved and list(target.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg"]


def test_a_directory_that_cannot_be_made_is_one_error_naming_it(tmp_path: Path, run_cli) -> None:
    (tmp_path / "afile").write_text("not a directory")
    target = tmp_path / "afile" / "sub"
    result = run_cli("plugins", "new", "xyz", "--dir", target)
    assert result.code == 2
    assert result.err_lines == [
        f"error: {target}: cannot be created: {tmp_path / 'afile'} is not a directory"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_the_name_of_an_installed_plugin_is_refused(in_tmp: Path, run_cli) -> None:
    result = run_cli("plugins", "new", "numpy")
    assert result.code == 2
    assert result.err_lines == [
        "error: plugin name 'numpy': an installed plugin is called so (biosig plugins show "
        "numpy), and two plugins of one name clash; choose another name"
    ]
    assert list(in_tmp.iterdir()) == []


def test_caches_and_virtual_environments_are_not_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    template = tmp_path / "template"
    shutil.copytree(TEMPLATE, template, ignore=IGNORE)
    junk = [".venv/bin/python", "venv/pyvenv.cfg", ".mypy_cache/x.json", ".tox/py/log.txt",
            "build/lib/x.py", "dist/x.whl", "biosig_plugin_wav.egg-info/PKG-INFO"]  # fmt: skip
    for name in junk:
        (template / name).parent.mkdir(parents=True, exist_ok=True)
        (template / name).write_text("junk")
    monkeypatch.setattr(scaffold, "template_dir", lambda: template)
    _, target = scaffold.new_plugin("xyz", tmp_path / "pkg")
    assert sorted(p.name for p in target.iterdir()) == [
        "README.md", "biosig_plugin_xyz", "pyproject.toml", "tests",
    ]  # fmt: skip


@pytest.mark.parametrize("name", ["MyFormat", "my-format", "2d", "class", "my_format_", "é", ""])
def test_a_bad_plugin_name_is_one_error_line(in_tmp: Path, run_cli, name: str) -> None:
    result = run_cli("plugins", "new", name)
    assert result.code == 2
    assert result.err_lines == [
        f"error: plugin name {name!r}: use a lowercase identifier (a letter, then letters, "
        "digits or underscores), e.g. myformat or heart_sounds"
    ]
    assert list(in_tmp.iterdir()) == []


def test_an_existing_target_is_refused_and_left_alone(tmp_path: Path, run_cli) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("keep me")
    (tmp_path / "a-file").write_text("keep me too")
    result = run_cli("plugins", "new", "xyz", "--dir", tmp_path / "taken")
    assert result.code == 2
    assert result.err_lines == [
        f"error: {tmp_path / 'taken'}: already exists and is not empty; choose another --dir"
    ]
    result = run_cli("plugins", "new", "xyz", "--dir", tmp_path / "a-file")
    assert result.err_lines == [
        f"error: {tmp_path / 'a-file'}: already exists and is not a directory; choose another --dir"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "taken"]
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["mine.txt"]


def test_a_failure_while_writing_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def failing_render(text: str, names: scaffold.PluginNames) -> str:
        calls.append(text)
        if len(calls) == 3:
            raise OSError("disk full")
        return text

    monkeypatch.setattr(scaffold, "render", failing_render)
    with pytest.raises(
        BiosigError, match=rf"^{tmp_path / 'pkg'}: cannot be written \(disk full\)$"
    ):
        scaffold.new_plugin("xyz", tmp_path / "pkg")
    assert list(tmp_path.iterdir()) == []


def test_plugin_names_are_derived_from_the_plugin_name() -> None:
    names = scaffold.PluginNames.of("heart_sounds2")
    assert (names.name, names.module, names.cls, names.distribution) == (
        "heart_sounds2",
        "biosig_plugin_heart_sounds2",
        "HeartSounds2Plugin",
        "biosig-plugin-heart-sounds2",
    )
    with pytest.raises(BiosigError):
        scaffold.PluginNames.of("Heart")


# --- the guide and the reference say what the template and the command do -----------------


def test_the_docs_name_the_biosig_range_the_template_depends_on() -> None:
    """One range everywhere: up to the next major, within which the API versioning policy
    promises compatibility."""
    project = tomllib.loads((TEMPLATE / "pyproject.toml").read_text(encoding="utf-8"))
    (spec,) = [d for d in project["project"]["dependencies"] if re.match(r"biosig\b", d)]
    assert spec == "biosig>=0.1,<1"
    for doc in (REPO / "docs" / "plugins.md", TEMPLATE / "README.md"):
        ranges = re.findall(r"biosig>=[^`\"\s]*", doc.read_text(encoding="utf-8"))
        assert ranges and set(ranges) == {spec}, (doc, ranges)


def test_the_guide_shows_every_file_plugins_new_writes(tmp_path: Path) -> None:
    guide = (REPO / "docs" / "plugins.md").read_text(encoding="utf-8")
    layout = guide.split("## Publishing")[1].split("```")[1]
    _, target = scaffold.new_plugin("xyz", tmp_path / "pkg")
    for path in target.rglob("*"):
        if path.is_file():
            assert path.relative_to(target).as_posix() in layout, path


def test_the_reference_shows_plugins_new_help_as_it_is(
    monkeypatch: pytest.MonkeyPatch, run_cli
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    result = run_cli("plugins", "new", "--help")
    assert result.code == 0
    reference = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    block = reference.split("## `biosig plugins new`\n\n```\n")[1].split("```")[0]
    assert block == result.out
    # click wraps after a hyphen too: "./biosig-plugin-\n NAME"
    unwrapped = " ".join(block.split()).replace("- ", "-")
    assert "[default: ./biosig-plugin-NAME, underscores as dashes]" in unwrapped


# --- wheels in a fresh virtual environment --------------------------------------------------

BROKEN_PROJECT = """
    [build-system]
    requires = ["setuptools>=70.1"]
    build-backend = "setuptools.build_meta"

    [project]
    name = "biosig-plugin-broken"
    version = "0.0.1"

    [project.entry-points."biosig.plugins"]
    broken = "biosig_plugin_broken:BrokenPlugin"
    future = "biosig_plugin_future:FuturePlugin"

    [tool.setuptools]
    py-modules = ["biosig_plugin_broken", "biosig_plugin_future"]
"""
BROKEN_MODULES = {
    "biosig_plugin_broken": 'raise ImportError("needs libfoo, which is not installed")\n',
    "biosig_plugin_future": """
        from biosig_plugin_wav import WavPlugin

        class FuturePlugin(WavPlugin):
            name = "future"
            api_version = 99
    """,
}


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment holding wheels of biosig, the template (the ``wav``
    plugin) and a broken plugin package, all built here offline; the current interpreter's
    site-packages provide the heavy dependencies (torch, scipy, …) through a ``.pth`` file,
    behind the venv's own, so the installed biosig wheel is the one imported. Returns the
    venv's python."""
    base = tmp_path_factory.mktemp("wheels")
    src = base / "src"
    (src / "biosig").mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / "biosig" / name)
    for name in ("biosig", "plugins"):
        shutil.copytree(REPO / name, src / "biosig" / name, ignore=IGNORE)
    shutil.copytree(TEMPLATE, src / "wav", ignore=IGNORE)
    broken = src / "broken"
    broken.mkdir()
    (broken / "pyproject.toml").write_text(textwrap.dedent(BROKEN_PROJECT), encoding="utf-8")
    for module, code in BROKEN_MODULES.items():
        (broken / f"{module}.py").write_text(textwrap.dedent(code), encoding="utf-8")
    wheels = base / "dist"
    run(
        sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
        "--no-index", src / "biosig", src / "wav", broken, "-w", wheels, cwd=base,
    )  # fmt: skip

    env = base / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", env, cwd=base)
    python = env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    where = "import sysconfig; print(sysconfig.get_path('purelib'))"
    purelib = Path(run(python, "-c", where, cwd=base).strip())
    # --target installs into the venv alone, whatever the current environment holds.
    run(
        sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
        "--target", purelib, *sorted(wheels.glob("*.whl")), cwd=base,
    )  # fmt: skip
    # Only now the current environment's packages, processed as site dirs (so its .pth
    # files, an editable biosig's among them, work there too) and after the venv's own.
    outer = [*site.getsitepackages()]
    if site.ENABLE_USER_SITE and Path(site.getusersitepackages()).is_dir():
        outer.append(site.getusersitepackages())
    lines = [f"import site; site.addsitedir({str(p)!r})" for p in outer]
    (purelib / "_biosig_test_outer_packages.pth").write_text("\n".join(lines) + "\n")
    return python


def write_wavs(root: Path) -> list[str]:
    """``root/tone/*.wav`` (a tone in noise) and ``root/noise/*.wav``, 1 s each at 8 kHz
    (resampled to the plugin's 4 kHz), every one float32 stereo (one model takes one channel
    count; 16-bit mono, other widths and layouts are the template's own tests')."""
    rng = np.random.default_rng(0)
    t = np.arange(8000) / 8000
    names = []
    for label in ("tone", "noise"):
        for i in range(3):
            x = 0.3 * rng.normal(size=(8000, 2))  # [n, C], as WAV holds it
            if label == "tone":
                x += np.sin(2 * np.pi * rng.uniform(150, 250) * t)[:, None] * [1.0, 0.5]
            path = root / label / f"{label}{i}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            wavfile.write(path, 8000, (x / 4).astype(np.float32))
            names.append(path.stem)
    return names


def test_the_installed_biosig_is_the_wheel_and_ships_the_template(
    venv: Path, tmp_path: Path
) -> None:
    out = run(
        venv, "-c",
        "import sys, biosig, biosig.plugin.scaffold as s; from biosig.cli import main; "
        "print(biosig.__file__); print(s.template_dir()); sys.exit(main(sys.argv[1:]))",
        "plugins", "new", "beta", "--dir", tmp_path / "beta", cwd=tmp_path,
    )  # fmt: skip
    biosig_file, template, *_ = out.splitlines()
    prefix = venv.parents[1]
    assert Path(biosig_file).is_relative_to(prefix), biosig_file
    assert Path(template).is_relative_to(prefix) and Path(template).name == "plugin_template"
    project = tomllib.loads((tmp_path / "beta" / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["entry-points"]["biosig.plugins"] == {
        "beta": "biosig_plugin_beta:BetaPlugin"
    }
    files = sorted(
        p.relative_to(tmp_path / "beta").as_posix() for p in (tmp_path / "beta").rglob("*")
    )
    assert files == [  # from the installed template: no caches pip compiled beside it
        "README.md", "biosig_plugin_beta", "biosig_plugin_beta/__init__.py",
        "biosig_plugin_beta/reader.py", "biosig_plugin_beta/synthetic.py", "pyproject.toml",
        "tests", "tests/test_beta_plugin.py",
    ]  # fmt: skip


def test_plugins_list_shows_the_installed_plugin_ok_and_broken_ones_with_reasons(
    venv: Path,
) -> None:
    listing = run(venv, "-m", "biosig", "plugins", "list", cwd=venv.parent)
    rows = {line.split()[0]: line for line in listing.splitlines() if line.strip()}
    # name, version, rate, window, hop, status
    assert rows["wav"].split()[:6] == ["wav", "0.1.0", "4000", "8000", "4000", "ok"], listing
    assert (
        "broken: import failed: ImportError: needs libfoo, which is not installed" in rows["broken"]
    )
    assert "broken: declares plugin API version 99; this biosig supports 1" in rows["future"]
    assert rows["numpy"].split()[5] == "ok"  # the first-party plugins are unaffected
    show = run(venv, "-m", "biosig", "plugins", "show", "wav", cwd=venv.parent)
    assert "biosig_plugin_wav:WavPlugin" in show and "biosig-plugin-wav 0.1.0" in show, show


def test_train_and_predict_with_the_installed_plugin_beside_broken_ones(
    venv: Path, tmp_path: Path
) -> None:
    names = write_wavs(tmp_path / "data")
    run(
        venv, "-m", "biosig", "train", "--plugin", "wav", "--input", tmp_path / "data",
        "--labels", "folder", "--preset", "tiny", "--epochs", "1", "--window", "1024",
        "--hop", "512", "--device", "cpu", "--out", tmp_path / "run", cwd=tmp_path,
    )  # fmt: skip
    assert (tmp_path / "run" / "best" / "model.safetensors").is_file()
    meta = json.loads((tmp_path / "run" / "best" / "biosig.json").read_text(encoding="utf-8"))
    assert meta["channels"] == ["ch0", "ch1"] and meta["model"]["in_channels"] == 2
    run(
        venv, "-m", "biosig", "predict", "--plugin", "wav", "--model", tmp_path / "run" / "best",
        "--device", "cpu", "--out", tmp_path / "pred", tmp_path / "data", cwd=tmp_path,
    )  # fmt: skip
    recordings = (tmp_path / "pred" / "recordings.tsv").read_text().splitlines()
    header = recordings[0].split("\t")
    rows = [dict(zip(header, line.split("\t"), strict=True)) for line in recordings[1:]]
    assert sorted(r["recording"] for r in rows) == sorted(names)
    assert {r["label"] for r in rows} <= {"tone", "noise"}
    windows = (tmp_path / "pred" / "windows.tsv").read_text().splitlines()
    # 1 s at 8 kHz is 4000 samples at the model's 4 kHz: several windows of 1024 each
    assert all(int(r["n_windows"]) >= 3 for r in rows)
    assert len(windows) - 1 == sum(int(r["n_windows"]) for r in rows)
