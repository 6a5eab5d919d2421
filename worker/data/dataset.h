// Image datasets (DESIGN.md section 5). A Dataset holds uint8 images of one fixed size and
// integer labels, memory-mapped or loaded once per process; readers for each official format
// live in their own files and are created through OpenDataset.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace vicreg::data {

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual int num_classes() const = 0;          // 0 = unlabeled
  virtual int channels() const = 0;             // as stored (1 or 3); Fetch always returns 3
  virtual int height() const = 0;
  virtual int width() const = 0;
  virtual std::string name() const = 0;         // "cifar10:train" etc., for messages
  // Per-channel mean/std of the images on the 0..1 scale (3 values, grayscale replicated).
  virtual std::array<double, 3> mean() const = 0;
  virtual std::array<double, 3> std() const = 0;
  // images: uint8 [B, 3, H, W] (grayscale replicated), labels: int64 [B] (-1 if unlabeled).
  // Thread-safe: called concurrently from loader threads.
  virtual void Fetch(const std::vector<int64_t>& indices, at::Tensor* images, at::Tensor* labels) const = 0;
};

struct DatasetSpec {
  std::string name;        // cifar10 | cifar100 | stl10 | fashion_mnist | mnist | image_folder | tensor_cache
  std::string data_dir;
  std::string split;       // train | test | unlabeled | train+unlabeled
  int64_t limit = 0;       // first N (0 = all)
};

// Opens (and caches per process: the same spec returns the same instance). Throws UserError
// naming the file, the expected and found size/magic.
std::shared_ptr<const Dataset> OpenDataset(const DatasetSpec& spec);

}  // namespace vicreg::data
