// CUDA builds: the caching allocator's statistics (device_memory.h).
#define VICREG_COMPAT_CUDA
#include "worker/torch_compat.h"
#include "worker/train/device_memory.h"

namespace vicreg::train {

std::optional<DeviceMemory> ReadCudaMemory(int device_index) {
  const compat::CudaAllocatorBytes b = compat::CudaAllocatorStats(static_cast<c10::DeviceIndex>(device_index));
  return DeviceMemory{b.allocated, b.max_allocated, b.reserved};
}

}  // namespace vicreg::train
