// Reader factories behind OpenDataset (internal to worker/data), one file each, plus the path
// helpers they share.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "worker/data/dataset.h"

namespace vicreg::data {

std::shared_ptr<const Dataset> OpenCifar10(const DatasetSpec& spec);      // cifar.cc
std::shared_ptr<const Dataset> OpenCifar100(const DatasetSpec& spec);     // cifar.cc
// torchvision's Python version, from the folder holding data_batch_1.. / train (cifar.cc picks the layout).
std::shared_ptr<const Dataset> OpenCifar10Python(const DatasetSpec& spec, const std::string& dir);   // cifar_python.cc
std::shared_ptr<const Dataset> OpenCifar100Python(const DatasetSpec& spec, const std::string& dir);  // cifar_python.cc
std::shared_ptr<const Dataset> OpenStl10(const DatasetSpec& spec);        // stl10.cc
std::shared_ptr<const Dataset> OpenIdx(const DatasetSpec& spec);          // idx.cc (mnist, fashion_mnist)
std::shared_ptr<const Dataset> OpenImageFolder(const DatasetSpec& spec);  // image_folder.cc
std::shared_ptr<const Dataset> OpenTensorCache(const DatasetSpec& spec);  // tensor_cache.cc (.safetensors, or .pt below)
// A torch.save'd dict {"images", "labels"} (zip archive) read with LibTorch's unpickler.
std::shared_ptr<const Dataset> OpenTorchCache(const DatasetSpec& spec, const std::string& path);  // torch_cache.cc

// CIFAR's image layout, the same in the binary and the Python versions: 32x32, channel-major
// (1024 R, 1024 G, 1024 B bytes).
constexpr int kCifarSide = 32;
constexpr int64_t kCifarImageBytes = 3 * kCifarSide * kCifarSide;  // 3072

std::string JoinPath(const std::string& dir, const std::string& name);
// <data_dir>/<sub> if that folder exists, else data_dir (users point at either level).
std::string DatasetDir(const std::string& data_dir, const std::string& sub);
// The first existing file among dirs x names, or throws UserError "<what>: missing <names>; looked for: ...".
std::string FindFile(const std::string& what, const std::vector<std::string>& dirs,
                     const std::vector<std::string>& names);
[[noreturn]] void ThrowBadSplit(const std::string& dataset, const std::string& split,
                                const std::vector<std::string>& valid);

}  // namespace vicreg::data
