"""How much each command says: -v/-q on every command, and --help without the heavy
imports (torch, scikit-learn, pandas, matplotlib, scipy) that would make it take seconds."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from biosig.cli import COMMANDS

#: Every command a user can type, subcommands of `plugins` included.
EVERY_COMMAND = [[c] for c in COMMANDS if c != "plugins"] + [
    ["plugins", "list"], ["plugins", "show"], ["plugins", "new"],
]  # fmt: skip
#: What `--help` must not import: each takes from a few tenths of a second (scipy) to over
#: a second (torch, scikit-learn) on the 2-core CI machine.
HEAVY = ("torch", "sklearn", "pandas", "matplotlib", "scipy", "h5py", "wfdb", "pod5")
SMALL = ("--preset", "tiny", "--epochs", "1", "--window", "128", "--hop", "64")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_help_imports_nothing_heavy() -> None:
    """One child process asks every command for its help, as `biosig CMD --help` would, and
    reports the heavy modules that were imported: there must be none."""
    script = f"""
import contextlib, io, json, sys
from biosig.cli import main
codes = []
for args in {EVERY_COMMAND!r}:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        codes.append((args, main([*args, "--help"]), "--help" in out.getvalue()))
heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)
print(json.dumps({{"codes": codes, "heavy": heavy}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert [code for _, code, _ in result["codes"]] == [0] * len(EVERY_COMMAND)
    # each printed its own help, which lists -h/--help
    assert all(shown for _, _, shown in result["codes"])
    assert result["heavy"] == []


@pytest.mark.parametrize("args", EVERY_COMMAND, ids=" ".join)
def test_every_command_takes_v_and_q(args: list[str], run_cli) -> None:
    helped = run_cli(*args, "--help")
    assert helped.code == 0
    assert "-v, --verbose" in helped.out and "-q, --quiet" in helped.out
    both = run_cli(*args, "-q", "-v", "--help")
    # --help is eager and wins over everything; -q -v without it is a usage error
    assert both.code == 0
    contradiction = run_cli(*args, "-q", "-v")
    assert contradiction.code == 2
    assert contradiction.err_lines == [
        "error: -q/--quiet and -v/--verbose contradict each other; give one"
    ]


@pytest.fixture(scope="module")
def arrays(tmp_path_factory: pytest.TempPathFactory, synthetic_npy: Path) -> Path:
    work = tmp_path_factory.mktemp("verbosity")
    for name in ("signals.npy", "labels.npy"):
        shutil.copy(synthetic_npy / name, work / name)
    return work


def _train(run_cli, work: Path, out: str, *flags: str):
    return run_cli(
        "train", "--plugin", "numpy", "--input", "signals.npy", "--labels", "labels.npy",
        "--out", out, *SMALL, *flags, cwd=work,
    )  # fmt: skip


def test_quiet_training_prints_only_its_run_directory(arrays: Path, run_cli) -> None:
    said = _train(run_cli, arrays, "said")
    assert said.code == 0, said.err
    assert len(said.out.splitlines()) > 1  # epoch lines and where the model went
    quiet = _train(run_cli, arrays, "quiet", "-q")
    assert quiet.code == 0, quiet.err
    # a script can write run=$(biosig train -q …)
    assert quiet.out.splitlines() == ["quiet"]
    assert (arrays / "quiet" / "best").is_dir()
    # replacing a run says so on stderr, which -q silences too
    again = _train(run_cli, arrays, "quiet", "-q", "--force")
    assert again.code == 0, again.err
    assert again.out.splitlines() == ["quiet"]
    # the same training, whatever was printed
    assert (
        json.loads((arrays / "quiet" / "best" / "biosig.json").read_text())["classes"]
        == (json.loads((arrays / "said" / "best" / "biosig.json").read_text())["classes"])
    )


def test_verbose_adds_info_lines_and_resume_accepts_it(arrays: Path, run_cli) -> None:
    plain = _train(run_cli, arrays, "plain")
    verbose = _train(run_cli, arrays, "verbose", "-v")
    assert plain.code == verbose.code == 0, verbose.err
    assert not [line for line in plain.err_lines if line.startswith("info:")]
    assert [line for line in verbose.err_lines if line.startswith("info:")]
    # -v and -q only say how much to print: --resume, which refuses any other flag, takes them
    resumed = run_cli("train", "--resume", "verbose", "-q", cwd=arrays)
    assert resumed.code == 0, resumed.err
    assert resumed.out.splitlines() == ["verbose"]


def test_v_and_q_are_not_pipeline_keys(arrays: Path, run_cli) -> None:
    (arrays / "p.toml").write_text("quiet = true\n", encoding="utf-8")
    result = _train(run_cli, arrays, "pipelined", "--pipeline", "p.toml")
    assert result.code == 2
    assert "quiet" in result.err_lines[-1]
