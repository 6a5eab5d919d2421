// A real Prometheus (configured from deploy/prometheus, 1 s intervals, `for:` windows shortened
// to a few seconds) scraping a running exporter: every metric exists with sane values, every
// query of the Grafana dashboards returns data, and the alerts fire (or stay quiet) as designed.
//
// The synthetic exporter (vicreg_metrics_exporter) serves 2 ranks + the coordinator's metrics and
// /sd, so the shipped HTTP service discovery is exercised end to end.
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "tests/metrics/dashboard_queries.h"
#include "tests/metrics/prometheus_harness.h"
#include "tests/metrics/test_support.h"

namespace vicreg::metrics::testing {
namespace {

constexpr double kFirstScrapeTimeout = 30;  // SD batches target updates every 5 s: ~7 s in practice

#define REQUIRE_PROMETHEUS()                                                               \
  if (FindOnPath("prometheus").empty()) {                                                  \
    GTEST_SKIP() << "prometheus not found on PATH: install Debian's `prometheus` package " \
                    "(deploy/install-deps.sh) to run the integration tests";               \
  }

class SyntheticExporter {
 public:
  // Two synthetic ranks + coordinator metrics + /sd, unless extra_args say otherwise.
  SyntheticExporter(const std::string& job_id, std::vector<std::string> extra_args, const char* ranks = "2") {
    dir_ = MakeTempDir("vicreg-exporter-");
    std::vector<std::string> argv = {
        VICREG_METRICS_EXPORTER, "--job-id",           job_id,      "--ranks", ranks,         "--coordinator",
        "--ports-file",          dir_ + "/ports.json", "--step-ms", "50",      "--log-every", "5"};
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
  const std::string samples = "count_over_time(vicreg_train_steps_total{job_id=\"" + job_id + "\"}[1m]) >= 4";
  ASSERT_TRUE(WaitFor([&] { return prom.Query(samples).size() == ranks; }, 20, 0.5))
      << prom.Query("count_over_time(vicreg_train_steps_total[1m])").dump();
}

TEST(MetricsPrometheusIntegration, SyntheticRanksAreDiscoveredScrapedAndEveryDashboardQueryHasData) {
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
  for (const char* quiet :
       {"RepresentationCollapse", "FeatureCollapse", "LowVariance", "JobStalled", "CheckpointStale"}) {
    EXPECT_EQ(prom.AlertState(quiet, job_id), "") << quiet << ": " << prom.Alerts().dump(1);
  }
  EXPECT_TRUE(exporter.Running()) << exporter.Log();
}

TEST(MetricsPrometheusIntegration, ForcedCollapseFiresTheCollapseAlertsWithinTheirWindow) {
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

// ---- A real 2-rank vicreg_worker -----------------------------------------------------------
//
// The coordinator's part (its /metrics and the /sd listing the ranks from the run dir's
// endpoints/rank-<r>.json) is played by the exporter with --ranks 0 --sd-run-dir, so that the
// dashboards' coordinator panels (restarts, evaluation) have data too.

const std::string kTinyConfig = std::string(VICREG_SOURCE_DIR) + "/configs/tiny_cpu.yaml";

#define REQUIRE_WORKER()                                                                                 \
  REQUIRE_PROMETHEUS();                                                                                  \
  if (std::string(VICREG_WORKER_BIN).empty()) GTEST_SKIP() << "vicreg_worker is not part of this build"; \
  if (FindOnPath("mpirun").empty()) GTEST_SKIP() << "mpirun not found (openmpi-bin)";                    \
  if (ReadText("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").empty() &&                \
      ReadText("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte").empty()) {                   \
    GTEST_SKIP() << "Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)";               \
  }

class WorkerRun {
 public:
  // mpirun -np 2 vicreg_worker on configs/tiny_cpu.yaml for (far) more epochs than the test
  // watches; the destructor stops it (SIGTERM: finish the step, checkpoint, exit).
  WorkerRun(const std::string& run_dir, const std::string& job_id, const std::vector<std::string>& sets) {
    std::vector<std::string> argv = {"mpirun",
                                     "--allow-run-as-root",
                                     "--oversubscribe",
                                     "-np",
                                     "2",
                                     VICREG_WORKER_BIN,
                                     "--job",
                                     kTinyConfig,
                                     "--run-dir",
                                     run_dir,
                                     "--job-id",
                                     job_id,
                                     "--set",
                                     "resources.ranks=2",
                                     "--set",
                                     "train.num_epochs=500",
                                     "--set",
                                     "checkpoint.every_epochs=1"};
    for (const auto& s : sets) {
      argv.push_back("--set");
      argv.push_back(s);
    }
    log_ = run_dir + ".mpirun.log";
    process_ = std::make_unique<Process>(argv, log_);
  }
  ~WorkerRun() { process_->Stop(SIGTERM, 20); }
  bool Running() { return process_->Running(); }
  std::string Log() const { return process_->Log(); }

 private:
  std::string log_;
  std::unique_ptr<Process> process_;
};

TEST(MetricsPrometheusIntegration, RealTwoRankWorkerIsScrapedOnEveryRankAndEveryDashboardQueryHasData) {
  REQUIRE_WORKER();
  const std::string job_id = "itest-worker";
  const std::string root = MakeTempDir("vicreg-metrics-worker-");
  const std::string run_dir = root + "/run";
  {
    SyntheticExporter coordinator(job_id, {"--sd-run-dir", run_dir}, "0");
    PrometheusServer prom(coordinator.coordinator(), "2s");
    // eval.online_linear: the online-probe gauges (vicreg_online_top1_ratio) are exported too.
    WorkerRun worker(run_dir, job_id, {"eval.online_linear=true"});
    WaitForScrapes(prom, job_id, 2);
    if (HasFatalFailure()) {
      ADD_FAILURE() << "worker log:\n" << worker.Log();
      return;
    }
    ASSERT_TRUE(worker.Running()) << worker.Log();
    ExpectWorkerMetricsSane(prom, job_id, {"0", "1"}, /*collapsed=*/false);
    ExpectEveryDashboardQueryReturnsData(prom, job_id, {"0", "1"});
    EXPECT_EQ(prom.Query("vicreg_online_top1_ratio{job_id=\"" + job_id + "\",probe=\"linear\"} >= 0 <= 1").size(), 2u);
    // Both ranks step at the same rate (synchronous data parallelism).
    const double r0 = prom.Scalar("rate(vicreg_train_steps_total{job_id=\"" + job_id + "\",rank=\"0\"}[10s])");
    const double r1 = prom.Scalar("rate(vicreg_train_steps_total{job_id=\"" + job_id + "\",rank=\"1\"}[10s])");
    EXPECT_GT(r0, 0);
    EXPECT_NEAR(r0, r1, 0.25 * r0 + 0.5);
    EXPECT_TRUE(worker.Running()) << "the worker finished before the checks: " << worker.Log();
  }
  RemoveTree(root);
}

TEST(MetricsPrometheusIntegration, RealWorkerForcedCollapseFiresTheCollapseAlerts) {
  REQUIRE_WORKER();
  const std::string job_id = "itest-worker-collapse";
  const std::string root = MakeTempDir("vicreg-metrics-collapse-");
  const std::string run_dir = root + "/run";
  {
    SyntheticExporter coordinator(job_id, {"--sd-run-dir", run_dir}, "0");
    PrometheusServer prom(coordinator.coordinator(), "3s");
    // Invariance only: nothing keeps the embeddings apart, they collapse within a few hundred steps.
    WorkerRun worker(run_dir, job_id, {"train.vicreg.mu_variance=0", "train.vicreg.nu_covariance=0"});
    WaitForScrapes(prom, job_id, 2);
    if (HasFatalFailure()) {
      ADD_FAILURE() << "worker log:\n" << worker.Log();
      return;
    }
    // Invariance-only training collapses dimension by dimension (std_min -> 0); whether the
    // pairwise similarity also passes 0.9 (FeatureCollapse) varies with the run, so it is logged.
    const auto t0 = std::chrono::steady_clock::now();
    const bool fired = WaitFor([&] { return prom.AlertState("RepresentationCollapse", job_id) == "firing"; }, 60, 1);
    std::printf("RepresentationCollapse firing after %.1f s of test; FeatureCollapse state '%s'\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
                prom.AlertState("FeatureCollapse", job_id).c_str());
    EXPECT_TRUE(fired) << "std_min " << prom.Query("vicreg_embedding_std_min").dump() << "\npairwise "
                       << prom.Query("vicreg_embedding_pairwise_similarity").dump() << "\ncollapsed "
                       << prom.Query("vicreg_embedding_collapsed_dims_ratio").dump() << "\nalerts "
                       << prom.Alerts().dump(1) << "\nworker running: " << worker.Running();
    EXPECT_LT(prom.Scalar("min(vicreg_embedding_std_min{job_id=\"" + job_id + "\"})"), 0.01);
    EXPECT_TRUE(worker.Running()) << worker.Log();
  }
  RemoveTree(root);
}

}  // namespace
}  // namespace vicreg::metrics::testing
