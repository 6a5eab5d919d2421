// YAML tree <-> JobConfig: the strict reader (types, unknown keys, duplicates), the writer
// (ToYaml), key listings and config diffs. All of them walk config_schema.h.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <sstream>
#include <type_traits>
#include <utility>

#include "common/config_internal.h"
#include "common/config_loader.h"
#include "common/config_schema.h"

namespace vicreg::config {
namespace detail {

// ---- formatting ---------------------------------------------------------------------------

std::string FormatDouble(double v) {
  if (std::isnan(v)) return ".nan";
  if (std::isinf(v)) return v > 0 ? ".inf" : "-.inf";
  char buf[64];
  int precision = 1;
  for (; precision < 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  // Plain notation for everyday magnitudes ("10", not "1e+01").
  double mag = std::fabs(v);
  if (mag >= 1 && mag < 1e15) precision = std::max(precision, static_cast<int>(std::floor(std::log10(mag))) + 1);
  std::snprintf(buf, sizeof buf, "%.*g", precision, v);
  return buf;
}

std::string ClipText(const std::string& s, size_t max_chars) {
  if (s.size() <= max_chars) return s;
  const size_t tail = max_chars / 3, head = max_chars - tail;
  size_t h = head, t = s.size() - tail;
  // Never cut inside a UTF-8 sequence.
  while (h > 0 && (static_cast<unsigned char>(s[h]) & 0xC0) == 0x80) --h;
  while (t < s.size() && (static_cast<unsigned char>(s[t]) & 0xC0) == 0x80) ++t;
  return s.substr(0, h) + "...[" + std::to_string(t - h) + " bytes omitted]..." + s.substr(t);
}

std::string JoinAlternatives(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

namespace {

std::string Join(const std::string& path, const std::string& key) { return path.empty() ? key : path + "." + key; }

std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// Human-readable value of every leaf type (messages, diffs).
std::string Show(const EvalDatasetConfig& d);
template <class T, size_t N>
std::string Show(const std::array<T, N>& v);
template <class T>
std::string Show(const std::vector<T>& v);
std::string Show(const std::string& v) { return Quote(v); }
std::string Show(bool v) { return v ? "true" : "false"; }
std::string Show(double v) { return FormatDouble(v); }
template <class I, std::enable_if_t<std::is_integral_v<I>, int> = 0>
std::string Show(I v) {
  return std::to_string(v);
}
template <class T>
std::string ShowList(const T& list) {
  std::string out = "[";
  bool first = true;
  for (const auto& x : list) {
    out += (first ? "" : ", ") + Show(x);
    first = false;
  }
  return out + "]";
}
std::string Show(const EvalDatasetConfig& d) {
  return "{name: " + Quote(d.name) + ", data_dir: " + Quote(d.data_dir) + "}";
}
template <class T, size_t N>
std::string Show(const std::array<T, N>& v) {
  return ShowList(v);
}
template <class T>
std::string Show(const std::vector<T>& v) {
  return ShowList(v);
}

// What a leaf type expects, for messages.
template <class T>
struct Expect;
template <>
struct Expect<int> {
  static constexpr const char* kText = "an integer";
};
template <>
struct Expect<int64_t> {
  static constexpr const char* kText = "an integer";
};
template <>
struct Expect<uint64_t> {
  static constexpr const char* kText = "a non-negative integer";
};
template <>
struct Expect<double> {
  static constexpr const char* kText = "a number";
};
template <>
struct Expect<bool> {
  static constexpr const char* kText = "true or false";
};
template <>
struct Expect<std::string> {
  static constexpr const char* kText = "a string";
};
template <>
struct Expect<std::array<double, 2>> {
  static constexpr const char* kText = "a list of 2 numbers [low, high]";
};
template <>
struct Expect<std::vector<int>> {
  static constexpr const char* kText = "a list of integers";
};
template <>
struct Expect<std::vector<double>> {
  static constexpr const char* kText = "a list of numbers";
};
template <>
struct Expect<std::vector<std::string>> {
  static constexpr const char* kText = "a list of strings";
};
template <>
struct Expect<std::vector<EvalDatasetConfig>> {
  static constexpr const char* kText = "a list of maps like {name: cifar10, data_dir: data/cifar10}";
};

bool IsQuoted(const YAML::Node& n) { return n.IsScalar() && n.Tag() == "!"; }

std::string Describe(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null: return "no value";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Scalar: return IsQuoted(n) ? "the quoted string " + Quote(n.Scalar()) : "'" + n.Scalar() + "'";
    default: return "an undefined value";
  }
}

enum class NumberKind { kNone, kInteger, kReal };

// Decimal numbers as a user writes them: 12, -3, +4, 0.5, .5, 5., 1e-3, 2.5E+4. No hex, no
// underscores, no YAML .inf/.nan (they are not valid values for any field).
NumberKind Classify(const std::string& s) {
  size_t i = 0, n = s.size();
  if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
  size_t int_digits = 0, frac_digits = 0;
  while (i < n && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++int_digits;
  bool real = false;
  if (i < n && s[i] == '.') {
    real = true;
    ++i;
    while (i < n && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++frac_digits;
  }
  if (int_digits + frac_digits == 0) return NumberKind::kNone;
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    real = true;
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
    size_t exp_digits = 0;
    while (i < n && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++exp_digits;
    if (exp_digits == 0) return NumberKind::kNone;
  }
  if (i != n) return NumberKind::kNone;
  return real ? NumberKind::kReal : NumberKind::kInteger;
}

// ---- leaf readers: return false (after reporting) on a bad value; `out` keeps the default ----

bool CheckScalar(ParseContext& ctx, const YAML::Node& n, const std::string& path, const char* expect,
                 const std::string& default_text) {
  if (n.IsNull()) {
    ctx.Error(path, std::string("has no value; expected ") + expect + " (default " + default_text +
                        "); give a value or remove the key");
    return false;
  }
  if (!n.IsScalar()) {
    ctx.Error(path, std::string("expected ") + expect + ", got " + Describe(n));
    return false;
  }
  return true;
}

template <class I>
bool ReadInteger(ParseContext& ctx, const YAML::Node& n, const std::string& path, I& out) {
  const char* expect = Expect<I>::kText;
  if (!CheckScalar(ctx, n, path, expect, Show(out))) return false;
  const std::string& s = n.Scalar();
  NumberKind kind = Classify(s);
  if (IsQuoted(n)) {
    ctx.Error(path, std::string("expected ") + expect + ", got " + Describe(n) +
                        (kind == NumberKind::kInteger ? "; remove the quotes" : ""));
    return false;
  }
  if (kind == NumberKind::kReal) {
    double d = std::strtod(s.c_str(), nullptr);
    std::string hint;
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.007199254740992e15) {
      hint = " (write it as " + std::to_string(static_cast<long long>(d)) + ")";
    }
    ctx.Error(path, std::string("expected ") + expect + ", got the non-integer number " + s + hint);
    return false;
  }
  if (kind != NumberKind::kInteger) {
    ctx.Error(path, std::string("expected ") + expect + ", got " + Describe(n));
    return false;
  }
  errno = 0;
  if constexpr (std::is_unsigned_v<I>) {
    if (s[0] == '-') {
      ctx.Error(path, std::string("expected ") + expect + ", got " + s);
      return false;
    }
    unsigned long long v = std::strtoull(s.c_str(), nullptr, 10);
    if (errno == ERANGE || v > std::numeric_limits<I>::max()) {
      ctx.Error(path, "integer " + s + " is out of range [0, " + std::to_string(std::numeric_limits<I>::max()) + "]");
      return false;
    }
    out = static_cast<I>(v);
  } else {
    long long v = std::strtoll(s.c_str(), nullptr, 10);
    if (errno == ERANGE || v < std::numeric_limits<I>::min() || v > std::numeric_limits<I>::max()) {
      ctx.Error(path, "integer " + s + " is out of range [" + std::to_string(std::numeric_limits<I>::min()) + ", " +
                          std::to_string(std::numeric_limits<I>::max()) + "]");
      return false;
    }
    out = static_cast<I>(v);
  }
  return true;
}

bool ReadLeaf(ParseContext& ctx, const YAML::Node& n, const std::string& path, int& out) {
  return ReadInteger(ctx, n, path, out);
}
bool ReadLeaf(ParseContext& ctx, const YAML::Node& n, const std::string& path, int64_t& out) {
  return ReadInteger(ctx, n, path, out);
}
bool ReadLeaf(ParseContext& ctx, const YAML::Node& n, const std::string& path, uint64_t& out) {
  return ReadInteger(ctx, n, path, out);
}

bool ReadLeaf(ParseContext& ctx, const YAML::Node& n, const std::string& path, double& out) {
  const char* expect = Expect<double>::kText;
  if (!CheckScalar(ctx, n, path, expect, Show(out))) return false;
  const std::string& s = n.Scalar();
  NumberKind kind = Classify(s);
  if (IsQuoted(n) || kind == NumberKind::kNone) {
    ctx.Error(path, std::string("expected ") + expect + ", got " + Describe(n) +
                        (IsQuoted(n) && kind != NumberKind::kNone ? "; remove the quotes" : ""));
    return false;
  }
  double v = std::strtod(s.c_str(), nullptr);
  if (!std::isfinite(v)) {
    ctx.Error(path, "number " + s + " is out of the range of a double");
    return false;
  }
  out = v;
  return true;
}

bool ReadLeaf(ParseContext& ctx, const YAML::Node& n, const std::string& path, bool& out) {
  const char* expect = Expect<bool>::kText;
  if (!CheckScalar(ctx, n, path, expect, Show(out))) return false;
  const std::string& s = n.Scalar();
  if (!IsQuoted(n)) {
    if (s == "true" || s == "True" || s == "TRUE") return out = true, true;
    if (s == "false" || s == "False" || s == "FALSE") return out = false, true;
  }
  ctx.Error(path, std::string("expected ") + expect + ", got " + Describe(n));
  return false;
}

std::string HexByte(unsigned char c) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02X", c);
  return buf;
}

// Offset of the first byte that makes `s` unfit as a text value (a control character other than
// tab, DEL, or a byte outside a well-formed UTF-8 sequence), or npos. Such values cannot be
// written back to YAML unchanged (the emitter escapes or rejects them), and no name, path or
// choice needs them.
size_t FirstBadTextByte(const std::string& s, std::string& why) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      if ((c < 0x20 && c != '\t') || c == 0x7F) {
        why = "the control character " + HexByte(c);
        return i;
      }
      ++i;
      continue;
    }
    size_t len = 0;
    unsigned cp = 0;
    if (c >= 0xC2 && c <= 0xDF)
      len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
      len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
      len = 4, cp = c & 0x07;
    bool ok = len != 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; ++k) {
      ok = (p[i + k] & 0xC0) == 0x80;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    // Reject overlong forms, UTF-16 surrogates and code points past U+10FFFF.
    if (ok)
      ok = !(len == 3 && cp < 0x800) && !(len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) &&
           !(cp >= 0xD800 && cp <= 0xDFFF);
    if (!ok) {
      why = "the byte " + HexByte(c) + ", which is not part of well-formed UTF-8";
      return i;
    }
    // C1 control characters (U+0080..U+009F) are as unprintable as C0 ones.
    if (cp >= 0x80 && cp <= 0x9F) {
      why = "the control character U+00" + HexByte(static_cast<unsigned char>(cp)).substr(2);
      return i;
    }
    i += len;
  }
  return std::string::npos;
}

bool ReadLeaf(ParseContext& ctx, const YAML::Node& n, const std::string& path, std::string& out) {
  if (!CheckScalar(ctx, n, path, Expect<std::string>::kText, Show(out))) return false;
  std::string why;
  const size_t bad = FirstBadTextByte(n.Scalar(), why);
  if (bad != std::string::npos) {
    ctx.Error(path, "contains " + why + " at byte " + std::to_string(bad) +
                        "; text values must be printable UTF-8 (no control characters)");
    return false;
  }
  out = n.Scalar();
  return true;
}

template <class T>
bool ReadSequence(ParseContext& ctx, const YAML::Node& n, const std::string& path, std::vector<T>& out,
                  const char* expect, const std::string& default_text) {
  if (n.IsNull()) {
    ctx.Error(path, std::string("has no value; expected ") + expect + " (default " + default_text +
                        "); write [] for an empty list or remove the key");
    return false;
  }
  if (!n.IsSequence()) {
    ctx.Error(path, std::string("expected ") + expect + ", got " + Describe(n));
    return false;
  }
  std::vector<T> values(n.size());
  bool ok = true;
  for (size_t i = 0; i < n.size(); ++i) {
    ok = ReadLeaf(ctx, n[i], path + "[" + std::to_string(i) + "]", values[i]) && ok;
  }
  if (ok) out = std::move(values);
  return ok;
}

template <class T>
bool ReadLeaf(ParseContext& ctx, const YAML::Node& n, const std::string& path, std::vector<T>& out) {
  return ReadSequence(ctx, n, path, out, Expect<std::vector<T>>::kText, Show(out));
}

bool ReadLeaf(ParseContext& ctx, const YAML::Node& n, const std::string& path, std::array<double, 2>& out) {
  const char* expect = Expect<std::array<double, 2>>::kText;
  std::vector<double> values;
  if (!ReadSequence(ctx, n, path, values, expect, Show(out))) return false;
  if (values.size() != 2) {
    ctx.Error(path, std::string("expected ") + expect + ", got a list of " + std::to_string(values.size()));
    return false;
  }
  out = {values[0], values[1]};
  return true;
}

// Every key path of the schema (for "did you mean 'train.batch_size'?" across sections).
class KeyLister {
 public:
  KeyLister(std::vector<std::string>& out, std::string path) : out_(out), path_(std::move(path)) {}
  template <class F>
  void operator()(const char* key, const F& field, schema::KeyRole = schema::KeyRole::kLearning) {
    std::string p = Join(path_, key);
    out_.push_back(p);
    if constexpr (schema::kIsSection<F>) {
      KeyLister sub(out_, p);
      schema::Fields(sub, field);
    } else if constexpr (std::is_same_v<F, std::vector<EvalDatasetConfig>>) {
      KeyLister sub(out_, p + "[]");
      EvalDatasetConfig element;
      schema::Fields(sub, element);
    }
  }

