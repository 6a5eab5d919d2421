// The data-only pickle reader (pickle_data.h): a stack machine over the accepted opcodes; the
// three numpy callables and _codecs.encode are markers interpreted here, never called.
#include "worker/data/pickle_data.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <unordered_map>

#include "common/errors.h"

namespace vicreg::data::pickle {
namespace {

constexpr int kMaxDepth = 64;         // nesting of lists/dicts/tuples
constexpr size_t kMaxTextQuote = 64;  // longest global name quoted in a message

// Markers (Value::marker) for the allowed globals and the half-built numpy objects.
enum Marker : int {
  kReconstruct = 1,  // numpy.core.multiarray._reconstruct
  kNdarrayClass,     // numpy.ndarray
  kDtypeClass,       // numpy.dtype
  kFrombuffer,       // numpy.core.numeric._frombuffer
  kCodecsEncode,     // _codecs.encode
  kDtype,            // a numpy.dtype instance (kind/itemsize in Value::array), built or not
  kPendingArray,     // _reconstruct(ndarray, ...) result waiting for its BUILD
};

const char* OpName(uint8_t op) {
  switch (op) {
    case 0x80: return "PROTO";
    case 0x95: return "FRAME";
    case '.': return "STOP";
    case '(': return "MARK";
    case '}': return "EMPTY_DICT";
    case ']': return "EMPTY_LIST";
    case ')': return "EMPTY_TUPLE";
    case 'd': return "DICT";
    case 'l': return "LIST";
    case 't': return "TUPLE";
    case 0x85: return "TUPLE1";
    case 0x86: return "TUPLE2";
    case 0x87: return "TUPLE3";
    case 's': return "SETITEM";
    case 'u': return "SETITEMS";
    case 'a': return "APPEND";
    case 'e': return "APPENDS";
    case 'q': return "BINPUT";
    case 'r': return "LONG_BINPUT";
    case 0x94: return "MEMOIZE";
    case 'h': return "BINGET";
    case 'j': return "LONG_BINGET";
    case 'J': return "BININT";
    case 'K': return "BININT1";
    case 'M': return "BININT2";
    case 0x8a: return "LONG1";
    case 0x8b: return "LONG4";
    case 'N': return "NONE";
    case 0x88: return "NEWTRUE";
    case 0x89: return "NEWFALSE";
    case 'G': return "BINFLOAT";
    case 'U': return "SHORT_BINSTRING";
    case 'T': return "BINSTRING";
    case 'C': return "SHORT_BINBYTES";
    case 'B': return "BINBYTES";
    case 0x8e: return "BINBYTES8";
    case 'X': return "BINUNICODE";
    case 0x8c: return "SHORT_BINUNICODE";
    case 0x8d: return "BINUNICODE8";
    case 0x96: return "BYTEARRAY8";
    case 'c': return "GLOBAL";
    case 0x93: return "STACK_GLOBAL";
    case 'R': return "REDUCE";
    case 'b': return "BUILD";
    case '0': return "POP";
    case '1': return "POP_MARK";
    case '2': return "DUP";
    case 'i': return "INST";
    case 'o': return "OBJ";
    case 0x81: return "NEWOBJ";
    case 0x92: return "NEWOBJ_EX";
    case 'P': return "PERSID";
    case 'Q': return "BINPERSID";
    case 0x82: return "EXT1";
    case 0x83: return "EXT2";
    case 0x84: return "EXT4";
    case 'I': return "INT";
    case 'L': return "LONG";
    case 'S': return "STRING";
    case 'V': return "UNICODE";
    case 'F': return "FLOAT";
    case 'g': return "GET";
    case 'p': return "PUT";
    case 0x8f: return "EMPTY_SET";
    case 0x90: return "ADDITEMS";
    case 0x91: return "FROZENSET";
    case 0x97: return "NEXT_BUFFER";
    case 0x98: return "READONLY_BUFFER";
    default: return nullptr;
  }
}

// A global name is quoted in messages only when it looks like a Python dotted name (never
// arbitrary file bytes).
std::string QuoteName(const std::string& s) {
  bool ok = !s.empty() && s.size() <= kMaxTextQuote;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.')) ok = false;
  return ok ? "'" + s + "'" : "(a name that is not a Python identifier)";
}

class Parser {
 public:
  Parser(std::string_view bytes, const std::string& file) : in_(bytes), file_(file) {}

