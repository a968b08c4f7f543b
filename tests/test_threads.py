"""The thread policy: cores from affinity and quota, the busy count from the run queue, what
wins over what, and that torch computes with the threads chosen before it loads."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from biosig import threads
from biosig.threads import ThreadPolicy, busy_elsewhere, choose_threads, cpu_quota


@pytest.fixture
def torch_threads() -> Iterator[None]:
    """Restore torch's intra-op threads after a test that changes them."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch):
    """``machine(cores, busy)``: a process allowed ``cores`` cores with ``busy`` other
    threads runnable, and no OMP_NUM_THREADS."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)

    def make(cores: int, busy: int) -> None:
        monkeypatch.setattr(threads, "usable_cores", lambda: cores)
        monkeypatch.setattr(threads, "busy_elsewhere", lambda: busy)

    return make


def test_cgroup_v2_quota(tmp_path: Path) -> None:
    limit = tmp_path / "cpu.max"
    limit.write_text("150000 100000\n")
    assert cpu_quota(limit, tmp_path / "v1") == 1.5
    limit.write_text("max 100000\n")
    assert cpu_quota(limit, tmp_path / "v1") is None


def test_cgroup_v1_quota(tmp_path: Path) -> None:
    (tmp_path / "cpu.cfs_quota_us").write_text("200000\n")
    (tmp_path / "cpu.cfs_period_us").write_text("100000\n")
    assert cpu_quota(tmp_path / "absent", tmp_path) == 2.0
    (tmp_path / "cpu.cfs_quota_us").write_text("-1\n")  # no quota
    assert cpu_quota(tmp_path / "absent", tmp_path) is None
    assert cpu_quota(tmp_path / "absent", tmp_path / "absent") is None  # nothing readable


def test_usable_cores_is_capped_by_the_quota(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7})
    monkeypatch.setattr(threads, "cpu_quota", lambda: 2.5)
    assert threads.usable_cores() == 3  # part of a third core is still worth a thread
    monkeypatch.setattr(threads, "cpu_quota", lambda: None)
    assert threads.usable_cores() == 8


def test_busy_count_is_the_run_queue_less_this_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(threads, "RUN_QUEUE_PAUSE_S", 0.0)
    stat = tmp_path / "stat"
    stat.write_text("cpu  1 2 3\nprocs_running 5\nprocs_blocked 0\n")
    assert busy_elsewhere(stat) == 4
    stat.write_text("cpu  1 2 3\n")
    assert busy_elsewhere(stat) == 0
    assert busy_elsewhere(tmp_path / "absent") == 0


class Samples:
    """A ``/proc/stat`` whose run queue changes from one read to the next."""

    def __init__(self, *running: int) -> None:
        self.running = list(running)

    def read_text(self) -> str:
        return f"cpu  1 2 3\nprocs_running {self.running.pop(0)}\n"


def test_a_passing_thread_is_not_a_busy_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "RUN_QUEUE_PAUSE_S", 0.0)
    # a kernel thread or a shell runnable in some samples; two busy processes in every one
    assert busy_elsewhere(Samples(3, 4, 3, 3, 5)) == 2
    assert busy_elsewhere(Samples(2, 1, 1, 2, 1)) == 0


def test_free_cores_less_busy_ones_and_extra_readers(machine) -> None:
    machine(8, 3)
    assert choose_threads() == ThreadPolicy(5, "free cores", 8, 3)
    assert choose_threads(readers=1).threads == 5  # the first reader mostly waits on the disk
    assert choose_threads(readers=3).threads == 3
    machine(2, 4)
    assert choose_threads().threads == 1  # never fewer than one


def test_the_user_choice_wins(machine, monkeypatch: pytest.MonkeyPatch) -> None:
    machine(8, 6)
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert choose_threads() == ThreadPolicy(4, "OMP_NUM_THREADS", 8)
    assert choose_threads(requested=7) == ThreadPolicy(7, "--threads", 8)


def test_torch_already_loaded_gets_the_count(machine, torch_threads) -> None:
    machine(2, 1)
    assert threads.use_threads().threads == 1
    assert torch.get_num_threads() == 1


def run_python(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    done = subprocess.run(
        [sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
        check=True, timeout=120,
    )  # fmt: skip
    return done.stdout.strip()


def test_torch_loaded_after_computes_with_the_threads_chosen() -> None:
    code = (
        "import os; from biosig.threads import use_threads; p = use_threads(); import torch; "
        "print(p.threads, torch.get_num_threads(), os.environ['GOMP_SPINCOUNT'])"
    )
    chosen, used, spin = run_python(code).split()
    assert chosen == used and int(used) >= 1
    assert spin == threads.SPIN_COUNT


def test_the_user_wait_policy_is_kept() -> None:
    code = "import os; from biosig.threads import use_threads; use_threads(2); " + (
        "print(os.environ.get('GOMP_SPINCOUNT', '-'), os.environ['OMP_NUM_THREADS'])"
    )
    assert run_python(code, OMP_WAIT_POLICY="PASSIVE") == "- 2"
    assert run_python(code, GOMP_SPINCOUNT="77") == "77 2"


def test_threads_flag_reaches_torch(run_cli, torch_threads) -> None:
    result = run_cli("bench", "--plugin", "nope", "--threads", "1", "-v")
    assert result.code != 0  # the unknown plugin, after the threads were set
    assert "info: 1 compute thread (--threads;" in result.err
    assert torch.get_num_threads() == 1


def test_threads_flag_must_be_positive(run_cli) -> None:
    result = run_cli("train", "--threads", "0")
    assert result.code == 2 and "--threads" in result.err
