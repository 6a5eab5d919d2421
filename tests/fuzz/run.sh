#!/usr/bin/env bash
# Runs every fuzzer of a libFuzzer build for a fixed time each and prints, per fuzzer, the
# executions/s and the coverage reached (libFuzzer's cov: edges and ft: features).
#   tests/fuzz/run.sh                      # 20 s each, build dir build-asan (tests/sanitizers/run.sh asan builds it)
#   tests/fuzz/run.sh --minutes 30         # longer, by hand
#   tests/fuzz/run.sh --seconds 60 --only config_yaml,safetensors --build-dir build-asan --jobs 2
# The checked-in corpus (tests/fuzz/corpus/<name>/) is read, never written: new inputs go to a
# scratch corpus under $VICREG_FUZZ_OUT (default /tmp/vicreg-fuzz). A crash stops that fuzzer, prints
# the saved input and fails the run: copy the input to tests/fuzz/corpus/<name>/crash_<what> (it
# becomes a regression test that ctest replays, under gcc too) and fix the code.
# Every fuzzer runs under coreutils timeout: one that has not exited --hang-margin s (default 90)
# after its time is up (libFuzzer can hang in its own out-of-memory report) gets SIGTERM, 15 s later
# SIGKILL, and is reported as FAILED (hung) with its log. So the whole run takes at most
# ceil(fuzzers / jobs) * (seconds + margin + 15) s.
# --advisory a,b: those fuzzers' findings are printed (and their inputs saved) like any other, but
# do not fail the run (CI: the ones over LibTorch's reader, which keeps yielding findings; see
# docs/OPERATIONS.md "What we test").
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=20
build=${VICREG_ASAN_BUILD_DIR:-build-asan}
only=""
advisory=""
jobs=${VICREG_JOBS:-2}
margin=${VICREG_FUZZ_HANG_MARGIN:-90}
while (($#)); do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --minutes) seconds=$(($2 * 60)); shift 2 ;;
    --build-dir) build=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --advisory) advisory=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --hang-margin) margin=$2; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if ! grep -q '^VICREG_LIBFUZZER:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
  echo "run.sh: $build is not a libFuzzer build (configure with clang: tests/sanitizers/run.sh asan)" >&2
  exit 2
fi
out=${VICREG_FUZZ_OUT:-/tmp/vicreg-fuzz}
rm -rf "$out"
mkdir -p "$out"
mapfile -t bins < <(find "$build/tests/fuzz" -maxdepth 1 -type f -name 'fuzz_*' -perm -u+x | sort)
if [[ -n "$only" ]]; then
  IFS=, read -r -a wanted <<<"$only"
  sel=()
  for b in "${bins[@]}"; do
    for w in "${wanted[@]}"; do [[ "$(basename "$b")" == "fuzz_$w" ]] && sel+=("$b"); done
  done
  bins=("${sel[@]}")
fi
((${#bins[@]})) || { echo "run.sh: no fuzzers found in $build/tests/fuzz" >&2; exit 2; }
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/sanitizers/lsan.supp:print_suppressions=0}

run_one() {
  local bin=$1 name
  name=$(basename "$bin")
  name=${name#fuzz_}
  mkdir -p "$out/$name/corpus"
  local log="$out/$name/log.txt"
  local rc=0
  # 124: SIGTERM after seconds + margin ended it; 137: it ignored SIGTERM and got SIGKILL.
  # (The outer 2>/dev/null only silences bash's "Killed" notice.)
  { timeout -k 15 "$((seconds + margin))" "$bin" -max_total_time="$seconds" -print_final_stats=1 -timeout=30 \
    -rss_limit_mb=2560 -close_fd_mask=1 -artifact_prefix="$out/$name/" "$out/$name/corpus" "tests/fuzz/corpus/$name" \
    >"$log" 2>&1; } 2>/dev/null || rc=$?
  echo "$rc" >"$out/$name/rc"
}

start=$(date +%s)
running=0
for b in "${bins[@]}"; do
  run_one "$b" &
  running=$((running + 1))
  if ((running >= jobs)); then wait -n || true; running=$((running - 1)); fi
done
wait || true

status=0
printf '%-22s %10s %8s %8s %8s  %s\n' fuzzer exec/s cov ft corpus result
for b in "${bins[@]}"; do
  name=$(basename "$b"); name=${name#fuzz_}
  log="$out/$name/log.txt"
  rc=$(cat "$out/$name/rc" 2>/dev/null || echo 99)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
  corp=$(sed -nE 's/.* corp: ([0-9]+).*/\1/p' <<<"$last")
  eps=$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+).*/\1/p' "$log" | tail -1)
  result=ok
  if [[ "$rc" != 0 ]]; then
    if [[ ",$advisory," == *",$name,"* ]]; then result="ADVISORY "; else status=1; result=""; fi
    art=$(ls "$out/$name"/crash-* "$out/$name"/leak-* "$out/$name"/timeout-* "$out/$name"/oom-* 2>/dev/null | head -1 || true)
    why="exit $rc"
    [[ "$rc" == 124 ]] && why="hung: killed $((seconds + margin)) s after start"
    [[ "$rc" == 137 ]] && why="hung: SIGKILLed $((seconds + margin + 15)) s after start"
    result="${result}FAILED ($why) input: ${art:-none saved}; log: $log"
  fi
  printf '%-22s %10s %8s %8s %8s  %s\n' "$name" "${eps:--}" "${cov:--}" "${ft:--}" "${corp:--}" "$result"
done
for b in "${bins[@]}"; do
  name=$(basename "$b"); name=${name#fuzz_}
  if [[ "$(cat "$out/$name/rc" 2>/dev/null || echo 99)" != 0 ]]; then
    echo "---- $name: last lines of $out/$name/log.txt"
    grep -v '^#[0-9]' "$out/$name/log.txt" | tail -40 || true
    if grep -q 'out-of-memory' "$out/$name/log.txt" && ! ls "$out/$name"/oom-* >/dev/null 2>&1; then
      echo "---- $name: out of memory, and libFuzzer's ASan memory profile did not finish, so the input was not" \
        "saved; the inputs it started from are in $out/$name/corpus and tests/fuzz/corpus/$name"
    fi
  fi
done
echo "fuzz: ${#bins[@]} fuzzers x ${seconds} s (${jobs} at a time) in $(($(date +%s) - start)) s"
exit "$status"
