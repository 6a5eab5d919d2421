// metrics.jsonl columns, the incremental cache and min/max downsampling (server/http/metrics_series.h).
#include "server/http/metrics_series.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "tests/server/test_util.h"

namespace vicreg::web {
namespace {

std::string Line(int64_t step, double loss, std::optional<double> std_min = std::nullopt) {
  nlohmann::ordered_json j;
  j["step"] = step;
  j["loss"] = loss;
  j["std_min"] = std_min ? nlohmann::json(*std_min) : nlohmann::json(nullptr);
  return j.dump() + "\n";
}

TEST(MetricsSeries, FastAndSlowPathsAgreeAndBadLinesAreCounted) {
  MetricsColumns c;
  std::string text = Line(1, 2.5, 0.5) +
                     "{ \"step\" : 2 , \"loss\" : 1e-3, \"std_min\": null, \"skipped\": true }\n"  // spaces, bool
                     "{\"step\":3,\"loss\":7,\"note\":\"a string\",\"n\\u0061me\":4}\n"             // slow path
                     "not json\n"
                     "{\"loss\":1}\n"  // no step
                     "\n" +
                     Line(4, -1.25) + "{\"step\":5,\"loss\":3";  // incomplete last line
  const size_t used = AppendMetricsLines(text, &c);
  EXPECT_EQ(used, text.rfind('\n') + 1);
  ASSERT_EQ(c.step, (std::vector<int64_t>{1, 2, 3, 4}));
  EXPECT_EQ(c.bad_lines, 2);
  auto col = [&](const std::string& k) {
    for (size_t i = 0; i < c.keys.size(); ++i)
      if (c.keys[i] == k) return c.values[i];
    return std::vector<float>{};
  };
  EXPECT_EQ(col("loss"), (std::vector<float>{2.5f, 1e-3f, 7.0f, -1.25f}));
  auto s = col("std_min");
  EXPECT_EQ(s[0], 0.5f);
  EXPECT_TRUE(std::isnan(s[1]) && std::isnan(s[2]) && std::isnan(s[3]));
  EXPECT_EQ(col("skipped")[1], 1.0f);
  EXPECT_EQ(col("name")[2], 4.0f);  // the escaped key, through nlohmann
  EXPECT_TRUE(col("note").empty());  // string values are not series
}

TEST(MetricsSeries, SmallRangesAreReturnedAsIs) {
  MetricsColumns c;
  std::string text;
  for (int s = 1; s <= 50; ++s) text += Line(s, s * 0.5);
  AppendMetricsLines(text, &c);
  SeriesQuery q;
  q.from = 11;
  q.to = 20;
  Series r = Downsample(c, q);
  EXPECT_FALSE(r.downsampled);
  EXPECT_EQ(r.rows, 50);
  EXPECT_EQ(r.in_range, 10);
  ASSERT_EQ(r.x.size(), 10u);
  EXPECT_EQ(r.x.front(), 11);
  EXPECT_EQ(r.series.size(), 2u);  // loss, std_min
  EXPECT_EQ(r.series[0].second[0], 5.5f);
  q = {};
  q.keys = {"loss"};
  r = Downsample(c, q);
  ASSERT_EQ(r.series.size(), 1u);
  EXPECT_EQ(r.series[0].first, "loss");
  // Steps out of order (not written by the worker, but a file may say anything): still selected right.
  MetricsColumns u;
  AppendMetricsLines(Line(5, 5) + Line(2, 2) + Line(9, 9) + Line(3, 3), &u);
  EXPECT_FALSE(u.ascending);
  q = {};
  q.from = 3;
  q.to = 6;
  r = Downsample(u, q);
  EXPECT_EQ(r.x, (std::vector<int64_t>{5, 3}));
  EXPECT_EQ(r.series[0].second, (std::vector<float>{5, 3}));
  EXPECT_TRUE(c.ascending);
}

// Min/max per bucket: every extreme survives, the point count is bounded, order is by step.
TEST(MetricsSeries, DownsamplingKeepsEveryBucketsExtremesWithinMaxPoints) {
  MetricsColumns c;
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> u(0, 1);
  std::string text;
  const int n = 100001;
  for (int s = 1; s <= n; ++s) text += Line(s, s == 77777 ? 1000.0 : (s == 33333 ? -1000.0 : u(rng)));
  AppendMetricsLines(text, &c);
  for (int max_points : {2, 3, 10, 1000, 2000}) {
    SeriesQuery q;
    q.max_points = max_points;
    Series r = Downsample(c, q);
    ASSERT_TRUE(r.downsampled);
    const int64_t b = max_points / 2, k = (n + b - 1) / b, buckets = (n + k - 1) / k;
    EXPECT_EQ(r.buckets, buckets);
    const int64_t last = n - (buckets - 1) * k;
    EXPECT_EQ(static_cast<int64_t>(r.x.size()), 2 * buckets - (last == 1 ? 1 : 0)) << max_points;
    EXPECT_LE(static_cast<int>(r.x.size()), max_points);
    for (const auto& [key, v] : r.series) EXPECT_EQ(v.size(), r.x.size()) << key;
    EXPECT_TRUE(std::is_sorted(r.x.begin(), r.x.end()));
    EXPECT_EQ(r.x.front(), 1);
    EXPECT_EQ(r.x.back(), n);
    const auto& loss = r.series[0].second;
    EXPECT_EQ(*std::max_element(loss.begin(), loss.end()), 1000.0f);
    EXPECT_EQ(*std::min_element(loss.begin(), loss.end()), -1000.0f);
  }
  std::string json = SeriesJson(Downsample(c, SeriesQuery{}), 2000);
  auto j = nlohmann::json::parse(json);
  EXPECT_EQ(j["x"].size(), 2u * 991);  // k = ceil(100001 / 1000) = 101 rows per bucket, 991 buckets
  EXPECT_TRUE(j["series"]["std_min"][0].is_null());
}

TEST(MetricsSeries, CacheExtendsAGrowingFileAndRereadsAReplacedOne) {
  testutil::TempDir dir("series");
  const std::string path = dir.path() + "/metrics.jsonl";
  MetricsCache cache;
  EXPECT_EQ(cache.Query(path, {}).rows, 0);  // not written yet
  {
    std::ofstream f(path);
    for (int s = 1; s <= 10; ++s) f << Line(s, s);
    f << "{\"step\":11,";  // the writer is mid-line
  }
  EXPECT_EQ(cache.Query(path, {}).rows, 10);
  {
    std::ofstream f(path, std::ios::app);
    f << "\"loss\":11}\n" << Line(12, 12);
  }
  Series r = cache.Query(path, {});
  EXPECT_EQ(r.rows, 12);
  EXPECT_EQ(r.series[0].second[10], 11.0f);
  // Resume rewrites the file atomically (new inode) with fewer lines.
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp);
    for (int s = 1; s <= 5; ++s) f << Line(s, -s);
  }
  ASSERT_EQ(std::rename(tmp.c_str(), path.c_str()), 0);
  r = cache.Query(path, {});
  EXPECT_EQ(r.rows, 5);
  EXPECT_EQ(r.series[0].second[4], -5.0f);
  std::remove(path.c_str());
  EXPECT_EQ(cache.Query(path, {}).rows, 0);
}

}  // namespace
}  // namespace vicreg::web
