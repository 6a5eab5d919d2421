// CIFAR-10 / CIFAR-100 "python version" (cifar-10-python.tar.gz / cifar-100-python.tar.gz, what
// torchvision.datasets.CIFAR10/100 download): each file is a pickled dict
//   data_batch_1..5, test_batch (CIFAR-10): data uint8 ndarray [N, 3072] (RGB planes, row-major
//       32x32, the same pixel order as the binary version), labels list of N ints 0..9,
//       batch_label, filenames
//   train, test (CIFAR-100): data as above, fine_labels (0..99, used), coarse_labels (0..19), ...
//   batches.meta / meta: label_names / fine_label_names (class names; optional here)
// read with the data-only pickle reader (pickle_data.h): keys may be bytes (Python 2 files) or str,
// nothing in the file is executed. The pixel arrays stay views into the mmap'ed files.
#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include "common/errors.h"
#include "worker/data/mapped_file.h"
#include "worker/data/pickle_data.h"
#include "worker/data/readers.h"
#include "worker/data/stored_dataset.h"

namespace vicreg::data {
namespace {

namespace pk = vicreg::data::pickle;

struct PyFormat {
  std::string dataset;     // "cifar10"
  std::string layout;      // "CIFAR-10 python batch", for messages
  std::string label_key;   // "labels" | "fine_labels"
  std::string coarse_key;  // "" | "coarse_labels"
  int num_classes;         // 10 | 100
  std::string meta_file;   // "batches.meta" | "meta"
  std::string names_key;   // "label_names" | "fine_label_names"
  std::vector<std::string> builtin_names;
};

class CifarPythonDataset final : public StoredDataset {
 public:
  CifarPythonDataset(Geometry geo, int64_t n, std::vector<int64_t> labels, std::vector<pk::ValuePtr> keep,
                     std::vector<std::shared_ptr<const FileBytes>> files, std::vector<const uint8_t*> pixels,
                     std::vector<int64_t> first, const std::string& listing)
      : StoredDataset(std::move(geo), n, std::move(labels), listing),
        keep_(std::move(keep)),
        files_(std::move(files)),
        pixels_(std::move(pixels)),
        first_(std::move(first)) {}
  using StoredDataset::ApplyLimit;
  using StoredDataset::SetClassNames;

 protected:
  void ReadImage(int64_t index, uint8_t* dst) const override {
    const size_t f = static_cast<size_t>(std::upper_bound(first_.begin(), first_.end(), index) - first_.begin() - 1);
    const uint8_t* src = pixels_[f] + (index - first_[f]) * kCifarImageBytes;
    std::copy(src, src + kCifarImageBytes, dst);
  }

