#include "common/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>

#include "common/errors.h"

namespace vicreg::safetensors {
namespace {

struct DTypeEntry {
  DType dtype;
  const char* name;
  int64_t size;
};
constexpr DTypeEntry kDTypes[] = {
    {DType::kBool, "BOOL", 1}, {DType::kU8, "U8", 1},   {DType::kI8, "I8", 1},     {DType::kU16, "U16", 2},
    {DType::kI16, "I16", 2},   {DType::kF16, "F16", 2}, {DType::kBF16, "BF16", 2}, {DType::kU32, "U32", 4},
    {DType::kI32, "I32", 4},   {DType::kF32, "F32", 4}, {DType::kU64, "U64", 8},   {DType::kI64, "I64", 8},
    {DType::kF64, "F64", 8},
};

// Safetensors' own limit on the header size (100 MB); protects against absurd length prefixes.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

uint64_t ReadLeU64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// numel with overflow detection; -1 on overflow.
int64_t SafeNumel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return -1;
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d) return -1;
    n *= d;
  }
  return n;
}

}  // namespace

int64_t DTypeSize(DType dtype) {
  for (const auto& e : kDTypes)
    if (e.dtype == dtype) return e.size;
  VICREG_CHECK(false, "unknown safetensors dtype");
  return 0;
}

std::string DTypeName(DType dtype) {
  for (const auto& e : kDTypes)
    if (e.dtype == dtype) return e.name;
  VICREG_CHECK(false, "unknown safetensors dtype");
  return {};
}

DType ParseDType(const std::string& name, const std::string& context) {
  for (const auto& e : kDTypes)
    if (name == e.name) return e.dtype;
  std::string valid;
  for (const auto& e : kDTypes) valid += std::string(valid.empty() ? "" : ", ") + e.name;
  throw UserError(context + ": unsupported safetensors dtype '" + name + "' (valid: " + valid + ")");
}

int64_t TensorInfo::numel() const { return SafeNumel(shape); }

const TensorInfo* Header::Find(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

Header ParseHeader(std::string_view bytes, const std::string& source) {
  const std::string where = "safetensors file " + source;
  if (bytes.size() < 8)
    throw UserError(where + ": truncated: expected at least 8 bytes (header length), found " +
                    std::to_string(bytes.size()));
  const uint64_t n = ReadLeU64(bytes.data());
  // Errors never quote bytes of a file that may not be a safetensors file at all (a data_dir can
  // point at any file the worker can read): the length field is the file's first 8 bytes.
  if (n > kMaxHeaderBytes || n > bytes.size() - 8)
    throw UserError(where + ": the header length in its first 8 bytes exceeds the file (" +
                    std::to_string(bytes.size()) + " bytes) or the 100 MB limit: not a safetensors file or truncated");
  const std::string_view text = bytes.substr(8, n);
  if (text.empty() || text.front() != '{')
    throw UserError(where + ": header does not start with '{': not a safetensors file");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    // e.what() quotes the bytes last read: say where, not what.
    throw UserError(where + ": header is not valid JSON (syntax error at byte " + std::to_string(8 + e.byte) +
                    "): not a safetensors file or corrupted");
  } catch (const nlohmann::json::exception& e) {
    throw UserError(where + ": header is not valid JSON: not a safetensors file or corrupted");
  }
  if (!j.is_object()) throw UserError(where + ": header must be a JSON object");

  Header h;
  h.data_start = 8 + n;
  const uint64_t buffer = bytes.size() - h.data_start;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    if (key == "__metadata__") {
      if (!it->is_object()) throw UserError(where + ": __metadata__ must be an object of strings");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string())
          throw UserError(where + ": __metadata__." + m.key() + " must be a string, found " + m->dump());
        h.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    const std::string ctx = where + ": tensor '" + key + "'";
    const auto& v = *it;
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      throw UserError(ctx + " must be an object with dtype, shape and data_offsets");
    if (!v["dtype"].is_string()) throw UserError(ctx + ": dtype must be a string");
    TensorInfo t;
    t.name = key;
    t.dtype = ParseDType(v["dtype"].get<std::string>(), ctx);
    if (!v["shape"].is_array()) throw UserError(ctx + ": shape must be an array of non-negative integers");
    for (const auto& d : v["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0)
        throw UserError(ctx + ": shape must be an array of non-negative integers, found " + v["shape"].dump());
      t.shape.push_back(d.get<int64_t>());
    }
    const auto& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw UserError(ctx + ": data_offsets must be [begin, end], found " + off.dump());
    t.begin = off[0].get<uint64_t>();
    t.end = off[1].get<uint64_t>();
    if (t.begin > t.end || t.end > buffer)
      throw UserError(ctx + ": data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
                      "] outside the data buffer of " + std::to_string(buffer) + " bytes (file truncated?)");
    const int64_t numel = SafeNumel(t.shape);
    // numel * size must not wrap around (a wrapped product could match the offsets and pass).
    if (numel < 0 || static_cast<uint64_t>(numel) > std::numeric_limits<uint64_t>::max() / DTypeSize(t.dtype))
      throw UserError(ctx + ": shape " + ShapeString(t.shape) + " overflows");
    const uint64_t expect = static_cast<uint64_t>(numel) * DTypeSize(t.dtype);
    if (t.end - t.begin != expect)
      throw UserError(ctx + ": shape " + ShapeString(t.shape) + " " + DTypeName(t.dtype) + " needs " +
                      std::to_string(expect) + " bytes, data_offsets give " + std::to_string(t.end - t.begin));
    h.tensors.push_back(std::move(t));
  }
  std::sort(h.tensors.begin(), h.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin < b.begin || (a.begin == b.begin && a.end < b.end);
  });
  uint64_t pos = 0;
  for (const auto& t : h.tensors) {
    if (t.begin != pos)
      throw UserError(where + ": tensor '" + t.name + "' starts at byte " + std::to_string(t.begin) +
                      " of the data buffer, expected " + std::to_string(pos) +
                      " (tensors must cover the buffer without gaps or overlaps)");
    pos = t.end;
  }
  if (pos != buffer)
    throw UserError(where + ": tensors cover " + std::to_string(pos) + " bytes but the data buffer has " +
                    std::to_string(buffer) + " (trailing bytes)");
  return h;
}

