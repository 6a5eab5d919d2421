// The training curves of a run for the web UI: <run_dir>/metrics.jsonl as columns (one per key,
// float, NaN = null/absent), cached per file and extended with only the appended bytes, and
// min/max-per-bucket downsampling so that a chart gets <= max_points points per series whatever
// the run's length (docs/OPERATIONS.md "Web UI and HTTP API").
//
//   MetricsCache cache;
//   SeriesQuery q;  q.max_points = 2000;
//   Series s = cache.Query(run_dir + "/metrics.jsonl", q);   // s.x (steps), s.series {key -> values}
#pragma once

#include <cstdint>
#include <limits>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace vicreg::web {

// Parsed metrics.jsonl: rows in file order.
struct MetricsColumns {
  std::vector<int64_t> step;
  std::vector<std::string> keys;            // every key but "step", in first-seen order
  std::vector<std::vector<float>> values;   // values[k][row]; NaN = null or absent
  int64_t bad_lines = 0;                    // lines that are not a JSON object with a numeric step
  bool ascending = true;                    // steps never decrease (the normal case: ranges are binary searched)
};

// Appends the complete lines of `text` (everything up to its last '\n') to `c`; returns the
// number of bytes consumed. Flat objects of numbers/null/booleans take a fast path (std::from_chars);
// anything else goes through nlohmann::json. Never throws on bad content (counts bad_lines).
size_t AppendMetricsLines(std::string_view text, MetricsColumns* c);

struct SeriesQuery {
  int64_t from = std::numeric_limits<int64_t>::min();  // steps in [from, to]
  int64_t to = std::numeric_limits<int64_t>::max();
  int max_points = 2000;          // per series (2..kMaxPoints)
  std::vector<std::string> keys;  // empty = every key
};
constexpr int kMaxPoints = 2000;

struct Series {
  int64_t rows = 0;         // rows in the file
  int64_t in_range = 0;     // rows with from <= step <= to
  bool downsampled = false;  // false: x/series are the rows themselves
  int64_t buckets = 0;      // downsampled: number of buckets (each gives its min and max, in step order)
  std::vector<int64_t> x;   // steps; shared by every series
  std::vector<std::pair<std::string, std::vector<float>>> series;
};

// Rows in range; when more than q.max_points, B = max_points/2 buckets of k = ceil(n/B) rows each
// (the last may be shorter): every bucket contributes its first and last step as x and, per series,
// its min and max (NaN-skipping) in the order they occur. At most max_points points per series.
Series Downsample(const MetricsColumns& c, const SeriesQuery& q);

// {"rows":..,"in_range":..,"downsampled":..,"buckets":..,"max_points":..,"x":[..],"series":{"loss":[..],..}}
// with NaN as null and values with 6 significant digits (plenty for a chart, a third less to send).
std::string SeriesJson(const Series& s, int max_points);

// Cache of parsed files (LRU, at most max_files). A file that was replaced (new inode, e.g. the
// atomic rewrite on resume) or shrank is parsed again; one that grew is extended. Thread-safe.
class MetricsCache {
 public:
  explicit MetricsCache(size_t max_files = 16) : max_files_(max_files) {}
  // A missing file gives an empty Series. Throws RuntimeFailure when the file cannot be read.
  Series Query(const std::string& path, const SeriesQuery& q);

 private:
  struct Entry {
    std::mutex mu;
    uint64_t dev = 0, ino = 0;
    int64_t offset = 0;  // bytes parsed (up to the last complete line)
    MetricsColumns columns;
  };
  std::shared_ptr<Entry> Get(const std::string& path);
  static void Refresh(const std::string& path, Entry& e);

  size_t max_files_;
  std::mutex mu_;
  std::list<std::pair<std::string, std::shared_ptr<Entry>>> lru_;  // front = most recent
};

}  // namespace vicreg::web
