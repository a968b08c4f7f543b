"""Small hostile files, written here, run through every command under a 2 GiB address-space
limit (``ulimit -v``): each claims far more memory than it holds, and each must be refused
in one line naming the file and the field, before anything is allocated from the claim.

The commands run in one child process (torch is imported once), each through
``biosig.cli.main`` as the ``biosig`` script runs it; the limit applies to all of them.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from checkpoint_helpers import meta_for

from biosig.checkpoint import PluginStamp, save_checkpoint
from biosig.nn.model import SignalNet, model_config

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="ulimit -v as Linux applies it")

ADDRESS_SPACE = 2 * 2**30

_DRIVER = """
import contextlib, io, json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
from biosig.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    results.append({{"argv": argv, "code": code, "err": err.getvalue()}})
print(json.dumps(results))
"""


def run_limited(cases: list[list[str]], cwd: Path) -> list[dict]:
    """Each argv through ``biosig`` in one child process limited to 2 GiB of address space."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _DRIVER.format(limit=ADDRESS_SPACE), json.dumps(cases)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


# --- the hostile files --------------------------------------------------------------------


def deflated_zeros_npz(path: Path, n_bytes: int) -> None:
    """A ``.npz`` whose ``signals`` member is ``n_bytes`` of float32 zeros, deflated to about
    a thousandth of that, written a block at a time (the test never holds the array)."""
    rows = n_bytes // (4 * 1_000_000)
    header = {"descr": "<f4", "fortran_order": False, "shape": (rows, 1_000_000)}
    block = bytes(4_000_000)
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
        archive.open("signals.npy", "w", force_zip64=True) as member,
    ):
        np.lib.format.write_array_header_1_0(member, header)
        for _ in range(rows):
            member.write(block)


def npy_claiming(path: Path, shape: tuple[int, ...]) -> None:
    """A ``.npy`` header claiming ``shape`` float32, followed by a few bytes."""
    with path.open("wb") as handle:
        np.lib.format.write_array_header_1_0(
            handle, {"descr": "<f4", "fortran_order": False, "shape": shape}
        )
        handle.write(bytes(64))


def wfdb_claiming(directory: Path, name: str, fs: str, n_samples: int) -> Path:
    """A one-signal WFDB record whose header claims ``fs`` and ``n_samples``; its ``.dat``
    holds 1000 samples."""
    (directory / f"{name}.hea").write_text(
        f"{name} 1 {fs} {n_samples}\n{name}.dat 16 200/mV 16 0 0 0 0 MLII\n", encoding="ascii"
    )
    (directory / f"{name}.dat").write_bytes(struct.pack("<1000h", *range(1000)))
    return directory / f"{name}.hea"


def fast5_with_rate(path: Path, rate: float) -> None:
    import h5py
    from biosig_nanopore.synthetic import synthetic_reads, write_multi_fast5

    write_multi_fast5(path, synthetic_reads(2, seed=1))
    with h5py.File(path, "r+") as handle:
        for name in handle:
            handle[f"{name}/channel_id"].attrs["sampling_rate"] = rate


def mat_of_zeros(path: Path, n_samples: int) -> None:
    import scipy.io

    scipy.io.savemat(path, {"X1_DE_time": np.zeros(n_samples)}, do_compression=True)


def model_for(directory: Path, plugin: str, version: str, **meta) -> Path:
    config = model_config("tiny", 1, 2)
    fields = {"window": 256, "hop": 128, "sample_rate": 1.0, **meta}
    stamped = meta_for(config, ["a", "b"], **fields)
    stamped = type(stamped)(**{**stamped.__dict__, "plugin": PluginStamp(plugin, version)})
    return save_checkpoint(directory, SignalNet(config), stamped)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    deflated_zeros_npz(root / "bomb.npz", 3 * 2**30)
    npy_claiming(root / "huge.npy", (100_000, 10_000_000))
    np.save(root / "labels2.npy", np.array(["a", "b"]))
    np.save(root / "one_label.npy", np.array(["a"]))
    np.save(root / "short.npy", np.random.default_rng(0).normal(size=(2, 64)).astype("f4"))
    (root / "wfdb").mkdir()
    wfdb_claiming(root / "wfdb", "slow", "0.000001", 1000)
    (root / "wfdb_long").mkdir()
    wfdb_claiming(root / "wfdb_long", "long", "360", 10**13)
    fast5_with_rate(root / "slow.fast5", 0.001)
    mat_of_zeros(root / "zeros.mat", 60_000_000)
    model_for(root / "numpy_model", "numpy", "0.1.0")
    model_for(root / "ecg_model", "ecg", "0.1.0", window=3600, hop=1800, sample_rate=360.0)
    model_for(root / "nanopore_model", "nanopore", "0.1.0", window=4096, hop=2048,
              sample_rate=5000.0)  # fmt: skip
    model_for(
        root / "vibration_model", "vibration", "0.1.0", window=2048, hop=1024, sample_rate=12000.0
    )
    wide = root / "wide_model"
    model_for(wide, "numpy", "0.1.0")
    meta = json.loads((wide / "biosig.json").read_text())
    meta["window"] = 10**9
    (wide / "biosig.json").write_text(json.dumps(meta))
    return root


