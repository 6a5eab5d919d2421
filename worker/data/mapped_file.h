// Read-only bytes of a dataset file: memory-mapped when possible (the page cache is shared by
// every rank on the node and nothing is copied), or owned in memory (decompressed .gz files).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace vicreg::data {

class FileBytes {
 public:
  // mmap(2) of the whole file. Throws UserError naming the file if it cannot be opened.
  static std::shared_ptr<const FileBytes> Map(const std::string& path);
  // Whole gzip stream decompressed into memory once. Throws UserError naming the file on a
  // corrupt or truncated stream.
  static std::shared_ptr<const FileBytes> Gunzip(const std::string& path);
  // Map() or Gunzip() by the ".gz" suffix.
  static std::shared_ptr<const FileBytes> Open(const std::string& path);

  ~FileBytes();
  FileBytes(const FileBytes&) = delete;
  FileBytes& operator=(const FileBytes&) = delete;

  std::string_view bytes() const { return {data_, size_}; }
  const uint8_t* data() const { return reinterpret_cast<const uint8_t*>(data_); }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  FileBytes() = default;
  std::string path_;
  const char* data_ = nullptr;
  uint64_t size_ = 0;
  bool mapped_ = false;
  std::string owned_;
};

bool IsRegularFile(const std::string& path);
bool IsDirectory(const std::string& path);

}  // namespace vicreg::data
