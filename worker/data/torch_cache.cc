// Cached tensors saved from PyTorch: a `.pt` file written by
//   torch.save({"images": uint8 [N, H, W, C] or [N, C, H, W] (or [N, H, W]), "labels": int64 [N]}, path)
// (or images float in 0..1, converted to uint8 as round(x * 255); optional keys "num_classes" int,
// "classes" list of str, "layout" "NCHW"|"NHWC"; other keys are ignored), read with LibTorch's
// unpickler (torch_archive.h, as torch::jit::pickle_load but with reads clamped to the file): it
// knows tensors, dicts, lists, str and numbers, and refuses any other Python class (nothing is
// imported or run). Only the zip format that torch.save writes by default is readable; the legacy
// format (_use_new_zipfile_serialization=False) is refused with that advice. The file is
// memory-mapped and its tensors copied out; the images are then kept as one uint8 NCHW tensor.
#include <ATen/ATen.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/errors.h"
#include "worker/data/mapped_file.h"
#include "worker/data/readers.h"
#include "worker/data/stored_dataset.h"
#include "worker/data/torch_archive.h"

namespace vicreg::data {
namespace {

class TorchCacheDataset final : public StoredDataset {
 public:
  TorchCacheDataset(Geometry geo, int64_t n, std::vector<int64_t> labels, at::Tensor images, const std::string& path)
      : StoredDataset(std::move(geo), n, std::move(labels), path), images_(std::move(images)) {}
  using StoredDataset::ApplyLimit;
  using StoredDataset::SetClassNames;

 protected:
  void ReadImage(int64_t index, uint8_t* dst) const override {
    const int64_t per = images_.stride(0);
    std::memcpy(dst, images_.data_ptr<uint8_t>() + index * per, static_cast<size_t>(per));
  }

