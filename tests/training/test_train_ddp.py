"""``torchrun --nproc-per-node 2 -m biosig train``: DistributedDataParallel on two CPU
processes over gloo. The ranks end with the same weights, their shards of each epoch cover
the training windows once (plus DistributedSampler's padding), rank 0 alone writes and
speaks, a failing rank fails the run without leaving the other waiting, and an interrupted
run resumes to the weights of the uninterrupted one.

Each rank's view comes from the training's test hook (``BIOSIG_DDP_DEBUG_DIR``: shards per
epoch and final weights), torchrun's per-rank logs (``--log-dir --redirects 3``), and an
audit hook loaded through ``sitecustomize`` that lists what each rank opens for writing,
creates, renames or removes.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import textwrap
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from biosig.checkpoint import read_meta
from biosig.training.trainer import RESUME_DIR, STATE_FILE

REPO = Path(__file__).resolve().parents[2]
EPOCHS = 2
#: --val-fraction 0.15 leaves 75 training windows (odd: one window of padding an epoch on
#: two ranks) and 15 validation windows (shared out 7 and 8).
N_TRAIN, N_VAL = 75, 15
WORLD = 2
#: A hung collective would stop the test here rather than at CI's limit.
TIMEOUT = 240
#: torch's own C++ log lines (``W1202 07:46:17.779000 …`` or ``[W1202 …]``), which a rank
#: may print whatever biosig does (gloo warns on a host name it cannot resolve, say).
TORCH_LOG = re.compile(r"^\[?[WIEF]\d{4} ")

#: With this set, each rank records there, per epoch, the training windows it was given,
#: the epoch's order and its shard of it (``rank-R.jsonl``), and its final weights
#: (``rank-R.pt``); ``DEBUG_FAIL_ENV=RANK:EPOCH`` makes that rank fail at the first step of
#: that epoch, a failure in the middle of an epoch that no agreement covers.
DEBUG_DIR_ENV = "BIOSIG_DDP_DEBUG_DIR"
DEBUG_FAIL_ENV = "BIOSIG_DDP_DEBUG_FAIL"

#: Loaded by every Python process started with this directory on PYTHONPATH. In torchrun's
#: workers (which have RANK set) it installs the observer above in biosig's training loop
#: (``biosig.training.trainer.OBSERVERS``), and logs every write. The log file is opened before the
#: audit hook is installed, and written with os.write, which raises no audit event.
SITECUSTOMIZE = textwrap.dedent(
    """
    import os
    import sys

    _debug, _rank = os.environ.get("BIOSIG_DDP_DEBUG_DIR"), os.environ.get("RANK")
    if _debug and _rank is not None:
        import json

        import numpy as np
        import torch

        from biosig.training import trainer as _training

        class _RankTrace:
            def __init__(self):
                rank, _, epoch = os.environ.get("BIOSIG_DDP_DEBUG_FAIL", "").partition(":")
                self.fail_epoch = int(epoch) if rank and int(rank) == int(_rank) else None
                os.makedirs(_debug, exist_ok=True)

            def epoch_started(self, trainer, epoch, order, mine):
                record = {
                    "epoch": epoch,
                    "world_size": trainer.world.world_size,
                    "train": np.asarray(trainer.train_idx).tolist(),
                    "order": np.asarray(order).tolist(),
                    "shard": np.asarray(mine).tolist(),
                }
                path = os.path.join(_debug, "rank-" + str(trainer.world.rank) + ".jsonl")
                with open(path, "a") as handle:
                    handle.write(json.dumps(record) + "\\n")

            def step(self, trainer, epoch):
                if epoch == self.fail_epoch:
                    raise RuntimeError(
                        "BIOSIG_DDP_DEBUG_FAIL: rank %d fails at epoch %d"
                        % (trainer.world.rank, epoch)
                    )

            def finished(self, trainer):
                path = os.path.join(_debug, "rank-" + str(trainer.world.rank) + ".pt")
                torch.save(trainer.model.state_dict(), path)

        _training.OBSERVERS.append(_RankTrace())

    _dir = os.environ.get("BIOSIG_TEST_WRITE_LOG")
    if _dir and _rank is not None:
        _fd = os.open(
            os.path.join(_dir, "writes-rank-" + _rank + ".log"),
            os.O_WRONLY | os.O_CREAT | os.O_APPEND,
        )
        _WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
        _CHANGES = {
            "os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.symlink", "os.link",
            "os.truncate", "shutil.rmtree",
        }

        def _paths(args):
            return [a for a in args if isinstance(a, (str, bytes, os.PathLike))]

        def _hook(event, args):
            if event == "open":
                path, mode, flags = args
                writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                    isinstance(flags, int) and flags & _WRITE_FLAGS
                )
                paths = _paths([path]) if writes else []
            elif event in _CHANGES:
                paths = _paths(args)
            else:
                return
            for path in paths:
                path = os.fsdecode(path)
                line = event + "\\t" + os.path.abspath(path) + "\\n"
                os.write(_fd, line.encode())

        sys.addaudithook(_hook)
    """
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@dataclass
class Launch:
    """One ``torchrun`` run: its exit, and each rank's output, writes and debug records."""

    returncode: int
    stderr: str
    stdout: list[str]  # per rank
    rank_stderr: list[str]
    writes: list[list[tuple[str, Path]]]
    debug: Path

    def epochs(self, rank: int) -> list[dict]:
        path = self.debug / f"rank-{rank}.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()]

    def weights(self, rank: int) -> dict[str, torch.Tensor]:
        return torch.load(self.debug / f"rank-{rank}.pt", weights_only=True)

    def failed_ranks(self) -> dict[int, int]:
        """Rank -> exit code of every rank torchrun's failure summary lists."""
        found = re.findall(r"rank\s*:\s*(\d+).*?\n\s*exitcode\s*:\s*(-?\d+)", self.stderr)
        return {int(rank): int(code) for rank, code in found}


