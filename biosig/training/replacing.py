"""A new run started in a directory that holds an earlier one: never a mix of the two.

Each file of a run is written atomically, but a run is many files written over hours. A
new run into ``--out D`` that already holds a finished run would otherwise leave, when it
is killed after its settings and before its first checkpoint, the old ``best/`` and
``last/`` beside the new settings: a directory that mixes two runs and looks whole.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from ..atomic import litter, remove
from ..errors import BiosigError
from ..report import CONFUSION, HISTORY, LEARNING_CURVES
from .pretraining import PRETRAINED_DIR
from .trainer import RESUME_DIR, SETTINGS_FILE, STATE_FILE

#: What a training or pretraining run writes in its directory; nothing else is touched.
RUN_ENTRIES = ("best", "last", PRETRAINED_DIR, RESUME_DIR, HISTORY, LEARNING_CURVES, CONFUSION)
#: Files that only a run writes: one of them means the directory holds a run.
_RUN_MARKS = (
    f"{RESUME_DIR}/{SETTINGS_FILE}",
    *(f"{name}/biosig.json" for name in ("best", "last", PRETRAINED_DIR)),
)
#: Entries that mean a run finished an epoch: it is worth keeping over an earlier run.
_EPOCH_ENTRIES = ("best", "last", PRETRAINED_DIR, f"{RESUME_DIR}/{STATE_FILE}")


@contextlib.contextmanager
def replacing_run(
    run_dir: Path | None, echo: Callable[..., object], force: bool = False, fresh: bool = True
) -> Iterator[None]:
    """Write a new run into ``run_dir`` (nothing to do without one, or unless ``fresh``: a
    resumed run is the one already there).

    A directory holding an earlier run is an error unless ``force`` (``--force``): a
    finished run is hours of work, and a repeated command should not discard it in
    silence. With ``force``, the earlier run's entries are first moved aside whole (into
    ``.NAME.old-PID``), so the directory never holds both. They are removed once this run
    ends having finished an epoch, and put back if it ends before (a bad label file,
    Ctrl-C during the first epoch). A process killed outright leaves them aside:
    :func:`settle_earlier_run` settles them the same way on the next run into the
    directory.
    """
    if run_dir is None or not fresh:
        yield
        return
    run_dir = Path(run_dir)
    settle_earlier_run(run_dir)
    if not any((run_dir / name).is_file() for name in _RUN_MARKS):
        yield  # no earlier run: whatever is there is not ours to move
        return
    if not force:
        raise BiosigError(
            f"--out {run_dir} holds an earlier run: continue it with --resume {run_dir}, "
            "replace it with --force, or choose another --out"
        )
    earlier = [name for name in RUN_ENTRIES if (run_dir / name).exists()]
    aside = run_dir.with_name(f".{run_dir.name}.old-{os.getpid()}")
    shutil.rmtree(aside, ignore_errors=True)
    aside.mkdir()
    for name in earlier:
        os.replace(run_dir / name, aside / name)
    echo(f"{run_dir} held an earlier run: this one replaces it", err=True)
    try:
        yield
    except BaseException:
        _settle(aside, run_dir)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def settle_earlier_run(run_dir: Path) -> None:
    """What a killed run left aside in ``run_dir``'s twin: removed when the run that
    replaced it finished an epoch, else put back."""
    for kind, twin in litter(run_dir):
        if kind == "old" and twin.is_dir():
            _settle(twin, run_dir)


def _settle(aside: Path, run_dir: Path) -> None:
    if not any((run_dir / name).exists() for name in _EPOCH_ENTRIES):
        for name in RUN_ENTRIES:  # the new run's settings go too: no mix
            remove(run_dir / name)
            if (aside / name).exists():
                os.replace(aside / name, run_dir / name)
    shutil.rmtree(aside, ignore_errors=True)
