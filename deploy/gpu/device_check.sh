#!/usr/bin/env bash
# Kept for old notes and habits: the GPU kit's single entry point is tests/gpu/run_on_device.sh
# (configure against PyTorch's LibTorch, build, gpu tests, benchmarks, OUTDIR/summary.md).
#   deploy/gpu/device_check.sh [--skip-build]    (OUT=/tmp/vicreg-gpu by default)
exec "$(dirname "$0")/../../tests/gpu/run_on_device.sh" "${OUT:-/tmp/vicreg-gpu}" "$@"
