#include "worker/data/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>

#include "common/errors.h"

namespace vicreg::data {

bool IsRegularFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::shared_ptr<const FileBytes> FileBytes::Map(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw UserError("cannot open dataset file " + path + ": " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw UserError("dataset file " + path + " is not a regular file");
  }
  std::shared_ptr<FileBytes> f(new FileBytes());
  f->path_ = path;
  f->size_ = static_cast<uint64_t>(st.st_size);
  if (f->size_ > 0) {
    void* p = ::mmap(nullptr, f->size_, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      throw UserError("cannot mmap dataset file " + path + ": " + std::strerror(err));
    }
    f->data_ = static_cast<const char*>(p);
    f->mapped_ = true;
  } else {
    f->data_ = f->owned_.data();
  }
  ::close(fd);  // the mapping stays valid
  return f;
}

std::shared_ptr<const FileBytes> FileBytes::Gunzip(const std::string& path) {
  gzFile gz = ::gzopen(path.c_str(), "rb");
  if (!gz) throw UserError("cannot open dataset file " + path + ": " + std::strerror(errno));
  ::gzbuffer(gz, 1 << 20);
  std::shared_ptr<FileBytes> f(new FileBytes());
  f->path_ = path;
  std::string& out = f->owned_;
  // Start from 4x the compressed size (IDX images compress ~2-4x) and grow geometrically.
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) out.reserve(static_cast<size_t>(st.st_size) * 4);
  char buf[1 << 16];
  for (;;) {
    int n = ::gzread(gz, buf, sizeof(buf));
    if (n < 0) {
      int errnum = 0;
      std::string msg = ::gzerror(gz, &errnum);
      ::gzclose(gz);
      throw UserError("dataset file " + path + " is not a valid gzip stream: " + msg);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  if (::gzdirect(gz)) {
    ::gzclose(gz);
    throw UserError("dataset file " + path + " ends in .gz but is not gzip-compressed (expected the gzip magic 1f 8b)");
  }
  // gzread returns 0 at a premature end too; gzerror tells a truncated stream apart.
  int errnum = 0;
  const char* msg = ::gzerror(gz, &errnum);
  if (errnum != Z_OK && errnum != Z_STREAM_END) {
    std::string m = msg ? msg : "";
    ::gzclose(gz);
    throw UserError("dataset file " + path + " is a corrupt or truncated gzip stream: " + m);
  }
  if (::gzclose(gz) != Z_OK) throw UserError("dataset file " + path + " is a corrupt or truncated gzip stream");
  f->data_ = out.data();
  f->size_ = out.size();
  return f;
}

std::shared_ptr<const FileBytes> FileBytes::Open(const std::string& path) {
  if (path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0) return Gunzip(path);
  return Map(path);
}

FileBytes::~FileBytes() {
  if (mapped_ && data_) ::munmap(const_cast<char*>(data_), size_);
}

}  // namespace vicreg::data
