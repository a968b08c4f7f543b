"""Running one command as several processes under ``torchrun``: which process this is, which
inputs it takes, and how the processes' table files become the single-process ones.

``torchrun --nproc-per-node N -m biosig predict …`` starts N copies of the command. Each
reads its place in the run from the environment (:func:`world_from_env`), takes a contiguous
slice of the input files (:func:`shard`), writes its tables into its own hidden part
directory (:func:`prepare_part_dir`), and all of them then report whether they succeeded
(:func:`all_ok`). Only when every one did does rank 0 join the parts into the final tables
(:func:`merge_parts`); because the slices are contiguous and the parts are joined in rank
order, the result is byte for byte what one process writes. The intended shape::

    world = world_from_env()
    with process_group(world):
        ok = False
        try:
            part = prepare_part_dir(out_dir, world)   # every rank, even one with no files
            ...write the tables of shard(files, world) into part...
            ok = True
        finally:
            everyone_ok = all_ok(ok, world)           # every rank, exactly once
        if not everyone_ok:
            raise BiosigError("another process of this run failed; see its error above")
        if world.is_main:
            merge_parts(out_dir, ["windows.tsv", "recordings.tsv", "segments.tsv"],
                        world.world_size)

``torchrun --nproc-per-node N -m biosig train …`` uses the same world and group, plus the
pieces data-parallel training needs: its GPU and backend (:func:`rank_device`,
:func:`backend_for`), each rank's part of an epoch (:func:`epoch_shard`, DistributedSampler's
rule), sums, broadcasts and gathers of small values (:func:`reduce_sum`,
:func:`broadcast_int`, :func:`broadcast_buffers`, :func:`gather_rows`,
:func:`gather_objects`), a one-shot agreement that a failed rank still keeps
(:class:`SyncPoint`), and rank 0 alone speaking (:func:`quiet_unless_main`).

With one process (no ``torchrun``) every function here is a no-op or the identity, so the
command needs no second code path.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import numpy as np
import torch
import torch.distributed as dist

from ..atomic import atomic_file
from ..errors import BiosigError

T = TypeVar("T")

#: Hidden directory inside the output directory that holds each rank's part. Inside, so
#: that it sits on the same filesystem as the final tables and the merge ends in a rename.
PARTS_DIR = ".parts"

#: How long a collective may wait for the slowest rank. ``all_ok`` is reached only when a
#: rank has finished its whole shard, so a fast rank waits there for as long as the slowest
#: one still needs: this bounds the imbalance between ranks, not the length of the run, and
#: torch's default (30 minutes) would fail a long prediction that is merely uneven. A rank
#: that dies outright does not make the others wait this long: torchrun stops the rest.
DEFAULT_TIMEOUT = timedelta(hours=24)

#: How long a training collective may wait. Training ranks move in step (every optimizer
#: step exchanges gradients), so the only long waits are rank 0 writing the checkpoints of an
#: epoch and the ranks reading the data at different speeds; an hour bounds both with room
#: to spare, and bounds how long a rank that lost its peer without torchrun noticing (a dead
#: node of a multi-node run under NCCL) waits before it fails too.
TRAINING_TIMEOUT = timedelta(hours=1)

#: Table formats whose files start with one header line (see ``biosig.inference.output``); JSONL has
#: none, every line is a record.
_HEADER_SUFFIXES = {".tsv", ".csv"}
_PLAIN_SUFFIXES = {".jsonl"}

#: Copy parts in blocks of this size: a 24-hour record's windows table is far too large to
#: read whole.
_COPY_BLOCK = 1 << 20


@dataclass(frozen=True)
class World:
    """This process's place in a run: its global rank, how many processes there are, and
    its rank on this machine (which picks its GPU)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the process that merges the parts and talks to the user."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        """Whether there is more than one process, and so any coordination to do."""
        return self.world_size > 1


def world_from_env(environ: Mapping[str, str] = os.environ) -> World:
    """Read ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` as ``torchrun`` sets them; a
    variable that is absent takes the value of a single process (0, 1, 0)."""

    def read(name: str, default: int) -> int:
        text = environ.get(name)
        if text is None or text.strip() == "":
            return default
        try:
            return int(text)
        except ValueError:
            raise BiosigError(
                f"environment variable {name}={text!r} is not a whole number "
                "(it is set by torchrun; unset it to run one process)"
            ) from None

    rank, world_size, local_rank = read("RANK", 0), read("WORLD_SIZE", 1), read("LOCAL_RANK", 0)
    if world_size < 1:
        raise BiosigError(f"environment variable WORLD_SIZE={world_size} must be at least 1")
    if not 0 <= rank < world_size:
        raise BiosigError(
            f"environment variable RANK={rank} must be from 0 to WORLD_SIZE-1={world_size - 1}"
        )
    if local_rank < 0:
        raise BiosigError(f"environment variable LOCAL_RANK={local_rank} must not be negative")
    return World(rank, world_size, local_rank)


def shard(items: Sequence[T], world: World) -> list[T]:
    """This rank's contiguous slice of ``items``: rank r of W takes
    ``items[r*n//W : (r+1)*n//W]``.

    Contiguous rather than every W-th item so that the ranks' outputs, joined in rank order,
    keep the input order. Slice sizes differ by at most one; when there are fewer items than
    ranks some ranks get none, and must still take part in the run (see :func:`all_ok`).
    """
    n, size = len(items), world.world_size
    return list(items[world.rank * n // size : (world.rank + 1) * n // size])


@contextlib.contextmanager
def process_group(
    world: World, backend: str = "gloo", timeout: timedelta = DEFAULT_TIMEOUT
) -> Iterator[None]:
    """Join the run's process group for the duration of the block, and leave it at exit.

    With one process there is nothing to join and this does nothing. Gloo is the default
    backend: it runs on CPU, so it works on any machine, and the messages exchanged here are
    one integer per rank, for which a GPU backend gains nothing (training may pass
    ``backend="nccl"`` for its gradients). The rendezvous address comes from
    ``MASTER_ADDR``/``MASTER_PORT``, which torchrun sets. A group that is already
    initialised (by an enclosing caller) is used as it is and left for its owner to destroy.
    """
    if not world.is_distributed or dist.is_initialized():
        yield
        return
    dist.init_process_group(
        backend=backend,
        init_method="env://",
        rank=world.rank,
        world_size=world.world_size,
        timeout=timeout,
    )
    try:
        yield
    finally:
        dist.destroy_process_group()


def all_ok(ok: bool, world: World) -> bool:
    """Whether every rank succeeded, given whether this one did.

    Use it where a barrier would go, and call it exactly once on every rank, whether it
    succeeded or failed (in a ``finally``): unlike a bare barrier, a rank that failed still
    arrives, so the others learn of the failure instead of waiting for it until the timeout.
    It is a collective: a rank that never calls it leaves the others waiting.
    """
    if not world.is_distributed:
        return ok
    return bool(_all_reduce(1 if ok else 0, dist.ReduceOp.MIN, world, "all_ok"))


def all_ok_after(ok: bool, world: World) -> bool:
    """:func:`all_ok` from a ``finally``: if the exchange itself fails on a rank that had
    already failed, that rank's own error is the one to show."""
    try:
        return all_ok(ok, world)
    except Exception:
        if ok:
            raise
        return False


def total(value: int, world: World) -> int:
    """The sum of ``value`` over all ranks (recordings predicted, say), on every rank.

    A collective like :func:`all_ok`, but not one a failed rank can be relied on to reach:
    call it only after ``all_ok`` returned True, when every rank is known to get there.
    """
    if not world.is_distributed:
        return value
    return _all_reduce(value, dist.ReduceOp.SUM, world, "total")


def _all_reduce(value: int, op: dist.ReduceOp, world: World, caller: str) -> int:
    tensor = torch.tensor([value], dtype=torch.int64, device=_collective_device(world, caller))
    dist.all_reduce(tensor, op=op)
    return int(tensor.item())


def _collective_device(world: World, caller: str) -> torch.device:
    """Where the tensors of a collective must be: NCCL reduces only tensors on the rank's
    GPU, gloo only tensors on the CPU."""
    if not dist.is_initialized():
        raise RuntimeError(f"{caller} needs the process group: call it inside process_group()")
    if dist.get_backend() == "nccl":
        return torch.device("cuda", world.local_rank % torch.cuda.device_count())
    return torch.device("cpu")


# ------------------------------------------------------------------------------ training


def rank_device(device_name: str, world: World) -> str:
    """The device this rank trains or predicts on: with several processes and CUDA, each
    takes the GPU of its local rank (``cuda:LOCAL_RANK``, modulo the GPUs there are), so the
    processes of one machine never share one; otherwise the device asked for."""
    if world.is_distributed and device_name in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{world.local_rank % torch.cuda.device_count()}"
    return device_name


def backend_for(device: torch.device) -> str:
    """NCCL when the ranks train on GPUs (it reduces their gradients GPU to GPU), gloo on
    the CPU."""
    return "nccl" if device.type == "cuda" else "gloo"


def epoch_shard(order: np.ndarray, world: World) -> np.ndarray:
    """This rank's part of one epoch's training order, taken as ``DistributedSampler``
    (``shuffle=False, drop_last=False``) takes it from a dataset in that order.

    The order is padded, by repeating it from its start, to ``W * ceil(n / W)`` entries, and
    rank ``r`` takes entries ``r, r + W, r + 2W, …``. Every rank so gets the same number of
    windows, hence of optimizer steps, which DistributedDataParallel needs (a rank with a
    step fewer would leave the others waiting in its gradient exchange). The ranks' parts
    together hold every entry of ``order`` once, plus its first ``W * ceil(n / W) - n``
    (fewer than ``W``) a second time: those are the padding.

    The shuffling is the caller's: every rank draws the same ``order`` from the same seeded
    generator, a new one each epoch, which is what ``DistributedSampler.set_epoch`` does
    for its own permutation (and that generator's state is saved for ``--resume``).
    """
    size = world.world_size
    if size == 1 or len(order) == 0:
        return order
    padded = np.resize(order, math.ceil(len(order) / size) * size)  # np.resize repeats
    return padded[world.rank :: size]


def reduce_sum(values: Sequence[float], world: World) -> list[float]:
    """The element-wise sum of ``values`` over all ranks, on every rank (in float64)."""
    if not world.is_distributed:
        return [float(v) for v in values]
    device = _collective_device(world, "reduce_sum")
    tensor = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def broadcast_int(value: int, world: World, src: int = 0) -> int:
    """Rank ``src``'s ``value``, on every rank: for decisions that must be the same
    everywhere, such as stopping early, or the ranks would go separate ways and wait for
    each other forever."""
    if not world.is_distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.int64, device=_collective_device(world, "broadcast"))
    dist.broadcast(tensor, src=src)
    return int(tensor.item())


@torch.no_grad()
def broadcast_buffers(module: torch.nn.Module, world: World, src: int = 0) -> None:
    """Copy rank ``src``'s buffers (BatchNorm running statistics) into ``module`` on every
    rank. DistributedDataParallel keeps parameters equal, but each rank's last forward pass
    updates its running statistics from its own batch; rank 0's are the ones saved."""
    if not world.is_distributed:
        return
    for buffer in module.buffers():
        dist.broadcast(buffer, src=src)


def gather_rows(rows: np.ndarray, world: World) -> np.ndarray:
    """Every rank's ``rows`` (``[m_r, ...]``, float32) stacked in rank order, on every rank.

    Ranks may hold different numbers of rows (a contiguous :func:`shard` of the validation
    windows, say): each pads its block to the largest for the exchange and the padding is
    cut off again, so the result is ``rows`` of ranks 0, 1, … one after the other.
    """
    if not world.is_distributed:
        return rows
    device = _collective_device(world, "gather_rows")
    counts = torch.tensor([len(rows)], dtype=torch.int64, device=device)
    all_counts = [torch.zeros_like(counts) for _ in range(world.world_size)]
    dist.all_gather(all_counts, counts)
    sizes = [int(c.item()) for c in all_counts]
    block = torch.zeros((max(sizes), *rows.shape[1:]), dtype=torch.float32, device=device)
    block[: len(rows)] = torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32))
    blocks = [torch.empty_like(block) for _ in range(world.world_size)]
    dist.all_gather(blocks, block)
    return np.concatenate([b[:n].cpu().numpy() for b, n in zip(blocks, sizes, strict=True)])


def gather_objects(value: Any, world: World) -> list[Any]:
    """Every rank's ``value`` (picklable: tensors and plain containers), in rank order, on
    every rank."""
    if not world.is_distributed:
        return [value]
    _collective_device(world, "gather_objects")  # the same check as the other collectives
    out: list[Any] = [None] * world.world_size
    dist.all_gather_object(out, value)
    return out


class SyncPoint:
    """A point of the run that every rank reaches exactly once, successful or not, where
    they learn whether all of them got there: :func:`all_ok` for code that is not one block.

    A rank that gets there calls :meth:`reach`; a rank that failed on the way calls
    :meth:`abandon` from its error handler, which still takes part in the exchange, so the
    others learn of the failure instead of waiting for it. Only for failures before the
    point: once a rank has passed it, later collectives (a gradient exchange) are not an
    ``all_ok``, and a failing rank must not meet them with one, so :meth:`abandon` is then
    a no-op and the rank simply exits (torchrun then stops the others).
    """

    def __init__(self, world: World, what: str) -> None:
        self.world = world
        self.what = what
        self.passed = False

    def reach(self) -> None:
        """This rank got here; raise ``BiosigError`` if another did not."""
        self.passed = True
        if not all_ok(True, self.world):
            raise BiosigError(
                f"another process of this run failed {self.what} (its error is above)"
            )

    def abandon(self) -> None:
        """This rank failed before the point: tell the others (once; never raises, so the
        rank's own error is the one that propagates)."""
        if self.passed or not self.world.is_distributed:
            return
        self.passed = True
        with contextlib.suppress(Exception):
            all_ok(False, self.world)


@contextlib.contextmanager
def quiet_unless_main(world: World) -> Iterator[None]:
    """On ranks other than 0, drop biosig's warnings and Python warnings for the block.

    Every rank of a training run reads the same data and trains the same model, so their
    warnings repeat rank 0's, N times over; rank 0 speaks for the run. Errors still reach
    stderr from any rank (they end the command, through its own error line).
    """
    if world.is_main:
        yield
        return
    logger = logging.getLogger("biosig")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def part_dir(out_dir: Path, world: World) -> Path:
    """Where this rank writes its part of the tables: ``out_dir/.parts/rank-00003``."""
    return Path(out_dir) / PARTS_DIR / f"rank-{world.rank:05d}"


def prepare_part_dir(out_dir: Path, world: World) -> Path:
    """Create this rank's part directory empty, and return it.

    Every rank calls it, also one whose shard is empty: the directory is how
    :func:`merge_parts` tells a rank that wrote no rows from a rank whose files it cannot
    see, and emptying it drops any part left by an earlier run that failed.
    """
    path = part_dir(out_dir, world)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def merge_parts(
    out_dir: Path, names: Sequence[str], world_size: int, into: Path | None = None
) -> None:
    """Join the parts of ranks 0…W-1 into the tables ``out_dir/NAME`` (``into/NAME`` if
    given) for each of ``names`` (``"windows.tsv"``…), then remove ``out_dir/.parts``.

    TSV and CSV tables keep one header line, the first non-empty part's; JSONL lines are
    joined as they are. A part that is an empty file or absent from its rank's directory is
    a rank with no rows and adds nothing; if every part is empty the table is empty, as one
    process writes it. Each table is copied in blocks, never read whole, under a temporary
    name that is renamed into place when complete.

    Every part is checked before anything is written, so a bad part leaves ``out_dir`` as
    it was: a rank directory that is missing (the output directory is not shared between
    the machines of a multi-node run), a header that differs from the first part's, or a
    part that does not end with a line break. Those raise ``BiosigError`` naming the file.
    """
    out_dir = Path(out_dir)
    parts_root = out_dir / PARTS_DIR
    rank_dirs = [part_dir(out_dir, World(rank, world_size)) for rank in range(world_size)]
    for rank, path in enumerate(rank_dirs):
        if not path.is_dir():
            raise BiosigError(
                f"{path}: the output of rank {rank} is missing; with several machines, "
                "--out must be a directory that all of them share"
            )
    plans = [(name, _check_parts(name, [d / name for d in rank_dirs])) for name in names]
    for name, parts in plans:
        with atomic_file(Path(into or out_dir) / name, "wb") as merged:
            _join(parts, merged, has_header=_has_header(name))
    shutil.rmtree(parts_root)


def _has_header(name: str) -> bool:
    suffix = Path(name).suffix.lower()
    if suffix in _HEADER_SUFFIXES:
        return True
    if suffix in _PLAIN_SUFFIXES:
        return False
    raise ValueError(f"{name}: not a table file name (.tsv, .csv or .jsonl)")


def _check_parts(name: str, parts: Sequence[Path]) -> list[Path]:
    """The non-empty parts of table ``name`` in rank order, after checking that they join
    cleanly: each ends with a line break and, for tables with a header, has the same one."""
    has_header = _has_header(name)
    found: list[Path] = []
    first_header: bytes | None = None
    for part in parts:
        if not part.is_file() or part.stat().st_size == 0:
            continue
        with open(part, "rb") as handle:
            header = handle.readline()
            handle.seek(-1, os.SEEK_END)
            # Without a final line break, the next part's first line would be glued on.
            if handle.read(1) != b"\n":
                raise BiosigError(f"{part}: does not end with a line break (was it cut short?)")
        if has_header:
            if first_header is None:
                first_header = header
            elif header != first_header:
                raise BiosigError(
                    f"{part}: its header differs from that of {found[0]}: "
                    f"{header.decode(errors='replace').rstrip()!r} against "
                    f"{first_header.decode(errors='replace').rstrip()!r}"
                )
        found.append(part)
    return found


def _join(parts: Sequence[Path], merged: BinaryIO, has_header: bool) -> None:
    """Copy ``parts`` into ``merged`` in order, writing only the first part's header."""
    for index, part in enumerate(parts):
        with open(part, "rb") as source:
            if has_header:
                header = source.readline()
                if index == 0:
                    merged.write(header)
            shutil.copyfileobj(source, merged, _COPY_BLOCK)
