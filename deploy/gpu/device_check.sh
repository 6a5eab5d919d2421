#!/usr/bin/env bash
# Builds vicreg with CUDA + NCCL against the machine's PyTorch 2.x (pip wheel) and runs the GPU
# checks and benchmarks in one go; every stage logs to $OUT (default /tmp/vicreg-gpu) and a failing
# stage does not stop the later ones. Meant for a bare CUDA machine with python3 + torch, cmake,
# ninja and g++; Debian's yaml-cpp/spdlog/fmt/prometheus-cpp/CLI11/nlohmann/gtest/stb packages may
# be supplied as .deb files in .devkit/ (unpacked to /opt/deb, never into /).
#   deploy/gpu/device_check.sh [--skip-build]
set -u
OUT=${OUT:-/tmp/vicreg-gpu}
mkdir -p "$OUT"
cd "$(dirname "$0")/../.." || exit 1
JOBS=$(nproc)
exec > >(tee "$OUT/device.log") 2>&1
stage() { echo; echo "=== $* ($(date +%T))"; }

stage "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
g++ --version | head -1; cmake --version | head -1; ninja --version
command -v mpirun || echo "no mpirun"
PY=$(command -v python3)
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))'
TORCH_PREFIX=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')
NCCL_DIR=$("$PY" -c 'import nvidia.nccl, os; print(os.path.dirname(nvidia.nccl.__file__))' 2>/dev/null || true)
echo "torch cmake prefix: $TORCH_PREFIX; pip nccl: ${NCCL_DIR:-none}"

DEB=/opt/deb
if ls .devkit/*.deb >/dev/null 2>&1; then
  mkdir -p "$DEB"
  for f in .devkit/*.deb; do dpkg -x "$f" "$DEB"; done
  # Debian's libz.so points at an absolute /lib path of its own zlib version.
  ln -sf "$(ls /lib/x86_64-linux-gnu/libz.so.1* /usr/lib/x86_64-linux-gnu/libz.so.1* 2>/dev/null | head -1)" \
    "$DEB/usr/lib/x86_64-linux-gnu/libz.so"
fi
export LD_LIBRARY_PATH="$DEB/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

NCCL_ARGS=()
if [[ -n "$NCCL_DIR" && -f "$NCCL_DIR/include/nccl.h" ]]; then
  NCCL_LIB=$(ls "$NCCL_DIR"/lib/libnccl.so* | head -1)
  NCCL_ARGS=(-DVICREG_NCCL_INCLUDE_DIR="$NCCL_DIR/include" -DVICREG_NCCL_LIBRARY="$NCCL_LIB")
fi
MPI=OFF; command -v mpicxx >/dev/null && MPI=ON

if [[ "${1:-}" != "--skip-build" ]]; then
  stage "configure (CUDA + NCCL, MPI=$MPI)"
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DVICREG_WITH_CUDA=ON -DVICREG_WITH_NCCL=ON -DVICREG_WITH_MPI=$MPI -DVICREG_WITH_GLOO=OFF \
    -DVICREG_BUILD_SERVER=OFF -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;$DEB/usr" "${NCCL_ARGS[@]}" \
    -DLIBDL_INCLUDE_DIRS=/usr/include -DLIBRT_INCLUDE_DIRS=/usr/include 2>&1 | tail -40
  stage "build"
  timeout 330 ninja -C build-gpu -k 0 -j"$JOBS" vicreg_worker vicreg_bench vicreg_eval gpu_test 2>&1 \
    | grep -E "error|FAILED|warning: .*deprecated|^\[[0-9]+/[0-9]+\] Linking" | head -150
  timeout 30 ninja -C build-gpu -k 0 -j"$JOBS" vicreg_worker vicreg_bench vicreg_eval gpu_test 2>&1 | tail -3
fi
B=build-gpu

stage "gpu tests"
timeout 300 "$B/tests/gpu/gpu_test" 2>&1 | grep -vE "^\[ RUN|^\[       OK" | tail -60

stage "train benchmark: C++ vs PyTorch, vit_small 96 px, same GPU"
for prec in bf16 fp32; do
  for bs in 256 1024; do
    [[ $prec == fp32 && $bs == 1024 ]] && continue
    timeout 120 "$B/worker/bench/vicreg_bench" train --device cuda --precision "$prec" --model vit_small --image-size 96 \
      --batch-size "$bs" --steps 30 --warmup-steps 5 2>&1 | tail -2
    timeout 120 "$PY" worker/bench/reference_train.py --device cuda --precision "$prec" --model vit_small --image-size 96 \
      --batch-size "$bs" --steps 30 --warmup-steps 5 2>&1 | tail -2
  done
done

stage "augment benchmark on CUDA (two views, batch 256, 32 -> 96 px)"
timeout 60 "$B/worker/bench/vicreg_bench" augment --device cuda --batch-size 256 --source-size 32 --image-size 96 --iters 50 2>&1 | tail -2
timeout 60 "$B/worker/bench/vicreg_bench" augment --device cuda --batch-size 1024 --source-size 32 --image-size 96 --iters 50 2>&1 | tail -2

stage "timm export parity (real timm.create_model strict load)"
timeout 240 "$PY" deploy/gpu/timm_parity.py "$B" "$OUT" 2>&1 | tail -30

stage "done"
