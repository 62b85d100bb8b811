#!/usr/bin/env bash
# Every GPU figure this project owes, as one markdown table on stdout and in $OUT/gpu_check.md
# (when $OUT is set): see benchmarks/gpu_check.py. On one H100/H200 it takes at most 8 minutes;
# `--dry-run` runs the same steps on the CPU at toy sizes (CI runs it).
#   bash benchmarks/gpu_check.sh [--dry-run]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
out=()
if [ -n "${OUT:-}" ]; then out=(--out "$OUT/gpu_check.md"); fi
exec "$PYTHON" benchmarks/gpu_check.py "$@" "${out[@]}"