def torchrun(
    work: Path,
    name: str,
    *args: str | Path,
    fail: str | None = None,
    monitor: float = 0.1,
    command: str = "train",
) -> Launch:
    """``torchrun --standalone --nproc-per-node 2 -m biosig COMMAND ARGS`` in
    ``work``, each rank's output kept apart under ``work/name-logs``; ``fail`` is
    ``RANK:EPOCH`` for the rank to fail, ``monitor`` how often torchrun looks at its
    workers (once one exited with an error, it stops the others)."""
    logs, debug, hooks = work / f"{name}-logs", work / f"{name}-debug", work / "hooks"
    for directory in (logs, debug, hooks):
        directory.mkdir(exist_ok=True)
    (hooks / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join([str(hooks), str(REPO), os.environ.get("PYTHONPATH", "")]),
        "BIOSIG_TEST_WRITE_LOG": str(debug),
        DEBUG_DIR_ENV: str(debug),
    }
    env.pop(DEBUG_FAIL_ENV, None)
    if fail is not None:
        env[DEBUG_FAIL_ENV] = fail
    launched = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        "--nproc-per-node", str(WORLD), "--log-dir", logs, "--redirects", "3",
        "--monitor-interval", str(monitor),
        "-m", "biosig", command, *args,
    ]  # fmt: skip
    result = subprocess.run(
        [str(c) for c in launched],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )

    def rank_log(rank: int, stream: str) -> str:
        (path,) = logs.glob(f"*/attempt_0/{rank}/{stream}.log")
        return path.read_text()

    def rank_writes(rank: int) -> list[tuple[str, Path]]:
        path = debug / f"writes-rank-{rank}.log"
        lines = path.read_text().splitlines() if path.exists() else []
        return [(event, Path(p)) for event, p in (line.split("\t", 1) for line in lines)]

    return Launch(
        result.returncode,
        result.stderr,
        [rank_log(r, "stdout") for r in range(WORLD)],
        [rank_log(r, "stderr") for r in range(WORLD)],
        [rank_writes(r) for r in range(WORLD)],
        debug,
    )


def train_args(synthetic_npy: Path, out: Path) -> list[str | Path]:
    return [
        "--plugin", "numpy",
        "--input", synthetic_npy / "signals.npy",
        "--labels", synthetic_npy / "labels.npy",
        "--preset", "tiny", "--epochs", str(EPOCHS),
        "--window", "128", "--hop", "64", "--val-fraction", "0.15",
        "--out", out, "--device", "cpu",
    ]  # fmt: skip


