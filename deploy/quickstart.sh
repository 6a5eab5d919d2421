#!/usr/bin/env bash
# The README's main-job command: the whole product, end to end, on this machine.
#
#   deploy/quickstart.sh                  # install deps, build, train + evaluate within 14 minutes
#   deploy/quickstart.sh --minutes 25     # a longer run: more images and epochs, better features
#   deploy/quickstart.sh --smoke          # CI: a few steps on 1k images, same path through everything
#
# What it does:
#   1. installs the Debian packages (deploy/install-deps.sh; idempotent, skipped when all present);
#   2. configures and builds only vicreg_coordinator, vicregctl, vicreg_worker, vicreg_eval (and the
#      job shim) in build/ with -j2 (no tests);
#   3. starts vicreg_coordinator in the background on loopback (free gRPC and metrics ports, 2 CPU
#      slots, a temporary state dir);
#   4. submits configs/quickstart.yaml (VICReg, ViT on Fashion-MNIST, 2 ranks under mpirun), scaled to
#      the time budget, shows where the metrics are and checks that they answer, and follows the job
#      with `vicregctl watch` (live progress);
#   5. waits for the scheduled evaluation of the last checkpoint and prints its table: the learned
#      encoder against a random-init encoder and raw pixels, linear probe and kNN; writes the job's
#      self-contained HTML report (vicregctl report) into the run dir (the web UI's URL is printed at 3-4);
#   6. stops the coordinator (also on Ctrl-C, after cancelling the job) and keeps the run directory.
#
# Time budget: --minutes M (or VICREG_QUICKSTART_MINUTES) is the wall time of the WHOLE command,
# install and build included (default 14). Whatever the install and build leave is split into
# evaluation (a fixed estimate) and training: the number of training images (data.limit x
# train.num_epochs) is the remaining seconds times the training rate measured on a 2-core machine
# (VICREG_QUICKSTART_RATE images/s, see docs/QUICKSTART-TUNING.md). A cold build therefore leaves
# less training than a warm one.
#
# Exit codes: 0 the job succeeded and its evaluation ran; 1 a runtime failure (build, coordinator,
# job or evaluation failed); 2 bad usage. Run with --help for every option.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)

# ---- options -------------------------------------------------------------------------------
MINUTES=${VICREG_QUICKSTART_MINUTES:-14}
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
# Calibration (docs/QUICKSTART-TUNING.md): global training images/s of configs/quickstart.yaml with
# 2 ranks on a quiet 2-core machine, seconds of one scheduled evaluation (learned + random-init
# encoder + raw pixels, linear + kNN, at the config's eval limits), and the fixed costs around them.
RATE=${VICREG_QUICKSTART_RATE:-1400}
EVAL_S=${VICREG_QUICKSTART_EVAL_SECONDS:-60}
OVERHEAD_S=${VICREG_QUICKSTART_OVERHEAD_SECONDS:-45}

usage() {
  cat <<EOF
Usage: deploy/quickstart.sh [options]

Trains a VICReg encoder on Fashion-MNIST with 2 ranks through vicreg_coordinator, then prints the
evaluation table (learned encoder vs random-init encoder vs raw pixels; linear probe and kNN).

Options:
  --minutes M        wall-time budget of the whole command, install and build included
                     (default 14; env VICREG_QUICKSTART_MINUTES); training is scaled to fit
  --smoke            reduced run for CI: 2 short epochs on 1024 images, evaluation on 1000/500
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
/usr/share/datasets/fashion-mnist), VICREG_QUICKSTART_RATE / _EVAL_SECONDS / _OVERHEAD_SECONDS
(calibration of the time budget, see docs/QUICKSTART-TUNING.md).
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
if ! is_uint "$RATE" || ((RATE < 1)); then
  die_usage "VICREG_QUICKSTART_RATE: '$RATE' is not valid; use images/s >= 1"
fi
is_uint "$EVAL_S" || die_usage "VICREG_QUICKSTART_EVAL_SECONDS: '$EVAL_S' is not valid; use seconds >= 0"
is_uint "$OVERHEAD_S" || die_usage "VICREG_QUICKSTART_OVERHEAD_SECONDS: '$OVERHEAD_S' is not valid; use seconds >= 0"
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
step() { STEP=$((STEP + 1)); printf '\n\033[1m[%d/6 %s] %s\033[0m\n' "$STEP" "$(mmss "$(elapsed)")" "$*"; }
[[ -t 1 ]] || step() { STEP=$((STEP + 1)); printf '\n[%d/6 %s] %s\n' "$STEP" "$(mmss "$(elapsed)")" "$*"; }

