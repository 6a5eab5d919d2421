// at::Tensor <-> safetensors files (common/safetensors.h is torch-free; this is the torch side).
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace vicreg::model {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

struct TensorFile {
  NamedTensors tensors;                         // in file (data offset) order, CPU, owning copies
  std::map<std::string, std::string> metadata;  // "__metadata__"
};

// Throws UserError naming the file (missing, truncated, bad header, unsupported dtype).
TensorFile ReadTensorFile(const std::string& path);
// Writes CPU copies of the tensors (bool/uint8/int8/int16/int32/int64/fp16/bf16/fp32/fp64),
// atomically (tmp + fsync + rename). Creates the parent directory.
void WriteTensorFile(const std::string& path, const NamedTensors& tensors,
                     const std::map<std::string, std::string>& metadata = {});

}  // namespace vicreg::model