  ValuePtr Run() {
    if (in_.empty()) throw UserError(file_ + ": empty file (expected a Python pickle)");
    while (true) {
      op_pos_ = pos_;
      const uint8_t op = U8();
      switch (op) {
        case 0x80: {
          const int proto = U8();
          if (proto < 2 || proto > 5)
            Fail("pickle protocol " + std::to_string(proto) + " is not supported (2 to 5 are)");
          break;
        }
        case 0x95: {
          const uint64_t n = U64();
          if (n > in_.size() - pos_) Truncated(n);
          break;  // frames are transparent
        }
        case '.': {
          if (stack_.size() != 1 || !marks_.empty())
            Fail("STOP with " + std::to_string(stack_.size()) + " values on the stack (expected exactly one)");
          ValuePtr v = stack_.back();
          if (v->kind == Kind::kMarker) Fail("the pickled object is a " + TypeName(*v) + ", not data");
          return v;
        }
        case '(': marks_.push_back(stack_.size()); break;
        case '}': Push(New(Kind::kDict)); break;
        case ']': Push(New(Kind::kList)); break;
        case ')': Push(New(Kind::kTuple)); break;
        case 'd': {
          auto items = PopMark();
          if (items.size() % 2) Fail("DICT with an odd number of items");
          ValuePtr d = New(Kind::kDict);
          for (size_t k = 0; k < items.size(); k += 2) SetItem(d, items[k], items[k + 1]);
          Push(d);
          break;
        }
        case 'l':
        case 't': {
          ValuePtr v = New(op == 'l' ? Kind::kList : Kind::kTuple);
          for (auto& x : PopMark()) AddItem(v, x);
          Push(v);
          break;
        }
        case 0x85:
        case 0x86:
        case 0x87: {
          const size_t n = op - 0x84u;
          if (StackAboveMark() < n) Fail("TUPLE" + std::to_string(n) + " needs " + std::to_string(n) + " values");
          ValuePtr v = New(Kind::kTuple);
          for (size_t k = stack_.size() - n; k < stack_.size(); ++k) AddItem(v, stack_[k]);
          stack_.resize(stack_.size() - n);
          Push(v);
          break;
        }
        case 's': {
          if (StackAboveMark() < 3) Fail("SETITEM needs a dict, a key and a value");
          ValuePtr val = Pop(), key = Pop();
          SetItem(Mutable(stack_.back(), Kind::kDict), key, val);
          break;
        }
        case 'u': {
          auto items = PopMark();
          if (items.size() % 2) Fail("SETITEMS with an odd number of items");
          if (stack_.empty()) Fail("SETITEMS without a dict");
          ValuePtr d = Mutable(stack_.back(), Kind::kDict);
          for (size_t k = 0; k < items.size(); k += 2) SetItem(d, items[k], items[k + 1]);
          break;
        }
        case 'a': {
          if (StackAboveMark() < 2) Fail("APPEND needs a list and a value");
          ValuePtr v = Pop();
          AddItem(Mutable(stack_.back(), Kind::kList), v);
          break;
        }
        case 'e': {
          auto items = PopMark();
          if (stack_.empty()) Fail("APPENDS without a list");
          ValuePtr l = Mutable(stack_.back(), Kind::kList);
          for (auto& x : items) AddItem(l, x);
          break;
        }
        case 'q': Put(U8()); break;
        case 'r': Put(U32()); break;
        case 0x94: Put(static_cast<uint32_t>(memo_.size())); break;
        case 'h': Get(U8()); break;
        case 'j': Get(U32()); break;
        case 'J': {
          ValuePtr v = New(Kind::kInt);
          v->i = static_cast<int32_t>(U32());
          Push(v);
          break;
        }
        case 'K': {
          ValuePtr v = New(Kind::kInt);
          v->i = U8();
          Push(v);
          break;
        }
        case 'M': {
          ValuePtr v = New(Kind::kInt);
          v->i = U16();
          Push(v);
          break;
        }
        case 0x8a:
        case 0x8b: {
          const uint64_t n = op == 0x8a ? U8() : U32();
          if (n > 8) Fail("an integer of " + std::to_string(n) + " bytes does not fit 64 bits");
          std::string_view b = Take(n);
          uint64_t u = 0;
          for (size_t k = 0; k < n; ++k) u |= static_cast<uint64_t>(static_cast<uint8_t>(b[k])) << (8 * k);
          if (n > 0 && n < 8 && (static_cast<uint8_t>(b[n - 1]) & 0x80)) u |= ~uint64_t{0} << (8 * n);  // sign-extend
          ValuePtr v = New(Kind::kInt);
          v->i = static_cast<int64_t>(u);
          Push(v);
          break;
        }
        case 'N': Push(New(Kind::kNone)); break;
        case 0x88:
        case 0x89: {
          ValuePtr v = New(Kind::kBool);
          v->b = op == 0x88;
          Push(v);
          break;
        }
        case 'G': {
          std::string_view b = Take(8);
          uint64_t u = 0;
          for (int k = 0; k < 8; ++k) u = (u << 8) | static_cast<uint8_t>(b[k]);  // big-endian
          ValuePtr v = New(Kind::kFloat);
          std::memcpy(&v->f, &u, 8);
          Push(v);
          break;
        }
        case 'U':
        case 'C': PushBlob(Kind::kBytes, U8()); break;
        case 'T': {
          const int32_t n = static_cast<int32_t>(U32());
          if (n < 0) Fail("BINSTRING with a negative length");
          PushBlob(Kind::kBytes, static_cast<uint64_t>(n));
          break;
        }
        case 'B': PushBlob(Kind::kBytes, U32()); break;
        case 0x8e:
        case 0x96: PushBlob(Kind::kBytes, U64()); break;
        case 'X': PushBlob(Kind::kStr, U32()); break;
        case 0x8c: PushBlob(Kind::kStr, U8()); break;
        case 0x8d: PushBlob(Kind::kStr, U64()); break;
        case 'c': {
          const std::string module = Line(), name = Line();
          PushGlobal(module, name);
          break;
        }
        case 0x93: {
          if (StackAboveMark() < 2) Fail("STACK_GLOBAL needs a module and a name");
          ValuePtr name = Pop(), module = Pop();
          if (name->kind != Kind::kStr || module->kind != Kind::kStr) Fail("STACK_GLOBAL needs two str values");
          PushGlobal(std::string(module->blob.view), std::string(name->blob.view));
          break;
        }
        case 'R': {
          if (StackAboveMark() < 2) Fail("REDUCE needs a callable and its arguments");
          ValuePtr args = Pop(), fn = Pop();
          Push(Reduce(*fn, *args));
          break;
        }
        case 'b': {
          if (StackAboveMark() < 2) Fail("BUILD needs an object and its state");
          ValuePtr state = Pop();
          Build(stack_.back(), *state);
          break;
        }
        case '0':
          if (StackAboveMark() < 1) Fail("POP on an empty stack");
          stack_.pop_back();
          break;
        case '1': PopMark(); break;
        default: {
          const char* name = OpName(op);
          if (!name) Fail("unknown opcode 0x" + Hex(op) + ": not a pickle, or a corrupted one");
          Refuse(std::string("opcode ") + name + " builds objects other than plain data");
        }
      }
    }
  }