 private:
  at::Tensor images_;  // uint8 [N, C, H, W], contiguous
};

std::string ShapeStr(at::IntArrayRef s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

// The first line of a LibTorch error, printable ASCII only and clipped (it may name a Python
// class from the file, never quote its data).
std::string FirstLine(const std::string& what) {
  std::string out;
  for (char c : what) {
    if (c == '\n' || out.size() >= 160) break;
    out.push_back(std::isprint(static_cast<unsigned char>(c)) ? c : '?');
  }
  return out;
}

c10::IValue Load(const std::string& path) {
  const std::shared_ptr<const FileBytes> file = FileBytes::Map(path);
  const std::string_view bytes = file->bytes();
  if (bytes.size() >= 2 && static_cast<uint8_t>(bytes[0]) == 0x80 && static_cast<uint8_t>(bytes[1]) <= 5)
    throw UserError(path +
                    ": a pickle in torch.save's legacy format (_use_new_zipfile_serialization=False) or a "
                    "plain pickle; save it again with torch.save(obj, path) (the default zip format) to read it");
  if (bytes.size() < 4 || std::memcmp(bytes.data(), "PK\x03\x04", 4) != 0)
    throw UserError(path + ": not a file written by torch.save (expected a zip archive, the first bytes differ)");
  try {
    return LoadTorchArchive(bytes.data(), bytes.size());
  } catch (const std::exception& e) {
    const std::string line = FirstLine(e.what());
    std::string hint;
    if (line.find("unknown type") != std::string::npos)
      hint =
          "; the file holds Python objects other than tensors, dicts, lists, str and numbers (numpy arrays, "
          "custom classes): save plain torch tensors in a plain dict";
    else if (line.find("GenericDict but got None") != std::string::npos)
      hint = "; an OrderedDict is not readable here: save a plain dict";
    throw UserError(path + ": LibTorch cannot read this torch.save archive (" + line + ")" + hint);
  }
}

// int64 labels from a tensor of an integer dtype or a list of ints.
std::vector<int64_t> Labels(const c10::IValue& v, const std::string& path, int64_t n) {
  std::vector<int64_t> out;
  if (v.isTensor()) {
    at::Tensor t = v.toTensor();
    if (t.dim() != 1 || t.size(0) != n)
      throw UserError(path + ": 'labels' has shape " + ShapeStr(t.sizes()) + " but 'images' holds " +
                      std::to_string(n) + " images (expected [" + std::to_string(n) + "])");
    if (!at::isIntegralType(t.scalar_type(), /*includeBool=*/false))
      throw UserError(path + ": 'labels' must be an integer tensor (int64), found " +
                      std::string(c10::toString(t.scalar_type())));
    t = t.to(at::kLong).contiguous();
    out.assign(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + n);
    return out;
  }
  if (v.isIntList()) {
    for (int64_t x : v.toIntVector()) out.push_back(x);
  } else if (v.isList()) {
    for (const auto& x : v.toListRef()) {
      if (!x.isInt()) throw UserError(path + ": 'labels' must be an int64 tensor or a list of ints");
      out.push_back(x.toInt());
    }
  } else {
    throw UserError(path + ": 'labels' must be an int64 tensor [N], found " + std::string(v.tagKind()));
  }
  if (static_cast<int64_t>(out.size()) != n)
    throw UserError(path + ": 'labels' holds " + std::to_string(out.size()) + " values but 'images' " +
                    std::to_string(n) + " images");
  return out;
}

// uint8 images in 0..255, or floats in 0..1 -> uint8 (round(x * 255)), chunked to bound memory.
at::Tensor ToUint8(const at::Tensor& images, const std::string& path) {
  if (images.scalar_type() == at::kByte) return images;
  if (!at::isFloatingType(images.scalar_type()))
    throw UserError(path + ": 'images' must be uint8 (0..255) or float (0..1), found " +
                    std::string(c10::toString(images.scalar_type())));
  at::Tensor out = at::empty(images.sizes(), images.options().dtype(at::kByte));
  constexpr int64_t kChunk = 1024;
  for (int64_t s = 0; s < images.size(0); s += kChunk) {
    const int64_t len = std::min(kChunk, images.size(0) - s);
    at::Tensor x = images.narrow(0, s, len).to(at::kFloat);
    const double lo = x.min().item<double>(), hi = x.max().item<double>();
    if (!(lo >= 0.0 && hi <= 1.0))  // NaN fails both
      throw UserError(path + ": float 'images' must lie in 0..1, found values from " + std::to_string(lo) + " to " +
                      std::to_string(hi) + " (images " + std::to_string(s) + ".." + std::to_string(s + len - 1) +
                      "; uint8 images are taken as they are)");
    out.narrow(0, s, len).copy_(x.mul(255.0).round_().clamp_(0, 255).to(at::kByte));
  }
  return out;
}

}  // namespace

std::shared_ptr<const Dataset> OpenTorchCache(const DatasetSpec& spec, const std::string& path) {
  const c10::IValue root = Load(path);
  if (!root.isGenericDict())
    throw UserError(path + ": expected torch.save of a dict {\"images\": tensor, \"labels\": tensor}, found a " +
                    std::string(root.tagKind()));
  const c10::Dict<c10::IValue, c10::IValue> d = root.toGenericDict();
  std::string keys;
  auto find = [&](const char* key) -> std::optional<c10::IValue> {
    for (const auto& kv : d)
      if (kv.key().isString() && kv.key().toStringRef() == key) return kv.value();
    return std::nullopt;
  };
  for (const auto& kv : d) {
    if (!kv.key().isString()) throw UserError(path + ": dict keys must be str");
    std::string k = kv.key().toStringRef();
    bool ok = !k.empty() && k.size() <= 32;
    for (char c : k)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) ok = false;
    keys += (keys.empty() ? "" : ", ") + (ok ? k : std::string("?"));
  }
  const auto im = find("images");
  if (!im || !im->isTensor())
    throw UserError(path + ": no tensor 'images' (expected uint8 [N, H, W, C] or [N, C, H, W]; keys found: " +
                    (keys.empty() ? "none" : keys) + ")");
  at::Tensor images = im->toTensor();
  std::string layout;
  if (const auto l = find("layout")) {
    if (!l->isString() || (l->toStringRef() != "NCHW" && l->toStringRef() != "NHWC"))
      throw UserError(path + ": 'layout' must be \"NCHW\" or \"NHWC\"");
    layout = l->toStringRef();
  }
  const auto s = images.sizes();
  if (images.dim() == 3) {
    images = images.unsqueeze(1);
  } else if (images.dim() == 4) {
    const bool chw_ok = s[1] == 1 || s[1] == 3, hwc_ok = s[3] == 1 || s[3] == 3;
    if (layout.empty()) layout = chw_ok ? "NCHW" : (hwc_ok ? "NHWC" : "");
    if (layout == "NHWC" && hwc_ok)
      images = images.permute({0, 3, 1, 2});
    else if (!(layout == "NCHW" && chw_ok))
      throw UserError(path + ": 'images' shape " + ShapeStr(s) + " is not [N, C, H, W] or [N, H, W, C] with C 1 or 3" +
                      (layout.empty() ? "" : " (layout " + layout + ")"));
  } else {
    throw UserError(path + ": 'images' must have 3 or 4 dims ([N,H,W], [N,C,H,W] or [N,H,W,C]), found " + ShapeStr(s));
  }
  const int64_t n = images.size(0), c = images.size(1), ht = images.size(2), wd = images.size(3);
  if (n == 0) throw UserError(path + ": contains zero images ('images' shape " + ShapeStr(s) + ")");
  if (ht <= 0 || wd <= 0 || ht > 65536 || wd > 65536)
    throw UserError(path + ": invalid image size in 'images' shape " + ShapeStr(s));
  images = ToUint8(images, path).contiguous();

