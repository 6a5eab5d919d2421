// OpenDataset: name -> reader, with a per-process cache so that a dataset is opened (mapped,
// decompressed, validated) once, however many loaders, evaluators and probes ask for it.
#include "worker/data/dataset.h"

#include <stdlib.h>

#include <map>
#include <mutex>

#include "common/errors.h"
#include "worker/data/mapped_file.h"
#include "worker/data/readers.h"

namespace vicreg::data {

std::string JoinPath(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

std::string DatasetDir(const std::string& data_dir, const std::string& sub) {
  const std::string nested = JoinPath(data_dir, sub);
  return IsDirectory(nested) ? nested : data_dir;
}

std::string FindFile(const std::string& what, const std::vector<std::string>& dirs,
                     const std::vector<std::string>& names) {
  std::string looked;
  for (const auto& d : dirs) {
    for (const auto& n : names) {
      const std::string p = JoinPath(d, n);
      if (IsRegularFile(p)) return p;
      looked += (looked.empty() ? "" : ", ") + p;
    }
  }
  throw UserError(what + ": missing file; looked for " + looked);
}

void ThrowBadSplit(const std::string& dataset, const std::string& split, const std::vector<std::string>& valid) {
  std::string v;
  for (const auto& s : valid) v += (v.empty() ? "" : ", ") + s;
  throw UserError(dataset + ": unknown split '" + split + "' (valid: " + v + ")");
}

const std::vector<std::string>& DatasetNames() {
  static const std::vector<std::string> names = {"cifar10", "cifar100",     "stl10",       "fashion_mnist",
                                                 "mnist",   "image_folder", "tensor_cache"};
  return names;
}

std::shared_ptr<const Dataset> OpenDataset(const DatasetSpec& spec) {
  using Factory = std::shared_ptr<const Dataset> (*)(const DatasetSpec&);
  static const std::map<std::string, Factory> factories = {
      {"cifar10", &OpenCifar10},          {"cifar100", &OpenCifar100}, {"stl10", &OpenStl10},
      {"fashion_mnist", &OpenIdx},        {"mnist", &OpenIdx},         {"image_folder", &OpenImageFolder},
      {"tensor_cache", &OpenTensorCache},
  };
  auto f = factories.find(spec.name);
  if (f == factories.end()) {
    std::string v;
    for (const auto& n : DatasetNames()) v += (v.empty() ? "" : ", ") + n;
    throw UserError("unknown dataset '" + spec.name + "' (valid: " + v + ")");
  }
  if (spec.data_dir.empty())
    throw UserError(spec.name + ": data_dir is empty; set data.data_dir to the dataset's folder");
  if (spec.limit < 0)
    throw UserError(spec.name + ": limit must be >= 0 (0 = all images), got " + std::to_string(spec.limit));
  if (!IsDirectory(spec.data_dir) && !(spec.name == "tensor_cache" && IsRegularFile(spec.data_dir)))
    throw UserError(spec.name + ": data_dir " + spec.data_dir + " does not exist or is not a folder" +
                    (spec.name == "tensor_cache" ? " or a .safetensors / .pt file" : ""));

  // Cache key: the canonical path, so "data" and "./data/" share one instance.
  std::string canonical = spec.data_dir;
  if (char* rp = ::realpath(spec.data_dir.c_str(), nullptr)) {
    canonical = rp;
    ::free(rp);
  }
  const std::string key = spec.name + "\n" + canonical + "\n" + spec.split + "\n" + std::to_string(spec.limit) + "\n" +
                          std::to_string(spec.resize);
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<const Dataset>> cache;
  std::lock_guard<std::mutex> lock(mu);  // opening under the lock: concurrent openers wait, nobody loads twice
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  auto ds = f->second(spec);  // messages keep the path as the user wrote it
  cache.emplace(key, ds);
  return ds;
}

}  // namespace vicreg::data
