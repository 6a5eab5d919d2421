// vicreg_metrics_exporter: drives WorkerMetrics and CoordinatorMetrics with synthetic step
// reports, so that the Prometheus config, alert rules and dashboards can be checked against a
// real Prometheus without a training run (tests/metrics/prometheus_integration_test.cc), and
// demonstrated by hand:
//
//   vicreg_metrics_exporter --ranks 2 --coordinator --ports-file /tmp/ports.json
//   # then point deploy/prometheus/prometheus.yml at the coordinator port printed there.
//
// The coordinator endpoint also serves GET /sd (Prometheus HTTP service discovery) listing the
// synthetic ranks and, with --sd-run-dir, the ranks of a real run (<run_dir>/endpoints/rank-*.json).
// Runs until SIGINT/SIGTERM. Exit codes: 0 ok, 2 bad usage, 1 runtime failure.
#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include "common/errors.h"
#include "common/fs.h"
#include "common/metrics.h"

namespace {

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop.store(true); }

double Now() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

struct Options {
  std::string job_id = "synthetic";
  std::string address = "127.0.0.1";
  int ranks = 2;
  bool coordinator = false;
  std::string sd_run_dir;
  bool collapse = false;
  int step_ms = 50;
  int log_every = 5;
  int nonfinite_at_step = 0;
  std::string ports_file;
};

// The /sd answer: the synthetic ranks, plus the ranks a real run advertises in its endpoints/.
std::string ServiceDiscovery(const Options& o, const std::vector<std::string>& rank_endpoints) {
  nlohmann::json groups = nlohmann::json::array();
  for (size_t r = 0; r < rank_endpoints.size(); ++r) {
    groups.push_back(
        {{"targets", {rank_endpoints[r]}}, {"labels", {{"job_id", o.job_id}, {"rank", std::to_string(r)}}}});
  }
  if (!o.sd_run_dir.empty()) {
    const std::filesystem::path dir = std::filesystem::path(o.sd_run_dir) / "endpoints";
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      if (entry.path().extension() != ".json") continue;
      std::ifstream f(entry.path());
      nlohmann::json j = nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded() || !j.contains("metrics") || !j.contains("rank")) continue;  // being written
      const std::string target = j["metrics"].get<std::string>();
      if (target.empty()) continue;
      const std::string rank =
          j["rank"].is_number() ? std::to_string(j["rank"].get<int>()) : j["rank"].get<std::string>();
      const std::string job = j.contains("job_id") ? j["job_id"].get<std::string>() : o.job_id;
      groups.push_back({{"targets", {target}}, {"labels", {{"job_id", job}, {"rank", rank}}}});
    }
  }
  return groups.dump();
}

vicreg::StepReport SyntheticReport(const Options& o, int64_t step, std::mt19937& rng) {
  std::uniform_real_distribution<double> noise(-0.02, 0.02);
  vicreg::StepReport r;
  r.step = step;
  r.epoch = 1 + step / 100;
  const double progress = 1.0 - std::exp(-static_cast<double>(step) / 200.0);
  r.invariance = 0.6 - 0.4 * progress + noise(rng);
  r.variance = 0.3 - 0.2 * progress + noise(rng) / 4;
  r.covariance = 0.08 - 0.05 * progress + noise(rng) / 10;
  r.loss = 25 * r.invariance + 25 * r.variance + r.covariance;
  if (o.collapse) {
    r.std_min = 0.0;
    r.std_mean = 0.001;
    r.std_max = 0.004;
    r.pairwise_sim = 0.99;
    r.collapsed_dims = 1.0;
    r.rankme = 1.2;
  } else {
    r.std_min = 0.35 + noise(rng);
    r.std_mean = 0.8 + noise(rng);
    r.std_max = 1.3 + noise(rng);
    r.pairwise_sim = 0.25 + noise(rng);
    r.collapsed_dims = 0.0;
    r.rankme = 60 + 20 * progress;
  }
  r.cov_offdiag_sq = 0.002 + noise(rng) / 100;
  r.lr = 1e-3 * std::min(1.0, static_cast<double>(step) / 50.0);
  r.grad_norm = 1.5 + noise(rng) * 10;
  r.images_per_s = 1000.0 * 64 / o.step_ms + noise(rng) * 100;
  r.step_seconds = o.step_ms / 1000.0;
  r.data_wait_seconds = 0.002 + noise(rng) / 20;
  r.samples = 64;
  r.online_linear_top1 = 0.30 + 0.2 * progress;
  r.online_knn_top1 = 0.28 + 0.2 * progress;
  return r;
}