 private:
  std::vector<std::string>& out_;
  std::string path_;
};

// Reads one YAML map into one config section.
class Reader {
 public:
  Reader(ParseContext& ctx, const YAML::Node& map, std::string path) : ctx_(ctx), path_(std::move(path)) {
    for (const auto& pair : map) {  // copies: the iterator's pair is a temporary
      const YAML::Node key = pair.first;
      const YAML::Node value = pair.second;
      if (!key.IsScalar()) {
        YAML::Mark mark = key.Mark();
        ctx_.Error(path_.empty() ? "<document>" : path_, "keys must be plain names, got " + Describe(key) + " as a key",
                   &mark);
        continue;
      }
      auto inserted = children_.emplace(key.Scalar(), Child{key, value});
      if (!inserted.second) {
        YAML::Mark mark = key.Mark();
        ctx_.Error(Join(path_, key.Scalar()),
                   "duplicate key (first given on line " + std::to_string(inserted.first->second.key.Mark().line + 1) +
                       "); give each key once",
                   &mark);
      }
    }
  }

  template <class F>
  void operator()(const char* key, F& field, schema::KeyRole = schema::KeyRole::kLearning) {
    valid_.emplace_back(key);
    auto it = children_.find(key);
    if (it == children_.end()) return;
    Child child = it->second;
    children_.erase(it);
    std::string path = Join(path_, key);
    ctx_.Record(path, child.key);
    if constexpr (schema::kIsSection<F>) {
      if (child.value.IsNull()) return;  // "eval:" with every key commented out: defaults
      if (!child.value.IsMap()) {
        ctx_.Error(path, "expected a section (a map of keys), got " + Describe(child.value));
        return;
      }
      Reader sub(ctx_, child.value, path);
      schema::Fields(sub, field);
      sub.Finish();
    } else if constexpr (std::is_same_v<F, std::vector<EvalDatasetConfig>>) {
      ReadDatasets(child.value, path, field);
    } else {
      ReadLeaf(ctx_, child.value, path, field);
    }
  }

