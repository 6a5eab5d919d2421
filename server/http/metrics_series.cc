#include "server/http/metrics_series.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "common/errors.h"

namespace vicreg::web {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

using Fields = std::vector<std::pair<std::string_view, double>>;

const char* SkipWs(const char* p, const char* e) {
  while (p < e && (*p == ' ' || *p == '\t' || *p == '\r')) ++p;
  return p;
}

bool Literal(const char*& p, const char* e, const char* word, size_t n) {
  if (static_cast<size_t>(e - p) < n || std::memcmp(p, word, n) != 0) return false;
  p += n;
  return true;
}

// Fast path: {"key": number|null|true|false, ...} with plain keys (no escapes). False for
// anything else (the caller falls back to nlohmann::json).
bool ParseFlat(const char* p, const char* e, Fields* out) {
  out->clear();
  p = SkipWs(p, e);
  if (p == e || *p != '{') return false;
  p = SkipWs(p + 1, e);
  if (p < e && *p == '}') return SkipWs(p + 1, e) == e;
  for (;;) {
    if (p == e || *p != '"') return false;
    const char* k = ++p;
    while (p < e && *p != '"' && *p != '\\') ++p;
    if (p == e || *p == '\\') return false;
    std::string_view key(k, static_cast<size_t>(p - k));
    p = SkipWs(p + 1, e);
    if (p == e || *p != ':') return false;
    p = SkipWs(p + 1, e);
    if (p == e) return false;
    double v;
    if (*p == 'n') {
      if (!Literal(p, e, "null", 4)) return false;
      v = std::nan("");
    } else if (*p == 't') {
      if (!Literal(p, e, "true", 4)) return false;
      v = 1;
    } else if (*p == 'f') {
      if (!Literal(p, e, "false", 5)) return false;
      v = 0;
    } else if (*p == '-' || (*p >= '0' && *p <= '9')) {
      auto r = std::from_chars(p, e, v);
      if (r.ec != std::errc()) return false;
      p = r.ptr;
    } else {
      return false;  // strings, arrays, objects
    }
    out->emplace_back(key, v);
    p = SkipWs(p, e);
    if (p == e) return false;
    if (*p == '}') return SkipWs(p + 1, e) == e;
    if (*p != ',') return false;
    p = SkipWs(p + 1, e);
  }
}

class Appender {
 public:
  explicit Appender(MetricsColumns* c) : c_(c) {
    for (size_t i = 0; i < c->keys.size(); ++i) index_.emplace(c->keys[i], i);
  }

  void Line(const char* b, const char* e) {
    if (SkipWs(b, e) == e) return;  // blank line
    if (ParseFlat(b, e, &fields_)) {
      Add(fields_);
      return;
    }
    // Slow path: anything JSON allows (escaped keys, string values, nesting: ignored values).
    auto j = nlohmann::json::parse(b, e, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) {
      ++c_->bad_lines;
      return;
    }
    std::vector<std::string> keys;
    std::vector<double> vals;
    for (auto it = j.begin(); it != j.end(); ++it) {
      const auto& v = it.value();
      if (v.is_number()) vals.push_back(v.get<double>());
      else if (v.is_boolean()) vals.push_back(v.get<bool>() ? 1 : 0);
      else if (v.is_null()) vals.push_back(std::nan(""));
      else continue;
      keys.push_back(it.key());
    }
    slow_.clear();
    for (size_t i = 0; i < keys.size(); ++i) slow_.emplace_back(keys[i], vals[i]);
    Add(slow_);
  }

 private:
  void Add(const Fields& f) {
    const double* step = nullptr;
    for (const auto& [k, v] : f) {
      if (k == "step") step = &v;
    }
    if (step == nullptr || !std::isfinite(*step)) {
      ++c_->bad_lines;
      return;
    }
    const size_t row = c_->step.size();
    if (row > 0 && static_cast<int64_t>(*step) < c_->step.back()) c_->ascending = false;
    c_->step.push_back(static_cast<int64_t>(*step));
    for (auto& col : c_->values) col.push_back(kNaN);
    for (const auto& [k, v] : f) {
      if (k == "step") continue;
      auto it = index_.find(std::string(k));
      size_t idx;
      if (it == index_.end()) {
        idx = c_->keys.size();
        c_->keys.emplace_back(k);
        c_->values.emplace_back(row + 1, kNaN);
        index_.emplace(std::string(k), idx);
      } else {
        idx = it->second;
      }
      c_->values[idx][row] = static_cast<float>(v);
    }
  }

  MetricsColumns* c_;
  std::unordered_map<std::string, size_t> index_;
  Fields fields_, slow_;
};

void AppendFloat(std::string& out, float v) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general, 6);
  out.append(buf, r.ptr);
}

