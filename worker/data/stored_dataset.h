// Base class of every reader (internal to worker/data): a fixed number of uint8 images of one
// size, stored with 1 or 3 channels, plus int64 labels (-1 = unlabeled). A reader only says how
// to copy image i out of its storage (ReadImage); Fetch, limits, grayscale replication and the
// dataset statistics are shared here.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "worker/data/dataset.h"

namespace vicreg::data {

// Images used to estimate mean/std when a dataset has no stored statistics: an evenly strided
// subset of at most this many images (all of them for CIFAR/MNIST test splits and smaller).
constexpr int64_t kStatsMaxImages = 10000;

class StoredDataset : public Dataset {
 public:
  struct Geometry {
    std::string name;  // "cifar10:train"
    int channels = 3;  // 1 or 3, as stored
    int height = 0, width = 0;
    int num_classes = 0;  // 0 = unlabeled
  };

  int64_t size() const override { return size_; }
  int num_classes() const override { return geo_.num_classes; }
  int channels() const override { return geo_.channels; }
  int height() const override { return geo_.height; }
  int width() const override { return geo_.width; }
  std::string name() const override { return geo_.name; }
  std::vector<std::string> class_names() const override { return class_names_; }
  std::array<double, 3> mean() const override;
  std::array<double, 3> std() const override;
  int64_t label(int64_t index) const override;
  void Fetch(const std::vector<int64_t>& indices, at::Tensor* images, at::Tensor* labels) const override;

 protected:
  // labels: one per image, or empty (all -1). Throws UserError naming `geo.name` on zero images.
  StoredDataset(Geometry geo, int64_t size, std::vector<int64_t> labels, const std::string& files_for_messages);
  // Writes image `index` (< size) as uint8 [channels, height, width] to dst. Thread-safe.
  virtual void ReadImage(int64_t index, uint8_t* dst) const = 0;

  void SetClassNames(std::vector<std::string> names) { class_names_ = std::move(names); }
  // Known statistics (0..1 scale) instead of estimating them from the images.
  void SetStats(std::array<double, 3> mean, std::array<double, 3> std);
  // Keep only the first `limit` images (0 = all).
  void ApplyLimit(int64_t limit);

 private:
  void ComputeStatsOnce() const;

  Geometry geo_;
  int64_t size_ = 0;
  std::vector<int64_t> labels_;
  std::vector<std::string> class_names_;
  mutable std::once_flag stats_once_;
  mutable std::array<double, 3> mean_{}, std_{};
  bool stats_known_ = false;
};

// "<file>: label <value> of image <image> is out of range (valid: lo..hi)"; throws UserError.
[[noreturn]] void ThrowLabelOutOfRange(const std::string& file, int64_t image, int64_t value, int64_t lo, int64_t hi);

}  // namespace vicreg::data
