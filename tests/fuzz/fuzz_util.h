// Helpers shared by the fuzzers under tests/fuzz: a per-process scratch folder, file writers, a
// byte reader that splits one fuzz input into several values/files, and the "finding" exit.
// A fuzzer calls VICREG_FUZZ_FINDING for behaviour the project promises never happens (an
// unexpected exception type, a broken invariant): libFuzzer saves the input, ctest's corpus replay
// fails on it.
#pragma once

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

namespace vicreg::fuzz {

[[noreturn]] inline void Finding(const char* fuzzer, const std::string& what) {
  std::fprintf(stderr, "\n==== FUZZ FINDING (%s): %s\n", fuzzer, what.c_str());
  std::fflush(stderr);
  std::abort();
}
#define VICREG_FUZZ_FINDING(what) ::vicreg::fuzz::Finding(__FILE__, (what))

// A folder under $TMPDIR (or /tmp) for the whole process; removed at exit.
inline const std::string& ScratchDir() {
  static const std::string dir = [] {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/vicreg_fuzz_XXXXXX";
    if (!::mkdtemp(tmpl.data())) {
      std::perror("mkdtemp");
      std::abort();
    }
    static std::string keep = tmpl;
    std::atexit([] {
      std::string cmd = "rm -rf '" + keep + "'";  // our own mkdtemp folder
      if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "cannot remove %s\n", keep.c_str());
    });
    return tmpl;
  }();
  return dir;
}

// Removes everything inside `dir` (not `dir` itself); one level of sub-folders deep is enough here.
inline void ClearDir(const std::string& dir, int depth = 3) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    std::string p = dir + "/" + name;
    struct stat st {};
    if (::lstat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      if (depth > 0) ClearDir(p, depth - 1);
      ::rmdir(p.c_str());
    } else {
      ::unlink(p.c_str());
    }
  }
  ::closedir(d);
}

// A fresh, empty sub-folder of ScratchDir() (the same path every call).
inline std::string FreshDir(const std::string& name) {
  std::string p = ScratchDir() + "/" + name;
  ClearDir(p);
  ::mkdir(p.c_str(), 0700);
  return p;
}

inline void MakeDir(const std::string& p) { ::mkdir(p.c_str(), 0700); }

inline void WriteFile(const std::string& path, std::string_view bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) {
    std::perror(path.c_str());
    std::abort();
  }
  if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) std::abort();
  std::fclose(f);
}

// Consumes a fuzz input from the front: small integers, length-prefixed chunks, the rest.
class Bytes {
 public:
  Bytes(const uint8_t* data, size_t size) : p_(reinterpret_cast<const char*>(data)), n_(size) {}
  bool empty() const { return n_ == 0; }
  size_t size() const { return n_; }
  uint8_t U8() {
    if (n_ == 0) return 0;
    --n_;
    return static_cast<uint8_t>(*p_++);
  }
  uint16_t U16() { return static_cast<uint16_t>(U8() | (U8() << 8)); }
  uint32_t U32() { return static_cast<uint32_t>(U16()) | (static_cast<uint32_t>(U16()) << 16); }
  uint64_t U64() { return static_cast<uint64_t>(U32()) | (static_cast<uint64_t>(U32()) << 32); }
  // Up to `max` bytes.
  std::string_view Take(size_t max) {
    size_t k = max < n_ ? max : n_;
    std::string_view out(p_, k);
    p_ += k;
    n_ -= k;
    return out;
  }
  // A chunk whose length is given by the next 2 bytes (little-endian).
  std::string_view Chunk() { return Take(U16()); }
  std::string_view Rest() { return Take(n_); }

 private:
  const char* p_;
  size_t n_;
};

}  // namespace vicreg::fuzz
