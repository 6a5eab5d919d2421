// Helpers for tests/model: tensor files shared with the Python references (torch::pickle_save of a
// dict <-> torch.load / torch.save), running /usr/bin/python3 with an argv array, temp dirs.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace vicreg::testing {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// A fresh directory under /tmp, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Writes {name: tensor} with torch::pickle_save (Python: torch.load(path)).
void SaveTensors(const std::string& path, const NamedTensors& items);
// Reads a dict of tensors written by torch.save(dict) or SaveTensors.
std::map<std::string, at::Tensor> LoadTensors(const std::string& path);

struct ProcResult {
  int exit_code = -1;  // -1: killed by a signal or could not start
  std::string output;  // stdout + stderr
};
// Runs argv (no shell), waits, captures output.
ProcResult RunProcess(const std::vector<std::string>& argv);
// Runs /usr/bin/python3 tests/model/<script> args...
ProcResult RunPython(const std::string& script, const std::vector<std::string>& args);

// max |a - b| (0 for empty tensors); shapes must match.
double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b);

}  // namespace vicreg::testing
