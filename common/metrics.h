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

// Coordinator-side metrics (DESIGN.md section 7), used by server/.
class CoordinatorMetrics {
 public:
  explicit CoordinatorMetrics(std::shared_ptr<prometheus::Registry> registry);
  ~CoordinatorMetrics();
  // state: queued | starting | running | restarting | succeeded | failed | cancelled
  void SetJobs(const std::string& state, double count);
  void OnSubmit(const std::string& result);           // accepted | rejected | duplicate
  void OnRestart(const std::string& reason);          // rank_exit | no_progress | coordinator_restart | ...
  void SetSlots(const std::string& state, double n);  // free | used
  void SetEvalTop1(const std::string& job_id, const std::string& dataset, const std::string& probe,
                   double top1_ratio, double unix_time_s);
  void OnEvalFailure(const std::string& job_id);
  void OnRpc(const std::string& method, const std::string& code, double seconds);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vicreg::metrics
