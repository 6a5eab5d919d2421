// This rank's GPU memory as LibTorch's CUDA caching allocator counts it, for the step reports and
// the vicreg_gpu_memory_* gauges (docs/METRICS.md). Torch-free. CUDA builds (VICREG_WITH_CUDA) read
// the allocator (device_memory_cuda.cc, through worker/torch_compat.h); other builds have no CUDA
// allocator to read (device_memory_none.cc).
#pragma once

#include <cstdint>
#include <optional>

namespace vicreg::train {

struct DeviceMemory {
  int64_t allocated = 0;      // bytes held by tensors now
  int64_t max_allocated = 0;  // their peak since the process started
  int64_t reserved = 0;       // bytes the allocator holds from the driver (allocated + cached)
};

// nullopt in a build without CUDA.
std::optional<DeviceMemory> ReadCudaMemory(int device_index);

}  // namespace vicreg::train