  // Every key that no field claimed is an error with a suggestion.
  void Finish() {
    for (const auto& [key, child] : children_) {
      const std::vector<std::string> elsewhere = PathsNamed(key);
      std::string hint;  // the seed form: the file the key belongs in
      if (!elsewhere.empty()) {
        const std::string file = ctx_.SectionFile(elsewhere[0].substr(0, elsewhere[0].find('.')));
        if (!file.empty()) hint = " (it belongs in " + file + ")";
      }
      std::string message = UnknownKeyMessage(key, valid_, "", elsewhere, hint);
      // The seed form's data_config: say every key it may hold (users bring MoCo/KD-era files).
      if (path_ == "data" && !ctx_.SectionFile("data").empty())
        message += "; " + ctx_.SectionFile("data") + " may hold " + JoinAlternatives(valid_, ", ") +
                   ", and the MoCo/KD spellings dataset_name, data_root, root, image_size (README \"Seed-compatible "
                   "usage\")";
      YAML::Mark mark = child.key.Mark();
      ctx_.Error(Join(path_, key), message, &mark);
    }
    children_.clear();
  }

 private:
  struct Child {
    YAML::Node key, value;
  };

  void ReadDatasets(const YAML::Node& n, const std::string& path, std::vector<EvalDatasetConfig>& out) {
    const char* expect = Expect<std::vector<EvalDatasetConfig>>::kText;
    if (n.IsNull() || !n.IsSequence()) {
      ctx_.Error(path, std::string("expected ") + expect + " (or [] for the training dataset), got " + Describe(n));
      return;
    }
    std::vector<EvalDatasetConfig> values(n.size());
    for (size_t i = 0; i < n.size(); ++i) {
      std::string element = path + "[" + std::to_string(i) + "]";
      if (!n[i].IsMap()) {
        ctx_.Error(element,
                   std::string("expected a map like {name: cifar10, data_dir: data/cifar10}, got ") + Describe(n[i]));
        continue;
      }
      Reader sub(ctx_, n[i], element);
      schema::Fields(sub, values[i]);
      sub.Finish();
    }
    out = std::move(values);
  }