int Run(const Options& o) {
  using vicreg::metrics::CoordinatorMetrics;
  using vicreg::metrics::MetricsServer;
  using vicreg::metrics::WorkerMetrics;
  std::vector<std::unique_ptr<MetricsServer>> rank_servers;
  std::vector<std::unique_ptr<WorkerMetrics>> workers;
  std::vector<std::string> rank_endpoints;
  for (int r = 0; r < o.ranks; ++r) {
    rank_servers.push_back(std::make_unique<MetricsServer>(o.address, 0));
    workers.push_back(std::make_unique<WorkerMetrics>(rank_servers.back()->registry(), o.job_id, r));
    rank_endpoints.push_back(rank_servers.back()->endpoint());
  }
  std::unique_ptr<MetricsServer> coord_server;
  std::unique_ptr<CoordinatorMetrics> coord;
  if (o.coordinator) {
    coord_server = std::make_unique<MetricsServer>(o.address, 0);
    coord = std::make_unique<CoordinatorMetrics>(coord_server->registry());
    coord_server->AddHandler("/sd", "application/json",
                             [o, rank_endpoints] { return ServiceDiscovery(o, rank_endpoints); });
    coord->SetJobs("running", 1);
    coord->SetJobs("queued", 2);
    coord->SetJobs("succeeded", 3);
    coord->SetSlots("used", o.ranks);
    coord->SetSlots("free", 4 - std::min(4, o.ranks));
    coord->OnSubmit("accepted");
    coord->OnRestart("rank_exit");
    coord->SetEvalTop1(o.job_id, "fashion_mnist", "linear", 0.71, Now());
    coord->SetEvalTop1(o.job_id, "fashion_mnist", "knn", 0.68, Now());
    coord->OnEvalFailure(o.job_id);
  }

  nlohmann::json ports = {{"ranks", nlohmann::json::array()}};
  for (const auto& s : rank_servers) ports["ranks"].push_back(s->port());
  if (coord_server) ports["coordinator"] = coord_server->port();
  if (!o.ports_file.empty()) vicreg::fs::AtomicWriteFile(o.ports_file, ports.dump());
  std::cout << ports.dump() << std::endl;

  std::mt19937 rng(7);
  int64_t step = 0;
  double last_checkpoint = 0, last_eval = Now();
  while (!g_stop.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(o.step_ms));
    ++step;
    const vicreg::StepReport report = SyntheticReport(o, step, rng);
    for (auto& w : workers) {
      w->OnStep(report.step_seconds * (1.0 + 0.1 * (&w - &workers[0])), report.samples, report.data_wait_seconds);
      w->SetEpoch(report.epoch);
      if (step == o.nonfinite_at_step) {
        w->OnNonFiniteLoss();
      } else if (step % o.log_every == 0) {
        w->OnReport(report);
      }
    }
    const double now = Now();
    if (now - last_checkpoint > 10) {
      for (auto& w : workers) w->OnCheckpoint(now);
      last_checkpoint = now;
    }
    if (coord) {
      coord->OnRpc("GetJob", "OK", 0.0005 + 0.001 * (step % 3));
      if (step % 20 == 0) coord->OnRpc("SubmitJob", "INVALID_ARGUMENT", 0.002);
      if (now - last_eval > 10) {
        coord->SetEvalTop1(o.job_id, "fashion_mnist", "linear", 0.71 + 0.001 * (step % 10), now);
        last_eval = now;
      }
    }
  }
  return vicreg::kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Synthetic vicreg metrics exporter (tests and demos of the Prometheus/Grafana setup)"};
  Options o;
  app.add_option("--job-id", o.job_id, "job_id label of the synthetic ranks");
  app.add_option("--address", o.address, "address every endpoint binds");
  app.add_option("--ranks", o.ranks, "number of synthetic ranks, each with its own /metrics port")
      ->check(CLI::Range(0, 64));
  app.add_flag("--coordinator", o.coordinator, "also serve coordinator metrics and GET /sd");
  app.add_option("--sd-run-dir", o.sd_run_dir, "also list the ranks of this run dir (endpoints/rank-*.json) in /sd");
  app.add_flag("--collapse", o.collapse, "report a collapsed representation (std 0, pairwise similarity 0.99)");
  app.add_option("--step-ms", o.step_ms, "milliseconds per synthetic step")->check(CLI::Range(1, 60000));
  app.add_option("--log-every", o.log_every, "steps between reports")->check(CLI::Range(1, 1000000));
  app.add_option("--nonfinite-at-step", o.nonfinite_at_step, "report a non-finite loss at this step (0 = never)");
  app.add_option("--ports-file", o.ports_file, "write {\"ranks\":[...],\"coordinator\":P} here when serving");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? vicreg::kExitOk : vicreg::kExitUsage;
  }
  if (!o.coordinator && !o.sd_run_dir.empty()) {
    std::cerr << "--sd-run-dir needs --coordinator (the /sd endpoint is served by the coordinator)\n";
    return vicreg::kExitUsage;
  }
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  try {
    return Run(o);
  } catch (const vicreg::UserError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return vicreg::kExitUsage;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return vicreg::kExitFailure;
  }
}
