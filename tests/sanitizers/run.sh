#!/usr/bin/env bash
# Sanitizer stages of CI (docs/OPERATIONS.md "What we test" says what each covers and why):
#   tests/sanitizers/run.sh asan   # clang ASan+UBSan (+ libFuzzer coverage) build in build-asan:
#                                  # common/, server/, the shim, vicregctl and the fuzzers; runs the
#                                  # common, metrics, server unit + coordinator integration suites and
#                                  # every fuzzer's corpus replay
#   tests/sanitizers/run.sh tsan   # clang TSan build in build-tsan of the server side (no LibTorch
#                                  # linked): store, scheduler, launchers, coordinator, metrics server
# Environment: VICREG_JOBS (default 2), VICREG_ASAN_BUILD_DIR / VICREG_TSAN_BUILD_DIR.
# Prints the build and test time of the stage. Exit status: ctest's.
set -euo pipefail
cd "$(dirname "$0")/../.."
kind=${1:-}
jobs=${VICREG_JOBS:-2}
supp=$PWD/tests/sanitizers
common_cmake=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++
  -DVICREG_BUILD_TESTS=ON -DVICREG_CHECK_CUDA_SOURCES=OFF)
# The server-side binaries the integration suite drives, and the suites that need no LibTorch.
server_targets=(vicreg_job_shim vicreg_coordinator vicregctl server_unit_test server_coordinator_test server_hardening_test)
common_targets=(common_config_test common_fs_logging_test metrics_unit_test)
# Test folders of the build tree to run (tests of targets not built are skipped: *_NOT_BUILT; so are
# the script tests that check every binary of the full build: --version of each, the schema generator).
skip='_NOT_BUILT$|^common_version_test$|^common_job_schema_current$'
test_dirs=(tests/common tests/metrics tests/server)

case "$kind" in
  asan)
    build=${VICREG_ASAN_BUILD_DIR:-build-asan}
    cmake_args=(-DVICREG_SANITIZE=address -DVICREG_BUILD_FUZZERS=ON -DVICREG_LIBFUZZER=ON)
    targets=("${server_targets[@]}" "${common_targets[@]}")
    test_dirs+=(tests/fuzz)
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1:detect_stack_use_after_return=0
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:suppressions=$supp/ubsan.supp
    export LSAN_OPTIONS=suppressions=$supp/lsan.supp:print_suppressions=0
    ;;
  tsan)
    build=${VICREG_TSAN_BUILD_DIR:-build-tsan}
    cmake_args=(-DVICREG_SANITIZE=thread -DVICREG_BUILD_FUZZERS=OFF)
    # + the job manager's state machine (manager thread vs gRPC threads, in process, < 10 s).
    targets=("${server_targets[@]}" server_job_manager_test metrics_unit_test)
    test_dirs=(tests/metrics tests/server)
    # tsan.supp + one called_from_lib line per gRPC-stack library the binaries load (after the build).
    tsan_supp=$(realpath -m "$build")/tsan.supp
    export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$tsan_supp"
    ;;
  *)
    echo "usage: tests/sanitizers/run.sh asan|tsan" >&2
    exit 2
    ;;
esac

t0=$(date +%s)
mkdir -p "$build"
cmake -S . -B "$build" "${common_cmake[@]}" "${cmake_args[@]}" >"$build/configure.log" 2>&1 ||
  { cat "$build/configure.log"; exit 1; }
# Every fuzzer this configuration defines (none in the tsan build).
mapfile -t fuzzers < <(ninja -C "$build" -t targets all | sed -nE 's|^tests/fuzz/(fuzz_[a-z0-9_]+): .*|\1|p' | sort -u)
cmake --build "$build" -j "$jobs" --target "${targets[@]}" "${fuzzers[@]}"
if [[ $kind == tsan ]]; then
  # called_from_lib must name exactly one library each: the full soname of each one loaded.
  { cat "$supp/tsan.supp"
    for b in "$build/server/vicreg_coordinator" "$build/server/cli/vicregctl" "$build"/tests/server/server_*_test; do
      [[ -x $b ]] && ldd "$b"
    done | awk '{print $1}' | grep -E '^lib(absl_|grpc|gpr|upb|protobuf|re2|cares|address_sorting|ssl|crypto)' | sort -u |
      sed 's/^/called_from_lib:/'
  } >"$tsan_supp"
fi
t1=$(date +%s)
status=0
log=$(mktemp)
for d in "${test_dirs[@]}"; do
  ctest --test-dir "$build/$d" --output-on-failure --timeout 900 -E "$skip" -L 'unit|integration' 2>&1 |
    tee -a "$log" || status=1
done
t2=$(date +%s)
echo "=== sanitizer stage $kind summary"
grep -E "tests passed|tests failed|\(Failed\)|\(Subprocess aborted\)|\(Timeout\)|Exception" "$log" || true
echo "sanitizer stage $kind: build $((t1 - t0)) s, tests $((t2 - t1)) s, exit $status"
rm -f "$log"
exit "$status"
