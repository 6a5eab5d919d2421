// Reads a torch.save archive (the zip format torch.save writes by default) from bytes in memory,
// as torch::jit::pickle_load does, but through a reader that never reads past those bytes.
// LibTorch 1.13's own byte readers (pickle_load's VectorReader, MemoryReadAdapter) copy whatever
// range miniz asks for, and miniz asks for ranges past the end of a truncated or garbled archive
// (a heap overflow found by fuzz_data_torch_cache); here such a read comes back short and miniz
// reports the archive as unreadable. Before LibTorch runs, the zip's central directory and the
// pickle's length fields are checked against the file's size: LibTorch allocates claimed sizes
// before reading them, so a garbled field in a small file would allocate gigabytes (also found by
// the fuzzer). Used for dataset caches (torch_cache.cc) and checkpoints (train/checkpoint.cc).
#pragma once

#include <ATen/core/ivalue.h>

#include <cstddef>

namespace vicreg::data {

// The archive's object (tensors, dicts, lists, str, numbers; any other Python class is refused).
// Throws a std::exception (std::runtime_error from the checks, c10::Error from LibTorch) when the
// bytes are not a readable archive; the caller names the file. `data` must stay valid during the call only (tensors are copied out).
c10::IValue LoadTorchArchive(const void* data, size_t size);

}  // namespace vicreg::data
