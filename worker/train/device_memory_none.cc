// Builds without CUDA (VICREG_WITH_CUDA=OFF): no CUDA caching allocator to read (device_memory.h).
#include "worker/train/device_memory.h"

namespace vicreg::train {

std::optional<DeviceMemory> ReadCudaMemory(int /*device_index*/) { return std::nullopt; }

}  // namespace vicreg::train
