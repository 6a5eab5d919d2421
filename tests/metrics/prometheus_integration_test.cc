// A real Prometheus (configured from deploy/prometheus, 1 s intervals, `for:` windows shortened
// to a few seconds) scraping a running exporter: every metric exists with sane values, every
// query of the Grafana dashboards returns data, and the alerts fire (or stay quiet) as designed.
//
// The synthetic exporter (vicreg_metrics_exporter) serves 2 ranks + the coordinator's metrics and
// /sd, so the shipped HTTP service discovery is exercised end to end.
#include <gtest/gtest.h>

#include <csignal>
#include <nlohmann/json.hpp>

#include "tests/metrics/dashboard_queries.h"
#include "tests/metrics/prometheus_harness.h"
#include "tests/metrics/test_support.h"

namespace vicreg::metrics::testing {
namespace {

constexpr double kFirstScrapeTimeout = 30;  // SD batches target updates every 5 s: ~7 s in practice

#define REQUIRE_PROMETHEUS()                                                                             \
  if (FindOnPath("prometheus").empty()) {                                                                \
    GTEST_SKIP() << "prometheus not found on PATH: install Debian's `prometheus` package "               \
                    "(deploy/install-deps.sh) to run the integration tests";                             \
  }

class SyntheticExporter {
 public:
  SyntheticExporter(const std::string& job_id, std::vector<std::string> extra_args) {
    dir_ = MakeTempDir("vicreg-exporter-");
    std::vector<std::string> argv = {VICREG_METRICS_EXPORTER, "--job-id", job_id, "--ranks", "2", "--coordinator",
                                     "--ports-file", dir_ + "/ports.json", "--step-ms", "50", "--log-every", "5"};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    process_ = std::make_unique<Process>(argv, dir_ + "/exporter.log");
    if (!WaitFor([&] { return !ReadText(dir_ + "/ports.json").empty() || !process_->Running(); }, 10)) {
      throw std::runtime_error("exporter did not start: " + process_->Log());
    }
    ports_ = nlohmann::json::parse(ReadText(dir_ + "/ports.json"));
  }
  ~SyntheticExporter() {
    process_->Stop(SIGTERM, 10);
    RemoveTree(dir_);
  }
  std::string coordinator() const { return "127.0.0.1:" + std::to_string(ports_["coordinator"].get<int>()); }
  bool Running() { return process_->Running(); }
  std::string Log() const { return process_->Log(); }

