// File-system helpers with the durability and safety rules of the run directory.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace vicreg::fs {

// Writes bytes to path atomically: <path>.tmp.<pid> + fsync + rename + fsync(dir).
// Readers see either the old file or the whole new file, never a prefix.
void AtomicWriteFile(const std::string& path, std::string_view bytes);
std::string ReadFile(const std::string& path);          // throws UserError naming the file
bool Exists(const std::string& path);
void MakeDirs(const std::string& path);                 // mkdir -p
// True if `path` (after normalization, not following symlinks) lies inside `root`.
bool IsInside(const std::string& root, const std::string& path);
uint32_t Crc32(std::string_view bytes, uint32_t seed = 0);

// Appends JSON lines to a file; each Append is one write() of a full line + flush,
// so a crash never leaves a half line behind a complete one.
class JsonlWriter {
 public:
  explicit JsonlWriter(const std::string& path);
  ~JsonlWriter();
  JsonlWriter(const JsonlWriter&) = delete;
  JsonlWriter& operator=(const JsonlWriter&) = delete;
  void Append(const std::string& json_line);  // without trailing newline
 private:
  int fd_ = -1;
  std::string path_;
};

}  // namespace vicreg::fs
