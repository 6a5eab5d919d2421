// Helpers shared by the tests of common/.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace vicreg::testing_util {

// A fresh directory under $TMPDIR (or /tmp), removed at scope exit unless the test failed
// (then it stays for inspection).
class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    const char* base = getenv("TMPDIR");
    path_ = std::string(base && *base ? base : "/tmp") + "/vicreg_" + tag + "_XXXXXX";
    EXPECT_NE(mkdtemp(path_.data()), nullptr) << "mkdtemp " << path_;
  }
  ~TempDir() {
    if (::testing::Test::HasFailure()) return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline void WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

inline std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace vicreg::testing_util
