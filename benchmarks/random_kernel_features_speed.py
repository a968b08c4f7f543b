"""Windows per second of the random-kernel feature pass alone (``RandomKernelFeatures``, 2
channels, 9996 features, 64 windows, three passes, one thread), at 1024, 3600 and 4096
samples.
To compare two versions, run it with ``PYTHONPATH`` set to each tree:

    git worktree add /tmp/prev REV
    for src in /tmp/prev .; do
        OMP_NUM_THREADS=1 PYTHONPATH=$src python benchmarks/random_kernel_features_speed.py
    done
"""

from __future__ import annotations

import time

import torch

import biosig.nn.layers.random_kernels as random_kernels


def main() -> None:
    torch.set_num_threads(1)
    tree = random_kernels.__file__.split("/biosig/")[0]
    for window in (1024, 3600, 4096):
        features = random_kernels.RandomKernelFeatures(2, window, 9996)
        x = torch.randn(64, 2, window)
        features(x)  # warm-up
        start = time.perf_counter()
        for _ in range(3):
            features(x)
        rate = 3 * len(x) / (time.perf_counter() - start)
        print(f"{tree}: window {window}: {rate:.1f} windows/s")


if __name__ == "__main__":
    main()
