// Torch-free reader/writer of the safetensors format (https://github.com/huggingface/safetensors):
//
//   [8 bytes: N, little-endian u64][N bytes: JSON header][data buffer]
//   header = {"<tensor name>": {"dtype": "U8", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//             "__metadata__": {"<key>": "<string value>", ...}}          (metadata optional)
//   data_offsets are relative to the start of the data buffer; tensors are row-major (C order),
//   little-endian, and together cover the buffer without gaps or overlaps.
//
// The reader works over raw bytes (typically an mmap of the file, see worker/data/mapped_file.h)
// and validates everything against the byte count; the writer streams tensors to a temporary file
// and renames it into place (tmp + fsync + rename), so a crash never leaves a partial file.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace vicreg::safetensors {

enum class DType { kBool, kU8, kI8, kU16, kI16, kF16, kBF16, kU32, kI32, kF32, kU64, kI64, kF64 };

int64_t DTypeSize(DType dtype);      // bytes per element
std::string DTypeName(DType dtype);  // "U8", "I64", "F32", ...
// Parses "U8" etc.; throws UserError naming `context`, the bad value and the valid names.
DType ParseDType(const std::string& name, const std::string& context);

struct TensorInfo {
  std::string name;
  DType dtype = DType::kU8;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // relative to the data buffer
  int64_t numel() const;
  uint64_t nbytes() const { return end - begin; }
};

struct Header {
  std::vector<TensorInfo> tensors;                        // sorted by data offset
  std::map<std::string, std::string> metadata;            // "__metadata__" (string values only)
  uint64_t data_start = 0;                                // absolute offset of the data buffer in the file
  const TensorInfo* Find(const std::string& name) const;  // nullptr if absent
};

// Parses and validates the header of a whole file's bytes. `source` (the file name) appears in
// every error: header length beyond the file, bad JSON, unknown dtype, offsets out of range,
// byte count != numel * dtype size, gaps/overlaps.
Header ParseHeader(std::string_view file_bytes, const std::string& source);

// The bytes of one tensor inside `file_bytes` (validated by ParseHeader).
std::string_view TensorBytes(std::string_view file_bytes, const Header& header, const TensorInfo& t);

// Streaming writer. Declare every tensor up front, then write their bytes in declaration order
// (in as many Write() calls as convenient), then Finish(). Without Finish() the destructor
// removes the temporary file and the destination is untouched.
class Writer {
 public:
  struct Spec {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
  };
  Writer(std::string path, std::vector<Spec> tensors, std::map<std::string, std::string> metadata = {});
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;
  // Appends bytes to the current tensor (moves on to the next one when it is full).
  void Write(const void* data, uint64_t nbytes);
  // Checks every tensor got exactly its bytes, fsyncs and renames into place.
  void Finish();

 private:
  void WriteRaw(const void* data, uint64_t nbytes);
  std::string path_, tmp_path_;
  std::vector<Spec> specs_;
  std::vector<uint64_t> sizes_;
  size_t current_ = 0;
  uint64_t written_in_current_ = 0;
  std::FILE* file_ = nullptr;
  bool finished_ = false;
};

// Convenience: one call for tensors already in memory.
struct TensorData {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::string_view bytes;  // numel * DTypeSize(dtype) bytes
};
void WriteFile(const std::string& path, const std::vector<TensorData>& tensors,
               const std::map<std::string, std::string>& metadata = {});

}  // namespace vicreg::safetensors
