// Tensor cache: one safetensors file (common/safetensors.h), or a torch.save'd .pt (torch_cache.cc), with
//   images  U8 [N, C, H, W] (C = 1 or 3; what ConvertToTensorCache writes), or [N, H, W, C]
//           (metadata layout=NHWC, or inferred when only the last dim is 1 or 3), or [N, H, W]
//   labels  I64 [N] (-1 = unlabeled; I32/I16/U8 are accepted too); optional = all unlabeled
//   __metadata__: format=vicreg-tensor-cache-v1, layout, num_classes, classes (JSON list of
//           names), mean / std (JSON lists, 0..1 scale, 1 or 3 values), source (dataset name)
// The file is mmap'ed; ReadImage copies (NCHW) or transposes (NHWC) one image.
#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/errors.h"
#include "common/safetensors.h"
#include "worker/data/mapped_file.h"
#include "worker/data/readers.h"
#include "worker/data/stored_dataset.h"

namespace vicreg::data {
namespace {

namespace st = vicreg::safetensors;

class TensorCacheDataset final : public StoredDataset {
 public:
  TensorCacheDataset(Geometry geo, int64_t n, std::vector<int64_t> labels, std::shared_ptr<const FileBytes> file,
                     const uint8_t* images, bool nhwc)
      : StoredDataset(std::move(geo), n, std::move(labels), file->path()),
        file_(std::move(file)),
        images_(images),
        nhwc_(nhwc) {}
  using StoredDataset::ApplyLimit;
  using StoredDataset::SetClassNames;
  using StoredDataset::SetStats;

 protected:
  void ReadImage(int64_t index, uint8_t* dst) const override {
    const int c = channels();
    const int64_t plane = static_cast<int64_t>(height()) * width();
    const uint8_t* src = images_ + index * c * plane;
    if (!nhwc_ || c == 1) {
      std::memcpy(dst, src, static_cast<size_t>(c * plane));
      return;
    }
    for (int64_t p = 0; p < plane; ++p)
      for (int k = 0; k < c; ++k) dst[k * plane + p] = src[p * c + k];
  }