  // Schema paths whose last key is `key` (exact), e.g. "batch_size" -> "train.batch_size".
  static std::vector<std::string> PathsNamed(const std::string& key) {
    std::vector<std::string> found;
    for (const std::string& p : AllKeyPaths()) {
      size_t dot = p.rfind('.');
      if (p.substr(dot == std::string::npos ? 0 : dot + 1) == key) found.push_back(p);
    }
    return found;
  }

  ParseContext& ctx_;
  std::string path_;
  std::map<std::string, Child> children_;
  std::vector<std::string> valid_;
};

// ---- writer ---------------------------------------------------------------------------------

void Emit(YAML::Emitter& e, const std::string& v) { e << YAML::DoubleQuoted << v; }
void Emit(YAML::Emitter& e, bool v) { e << (v ? "true" : "false"); }
void Emit(YAML::Emitter& e, double v) { e << FormatDouble(v); }
void Emit(YAML::Emitter& e, int v) { e << v; }
void Emit(YAML::Emitter& e, int64_t v) { e << static_cast<long long>(v); }
void Emit(YAML::Emitter& e, uint64_t v) { e << static_cast<unsigned long long>(v); }
template <class List>
void EmitFlowList(YAML::Emitter& e, const List& list) {
  e << YAML::Flow << YAML::BeginSeq;
  for (const auto& x : list) Emit(e, x);
  e << YAML::EndSeq;
}
template <class T, size_t N>
void Emit(YAML::Emitter& e, const std::array<T, N>& v) {
  EmitFlowList(e, v);
}
template <class T>
void Emit(YAML::Emitter& e, const std::vector<T>& v) {
  EmitFlowList(e, v);
}

class Writer {
 public:
  explicit Writer(YAML::Emitter& e) : e_(e) {}
  template <class F>
  void operator()(const char* key, const F& field, schema::KeyRole = schema::KeyRole::kLearning) {
    e_ << YAML::Key << key << YAML::Value;
    if constexpr (schema::kIsSection<F>) {
      e_ << YAML::BeginMap;
      schema::Fields(*this, field);
      e_ << YAML::EndMap;
    } else if constexpr (std::is_same_v<F, std::vector<EvalDatasetConfig>>) {
      if (field.empty()) {
        e_ << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
        return;
      }
      e_ << YAML::BeginSeq;
      for (const auto& d : field) {
        e_ << YAML::BeginMap;
        schema::Fields(*this, d);
        e_ << YAML::EndMap;
      }
      e_ << YAML::EndSeq;
    } else {
      Emit(e_, field);
    }
  }