std::string_view TensorBytes(std::string_view file_bytes, const Header& header, const TensorInfo& t) {
  VICREG_CHECK(header.data_start + t.end <= file_bytes.size(), "tensor outside the file bytes it was parsed from");
  return file_bytes.substr(header.data_start + t.begin, t.end - t.begin);
}

// ---- Writer -------------------------------------------------------------------------------

Writer::Writer(std::string path, std::vector<Spec> tensors, std::map<std::string, std::string> metadata)
    : path_(std::move(path)), specs_(std::move(tensors)) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    j["__metadata__"] = m;
  }
  uint64_t offset = 0;
  for (const auto& s : specs_) {
    if (s.name.empty() || s.name == "__metadata__")
      throw UserError("safetensors writer " + path_ + ": invalid tensor name '" + s.name + "'");
    if (j.contains(s.name)) throw UserError("safetensors writer " + path_ + ": duplicate tensor name '" + s.name + "'");
    const int64_t numel = SafeNumel(s.shape);
    if (numel < 0)
      throw UserError("safetensors writer " + path_ + ": invalid shape " + ShapeString(s.shape) + " for '" + s.name +
                      "'");
    const uint64_t size = static_cast<uint64_t>(numel) * DTypeSize(s.dtype);
    j[s.name] = {{"dtype", DTypeName(s.dtype)}, {"shape", s.shape}, {"data_offsets", {offset, offset + size}}};
    sizes_.push_back(size);
    offset += size;
  }
  std::string header = j.dump();
  header.append((8 - header.size() % 8) % 8, ' ');  // align the data buffer to 8 bytes

  tmp_path_ = path_ + ".tmp." + std::to_string(::getpid());
  file_ = std::fopen(tmp_path_.c_str(), "wb");
  if (!file_) throw UserError("cannot create " + tmp_path_ + " (for " + path_ + "): " + std::strerror(errno));
  char len[8];
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  WriteRaw(len, 8);
  WriteRaw(header.data(), header.size());
  while (current_ < sizes_.size() && sizes_[current_] == 0) ++current_;
}

Writer::~Writer() {
  if (file_) std::fclose(file_);
  if (!finished_ && !tmp_path_.empty()) ::unlink(tmp_path_.c_str());
}

void Writer::WriteRaw(const void* data, uint64_t nbytes) {
  if (nbytes && std::fwrite(data, 1, nbytes, file_) != nbytes)
    throw RuntimeFailure("writing " + tmp_path_ + " failed: " + std::strerror(errno));
}

void Writer::Write(const void* data, uint64_t nbytes) {
  const char* p = static_cast<const char*>(data);
  while (nbytes > 0) {
    VICREG_CHECK(current_ < sizes_.size(), "safetensors writer " + path_ + ": more bytes written than declared");
    const uint64_t take = std::min(nbytes, sizes_[current_] - written_in_current_);
    WriteRaw(p, take);
    p += take;
    nbytes -= take;
    written_in_current_ += take;
    if (written_in_current_ == sizes_[current_]) {
      written_in_current_ = 0;
      ++current_;
      while (current_ < sizes_.size() && sizes_[current_] == 0) ++current_;
    }
  }
}

void Writer::Finish() {
  VICREG_CHECK(current_ == sizes_.size() && written_in_current_ == 0,
               "safetensors writer " + path_ + ": tensor '" + (current_ < specs_.size() ? specs_[current_].name : "") +
                   "' did not get all its bytes");
  if (std::fflush(file_) != 0 || ::fsync(::fileno(file_)) != 0)
    throw RuntimeFailure("flushing " + tmp_path_ + " failed: " + std::strerror(errno));
  std::fclose(file_);
  file_ = nullptr;
  if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0)
    throw RuntimeFailure("renaming " + tmp_path_ + " to " + path_ + " failed: " + std::strerror(errno));
  finished_ = true;
  // fsync the directory so the rename itself is durable.
  std::string dir = path_.substr(0, path_.find_last_of('/') == std::string::npos ? 0 : path_.find_last_of('/'));
  if (dir.empty()) dir = path_.find('/') == 0 ? "/" : ".";
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void WriteFile(const std::string& path, const std::vector<TensorData>& tensors,
               const std::map<std::string, std::string>& metadata) {
  std::vector<Writer::Spec> specs;
  for (const auto& t : tensors) {
    const int64_t numel = SafeNumel(t.shape);
    if (numel < 0 || static_cast<uint64_t>(numel) * DTypeSize(t.dtype) != t.bytes.size())
      throw UserError("safetensors writer " + path + ": tensor '" + t.name + "' has " + std::to_string(t.bytes.size()) +
                      " bytes, shape " + ShapeString(t.shape) + " " + DTypeName(t.dtype) + " needs " +
                      std::to_string(numel < 0 ? 0 : numel * DTypeSize(t.dtype)));
    specs.push_back({t.name, t.dtype, t.shape});
  }
  Writer w(path, std::move(specs), metadata);
  for (const auto& t : tensors) w.Write(t.bytes.data(), t.bytes.size());
  w.Finish();
}

}  // namespace vicreg::safetensors
