#!/usr/bin/env bash
# Installs every Debian package vicreg needs to build, test and run the quickstart.
# Idempotent: packages already installed are skipped by apt; re-running is cheap.
# Usage: deploy/install-deps.sh [--no-test-tools]
set -euo pipefail

# Build toolchain.
BUILD=(cmake ninja-build g++ ccache pkg-config git curl ca-certificates)
# Libraries the C++ code links (see docs/ARCHITECTURE.md "Dependencies" for why each one).
LIBS=(
  libtorch-dev libopenblas0-pthread libgloo-dev          # tensors/autograd; fast BLAS; c10d headers need gloo
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler  # coordinator API
  libyaml-cpp-dev                                         # configs and job files
  prometheus-cpp-dev                                      # /metrics endpoints
  libcpp-httplib-dev                                      # HTTP server: /metrics, /sd, web UI + JSON API
  libspdlog-dev libfmt-dev                                # logging
  libopenmpi-dev openmpi-bin                              # multi-rank launch + MPI communicator
  libgtest-dev libgmock-dev googletest                    # tests
  libsqlite3-dev                                          # coordinator job store
  nlohmann-json3-dev                                      # metrics.jsonl, eval results, JSON output
  libcli11-dev                                            # command-line parsing
  zlib1g-dev                                              # gzipped IDX datasets
  libstb-dev                                              # JPEG/PNG decoding for image-folder datasets
)
# Runtime/test tools: independent references, real Prometheus, real Slurm, the real dataset.
TOOLS=(
  python3 python3-torch python3-torchvision python3-grpcio python3-protobuf grpc-proto
  python3-numpy python3-sklearn python3-yaml
  python3-jsonschema                                      # tests/common: configs/ against docs/job.schema.json
  prometheus slurm-wlm munge dataset-fashion-mnist
  iproute2 util-linux                                     # tests/cluster: namespaces, bridge, veth pairs
  shellcheck yamllint procps psmisc
  zsh                                                     # tests/deploy: the zsh completion (completions/_vicreg)
  clang libclang-rt-14-dev llvm                           # CI's sanitizer and fuzz stages (ASan/UBSan/TSan, libFuzzer, symbolizer)
  chromium chromium-driver python3-selenium              # web UI tests in headless Chromium (tests/browser)
)

want=("${BUILD[@]}" "${LIBS[@]}")
if [[ "${1:-}" != "--no-test-tools" ]]; then want+=("${TOOLS[@]}"); fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#want[@]} packages already installed"
  exit 0
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "install-deps: installing ${#missing[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "install-deps: done"