std::string JsonString(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

size_t AppendMetricsLines(std::string_view text, MetricsColumns* c) {
  Appender a(c);
  const char* p = text.data();
  const char* end = p + text.size();
  size_t consumed = 0;
  while (p < end) {
    const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
    if (nl == nullptr) break;  // an incomplete last line: the writer is mid-append
    a.Line(p, nl);
    p = nl + 1;
    consumed = static_cast<size_t>(p - text.data());
  }
  return consumed;
}

Series Downsample(const MetricsColumns& c, const SeriesQuery& q) {
  Series s;
  s.rows = static_cast<int64_t>(c.step.size());
  std::vector<size_t> cols;
  for (size_t k = 0; k < c.keys.size(); ++k) {
    if (q.keys.empty() || std::find(q.keys.begin(), q.keys.end(), c.keys[k]) != q.keys.end()) cols.push_back(k);
  }
  // Rows in [from, to]: a contiguous range found by binary search when steps ascend (always, for
  // a file the worker wrote), else an index list.
  std::vector<size_t> index;
  size_t lo = 0, hi = c.step.size();
  if (c.ascending) {
    lo = static_cast<size_t>(std::lower_bound(c.step.begin(), c.step.end(), q.from) - c.step.begin());
    hi = static_cast<size_t>(std::upper_bound(c.step.begin(), c.step.end(), q.to) - c.step.begin());
    if (hi < lo) hi = lo;
  } else {
    for (size_t i = 0; i < c.step.size(); ++i) {
      if (c.step[i] >= q.from && c.step[i] <= q.to) index.push_back(i);
    }
  }
  const int64_t n = c.ascending ? static_cast<int64_t>(hi - lo) : static_cast<int64_t>(index.size());
  auto row = [&](int64_t i) { return c.ascending ? lo + static_cast<size_t>(i) : index[static_cast<size_t>(i)]; };
  s.in_range = n;
  for (size_t k : cols) s.series.emplace_back(c.keys[k], std::vector<float>{});
  const int max_points = std::max(2, q.max_points);
  if (n <= max_points) {
    s.buckets = n;
    for (int64_t i = 0; i < n; ++i) s.x.push_back(c.step[row(i)]);
    for (size_t j = 0; j < cols.size(); ++j) {
      auto& out = s.series[j].second;
      out.reserve(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) out.push_back(c.values[cols[j]][row(i)]);
    }
    return s;
  }
  s.downsampled = true;
  const int64_t b = max_points / 2;
  const int64_t k = (n + b - 1) / b;
  s.buckets = (n + k - 1) / k;
  for (int64_t start = 0; start < n; start += k) {
    const int64_t stop = std::min(n, start + k);
    s.x.push_back(c.step[row(start)]);
    if (stop - start > 1) s.x.push_back(c.step[row(stop - 1)]);
  }
  for (size_t j = 0; j < cols.size(); ++j) {
    const auto& col = c.values[cols[j]];
    auto& out = s.series[j].second;
    out.reserve(s.x.size());
    for (int64_t start = 0; start < n; start += k) {
      const int64_t stop = std::min(n, start + k);
      if (stop - start == 1) {
        out.push_back(col[row(start)]);
        continue;
      }
      float lo_v = kNaN, hi_v = kNaN;
      int64_t at_lo = -1, at_hi = -1;
      for (int64_t i = start; i < stop; ++i) {
        const float v = col[row(i)];
        if (std::isnan(v)) continue;
        if (at_lo < 0 || v < lo_v) lo_v = v, at_lo = i;
        if (at_hi < 0 || v > hi_v) hi_v = v, at_hi = i;
      }
      if (at_lo <= at_hi) {
        out.push_back(lo_v);
        out.push_back(hi_v);
      } else {
        out.push_back(hi_v);
        out.push_back(lo_v);
      }
    }
  }
  return s;
}

std::string SeriesJson(const Series& s, int max_points) {
  std::string out;
  size_t values = s.x.size() * (s.series.size() + 1);
  out.reserve(256 + values * 10);
  out += "{\"rows\":" + std::to_string(s.rows) + ",\"in_range\":" + std::to_string(s.in_range) +
         ",\"downsampled\":" + (s.downsampled ? "true" : "false") + ",\"buckets\":" + std::to_string(s.buckets) +
         ",\"max_points\":" + std::to_string(max_points) + ",\"x\":[";
  for (size_t i = 0; i < s.x.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(s.x[i]);
  }
  out += "],\"series\":{";
  for (size_t j = 0; j < s.series.size(); ++j) {
    if (j) out += ',';
    out += JsonString(s.series[j].first);
    out += ":[";
    const auto& v = s.series[j].second;
    for (size_t i = 0; i < v.size(); ++i) {
      if (i) out += ',';
      AppendFloat(out, v[i]);
    }
    out += ']';
  }
  out += "}}";
  return out;
}

std::shared_ptr<MetricsCache::Entry> MetricsCache::Get(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = lru_.begin(); it != lru_.end(); ++it) {
    if (it->first == path) {
      lru_.splice(lru_.begin(), lru_, it);
      return lru_.front().second;
    }
  }
  lru_.emplace_front(path, std::make_shared<Entry>());
  while (lru_.size() > max_files_) lru_.pop_back();  // an entry in use lives on in its shared_ptr
  return lru_.front().second;
}

void MetricsCache::Refresh(const std::string& path, Entry& e) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT) throw RuntimeFailure("cannot read " + path + ": " + std::strerror(errno));
    e.columns = MetricsColumns{};  // not written yet (or removed)
    e.offset = 0;
    e.dev = e.ino = 0;
    return;
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    close(fd);
    throw RuntimeFailure("cannot stat " + path + ": " + std::strerror(err));
  }
  const uint64_t dev = st.st_dev, ino = st.st_ino;
  if (dev != e.dev || ino != e.ino || st.st_size < e.offset) {
    e.columns = MetricsColumns{};
    e.offset = 0;
    e.dev = dev;
    e.ino = ino;
  }
  if (st.st_size > e.offset) {
    std::string buf(static_cast<size_t>(st.st_size - e.offset), '\0');
    size_t got = 0;
    while (got < buf.size()) {
      const ssize_t n = pread(fd, buf.data() + got, buf.size() - got, e.offset + static_cast<off_t>(got));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    buf.resize(got);
    e.offset += static_cast<int64_t>(AppendMetricsLines(buf, &e.columns));
  }
  close(fd);
}

Series MetricsCache::Query(const std::string& path, const SeriesQuery& q) {
  std::shared_ptr<Entry> e = Get(path);
  std::lock_guard<std::mutex> lock(e->mu);
  Refresh(path, *e);
  return Downsample(e->columns, q);
}

}  // namespace vicreg::web
