#!/usr/bin/env bash
# The README's main-job command: the whole product, end to end, on this machine.
#
#   deploy/quickstart.sh                  # install deps, build, train + evaluate within 35 minutes
#   deploy/quickstart.sh --minutes 40     # a longer run: more images and epochs, better features
#   deploy/quickstart.sh --smoke          # CI: a few steps on 1k images, same path through everything
#
# What it does:
#   1. installs the Debian packages (deploy/install-deps.sh; idempotent, skipped when all present);
#   2. configures and builds only vicreg_coordinator, vicregctl, vicreg_worker, vicreg_eval (and the
#      job shim) in build/ with -j2 (no tests);
#   3. starts vicreg_coordinator in the background on loopback (free gRPC and metrics ports, 2 CPU
#      slots, a temporary state dir);
#   4. measures this machine: a short calibration job (the same job file, the same 2 ranks under
#      mpirun, CALIBRATION_STEPS steps on a small subset) through the coordinator, with the same
#      scheduled evaluation as the real job; its metrics.jsonl gives the images/s, its rank log the
#      checkpoint cost, its wall time the job's fixed costs (mpirun, start-up, last checkpoint, exit)
#      and its evaluation's wall time what the real job's evaluation will cost;
#   5. submits configs/quickstart.yaml (VICReg, ViT on Fashion-MNIST, 2 ranks under mpirun) with a
#      training time budget (train.time_budget_s: the worker re-plans its step count from the rate it
#      reaches as it trains) and a first plan from the measured rate, shows where the metrics are and
#      checks that they answer, and follows the job with `vicregctl watch` (live progress);
#   6. waits for the scheduled evaluation of the last checkpoint (eval.final) and prints its table: the learned
#      encoder against a random-init encoder and raw pixels, linear probe and kNN, with the margins and
#      their 95% intervals; writes the job's self-contained HTML report (vicregctl report) into the run
#      dir (the web UI's URL is printed at 3-5);
#   7. stops the coordinator (also on Ctrl-C, after cancelling the job) and keeps the run directory.
#
# Time budget: --minutes M (or VICREG_QUICKSTART_MINUTES) is the wall time of the WHOLE command,
# install and build included (default 35: a cold run on 2 cores then trains 8700-9400 steps, where
# its linear margin over raw pixels was +1.76..+2.07 points; at 25 minutes +1.10..+1.75;
# docs/QUICKSTART-TUNING.md). Install,
# build, coordinator start and calibration are measured as they happen; what is left is split into
# the job's fixed costs and the evaluation (both measured by the calibration), training (the job's
# train.time_budget_s: the workers train as many steps as fit in it at the rate they reach, so a
# machine that speeds up or slows down during the run still ends on time) and a small safety margin
# (docs/QUICKSTART-TUNING.md). A cold build or a slow machine therefore trains on fewer images; the
# rate is never a constant of this script: the first plan (data.limit x num_epochs) comes from the
# calibration's rate, VICREG_QUICKSTART_RATE skips the calibration explicitly, and a fixed fallback
# rate is used only when the calibration fails (with a warning).
#
# Exit codes: 0 the job succeeded and its evaluation ran; 1 a runtime failure (build, coordinator,
# job or evaluation failed); 2 bad usage. Run with --help for every option.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)

