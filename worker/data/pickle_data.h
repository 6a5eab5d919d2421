// A strict, data-only reader of Python pickles (internal to worker/data): exactly the subset that
// torchvision's CIFAR-10/100 "python version" files use, and nothing that could run code.
//
// Accepted (protocols 2 to 5): dicts, lists, tuples, bytes (incl. Python 2 `str`), str, ints,
// floats, None/True/False, memo put/get, frames; and numpy arrays, which pickle themselves through
// three callables. Those are never called: a GLOBAL / STACK_GLOBAL naming one of
//   numpy.core.multiarray._reconstruct, numpy.ndarray, numpy.dtype     (protocols 2-4)
//   numpy.core.numeric._frombuffer                                      (protocol 5)
//   _codecs.encode                                   (bytes written by Python 3 at protocol 2)
// (numpy 2 spells numpy.core as numpy._core; both are accepted) pushes a marker, and REDUCE / BUILD
// on such a marker with the argument shapes numpy writes build an Array value from the bytes.
// Every other global (os.system, builtins.eval, ...), and INST, OBJ, NEWOBJ, PERSID, EXT*, the
// protocol-0 text opcodes, or a REDUCE/BUILD on anything else is refused with a UserError naming
// the file, the opcode and its byte offset. Nothing in the file is ever executed or imported.
//
// Byte payloads (the image data) are views into the caller's buffer when the file stores them
// contiguously (BINSTRING, BINBYTES, BYTEARRAY8); the caller keeps that buffer alive.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace vicreg::data::pickle {

struct Value;
using ValuePtr = std::shared_ptr<Value>;

// Bytes or UTF-8 text: a view into the source buffer or into `owned`.
struct Blob {
  std::string_view view;
  std::shared_ptr<const std::string> owned;
};

// A numpy array: dtype kind ('u', 'i', 'f', 'b'), item size in bytes, C or Fortran order.
struct Array {
  char kind = 0;
  int itemsize = 0;
  bool little_endian = true;  // '|' or '<' (or '=' on this little-endian host)
  std::vector<int64_t> shape;
  bool fortran = false;
  Blob data;  // exactly prod(shape) * itemsize bytes
};

enum class Kind { kNone, kBool, kInt, kFloat, kBytes, kStr, kList, kTuple, kDict, kArray, kMarker };

struct Value {
  Kind kind = Kind::kNone;
  bool b = false;  // kBool (internal dtype marker: BUILD seen)
  int64_t i = 0;
  double f = 0;
  Blob blob;                                        // kBytes, kStr
  std::vector<ValuePtr> items;                      // kList, kTuple
  std::vector<std::pair<ValuePtr, ValuePtr>> dict;  // kDict, in file order
  Array array;                                      // kArray
  int marker = 0;                                   // kMarker: an allowed global (internal)
  bool shared = false;                              // handed out by a memo get: never mutated again (so no cycles)
  int depth = 1;                                    // nesting depth (bounded)
};

// Parses a whole pickle. `file` is used in messages only. Throws UserError
// "<file>: pickle ... at byte N ..." for anything outside the subset, truncated or inconsistent.
ValuePtr Parse(std::string_view bytes, const std::string& file);

// Python type name for messages: "dict", "list", "bytes", "numpy.ndarray", ...
std::string TypeName(const Value& v);
// Dict lookup by a str or bytes key equal to `key`; nullptr if absent (or v is not a dict).
const Value* Find(const Value& dict, std::string_view key);
// The text of a str or bytes value; false for other kinds.
bool AsText(const Value& v, std::string* out);

}  // namespace vicreg::data::pickle