 private:
  YAML::Emitter& e_;
};

// path -> shown value of every leaf.
class Flattener {
 public:
  Flattener(std::map<std::string, std::string>& out, std::string path) : out_(out), path_(std::move(path)) {}
  template <class F>
  void operator()(const char* key, const F& field, schema::KeyRole = schema::KeyRole::kLearning) {
    std::string p = Join(path_, key);
    if constexpr (schema::kIsSection<F>) {
      Flattener sub(out_, p);
      schema::Fields(sub, field);
    } else {
      out_[p] = Show(field);
    }
  }

 private:
  std::map<std::string, std::string>& out_;
  std::string path_;
};

// The key paths marked operational in the schema (sections included: everything under them is too).
class OperationalLister {
 public:
  OperationalLister(std::vector<std::string>& out, std::string path) : out_(out), path_(std::move(path)) {}
  template <class F>
  void operator()(const char* key, const F& field, schema::KeyRole role = schema::KeyRole::kLearning) {
    std::string p = Join(path_, key);
    if (role == schema::KeyRole::kOperational) {
      out_.push_back(p);
    } else if constexpr (schema::kIsSection<F>) {
      OperationalLister sub(out_, p);
      schema::Fields(sub, field);
    }
  }

 private:
  std::vector<std::string>& out_;
  std::string path_;
};

}  // namespace