  int num_classes = -1;
  if (const auto nc = find("num_classes")) {
    if (!nc->isInt() || nc->toInt() < 0 || nc->toInt() > (1 << 24))
      throw UserError(path + ": 'num_classes' must be a non-negative int");
    num_classes = static_cast<int>(nc->toInt());
  }
  std::vector<int64_t> labels;
  if (const auto lv = find("labels")) {
    labels = Labels(*lv, path, n);
    int64_t max_label = -1;
    for (int64_t v : labels) max_label = std::max(max_label, v);
    if (num_classes < 0) {
      if (max_label >= (1 << 24)) ThrowLabelOutOfRange(path, 0, max_label, -1, (1 << 24) - 1);
      num_classes = static_cast<int>(max_label + 1);
    }
    for (int64_t i = 0; i < n; ++i)
      if (labels[static_cast<size_t>(i)] < -1 || labels[static_cast<size_t>(i)] >= num_classes)
        ThrowLabelOutOfRange(path, i, labels[static_cast<size_t>(i)], -1, num_classes - 1);
    if (max_label < 0) labels.clear();
  }
  if (num_classes < 0) num_classes = 0;
  std::vector<std::string> names;
  if (const auto cl = find("classes")) {
    if (!cl->isList()) throw UserError(path + ": 'classes' must be a list of str");
    for (const auto& v : cl->toListRef()) {
      if (!v.isString()) throw UserError(path + ": 'classes' must be a list of str");
      names.push_back(v.toStringRef());
    }
    if (!names.empty() && static_cast<int>(names.size()) != num_classes)
      throw UserError(path + ": 'classes' lists " + std::to_string(names.size()) + " names but there are " +
                      std::to_string(num_classes) + " classes");
  }
  StoredDataset::Geometry geo{"tensor_cache:" + spec.split, static_cast<int>(c), static_cast<int>(ht),
                              static_cast<int>(wd), num_classes};
  auto ds = std::make_shared<TorchCacheDataset>(geo, n, std::move(labels), images, path);
  ds->SetClassNames(std::move(names));
  ds->ApplyLimit(spec.limit);
  return ds;
}

}  // namespace vicreg::data
