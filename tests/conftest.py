"""Shared fixtures: small synthetic data, an in-process CLI runner, working directories."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from biosig_numpy.synthetic import synthetic_arrays

from biosig.cli import main

#: Small enough to train a tiny model in seconds on a 2-core CPU.
N_RECORDINGS = 30
LENGTH = 256

REPO = Path(__file__).resolve().parents[1]


@dataclass
class CliResult:
    """What one in-process ``biosig`` invocation returned and printed."""

    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        """Non-blank stderr lines (progress bars redraw with ``\\r``, which splits too)."""
        return [line for line in self.err.splitlines() if line.strip()]


def invoke_cli(*args: str | Path, cwd: str | Path | None = None) -> CliResult:
    """Run ``biosig ARGS`` in this process (in ``cwd`` if given), capturing its output.

    ``biosig.cli.main`` returns the exit code instead of calling ``sys.exit``, so the code is
    exactly what the ``biosig`` command would exit with.
    """
    out, err = io.StringIO(), io.StringIO()
    previous = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with redirect_stdout(out), redirect_stderr(err):
            code = main([str(a) for a in args])
    finally:
        os.chdir(previous)
    return CliResult(code, out.getvalue(), err.getvalue())


@pytest.fixture(autouse=True)
def every_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see every installed plugin, whatever ``BIOSIG_PLUGINS`` the shell has set
    (tests of that variable set it themselves)."""
    monkeypatch.delenv("BIOSIG_PLUGINS", raising=False)


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Run torch on one thread for a module: as fast for the tiny models tests train, and
    many times faster on a shared 2-core machine, where busy-waiting worker threads
    compete with other processes. Modules ask for it with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def biosig_log(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch):
    """Capture the ``biosig`` logger's warnings. The CLI (run earlier in the session) gives
    it its own handler and stops propagation; undo that for the test."""
    logger = logging.getLogger("biosig")
    monkeypatch.setattr(logger, "handlers", [])
    monkeypatch.setattr(logger, "propagate", True)
    caplog.set_level(logging.WARNING, logger="biosig")
    return caplog


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., CliResult]:
    """``run_cli(*args, cwd=None) -> CliResult(code, out, err)``; see :func:`invoke_cli`."""
    return invoke_cli


@pytest.fixture(scope="session")
def synthetic_npy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding ``signals.npy`` (30, 256) float32 and ``labels.npy`` (30,) str,
    three balanced classes (background, rhythm, spikes). Treat it as read-only."""
    directory = tmp_path_factory.mktemp("synthetic")
    signals, labels = synthetic_arrays(N_RECORDINGS, LENGTH, seed=0)
    np.save(directory / "signals.npy", signals)
    np.save(directory / "labels.npy", labels)
    return directory


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test with a fresh temporary directory as the working directory (for
    commands that write ``runs/``)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Real sample files in ``../shared/data`` beside the repository. Missing on CI is a
    failure (CI must provide them); missing locally skips."""
    path = REPO.parent / "shared" / "data"
    if not path.is_dir():
        message = f"{path} not found"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI must provide the shared sample data")
        pytest.skip(message)
    return path