 private:
  std::string dir_;
  std::unique_ptr<Process> process_;
  nlohmann::json ports_;
};

// Waits until Prometheus has scraped the coordinator and `ranks` workers, and has a few samples
// of every rank (rates over the dashboards' 10 s windows need at least two).
void WaitForScrapes(PrometheusServer& prom, const std::string& job_id, size_t ranks) {
  const std::string up_workers = "up{job=\"vicreg-workers\",job_id=\"" + job_id + "\"} == 1";
  const bool scraped = WaitFor(
      [&] {
        return prom.Query(up_workers).size() == ranks && prom.Query("up{job=\"vicreg-coordinator\"} == 1").size() == 1;
      },
      kFirstScrapeTimeout, 0.5);
  ASSERT_TRUE(scraped) << "targets not scraped in " << kFirstScrapeTimeout << " s\n"
                       << "up: " << prom.Query("up").dump() << "\nconfig:\n"
                       << prom.ConfigText() << "\nprometheus log:\n"
                       << prom.Log();
  const std::string samples =
      "count_over_time(vicreg_train_steps_total{job_id=\"" + job_id + "\"}[1m]) >= 4";
  ASSERT_TRUE(WaitFor([&] { return prom.Query(samples).size() == ranks; }, 20, 0.5))
      << prom.Query("count_over_time(vicreg_train_steps_total[1m])").dump();
}

TEST(PrometheusIntegration, SyntheticRanksAreDiscoveredScrapedAndEveryDashboardQueryHasData) {
  REQUIRE_PROMETHEUS();
  const std::string job_id = "itest-healthy";
  // A skipped step ~15 s after start, once Prometheus has scraped the counter at 0 (increase()
  // cannot see an increment that happened before the first scrape).
  SyntheticExporter exporter(job_id, {"--nonfinite-at-step", "300"});
  PrometheusServer prom(exporter.coordinator(), "2s");
  WaitForScrapes(prom, job_id, 2);
  if (HasFatalFailure()) return;

  ExpectWorkerMetricsSane(prom, job_id, {"0", "1"}, /*collapsed=*/false);
  ExpectEveryDashboardQueryReturnsData(prom, job_id, {"0", "1"});

  // Coordinator metrics and the SD labels on the rank targets.
  EXPECT_EQ(prom.Scalar("sum(vicreg_jobs{state=\"running\"})"), 1);
  EXPECT_EQ(prom.Scalar("sum(vicreg_slots)"), 4);
  EXPECT_GT(prom.Scalar("sum(vicreg_grpc_requests_total{method=\"GetJob\",code=\"OK\"})"), 0);
  EXPECT_NEAR(prom.Scalar("vicreg_eval_top1_ratio{job_id=\"" + job_id + "\",probe=\"knn\"}"), 0.68, 1e-9);
  EXPECT_EQ(prom.Query("up{job=\"vicreg-workers\",rank=\"1\",job_id=\"" + job_id + "\"}").size(), 1u);
  EXPECT_TRUE(prom.Query("{exported_job_id!=\"\"}").empty()) << "honor_labels keeps the ranks' own labels";

  // The skipped step fires NonFiniteLoss (no `for:`); collapse alerts stay quiet.
  EXPECT_TRUE(WaitFor([&] { return prom.AlertState("NonFiniteLoss", job_id) == "firing"; }, 25, 0.5))
      << prom.Alerts().dump(1);
  for (const char* quiet : {"RepresentationCollapse", "FeatureCollapse", "LowVariance", "JobStalled",
                            "CheckpointStale"}) {
    EXPECT_EQ(prom.AlertState(quiet, job_id), "") << quiet << ": " << prom.Alerts().dump(1);
  }
  EXPECT_TRUE(exporter.Running()) << exporter.Log();
}

TEST(PrometheusIntegration, ForcedCollapseFiresTheCollapseAlertsWithinTheirWindow) {
  REQUIRE_PROMETHEUS();
  const std::string job_id = "itest-collapse";
  SyntheticExporter exporter(job_id, {"--collapse"});
  PrometheusServer prom(exporter.coordinator(), "3s");
  WaitForScrapes(prom, job_id, 2);
  if (HasFatalFailure()) return;
  ExpectWorkerMetricsSane(prom, job_id, {"0", "1"}, /*collapsed=*/true);
  // for: 3s at a 1 s evaluation interval: pending within ~1 s, firing within ~5 s.
  const bool fired = WaitFor(
      [&] {
        return prom.AlertState("RepresentationCollapse", job_id) == "firing" &&
               prom.AlertState("FeatureCollapse", job_id) == "firing";
      },
      20, 0.5);
  EXPECT_TRUE(fired) << prom.Alerts().dump(1);
  // One alert per job (aggregated over ranks), carrying job_id and the severity.
  size_t collapse_alerts = 0;
  for (const auto& a : prom.Alerts()) {
    if (a["labels"].value("alertname", "") != "RepresentationCollapse") continue;
    ++collapse_alerts;
    EXPECT_EQ(a["labels"].value("severity", ""), "critical");
    EXPECT_NE(a["annotations"].value("summary", "").find(job_id), std::string::npos) << a.dump();
  }
  EXPECT_EQ(collapse_alerts, 1u);
  EXPECT_EQ(prom.AlertState("LowVariance", job_id), "") << "collapse is not 'low variance'";
}

}  // namespace
}  // namespace vicreg::metrics::testing
