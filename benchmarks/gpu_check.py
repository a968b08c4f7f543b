"""Every GPU check in one call, for the day a GPU is lent: the CUDA tests, ``bench`` over
batch sizes (model alone and end to end, bf16 autocast as prediction runs it, with and
without ``torch.compile``), training steps, and a 2-rank sharded ``predict`` when two GPUs
are present. One JSON holds every figure; any failure (a CUDA error included) is named on
stderr and the exit status is 1.

    bash benchmarks/gpu_check.sh [--out gpu_check.json]
    bash benchmarks/gpu_check.sh --dry-run   # the same steps on the CPU, small and quick

``--dry-run`` runs every step on the CPU with a tiny model (compilation left out: it needs a
C++ toolchain and minutes) and the sharded predict on two CPU ranks, so that CI keeps this
script working (``tests/test_gpu_check.py``).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Plan:
    """What each step runs with: the GPU settings, or the dry run's small ones."""

    device: str
    preset: str
    window: int
    batch_sizes: tuple[int, ...]
    compiled_batch: int | None
    train_batch: int
    seconds: float

    @classmethod
    def for_run(cls, dry_run: bool) -> Plan:
        if dry_run:
            return cls("cpu", "tiny", 256, (16, 32), None, 16, 0.1)
        return cls("cuda", "small", 1024, (256, 1024, 4096), 1024, 256, 3.0)


def environment(plan: Plan) -> dict[str, Any]:
    import torch

    found: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": plan.device,
        "gpus": torch.cuda.device_count() if torch.cuda.is_available() else 0,
    }
    if plan.device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("CUDA is not available: run with --dry-run on a CPU machine")
        properties = torch.cuda.get_device_properties(0)
        found["gpu"] = properties.name
        found["gpu_memory_gib"] = round(properties.total_memory / 2**30, 1)
    return found


def cuda_tests(plan: Plan) -> dict[str, Any]:
    """The tests marked ``cuda``, collected, then run on CUDA (they skip without it, so the
    dry run only collects them)."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda"]
    listed = _pytest([*command, "--collect-only"])
    collected = [line for line in listed.splitlines() if "::" in line]
    if not collected:
        raise RuntimeError(f"no test is marked cuda:\n{listed[-2000:]}")
    found: dict[str, Any] = {"collected": collected}
    if plan.device == "cuda":
        found["summary"] = _pytest(command).strip().splitlines()[-1]
    return found


def _pytest(command: list[str]) -> str:
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"pytest failed:\n{done.stdout[-4000:]}{done.stderr[-2000:]}")
    return done.stdout


def bench_sweep(plan: Plan) -> list[dict[str, Any]]:
    """``run_bench`` at every batch size, and compiled at one, with training steps."""
    from biosig.inference.bench import run_bench

    runs = [(batch, False) for batch in plan.batch_sizes]
    if plan.compiled_batch:
        runs.append((plan.compiled_batch, True))
    figures = []
    for batch, compiled in runs:
        result = run_bench(
            "numpy", (), plan.preset, plan.window, batch, plan.device, plan.seconds,
            compile_model=compiled, train=True, train_batch_size=plan.train_batch,
        )  # fmt: skip
        figures.append(result.as_dict())
        print(
            f"bench batch {batch}{' compiled' if compiled else ''}: "
            f"{result.model_windows_per_s:,.0f} model-only, "
            f"{result.e2e_windows_per_s:,.0f} end to end windows/s, MFU {result.mfu:.3f}",
            file=sys.stderr, flush=True,
        )  # fmt: skip
    return figures


def sharded_predict(plan: Plan) -> dict[str, Any]:
    """A tiny model trained, then ``predict`` under ``torchrun`` on two ranks, compared with
    one process: the tables must be identical. Skipped on one GPU."""
    import torch

    if plan.device == "cuda" and torch.cuda.device_count() < 2:
        return {"skipped": f"{torch.cuda.device_count()} GPU(s); two are needed"}
    from biosig_numpy.synthetic import write_demo_arrays

    with tempfile.TemporaryDirectory(prefix="biosig-gpu-check-") as scratch:
        work = Path(scratch)
        write_demo_arrays(work)
        biosig = [sys.executable, "-m", "biosig"]
        _run([*biosig, "train", "--plugin", "numpy", "--input", "signals.npy", "--labels",
              "labels.npy", "--preset", "tiny", "--epochs", "1", "--kernel-features", "0",
              "-q", "--out", "run", "--device", plan.device], work)  # fmt: skip
        predict = ["predict", "--model", "run", "--device", plan.device, "-q", "signals.npy"]
        _run([*biosig, *predict, "--out", "one"], work)
        started = time.perf_counter()
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
        _run([*torchrun, "-m", "biosig", *predict, "--out", "two"], work)
        seconds = time.perf_counter() - started
        tables = sorted(p.name for p in (work / "one").iterdir())
        differ = [t for t in tables if _bytes(work / "one" / t) != _bytes(work / "two" / t)]
        if differ:
            raise RuntimeError(f"2-rank predict differs from one process in {differ}")
        return {"ranks": 2, "seconds": round(seconds, 1), "tables": tables}


def _bytes(path: Path) -> bytes:
    return path.read_bytes() if path.is_file() else b""


def _run(command: list[str], cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0 or "CUDA error" in done.stderr:
        raise RuntimeError(f"{' '.join(command[1:4])}… failed:\n{done.stderr[-4000:]}")


STEPS: dict[str, Callable[[Plan], Any]] = {
    "environment": environment,
    "cuda_tests": cuda_tests,
    "bench": bench_sweep,
    "sharded_predict": sharded_predict,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="every step on the CPU, small")
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    args = parser.parse_args(argv)
    plan = Plan.for_run(args.dry_run)
    report: dict[str, Any] = {"dry_run": args.dry_run, "failures": {}}
    for name, step in STEPS.items():
        started = time.perf_counter()
        try:
            report[name] = step(plan)
        except Exception as exc:  # every step runs; each failure is reported, loudly
            report["failures"][name] = f"{type(exc).__name__}: {exc}"
            print(f"gpu_check: {name} FAILED", file=sys.stderr, flush=True)
            traceback.print_exc()
        report.setdefault("seconds", {})[name] = round(time.perf_counter() - started, 1)
        if name == "environment" and name in report["failures"]:
            break  # no device: the other steps would only fail the same way
    partial = args.out.with_name(args.out.name + ".partial")
    partial.write_text(json.dumps(report, indent=2) + "\n")
    partial.replace(args.out)
    print(f"gpu_check: wrote {args.out}", file=sys.stderr)
    if report["failures"]:
        print(f"gpu_check: FAILED: {', '.join(report['failures'])}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