// ---- leaf readers for other tables (config_table.cc) ------------------------------------------

std::string UnknownKeyMessage(const std::string& key, const std::vector<std::string>& valid_here,
                              const std::string& prefix, const std::vector<std::string>& elsewhere,
                              const std::string& elsewhere_hint) {
  const std::string close = ClosestMatch(key, valid_here);
  if (!close.empty()) return "unknown key; did you mean '" + prefix + close + "'?";
  if (!elsewhere.empty())
    return "unknown key; did you mean '" + JoinAlternatives(elsewhere, "' or '") + "'?" + elsewhere_hint;
  return "unknown key; valid keys here: " + JoinAlternatives(valid_here, ", ");
}

bool ReadValue(ParseContext& ctx, const YAML::Node& n, const std::string& path, int& out) {
  return ReadLeaf(ctx, n, path, out);
}
bool ReadValue(ParseContext& ctx, const YAML::Node& n, const std::string& path, double& out) {
  return ReadLeaf(ctx, n, path, out);
}
bool ReadValue(ParseContext& ctx, const YAML::Node& n, const std::string& path, bool& out) {
  return ReadLeaf(ctx, n, path, out);
}
bool ReadValue(ParseContext& ctx, const YAML::Node& n, const std::string& path, std::string& out) {
  return ReadLeaf(ctx, n, path, out);
}
bool ReadValue(ParseContext& ctx, const YAML::Node& n, const std::string& path, std::vector<int>& out) {
  return ReadLeaf(ctx, n, path, out);
}
bool ReadValue(ParseContext& ctx, const YAML::Node& n, const std::string& path, std::vector<std::string>& out) {
  return ReadLeaf(ctx, n, path, out);
}
std::string DescribeNode(const YAML::Node& n) { return Describe(n); }

// ---- ParseContext ---------------------------------------------------------------------------

void ParseContext::Record(const std::string& path, const YAML::Node& node) { where_[path] = node.Mark(); }

