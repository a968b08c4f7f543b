"""Reader threads: job order kept, memory bounded, errors delivered where they belong."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from biosig.data.readahead import read_ahead


def numbers(job: int) -> Iterator[tuple[int, int]]:
    # Later jobs are quicker, so threads finish out of order unless order is enforced.
    for i in range(5):
        time.sleep(0.001 * (10 - job) / 10)
        yield job, i


@pytest.mark.parametrize("workers", [0, 1, 3, 8])
def test_jobs_come_back_in_order_with_their_items(workers: int) -> None:
    got = [(job, list(items)) for job, items in read_ahead(iter(range(10)), numbers, workers)]
    assert [job for job, _ in got] == list(range(10))
    for job, items in got:
        assert items == [(job, i) for i in range(5)]


def test_inline_takes_jobs_only_when_asked() -> None:
    taken: list[int] = []

    def jobs() -> Iterator[int]:
        for job in range(3):
            taken.append(job)
            yield job

    stream = read_ahead(jobs(), numbers, workers=0)
    job, items = next(stream)
    assert (job, taken) == (0, [0])
    assert len(list(items)) == 5
    assert [j for j, _ in stream] == [1, 2]


def test_readers_stay_a_bounded_distance_ahead() -> None:
    produced = []
    lock = threading.Lock()

    def count(job: int) -> Iterator[int]:
        for i in range(100):
            with lock:
                produced.append((job, i))
            yield i

    stream = read_ahead(iter(range(50)), count, workers=2, depth=3)
    job, items = next(stream)
    next(items)
    time.sleep(0.3)  # let the readers run as far ahead as the queues allow
    with lock:
        ahead = len(produced)
    # the consumed item + at most depth queued + one held by a blocked put, per job in
    # flight (the consumed one and up to `workers` more)
    assert ahead <= 3 * (1 + 3 + 1)
    stream.close()


def test_producer_error_reaches_the_consumer_at_its_job_and_later_jobs_go_on() -> None:
    def produce(job: int) -> Iterator[int]:
        yield 1
        if job == 1:
            raise ValueError("job 1 broke")
        yield 2

    seen = []
    for job, items in read_ahead(iter(range(4)), produce, workers=2):
        try:
            seen.append((job, list(items)))
        except ValueError as error:
            seen.append((job, str(error)))
    assert seen == [(0, [1, 2]), (1, "job 1 broke"), (2, [1, 2]), (3, [1, 2])]


@pytest.mark.parametrize("workers", [0, 2])
def test_job_iterator_error_is_raised_after_the_jobs_before_it(workers: int) -> None:
    def jobs() -> Iterator[int]:
        yield 0
        yield 1
        raise RuntimeError("listing failed")

    got = []
    with pytest.raises(RuntimeError, match="listing failed"):
        for job, items in read_ahead(jobs(), numbers, workers):
            got.append((job, len(list(items))))
    assert got == [(0, 5), (1, 5)]


def test_abandoning_the_stream_stops_the_readers() -> None:
    before = threading.active_count()
    stream = read_ahead(iter(range(1000)), numbers, workers=3, depth=1)
    next(stream)
    stream.close()
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert threading.active_count() == before


def test_negative_workers_is_an_error() -> None:
    with pytest.raises(ValueError, match="workers"):
        next(read_ahead(iter(range(1)), numbers, workers=-1))


def test_a_job_left_part_way_stops_its_producer_and_the_next_jobs_come() -> None:
    produced: list[tuple[int, int]] = []

    def many(job: int) -> Iterator[int]:
        for i in range(1000):
            produced.append((job, i))
            yield i

    got = []
    stream = read_ahead(iter(range(3)), many, workers=1, depth=2)
    for job, items in stream:
        if job == 0:
            next(items)  # leave job 0 after one item
            continue
        got.append((job, sum(1 for _ in items)))
    assert got == [(1, 1000), (2, 1000)]
    assert sum(1 for job, _ in produced if job == 0) < 10


def test_no_job_is_taken_after_the_stream_is_closed() -> None:
    taken: list[int] = []

    def jobs() -> Iterator[int]:
        for job in range(100):
            taken.append(job)
            yield job

    stream = read_ahead(jobs(), numbers, workers=2, depth=1)
    next(stream)
    stream.close()
    time.sleep(0.3)
    count = len(taken)
    time.sleep(0.3)
    assert len(taken) == count <= 6


@pytest.mark.parametrize("finish", ["exhausted", "closed", "raised"])
def test_the_readers_have_left_when_the_stream_ends(finish: str) -> None:
    # Joined, not left to die with the interpreter: what a reader holds (an open HDF5
    # file in a thread-local cache) is released on its own thread before the command ends.
    main = threading.get_ident()
    released = []
    local = threading.local()

    class Handle:
        def __del__(self) -> None:
            released.append(threading.get_ident())

    def produce(job: int) -> Iterator[int]:
        local.handle = getattr(local, "handle", None) or Handle()
        time.sleep(0.01)
        if finish == "raised" and job == 2:
            raise OSError("damaged block")
        yield job

    stream = read_ahead(iter(range(6)), produce, workers=3, depth=1)
    try:
        for _, items in stream:
            list(items)
            if finish == "closed":
                stream.close()
                break
    except OSError:
        stream.close()
    # No waiting: joined at the end, each reader's handle freed on its own thread.
    assert not [t for t in threading.enumerate() if t.name.startswith("biosig-reader-")]
    assert len(released) == 3 and main not in released
