"""How much memory one array read from a file may claim."""

from __future__ import annotations

import subprocess
import sys

import pytest

from biosig import BiosigError, check_claim, memory_budget


def test_the_budget_is_part_of_the_memory_available_now() -> None:
    budget = memory_budget()
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        fields = dict(line.split(":", 1) for line in meminfo)
    total = int(fields["MemTotal"].split()[0]) * 1024
    assert 0 < budget <= total / 2


@pytest.mark.skipif(sys.platform != "linux", reason="ulimit -v as Linux applies it")
def test_an_address_space_limit_shrinks_the_budget() -> None:
    script = (
        "import resource; from biosig import memory_budget;"
        "resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30));"
        "print(memory_budget())"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert 0 < int(done.stdout) < 2**30  # half of what is left of 2 GiB


def test_a_claim_beyond_the_budget_names_file_field_and_sizes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("biosig.plugin.limits.memory_budget", lambda: 2**30)
    check_claim("a.dat", "samples", 2**30)  # at the budget: allowed
    with pytest.raises(BiosigError) as excinfo:
        check_claim("a.dat", "samples", 3 * 2**30, "read it in parts")
    assert str(excinfo.value) == (
        "a.dat: samples would take 3.00 GiB in memory, more than the 1.00 GiB this "
        "process can spare for one array; read it in parts"
    )


def test_a_small_claim_is_honoured_without_reading_the_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from biosig.plugin.limits import SMALL_CLAIM

    def unreadable() -> int:
        raise AssertionError("memory_budget read for a small claim")

    monkeypatch.setattr("biosig.plugin.limits.memory_budget", unreadable)
    check_claim("a.dat", "samples", SMALL_CLAIM)
    with pytest.raises(AssertionError, match="memory_budget read"):
        check_claim("a.dat", "samples", SMALL_CLAIM + 1)