def own_lines(text: str) -> list[str]:
    """The lines of a rank's output that are not torch's own log lines."""
    return [line for line in text.splitlines() if line.strip() and not TORCH_LOG.match(line)]


def under(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


def history(run: Path) -> list[dict[str, str]]:
    with (run / "history.tsv").open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ddp")


@pytest.fixture(scope="module")
def trained(work: Path, synthetic_npy: Path) -> tuple[Launch, Path]:
    """The uninterrupted two-process run, and its run directory."""
    run = work / "run"
    launch = torchrun(work, "run", *train_args(synthetic_npy, run))
    assert launch.returncode == 0, launch.stderr + "".join(launch.rank_stderr)
    return launch, run


# --------------------------------------------------------------------------- one good run


def test_ranks_end_with_identical_weights(trained) -> None:
    launch, _ = trained
    rank0, rank1 = launch.weights(0), launch.weights(1)
    assert rank0.keys() == rank1.keys()
    # parameters, and BatchNorm statistics (each rank's last batch updated its own; rank
    # 0's are broadcast after every epoch)
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key


def test_every_epoch_the_shards_cover_the_training_windows_once(trained) -> None:
    launch, _ = trained
    records = [launch.epochs(0), launch.epochs(1)]
    assert [r["epoch"] for r in records[0]] == [r["epoch"] for r in records[1]] == [1, 2]
    train = records[0][0]["train"]
    assert len(train) == len(set(train)) == N_TRAIN
    orders = []
    for epoch in range(EPOCHS):
        first, second = records[0][epoch], records[1][epoch]
        assert first["order"] == second["order"]  # every rank drew the same epoch order
        order = first["order"]
        assert sorted(order) == sorted(train)  # a permutation of the training windows
        # DistributedSampler's rule: padded from the start, then every second entry
        padding = order[: -len(order) % WORLD]
        assert len(padding) == 1
        assert first["shard"] == (order + padding)[0::WORLD]
        assert second["shard"] == (order + padding)[1::WORLD]
        assert len(first["shard"]) == len(second["shard"])  # the same number of steps
        # Together: every training window once, the padding window a second time.
        visited = Counter(first["shard"]) + Counter(second["shard"])
        assert visited - Counter(padding) == Counter(train)
        orders.append(order)
    assert orders[0] != orders[1]  # a new order each epoch (DistributedSampler.set_epoch)


def test_rank_0_alone_writes_and_speaks(trained, work: Path) -> None:
    launch, run = trained
    assert sorted(p.name for p in run.iterdir()) == [
        "best", "confusion.png", "history.tsv", "last", "learning_curves.png", RESUME_DIR
    ]  # fmt: skip
    assert sorted(p.name for p in (run / RESUME_DIR).iterdir()) == ["settings.json", STATE_FILE]
    rows = history(run)
    assert [row["epoch"] for row in rows] == ["1", "2"]  # one row per epoch, not per rank
    # rank 1 wrote nothing in the run directory; rank 0 wrote it all
    assert [p for _, p in launch.writes[1] if under(p, run)] == []
    written0 = {p.name for _, p in launch.writes[0] if under(p, run)}
    assert {"settings.json", "best", "last"} <= written0
    assert any(name.startswith(".history.tsv.tmp") for name in written0)
    # rank 1 printed nothing (no progress bars, no warnings); rank 0 every epoch once
    assert own_lines(launch.stdout[1]) == own_lines(launch.rank_stderr[1]) == []
    epoch_lines = [line for line in launch.stdout[0].splitlines() if line.startswith("epoch")]
    assert len(epoch_lines) == EPOCHS
    assert f"on {N_TRAIN} windows, validating on {N_VAL}" in launch.stdout[0]
    assert "2 processes" in launch.stdout[0]
    assert f"model written to {run}" in launch.stdout[0]


def test_the_run_predicts(trained, work: Path, synthetic_npy: Path, run_cli) -> None:
    _, run = trained
    meta = read_meta(run)
    assert meta.training["world_size"] == WORLD
    assert meta.training["n_train_windows"] == N_TRAIN
    out = work / "predicted"
    result = run_cli("predict", "--model", run, "--out", out, synthetic_npy / "signals.npy")
    assert result.code == 0, result.err
    with (out / "recordings.tsv").open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert len(rows) == 30
    p = np.array([[float(row[f"p_{c}"]) for c in meta.classes] for row in rows])
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-4)


