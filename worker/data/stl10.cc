// STL-10 binary version (https://cs.stanford.edu/~acoates/stl10/): *_X.bin holds uint8 images
// of 3x96x96 where each channel plane is stored COLUMN-major (the official reader does
// reshape(-1, 3, 96, 96).transpose(0, 3, 2, 1)); *_y.bin holds one label byte 1..10 per image.
// Files are mmap'ed; ReadImage transposes each plane to row-major.
#include <string>
#include <vector>

#include "common/errors.h"
#include "worker/data/mapped_file.h"
#include "worker/data/readers.h"
#include "worker/data/stored_dataset.h"

namespace vicreg::data {
namespace {

constexpr int kStlSide = 96;
constexpr int64_t kStlPlane = kStlSide * kStlSide;
constexpr int64_t kStlImageBytes = 3 * kStlPlane;  // 27648

struct Part {
  std::shared_ptr<const FileBytes> x;
  int64_t first = 0, count = 0;
};

class Stl10Dataset final : public StoredDataset {
 public:
  Stl10Dataset(Geometry geo, int64_t n, std::vector<int64_t> labels, std::vector<Part> parts,
               const std::string& listing)
      : StoredDataset(std::move(geo), n, std::move(labels), listing), parts_(std::move(parts)) {}
  using StoredDataset::ApplyLimit;
  using StoredDataset::SetClassNames;

 protected:
  void ReadImage(int64_t index, uint8_t* dst) const override {
    const Part* part = &parts_[0];
    for (const auto& p : parts_)
      if (index >= p.first) part = &p;
    const uint8_t* src = part->x->data() + (index - part->first) * kStlImageBytes;
    for (int c = 0; c < 3; ++c) {
      const uint8_t* s = src + c * kStlPlane;  // s[x * 96 + y] is the pixel at row y, column x
      uint8_t* d = dst + c * kStlPlane;
      for (int y = 0; y < kStlSide; ++y)
        for (int x = 0; x < kStlSide; ++x) d[y * kStlSide + x] = s[x * kStlSide + y];
    }
  }

 private:
  std::vector<Part> parts_;
};

// Opens <prefix>_X.bin (and <prefix>_y.bin when labeled), appending to parts/labels.
void AddPart(const std::string& dir, const std::string& prefix, bool labeled, std::vector<Part>* parts,
             std::vector<int64_t>* labels, int64_t* total, std::string* listing) {
  const std::string xpath = FindFile("stl10 " + prefix + " images", {dir}, {prefix + "_X.bin"});
  auto x = FileBytes::Map(xpath);
  if (x->size() % kStlImageBytes != 0)
    throw UserError(xpath + ": size " + std::to_string(x->size()) + " bytes is not a multiple of one 3x96x96 image (" +
                    std::to_string(kStlImageBytes) + " bytes): truncated or not an STL-10 binary file");
  const int64_t n = static_cast<int64_t>(x->size() / kStlImageBytes);
  if (n == 0) throw UserError(xpath + ": contains zero images (empty file)");
  *listing += (listing->empty() ? "" : ", ") + xpath;
  if (labeled) {
    const std::string ypath = FindFile("stl10 " + prefix + " labels", {dir}, {prefix + "_y.bin"});
    auto y = FileBytes::Map(ypath);
    if (static_cast<int64_t>(y->size()) != n)
      throw UserError("stl10: inconsistent image/label counts: " + xpath + " holds " + std::to_string(n) +
                      " images but " + ypath + " holds " + std::to_string(y->size()) + " labels (one byte each)");
    for (int64_t i = 0; i < n; ++i) {
      const int v = y->data()[i];
      if (v < 1 || v > 10) ThrowLabelOutOfRange(ypath, i, v, 1, 10);
      labels->push_back(v - 1);
    }
  } else {
    labels->insert(labels->end(), static_cast<size_t>(n), -1);
  }
  parts->push_back(Part{std::move(x), *total, n});
  *total += n;
}

}  // namespace

std::shared_ptr<const Dataset> OpenStl10(const DatasetSpec& spec) {
  const std::string dir = DatasetDir(spec.data_dir, "stl10_binary");
  std::vector<Part> parts;
  std::vector<int64_t> labels;
  int64_t total = 0;
  std::string listing;
  if (spec.split == "train" || spec.split == "train+unlabeled")
    AddPart(dir, "train", true, &parts, &labels, &total, &listing);
  if (spec.split == "test") AddPart(dir, "test", true, &parts, &labels, &total, &listing);
  if (spec.split == "unlabeled" || spec.split == "train+unlabeled")
    AddPart(dir, "unlabeled", false, &parts, &labels, &total, &listing);
  if (parts.empty()) ThrowBadSplit("stl10", spec.split, {"train", "test", "unlabeled", "train+unlabeled"});
  bool any_label = false;
  for (int64_t l : labels) any_label |= l >= 0;
  if (!any_label) labels.clear();
  StoredDataset::Geometry geo{"stl10:" + spec.split, 3, kStlSide, kStlSide, any_label ? 10 : 0};
  auto ds = std::make_shared<Stl10Dataset>(geo, total, std::move(labels), std::move(parts), listing);
  if (any_label)
    ds->SetClassNames({"airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"});
  ds->ApplyLimit(spec.limit);
  return ds;
}

}  // namespace vicreg::data
