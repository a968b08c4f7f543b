#!/usr/bin/env bash
# Every GPU check in one call (see benchmarks/gpu_check.py): the CUDA tests, bench over
# batch sizes with and without torch.compile, training steps, and a 2-rank sharded predict
# when two GPUs are present. Writes one JSON (--out, default gpu_check.json) and exits 1
# on any failure. --dry-run runs the same steps on the CPU, small, as CI does.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python}" benchmarks/gpu_check.py "$@"