const std::string* ParseContext::OverrideFor(const std::string& path) const {
  // The longest override path that is `path` itself or one of its ancestors.
  const std::string* best = nullptr;
  size_t best_len = 0;
  for (const auto& [p, text] : overrides_) {
    bool covers = path == p || (path.size() > p.size() && path.compare(0, p.size(), p) == 0 &&
                                (path[p.size()] == '.' || path[p.size()] == '['));
    if (covers && p.size() >= best_len) best = &text, best_len = p.size();
  }
  return best;
}

std::string ParseContext::SectionFile(const std::string& section) const {
  auto it = section_files_.find(section);
  return it == section_files_.end() ? "" : it->second;
}

std::string ParseContext::FileOf(const std::string& path) const {
  if (OverrideFor(path)) return "";
  return SectionFile(path.substr(0, path.find_first_of(".[")));
}

std::string ParseContext::WhereMark(const std::string& path, const YAML::Mark& mark) const {
  if (const std::string* text = OverrideFor(path)) return " (from --set " + *text + ")";
  if (mark.is_null() || mark.line < 0) return "";
  std::string file = name_files_ ? FileOf(path) : "";
  return " (" + (file.empty() ? "" : file + ", ") + "line " + std::to_string(mark.line + 1) + ", column " +
         std::to_string(mark.column + 1) + ")";
}

const YAML::Mark* ParseContext::RecordedMark(const std::string& path) const {
  // The path itself, else the nearest recorded ancestor ("eval.epochs[2]" -> "eval.epochs").
  std::string p = path;
  while (!p.empty()) {
    auto it = where_.find(p);
    if (it != where_.end()) return &it->second;
    size_t cut = p.find_last_of(".[");
    if (cut == std::string::npos) break;
    p.resize(cut);
  }
  return nullptr;
}

std::string ParseContext::Where(const std::string& path) const {
  if (const YAML::Mark* mark = RecordedMark(path)) return WhereMark(path, *mark);
  if (const std::string* text = OverrideFor(path)) return " (from --set " + *text + ")";
  return "";
}

void ParseContext::Add(const std::string& field, const std::string& message, const std::string& file, int line) {
  // Values are quoted in messages; a huge one (or a huge key in the field path) must not make the
  // error itself huge (it is stored and sent back to clients).
  items_.push_back({ClipText(field, kMaxFieldChars), ClipText(message, kMaxMessageChars)});
  item_files_.push_back(file);
  item_lines_.push_back(line);
}

void ParseContext::Error(const std::string& path, const std::string& message, const YAML::Mark* mark) {
  if (!mark) mark = RecordedMark(path);
  int line = (mark && !mark->is_null() && !OverrideFor(path)) ? mark->line : -1;
  Add(path, message + (mark ? WhereMark(path, *mark) : Where(path)), FileOf(path), line);
}

void ParseContext::ErrorRaw(const std::string& field, const std::string& message, const std::string& file) {
  Add(field, message, file, -1);
}

std::vector<ConfigError::Item> ParseContext::items() const {
  // Files in the order data, train, model (the seed form), then "" (job file or none).
  auto file_rank = [this](const std::string& f) {
    static const char* kOrder[] = {"data", "train", "model"};
    for (int i = 0; i < 3; ++i) {
      if (!f.empty() && SectionFile(kOrder[i]) == f) return i;
    }
    return 3;
  };
  std::vector<size_t> order(items_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    bool la = item_lines_[a] >= 0, lb = item_lines_[b] >= 0;
    if (la != lb) return la;  // located problems first
    if (!la) return false;
    int fa = file_rank(item_files_[a]), fb = file_rank(item_files_[b]);
    if (fa != fb) return fa < fb;
    return item_lines_[a] < item_lines_[b];
  });
  std::vector<ConfigError::Item> out;
  for (size_t i : order) out.push_back(items_[i]);
  return out;
}

bool ParseContext::HasErrorFor(const std::string& path) const {
  for (const auto& item : items_) {
    if (item.field == path) return true;
  }
  return false;
}

std::string ParseContext::CommonFile() const {
  if (item_files_.empty()) return "";
  for (const auto& f : item_files_) {
    if (f != item_files_[0]) return "";
  }
  return item_files_[0];
}

