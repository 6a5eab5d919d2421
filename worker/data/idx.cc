// MNIST-format IDX files (http://yann.lecun.com/exdb/mnist/), gzipped or not: images
// magic 2051 (0x00000803: unsigned byte, 3 dims) + big-endian N, rows, cols + N*rows*cols bytes;
// labels magic 2049 (0x00000801: unsigned byte, 1 dim) + N + N bytes. Used by mnist and
// fashion_mnist (Fashion-MNIST uses the MNIST file names and format).
#include <cstring>
#include <string>
#include <vector>

#include "common/errors.h"
#include "worker/data/mapped_file.h"
#include "worker/data/readers.h"
#include "worker/data/stored_dataset.h"

namespace vicreg::data {
namespace {

constexpr uint32_t kImagesMagic = 2051;
constexpr uint32_t kLabelsMagic = 2049;

uint32_t BigEndian32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

std::string Hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08x", v);
  return buf;
}

class IdxDataset final : public StoredDataset {
 public:
  IdxDataset(Geometry geo, int64_t n, std::vector<int64_t> labels, std::shared_ptr<const FileBytes> images,
             const std::string& listing)
      : StoredDataset(std::move(geo), n, std::move(labels), listing), images_(std::move(images)) {
    plane_ = static_cast<int64_t>(height()) * width();
  }
  using StoredDataset::ApplyLimit;
  using StoredDataset::SetClassNames;

 protected:
  void ReadImage(int64_t index, uint8_t* dst) const override {
    std::memcpy(dst, images_->data() + 16 + index * plane_, static_cast<size_t>(plane_));
  }

 private:
  std::shared_ptr<const FileBytes> images_;
  int64_t plane_ = 0;
};

}  // namespace

std::shared_ptr<const Dataset> OpenIdx(const DatasetSpec& spec) {
  const bool fashion = spec.name == "fashion_mnist";
  std::string prefix;
  if (spec.split == "train")
    prefix = "train";
  else if (spec.split == "test")
    prefix = "t10k";
  else
    ThrowBadSplit(spec.name, spec.split, {"train", "test"});

  const std::vector<std::string> dirs = {spec.data_dir,
                                         JoinPath(spec.data_dir, fashion ? "FashionMNIST/raw" : "MNIST/raw")};
  const std::string what =
      spec.name + " " + spec.split + " split" +
      (fashion ? " (Debian's dataset-fashion-mnist installs it in /usr/share/datasets/fashion-mnist)" : "");
  const std::string ipath = FindFile(what, dirs, {prefix + "-images-idx3-ubyte", prefix + "-images-idx3-ubyte.gz"});
  const std::string lpath = FindFile(what, dirs, {prefix + "-labels-idx1-ubyte", prefix + "-labels-idx1-ubyte.gz"});

  auto images = FileBytes::Open(ipath);
  if (images->size() < 16)
    throw UserError(ipath + ": truncated: expected a 16-byte IDX header, found " + std::to_string(images->size()) +
                    " bytes");
  const uint32_t imagic = BigEndian32(images->data());
  if (imagic != kImagesMagic)
    throw UserError(ipath + ": wrong magic: expected 2051 (0x00000803, IDX unsigned-byte 3-D images), found " +
                    std::to_string(imagic) + " (" + Hex(imagic) + ")");
  const int64_t n = BigEndian32(images->data() + 4);
  const int64_t rows = BigEndian32(images->data() + 8);
  const int64_t cols = BigEndian32(images->data() + 12);
  if (n == 0) throw UserError(ipath + ": contains zero images (header count is 0)");
  if (rows <= 0 || cols <= 0 || rows > 65536 || cols > 65536)
    throw UserError(ipath + ": invalid image size " + std::to_string(rows) + "x" + std::to_string(cols) +
                    " in the header");
  const uint64_t expect = 16 + static_cast<uint64_t>(n) * rows * cols;
  if (images->size() != expect)
    throw UserError(ipath + ": " + (images->size() < expect ? "truncated" : "trailing bytes") + ": the header says " +
                    std::to_string(n) + " images of " + std::to_string(rows) + "x" + std::to_string(cols) +
                    ", expected " + std::to_string(expect) + " bytes, found " + std::to_string(images->size()));

  auto lab = FileBytes::Open(lpath);
  if (lab->size() < 8)
    throw UserError(lpath + ": truncated: expected an 8-byte IDX header, found " + std::to_string(lab->size()) +
                    " bytes");
  const uint32_t lmagic = BigEndian32(lab->data());
  if (lmagic != kLabelsMagic)
    throw UserError(lpath + ": wrong magic: expected 2049 (0x00000801, IDX unsigned-byte 1-D labels), found " +
                    std::to_string(lmagic) + " (" + Hex(lmagic) + ")");
  const int64_t nl = BigEndian32(lab->data() + 4);
  if (lab->size() != 8 + static_cast<uint64_t>(nl))
    throw UserError(lpath + ": " + (lab->size() < 8 + static_cast<uint64_t>(nl) ? "truncated" : "trailing bytes") +
                    ": the header says " + std::to_string(nl) + " labels, expected " + std::to_string(8 + nl) +
                    " bytes, found " + std::to_string(lab->size()));
  if (nl != n)
    throw UserError(spec.name + ": inconsistent image/label counts: " + ipath + " holds " + std::to_string(n) +
                    " images but " + lpath + " holds " + std::to_string(nl) + " labels");
  std::vector<int64_t> labels(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int v = lab->data()[8 + i];
    if (v > 9) ThrowLabelOutOfRange(lpath, i, v, 0, 9);
    labels[static_cast<size_t>(i)] = v;
  }
  StoredDataset::Geometry geo{spec.name + ":" + spec.split, 1, static_cast<int>(rows), static_cast<int>(cols), 10};
  auto ds = std::make_shared<IdxDataset>(geo, n, std::move(labels), std::move(images), ipath + ", " + lpath);
  if (fashion)
    ds->SetClassNames(
        {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"});
  else
    ds->SetClassNames({"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"});
  ds->ApplyLimit(spec.limit);
  return ds;
}

}  // namespace vicreg::data