 private:
  static std::string Hex(uint8_t b) {
    const char* d = "0123456789abcdef";
    return {d[b >> 4], d[b & 15]};
  }
  std::string Where() const {
    const char* name = op_pos_ < in_.size() ? OpName(static_cast<uint8_t>(in_[op_pos_])) : nullptr;
    return std::string(" (") + (name ? name : "opcode") + " at byte " + std::to_string(op_pos_) + ")";
  }
  [[noreturn]] void Fail(const std::string& what) const {
    throw UserError(file_ + ": not a readable data pickle: " + what + Where());
  }
  [[noreturn]] void Refuse(const std::string& what) const {
    throw UserError(file_ + ": refusing pickle" + Where() + ": " + what +
                    "; vicreg reads only data (dicts, lists, tuples, bytes, str, numbers and numpy arrays) and "
                    "never imports or runs anything from a file");
  }
  [[noreturn]] void Truncated(uint64_t need) const {
    throw UserError(file_ + ": truncated pickle: needs " + std::to_string(need) + " more bytes at byte " +
                    std::to_string(pos_) + " but the file has " + std::to_string(in_.size()) + Where());
  }

  std::string_view Take(uint64_t n) {
    if (n > in_.size() - pos_) Truncated(n);
    std::string_view v = in_.substr(pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return v;
  }
  uint8_t U8() {
    if (pos_ >= in_.size()) {
      if (pos_ == op_pos_) Fail("the file ends without STOP (truncated)");
      Truncated(1);
    }
    return static_cast<uint8_t>(in_[pos_++]);
  }
  uint64_t LittleEndian(int n) {
    std::string_view b = Take(static_cast<uint64_t>(n));
    uint64_t u = 0;
    for (int k = n - 1; k >= 0; --k) u = (u << 8) | static_cast<uint8_t>(b[static_cast<size_t>(k)]);
    return u;
  }
  uint16_t U16() { return static_cast<uint16_t>(LittleEndian(2)); }
  uint32_t U32() { return static_cast<uint32_t>(LittleEndian(4)); }
  uint64_t U64() { return LittleEndian(8); }
  std::string Line() {
    const size_t nl = in_.find('\n', pos_);
    if (nl == std::string_view::npos || nl - pos_ > 256) Fail("GLOBAL without a newline-terminated name");
    std::string s(in_.substr(pos_, nl - pos_));
    pos_ = nl + 1;
    return s;
  }

  ValuePtr New(Kind k) {
    auto v = std::make_shared<Value>();
    v->kind = k;
    return v;
  }
  void Push(ValuePtr v) { stack_.push_back(std::move(v)); }
  size_t StackAboveMark() const { return stack_.size() - (marks_.empty() ? 0 : marks_.back()); }
  ValuePtr Pop() {
    ValuePtr v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  std::vector<ValuePtr> PopMark() {
    if (marks_.empty()) Fail("no MARK to pop to");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<ValuePtr> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  void PushBlob(Kind k, uint64_t n) {
    ValuePtr v = New(k);
    v->blob.view = Take(n);
    Push(v);
  }
  void Put(uint32_t index) {
    if (stack_.empty()) Fail("memo put on an empty stack");
    memo_[index] = stack_.back();
  }
  void Get(uint32_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end()) Fail("memo get of an index never put (" + std::to_string(index) + ")");
    it->second->shared = true;
    Push(it->second);
  }
  // The container at the top of the stack, if it has kind k and was never shared: a pickler of
  // data fills a container before it references it again, so a shared one is never mutated (and a
  // container can never end up inside itself).
  ValuePtr Mutable(const ValuePtr& v, Kind k) {
    if (v->kind != k) Fail("expected a " + std::string(k == Kind::kDict ? "dict" : "list") + ", found " + TypeName(*v));
    if (v->shared) Fail("a " + TypeName(*v) + " is changed after it was referenced again (self-referencing data)");
    return v;
  }
  void Nest(Value& parent, const Value& child) {
    parent.depth = std::max(parent.depth, child.depth + 1);
    if (parent.depth > kMaxDepth) Fail("data nested deeper than " + std::to_string(kMaxDepth) + " levels");
  }
  void AddItem(const ValuePtr& c, const ValuePtr& x) {
    Nest(*c, *x);
    c->items.push_back(x);
  }
  void SetItem(const ValuePtr& d, const ValuePtr& key, const ValuePtr& val) {
    if (key->kind != Kind::kStr && key->kind != Kind::kBytes && key->kind != Kind::kInt)
      Fail("a dict key of type " + TypeName(*key) + " (str, bytes or int expected)");
    Nest(*d, *val);
    d->dict.emplace_back(key, val);
  }

  void PushGlobal(const std::string& module, const std::string& name) {
    const std::string full = module + "." + name;
    int m = 0;
    if (full == "numpy.core.multiarray._reconstruct" || full == "numpy._core.multiarray._reconstruct")
      m = kReconstruct;
    else if (full == "numpy.ndarray")
      m = kNdarrayClass;
    else if (full == "numpy.dtype")
      m = kDtypeClass;
    else if (full == "numpy.core.numeric._frombuffer" || full == "numpy._core.numeric._frombuffer")
      m = kFrombuffer;
    else if (full == "_codecs.encode")
      m = kCodecsEncode;
    else
      Refuse("it imports " + QuoteName(full) + ", which is code, not data");
    ValuePtr v = New(Kind::kMarker);
    v->marker = m;
    Push(v);
  }

  const Value& Arg(const Value& args, size_t k) { return *args.items[k]; }
  static bool IsText(const Value& v) { return v.kind == Kind::kStr || v.kind == Kind::kBytes; }
  static bool IsIntLike(const Value& v) { return v.kind == Kind::kInt || v.kind == Kind::kBool; }

  std::vector<int64_t> Shape(const Value& v) {
    if (v.kind != Kind::kTuple && v.kind != Kind::kList) Fail("an array shape must be a tuple, found " + TypeName(v));
    std::vector<int64_t> s;
    for (const auto& d : v.items) {
      if (d->kind != Kind::kInt || d->i < 0) Fail("an array shape must hold non-negative ints");
      s.push_back(d->i);
    }
    if (s.size() > 8) Fail("an array with more than 8 dimensions");
    return s;
  }

  // "u1", "<i8", "|b1", "f4" -> kind/itemsize/endianness in v->array.
  void ParseTypestr(std::string_view t, Value* v) {
    bool little = true;
    if (!t.empty() && (t[0] == '<' || t[0] == '>' || t[0] == '|' || t[0] == '=')) {
      little = t[0] != '>';
      t.remove_prefix(1);
    }
    if (t.size() != 2 || std::string_view("uifb").find(t[0]) == std::string_view::npos ||
        std::string_view("1248").find(t[1]) == std::string_view::npos)
      Fail("numpy dtype other than bool/int/uint/float of 1, 2, 4 or 8 bytes");
    v->array.kind = t[0];
    v->array.itemsize = t[1] - '0';
    v->array.little_endian = little;
  }

  void CheckArraySize(Array& a) {
    uint64_t n = static_cast<uint64_t>(a.itemsize);
    for (int64_t d : a.shape) {
      if (d != 0 && n > (uint64_t{1} << 62) / static_cast<uint64_t>(d)) Fail("array size overflows");
      n *= static_cast<uint64_t>(d);
    }
    if (a.data.view.size() != n)
      Fail("array data holds " + std::to_string(a.data.view.size()) + " bytes but its shape and dtype need " +
           std::to_string(n));
    if (!a.little_endian && a.itemsize > 1) Fail("big-endian numpy arrays are not supported");
  }

  ValuePtr Reduce(const Value& fn, const Value& args) {
    if (fn.kind != Kind::kMarker || fn.marker > kCodecsEncode) Refuse("REDUCE calls a " + TypeName(fn));
    if (args.kind != Kind::kTuple) Fail("REDUCE arguments must be a tuple, found " + TypeName(args));
    const size_t n = args.items.size();
    switch (fn.marker) {
      case kReconstruct: {  // _reconstruct(ndarray, (0,), b'b'): an empty array, filled by BUILD
        if (n != 3 || Arg(args, 0).kind != Kind::kMarker || Arg(args, 0).marker != kNdarrayClass ||
            !IsText(Arg(args, 2)))
          Fail("numpy _reconstruct with arguments other than (numpy.ndarray, shape, typecode)");
        Shape(Arg(args, 1));
        ValuePtr v = New(Kind::kMarker);
        v->marker = kPendingArray;
        return v;
      }
      case kDtypeClass: {  // dtype('u1', False, True)
        if (n != 3 || !IsText(Arg(args, 0)) || !IsIntLike(Arg(args, 1)) || !IsIntLike(Arg(args, 2)))
          Fail("numpy dtype with arguments other than (typestr, align, copy)");
        ValuePtr v = New(Kind::kMarker);
        v->marker = kDtype;
        ParseTypestr(Arg(args, 0).blob.view, v.get());
        return v;
      }
      case kFrombuffer: {  // _frombuffer(buffer, dtype, shape, order)
        if (n != 4 || Arg(args, 0).kind != Kind::kBytes || Arg(args, 1).kind != Kind::kMarker ||
            Arg(args, 1).marker != kDtype || !IsText(Arg(args, 3)))
          Fail("numpy _frombuffer with arguments other than (bytes, dtype, shape, order)");
        ValuePtr v = New(Kind::kArray);
        v->array = Arg(args, 1).array;
        v->array.shape = Shape(Arg(args, 2));
        const std::string_view order = Arg(args, 3).blob.view;
        if (order != "C" && order != "F") Fail("numpy _frombuffer order must be C or F");
        v->array.fortran = order == "F";
        v->array.data = Arg(args, 0).blob;
        CheckArraySize(v->array);
        return v;
      }
      case kCodecsEncode: {  // _codecs.encode('\x00\xff...', 'latin1'): Python 3 bytes at protocol 2
        if (n != 2 || Arg(args, 0).kind != Kind::kStr || !IsText(Arg(args, 1)) ||
            (Arg(args, 1).blob.view != "latin1" && Arg(args, 1).blob.view != "latin-1"))
          Fail("_codecs.encode with arguments other than (str, 'latin1')");
        ValuePtr v = New(Kind::kBytes);
        v->blob.owned = std::make_shared<const std::string>(Latin1(Arg(args, 0).blob.view));
        v->blob.view = *v->blob.owned;
        return v;
      }
      default: Refuse("REDUCE calls a " + TypeName(fn));
    }
  }

  // UTF-8 text whose code points are all < 256 -> those bytes.
  std::string Latin1(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t k = 0; k < s.size();) {
      const auto c = static_cast<uint8_t>(s[k]);
      if (c < 0x80) {
        out.push_back(static_cast<char>(c));
        ++k;
      } else if ((c & 0xe0) == 0xc0 && k + 1 < s.size() && (static_cast<uint8_t>(s[k + 1]) & 0xc0) == 0x80) {
        const unsigned cp = ((c & 0x1fu) << 6) | (static_cast<uint8_t>(s[k + 1]) & 0x3fu);
        if (cp < 0x80 || cp > 0xff) Fail("_codecs.encode of a character outside latin1");
        out.push_back(static_cast<char>(cp));
        k += 2;
      } else {
        Fail("_codecs.encode of text that is not latin1 in UTF-8");
      }
    }
    return out;
  }

  void Build(const ValuePtr& obj, const Value& state) {
    if (obj->kind != Kind::kMarker || (obj->marker != kDtype && obj->marker != kPendingArray))
      Refuse("BUILD sets the state of a " + TypeName(*obj));
    if (state.kind != Kind::kTuple) Fail("BUILD state must be a tuple, found " + TypeName(state));
    const auto& s = state.items;
    if (obj->marker == kDtype) {
      // (version 3|4, byteorder, subarray None, names None, fields None, elsize, alignment, flags[, metadata])
      if (obj->b) Fail("a numpy dtype built twice");
      if ((s.size() != 8 && s.size() != 9) || s[0]->kind != Kind::kInt || !IsText(*s[1]) ||
          s[1]->blob.view.size() != 1 || s[2]->kind != Kind::kNone || s[3]->kind != Kind::kNone ||
          s[4]->kind != Kind::kNone)
        Fail("numpy dtype state other than a plain (non-structured) dtype");
      const char order = s[1]->blob.view[0];
      if (order != '|' && order != '<' && order != '>' && order != '=') Fail("numpy dtype byte order not |, <, > or =");
      obj->array.little_endian = order != '>';
      obj->b = true;
      return;
    }
    // ndarray state: (version 1, shape, dtype, is_fortran, raw bytes)
    if (s.size() != 5 || s[0]->kind != Kind::kInt || s[2]->kind != Kind::kMarker || s[2]->marker != kDtype ||
        !IsIntLike(*s[3]) || s[4]->kind != Kind::kBytes)
      Fail("numpy array state other than (version, shape, dtype, is_fortran, bytes)");
    Array a = s[2]->array;
    a.shape = Shape(*s[1]);
    a.fortran = s[3]->kind == Kind::kBool ? s[3]->b : s[3]->i != 0;
    a.data = s[4]->blob;
    CheckArraySize(a);
    obj->kind = Kind::kArray;
    obj->marker = 0;
    obj->array = std::move(a);
  }

  std::string_view in_;
  const std::string& file_;
  size_t pos_ = 0, op_pos_ = 0;
  std::vector<ValuePtr> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint32_t, ValuePtr> memo_;
};

}  // namespace

ValuePtr Parse(std::string_view bytes, const std::string& file) { return Parser(bytes, file).Run(); }

std::string TypeName(const Value& v) {
  switch (v.kind) {
    case Kind::kNone: return "None";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kBytes: return "bytes";
    case Kind::kStr: return "str";
    case Kind::kList: return "list";
    case Kind::kTuple: return "tuple";
    case Kind::kDict: return "dict";
    case Kind::kArray: return "numpy.ndarray";
    case Kind::kMarker:
      switch (v.marker) {
        case kReconstruct: return "numpy _reconstruct function";
        case kNdarrayClass: return "numpy.ndarray class";
        case kDtypeClass: return "numpy.dtype class";
        case kFrombuffer: return "numpy _frombuffer function";
        case kCodecsEncode: return "_codecs.encode function";
        case kDtype: return "numpy.dtype";
        case kPendingArray: return "numpy.ndarray without data";
        default: return "object";
      }
  }
  return "object";
}

const Value* Find(const Value& dict, std::string_view key) {
  if (dict.kind != Kind::kDict) return nullptr;
  for (const auto& [k, v] : dict.dict)
    if ((k->kind == Kind::kStr || k->kind == Kind::kBytes) && k->blob.view == key) return v.get();
  return nullptr;
}

bool AsText(const Value& v, std::string* out) {
  if (v.kind != Kind::kStr && v.kind != Kind::kBytes) return false;
  out->assign(v.blob.view);
  return true;
}

}  // namespace vicreg::data::pickle
