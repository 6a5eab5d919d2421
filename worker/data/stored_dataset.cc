#include "worker/data/stored_dataset.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/errors.h"

namespace vicreg::data {

int64_t Dataset::label(int64_t index) const {
  at::Tensor images, labels;
  Fetch({index}, &images, &labels);
  return labels.data_ptr<int64_t>()[0];
}

void ThrowLabelOutOfRange(const std::string& file, int64_t image, int64_t value, int64_t lo, int64_t hi) {
  throw UserError(file + ": label " + std::to_string(value) + " of image " + std::to_string(image) +
                  " is out of range (valid: " + std::to_string(lo) + ".." + std::to_string(hi) + ")");
}

StoredDataset::StoredDataset(Geometry geo, int64_t size, std::vector<int64_t> labels,
                             const std::string& files_for_messages)
    : geo_(std::move(geo)), size_(size), labels_(std::move(labels)) {
  if (size_ <= 0) throw UserError(geo_.name + ": " + files_for_messages + " contains zero images");
  VICREG_CHECK(geo_.channels == 1 || geo_.channels == 3, "channels must be 1 or 3");
  VICREG_CHECK(geo_.height > 0 && geo_.width > 0, "image size must be positive");
  VICREG_CHECK(labels_.empty() || static_cast<int64_t>(labels_.size()) == size_, "one label per image");
}

void StoredDataset::SetStats(std::array<double, 3> mean, std::array<double, 3> std) {
  mean_ = mean;
  std_ = std;
  stats_known_ = true;
}

void StoredDataset::ApplyLimit(int64_t limit) {
  if (limit < 0)
    throw UserError(geo_.name + ": data.limit must be >= 0 (0 = all images), got " + std::to_string(limit));
  if (limit > 0 && limit < size_) {
    size_ = limit;
    if (!labels_.empty()) labels_.resize(static_cast<size_t>(limit));
  }
}

int64_t StoredDataset::label(int64_t index) const {
  VICREG_CHECK(index >= 0 && index < size_, geo_.name + ": index " + std::to_string(index) + " out of range");
  return labels_.empty() ? -1 : labels_[static_cast<size_t>(index)];
}

void StoredDataset::Fetch(const std::vector<int64_t>& indices, at::Tensor* images, at::Tensor* labels) const {
  const int64_t b = static_cast<int64_t>(indices.size());
  const int64_t plane = static_cast<int64_t>(geo_.height) * geo_.width;
  at::Tensor out = at::empty({b, 3, geo_.height, geo_.width}, at::kByte);
  at::Tensor lab = at::empty({b}, at::kLong);
  uint8_t* dst = out.data_ptr<uint8_t>();
  int64_t* ldst = lab.data_ptr<int64_t>();
  for (int64_t k = 0; k < b; ++k) {
    const int64_t i = indices[static_cast<size_t>(k)];
    VICREG_CHECK(i >= 0 && i < size_,
                 geo_.name + ": index " + std::to_string(i) + " out of range [0, " + std::to_string(size_) + ")");
    uint8_t* img = dst + k * 3 * plane;
    ReadImage(i, img);
    if (geo_.channels == 1) {  // grayscale replicated to 3 channels
      std::memcpy(img + plane, img, static_cast<size_t>(plane));
      std::memcpy(img + 2 * plane, img, static_cast<size_t>(plane));
    }
    ldst[k] = labels_.empty() ? -1 : labels_[static_cast<size_t>(i)];
  }
  if (images) *images = std::move(out);
  if (labels) *labels = std::move(lab);
}

void StoredDataset::ComputeStatsOnce() const {
  std::call_once(stats_once_, [this] {
    if (stats_known_) return;
    const int64_t n = std::min(size_, kStatsMaxImages);
    const int64_t plane = static_cast<int64_t>(geo_.height) * geo_.width;
    std::vector<uint8_t> buf(static_cast<size_t>(geo_.channels * plane));
    // Exact integer sums; a strided subset covers the whole file (classes are often sorted).
    uint64_t sum[3] = {0, 0, 0}, sumsq[3] = {0, 0, 0};
    for (int64_t k = 0; k < n; ++k) {
      const int64_t i = k * size_ / n;
      ReadImage(i, buf.data());
      for (int c = 0; c < geo_.channels; ++c) {
        const uint8_t* p = buf.data() + c * plane;
        uint64_t s = 0, s2 = 0;
        for (int64_t j = 0; j < plane; ++j) {
          s += p[j];
          s2 += static_cast<uint64_t>(p[j]) * p[j];
        }
        sum[c] += s;
        sumsq[c] += s2;
      }
    }
    const double count = static_cast<double>(n) * plane;
    for (int c = 0; c < 3; ++c) {
      const int sc = geo_.channels == 1 ? 0 : c;
      const double m = sum[sc] / count / 255.0;
      const double var = std::max(0.0, sumsq[sc] / count / (255.0 * 255.0) - m * m);
      mean_[c] = m;
      // A constant dataset would normalize by zero; fall back to 1 (documented in dataset.h's users).
      std_[c] = var > 1e-12 ? std::sqrt(var) : 1.0;
    }
  });
}

std::array<double, 3> StoredDataset::mean() const {
  ComputeStatsOnce();
  return mean_;
}

std::array<double, 3> StoredDataset::std() const {
  ComputeStatsOnce();
  return std_;
}

}  // namespace vicreg::data
