#include "worker/data/torch_archive.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <caffe2/serialize/inline_container.h>

#define VICREG_COMPAT_ARCHIVE
#include "worker/torch_compat.h"

namespace vicreg::data {
namespace {

[[noreturn]] void Bad(const std::string& what) { throw std::runtime_error(what); }

// Bytes in memory; a read past the end returns fewer bytes (0 at or past the end).
class ClampedReader final : public caffe2::serialize::ReadAdapterInterface {
 public:
  ClampedReader(const void* data, size_t size) : data_(static_cast<const char*>(data)), size_(size) {}
  size_t size() const override { return size_; }
  size_t read(uint64_t pos, void* buf, size_t n, const char* /*what*/) const override {
    if (pos >= size_) return 0;
    const size_t k = static_cast<size_t>(std::min<uint64_t>(n, size_ - pos));
    if (k > 0) std::memcpy(buf, data_ + pos, k);
    return k;
  }

 private:
  const char* data_;
  size_t size_;
};

uint64_t Le(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// The zip's central directory, checked before miniz sees it: every entry lies inside the file and
// claims no more uncompressed bytes than it can hold (stored: its own size; deflate: 1032:1, the
// format's limit). LibTorch allocates an entry's claimed size before extracting it, so a garbled
// size field in a 1-KB file would otherwise allocate gigabytes.
void CheckZipSizes(const unsigned char* p, uint64_t n) {
  constexpr uint64_t kEocd = 22, kCdEntry = 46;
  if (n < kEocd) Bad("not a zip archive: " + std::to_string(n) + " bytes");
  uint64_t eocd = n - kEocd;
  const uint64_t lowest = n > kEocd + 0xFFFF ? n - kEocd - 0xFFFF : 0;
  while (Le(p + eocd, 4) != 0x06054b50) {
    if (eocd == lowest) Bad("zip end-of-central-directory record not found (truncated file?)");
    --eocd;
  }
  uint64_t entries = Le(p + eocd + 10, 2), cd_size = Le(p + eocd + 12, 4), cd_ofs = Le(p + eocd + 16, 4);
  if (entries == 0xFFFF || cd_size == 0xFFFFFFFF || cd_ofs == 0xFFFFFFFF) {  // zip64
    if (eocd < 20 || Le(p + eocd - 20, 4) != 0x07064b50) Bad("zip64 locator missing");
    const uint64_t z = Le(p + eocd - 20 + 8, 8);
    if (z > n || n - z < 56 || Le(p + z, 4) != 0x06064b50) Bad("zip64 end-of-central-directory record out of place");
    entries = Le(p + z + 32, 8);
    cd_size = Le(p + z + 40, 8);
    cd_ofs = Le(p + z + 48, 8);
  }
  if (cd_ofs > n || cd_size > n - cd_ofs) Bad("zip central directory lies outside the file");
  if (entries > cd_size / kCdEntry) Bad("zip central directory too small for its " + std::to_string(entries) + " entries");
  uint64_t at = cd_ofs;
  const uint64_t cd_end = cd_ofs + cd_size;
  for (uint64_t i = 0; i < entries; ++i) {
    if (cd_end - at < kCdEntry || Le(p + at, 4) != 0x02014b50) Bad("zip central directory entry " + std::to_string(i) + " is garbled");
    const uint64_t method = Le(p + at + 10, 2), name_len = Le(p + at + 28, 2), extra_len = Le(p + at + 30, 2),
                   comment_len = Le(p + at + 32, 2);
    uint64_t comp = Le(p + at + 20, 4), uncomp = Le(p + at + 24, 4), local = Le(p + at + 42, 4);
    const uint64_t var = name_len + extra_len + comment_len;
    if (cd_end - at - kCdEntry < var) Bad("zip central directory entry " + std::to_string(i) + " runs past it");
    const std::string name(reinterpret_cast<const char*>(p + at + kCdEntry), std::min<uint64_t>(name_len, 80));
    // Zip64 sizes/offset: in the extra field 0x0001, for each field saturated at 0xFFFFFFFF.
    for (uint64_t e = at + kCdEntry + name_len, e_end = e + extra_len; e_end - e >= 4;) {
      const uint64_t id = Le(p + e, 2), len = Le(p + e + 2, 2);
      if (e_end - e - 4 < len) break;
      if (id == 0x0001) {
        uint64_t f = e + 4;
        auto take = [&](uint64_t& v) {
          if (v != 0xFFFFFFFF) return;
          if (e + 4 + len - f < 8) Bad("zip64 extra field of '" + name + "' is short");
          v = Le(p + f, 8);
          f += 8;
        };
        take(uncomp);
        take(comp);
        take(local);
      }
      e += 4 + len;
    }
    if (local > n || comp > n - local) Bad("zip entry '" + name + "' lies outside the file");
    if (method == 0 && uncomp != comp)
      Bad("zip entry '" + name + "' is stored with " + std::to_string(comp) + " bytes but claims " +
          std::to_string(uncomp));
    if (method == 8 && uncomp / 1032 > comp + 1)
      Bad("zip entry '" + name + "' claims " + std::to_string(uncomp) + " bytes from " + std::to_string(comp) +
          " compressed ones");
    at += kCdEntry + var;
  }
}

// The pickle's opcodes, checked before LibTorch's unpickler runs them: every length-prefixed
// string/bytes fits in the bytes left, and every memo index (BINPUT) is one a writer could have
// used (at most the number of opcodes so far). The unpickler allocates a claimed length before
// reading it and grows its memo table to a claimed index, so one garbled field would otherwise
// allocate gigabytes. The stack is checked too: every opcode finds the values and the MARK it
// takes (LibTorch 1.13 pops its value stack and its mark stack without looking, so a garbled
// opcode that pops an empty stack corrupted the heap; fuzz_data_torch_cache found it). Opcodes it
// does not know end the scan (the unpickler refuses them itself).
void CheckPickleLengths(const unsigned char* p, uint64_t n) {
  uint64_t pos = 0, ops = 0, op_pos = 0;
  uint64_t depth = 0;           // values on the unpickler's stack
  std::vector<uint64_t> marks;  // the stack depth at each open MARK
  auto where = [&](unsigned char op) {
    char b[8];
    std::snprintf(b, sizeof b, "0x%02x", op);
    return std::string(" (opcode ") + b + " at byte " + std::to_string(op_pos) + ")";
  };
  auto pop = [&](unsigned char op, uint64_t k) {
    if (depth < k) Bad("pickle stack underflow: needs " + std::to_string(k) + " values, has " + std::to_string(depth) + where(op));
    depth -= k;
  };
  auto pop_mark = [&](unsigned char op) {
    if (marks.empty()) Bad("pickle stack underflow: no MARK to pop to" + where(op));
    const uint64_t m = marks.back();
    marks.pop_back();
    if (depth < m) Bad("pickle stack underflow: values below a MARK were popped" + where(op));
    depth = m;
  };
  // Values in: pop `in`, push `out` (after the MARK group for the group opcodes).
  auto stack_effect = [&](unsigned char op) {
    switch (op) {
      case '(': marks.push_back(depth); return;                                  // MARK
      case '0': pop(op, 1); return;                                              // POP
      case '1': pop_mark(op); return;                                            // POP_MARK
      case '2': pop(op, 1); depth += 2; return;                                  // DUP
      case 't': case 'l': case 'd': case 0x91: case 'i': pop_mark(op); depth += 1; return;  // TUPLE LIST DICT FROZENSET INST
      case 'o': pop_mark(op); depth += 1; return;                                // OBJ
      case 'e': case 'u': case 0x90: pop_mark(op); pop(op, 1); depth += 1; return;  // APPENDS SETITEMS ADDITEMS
      case 0x85: case 'Q': case 'q': case 'r': case 'p': case 0x94: case 0x98: pop(op, 1); depth += 1; return;
      case 0x86: case 'a': case 'R': case 0x81: case 0x93: case 'b': pop(op, 2); depth += 1; return;
      case 0x87: case 's': case 0x92: pop(op, 3); depth += 1; return;            // TUPLE3 SETITEM NEWOBJ_EX
      case 0x80: case 0x95: return;                                              // PROTO FRAME
      default: depth += 1; return;                                               // every other known opcode pushes one value
    }
  };
  auto need = [&](uint64_t k, const char* what) {
    if (n - pos < k)
      Bad(std::string("pickle truncated: ") + what + " at byte " + std::to_string(pos) + " needs " + std::to_string(k) +
          " bytes, " + std::to_string(n - pos) + " left");
  };
  auto lines = [&](int count) {
    for (int i = 0; i < count; ++i) {
      const void* nl = std::memchr(p + pos, '\n', n - pos);
      if (!nl) Bad("pickle truncated: a text argument at byte " + std::to_string(pos) + " has no end of line");
      pos = static_cast<uint64_t>(static_cast<const unsigned char*>(nl) - p) + 1;
    }
  };
  while (pos < n) {
    op_pos = pos;
    const unsigned char op = p[pos++];
    ++ops;
    int fixed = -1, len_bytes = 0;
    switch (op) {
      case '.': pop(op, 1); return;  // STOP: the result
      case '(': case '0': case '1': case '2': case 'N': case 'R': case 'b': case ']': case 'a': case 'e':
      case '}': case 's': case 'u': case ')': case 't': case 'Q': case 'd': case 'l': case 'o': case 0x81:
      case 0x85: case 0x86: case 0x87: case 0x88: case 0x89: case 0x8f: case 0x90: case 0x91: case 0x92:
      case 0x93: case 0x94: case 0x97: case 0x98: fixed = 0; break;
      case 'K': case 'h': case 0x80: case 0x82: fixed = 1; break;  // BININT1 BINGET PROTO EXT1
      case 'M': case 0x83: fixed = 2; break;                       // BININT2 EXT2
      case 'J': case 'j': case 0x84: fixed = 4; break;             // BININT LONG_BINGET EXT4
      case 'G': case 0x95: fixed = 8; break;                       // BINFLOAT FRAME
      case 'q': case 'r': {                                        // BINPUT LONG_BINPUT
        const int k = op == 'q' ? 1 : 4;
        need(k, "a memo index");
        const uint64_t id = Le(p + pos, k);
        if (id > ops) Bad("pickle memo index " + std::to_string(id) + " at byte " + std::to_string(pos) + " is out of order");
        pos += k;
        stack_effect(op);
        continue;
      }
      case 'U': case 'C': case 0x8c: case 0x8a: len_bytes = 1; break;  // SHORT_BINSTRING/BYTES/UNICODE LONG1
      case 'T': case 'X': case 'B': case 0x8b: len_bytes = 4; break;   // BINSTRING BINUNICODE BINBYTES LONG4
      case 0x8d: case 0x8e: case 0x96: len_bytes = 8; break;           // BINUNICODE8 BINBYTES8 BYTEARRAY8
      case 'I': case 'L': case 'F': case 'S': case 'V': case 'p': case 'g': case 'P': lines(1); break;
      case 'c': case 'i': lines(2); break;  // GLOBAL INST
      default: return;
    }
    stack_effect(op);
    if (fixed < 0 && len_bytes == 0) continue;  // text-argument opcodes: already read
    if (fixed >= 0) {
      need(static_cast<uint64_t>(fixed), "an argument");
      pos += static_cast<uint64_t>(fixed);
      continue;
    }
    need(static_cast<uint64_t>(len_bytes), "a length");
    const uint64_t len = Le(p + pos, len_bytes);
    pos += static_cast<uint64_t>(len_bytes);
    need(len, "a string");
    pos += len;
  }
}

// Every tensor reachable from `root` must lie inside its storage, and its storage inside the record
// it was read from. LibTorch 1.13's unpickler checks neither: it sizes a storage by the element
// count the pickle claims, not by its record (a garbled count made a 12-byte record a 16-byte
// tensor), and sets a tensor's offset, sizes and strides on the storage as the pickle says (an
// offset past the end made a 2-element label tensor read 16 bytes past it): heap overflows on first
// use, both found by fuzz_data_torch_cache.
void CheckTensorStorages(const c10::IValue& root, const std::map<const void*, std::pair<std::string, size_t>>& records) {
  std::vector<c10::IValue> todo{root};
  while (!todo.empty()) {
    const c10::IValue v = std::move(todo.back());
    todo.pop_back();
    if (v.isTensor()) {
      const at::Tensor& t = v.toTensor();
      if (!t.defined() || !t.has_storage()) continue;
      const size_t claimed = t.storage().nbytes();
      auto it = records.find(t.storage().data());
      const size_t held = it == records.end() ? 0 : it->second.second;
      if (claimed > held)
        Bad("a tensor's storage " + (it == records.end() ? std::string("comes from no record") : "'data/" + it->second.first + "'") +
            " claims " + std::to_string(claimed) + " bytes, its record holds " + std::to_string(held));
      // The bytes the view spans: (offset + sum (size - 1) * stride + 1) elements, all non-negative.
      const int64_t offset = t.storage_offset();
      bool empty = false, ok = offset >= 0;
      for (int64_t d = 0; ok && d < t.dim(); ++d) {
        ok = t.size(d) >= 0 && t.stride(d) >= 0;
        empty = empty || t.size(d) == 0;
      }
      if (!ok) Bad("a tensor has a negative size, stride or storage offset");
      if (empty) continue;
      unsigned __int128 last = static_cast<uint64_t>(offset);
      for (int64_t d = 0; d < t.dim(); ++d)
        last += static_cast<unsigned __int128>(t.size(d) - 1) * static_cast<uint64_t>(t.stride(d));
      const unsigned __int128 span = (last + 1) * t.dtype().itemsize();
      if (span > claimed)
        Bad("a tensor of shape " + std::to_string(t.dim()) + "-d at storage offset " + std::to_string(offset) +
            " reaches past its storage of " + std::to_string(claimed) + " bytes");
    } else if (v.isGenericDict()) {
      for (const auto& kv : v.toGenericDict()) {
        todo.push_back(kv.key());
        todo.push_back(kv.value());
      }
    } else if (v.isList()) {
      for (const c10::IValue& x : v.toListRef()) todo.push_back(x);
    } else if (v.isTuple()) {
      for (const c10::IValue& x : v.toTupleRef().elements()) todo.push_back(x);
    } else if (v.isTensorList()) {
      for (const at::Tensor& x : v.toTensorVector()) todo.push_back(x);
    }
  }
}

}  // namespace

c10::IValue LoadTorchArchive(const void* data, size_t size) {
  CheckZipSizes(static_cast<const unsigned char*>(data), size);
  caffe2::serialize::PyTorchStreamReader reader(std::make_shared<ClampedReader>(data, size));
  // As torch::jit::readArchiveAndTensors("data", ...) reads it, with the checks above between.
  auto pickle = reader.getRecord("data.pkl");
  const auto* bytes = static_cast<const unsigned char*>(std::get<0>(pickle).get());
  const size_t pickle_size = std::get<1>(pickle);
  CheckPickleLengths(bytes, pickle_size);
  size_t pos = 0;
  auto read = [&](char* buf, size_t n) -> size_t {
    n = std::min(n, pickle_size - pos);
    if (n > 0) std::memcpy(buf, bytes + pos, n);
    pos += n;
    return n;
  };
  std::map<const void*, std::pair<std::string, size_t>> records;  // storage data -> (key, bytes)
  auto read_record = [&](const std::string& key) {
    auto record = reader.getRecord("data/" + key);
    records[std::get<0>(record).get()] = {key.substr(0, 40), std::get<1>(record)};
    return std::move(std::get<0>(record));
  };
  c10::IValue root = compat::Unpickle(read, read_record, reader.version());
  CheckTensorStorages(root, records);
  return root;
}

}  // namespace vicreg::data
