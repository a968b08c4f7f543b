"""Run per-job producers on background threads, handing their output back in job order.

Streaming inference reads and preprocesses recordings on reader threads while the model
runs on the calling thread. Queues are bounded at both levels, so memory stays flat however
long the input: at most ``workers + 1`` jobs are taken beyond the one being consumed (one
per thread, plus one waiting for a place in the order queue), and each holds at most
``depth`` produced items (plus one a thread is waiting to put). Jobs come back in the
order the job iterator gave them, whatever the number of threads, so a consumer that
batches items in that order batches them identically with 0, 1 or 8 readers.

Threads rather than processes: a recording object (an open HDF5 handle, a decoder closure)
cannot cross a process boundary, the heavy parts of reading and filtering (HDF5 and VBZ
decoding, ``scipy.signal`` filters, NumPy copies) release the GIL, and the model itself runs
in PyTorch kernels that release it too.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

Job = TypeVar("Job")
Item = TypeVar("Item")

#: Seconds between checks of the stop flag while a thread waits on a full queue.
_POLL = 0.05
#: Seconds to wait for each reader thread to leave once the stream ends.
_JOIN_TIMEOUT = 30.0


class _End:
    """Marks the end of a job's items, or of the jobs."""


class _Raised:
    """An exception raised on a reader thread, re-raised where the consumer reaches it."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Stopped(Exception):
    """The consumer went away; the reader thread leaves."""


class _Cancelled(Exception):
    """The consumer left this job part-way; the thread moves on to the next."""


class _Items:
    """One job's bounded queue of produced items, and whether its consumer has left it."""

    def __init__(self, depth: int) -> None:
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.cancelled = threading.Event()


def read_ahead(
    jobs: Iterator[Job],
    produce: Callable[[Job], Iterator[Item]],
    workers: int = 1,
    depth: int = 4,
) -> Iterator[tuple[Job, Iterator[Item]]]:
    """Yield ``(job, items)`` for each job in order, where ``items`` iterates ``produce(job)``.

    With ``workers=0`` everything runs inline on the calling thread, lazily: a job is taken
    from ``jobs`` only when the consumer asks for it. With ``workers >= 1`` that many threads
    take jobs and run their producers ahead of the consumer. An exception raised by a
    producer is re-raised from that job's ``items`` where it would have been raised inline,
    and the consumer may go on to the next job; one raised by ``jobs`` ends the stream after
    the jobs before it. A consumer may leave a job's ``items`` part-way (its producer is
    then stopped) but must do so before asking for the next job.
    """
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    if workers == 0:
        for job in jobs:
            yield job, produce(job)
        return
    yield from _ReadAhead(jobs, produce, workers, depth)


class _ReadAhead(Generic[Job, Item]):
    def __init__(
        self,
        jobs: Iterator[Job],
        produce: Callable[[Job], Iterator[Item]],
        workers: int,
        depth: int,
    ) -> None:
        self._jobs = iter(jobs)
        self._produce = produce
        self._depth = max(1, depth)
        # Holds the jobs handed out but not yet consumed; bounded so readers cannot run
        # arbitrarily far ahead of the model.
        self._order: queue.Queue = queue.Queue(maxsize=workers)
        # Taking the next job and queueing it in order happen under one lock, so the order
        # queue is in job order whichever thread took each job.
        self._take = threading.Lock()
        self._exhausted = False
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._work, name=f"biosig-reader-{i}", daemon=True)
            for i in range(workers)
        ]

    def __iter__(self) -> Iterator[tuple[Job, Iterator[Item]]]:
        for thread in self._threads:
            thread.start()
        try:
            while True:
                entry = self._order.get()
                if isinstance(entry, _End):
                    return
                if isinstance(entry, _Raised):
                    raise entry.error
                job, items = entry
                drained = self._drain(items)
                yield job, drained
                drained.close()  # a job left part-way: stop its producer
        finally:
            self._stop.set()
            # Wait for the readers to leave (each notices the stop within a poll, or when
            # its current block is read), so that what they hold (open HDF5 files in a
            # thread-local cache) is released on their own threads now, not at interpreter
            # exit, where freeing an h5py object while a daemon thread is frozen holding
            # h5py's lock can hang the process after its last output.
            for thread in self._threads:
                thread.join(timeout=_JOIN_TIMEOUT)

    def _drain(self, items: _Items) -> Iterator[Item]:
        try:
            while True:
                item = items.queue.get()
                if isinstance(item, _End):
                    return
                if isinstance(item, _Raised):
                    raise item.error
                yield item
        finally:
            items.cancelled.set()

    def _put(self, target: queue.Queue, item: object, items: _Items | None = None) -> None:
        if items is not None and items.cancelled.is_set():
            raise _Cancelled
        while True:
            try:
                target.put(item, timeout=_POLL)
                return
            except queue.Full:
                if self._stop.is_set():
                    raise _Stopped from None
                if items is not None and items.cancelled.is_set():
                    raise _Cancelled from None

    def _work(self) -> None:
        try:
            while True:
                with self._take:
                    if self._exhausted or self._stop.is_set():
                        return
                    try:
                        job = next(self._jobs)
                    except StopIteration:
                        self._exhausted = True
                        self._put(self._order, _End())
                        return
                    except BaseException as error:  # noqa: BLE001 - handed to the consumer
                        self._exhausted = True
                        self._put(self._order, _Raised(error))
                        return
                    items = _Items(self._depth)
                    self._put(self._order, (job, items))
                try:
                    for item in self._produce(job):
                        self._put(items.queue, item, items)
                    self._put(items.queue, _End(), items)
                except (_Stopped, _Cancelled):
                    if self._stop.is_set():
                        return
                except BaseException as error:  # noqa: BLE001 - handed to the consumer
                    with contextlib.suppress(_Cancelled):
                        self._put(items.queue, _Raised(error), items)
        except _Stopped:
            return
