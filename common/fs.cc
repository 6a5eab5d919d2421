#include "common/fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <vector>

#include "common/errors.h"

namespace vicreg::fs {
namespace {

std::string ErrnoText(int err) { return std::strerror(err); }

[[noreturn]] void Fail(const std::string& what, const std::string& path, int err) {
  throw RuntimeFailure(what + " '" + path + "': " + ErrnoText(err));
}

// write() until every byte is out (retries EINTR and short writes).
bool WriteAll(int fd, const char* data, size_t size, int* err) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      *err = errno;
      return false;
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

std::string DirName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string CurrentDir() {
  std::vector<char> buf(PATH_MAX);
  if (::getcwd(buf.data(), buf.size()) == nullptr) Fail("cannot get the current directory for", ".", errno);
  return buf.data();
}

// Absolute, lexically normalized path: no "." or ".." components, no doubled or trailing '/'.
// ".." above "/" stays at "/". `base` (absolute) anchors a relative path.
std::string Normalize(const std::string& path, const std::string& base) {
  std::string full = (!path.empty() && path[0] == '/') ? path : base + "/" + path;
  std::vector<std::string> parts;
  size_t i = 0;
  while (i <= full.size()) {
    size_t j = full.find('/', i);
    if (j == std::string::npos) j = full.size();
    std::string part = full.substr(i, j - i);
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    i = j + 1;
  }
  std::string out;
  for (const auto& p : parts) out += "/" + p;
  return out.empty() ? "/" : out;
}

}  // namespace

void AtomicWriteFile(const std::string& path, std::string_view bytes) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) Fail("cannot create temporary file", tmp, errno);
  int err = 0;
  bool ok = WriteAll(fd, bytes.data(), bytes.size(), &err);
  std::string step = "cannot write";
  if (ok && ::fsync(fd) != 0) ok = false, err = errno, step = "cannot fsync";
  if (::close(fd) != 0 && ok) ok = false, err = errno, step = "cannot close";
  if (!ok) {
    ::unlink(tmp.c_str());
    Fail(step, tmp, err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
    ::unlink(tmp.c_str());
    throw RuntimeFailure("cannot rename '" + tmp + "' to '" + path + "': " + ErrnoText(err));
  }
  // Make the rename itself durable.
  const std::string dir = DirName(path);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) Fail("cannot open directory for fsync", dir, errno);
  if (::fsync(dfd) != 0) {
    err = errno;
    ::close(dfd);
    Fail("cannot fsync directory", dir, err);
  }
  ::close(dfd);
}

// (fs.h: throws UserError naming the file.) Only regular files: see the limit below.
std::string ReadFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw UserError("cannot open '" + path + "': " + ErrnoText(errno));
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    ::close(fd);
    throw UserError("cannot read '" + path + "': it is a directory, expected a file");
  }
  // Only regular files, and never more than the size they had when opened: a device such as
  // /dev/zero (or a file that keeps growing) must not be read until memory runs out. Files that
  // report size 0 (those under /proc) are read up to kMaxSizelessBytes.
  constexpr size_t kMaxSizelessBytes = 16 << 20;
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw UserError("cannot read '" + path + "': not a regular file (a device, pipe or socket); expected a file");
  }
  const size_t limit = st.st_size > 0 ? static_cast<size_t>(st.st_size) : kMaxSizelessBytes;
  std::string out;
  if (st.st_size > 0) out.reserve(limit);
  char buf[1 << 16];
  while (out.size() < limit) {
    ssize_t n = ::read(fd, buf, std::min(sizeof buf, limit - out.size()));
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      throw UserError("cannot read '" + path + "': " + ErrnoText(err));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

bool Exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

void MakeDirs(const std::string& path) {
  if (path.empty()) throw RuntimeFailure("cannot create a directory with an empty path");
  std::string cur;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    cur = path.substr(0, j);
    i = j + 1;
    if (cur.empty() || cur == "." || cur == "..") continue;
    if (::mkdir(cur.c_str(), 0755) == 0) continue;
    int err = errno;
    struct stat st {};
    if (err == EEXIST && ::stat(cur.c_str(), &st) == 0) {
      if (S_ISDIR(st.st_mode)) continue;
      throw RuntimeFailure("cannot create directory '" + path + "': '" + cur + "' exists and is not a directory");
    }
    throw RuntimeFailure("cannot create directory '" + cur + "': " + ErrnoText(err));
  }
}

bool IsInside(const std::string& root, const std::string& path) {
  const std::string cwd = (root.empty() || root[0] != '/') ? CurrentDir() : std::string("/");
  const std::string r = Normalize(root.empty() ? "." : root, cwd);
  const std::string p = Normalize(path, r);
  if (r == "/") return true;
  return p == r || (p.size() > r.size() && p.compare(0, r.size(), r) == 0 && p[r.size()] == '/');
}

uint32_t Crc32(std::string_view bytes, uint32_t seed) {
  uLong crc = seed;
  const auto* data = reinterpret_cast<const Bytef*>(bytes.data());
  size_t left = bytes.size();
  while (left > 0) {
    uInt chunk = static_cast<uInt>(std::min<size_t>(left, 1u << 30));
    crc = ::crc32(crc, data, chunk);
    data += chunk;
    left -= chunk;
  }
  return static_cast<uint32_t>(crc);
}

JsonlWriter::JsonlWriter(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) Fail("cannot open for appending", path, errno);
}

JsonlWriter::~JsonlWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void JsonlWriter::Append(const std::string& json_line) {
  VICREG_CHECK(json_line.find('\n') == std::string::npos, "a JSON line for '" + path_ + "' contains a newline");
  std::string line = json_line + "\n";
  int err = 0;
  if (!WriteAll(fd_, line.data(), line.size(), &err)) Fail("cannot append to", path_, err);
}

}  // namespace vicreg::fs