namespace {
// Walks the tree as the reader will (aliases followed), charging 1 per node plus every scalar's
// length, and stops as soon as `left` runs out (so a cycle or an alias bomb costs at most the budget).
enum class Walk { kOk, kTooBig, kTooDeep };
Walk Charge(const YAML::Node& n, size_t& left, int depth) {
  if (depth > kMaxYamlDepth) return Walk::kTooDeep;
  if (left == 0) return Walk::kTooBig;
  --left;
  switch (n.Type()) {
    case YAML::NodeType::Scalar: {
      const size_t len = n.Scalar().size();
      if (len > left) return Walk::kTooBig;
      left -= len;
      return Walk::kOk;
    }
    case YAML::NodeType::Sequence:
      for (const auto& item : n) {
        if (Walk w = Charge(item, left, depth + 1); w != Walk::kOk) return w;
      }
      return Walk::kOk;
    case YAML::NodeType::Map:
      for (const auto& kv : n) {
        if (Walk w = Charge(kv.first, left, depth + 1); w != Walk::kOk) return w;
        if (Walk w = Charge(kv.second, left, depth + 1); w != Walk::kOk) return w;
      }
      return Walk::kOk;
    default: return Walk::kOk;
  }
}
}  // namespace

bool CheckExpandedSize(const YAML::Node& root, size_t budget, const std::string& what, ParseContext& ctx) {
  size_t left = budget;
  switch (Charge(root, left, 0)) {
    case Walk::kOk: return true;
    case Walk::kTooBig:
      ctx.ErrorRaw("<document>",
                   what + " expands to more than " + std::to_string(budget) +
                       " bytes once its YAML aliases (*name) are resolved; write the values out instead of "
                       "repeating aliases",
                   "");
      return false;
    case Walk::kTooDeep:
      ctx.ErrorRaw("<document>",
                   what + " is nested deeper than " + std::to_string(kMaxYamlDepth) +
                       " levels (job files have at most 4); check the brackets and indentation",
                   "");
      return false;
  }
  return false;
}

void ReadJobTree(const YAML::Node& root, JobConfig& cfg, ParseContext& ctx) {
  Reader reader(ctx, root, "");
  schema::Fields(reader, cfg);
  reader.Finish();
}

}  // namespace detail

// ---- public helpers ---------------------------------------------------------------------------

std::vector<std::string> AllKeyPaths() {
  static const std::vector<std::string> paths = [] {
    std::vector<std::string> out;
    detail::KeyLister lister(out, "");
    JobConfig defaults;
    schema::Fields(lister, defaults);
    return out;
  }();
  return paths;
}

bool IsOperational(const std::string& key_path) {
  static const std::vector<std::string> marked = [] {
    std::vector<std::string> out;
    detail::OperationalLister lister(out, "");
    const JobConfig defaults;
    schema::Fields(lister, defaults);
    return out;
  }();
  for (const std::string& m : marked) {
    if (key_path.compare(0, m.size(), m) != 0) continue;
    if (key_path.size() == m.size() || key_path[m.size()] == '.' || key_path[m.size()] == '[') return true;
  }
  return false;
}

std::vector<std::string> DiffConfigs(const JobConfig& a, const JobConfig& b) {
  std::map<std::string, std::string> fa, fb;
  detail::Flattener la(fa, ""), lb(fb, "");
  schema::Fields(la, a);
  schema::Fields(lb, b);
  std::vector<std::string> diff;
  for (const auto& [path, value] : fa) {
    if (fb[path] != value) diff.push_back(path);
  }
  return diff;
}

std::string ToYaml(const JobConfig& cfg) {
  YAML::Emitter e;
  e << YAML::Comment("vicreg job config, resolved: every default filled in (ParseJobYaml reads it back)");
  e << YAML::BeginMap;
  detail::Writer writer(e);
  JobConfig resolved = cfg;  // a preset's geometry, never the struct defaults it replaces
  resolved.model = ResolveModel(cfg.model);
  schema::Fields(writer, resolved);
  e << YAML::EndMap;
  if (!e.good()) throw InternalError(std::string("ToYaml: YAML emitter failed: ") + e.GetLastError());
  return std::string(e.c_str()) + "\n";
}

}  // namespace vicreg::config