# --------------------------------------------------------------------------- failures


def test_rank_0_failing_to_write_fails_both_ranks(work: Path, synthetic_npy: Path) -> None:
    run = work / "unwritable"
    (run / "history.tsv").mkdir(parents=True)  # rank 0's first write fails: it is a directory
    # torchrun looks at its workers only every 5 s here, so that it does not stop rank 1
    # before rank 1 exits by itself.
    launch = torchrun(work, "unwritable", *train_args(synthetic_npy, run), monitor=5)
    assert launch.returncode != 0
    # Both exit with biosig's error code: rank 0 with its own error, rank 1 told of it at
    # the agreement after the epoch's writes (neither waits for the other).
    assert launch.failed_ranks() == {0: 2, 1: 2}, launch.stderr
    assert "history.tsv" in launch.rank_stderr[0]
    assert "another process of this run failed" in launch.rank_stderr[1]
    assert len(launch.epochs(1)) == 1  # rank 1 never started a second epoch


def test_a_rank_failing_mid_epoch_stops_both_and_the_run_resumes_exactly(
    trained, work: Path, synthetic_npy: Path, run_cli
) -> None:
    uninterrupted, reference = trained
    run = work / "interrupted"
    # Rank 1 raises at the first step of epoch 2, leaving rank 0 in that step's exchange;
    # rank 0 fails too (the connection closes, or torchrun stops it) instead of waiting.
    failed = torchrun(work, "interrupted", *train_args(synthetic_npy, run), fail="1:2")
    assert failed.returncode != 0
    codes = failed.failed_ranks()
    assert codes.keys() == {0, 1} and 0 not in codes.values(), failed.stderr
    assert "rank 1 fails at epoch 2" in failed.rank_stderr[1]
    assert [row["epoch"] for row in history(run)] == ["1"]

    # One process cannot continue what two started (its shards and draws would differ).
    refused = run_cli("train", "--resume", run)
    assert refused.code == 2
    assert "trained by 2 processes; resume it with as many" in refused.err

    resumed = torchrun(work, "resumed", "--resume", run)
    assert resumed.returncode == 0, resumed.stderr + "".join(resumed.rank_stderr)
    assert f"resuming {run} after epoch 1 of {EPOCHS}" in resumed.stdout[0]
    assert own_lines(resumed.stdout[1]) == own_lines(resumed.rank_stderr[1]) == []
    # Every rank's random streams were restored: the same end as without the interruption.
    expected = uninterrupted.weights(0)
    for rank in range(WORLD):
        weights = resumed.weights(rank)
        for key in expected:
            assert torch.equal(weights[key], expected[key]), (rank, key)
    for row, want in zip(history(run), history(reference), strict=True):
        assert {k: v for k, v in row.items() if k != "seconds"} == {
            k: v for k, v in want.items() if k != "seconds"
        }


# ------------------------------------------------------------------------------ pretraining


def test_pretraining_runs_on_two_processes_and_resumes_on_them(
    work: Path, synthetic_npy: Path
) -> None:
    run = work / "pretrain-run"
    args = [
        "--plugin", "numpy", "--input", synthetic_npy / "signals.npy", "--preset", "tiny",
        "--epochs", "2", "--window", "128", "--hop", "64", "--mask-span", "8",
        "--out", run, "--device", "cpu",
    ]  # fmt: skip
    launch = torchrun(work, "pretrain", *args, command="pretrain")
    assert launch.returncode == 0, launch.stderr + "".join(launch.rank_stderr)
    assert "2 processes" in launch.stdout[0] and not own_lines(launch.stdout[1])
    assert [row["epoch"] for row in history(run)] == ["1", "2"]
    assert (run / "pretrained" / "model.safetensors").is_file()
    assert not [p for _, p in launch.writes[1] if under(p, run)]  # rank 0 writes the run
    # A finished run is left as it is; one more epoch resumes on as many processes.
    more = torchrun(work, "pretrain-more", "--resume", run, "--epochs", "3", command="pretrain")
    assert more.returncode == 0, more.stderr + "".join(more.rank_stderr)
    assert f"resuming {run} after epoch 2 of 3" in more.stdout[0]
    assert [row["epoch"] for row in history(run)] == ["1", "2", "3"]