# ---- options -------------------------------------------------------------------------------
MINUTES=${VICREG_QUICKSTART_MINUTES:-35}
SMOKE=${VICREG_QUICKSTART_SMOKE:-0}
SKIP_INSTALL=${VICREG_SKIP_INSTALL:-0}
DO_BUILD=1
BUILD_DIR=${VICREG_BUILD_DIR:-}
BIN_DIR=${VICREG_BIN_DIR:-}
CONFIG=${VICREG_QUICKSTART_CONFIG:-}
JOBS=${VICREG_JOBS:-2}
STATE_DIR=""
CLEAN=0
PLAN_ONLY=0
SUMMARY=""
DATA_DIR=${VICREG_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
# The time plan (docs/QUICKSTART-TUNING.md "How the budget is spent"). The training rate is measured
# by a calibration job of CAL_STEPS steps; VICREG_QUICKSTART_RATE (images/s) skips it on purpose.
# FALLBACK_RATE is used only when the calibration fails (a warning says so) and by --plan-only
# without VICREG_QUICKSTART_RATE. The evaluation (learned + random-init encoder + raw pixels, linear +
# kNN, at the config's eval limits) is timed on the calibration's checkpoint (the same evaluation,
# scheduled by the coordinator the same way); VICREG_QUICKSTART_EVAL_SECONDS gives its seconds instead,
# and only without either (no calibration, or its evaluation failed) is it estimated as
# EVAL_FIXED_S + EVAL_IMAGES / rate (a fallback, with a warning). TAIL_S covers the report and the
# coordinator's stop; the plan ends MARGIN_PCT % of the budget + 5 s early for the error of the fixed
# costs' and the evaluation's estimates (the training rate's drift no longer needs a margin: the
# workers follow it). SMOKE_TRAIN_S is the smoke run's training budget.
RATE_GIVEN=${VICREG_QUICKSTART_RATE:-}
EVAL_S_GIVEN=${VICREG_QUICKSTART_EVAL_SECONDS:-}
CAL_STEPS=${VICREG_QUICKSTART_CALIBRATION_STEPS:-80}
FALLBACK_RATE=900
EVAL_FIXED_S=19
EVAL_IMAGES=4000
TAIL_S=3
MARGIN_PCT=1
SMOKE_TRAIN_S=8
usage() {
  cat <<EOF
Usage: deploy/quickstart.sh [options]

Trains a VICReg encoder on Fashion-MNIST with 2 ranks through vicreg_coordinator, then prints the
evaluation table (learned encoder vs random-init encoder vs raw pixels; linear probe and kNN).

Options:
  --minutes M        wall-time budget of the whole command, install and build included
                     (default 35; env VICREG_QUICKSTART_MINUTES); training is scaled to fit
  --smoke            reduced run for CI: 8 s of training on 1024 images, evaluation on 1000/500
                     images; same path through every component (env VICREG_QUICKSTART_SMOKE=1)
  --skip-install     do not run deploy/install-deps.sh (env VICREG_SKIP_INSTALL=1)
  --no-build         use the binaries already built in the build dir
  --build-dir DIR    CMake build dir (default <repo>/build; env VICREG_BUILD_DIR)
  --bin-dir DIR      use prebuilt binaries from one folder (implies --no-build; env VICREG_BIN_DIR)
  --config FILE      job file (default configs/quickstart.yaml; env VICREG_QUICKSTART_CONFIG)
  --state-dir DIR    coordinator state dir (default: a new temporary dir; kept afterwards)
  --clean            remove the state dir (checkpoints, logs) at the end
  --summary FILE     also write key=value results to FILE (for scripts and CI)
  --plan-only        print the training plan and the submit command, then exit
  -h, --help         this help

Environment: VICREG_JOBS (build parallelism, default 2), VICREG_FASHION_MNIST_DIR (default
/usr/share/datasets/fashion-mnist), VICREG_QUICKSTART_CALIBRATION_STEPS (steps of the calibration
job that measures this machine's training rate and evaluation time, default 80),
VICREG_QUICKSTART_RATE (images/s: skip the calibration and plan at this rate),
VICREG_QUICKSTART_EVAL_SECONDS (the evaluation's seconds instead of the time the calibration's
evaluation took); see docs/QUICKSTART-TUNING.md.
Exit codes: 0 success, 1 runtime failure, 2 bad usage.
EOF
}

die_usage() { echo "quickstart: $*" >&2; echo "Run deploy/quickstart.sh --help for the options." >&2; exit 2; }
die() { echo "quickstart: error: $*" >&2; exit 1; }

need_value() { [[ $# -ge 2 && -n "$2" ]] || die_usage "$1 needs a value"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --minutes) need_value "$@"; MINUTES=$2; shift 2 ;;
    --minutes=*) MINUTES=${1#*=}; shift ;;
    --smoke) SMOKE=1; shift ;;
    --skip-install) SKIP_INSTALL=1; shift ;;
    --no-build) DO_BUILD=0; shift ;;
    --build-dir) need_value "$@"; BUILD_DIR=$2; shift 2 ;;
    --bin-dir) need_value "$@"; BIN_DIR=$2; shift 2 ;;
    --config) need_value "$@"; CONFIG=$2; shift 2 ;;
    --state-dir) need_value "$@"; STATE_DIR=$2; shift 2 ;;
    --clean) CLEAN=1; shift ;;
    --summary) need_value "$@"; SUMMARY=$2; shift 2 ;;
    --plan-only) PLAN_ONLY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die_usage "unknown option '$1'" ;;
  esac
done

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }
if ! is_uint "$MINUTES" || ((MINUTES < 3 || MINUTES > 1440)); then
  die_usage "--minutes: '$MINUTES' is not valid; use a whole number of minutes from 3 to 1440"
fi
if ! is_uint "$JOBS" || ((JOBS < 1)); then die_usage "VICREG_JOBS: '$JOBS' is not valid; use a number >= 1"; fi
if [[ -n "$RATE_GIVEN" ]] && { ! is_uint "$RATE_GIVEN" || ((RATE_GIVEN < 1)); }; then
  die_usage "VICREG_QUICKSTART_RATE: '$RATE_GIVEN' is not valid; use images/s >= 1 (or leave it unset to measure the rate)"
fi
if [[ -n "$EVAL_S_GIVEN" ]] && ! is_uint "$EVAL_S_GIVEN"; then
  die_usage "VICREG_QUICKSTART_EVAL_SECONDS: '$EVAL_S_GIVEN' is not valid; use seconds >= 0 (or leave it unset)"
fi
if ! is_uint "$CAL_STEPS" || ((CAL_STEPS < 20 || CAL_STEPS > 5000)); then
  die_usage "VICREG_QUICKSTART_CALIBRATION_STEPS: '$CAL_STEPS' is not valid; use 20 to 5000 steps"
fi
[[ "$SMOKE" == 0 || "$SMOKE" == 1 ]] || die_usage "VICREG_QUICKSTART_SMOKE: '$SMOKE' is not valid; use 0 or 1"
if [[ -z "$CONFIG" ]]; then
  CONFIG=${VICREG_CONFIG_DIR:-$REPO/configs}/quickstart.yaml
fi
[[ -r "$CONFIG" ]] || die_usage "--config: cannot read '$CONFIG'"
CONFIG=$(cd "$(dirname "$CONFIG")" && pwd)/$(basename "$CONFIG")
[[ -n "$BUILD_DIR" ]] || BUILD_DIR=$REPO/build
if [[ -n "$BIN_DIR" ]]; then DO_BUILD=0; fi

T0=$(date +%s)
elapsed() { echo $(( $(date +%s) - T0 )); }
mmss() { printf '%dm%02ds' $(( $1 / 60 )) $(( $1 % 60 )); }
STEP=0
step() { STEP=$((STEP + 1)); printf '\n\033[1m[%d/7 %s] %s\033[0m\n' "$STEP" "$(mmss "$(elapsed)")" "$*"; }
[[ -t 1 ]] || step() { STEP=$((STEP + 1)); printf '\n[%d/7 %s] %s\n' "$STEP" "$(mmss "$(elapsed)")" "$*"; }

