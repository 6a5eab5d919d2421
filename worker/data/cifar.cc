// CIFAR-10 / CIFAR-100 binary versions (https://www.cs.toronto.edu/~kriz/cifar.html):
// fixed-size records of label byte(s) followed by 3072 pixel bytes (1024 R, 1024 G, 1024 B, each
// plane row-major 32x32). Files are mmap'ed; a record is copied straight into the batch.
// The entry points also pick the layout: torchvision's Python version (cifar_python.cc) is read when
// data_dir holds cifar-10-batches-py/ (cifar-100-python/) and not the binary folder, or directly
// holds the Python files (data_batch_1, test_batch / train, test) and no binary ones.
#include <algorithm>
#include <string>
#include <vector>

#include "common/errors.h"
#include "worker/data/mapped_file.h"
#include "worker/data/readers.h"
#include "worker/data/stored_dataset.h"

namespace vicreg::data {
namespace {

struct CifarFormat {
  std::string dataset;   // "cifar10"
  std::string subdir;    // "cifar-10-batches-bin"
  int label_bytes;       // 1 (CIFAR-10) or 2 (CIFAR-100: coarse, fine)
  int label_index;       // which label byte is used
  int num_classes;       // 10 or 100
  int records_per_file;  // official count, for messages
  std::vector<std::string> class_names;
};

class CifarDataset final : public StoredDataset {
 public:
  CifarDataset(Geometry geo, int64_t n, std::vector<int64_t> labels,
               std::vector<std::shared_ptr<const FileBytes>> files, std::vector<int64_t> first, int64_t record,
               int label_bytes, const std::string& listing)
      : StoredDataset(std::move(geo), n, std::move(labels), listing),
        files_(std::move(files)),
        first_(std::move(first)),
        record_(record),
        label_bytes_(label_bytes) {}

  using StoredDataset::ApplyLimit;
  using StoredDataset::SetClassNames;

 protected:
  void ReadImage(int64_t index, uint8_t* dst) const override {
    // first_ holds the global index of each file's first record (ascending).
    const size_t f = static_cast<size_t>(std::upper_bound(first_.begin(), first_.end(), index) - first_.begin() - 1);
    const uint8_t* rec = files_[f]->data() + (index - first_[f]) * record_;
    std::copy(rec + label_bytes_, rec + label_bytes_ + kCifarImageBytes, dst);
  }

