// Image datasets (docs/ARCHITECTURE.md "Data"). A Dataset holds uint8 images of one fixed size and
// integer labels, memory-mapped or loaded once per process; readers for each official format
// live in their own files and are created through OpenDataset:
//
//   name           data_dir holds                                      splits
//   cifar10        cifar-10-batches-bin/ (or its files directly):       train (data_batch_1..5.bin), test
//   (test_batch.bin)
//                  records of 1 label byte + 3072 pixel bytes (RGB planes, row-major)
//   cifar100       cifar-100-binary/ (or its files): train.bin, test.bin; records of coarse + fine label
//                  bytes + 3072 pixels; the FINE label (100 classes) is used
//                  cifar10/cifar100 also read torchvision's Python version: cifar-10-batches-py/
//                  (data_batch_1..5, test_batch, batches.meta) and cifar-100-python/ (train, test, meta),
//                  or those files directly in data_dir, when no binary version is there; pickles read by
//                  a data-only reader (pickle_data.h: nothing in the file is ever executed)
//   stl10          stl10_binary/ (or its files): train_X.bin/train_y.bin, test_X.bin/test_y.bin,
//                  unlabeled_X.bin; 96x96x3 stored column-major per channel (transposed on read);
//                  labels 1..10 -> 0..9. Splits train, test, unlabeled, train+unlabeled (labels -1
//                  for the unlabeled part)
//   fashion_mnist  IDX files, gzipped or not: train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz],
//   mnist          t10k-*; also looked for under FashionMNIST/raw/ or MNIST/raw/ (torchvision's layout).
//                  Debian's dataset-fashion-mnist installs them in /usr/share/datasets/fashion-mnist
//   image_folder   <data_dir>/<split>/<class>/*.{jpg,jpeg,png} (or <data_dir>/<class>/... for split
//                  train when <data_dir>/train does not exist); classes = sorted folder names; decoded
//                  with stb_image on Fetch. spec.resize 0: every image must have the size of the
//                  first one (checked at open from the headers); N > 0: shorter side resized to N
//                  (antialiased bilinear), then center-cropped to N x N
//   tensor_cache   a .safetensors file (data_dir itself, or <data_dir>/<split>.safetensors): `images`
//                  uint8 [N,C,H,W] (C 1 or 3) or [N,H,W,C] (metadata layout=NHWC, or inferred when
//                  only the last dim is 1/3) or [N,H,W]; `labels` int64 [N] (-1 = unlabeled);
//                  metadata: num_classes, classes (JSON list), mean, std (JSON lists). Written by
//                  ConvertToTensorCache. Or a torch.save'd .pt / .pth (data_dir itself, or
//                  <data_dir>/<split>.pt when no .safetensors): {"images": uint8 [N,H,W,C] / [N,C,H,W] /
//                  [N,H,W] or float in 0..1, "labels": int64 [N]}, read with LibTorch's unpickler
//
// Memory: CIFAR, STL-10, uncompressed IDX and tensor caches are mmap'ed (nothing copied, the page
// cache is shared by the ranks of a node); gzipped IDX is decompressed into memory once.
// mean()/std(): stored statistics (tensor cache metadata) or estimated once, lazily, on an evenly
// strided subset of at most 10000 images (kStatsMaxImages), population std over all pixels.
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
  virtual int num_classes() const = 0;  // 0 = unlabeled
  virtual int channels() const = 0;     // as stored (1 or 3); Fetch always returns 3
  virtual int height() const = 0;
  virtual int width() const = 0;
  virtual std::string name() const = 0;  // "cifar10:train" etc., for messages
  // Class names when the format knows them (CIFAR, Fashion-MNIST, image folders, caches), else empty.
  virtual std::vector<std::string> class_names() const { return {}; }
  // Per-channel mean/std of the images on the 0..1 scale (3 values, grayscale replicated).
  virtual std::array<double, 3> mean() const = 0;
  virtual std::array<double, 3> std() const = 0;
  // Label of one image (-1 if unlabeled) without reading its pixels.
  virtual int64_t label(int64_t index) const;
  // images: uint8 [B, 3, H, W] (grayscale replicated), labels: int64 [B] (-1 if unlabeled).
  // Thread-safe: called concurrently from loader threads. Throws UserError naming the file when an
  // image cannot be read/decoded.
  virtual void Fetch(const std::vector<int64_t>& indices, at::Tensor* images, at::Tensor* labels) const = 0;
};

struct DatasetSpec {
  std::string name;  // cifar10 | cifar100 | stl10 | fashion_mnist | mnist | image_folder | tensor_cache
  std::string data_dir;
  std::string split;  // train | test | unlabeled | train+unlabeled
  int64_t limit = 0;  // first N (0 = all)
  int resize = 0;     // image_folder only: 0 = all images share one size; N = resize + center-crop to N x N
};

// The dataset names OpenDataset accepts.
const std::vector<std::string>& DatasetNames();

// Opens (and caches per process: the same spec returns the same instance, never loaded twice).
// Throws UserError naming the file, the expected and found size/magic.
std::shared_ptr<const Dataset> OpenDataset(const DatasetSpec& spec);

// Writes `dataset` as a tensor cache (see above; images NCHW with the stored channel count,
// statistics and class names in the metadata), atomically. Returns the number of images written.
int64_t ConvertToTensorCache(const Dataset& dataset, const std::string& path);

}  // namespace vicreg::data