 private:
  std::shared_ptr<const FileBytes> file_;
  const uint8_t* images_;
  bool nhwc_;
};

std::string ShapeStr(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

// "[0.49, 0.48, 0.45]" (or one value) -> 3 values; false if absent or malformed.
bool ParseTriple(const std::map<std::string, std::string>& meta, const std::string& key, const std::string& path,
                 std::array<double, 3>* out) {
  auto it = meta.find(key);
  if (it == meta.end()) return false;
  nlohmann::json j = nlohmann::json::parse(it->second, nullptr, /*allow_exceptions=*/false);
  if (!j.is_array() || (j.size() != 1 && j.size() != 3))
    throw UserError(path + ": metadata " + key + " must be a JSON list of 1 or 3 numbers, found '" + it->second + "'");
  for (size_t c = 0; c < 3; ++c) {
    const auto& v = j[j.size() == 1 ? 0 : c];
    if (!v.is_number()) throw UserError(path + ": metadata " + key + " must hold numbers, found '" + it->second + "'");
    (*out)[c] = v.get<double>();
  }
  return true;
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::shared_ptr<const Dataset> OpenTensorCache(const DatasetSpec& spec) {
  std::string path = spec.data_dir;
  if (!IsRegularFile(path)) {
    path = JoinPath(spec.data_dir, spec.split + ".safetensors");
    const std::string pt = JoinPath(spec.data_dir, spec.split + ".pt");
    if (!IsRegularFile(path) && IsRegularFile(pt)) return OpenTorchCache(spec, pt);
    if (!IsRegularFile(path))
      throw UserError("tensor_cache: missing file: data_dir " + spec.data_dir +
                      " is neither a .safetensors or .pt file nor a folder holding " + spec.split + ".safetensors or " +
                      spec.split + ".pt (looked for " + spec.data_dir + ", " + path + " and " + pt + ")");
  } else if (EndsWith(path, ".pt") || EndsWith(path, ".pth")) {
    return OpenTorchCache(spec, path);
  }
  auto file = FileBytes::Map(path);
  const st::Header h = st::ParseHeader(file->bytes(), path);
  const st::TensorInfo* im = h.Find("images");
  if (!im) throw UserError(path + ": no tensor named 'images' (expected uint8 [N, C, H, W] or [N, H, W, C])");
  if (im->dtype != st::DType::kU8) throw UserError(path + ": 'images' must be U8, found " + st::DTypeName(im->dtype));
  std::string layout;
  if (auto it = h.metadata.find("layout"); it != h.metadata.end()) layout = it->second;
  if (!layout.empty() && layout != "NCHW" && layout != "NHWC")
    throw UserError(path + ": metadata layout must be NCHW or NHWC, found '" + layout + "'");
  const auto& s = im->shape;
  int64_t n = 0, c = 1, ht = 0, wd = 0;
  bool nhwc = false;
  if (s.size() == 3) {
    n = s[0], ht = s[1], wd = s[2];
  } else if (s.size() == 4) {
    const bool chw_ok = s[1] == 1 || s[1] == 3, hwc_ok = s[3] == 1 || s[3] == 3;
    if (layout.empty()) {
      if (chw_ok)
        layout = "NCHW";
      else if (hwc_ok)
        layout = "NHWC";
    }
    if (layout == "NCHW" && chw_ok)
      n = s[0], c = s[1], ht = s[2], wd = s[3];
    else if (layout == "NHWC" && hwc_ok)
      n = s[0], ht = s[1], wd = s[2], c = s[3], nhwc = true;
    else
      throw UserError(path + ": 'images' shape " + ShapeStr(s) + " is not [N, C, H, W] or [N, H, W, C] with C 1 or 3" +
                      (layout.empty() ? "" : " (metadata layout " + layout + ")"));
  } else {
    throw UserError(path + ": 'images' must have 3 or 4 dims ([N,H,W], [N,C,H,W] or [N,H,W,C]), found " + ShapeStr(s));
  }
  if (n == 0) throw UserError(path + ": contains zero images ('images' shape " + ShapeStr(s) + ")");
  if (ht <= 0 || wd <= 0 || ht > 65536 || wd > 65536)
    throw UserError(path + ": invalid image size in 'images' shape " + ShapeStr(s));

  int num_classes = -1;
  if (auto it = h.metadata.find("num_classes"); it != h.metadata.end()) {
    try {
      size_t used = 0;
      num_classes = std::stoi(it->second, &used);
      if (used != it->second.size() || num_classes < 0) throw std::invalid_argument("");
    } catch (const std::exception&) {
      throw UserError(path + ": metadata num_classes must be a non-negative integer, found '" + it->second + "'");
    }
  }
  std::vector<int64_t> labels;
  if (const st::TensorInfo* lt = h.Find("labels")) {
    if (lt->shape.size() != 1 || lt->shape[0] != n)
      throw UserError("tensor_cache: inconsistent image/label counts in " + path + ": 'images' holds " +
                      std::to_string(n) + " images but 'labels' has shape " + ShapeStr(lt->shape) + " (expected [" +
                      std::to_string(n) + "])");
    const std::string_view lb = st::TensorBytes(file->bytes(), h, *lt);
    labels.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      const char* p = lb.data() + i * st::DTypeSize(lt->dtype);
      int64_t v = 0;
      switch (lt->dtype) {
        case st::DType::kI64: std::memcpy(&v, p, 8); break;
        case st::DType::kI32: {
          int32_t x;
          std::memcpy(&x, p, 4);
          v = x;
          break;
        }
        case st::DType::kI16: {
          int16_t x;
          std::memcpy(&x, p, 2);
          v = x;
          break;
        }
        case st::DType::kU8: v = static_cast<uint8_t>(*p); break;
        default: throw UserError(path + ": 'labels' must be I64 (or I32/I16/U8), found " + st::DTypeName(lt->dtype));
      }
      labels[static_cast<size_t>(i)] = v;
    }
    int64_t max_label = -1;
    for (int64_t v : labels) max_label = std::max(max_label, v);
    if (num_classes < 0) num_classes = static_cast<int>(max_label + 1);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t v = labels[static_cast<size_t>(i)];
      if (v < -1 || v >= num_classes) ThrowLabelOutOfRange(path, i, v, -1, num_classes - 1);
    }
    if (max_label < 0) labels.clear();
  }
  if (num_classes < 0) num_classes = 0;

  StoredDataset::Geometry geo{"tensor_cache:" + spec.split, static_cast<int>(c), static_cast<int>(ht),
                              static_cast<int>(wd), num_classes};
  const uint8_t* images = reinterpret_cast<const uint8_t*>(st::TensorBytes(file->bytes(), h, *im).data());
  auto ds = std::make_shared<TensorCacheDataset>(geo, n, std::move(labels), file, images, nhwc);
  std::array<double, 3> mean{}, sd{};
  const bool has_mean = ParseTriple(h.metadata, "mean", path, &mean),
             has_std = ParseTriple(h.metadata, "std", path, &sd);
  if (has_mean && has_std) {
    for (double v : sd)
      if (!(v > 0)) throw UserError(path + ": metadata std values must be > 0, found '" + h.metadata.at("std") + "'");
    ds->SetStats(mean, sd);
  }
  if (auto it = h.metadata.find("classes"); it != h.metadata.end()) {
    nlohmann::json j = nlohmann::json::parse(it->second, nullptr, false);
    if (!j.is_array())
      throw UserError(path + ": metadata classes must be a JSON list of names, found '" + it->second + "'");
    std::vector<std::string> names;
    for (const auto& v : j) {
      if (!v.is_string()) throw UserError(path + ": metadata classes must hold strings, found '" + it->second + "'");
      names.push_back(v.get<std::string>());
    }
    if (!names.empty() && static_cast<int>(names.size()) != num_classes)
      throw UserError(path + ": metadata classes lists " + std::to_string(names.size()) + " names but num_classes is " +
                      std::to_string(num_classes));
    ds->SetClassNames(std::move(names));
  }
  ds->ApplyLimit(spec.limit);
  return ds;
}

int64_t ConvertToTensorCache(const Dataset& dataset, const std::string& path) {
  const int64_t n = dataset.size(), c = dataset.channels(), ht = dataset.height(), wd = dataset.width();
  const auto mean = dataset.mean(), sd = dataset.std();
  std::map<std::string, std::string> meta = {
      {"format", "vicreg-tensor-cache-v1"},
      {"layout", "NCHW"},
      {"num_classes", std::to_string(dataset.num_classes())},
      {"source", dataset.name()},
      {"mean", nlohmann::json(std::vector<double>(mean.begin(), mean.end())).dump()},
      {"std", nlohmann::json(std::vector<double>(sd.begin(), sd.end())).dump()},
  };
  const auto names = dataset.class_names();
  if (!names.empty()) meta["classes"] = nlohmann::json(names).dump();
  st::Writer w(path, {{"images", st::DType::kU8, {n, c, ht, wd}}, {"labels", st::DType::kI64, {n}}}, meta);
  constexpr int64_t kChunk = 1024;
  std::vector<int64_t> all_labels;
  all_labels.reserve(static_cast<size_t>(n));
  for (int64_t start = 0; start < n; start += kChunk) {
    std::vector<int64_t> idx;
    for (int64_t i = start; i < std::min(n, start + kChunk); ++i) idx.push_back(i);
    at::Tensor images, labels;
    dataset.Fetch(idx, &images, &labels);
    // Fetch replicates grayscale to 3 channels; store the channels the dataset really has.
    at::Tensor stored = images.narrow(1, 0, c).contiguous();
    w.Write(stored.data_ptr<uint8_t>(), static_cast<uint64_t>(stored.numel()));
    const int64_t* l = labels.data_ptr<int64_t>();
    all_labels.insert(all_labels.end(), l, l + labels.numel());
  }
  w.Write(all_labels.data(), all_labels.size() * sizeof(int64_t));
  w.Finish();
  return n;
}

}  // namespace vicreg::data
