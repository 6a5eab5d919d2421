// RunDir (layout, metrics.jsonl with truncation on resume, progress/result/endpoint files) and CollapseWatch.
#include "worker/train/run_dir.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/train/test_util.h"
#include "worker/train/collapse_watch.h"

namespace vicreg::train {
namespace {

using vicreg::testing::MakeTempDir;
using vicreg::testing::PathExists;
using vicreg::testing::RemoveTree;
using vicreg::testing::Slurp;

const std::vector<std::string> kMetricKeys = {
    "step",    "epoch",    "loss",      "invariance",   "variance",       "covariance",
    "std_min", "std_mean", "std_max",   "pairwise_sim", "cov_offdiag_sq", "collapsed_dims",
    "rankme",  "lr",       "grad_norm", "images_per_s", "data_wait_s",    "step_s"};

StepReport Report(int64_t step, bool diag = true) {
  StepReport r;
  r.step = step;
  r.epoch = 1 + step / 10;
  r.loss = 20.0 - step * 0.1;
  r.invariance = 0.5;
  r.variance = 0.7;
  r.covariance = 0.01;
  if (diag) {
    r.std_min = 0.2;
    r.std_mean = 0.5;
    r.std_max = 0.9;
    r.pairwise_sim = 0.3;
    r.cov_offdiag_sq = 0.001;
    r.collapsed_dims = 0.0;
    r.rankme = 12.5;
  }
  r.lr = 1e-3;
  r.grad_norm = 0.8;
  r.images_per_s = 1000;
  r.data_wait_seconds = 0.01;
  r.step_seconds = 0.1;
  return r;
}

std::vector<nlohmann::json> Lines(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::istringstream in(Slurp(path));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

class RunDirTest : public ::testing::Test {
 protected:
  void SetUp() override { root_ = MakeTempDir("rundir"); }
  void TearDown() override { RemoveTree(root_); }
  std::string root_;
};

TEST_F(RunDirTest, CreatesTheLayoutPerRank) {
  RunDir r1(root_ + "/run/", 1);
  r1.Create();
  EXPECT_TRUE(PathExists(root_ + "/run/logs"));
  EXPECT_TRUE(PathExists(root_ + "/run/endpoints"));
  EXPECT_FALSE(PathExists(root_ + "/run/checkpoints")) << "only rank 0 creates checkpoints/";
  RunDir r0(root_ + "/run", 0);
  r0.Create();
  EXPECT_TRUE(PathExists(root_ + "/run/checkpoints"));
  EXPECT_TRUE(PathExists(root_ + "/run/eval"));
  EXPECT_EQ(r1.log_file(1), root_ + "/run/logs/rank-1.log");
  EXPECT_EQ(r1.endpoint_file(3), root_ + "/run/endpoints/rank-3.json");
  EXPECT_EQ(r0.job_yaml(), root_ + "/run/job.yaml");
}

TEST_F(RunDirTest, MetricsLinesHaveEveryKey) {
  RunDir rd(root_, 0);
  rd.Create();
  rd.OpenMetrics(0);
  rd.AppendMetrics(Report(1));
  StepReport nodiag = Report(2, /*diag=*/false);
  rd.AppendMetrics(nodiag);
  StepReport nan = Report(3, false);
  nan.loss = std::numeric_limits<double>::quiet_NaN();
  nan.loss_finite = false;
  rd.AppendMetrics(nan);
  auto lines = Lines(rd.metrics_jsonl());
  ASSERT_EQ(lines.size(), 3u);
  for (const auto& l : lines)
    for (const auto& k : kMetricKeys) EXPECT_TRUE(l.contains(k)) << k << " missing in " << l.dump();
  EXPECT_EQ(lines[0]["step"], 1);
  EXPECT_DOUBLE_EQ(lines[0]["rankme"].get<double>(), 12.5);
  EXPECT_DOUBLE_EQ(lines[0]["data_wait_s"].get<double>(), 0.01);
  EXPECT_TRUE(lines[1]["std_min"].is_null()) << "absent diagnostics are null";
  EXPECT_TRUE(lines[2]["loss"].is_null()) << "NaN is written as null (JSON has no NaN)";
  EXPECT_EQ(lines[2]["skipped"], true);
}

TEST_F(RunDirTest, ResumeDropsLinesAfterTheResumedStep) {
  {
    RunDir rd(root_, 0);
    rd.Create();
    rd.OpenMetrics(0);
    for (int s = 1; s <= 7; ++s) rd.AppendMetrics(Report(s));
  }
  RunDir rd(root_, 0);
  rd.OpenMetrics(4);  // resumed from the checkpoint of step 4
  for (int s = 5; s <= 8; ++s) rd.AppendMetrics(Report(s));
  auto lines = Lines(rd.metrics_jsonl());
  ASSERT_EQ(lines.size(), 8u);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(lines[i]["step"], i + 1) << "no duplicates, in order";
  // A fresh start in a reused run dir keeps nothing.
  RunDir again(root_, 0);
  again.OpenMetrics(0);
  again.AppendMetrics(Report(1));
  EXPECT_EQ(Lines(again.metrics_jsonl()).size(), 1u);
}

TEST_F(RunDirTest, ProgressResultAndEndpointFiles) {
  RunDir rd(root_, 0);
  rd.Create();
  Progress p{12, 40, 2, 4, 18.5, 930.0};
  rd.WriteProgress(p);
  auto j = nlohmann::json::parse(Slurp(rd.progress_json()));
  EXPECT_EQ(j["step"], 12);
  EXPECT_EQ(j["total_steps"], 40);
  EXPECT_EQ(j["epoch"], 2);
  EXPECT_EQ(j["num_epochs"], 4);
  EXPECT_DOUBLE_EQ(j["loss"].get<double>(), 18.5);
  EXPECT_DOUBLE_EQ(j["images_per_s"].get<double>(), 930.0);
  EXPECT_GT(j["time"].get<double>(), 1.6e9);

  RunResult r;
  r.status = RunStatus::kFailed;
  r.reason = "terminated by SIGTERM";
  r.step = 12;
  r.epoch = 2;
  rd.WriteResult(r);
  auto res = nlohmann::json::parse(Slurp(rd.result_json()));
  EXPECT_EQ(res["status"], "failed");
  EXPECT_EQ(res["reason"], "terminated by SIGTERM");
  EXPECT_EQ(res["step"], 12);
  EXPECT_EQ(res["epoch"], 2);

  EndpointInfo e{1, 1, 4242, "vm", "127.0.0.1:9500"};
  rd.WriteEndpoint(e);
  auto ep = nlohmann::json::parse(Slurp(rd.endpoint_file(1)));
  EXPECT_EQ(ep["rank"], 1);
  EXPECT_EQ(ep["local_rank"], 1);
  EXPECT_EQ(ep["pid"], 4242);
  EXPECT_EQ(ep["host"], "vm");
  EXPECT_EQ(ep["metrics"], "127.0.0.1:9500");
  e.metrics = "";
  rd.WriteEndpoint(e);
  EXPECT_TRUE(nlohmann::json::parse(Slurp(rd.endpoint_file(1)))["metrics"].is_null());
}

TEST(CollapseWatchTest, SeedThresholdsAndRateLimit) {
  CollapseWatch w({0.01, 0.1, 0.9, /*min_interval_steps=*/10});
  StepReport r;
  r.step = 1;
  EXPECT_TRUE(w.Observe(r).empty()) << "no diagnostics, no warning";
  r.std_min = 0.5;
  r.pairwise_sim = 0.3;
  EXPECT_TRUE(w.Observe(r).empty()) << "healthy";
  r.std_min = 0.05;
  auto out = w.Observe(r);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_NE(out[0].find("low variance"), std::string::npos) << out[0];
  r.std_min = 0.005;
  r.pairwise_sim = 0.95;
  r.step = 2;
  out = w.Observe(r);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_NE(out[0].find("collapse risk"), std::string::npos) << out[0];
  EXPECT_EQ(out[0].find("low variance at"), std::string::npos) << "collapse risk supersedes low variance";
  EXPECT_NE(out[1].find("feature collapse"), std::string::npos) << out[1];
  for (int s = 3; s < 12; ++s) {
    r.step = s;
    EXPECT_TRUE(w.Observe(r).empty()) << "rate-limited at step " << s;
  }
  r.step = 12;
  out = w.Observe(r);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_NE(out[0].find("[9 more since step 2]"), std::string::npos) << out[0];
  EXPECT_EQ(w.count(CollapseWatch::kCollapseRisk), 11);
  EXPECT_EQ(w.count(CollapseWatch::kLowVariance), 1);
  EXPECT_EQ(w.count(CollapseWatch::kFeatureCollapse), 11);
  EXPECT_NE(w.Summary().find("collapse risk 11"), std::string::npos) << w.Summary();
}

}  // namespace
}  // namespace vicreg::train
