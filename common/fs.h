// File-system helpers with the durability and safety rules of the run directory.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace vicreg::fs {

// Writes bytes to path atomically: <path>.tmp.<pid> + fsync + rename + fsync(dir).
// Readers see either the old file or the whole new file, never a prefix. A leftover
// <path>.tmp.<pid> (crash before the rename) is never read as <path>.
// Throws RuntimeFailure naming the path and the errno text (the tmp file is removed).
void AtomicWriteFile(const std::string& path, std::string_view bytes);
std::string ReadFile(const std::string& path);  // throws UserError naming the file
bool Exists(const std::string& path);           // lstat: a dangling symlink exists
void MakeDirs(const std::string& path);         // mkdir -p; RuntimeFailure naming the component
// True if `path` lies inside `root` or is `root` itself, after lexical normalization ("." and
// ".." resolved on the text, symlinks not followed). A relative `path` is taken relative to
// `root` (as in root + "/" + path); a relative `root` relative to the current directory.
// "../x", "a/../../x" and absolute paths elsewhere are outside; "/r/ab" is not inside "/r/a".
bool IsInside(const std::string& root, const std::string& path);
// zlib's CRC-32 (IEEE); pass the previous result as seed to continue. Crc32("123456789") == 0xCBF43926.
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
