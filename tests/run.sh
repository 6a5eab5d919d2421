#!/usr/bin/env bash
# The README's test command: installs dependencies (idempotent), builds, runs every ctest suite.
#   tests/run.sh                 # everything (unit + integration; gpu tests skip without a GPU)
#   tests/run.sh -L unit         # extra arguments go to ctest
# Environment: VICREG_BUILD_DIR (default build), VICREG_JOBS (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
BUILD_DIR=${VICREG_BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DVICREG_BUILD_TESTS=ON -DVICREG_WERROR=ON
cmake --build "$BUILD_DIR" -j "${VICREG_JOBS:-2}"
ctest --test-dir "$BUILD_DIR" --output-on-failure --timeout 900 "$@"
