// Helpers shared by the data tests: a temporary folder, binary file writers, Python references.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace vicreg::data::testing {

// A fresh folder under $TMPDIR (or /tmp), removed at destruction.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/vicreg_data_test_XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
    path_ = buf.data();
  }
  ~TempDir() {
    const std::string cmd = "rm -rf '" + path_ + "'";  // test-owned folder created by mkdtemp
    if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "cannot remove %s\n", path_.c_str());
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline void WriteBytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

inline void MakeDir(const std::string& path) {
  const std::string cmd = "mkdir -p '" + path + "'";
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("cannot create " + path);
}

inline void AppendBigEndian32(std::vector<uint8_t>* out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out->push_back(static_cast<uint8_t>((v >> s) & 0xff));
}

// Runs /usr/bin/python3 with args; returns its exit status (0 = ok).
inline int RunPython(const std::string& script, const std::vector<std::string>& args) {
  std::string cmd = "/usr/bin/python3 '" + script + "'";
  for (const auto& a : args) cmd += " '" + a + "'";
  return std::system(cmd.c_str());
}

inline bool HavePythonTorchvision() {
  return std::system("/usr/bin/python3 -c 'import torch, torchvision' >/dev/null 2>&1") == 0;
}

}  // namespace vicreg::data::testing