 private:
  std::vector<std::shared_ptr<const FileBytes>> files_;
  std::vector<int64_t> first_;
  int64_t record_;
  int label_bytes_;
};

std::shared_ptr<const Dataset> OpenCifar(const DatasetSpec& spec, const CifarFormat& fmt,
                                         const std::vector<std::string>& names) {
  const std::string dir = DatasetDir(spec.data_dir, fmt.subdir);
  const int64_t record = fmt.label_bytes + kCifarImageBytes;
  std::vector<std::shared_ptr<const FileBytes>> files;
  std::vector<int64_t> first;
  std::vector<int64_t> labels;
  std::string listing;
  int64_t total = 0;
  for (const auto& name : names) {
    const std::string path = FindFile(fmt.dataset + " " + spec.split + " split", {dir}, {name});
    auto f = FileBytes::Map(path);
    if (f->size() % record != 0)
      throw UserError(path + ": size " + std::to_string(f->size()) + " bytes is not a multiple of the " +
                      std::to_string(record) + "-byte " + fmt.dataset + " record (" + std::to_string(fmt.label_bytes) +
                      " label byte(s) + 3072 pixels); expected " + std::to_string(fmt.records_per_file * record) +
                      " bytes for the official file: truncated or not a " + fmt.dataset + " binary file");
    const int64_t n = static_cast<int64_t>(f->size() / record);
    if (n == 0)
      throw UserError(path + ": contains zero images (empty file; expected " +
                      std::to_string(fmt.records_per_file * record) + " bytes)");
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* rec = f->data() + i * record;
      for (int b = 0; b < fmt.label_bytes; ++b) {
        const int64_t limit = b == fmt.label_index ? fmt.num_classes : (fmt.label_bytes == 2 ? 20 : fmt.num_classes);
        if (rec[b] >= limit) ThrowLabelOutOfRange(path, i, rec[b], 0, limit - 1);
      }
      labels.push_back(rec[fmt.label_index]);
    }
    first.push_back(total);
    total += n;
    listing += (listing.empty() ? "" : ", ") + path;
    files.push_back(std::move(f));
  }
  StoredDataset::Geometry geo{fmt.dataset + ":" + spec.split, 3, kCifarSide, kCifarSide, fmt.num_classes};
  auto ds = std::make_shared<CifarDataset>(geo, total, std::move(labels), std::move(files), std::move(first), record,
                                           fmt.label_bytes, listing);
  std::vector<std::string> classes = fmt.class_names;
  if (classes.empty()) {  // cifar-100-binary ships fine_label_names.txt (one name per line)
    const std::string names_file = JoinPath(dir, "fine_label_names.txt");
    if (IsRegularFile(names_file)) {
      auto nf = FileBytes::Map(names_file);
      std::string text(nf->bytes());
      size_t pos = 0;
      while (pos < text.size()) {
        size_t end = text.find('\n', pos);
        if (end == std::string::npos) end = text.size();
        std::string line = text.substr(pos, end - pos);
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
        if (!line.empty()) classes.push_back(line);
        pos = end + 1;
      }
      if (static_cast<int>(classes.size()) != fmt.num_classes) classes.clear();  // not the official file: no names
    }
  }
  ds->SetClassNames(std::move(classes));
  ds->ApplyLimit(spec.limit);
  return ds;
}

std::shared_ptr<const Dataset> OpenCifar10Binary(const DatasetSpec& spec) {
  static const CifarFormat fmt{
      "cifar10",
      "cifar-10-batches-bin",
      1,
      0,
      10,
      10000,
      {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}};
  if (spec.split == "train")
    return OpenCifar(
        spec, fmt,
        {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"});
  if (spec.split == "test") return OpenCifar(spec, fmt, {"test_batch.bin"});
  ThrowBadSplit("cifar10", spec.split, {"train", "test"});
}

std::shared_ptr<const Dataset> OpenCifar100Binary(const DatasetSpec& spec) {
  CifarFormat fmt{"cifar100", "cifar-100-binary", 2, 1, 100, spec.split == "test" ? 10000 : 50000, {}};
  if (spec.split == "train") return OpenCifar(spec, fmt, {"train.bin"});
  if (spec.split == "test") return OpenCifar(spec, fmt, {"test.bin"});
  ThrowBadSplit("cifar100", spec.split, {"train", "test"});
}

struct Layouts {
  std::string bin_sub, py_sub;                   // cifar-10-batches-bin, cifar-10-batches-py
  std::vector<std::string> bin_files, py_files;  // what marks a folder as holding that version
};

// The folder of torchvision's Python version, or "" for the binary version.
std::string PythonDir(const std::string& data_dir, const Layouts& l) {
  if (IsDirectory(JoinPath(data_dir, l.bin_sub))) return "";
  if (IsDirectory(JoinPath(data_dir, l.py_sub))) return JoinPath(data_dir, l.py_sub);
  for (const auto& f : l.bin_files)
    if (IsRegularFile(JoinPath(data_dir, f))) return "";
  for (const auto& f : l.py_files)
    if (IsRegularFile(JoinPath(data_dir, f))) return data_dir;
  return "";
}

// Binary reader; when nothing is found, the message also names the Python layout.
template <typename Fn>
std::shared_ptr<const Dataset> OpenBinary(const DatasetSpec& spec, const Layouts& l, Fn open) {
  try {
    return open();
  } catch (const UserError& e) {
    const std::string what = e.what();
    if (what.find(": missing file; looked for ") == std::string::npos) throw;
    throw UserError(what + " (the binary version, " + l.bin_sub + "/; torchvision's Python version is read from " +
                    JoinPath(spec.data_dir, l.py_sub) + "/ or from " + l.py_files.front() + " directly in data_dir)");
  }
}

}  // namespace

std::shared_ptr<const Dataset> OpenCifar10(const DatasetSpec& spec) {
  static const Layouts layouts{"cifar-10-batches-bin",
                               "cifar-10-batches-py",
                               {"data_batch_1.bin", "test_batch.bin"},
                               {"data_batch_1", "test_batch"}};
  const std::string py = PythonDir(spec.data_dir, layouts);
  if (!py.empty()) return OpenCifar10Python(spec, py);
  return OpenBinary(spec, layouts, [&] { return OpenCifar10Binary(spec); });
}

std::shared_ptr<const Dataset> OpenCifar100(const DatasetSpec& spec) {
  static const Layouts layouts{"cifar-100-binary", "cifar-100-python", {"train.bin", "test.bin"}, {"train", "test"}};
  const std::string py = PythonDir(spec.data_dir, layouts);
  if (!py.empty()) return OpenCifar100Python(spec, py);
  return OpenBinary(spec, layouts, [&] { return OpenCifar100Binary(spec); });
}

}  // namespace vicreg::data
