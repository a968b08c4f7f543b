"""Running as several processes: ranks from torchrun's environment, contiguous shards, the
merge of per-rank tables, a real two-process gloo group on the CPU, and the pieces of
data-parallel training (epoch shards as DistributedSampler takes them, sums, broadcasts,
gathers, a one-shot agreement)."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

from biosig.errors import BiosigError
from biosig.inference.output import Table
from biosig.training.distributed import (
    PARTS_DIR,
    World,
    all_ok,
    backend_for,
    broadcast_buffers,
    broadcast_int,
    epoch_shard,
    gather_objects,
    gather_rows,
    merge_parts,
    part_dir,
    prepare_part_dir,
    process_group,
    quiet_unless_main,
    rank_device,
    reduce_sum,
    shard,
    total,
    world_from_env,
)

REPO = Path(__file__).resolve().parents[2]


# --- world_from_env ---------------------------------------------------------------------


def test_world_without_torchrun_is_one_process():
    world = world_from_env({})
    assert world == World(rank=0, world_size=1, local_rank=0)
    assert world.is_main and not world.is_distributed


def test_world_reads_torchrun_variables():
    world = world_from_env({"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1"})
    assert world == World(rank=5, world_size=8, local_rank=1)
    assert not world.is_main and world.is_distributed


def test_world_blank_variables_take_defaults():
    assert world_from_env({"RANK": "", "WORLD_SIZE": " "}) == World(0, 1, 0)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"RANK": "one"}, "RANK='one' is not a whole number"),
        ({"WORLD_SIZE": "2.5"}, "WORLD_SIZE='2.5' is not a whole number"),
        ({"LOCAL_RANK": "x"}, "LOCAL_RANK='x' is not a whole number"),
        ({"WORLD_SIZE": "0"}, "WORLD_SIZE=0 must be at least 1"),
        ({"RANK": "2", "WORLD_SIZE": "2"}, "RANK=2 must be from 0 to WORLD_SIZE-1=1"),
        ({"RANK": "-1", "WORLD_SIZE": "2"}, "RANK=-1 must be from 0 to WORLD_SIZE-1=1"),
        ({"RANK": "1"}, "RANK=1 must be from 0 to WORLD_SIZE-1=0"),
        ({"LOCAL_RANK": "-3"}, "LOCAL_RANK=-3 must not be negative"),
    ],
)
def test_world_malformed_variables_are_one_line_errors(environ, message):
    with pytest.raises(BiosigError) as caught:
        world_from_env(environ)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


# --- shard ------------------------------------------------------------------------------


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
@pytest.mark.parametrize("n", range(10))
def test_shards_are_contiguous_and_balanced(n, world_size):
    items = [f"file{i}" for i in range(n)]
    shards = [shard(items, World(rank, world_size)) for rank in range(world_size)]
    assert [item for part in shards for item in part] == items
    sizes = [len(part) for part in shards]
    assert max(sizes) - min(sizes) <= 1


def test_shard_values():
    items = list("abcdefg")
    assert [shard(items, World(r, 3)) for r in range(3)] == [["a", "b"], ["c", "d"], list("efg")]
    # fewer items than ranks: some ranks get nothing, and that is a valid shard
    assert [shard(items[:2], World(r, 4)) for r in range(4)] == [[], ["a"], [], ["b"]]
    assert shard((1, 2, 3), World(0, 1)) == [1, 2, 3]


# --- part directories and merge_parts ---------------------------------------------------


def write_parts(out_dir: Path, name: str, parts: list[str | None]) -> None:
    """Give every rank its part directory and, where ``parts`` has text, a part file
    (``None``: the rank wrote no file at all)."""
    for rank, text in enumerate(parts):
        directory = prepare_part_dir(out_dir, World(rank, len(parts)))
        if text is not None:
            (directory / name).write_text(text, encoding="utf-8")


def test_part_dir_is_hidden_inside_out_dir(tmp_path):
    assert part_dir(tmp_path, World(3, 4)) == tmp_path / ".parts" / "rank-00003"
    assert not part_dir(tmp_path, World(3, 4)).exists()


def test_prepare_part_dir_drops_an_earlier_runs_leftovers(tmp_path):
    stale = prepare_part_dir(tmp_path, World(1, 2)) / "windows.tsv"
    stale.write_text("a\nold\n")
    fresh = prepare_part_dir(tmp_path, World(1, 2))
    assert fresh.is_dir() and list(fresh.iterdir()) == []


def test_merge_tsv_keeps_one_header_and_rank_order(tmp_path):
    header = "recording\tstart\tend\n"
    write_parts(
        tmp_path,
        "windows.tsv",
        [
            "",  # rank 0 had no rows: an empty file
            header + "r1\t0\t10\nr1\t5\t15\n",
            None,  # rank 2 wrote no file
            header + "r2\t0\t10\n",
        ],
    )
    merge_parts(tmp_path, ["windows.tsv"], 4)
    assert (tmp_path / "windows.tsv").read_text() == (
        "recording\tstart\tend\nr1\t0\t10\nr1\t5\t15\nr2\t0\t10\n"
    )
    assert not (tmp_path / PARTS_DIR).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["windows.tsv"]  # no temporaries


def test_merge_csv_copies_quoted_fields_untouched(tmp_path):
    header = "recording,label\n"
    write_parts(
        tmp_path,
        "recordings.csv",
        [header + '"a,b",n\n', header + '"multi\nline",v\nc,n\n'],
    )
    merge_parts(tmp_path, ["recordings.csv"], 2)
    assert (tmp_path / "recordings.csv").read_text() == (
        'recording,label\n"a,b",n\n"multi\nline",v\nc,n\n'
    )


def test_merge_jsonl_has_no_header(tmp_path):
    write_parts(
        tmp_path,
        "segments.jsonl",
        ['{"recording": "a"}\n', None, '{"recording": "b"}\n{"recording": "c"}\n'],
    )
    merge_parts(tmp_path, ["segments.jsonl"], 3)
    lines = (tmp_path / "segments.jsonl").read_text().splitlines()
    assert [json.loads(line)["recording"] for line in lines] == ["a", "b", "c"]


def test_merge_of_only_empty_parts_is_an_empty_table(tmp_path):
    write_parts(tmp_path, "windows.tsv", ["", None])
    merge_parts(tmp_path, ["windows.tsv"], 2)
    assert (tmp_path / "windows.tsv").read_bytes() == b""
    assert not (tmp_path / PARTS_DIR).exists()


def test_merge_several_tables_at_once(tmp_path):
    for rank in range(2):
        directory = prepare_part_dir(tmp_path, World(rank, 2))
        (directory / "windows.tsv").write_text(f"w\nw{rank}\n")
        (directory / "recordings.tsv").write_text(f"r\nr{rank}\n")
    merge_parts(tmp_path, ["windows.tsv", "recordings.tsv", "segments.tsv"], 2)
    assert (tmp_path / "windows.tsv").read_text() == "w\nw0\nw1\n"
    assert (tmp_path / "recordings.tsv").read_text() == "r\nr0\nr1\n"
    assert (tmp_path / "segments.tsv").read_text() == ""


def test_merge_header_mismatch_names_the_part_and_changes_nothing(tmp_path):
    (tmp_path / "windows.tsv").write_text("previous run\n")
    write_parts(tmp_path, "windows.tsv", ["a\tb\n1\t2\n", "", "a\tc\n3\t4\n"])
    with pytest.raises(BiosigError) as caught:
        merge_parts(tmp_path, ["windows.tsv"], 3)
    assert str(part_dir(tmp_path, World(2, 3)) / "windows.tsv") in str(caught.value)
    assert "header differs" in str(caught.value)
    assert (tmp_path / "windows.tsv").read_text() == "previous run\n"
    assert (tmp_path / PARTS_DIR).is_dir()  # kept, to see what went wrong


def test_merge_checks_every_table_before_writing_any(tmp_path):
    for rank, header in enumerate(["s\n", "t\n"]):
        directory = prepare_part_dir(tmp_path, World(rank, 2))
        (directory / "windows.tsv").write_text(f"w\nw{rank}\n")
        (directory / "segments.tsv").write_text(f"{header}x\n")
    with pytest.raises(BiosigError, match="segments.tsv: its header differs"):
        merge_parts(tmp_path, ["windows.tsv", "segments.tsv"], 2)
    assert not (tmp_path / "windows.tsv").exists()


def test_merge_rejects_a_part_cut_short(tmp_path):
    write_parts(tmp_path, "windows.jsonl", ['{"a": 1}\n', '{"a": 2}\n{"a"'])
    with pytest.raises(BiosigError, match="rank-00001/windows.jsonl: does not end with a line"):
        merge_parts(tmp_path, ["windows.jsonl"], 2)


def test_merge_missing_rank_directory_is_an_error(tmp_path):
    # rank 1's directory is absent: on a multi-node run, --out was not shared
    prepare_part_dir(tmp_path, World(0, 2))
    with pytest.raises(BiosigError, match="output of rank 1 is missing"):
        merge_parts(tmp_path, ["windows.tsv"], 2)


def test_merge_ignores_parts_of_ranks_beyond_this_run(tmp_path):
    write_parts(tmp_path, "windows.tsv", ["h\na\n", "h\nb\n", "h\nstale\n"])
    merge_parts(tmp_path, ["windows.tsv"], 2)
    assert (tmp_path / "windows.tsv").read_text() == "h\na\nb\n"
    assert not (tmp_path / PARTS_DIR).exists()


def test_merge_rejects_an_unknown_table_format(tmp_path):
    write_parts(tmp_path, "windows.txt", ["x\n"])
    with pytest.raises(ValueError, match="windows.txt"):
        merge_parts(tmp_path, ["windows.txt"], 1)


@pytest.mark.parametrize("fmt", ["tsv", "csv", "jsonl"])
@pytest.mark.parametrize("world_size", [1, 2, 3, 7])
def test_sharded_tables_merge_into_the_single_process_table(tmp_path, fmt, world_size):
    """Rows written by biosig's own Table writer, rank by rank over contiguous shards, merge
    into the same bytes as one process writing them all."""
    columns = ["recording", "start", "label", "confidence"]
    recordings = [f"rec,{i}" for i in range(5)]  # a comma, so CSV must quote it

    def write(path: Path, ids: list[str]) -> None:
        with open(path, "w", encoding="utf-8") as handle:
            table = Table(handle, columns, fmt)
            for i in ids:
                for start in range(0, 3 * len(i), len(i)):
                    table.write([i, start, "n", 0.123456789])

    single = tmp_path / "single"
    single.mkdir()
    write(single / f"windows.{fmt}", recordings)
    sharded = tmp_path / "sharded"
    for rank in range(world_size):
        world = World(rank, world_size)
        write(prepare_part_dir(sharded, world) / f"windows.{fmt}", shard(recordings, world))
    merge_parts(sharded, [f"windows.{fmt}"], world_size)
    merged = (sharded / f"windows.{fmt}").read_bytes()
    assert merged == (single / f"windows.{fmt}").read_bytes()
    assert merged.count(b"\n") == 15 + (fmt != "jsonl")


# --- one process: no group, identity collectives ----------------------------------------


def test_single_process_needs_no_group():
    world = World()
    with process_group(world):
        assert all_ok(True, world) is True
        assert all_ok(False, world) is False
        assert total(7, world) == 7


def test_collectives_outside_a_group_are_a_programming_error():
    with pytest.raises(RuntimeError, match="inside process_group"):
        all_ok(True, World(0, 2))


# --- two real processes over gloo -------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import json
    from datetime import timedelta

    import torch.distributed as dist

    from biosig.training.distributed import all_ok, process_group, total, world_from_env

    world = world_from_env()
    report = {"rank": world.rank}
    try:
        with process_group(world, timeout=timedelta(seconds=60)):
            # round 1: everyone succeeds
            report["both_ok"] = all_ok(True, world)
            report["total"] = total(world.rank + 1, world)
            # round 2: rank 1 fails; all_ok in its `finally` still tells rank 0
            ok = False
            try:
                if world.rank == 1:
                    raise RuntimeError("rank 1 failed")
                ok = True
            finally:
                report["one_failed"] = all_ok(ok, world)
    finally:
        report["group_left"] = not dist.is_initialized()
        print(json.dumps(report), flush=True)
    """
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_processes_agree_on_success_and_on_a_failure():
    port = free_port()
    procs = []
    for rank in range(2):
        env = {
            **os.environ,
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RANK": str(rank),
            "WORLD_SIZE": "2",
            "LOCAL_RANK": str(rank),
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", WORKER],
                env=env,
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=90)
            results.append((proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    (rc0, out0, err0), (rc1, out1, err1) = results
    assert rc0 == 0, err0
    assert rc1 == 1 and "RuntimeError: rank 1 failed" in err1, err1
    reports = [json.loads(out0.splitlines()[-1]), json.loads(out1.splitlines()[-1])]
    for rank, report in enumerate(reports):
        assert report == {
            "rank": rank,
            "both_ok": True,
            "total": 3,
            "one_failed": False,
            "group_left": True,
        }


# --- data-parallel training -------------------------------------------------------------


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
@pytest.mark.parametrize("n", [1, 2, 5, 7, 8, 75])
def test_epoch_shards_are_what_distributed_sampler_takes(n, world_size):
    order = np.random.default_rng(n).permutation(100)[:n]
    shards = [epoch_shard(order, World(r, world_size)) for r in range(world_size)]
    for rank, part in enumerate(shards):
        sampler = DistributedSampler(order, num_replicas=world_size, rank=rank, shuffle=False)
        assert part.tolist() == order[list(sampler)].tolist()
    # every rank the same number of windows; together every window once, and the first
    # (size - n) % size of the order a second time: the padding
    assert len({len(part) for part in shards}) == 1
    padding = -n % world_size
    together = np.sort(np.concatenate(shards))
    expected = np.sort(np.concatenate([order, np.resize(order, padding)]))
    assert together.tolist() == expected.tolist()


def test_epoch_shard_of_one_process_or_no_windows_is_the_order():
    order = np.array([4, 2, 9])
    assert epoch_shard(order, World()) is order
    assert epoch_shard(order[:0], World(1, 2)).tolist() == []


def test_balanced_draws_are_sharded_the_same_way():
    """A draw with replacement (``--balance``) repeats windows; the shards still hold it
    exactly, entry for entry."""
    draw = np.array([3, 3, 1, 3, 0])
    first, second = (epoch_shard(draw, World(r, 2)) for r in range(2))
    assert first.tolist() == [3, 1, 0] and second.tolist() == [3, 3, 3]


def test_rank_device_and_backend_on_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert rank_device("auto", World(1, 2, 1)) == "auto"
    assert rank_device("cpu", World(1, 2, 1)) == "cpu"
    assert backend_for(torch.device("cpu")) == "gloo"
    assert backend_for(torch.device("cuda", 1)) == "nccl"


def test_rank_device_takes_the_gpu_of_the_local_rank(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert rank_device("auto", World(3, 4, 1)) == "cuda:1"
    assert rank_device("cuda", World(2, 4, 2)) == "cuda:0"  # more ranks than GPUs: shared
    assert rank_device("cuda", World()) == "cuda"  # one process: as asked
    assert rank_device("cpu", World(3, 4, 1)) == "cpu"


def test_training_collectives_of_one_process_are_the_identity():
    world = World()
    rows = np.ones((3, 2), dtype=np.float32)
    assert reduce_sum([1.5, 2], world) == [1.5, 2.0]
    assert broadcast_int(7, world) == 7
    assert gather_rows(rows, world) is rows
    assert gather_objects({"a": 1}, world) == [{"a": 1}]
    broadcast_buffers(torch.nn.BatchNorm1d(2), world)  # nothing to do, and no group needed


def test_quiet_unless_main_silences_other_ranks_only():
    logger = logging.getLogger("biosig")
    level = logger.level
    with quiet_unless_main(World(1, 2)):
        assert not logger.isEnabledFor(logging.WARNING)
        with warnings.catch_warnings(record=True) as caught:
            warnings.warn("repeated on every rank", stacklevel=1)
        assert caught == []
    assert logger.level == level
    with quiet_unless_main(World(0, 2)):
        assert logger.isEnabledFor(logging.ERROR)
        assert logger.level == level


TRAINING_WORKER = textwrap.dedent(
    """
    import json
    from datetime import timedelta

    import numpy as np
    import torch

    from biosig.training.distributed import (
        SyncPoint, broadcast_buffers, broadcast_int, gather_objects, gather_rows,
        process_group, reduce_sum, world_from_env,
    )
    from biosig.errors import BiosigError

    world = world_from_env()
    rank = world.rank
    report = {}
    with process_group(world, timeout=timedelta(seconds=60)):
        report["sum"] = reduce_sum([rank + 0.5, 1], world)
        report["broadcast"] = broadcast_int(10 + rank, world)
        # uneven blocks, as a contiguous shard of 15 validation windows is (7 and 8 rows)
        rows = np.full((7 + rank, 3), rank, dtype=np.float32)
        report["gathered"] = gather_rows(rows, world).tolist()
        report["objects"] = gather_objects({"rank": rank}, world)
        norm = torch.nn.BatchNorm1d(2)
        norm.running_mean.fill_(rank + 1.0)
        broadcast_buffers(norm, world)
        report["buffers"] = norm.running_mean.tolist()
        # a one-shot agreement that rank 1 never reaches: it fails before it
        point = SyncPoint(world, "before training")
        try:
            if rank == 1:
                raise RuntimeError("rank 1 could not read its data")
            point.reach()
            report["reached"] = "passed"
        except BiosigError as exc:
            report["reached"] = str(exc)
        except RuntimeError:
            point.abandon()
            point.abandon()  # once only: a second call is a no-op
            report["reached"] = "abandoned"
    print(json.dumps(report), flush=True)
    """
)


def test_two_processes_sum_broadcast_gather_and_agree_before_training():
    port = free_port()
    procs = []
    for rank in range(2):
        env = {
            **os.environ,
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RANK": str(rank),
            "WORLD_SIZE": "2",
            "LOCAL_RANK": str(rank),
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", TRAINING_WORKER],
                env=env,
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            results.append((proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    reports = []
    for code, out, err in results:
        assert code == 0, err
        reports.append(json.loads(out.splitlines()[-1]))
    gathered = [[0.0] * 3] * 7 + [[1.0] * 3] * 8  # rank 0's rows, then rank 1's
    for report in reports:
        assert report["sum"] == [2.0, 2.0]
        assert report["broadcast"] == 10  # rank 0's
        assert report["gathered"] == gathered
        assert report["objects"] == [{"rank": 0}, {"rank": 1}]
        assert report["buffers"] == [1.0, 1.0]  # rank 0's statistics everywhere
    assert reports[0]["reached"] == (
        "another process of this run failed before training (its error is above)"
    )
    assert reports[1]["reached"] == "abandoned"
