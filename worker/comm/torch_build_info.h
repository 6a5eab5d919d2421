// The --version fields of binaries that link LibTorch (vicreg_worker, vicreg_eval, vicreg_bench), on
// top of common/build_info.h's: the LibTorch version, CUDA as this process sees it (devices visible,
// or why none), and the communicators compiled into vicreg_comm (comm::AvailableBackends).
#pragma once

#include <vector>

#include "common/build_info.h"

namespace vicreg::comm {

// libtorch, cuda, nccl, mpi, gloo; pass to VersionText / PrintVersionIfAsked.
std::vector<BuildField> TorchBuildFields();

}  // namespace vicreg::comm