def train_args(plugin: str, inputs: str, labels: str, *more: str) -> list[str]:
    return ["train", "--plugin", plugin, "--input", inputs, "--labels", labels,
            "--preset", "tiny", "--epochs", "1", "--out", f"out_{len(more)}", *more]  # fmt: skip


def pretrain_args(plugin: str, inputs: str, *more: str) -> list[str]:
    return ["pretrain", "--plugin", plugin, "--input", inputs, "--preset", "tiny",
            "--epochs", "1", "--out", "pre", *more]  # fmt: skip


#: (argv, what the error must say): every command on every hostile file.
CASES = [
    (train_args("numpy", "bomb.npz", "labels2.npy"), ["bomb.npz", "array 'signals'", "GiB"]),
    (pretrain_args("numpy", "bomb.npz"), ["bomb.npz", "array 'signals'", "GiB"]),
    (["predict", "--model", "numpy_model", "bomb.npz"], ["bomb.npz", "array 'signals'"]),
    (
        ["evaluate", "--model", "numpy_model", "--labels", "labels2.npy", "bomb.npz"],
        ["bomb.npz", "array 'signals'"],
    ),  # fmt: skip
    (
        [
            "bench",
            "--plugin",
            "numpy",
            "--input",
            "bomb.npz",
            "--preset",
            "tiny",
            "--seconds",
            "0.1",
        ],
        ["bomb.npz", "array 'signals'"],
    ),  # fmt: skip
    (train_args("numpy", "huge.npy", "labels2.npy"), ["huge.npy", "not a readable NumPy file"]),
    (pretrain_args("numpy", "huge.npy"), ["huge.npy", "not a readable NumPy file"]),
    (["predict", "--model", "numpy_model", "huge.npy"], ["huge.npy", "not a readable"]),
    (["predict", "--model", "ecg_model", "wfdb/slow.hea"], ["slow", "10,000 times below"]),
    (pretrain_args("ecg", "wfdb"), ["slow", "10,000 times below"]),
    (
        ["predict", "--model", "ecg_model", "wfdb_long/long.hea"],
        ["long.dat is truncated", "10000000000000"],
    ),  # fmt: skip
    (pretrain_args("ecg", "wfdb_long"), ["long.dat is truncated", "10000000000000"]),
    (["predict", "--model", "nanopore_model", "slow.fast5"], ["slow.fast5", "10,000 times"]),
    (pretrain_args("nanopore", "slow.fast5"), ["slow.fast5", "10,000 times below"]),
    (
        ["predict", "--model", "vibration_model", "--fs", "12000", "zeros.mat"],
        ["zeros.mat", "X1_DE_time (60,000,000 samples each)"],
    ),  # fmt: skip
    (
        pretrain_args("vibration", "zeros.mat", "--fs", "12000"),
        ["zeros.mat", "X1_DE_time (60,000,000 samples each)"],
    ),  # fmt: skip
    (["predict", "--model", "wide_model", "short.npy"], ["biosig.json", "window"]),
    (
        train_args("numpy", "short.npy", "labels2.npy", "--sample-rate", "1000000"),
        ["10,000 times below"],
    ),
    # Flags: what no model can take is refused by the option, what memory cannot hold is
    # one line naming the flag.
    (
        train_args("numpy", "short.npy", "labels2.npy", "--window", "1000000000"),
        ["--window", "1000000000 is not in the range 1<=x<=1048576"],
    ),
    (
        [
            "bench",
            "--plugin",
            "numpy",
            "--input",
            "short.npy",
            "--preset",
            "tiny",
            "--batch-size",
            "1000000000",
            "--seconds",
            "0.1",
        ],  # fmt: skip
        ["--batch-size 1000000000 windows of 1024 samples on cpu: out of memory"],
    ),
]


def test_every_command_refuses_every_hostile_file_in_one_line_within_2_gib(hostile: Path) -> None:
    results = run_limited([argv for argv, _ in CASES], hostile)
    failures = []
    for (argv, words), result in zip(CASES, results, strict=True):
        err = result["err"]
        clean = (
            result["code"] == 2
            and "Traceback" not in err
            and "internal error" not in err
            and all(word in err for word in words)
        )
        if not clean:
            failures.append(f"{' '.join(argv)} -> {result['code']}: {err.strip()[-600:]}")
    assert not failures, "\n\n".join(failures)