# ---- the training plan: scale data.limit x num_epochs to the time that is left --------------
# Reads train.batch_size and resources.ranks of the job file (top-level YAML sections, 2-space keys).
yaml_get() {  # yaml_get SECTION KEY FILE -> the scalar value, or empty
  awk -v sec="$1:" -v key="$2:" '
    /^[^ #]/ { insec = ($1 == sec) }
    insec && $1 == key { v = $2; sub(/#.*/, "", v); print v; exit }' "$3"
}
TRAIN_IMAGES_TOTAL=60000
plan() {  # plan SECONDS_LEFT -> sets EPOCHS, LIMIT, TRAIN_S, PLAN_SETS
  local left=$1 batch ranks gb images
  batch=$(yaml_get train batch_size "$CONFIG"); ranks=$(yaml_get resources ranks "$CONFIG")
  is_uint "${batch:-x}" || die "cannot read train.batch_size from $CONFIG"
  is_uint "${ranks:-x}" || die "cannot read resources.ranks from $CONFIG"
  gb=$((batch * ranks))
  PLAN_SETS=()
  if [[ "$SMOKE" == 1 ]]; then
    EPOCHS=2; LIMIT=1024; TRAIN_S=0
    PLAN_SETS+=(--set eval.limit_train=1000 --set eval.limit_test=500)
  else
    TRAIN_S=$((left - EVAL_S - OVERHEAD_S))
    if ((TRAIN_S < 60)); then
      echo "quickstart: warning: only $(mmss "$left") of the ${MINUTES}-minute budget is left;" \
           "training for 1 minute anyway (the run will take longer than the budget)" >&2
      TRAIN_S=60
    fi
    images=$((TRAIN_S * RATE))
    # At least 3 epochs (warmup + cosine decay need room); more epochs once all 60k images fit.
    EPOCHS=$(( (images + TRAIN_IMAGES_TOTAL - 1) / TRAIN_IMAGES_TOTAL ))
    ((EPOCHS >= 3)) || EPOCHS=3
    LIMIT=$(( images / EPOCHS / gb * gb ))
    ((LIMIT <= TRAIN_IMAGES_TOTAL)) || LIMIT=$TRAIN_IMAGES_TOTAL
    ((LIMIT >= gb * 4)) || LIMIT=$((gb * 4))
  fi
  PLAN_SETS+=(--set "data.data_dir=$DATA_DIR" --set "data.limit=$LIMIT" --set "train.num_epochs=$EPOCHS"
              --set "eval.epochs=[$EPOCHS]")
  local steps_per_epoch=$((LIMIT / gb))   # drop_last: whole global batches only
  STEPS=$((steps_per_epoch * EPOCHS))
}

if [[ "$PLAN_ONLY" == 1 ]]; then
  plan $((MINUTES * 60))
  echo "plan: ${EPOCHS} epochs x ${LIMIT} images = ${STEPS} steps (training ~$(mmss "$TRAIN_S") at ${RATE} img/s)"
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

# ---- 4. submit and follow ---------------------------------------------------------------------
LEFT=$(( MINUTES * 60 - $(elapsed) ))
plan "$LEFT"
step "training: $(basename "$CONFIG"), ${EPOCHS} epochs x ${LIMIT} images = ${STEPS} steps on 2 ranks"
if [[ "$SMOKE" == 1 ]]; then
  echo "smoke mode: reduced data and evaluation"
else
  echo "budget ${MINUTES} min: $(mmss "$(elapsed)") used, $(mmss "$LEFT") left -> training ~$(mmss "$TRAIN_S")" \
       "(at ~${RATE} img/s), evaluation ~$(mmss "$EVAL_S")"
fi
SUBMIT=("$CTL" --server "$GRPC" submit "$CONFIG" "${PLAN_SETS[@]}")
echo "+ vicregctl submit $(basename "$CONFIG") ${PLAN_SETS[*]}"
JOB_ID=$("${SUBMIT[@]}") || die "vicregctl submit failed (exit $?)"
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
job_state() { "$CTL" --server "$GRPC" status "$JOB_ID" 2>/dev/null | awk 'NR == 1 {print $3}'; }
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

# ---- 5. evaluation ----------------------------------------------------------------------------
step "evaluation of epoch ${EPOCHS} (scheduled by the coordinator when the checkpoint landed)"
EVAL_LOG=$RUN_DIR/eval/epoch_${EPOCHS}_fashion_mnist.log
EVAL_DEADLINE=$(( $(date +%s) + (SMOKE == 1 ? 900 : EVAL_S * 4 + 600) ))
last_line=""
while :; do
  table=$("$CTL" --server "$GRPC" eval "$JOB_ID" 2>&1) || die "vicregctl eval $JOB_ID failed: $table"
  pending=$(awk 'NR > 1 && $3 != "SUCCEEDED" && $3 != "FAILED"' <<<"$table" | wc -l)
  tasks=$(awk 'NR > 1 && NF' <<<"$table" | wc -l)
  if ((tasks > 0 && pending == 0)) && ! grep -q '^no evaluations' <<<"$table"; then break; fi
  if (($(date +%s) > EVAL_DEADLINE)); then die "evaluation did not finish in time (log: $EVAL_LOG)"; fi
  if [[ -r "$EVAL_LOG" ]]; then
    line=$(tr '\r' '\n' <"$EVAL_LOG" | awk 'NF {l = $0} END {print substr(l, 1, 150)}')
    if [[ "$line" != "$last_line" ]]; then echo "  $line"; last_line=$line; fi
  fi
  sleep 2
done
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

# learned vs references, linear probe and kNN
top1() { awk -v m="$1" -v p="$2" 'NR > 1 && $3 == "SUCCEEDED" && $4 == m && $5 == p {print $6; exit}' <<<"$table"; }
pct_num() { tr -d '%' <<<"${1:-}"; }
VERDICT="incomplete"
L_LIN=$(top1 vicreg linear); R_LIN=$(top1 random_init linear); P_LIN=$(top1 raw_pixels linear)
L_KNN=$(top1 vicreg knn); R_KNN=$(top1 random_init knn); P_KNN=$(top1 raw_pixels knn)
echo
printf '%-26s %-14s %-14s\n' "" "linear probe" "kNN (k=20)"
printf '%-26s %-14s %-14s\n' "learned encoder (VICReg)" "${L_LIN:--}" "${L_KNN:--}"
printf '%-26s %-14s %-14s\n' "random-init encoder" "${R_LIN:--}" "${R_KNN:--}"
printf '%-26s %-14s %-14s\n' "raw pixels" "${P_LIN:--}" "${P_KNN:--}"
if [[ -n "$L_LIN" && -n "$R_LIN" && -n "$P_LIN" ]]; then
  if awk -v l="$(pct_num "$L_LIN")" -v r="$(pct_num "$R_LIN")" -v p="$(pct_num "$P_LIN")" 'BEGIN {exit !(l > r && l > p)}'; then
    VERDICT="learned linear probe beats random-init and raw pixels"
  elif awk -v l="$(pct_num "$L_LIN")" -v r="$(pct_num "$R_LIN")" 'BEGIN {exit !(l > r)}'; then
    VERDICT="learned linear probe beats random-init, not raw pixels (train longer: --minutes)"
  else
    VERDICT="learned linear probe does not beat random-init (see Troubleshooting in README.md)"
  fi
fi
echo "verdict: $VERDICT"

# ---- 6. where things are, then stop -----------------------------------------------------------
step "done in $(mmss "$(elapsed)") (install+build $(mmss "$BUILD_DONE_S"), training $(mmss $((TRAIN_DONE_S - BUILD_DONE_S))), evaluation $(mmss $((EVAL_DONE_S - TRAIN_DONE_S))))"
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
    echo "epochs=$EPOCHS"
    echo "limit=$LIMIT"
    echo "steps=$STEPS"
    echo "vicreg_linear=$L_LIN"
    echo "random_init_linear=$R_LIN"
    echo "raw_pixels_linear=$P_LIN"
    echo "vicreg_knn=$L_KNN"
    echo "random_init_knn=$R_KNN"
    echo "raw_pixels_knn=$P_KNN"
    echo "verdict=$VERDICT"
    echo "report=$REPORT"
    echo "build_s=$BUILD_DONE_S"
    echo "train_s=$((TRAIN_DONE_S - BUILD_DONE_S))"
    echo "eval_s=$((EVAL_DONE_S - TRAIN_DONE_S))"
    echo "wall_s=$(elapsed)"
  } >"$SUMMARY"
fi
