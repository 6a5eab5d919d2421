#!/usr/bin/env bash
# The README's test command: installs dependencies (idempotent), builds, runs every ctest suite.
#   tests/run.sh                 # everything (unit + integration; gpu tests skip without a GPU)
#   tests/run.sh -L unit         # extra arguments go to ctest
# Environment: VICREG_BUILD_DIR (default build), VICREG_JOBS (build jobs, default 2),
# VICREG_TEST_JOBS (tests run at once, default 2; tests marked SERIAL in their CMakeLists run
# alone), VICREG_BUILD_FUZZERS (default ON; .ci/run turns it off here because its asan stage
# builds the fuzzers and replays their corpora under ASan+UBSan).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
BUILD_DIR=${VICREG_BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DVICREG_BUILD_TESTS=ON -DVICREG_WERROR=ON \
  -DVICREG_BUILD_FUZZERS="${VICREG_BUILD_FUZZERS:-ON}"
cmake --build "$BUILD_DIR" -j "${VICREG_JOBS:-2}"
ctest --test-dir "$BUILD_DIR" --output-on-failure --timeout 900 -j "${VICREG_TEST_JOBS:-2}" "$@"
