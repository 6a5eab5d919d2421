#include "worker/comm/torch_build_info.h"

#include <algorithm>
#include <string>

#include "worker/comm/communicator.h"
#define VICREG_COMPAT_DEVICES
#include "worker/torch_compat.h"

namespace vicreg::comm {

std::vector<BuildField> TorchBuildFields() {
  std::vector<BuildField> f;
  f.emplace_back("libtorch", TORCH_VERSION);
  const int64_t devices = compat::CudaDeviceCount();  // 0 for a LibTorch without CUDA
  std::string cuda_built;  // common/'s "yes" or "no (built with VICREG_WITH_CUDA=OFF)"
  for (const auto& [k, v] : BuildFields())
    if (k == "cuda") cuda_built = v;
  std::string cuda;
  if (devices > 0 && cuda_built == "yes")
    cuda = "yes (" + std::to_string(devices) + " device(s) visible)";
  else if (devices > 0)
    cuda = "no (" + std::to_string(devices) + " device(s) visible, but vicreg was built with VICREG_WITH_CUDA=OFF)";
  else
    cuda = std::string("no (no CUDA device visible to this LibTorch") +
           (cuda_built == "yes" ? ")" : "; vicreg was built with VICREG_WITH_CUDA=OFF)");
  f.emplace_back("cuda", cuda);
  const auto built = AvailableBackends();
  for (const char* b : {"nccl", "mpi", "gloo"}) {
    const bool have = std::find(built.begin(), built.end(), b) != built.end();
    f.emplace_back(b, have ? std::string("yes") : std::string("no (not built into this vicreg_comm)"));
  }
  return f;
}

}  // namespace vicreg::comm
