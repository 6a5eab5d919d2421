#!/usr/bin/env bash
# The GPU machine's single entry point: configure against PyTorch's LibTorch (CUDA + NCCL), build the
# worker, the bench, vicreg_eval and the gpu tests, run the gpu-labeled tests, measure the bf16
# matmul peak, run the train benchmarks (C++ vs the Python reference, eager and torch.compile) and
# the extras, and write every log plus OUTDIR/summary.md (stage -> result/time, benchmark table with
# ratios and MFU). Every stage is time-boxed; a failed stage does not stop the later ones; the whole
# run stops starting stages when the time budget (default 540 s) is spent.
#
#   tests/gpu/run_on_device.sh OUTDIR [--skip-build] [--budget SECONDS] [--dry-run]
#
#   --skip-build  reuse build-gpu/ (a warm machine, second try)
#   --budget S    wall-time budget of the whole run (default 540: under the device tool's 600 s/command)
#   --dry-run     this CPU machine: configure into $SCRATCH/build-dry against the local (CPU) LibTorch,
#                 list the build (ninja -t commands, nothing compiled), and run the tests and benches
#                 with tiny CPU settings on the binaries already in $VICREG_BUILD_DIR (default build/);
#                 checks the script, not the GPU.
# Environment: PY (python with torch; default: python3 if it imports torch, else /usr/bin/python3),
# VICREG_BUILD_DIR (build directory; default build-gpu, or build for --dry-run), VICREG_SCRATCH (bulky
# work files: datasets, checkpoints; default /tmp/vicreg-gpu-scratch, kept out of OUTDIR so that what
# comes back from the device machine stays small).
#
# On the device machine (the `run` tool): command `bash tests/gpu/run_on_device.sh $OUT/gpu`,
# carry [".devkit"] (Debian .debs of yaml-cpp/spdlog/fmt/prometheus-cpp/CLI11/nlohmann/gtest/stb;
# unpacked with dpkg -x to /opt/deb, never into /), timeout_s 600. tests/gpu/NOTES.md keeps the runs.
set -u

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }
OUT=""; SKIP_BUILD=0; DRY=0; BUDGET=540
while (($#)); do
  case $1 in
    --skip-build) SKIP_BUILD=1 ;;
    --dry-run) DRY=1 ;;
    --budget) BUDGET=${2:?--budget needs seconds}; shift ;;
    --budget=*) BUDGET=${1#--budget=} ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "run_on_device.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) [[ -z $OUT ]] || { echo "run_on_device.sh: one OUTDIR only" >&2; exit 2; }; OUT=$1 ;;
  esac
  shift
done
[[ -n $OUT ]] || { usage >&2; exit 2; }
[[ $BUDGET =~ ^[0-9]+$ ]] || { echo "run_on_device.sh: --budget must be seconds" >&2; exit 2; }

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
mkdir -p "$OUT/logs" "$OUT/bench" || exit 1
OUT=$(cd "$OUT" && pwd)
rm -f "$OUT"/bench/*.json "$OUT/stages.tsv" "$OUT/summary.md"
exec > >(tee "$OUT/console.log") 2>&1

START=$(date +%s)
DEADLINE=$((START + BUDGET))
RESERVE_S=8      # kept back for the summary
MIN_STAGE_S=10   # a stage with less time left is skipped
JOBS=$(nproc)

if [[ -z ${PY:-} ]]; then
  PY=python3
  if ! python3 -c 'import torch' >/dev/null 2>&1 && [[ -x /usr/bin/python3 ]]; then PY=/usr/bin/python3; fi
fi
if ((DRY)); then
  B=${VICREG_BUILD_DIR:-build}
  DEVICE=cpu; PREC=fp32; PREC2=fp32
  TRAIN_ARGS=(--model vit_small --image-size 32 --steps 2 --warmup-steps 1 --threads 2)
  BATCH_MAIN=8; BATCH_BIG=16
else
  B=${VICREG_BUILD_DIR:-build-gpu}
  CFG_DIR=$B
  DEVICE=cuda; PREC=bf16; PREC2=fp32
  TRAIN_ARGS=(--model vit_small --image-size 96 --steps 30 --warmup-steps 5)
  BATCH_MAIN=256; BATCH_BIG=1024
fi
DEB=""
SCRATCH=${VICREG_SCRATCH:-/tmp/vicreg-gpu-scratch}
mkdir -p "$SCRATCH" || exit 1
((DRY)) && CFG_DIR=$SCRATCH/build-dry
export ROOT OUT B CFG_DIR PY JOBS DRY DEVICE SCRATCH

elapsed() { local s=$(( $(date +%s) - START )); printf '%d:%02d' $((s / 60)) $((s % 60)); }
say() { echo "[$(elapsed)] $*"; }

# record NAME STATUS SECONDS LIMIT NOTE  (tab-separated, one line per stage)
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "${5:-}" >> "$OUT/stages.tsv"; }

# stage NAME LIMIT_S CMD... : CMD under `timeout`, stdout+stderr to logs/NAME.log; returns CMD's status.
stage() {
  local name=$1 limit=$2; shift 2
  local left=$(( DEADLINE - $(date +%s) - RESERVE_S ))
  if (( left < MIN_STAGE_S )); then
    record "$name" skipped 0 "$limit" "time budget spent"; say "$name: skipped (time budget spent)"; return 99
  fi
  (( limit > left )) && limit=$left
  local t0 rc dt status
  t0=$(date +%s)
  timeout -k 10 "$limit" "$@" > "$OUT/logs/$name.log" 2>&1
  rc=$?
  dt=$(( $(date +%s) - t0 ))
  case $rc in
    0) status=pass ;;
    124|137) status=timeout ;;
    *) status=fail ;;
  esac
  record "$name" "$status" "$dt" "$limit" "$([[ $status == fail ]] && echo "exit $rc")"
  say "$name: $status (${dt}s of ${limit}s)"
  if [[ $status != pass ]]; then tail -n 15 "$OUT/logs/$name.log" | sed 's/^/    | /'; fi
  return "$rc"
}

skip() { record "$1" skipped 0 - "$2"; say "$1: skipped ($2)"; }

# bench NAME LIMIT CMD... : a stage whose last JSON line goes to bench/NAME.json
bench() {
  local name=$1
  stage "$@"
  local rc=$?
  grep '^{' "$OUT/logs/$name.log" 2>/dev/null > "$OUT/bench/$name.json"
  [[ -s $OUT/bench/$name.json ]] || rm -f "$OUT/bench/$name.json"
  [[ -s $OUT/bench/$name.json ]] && say "  $(cut -c1-220 "$OUT/bench/$name.json")"
  return $rc
}

write_summary() {
  trap - EXIT
  local s="$OUT/summary.md" total=$(( $(date +%s) - START ))
  {
    echo "# GPU run summary"
    echo
    echo "- when: $(date -u '+%Y-%m-%d %H:%M UTC'); total $((total / 60))m$((total % 60))s of a ${BUDGET}s budget$( ((DRY)) && echo '; DRY RUN on a CPU machine (tiny CPU settings, no GPU numbers)')"
    echo "- commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes, or no git metadata)')"
    if [[ -s $OUT/logs/machine.log ]]; then
      grep -E '^(gpu|torch|timm|python|g\+\+|cmake|triton|Python.h)' "$OUT/logs/machine.log" | sed 's/^/- /'
    fi
    echo
    echo "| stage | result | time (s) | limit (s) | note |"
    echo "|---|---|---:|---:|---|"
    local name status dt limit note
    while IFS=$'\t' read -r name status dt limit note; do
      echo "| $name | $status | $dt | $limit | $note |"
    done < "$OUT/stages.tsv"
    echo
    echo "Logs: logs/<stage>.log; bench JSON lines: bench/<stage>.json; console: console.log."
    echo
    echo "## Train benchmark"
    echo
    if ((DRY)); then
      echo "vicreg_bench train / reference_train.py, ${TRAIN_ARGS[*]}, batch $BATCH_MAIN/$BATCH_BIG, $DEVICE $PREC (dry run)."
    else
      echo "vit_small (timm vit_small_patch16_224 at img_size 96) + projector 384-2048-2048-2048, two views, VICReg loss,"
      echo "AdamW, clip 1.0, collapse diagnostics every step; synthetic inputs; same GPU; 30 measured steps after 5 warm-up."
    fi
    echo
    timeout 30 "$PY" "$ROOT/tests/gpu/mfu.py" table "$OUT/bench" 2> "$OUT/logs/table.log" || echo "(benchmark table failed: logs/table.log)"
  } > "$s"
  echo
  echo "================ $s"
  cat "$s"
}
trap write_summary EXIT
trap 'say "interrupted"; exit 143' TERM INT

# ---- stage bodies (run under `timeout` through bash -c, so they are exported) --------------------
machine_info() {
  echo "host: $(hostname) cores: $(nproc) mem: $(free -g 2>/dev/null | awk '/Mem:/{print $2 " GiB"}')"
  if command -v nvidia-smi >/dev/null; then
    echo "gpu: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)"
  else
    echo "gpu: none (no nvidia-smi)"
  fi
  echo "g++: $(g++ --version | head -1)"
  echo "cmake: $(cmake --version | head -1); ninja $(ninja --version)"
  echo "mpirun: $(command -v mpirun || echo none)"
  "$PY" - <<'PY'
import os, sys, sysconfig
print("python:", sys.executable, sys.version.split()[0])
import torch
cuda = torch.cuda.is_available()
print("torch:", torch.__version__, "cuda", torch.version.cuda, "device", torch.cuda.get_device_name(0) if cuda else "none",
      "| cmake prefix", torch.utils.cmake_prefix_path)
try:
    import timm
    print("timm:", timm.__version__)
except Exception as e:
    print("timm: not importable (%s)" % e)
try:
    import triton
    print("triton:", triton.__version__)
except Exception as e:
    print("triton: not importable (%s)" % e)
inc = sysconfig.get_paths()["include"]
print("Python.h:", "present" if os.path.exists(os.path.join(inc, "Python.h")) else "MISSING in %s (torch.compile/Triton builds a C helper)" % inc)
PY
}

devkit_unpack() {
  # .debs in .devkit/ -> dpkg -x into $DEB; a .devkit/ that already holds an unpacked usr/ is used as is.
  if [[ -d $ROOT/.devkit/usr ]]; then echo "using unpacked $ROOT/.devkit"; exit 0; fi
  mkdir -p "$DEB"
  local f
  for f in "$ROOT"/.devkit/*.deb; do dpkg -x "$f" "$DEB" || exit 1; echo "unpacked $(basename "$f")"; done
  # Debian's libz.so points at an absolute /lib path of its own zlib version.
  local z
  z=$(ls /lib/x86_64-linux-gnu/libz.so.1* /usr/lib/x86_64-linux-gnu/libz.so.1* 2>/dev/null | head -1)
  [[ -n $z ]] && ln -sf "$z" "$DEB/usr/lib/x86_64-linux-gnu/libz.so"
  true
}

configure() {
  local torch_prefix nccl_dir mpi=OFF prefix args=()
  torch_prefix=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)') || exit 1
  prefix=""
  [[ -d $torch_prefix ]] && prefix=$torch_prefix
  [[ -n $DEB ]] && prefix="${prefix:+$prefix;}$DEB/usr"
  command -v mpicxx >/dev/null && mpi=ON
  if ((DRY)); then
    args=(-DVICREG_WITH_CUDA=OFF -DVICREG_WITH_NCCL=OFF -DVICREG_WITH_GLOO=OFF)
  else
    args=(-DVICREG_WITH_CUDA=ON -DVICREG_WITH_NCCL=ON -DVICREG_WITH_GLOO=OFF
          -DLIBDL_INCLUDE_DIRS=/usr/include -DLIBRT_INCLUDE_DIRS=/usr/include)
    nccl_dir=$("$PY" -c 'import nvidia.nccl, os; print(os.path.dirname(nvidia.nccl.__file__))' 2>/dev/null || true)
    if [[ -n $nccl_dir && -f $nccl_dir/include/nccl.h ]]; then
      args+=(-DVICREG_NCCL_INCLUDE_DIR="$nccl_dir/include" -DVICREG_NCCL_LIBRARY="$(ls "$nccl_dir"/lib/libnccl.so* | head -1)")
    fi
  fi
  [[ -n $prefix ]] && args+=(-DCMAKE_PREFIX_PATH="$prefix")
  echo "torch cmake prefix: $torch_prefix; CMAKE_PREFIX_PATH=$prefix; MPI=$mpi"
  cmake -S "$ROOT" -B "$CFG_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DVICREG_BUILD_SERVER=OFF \
    -DVICREG_WITH_MPI=$mpi "${args[@]}"
}

build() {
  local targets=(vicreg_worker vicreg_bench vicreg_eval gpu_test)
  if ((DRY)); then
    # plan only (this machine has 2 cores): the targets exist and what building them takes; the
    # tests and benches below use the prebuilt $B
    local n
    n=$(ninja -C "$CFG_DIR" -t commands "${targets[@]}" | wc -l)
    ((PIPESTATUS[0] == 0)) || exit 1
    echo "dry run: $n build commands for ${targets[*]} (not run)"
    exit 0
  fi
  ninja -C "$CFG_DIR" -k 0 -j"$JOBS" "${targets[@]}"
}

gpu_tests() {
  cd "$B" || exit 1
  ctest -L gpu --no-tests=error --output-on-failure --timeout 170
}
export -f machine_info devkit_unpack configure build gpu_tests

# ---- the run -------------------------------------------------------------------------------------
say "run_on_device.sh -> $OUT (budget ${BUDGET}s, build dir $B, python $PY$( ((DRY)) && echo ', DRY RUN'))"
stage machine 40 bash -c machine_info

if ((DRY)); then
  skip devkit "dry run: this machine's packages"
elif compgen -G "$ROOT/.devkit/*.deb" >/dev/null || [[ -d $ROOT/.devkit/usr ]]; then
  if [[ -d $ROOT/.devkit/usr ]]; then DEB=$ROOT/.devkit
  elif mkdir -p /opt/deb 2>/dev/null && [[ -w /opt/deb ]]; then DEB=/opt/deb
  else DEB=$SCRATCH/deb
  fi
  export DEB
  stage devkit 60 bash -c devkit_unpack
else
  skip devkit "no .devkit/ (carry [\".devkit\"])"
fi
if [[ -n $DEB ]]; then
  export LD_LIBRARY_PATH="$DEB/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
export DEB

if ((SKIP_BUILD)); then
  skip configure "--skip-build"; skip build "--skip-build"
else
  if stage configure 90 bash -c configure; then
    stage build 330 bash -c build
  else
    skip build "configure did not pass"
  fi
fi

stage gpu_tests 180 bash -c gpu_tests
stage flops_selftest 90 "$PY" tests/gpu/mfu.py self-test

if ((DRY)); then
  bench matmul_peak 60 "$PY" tests/gpu/mfu.py peak --device cpu --dtype fp32 --sizes 256,512 --seconds 0.1
else
  bench matmul_peak 60 "$PY" tests/gpu/mfu.py peak --device cuda --dtype bf16 --sizes 4096,8192,16384
fi

CPP=("$B/worker/bench/vicreg_bench" train --device "$DEVICE")
REF=("$PY" worker/bench/reference_train.py --device "$DEVICE")
# The headline comparison first: bf16, global batch 256, C++ vs Python eager vs Python torch.compile.
bench "bench_cpp_${PREC}_b$BATCH_MAIN" 90 "${CPP[@]}" --precision "$PREC" "${TRAIN_ARGS[@]}" --batch-size "$BATCH_MAIN"
bench "bench_py_eager_${PREC}_b$BATCH_MAIN" 90 "${REF[@]}" --precision "$PREC" "${TRAIN_ARGS[@]}" --batch-size "$BATCH_MAIN"
bench "bench_py_compile_${PREC}_b$BATCH_MAIN" 240 "${REF[@]}" --precision "$PREC" "${TRAIN_ARGS[@]}" --batch-size "$BATCH_MAIN" --compile

# Extras, most useful first; each only if the budget still allows it.
if ((DRY)); then
  stage worker_steps 120 env WT_DEVICE=cpu WT_PRECISION=fp32 \
    WT_MODEL_YAML='{backbone_name: vit_custom, image_size: 32, patch_size: 8, embed_dim: 64, depth: 2, num_heads: 2}' \
    bash deploy/gpu/worker_throughput.sh "$B" "$SCRATCH" 32 20
else
  stage worker_bf16_200steps 120 bash deploy/gpu/worker_throughput.sh "$B" "$SCRATCH" 256 200
fi
grep -h "^{" "$OUT"/logs/worker_*.log 2>/dev/null | tail -1 > "$OUT/bench/worker.json"
[[ -s $OUT/bench/worker.json ]] || rm -f "$OUT/bench/worker.json"
bench "bench_cpp_${PREC}_b$BATCH_BIG" 60 "${CPP[@]}" --precision "$PREC" "${TRAIN_ARGS[@]}" --batch-size "$BATCH_BIG"
bench "bench_py_eager_${PREC}_b$BATCH_BIG" 60 "${REF[@]}" --precision "$PREC" "${TRAIN_ARGS[@]}" --batch-size "$BATCH_BIG"
if "$PY" -c 'import timm' >/dev/null 2>&1; then
  stage timm_parity 120 "$PY" deploy/gpu/timm_parity.py "$B" "$SCRATCH"
else
  skip timm_parity "timm not importable"
fi
if ((DRY)); then
  bench augment 45 "$B/worker/bench/vicreg_bench" augment --device cpu --batch-size 16 --source-size 32 --image-size 32 --iters 2
else
  bench augment_cuda_b256 45 "$B/worker/bench/vicreg_bench" augment --device cuda --batch-size 256 --source-size 32 --image-size 96 --iters 50
fi
if ((!DRY)); then
  bench "bench_cpp_${PREC2}_b$BATCH_MAIN" 60 "${CPP[@]}" --precision "$PREC2" "${TRAIN_ARGS[@]}" --batch-size "$BATCH_MAIN"
  bench "bench_py_eager_${PREC2}_b$BATCH_MAIN" 60 "${REF[@]}" --precision "$PREC2" "${TRAIN_ARGS[@]}" --batch-size "$BATCH_MAIN"
fi
say "done"
