// Thin layer over prometheus-cpp (DESIGN.md section 7). Families are built once in the
// constructors; the step loop only calls Set/Increment/Observe through the methods below.
// Labels: job_id, rank, component. Never step or epoch as a label.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/step_report.h"

namespace prometheus {
class Registry;
}

namespace vicreg::metrics {

// An HTTP /metrics endpoint. port 0 = pick a free port (see port()).
class MetricsServer {
 public:
  MetricsServer(const std::string& address, int port);
  ~MetricsServer();
  int port() const;
  std::string endpoint() const;                  // "127.0.0.1:9464"
  std::shared_ptr<prometheus::Registry> registry() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Worker-side metrics for one rank. Also registers vicreg_build_info.
class WorkerMetrics {
 public:
  WorkerMetrics(std::shared_ptr<prometheus::Registry> registry, const std::string& job_id, int rank);
  ~WorkerMetrics();
  // Every step on every rank: step duration histogram, steps/samples counters, last-step timestamp.
  void OnStep(double step_seconds, int64_t global_samples);
  // Every log_every steps: gauges from the (global, all-reduced) report.
  void OnReport(const StepReport& report);
  void OnNonFiniteLoss();
  void OnCheckpoint(double unix_time_s);
  void SetEpoch(int64_t epoch);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vicreg::metrics
