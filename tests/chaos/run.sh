#!/usr/bin/env bash
# The chaos soak by hand (tests/chaos/chaos_test.cc says what it does and checks):
#   tests/chaos/run.sh --minutes 60 [--seed S] [--jobs N] [--build-dir DIR]
# Minutes of faults (jobs are submitted continuously, 4 in flight; --jobs caps their number), then
# the invariant is checked. Prints every fault, the outcome table and the wall time; a failure
# replays with the printed --seed. Run as root for the disk-full faults (a tmpfs in a private mount
# namespace). Exit status: the test's.
set -euo pipefail
cd "$(dirname "$0")/../.."
minutes=5 seed=0 jobs=0 build=${VICREG_BUILD_DIR:-build}
while [[ $# -gt 0 ]]; do
  case "$1" in
    --minutes) minutes=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --build-dir) build=$2; shift 2 ;;
    *) echo "usage: tests/chaos/run.sh [--minutes M] [--seed S] [--jobs N] [--build-dir DIR]" >&2; exit 2 ;;
  esac
done
bin=$build/tests/chaos/chaos_test
[[ -x $bin ]] || { echo "run.sh: $bin is not built (cmake --build $build --target chaos_test vicreg_coordinator vicreg_job_shim)" >&2; exit 2; }
start=$(date +%s)
status=0
VICREG_CHAOS_MINUTES=$minutes VICREG_CHAOS_SEED=$seed VICREG_CHAOS_JOBS=$jobs "$bin" --gtest_filter='Chaos.*' || status=$?
echo "chaos soak: ${minutes} min of faults, wall $(( $(date +%s) - start )) s, exit $status"
exit "$status"