# ---- the training plan: a time budget for the job, and a first data.limit x num_epochs ------
# Reads train.batch_size, train.log_every and resources.ranks of the job file (top-level YAML
# sections, 2-space keys).
yaml_get() {  # yaml_get SECTION KEY FILE -> the scalar value, or empty
  awk -v sec="$1:" -v key="$2:" '
    /^[^ #]/ { insec = ($1 == sec) }
    insec && $1 == key { v = $2; sub(/#.*/, "", v); print v; exit }' "$3"
}
TRAIN_IMAGES_TOTAL=60000
BATCH=$(yaml_get train batch_size "$CONFIG"); RANKS=$(yaml_get resources ranks "$CONFIG")
is_uint "${BATCH:-x}" || die "cannot read train.batch_size from $CONFIG"
is_uint "${RANKS:-x}" || die "cannot read resources.ranks from $CONFIG"
GB=$((BATCH * RANKS))   # images per global step
LOG_EVERY=$(yaml_get train log_every "$CONFIG"); is_uint "${LOG_EVERY:-x}" && ((LOG_EVERY >= 1)) || LOG_EVERY=10

# What the plan knows about this machine (set by the calibration below, else these fallbacks):
RATE=${RATE_GIVEN:-$FALLBACK_RATE}   # training images/s of the whole job
RATE_SOURCE=${RATE_GIVEN:+given}; RATE_SOURCE=${RATE_SOURCE:-fallback}
JOB_OVERHEAD_S=15                    # a job's fixed cost: launch, start-up, last checkpoint, exit
CKPT_MS=500                          # one epoch checkpoint (every epoch but the last is inside training)
CAL_S=0
EVAL_S_MEASURED=""                   # the calibration's evaluation: from its job's end to the finished table

plan() {  # plan SECONDS_LEFT -> sets EPOCHS, LIMIT, STEPS (the first plan), TRAIN_S (the job's training budget), EVAL_S, MARGIN_S, PLANNED_JOB_S, PLAN_SETS
  local left=$1 images
  PLAN_SETS=()
  if [[ -n "$EVAL_S_GIVEN" ]]; then EVAL_S=$EVAL_S_GIVEN; EVAL_SOURCE=given
  elif [[ -n "$EVAL_S_MEASURED" ]]; then EVAL_S=$EVAL_S_MEASURED; EVAL_SOURCE=measured
  else EVAL_S=$(( EVAL_FIXED_S + (EVAL_IMAGES + RATE - 1) / RATE )); EVAL_SOURCE=estimated; fi
  MARGIN_S=$(( MINUTES * 60 * MARGIN_PCT / 100 + 5 ))
  if [[ "$SMOKE" == 1 ]]; then
    EPOCHS=2; LIMIT=1024; TRAIN_S=$SMOKE_TRAIN_S
    PLAN_SETS+=(--set eval.limit_train=1000 --set eval.limit_test=500)
  else
    TRAIN_S=$((left - JOB_OVERHEAD_S - EVAL_S - TAIL_S - MARGIN_S))
    if ((TRAIN_S < 60)); then
      echo "quickstart: warning: only $(mmss "$left") of the ${MINUTES}-minute budget is left;" \
           "training for 1 minute anyway (the run will take longer than the budget)" >&2
      TRAIN_S=60
    fi
    # The first plan, at the measured rate (the workers re-plan the step count to TRAIN_S as they train).
    images=$((TRAIN_S * RATE))
    # At least 3 epochs (warmup + cosine decay need room); more epochs once all 60k images fit.
    EPOCHS=$(( (images + TRAIN_IMAGES_TOTAL - 1) / TRAIN_IMAGES_TOTAL ))
    ((EPOCHS >= 3)) || EPOCHS=3
    # Every epoch but the last writes its checkpoint within the training time.
    images=$(( (TRAIN_S * 1000 - (EPOCHS - 1) * CKPT_MS) * RATE / 1000 ))
    LIMIT=$(( images / EPOCHS / GB * GB ))
    ((LIMIT <= TRAIN_IMAGES_TOTAL)) || LIMIT=$TRAIN_IMAGES_TOTAL
    ((LIMIT >= GB * 4)) || LIMIT=$((GB * 4))
  fi
  PLAN_SETS+=(--set "data.data_dir=$DATA_DIR" --set "data.limit=$LIMIT" --set "train.num_epochs=$EPOCHS"
              --set "train.time_budget_s=$TRAIN_S" --set "eval.epochs=[]" --set eval.final=true)
  local steps_per_epoch=$((LIMIT / GB))   # drop_last: whole global batches only
  STEPS=$((steps_per_epoch * EPOCHS))
  PLANNED_JOB_S=$(( JOB_OVERHEAD_S + TRAIN_S ))
}

if [[ "$PLAN_ONLY" == 1 ]]; then
  plan $((MINUTES * 60))
  if [[ "$RATE_SOURCE" == given ]]; then
    how="at ${RATE} img/s (VICREG_QUICKSTART_RATE)"
  else
    how="at an assumed ${RATE} img/s: a real run measures this machine's rate first and plans from it"
  fi
  echo "plan: training $(mmss "$TRAIN_S") (train.time_budget_s), first plan ${EPOCHS} epochs x ${LIMIT} images =" \
       "${STEPS} steps $how; evaluation ~$(mmss "$EVAL_S"); planned as if install, build and calibration took no time)"
  echo "vicregctl submit $CONFIG ${PLAN_SETS[*]}"
  exit 0
fi

# ---- 1. dependencies --------------------------------------------------------------------------
step "dependencies"
if [[ "$SKIP_INSTALL" == 1 ]]; then
  echo "skipped (--skip-install)"
else
  "$REPO/deploy/install-deps.sh"
fi
for tool in curl mpirun; do
  command -v "$tool" >/dev/null || die "'$tool' is not installed (run deploy/install-deps.sh)"
done
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
  [[ -r "$DATA_DIR/$f" ]] || die "Fashion-MNIST file $DATA_DIR/$f is missing (apt-get install dataset-fashion-mnist)"
done

# ---- 2. build ---------------------------------------------------------------------------------
step "build"
if [[ -n "$BIN_DIR" ]]; then
  COORD=$BIN_DIR/vicreg_coordinator; CTL=$BIN_DIR/vicregctl; WORKER=$BIN_DIR/vicreg_worker
  EVAL=$BIN_DIR/vicreg_eval; SHIM=$BIN_DIR/vicreg_job_shim
  echo "prebuilt binaries in $BIN_DIR"
else
  COORD=$BUILD_DIR/server/vicreg_coordinator; CTL=$BUILD_DIR/server/cli/vicregctl
  WORKER=$BUILD_DIR/worker/vicreg_worker; EVAL=$BUILD_DIR/worker/eval/vicreg_eval
  SHIM=$BUILD_DIR/server/vicreg_job_shim
  if [[ "$DO_BUILD" == 1 ]]; then
    if [[ ! -f "$BUILD_DIR/CMakeCache.txt" || ! -f "$BUILD_DIR/build.ninja" ]]; then
      cmake -S "$REPO" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release
    fi
    cmake --build "$BUILD_DIR" -j "$JOBS" --target vicreg_coordinator vicregctl vicreg_worker vicreg_eval vicreg_job_shim
  else
    echo "skipped (--no-build): binaries in $BUILD_DIR"
  fi
fi
for b in "$COORD" "$CTL" "$WORKER" "$EVAL" "$SHIM"; do
  [[ -x "$b" ]] || die "$b is not built (run without --no-build, or give --build-dir/--bin-dir)"
done
BUILD_DONE_S=$(elapsed)
echo "install + build took $(mmss "$BUILD_DONE_S")"

# ---- 3. coordinator ---------------------------------------------------------------------------
step "coordinator"
if [[ -z "$STATE_DIR" ]]; then
  STATE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/vicreg-quickstart.XXXXXX")
else
  mkdir -p "$STATE_DIR"
fi
STATE_DIR=$(cd "$STATE_DIR" && pwd)
COORD_PID=""
JOB_ID=""
JOB_DONE=0
INTERRUPTED=0

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  if [[ -n "$JOB_ID" && "$JOB_DONE" == 0 && -n "$COORD_PID" ]]; then
    echo "quickstart: cancelling $JOB_ID" >&2
    "$CTL" --server "$GRPC" cancel "$JOB_ID" --reason "quickstart interrupted" >/dev/null 2>&1
  fi
  if [[ -n "$COORD_PID" ]] && kill -0 "$COORD_PID" 2>/dev/null; then
    kill -TERM "$COORD_PID" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$COORD_PID" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$COORD_PID" 2>/dev/null; then
      echo "quickstart: coordinator did not stop in 20 s; killing it" >&2
      kill -KILL "$COORD_PID" 2>/dev/null
    fi
    wait "$COORD_PID" 2>/dev/null
    echo "coordinator stopped (pid $COORD_PID)"
  fi
  if [[ "$CLEAN" == 1 && -n "$STATE_DIR" ]]; then
    rm -rf "$STATE_DIR"
  elif [[ -n "$STATE_DIR" ]]; then
    echo "state dir kept: $STATE_DIR (coordinator log: $STATE_DIR/coordinator.log)"
  fi
  if [[ "$INTERRUPTED" == 1 ]]; then rc=130; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'INTERRUPTED=1; exit 130' INT TERM

"$COORD" --state-dir "$STATE_DIR" --listen 127.0.0.1:0 --metrics-port 127.0.0.1:0 --slots 2 \
  --eval-slots 1 --workdir "$REPO" --worker-binary "$WORKER" --shim-binary "$SHIM" --eval-binary "$EVAL" \
  --log-level info >"$STATE_DIR/coordinator.log" 2>&1 &
COORD_PID=$!
GRPC=""; METRICS=""
for _ in $(seq 1 150); do
  if [[ -s "$STATE_DIR/coordinator.json" ]]; then
    GRPC=$(sed -n 's/.*"grpc": *"\([^"]*\)".*/\1/p' "$STATE_DIR/coordinator.json")
    METRICS=$(sed -n 's/.*"metrics": *"\([^"]*\)".*/\1/p' "$STATE_DIR/coordinator.json")
    [[ -n "$GRPC" && -n "$METRICS" ]] && break
  fi
  if ! kill -0 "$COORD_PID" 2>/dev/null; then
    tail -20 "$STATE_DIR/coordinator.log" >&2
    COORD_PID=""
    die "vicreg_coordinator exited during start-up (log above)"
  fi
  sleep 0.2
done
[[ -n "$GRPC" && -n "$METRICS" ]] || die "vicreg_coordinator did not write $STATE_DIR/coordinator.json within 30 s"
# vicregctl finds the coordinator's generated token (mode 0600) through its state dir.
export VICREG_STATE_DIR="$STATE_DIR"
echo "vicreg_coordinator pid $COORD_PID: gRPC $GRPC, state dir $STATE_DIR"
echo "  web UI:            http://$METRICS/   (jobs, live curves, evaluations, logs; read-only;"
echo "                     sign in with the token in $STATE_DIR/token)"
echo "  metrics:           http://$METRICS/metrics"
echo "  service discovery: http://$METRICS/sd   (Prometheus http_sd_configs: deploy/prometheus/prometheus.yml)"
COORD_METRICS_OK=0
if curl -fsS --max-time 5 "http://$METRICS/metrics" | grep -q '^vicreg_slots'; then
  COORD_METRICS_OK=1
  echo "  /metrics answers: $(curl -fsS --max-time 5 "http://$METRICS/metrics" | grep -c '^vicreg_') vicreg_* samples"
else
  echo "quickstart: warning: the coordinator's /metrics did not answer with vicreg_slots" >&2
fi

# ---- 4. calibration: this machine's training rate and evaluation time ---------------------------
# A short job with the same file, ranks and threads (a small subset, one epoch, the same evaluation). Its
# metrics.jsonl windows after the first (warm-up) give the steady images/s; its wall time minus its
# steps at that rate gives a job's fixed cost; its rank-0 log gives the cost of one checkpoint.
now_s() { date +%s.%N; }
warn() { echo "quickstart: warning: $*" >&2; }
job_state() { "$CTL" --server "$GRPC" status "$JOB_ID" 2>/dev/null | awk 'NR == 1 {print $3}'; }
# wait_evaluation JOB TIMEOUT_S [LOG]: waits until every evaluation task of JOB has ended (SUCCEEDED
# or FAILED) and leaves `vicregctl eval JOB` in EVAL_TABLE; with LOG, shows that evaluation log's last
# line as it changes. Returns 0 when they ended, 1 after TIMEOUT_S, 2 when vicregctl fails.
EVAL_TABLE=""
wait_evaluation() {
  local job=$1 deadline=$(( $(date +%s) + $2 )) log=${3:-} pending tasks line last_line=""
  while :; do
    EVAL_TABLE=$("$CTL" --server "$GRPC" eval "$job" 2>&1) || return 2
    pending=$(awk 'NR > 1 && $3 != "SUCCEEDED" && $3 != "FAILED"' <<<"$EVAL_TABLE" | wc -l)
    tasks=$(awk 'NR > 1 && NF' <<<"$EVAL_TABLE" | wc -l)
    if ((tasks > 0 && pending == 0)) && ! grep -q '^no evaluations' <<<"$EVAL_TABLE"; then return 0; fi
    if (($(date +%s) > deadline)); then return 1; fi
    if [[ -n "$log" && -r "$log" ]]; then
      line=$(tr '\r' '\n' <"$log" | awk 'NF {l = $0} END {print substr(l, 1, 150)}')
      if [[ "$line" != "$last_line" ]]; then echo "  $line"; last_line=$line; fi
    fi
    sleep 1
  done
}
CAL_JOB_ID=""
calibrate() {  # sets RATE, JOB_OVERHEAD_S, CKPT_MS, EVAL_S_MEASURED, CAL_S; returns 1 (with a warning) when it cannot
  local cal_log=$LOG_EVERY steps=$CAL_STEPS t0 t1 t2 rc parsed ms
  if [[ "$SMOKE" == 1 ]]; then cal_log=2; steps=6; fi
  steps=$(( (steps + cal_log - 1) / cal_log * cal_log ))
  ((steps >= 3 * cal_log)) || steps=$((3 * cal_log))   # the first window is warm-up: 2 more are measured
  local sets=(--set name=quickstart-calibration --set "data.data_dir=$DATA_DIR" --set "data.limit=$((GB * steps))"
              --set train.num_epochs=1 --set train.max_steps=0 --set "train.log_every=$cal_log"
              --set train.time_budget_s=0 --set "eval.epochs=[]" --set eval.every_epochs=0 --set eval.final=true)
  if [[ "$SMOKE" == 1 ]]; then sets+=(--set eval.limit_train=1000 --set eval.limit_test=500); fi
  echo "+ vicregctl submit $(basename "$CONFIG") ${sets[*]}"
  t0=$(now_s)
  if ! CAL_JOB_ID=$("$CTL" --server "$GRPC" submit "$CONFIG" "${sets[@]}"); then
    warn "the calibration job was not accepted"; CAL_JOB_ID=""; return 1
  fi
  JOB_ID=$CAL_JOB_ID; JOB_DONE=0
  echo "calibration job $CAL_JOB_ID: $steps steps of $GB images ..."
  "$CTL" --server "$GRPC" watch "$CAL_JOB_ID" >"$STATE_DIR/calibration-watch.log" 2>&1
  rc=$?
  t1=$(now_s)
  JOB_DONE=1
  if ((rc != 0)); then
    warn "the calibration job $CAL_JOB_ID ended $(job_state) (vicregctl watch exit $rc; logs in $STATE_DIR/runs/$CAL_JOB_ID/logs)"
    return 1
  fi
  # metrics.jsonl: one line per logged step, {"step":N,...,"images_per_s":X,...}, X over the window
  # since the previous line. Steady rate = images / seconds over every window but the first.
  if ! parsed=$(awk -v gb="$GB" '
      {
        if (!match($0, /"step":[0-9]+/)) next
        s = substr($0, RSTART + 7, RLENGTH - 7) + 0
        if (!match($0, /"images_per_s":[0-9.eE+-]+/)) next
        r = substr($0, RSTART + 15, RLENGTH - 15) + 0
        if (r <= 0 || s <= prev) next
        if (n++ > 0) { img += (s - prev) * gb; t += (s - prev) * gb / r }
        prev = s
      }
      END { if (t <= 0) exit 1; printf "%d %d %.1f\n", img / t, img / gb, t }' "$STATE_DIR/runs/$CAL_JOB_ID/metrics.jsonl" 2>/dev/null); then
    warn "no steady training rate in $STATE_DIR/runs/$CAL_JOB_ID/metrics.jsonl"
    return 1
  fi
  local rate measured_steps measured_s
  read -r rate measured_steps measured_s <<<"$parsed"
  if ! is_uint "$rate" || ((rate < 1)); then warn "calibration gave no usable rate ('$parsed')"; return 1; fi
  RATE=$rate
  JOB_OVERHEAD_S=$(awk -v a="$t0" -v b="$t1" -v n=$((steps * GB)) -v r="$RATE" \
    'BEGIN { o = (b - a) - n / r; if (o < 0) o = 0; printf "%d", o + 0.999 }')
  ms=$(grep -o 'written in [0-9.]* s' "$STATE_DIR/runs/$CAL_JOB_ID/logs/rank-0.log" 2>/dev/null | tail -1 |
       awk '{ printf "%d", $3 * 1000 }')
  if is_uint "${ms:-x}"; then CKPT_MS=$ms; else warn "no checkpoint time in the calibration's rank-0 log; assuming ${CKPT_MS} ms"; fi
  # The coordinator evaluates the calibration's checkpoint as it will the real job's (same binary,
  # same three rows and probes, same limits): from the job's end to the finished table is what the
  # real job's evaluation costs on this machine.
  echo "calibration: ${RATE} img/s; timing the evaluation of its checkpoint ..."
  rc=0; wait_evaluation "$CAL_JOB_ID" 900 || rc=$?
  t2=$(now_s)
  if ((rc == 0)) && ! awk 'NR > 1 && NF && $3 != "SUCCEEDED" {bad = 1} END {exit bad}' <<<"$EVAL_TABLE"; then rc=3; fi
  if ((rc == 0)); then
    EVAL_S_MEASURED=$(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%d", b - a + 0.999 }')
  else
    warn "the calibration's evaluation did not succeed (see $STATE_DIR/runs/$CAL_JOB_ID/eval/); the evaluation's time will be estimated"
  fi
  CAL_S=$(awk -v a="$t0" -v b="$t2" 'BEGIN { printf "%d", b - a + 0.5 }')
  echo "measured: ${RATE} img/s over ${measured_steps} steady steps (${measured_s} s; the first $cal_log were warm-up)," \
       "job fixed cost ${JOB_OVERHEAD_S} s, checkpoint $((CKPT_MS)) ms, evaluation ${EVAL_S_MEASURED:-?} s;" \
       "calibration took ${CAL_S} s"
}

if [[ -n "$RATE_GIVEN" ]]; then
  step "calibration: skipped (VICREG_QUICKSTART_RATE=$RATE_GIVEN img/s given)"
  warn "planning at the given ${RATE_GIVEN} img/s, not at a rate measured on this machine"
else
  step "calibration: this machine's training rate and evaluation time ($(basename "$CONFIG"), $RANKS ranks, a few steps)"
  if calibrate; then
    RATE_SOURCE=measured
  else
    RATE=$FALLBACK_RATE; RATE_SOURCE=fallback
    warn "the calibration failed; planning at the FALLBACK rate of ${RATE} img/s (not measured on this machine:" \
         "the run may miss its budget)"
  fi
  JOB_ID=""
fi
if [[ "$SMOKE" == 1 ]]; then echo "smoke mode: ${SMOKE_TRAIN_S} s of training on 1024 images; the measured rate is only reported"; fi

# ---- 5. submit and follow ---------------------------------------------------------------------
LEFT=$(( MINUTES * 60 - $(elapsed) ))
plan "$LEFT"
step "training: $(basename "$CONFIG"), $(mmss "$TRAIN_S") on 2 ranks (first plan ${EPOCHS} epochs x ${LIMIT} images = ${STEPS} steps)"
if [[ "$SMOKE" == 1 ]]; then
  echo "smoke mode: reduced data and evaluation"
else
  echo "budget ${MINUTES} min: $(mmss "$(elapsed)") used, $(mmss "$LEFT") left -> job ~$(mmss "$PLANNED_JOB_S")" \
       "(training $(mmss "$TRAIN_S"), re-planned by the workers from the rate they reach; first plan ${STEPS}" \
       "steps at the ${RATE_SOURCE} ${RATE} img/s; + ${JOB_OVERHEAD_S} s fixed)," \
       "evaluation ~$(mmss "$EVAL_S") (${EVAL_SOURCE}), margin ${MARGIN_S} s"
fi
SUBMIT=("$CTL" --server "$GRPC" submit "$CONFIG" "${PLAN_SETS[@]}")
echo "+ vicregctl submit $(basename "$CONFIG") ${PLAN_SETS[*]}"
SUBMIT_S=$(elapsed)
JOB_ID=$("${SUBMIT[@]}") || die "vicregctl submit failed (exit $?)"
JOB_DONE=0
RUN_DIR=$STATE_DIR/runs/$JOB_ID
echo "job $JOB_ID, run dir $RUN_DIR"
echo "follow it in a browser: http://$METRICS/jobs/$JOB_ID"

# The ranks' /metrics endpoints, from the coordinator's service discovery, once they are up.
# /sd: [{"labels":{"job_id":"job-000001","rank":"0"},"targets":["127.0.0.1:PORT"]}, ...]
sd_targets() {  # sd_targets JSON JOB_ID -> one host:port per rank of that job
  { grep -o "\"job_id\":\"$2\"[^]]*\"targets\":\[\"[^\"]*\"" <<<"$1" || true
    grep -o "\"targets\":\[\"[^\"]*\"\],\"labels\":{\"job_id\":\"$2\"" <<<"$1" || true
  } | sed 's/.*"targets":\["\([^"]*\)".*/\1/'
}
RANK_ENDPOINTS=()
echo "waiting for the ranks' metrics endpoints (coordinator /sd) ..."
for _ in $(seq 1 600); do
  sd=$(curl -fsS --max-time 5 "http://$METRICS/sd" 2>/dev/null || true)
  mapfile -t RANK_ENDPOINTS < <(sd_targets "$sd" "$JOB_ID")
  if ((${#RANK_ENDPOINTS[@]} >= 2)); then break; fi
  case "$(job_state)" in SUCCEEDED|FAILED|CANCELLED) break ;; esac
  sleep 0.5
done
RANK_METRICS_OK=0
for ep in "${RANK_ENDPOINTS[@]}"; do
  ok=0
  for _ in $(seq 1 20); do  # a rank registers its endpoint just before it serves
    if curl -fsS --max-time 5 "http://$ep/metrics" 2>/dev/null | grep -q '^vicreg_train_steps_total'; then ok=1; break; fi
    sleep 0.5
  done
  if ((ok)); then
    RANK_METRICS_OK=$((RANK_METRICS_OK + 1))
    echo "  rank metrics:      http://$ep/metrics (answers)"
  else
    echo "  rank metrics:      http://$ep/metrics (did not answer)"
  fi
done
((${#RANK_ENDPOINTS[@]} > 0)) || echo "quickstart: warning: no rank endpoint appeared in /sd" >&2
echo "+ vicregctl watch $JOB_ID"
set +e
"$CTL" --server "$GRPC" watch "$JOB_ID"
WATCH_RC=$?
set -e
JOB_DONE=1
JOB_STATE=$(job_state)
if [[ "$WATCH_RC" != 0 || "$JOB_STATE" != SUCCEEDED ]]; then
  "$CTL" --server "$GRPC" status "$JOB_ID" >&2 || true
  "$CTL" --server "$GRPC" logs "$JOB_ID" 2>/dev/null | tail -20 >&2 || true
  die "job $JOB_ID ended $JOB_STATE (vicregctl watch exit $WATCH_RC)"
fi
TRAIN_DONE_S=$(elapsed)
# Where the run ended (the workers' result.json): the step and the epoch of its last checkpoint.
result_int() { sed -n "s/^ *\"$1\": *\([0-9][0-9]*\).*/\1/p" "$RUN_DIR/result.json" 2>/dev/null | head -1; }
FINAL_STEPS=$(result_int step); FINAL_EPOCH=$(result_int epoch)
is_uint "${FINAL_STEPS:-x}" && is_uint "${FINAL_EPOCH:-x}" || die "no step/epoch in $RUN_DIR/result.json"
echo "the job took $(mmss $((TRAIN_DONE_S - SUBMIT_S))) (planned $(mmss "$PLANNED_JOB_S")): ${FINAL_STEPS} steps," \
     "$((FINAL_STEPS * GB)) images in ${FINAL_EPOCH} epochs of ${LIMIT} (first plan ${STEPS} steps)"

# ---- 6. evaluation ----------------------------------------------------------------------------
step "evaluation of epoch ${FINAL_EPOCH}, the last (scheduled by the coordinator when the job ended)"
EVAL_LOG=$RUN_DIR/eval/epoch_${FINAL_EPOCH}_fashion_mnist.log
rc=0; wait_evaluation "$JOB_ID" $((SMOKE == 1 ? 900 : EVAL_S * 4 + 600)) "$EVAL_LOG" || rc=$?
table=$EVAL_TABLE
((rc != 2)) || die "vicregctl eval $JOB_ID failed: $table"
((rc == 0)) || die "evaluation did not finish in time (log: $EVAL_LOG)"
EVAL_DONE_S=$(elapsed)
echo "+ vicregctl eval $JOB_ID"
echo "$table"
# The shareable report (one self-contained HTML file: curves, evaluation, events, logs).
REPORT=$RUN_DIR/report.html
echo "+ vicregctl report $JOB_ID -o $REPORT"
if ! "$CTL" --server "$GRPC" report "$JOB_ID" -o "$REPORT" --http "$METRICS"; then
  echo "quickstart: warning: vicregctl report failed" >&2
  REPORT=""
fi

# learned vs references, linear probe and kNN, with the margins and their 95% intervals
top1() { awk -v m="$1" -v p="$2" 'NR > 1 && $3 == "SUCCEEDED" && $4 == m && $5 == p {print $6; exit}' <<<"$table"; }
pct_num() { tr -d '%' <<<"${1:-}"; }
# The number of test images behind every row: vicreg_eval logs "test N images".
TEST_N=$(grep -o 'test [0-9]* images' "$EVAL_LOG" 2>/dev/null | tail -1 | awk '{print $2}')
if ! is_uint "${TEST_N:-x}" || ((TEST_N < 1)); then
  TEST_N=10000
  warn "no test-set size in $EVAL_LOG; assuming Fashion-MNIST's 10000 test images for the intervals"
fi
# margin A B -> "D H": A - B in points and the half-width of its 95% interval (normal approximation
# to two binomial proportions on TEST_N images each; conservative, as the rows share the test images).
margin() {
  [[ -n "$1" && -n "$2" ]] || { echo "- -"; return; }
  awk -v a="$(pct_num "$1")" -v b="$(pct_num "$2")" -v n="$TEST_N" 'BEGIN {
    pa = a / 100; pb = b / 100
    printf "%+.2f %.2f\n", a - b, 196 * sqrt((pa * (1 - pa) + pb * (1 - pb)) / n) }'
}
# outcome "D H" -> win | tie | loss (a win only when the margin exceeds its interval)
outcome() { awk -v d="$1" -v h="$2" 'BEGIN { d += 0; h += 0; print (d > h ? "win" : (d < -h ? "loss" : "tie")) }'; }
fmt_margin() { [[ "$1" == - ]] && echo "-" || echo "$1 +/- $2"; }
VERDICT="incomplete"
L_LIN=$(top1 vicreg linear); R_LIN=$(top1 random_init linear); P_LIN=$(top1 raw_pixels linear)
L_KNN=$(top1 vicreg knn); R_KNN=$(top1 random_init knn); P_KNN=$(top1 raw_pixels knn)
read -r MR_LIN HR_LIN <<<"$(margin "$L_LIN" "$R_LIN")"; read -r MP_LIN HP_LIN <<<"$(margin "$L_LIN" "$P_LIN")"
read -r MR_KNN HR_KNN <<<"$(margin "$L_KNN" "$R_KNN")"; read -r MP_KNN HP_KNN <<<"$(margin "$L_KNN" "$P_KNN")"
echo
printf '%-26s %-18s %-18s\n' "" "linear probe" "kNN (k=20)"
printf '%-26s %-18s %-18s\n' "learned encoder (VICReg)" "${L_LIN:--}" "${L_KNN:--}"
printf '%-26s %-18s %-18s\n' "random-init encoder" "${R_LIN:--}" "${R_KNN:--}"
printf '%-26s %-18s %-18s\n' "raw pixels" "${P_LIN:--}" "${P_KNN:--}"
printf '%-26s %-18s %-18s\n' "learned - random-init" "$(fmt_margin "$MR_LIN" "$HR_LIN")" "$(fmt_margin "$MR_KNN" "$HR_KNN")"
printf '%-26s %-18s %-18s\n' "learned - raw pixels" "$(fmt_margin "$MP_LIN" "$HP_LIN")" "$(fmt_margin "$MP_KNN" "$HP_KNN")"
echo "(margins in points; +/- is the 95% interval of a difference of two accuracies on ${TEST_N} test images)"
if [[ "$MR_LIN" != - && "$MP_LIN" != - ]]; then
  vs_r="random-init ($MR_LIN +/- $HR_LIN points)"; vs_p="raw pixels ($MP_LIN +/- $HP_LIN points)"
  case "$(outcome "$MR_LIN" "$HR_LIN")/$(outcome "$MP_LIN" "$HP_LIN")" in
    win/win) VERDICT="learned linear probe beats $vs_r and $vs_p" ;;
    win/tie) VERDICT="learned linear probe beats $vs_r; ties $vs_p: the margin is within its interval (train longer: --minutes)" ;;
    win/loss) VERDICT="learned linear probe beats $vs_r, not $vs_p (train longer: --minutes)" ;;
    *) VERDICT="learned linear probe does not beat $vs_r (see Troubleshooting in README.md)" ;;
  esac
fi
echo "verdict: $VERDICT"

# ---- 7. where things are, then stop -----------------------------------------------------------
if [[ "$SMOKE" == 1 ]]; then
  step "done in $(mmss "$(elapsed)") (install+build $(mmss "$BUILD_DONE_S"), coordinator+calibration $(mmss $((SUBMIT_S - BUILD_DONE_S))), training $(mmss $((TRAIN_DONE_S - SUBMIT_S))), evaluation $(mmss $((EVAL_DONE_S - TRAIN_DONE_S))))"
else
  step "done in $(mmss "$(elapsed)") of the ${MINUTES}-minute budget (install+build $(mmss "$BUILD_DONE_S"), coordinator+calibration $(mmss $((SUBMIT_S - BUILD_DONE_S))), training $(mmss $((TRAIN_DONE_S - SUBMIT_S))) (planned $(mmss "$PLANNED_JOB_S")), evaluation $(mmss $((EVAL_DONE_S - TRAIN_DONE_S))) (planned $(mmss "$EVAL_S")))"
fi
echo "run dir:        $RUN_DIR  (checkpoints/, metrics.jsonl, logs/, eval/)"
echo "coordinator:    gRPC $GRPC, http://$METRICS/metrics, http://$METRICS/sd (stopped now)"
for ep in "${RANK_ENDPOINTS[@]}"; do echo "rank metrics:   http://$ep/metrics (served while the job ran)"; done
echo "training curve: $RUN_DIR/metrics.jsonl; evaluation: $RUN_DIR/eval/"
[[ -z "$REPORT" ]] || echo "report:         $REPORT  (open it in a browser; no server needed)"
if [[ -n "$SUMMARY" ]]; then
  {
    echo "job_id=$JOB_ID"
    echo "job_state=$JOB_STATE"
    echo "run_dir=$RUN_DIR"
    echo "state_dir=$STATE_DIR"
    echo "grpc=$GRPC"
    echo "coordinator_metrics=$METRICS"
    echo "coordinator_metrics_ok=$COORD_METRICS_OK"
    echo "rank_endpoints=${RANK_ENDPOINTS[*]}"
    echo "rank_metrics_ok=$RANK_METRICS_OK"
    echo "epochs=$FINAL_EPOCH"
    echo "limit=$LIMIT"
    echo "steps=$FINAL_STEPS"
    echo "planned_steps=$STEPS"
    echo "time_budget_s=$TRAIN_S"
    echo "vicreg_linear=$L_LIN"
    echo "random_init_linear=$R_LIN"
    echo "raw_pixels_linear=$P_LIN"
    echo "vicreg_knn=$L_KNN"
    echo "random_init_knn=$R_KNN"
    echo "raw_pixels_knn=$P_KNN"
    echo "test_images=$TEST_N"
    echo "margin_random_init_linear=$MR_LIN"
    echo "margin_random_init_linear_ci95=$HR_LIN"
    echo "margin_raw_pixels_linear=$MP_LIN"
    echo "margin_raw_pixels_linear_ci95=$HP_LIN"
    echo "margin_random_init_knn=$MR_KNN"
    echo "margin_random_init_knn_ci95=$HR_KNN"
    echo "margin_raw_pixels_knn=$MP_KNN"
    echo "margin_raw_pixels_knn_ci95=$HP_KNN"
    echo "verdict=$VERDICT"
    echo "report=$REPORT"
    echo "rate_img_s=$RATE"
    echo "rate_source=$RATE_SOURCE"
    echo "calibration_job_id=$CAL_JOB_ID"
    echo "calibration_s=$CAL_S"
    echo "job_overhead_s=$JOB_OVERHEAD_S"
    echo "checkpoint_ms=$CKPT_MS"
    echo "budget_s=$((MINUTES * 60))"
    echo "planned_job_s=$PLANNED_JOB_S"
    echo "planned_eval_s=$EVAL_S"
    echo "eval_source=$EVAL_SOURCE"
    echo "build_s=$BUILD_DONE_S"
    echo "submit_s=$SUBMIT_S"
    echo "train_s=$((TRAIN_DONE_S - SUBMIT_S))"
    echo "eval_s=$((EVAL_DONE_S - TRAIN_DONE_S))"
    echo "wall_s=$(elapsed)"
  } >"$SUMMARY"
fi