 private:
  std::vector<pk::ValuePtr> keep_;  // arrays whose bytes were decoded into memory (Python 3, protocol 2)
  std::vector<std::shared_ptr<const FileBytes>> files_;
  std::vector<const uint8_t*> pixels_;
  std::vector<int64_t> first_;
};

// The dict keys of a file, for messages (only identifier-like keys are quoted).
std::string KeyList(const pk::Value& d) {
  std::string out;
  for (const auto& kv : d.dict) {
    std::string k;
    if (!pk::AsText(*kv.first, &k)) continue;
    bool ok = !k.empty() && k.size() <= 32;
    for (char c : k)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) ok = false;
    out += (out.empty() ? "" : ", ") + (ok ? k : std::string("?"));
  }
  return out.empty() ? "none" : out;
}

pk::ValuePtr ParseDict(const FileBytes& f, const std::string& what) {
  pk::ValuePtr root = pk::Parse(f.bytes(), f.path());
  if (root->kind != pk::Kind::kDict)
    throw UserError(f.path() + ": a " + what + " must be a pickled dict, found a " + pk::TypeName(*root));
  return root;
}

const pk::Value& Need(const pk::Value& d, const std::string& key, const std::string& path, const std::string& what) {
  const pk::Value* v = pk::Find(d, key);
  if (!v) throw UserError(path + ": missing key '" + key + "' (not a " + what + "; keys found: " + KeyList(d) + ")");
  return *v;
}

// A list/tuple of ints or a 1-D integer ndarray -> int64 values.
std::vector<int64_t> Ints(const pk::Value& v, const std::string& path, const std::string& key) {
  std::vector<int64_t> out;
  if (v.kind == pk::Kind::kList || v.kind == pk::Kind::kTuple) {
    out.reserve(v.items.size());
    for (const auto& x : v.items) {
      if (x->kind != pk::Kind::kInt)
        throw UserError(path + ": '" + key + "' must hold ints, found a " + pk::TypeName(*x));
      out.push_back(x->i);
    }
    return out;
  }
  if (v.kind == pk::Kind::kArray && v.array.shape.size() == 1 && (v.array.kind == 'i' || v.array.kind == 'u')) {
    const auto& a = v.array;
    const auto* p = reinterpret_cast<const uint8_t*>(a.data.view.data());
    for (int64_t k = 0; k < a.shape[0]; ++k) {
      uint64_t u = 0;
      for (int b = a.itemsize - 1; b >= 0; --b) u = (u << 8) | p[k * a.itemsize + b];
      int64_t x = static_cast<int64_t>(u);
      if (a.kind == 'i' && a.itemsize < 8 && (u >> (8 * a.itemsize - 1)) & 1)
        x = static_cast<int64_t>(u | (~uint64_t{0} << (8 * a.itemsize)));
      out.push_back(x);
    }
    return out;
  }
  throw UserError(path + ": '" + key + "' must be a list of ints, found a " + pk::TypeName(v));
}

std::shared_ptr<const Dataset> OpenPython(const DatasetSpec& spec, const std::string& dir, const PyFormat& fmt,
                                          const std::vector<std::string>& names) {
  std::vector<std::shared_ptr<const FileBytes>> files;
  std::vector<pk::ValuePtr> keep;
  std::vector<const uint8_t*> pixels;
  std::vector<int64_t> first, labels;
  std::string listing;
  int64_t total = 0;
  for (const auto& name : names) {
    const std::string path =
        FindFile(fmt.dataset + " " + spec.split + " split (torchvision's Python version)", {dir}, {name});
    auto f = FileBytes::Map(path);
    pk::ValuePtr root = ParseDict(*f, fmt.layout);
    const pk::Value& data = Need(*root, "data", path, fmt.layout);
    if (data.kind != pk::Kind::kArray)
      throw UserError(path + ": 'data' must be a numpy uint8 array [N, 3072], found a " + pk::TypeName(data));
    const pk::Array& a = data.array;
    if (a.kind != 'u' || a.itemsize != 1 || a.shape.size() != 2 || a.shape[1] != kCifarImageBytes || a.fortran) {
      std::string shape;
      for (int64_t d : a.shape) shape += (shape.empty() ? "" : ", ") + std::to_string(d);
      throw UserError(path + ": 'data' must be a C-order uint8 array [N, 3072], found " + std::string(1, a.kind) +
                      std::to_string(a.itemsize) + " [" + shape + "]" + (a.fortran ? " in Fortran order" : ""));
    }
    const int64_t n = a.shape[0];
    if (n == 0) throw UserError(path + ": contains zero images ('data' has shape [0, 3072])");
    const std::vector<int64_t> lab = Ints(Need(*root, fmt.label_key, path, fmt.layout), path, fmt.label_key);
    if (static_cast<int64_t>(lab.size()) != n)
      throw UserError(path + ": '" + fmt.label_key + "' holds " + std::to_string(lab.size()) + " labels but 'data' " +
                      std::to_string(n) + " images");
    for (int64_t i = 0; i < n; ++i)
      if (lab[static_cast<size_t>(i)] < 0 || lab[static_cast<size_t>(i)] >= fmt.num_classes)
        ThrowLabelOutOfRange(path, i, lab[static_cast<size_t>(i)], 0, fmt.num_classes - 1);
    if (!fmt.coarse_key.empty()) {
      if (const pk::Value* c = pk::Find(*root, fmt.coarse_key)) {
        const std::vector<int64_t> coarse = Ints(*c, path, fmt.coarse_key);
        if (coarse.size() != lab.size())
          throw UserError(path + ": '" + fmt.coarse_key + "' holds " + std::to_string(coarse.size()) +
                          " labels but 'data' " + std::to_string(n) + " images");
        for (size_t i = 0; i < coarse.size(); ++i)
          if (coarse[i] < 0 || coarse[i] >= 20) ThrowLabelOutOfRange(path, static_cast<int64_t>(i), coarse[i], 0, 19);
      }
    }
    labels.insert(labels.end(), lab.begin(), lab.end());
    pixels.push_back(reinterpret_cast<const uint8_t*>(a.data.view.data()));
    if (a.data.owned) keep.push_back(root);  // bytes decoded into memory: keep them
    first.push_back(total);
    total += n;
    listing += (listing.empty() ? "" : ", ") + path;
    files.push_back(std::move(f));
  }
  StoredDataset::Geometry geo{fmt.dataset + ":" + spec.split, 3, kCifarSide, kCifarSide, fmt.num_classes};
  auto ds = std::make_shared<CifarPythonDataset>(geo, total, std::move(labels), std::move(keep), std::move(files),
                                                 std::move(pixels), std::move(first), listing);
  std::vector<std::string> classes = fmt.builtin_names;
  const std::string meta_path = JoinPath(dir, fmt.meta_file);
  if (IsRegularFile(meta_path)) {  // optional, but a present meta file must be a valid one
    auto mf = FileBytes::Map(meta_path);
    const std::string what = fmt.dataset + " meta file";
    pk::ValuePtr meta = ParseDict(*mf, what);
    const pk::Value& list = Need(*meta, fmt.names_key, meta_path, what);
    if ((list.kind != pk::Kind::kList && list.kind != pk::Kind::kTuple) ||
        static_cast<int>(list.items.size()) != fmt.num_classes)
      throw UserError(meta_path + ": '" + fmt.names_key + "' must be a list of " + std::to_string(fmt.num_classes) +
                      " class names, found a " + pk::TypeName(list) +
                      (list.kind == pk::Kind::kList ? " of " + std::to_string(list.items.size()) : std::string()));
    classes.clear();
    for (const auto& v : list.items) {
      std::string s;
      if (!pk::AsText(*v, &s))
        throw UserError(meta_path + ": '" + fmt.names_key + "' must hold str or bytes, found a " + pk::TypeName(*v));
      classes.push_back(std::move(s));
    }
  }
  ds->SetClassNames(std::move(classes));
  ds->ApplyLimit(spec.limit);
  return ds;
}

}  // namespace

std::shared_ptr<const Dataset> OpenCifar10Python(const DatasetSpec& spec, const std::string& dir) {
  static const PyFormat fmt{"cifar10",
                            "CIFAR-10 python batch",
                            "labels",
                            "",
                            10,
                            "batches.meta",
                            "label_names",
                            {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}};
  if (spec.split == "train")
    return OpenPython(spec, dir, fmt, {"data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"});
  if (spec.split == "test") return OpenPython(spec, dir, fmt, {"test_batch"});
  ThrowBadSplit("cifar10", spec.split, {"train", "test"});
}

std::shared_ptr<const Dataset> OpenCifar100Python(const DatasetSpec& spec, const std::string& dir) {
  static const PyFormat fmt{
      "cifar100", "CIFAR-100 python file", "fine_labels", "coarse_labels", 100, "meta", "fine_label_names", {}};
  if (spec.split == "train" || spec.split == "test") return OpenPython(spec, dir, fmt, {spec.split});
  ThrowBadSplit("cifar100", spec.split, {"train", "test"});
}

}  // namespace vicreg::data
