// Thin layer over prometheus-cpp (every metric, its labels and its meaning are documented in
// docs/METRICS.md). Families are built once in the constructors; the step loop only calls
// Set/Increment/Observe through the methods below. Labels: job_id, rank, component (and the
// coordinator's low-cardinality enums). Never step or epoch as a label. Base units (seconds,
// ratios in [0, 1]); counters end in _total.
//
//   vicreg::metrics::MetricsServer server("127.0.0.1", 0);          // port 0 = a free port
//   vicreg::metrics::WorkerMetrics m(server.registry(), job_id, rank);
//   m.OnStep(step_seconds, global_samples, data_wait_seconds);    // every step
//   m.OnReport(report);                                           // every log_every steps
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/step_report.h"

namespace prometheus {
class Registry;
}
namespace vicreg::http {
class Server;
}

namespace vicreg::metrics {

struct MetricsServerOptions {
  std::string address = "127.0.0.1";  // IPv4 or IPv6 literal ("0.0.0.0", "::1", "::"), or "localhost"
  int port = 0;                       // 0 = pick a free port (see MetricsServer::port()); else 1..65535
  int threads = 2;                    // HTTP serving threads started up front (1..64)
  int max_threads = 32;               // more are added while all are busy, up to this many
  double request_timeout_s = 10;      // per connection: read the request, answer, close (common/http_server.h)
  // Non-empty: /metrics and every AddHandler path answer 401 unless the request carries
  // `Authorization: Bearer <bearer_token>` (what Prometheus sends with `authorization:
  // {credentials_file: ...}`). Routes added through http() are not affected.
  std::string bearer_token{};
};

// An HTTP endpoint serving GET /metrics (the registry in Prometheus text format) and, optionally,
// extra GET handlers on the same port (the coordinator's Prometheus HTTP service discovery, /sd,
// and its web UI through http()). Runs on http::Server (common/http_server.h), not
// prometheus::Exposer: see metrics_server.cc for why. Connections are served concurrently, each
// within request_timeout_s.
// Throws UserError for an invalid address/port/threads (naming the value and what is valid),
// RuntimeFailure when the socket cannot be bound (port in use, address not local).
class MetricsServer {
 public:
  MetricsServer(const std::string& address, int port);
  explicit MetricsServer(const MetricsServerOptions& options);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  int port() const;              // the bound port (the chosen one when asked for 0)
  std::string endpoint() const;  // "127.0.0.1:9464", "[::1]:9464"
  std::string url() const;       // "http://127.0.0.1:9464/metrics"
  std::shared_ptr<prometheus::Registry> registry() const;
  // The underlying server, to mount more routes on the same port (the coordinator's web UI).
  http::Server& http();

  // Serves GET `path` (exact match, e.g. "/sd") with the body `handler` returns, with the given
  // Content-Type. The handler runs on an HTTP thread (make it thread-safe); if it throws, the
  // client gets 500 with the message. Registering "/metrics" or a path twice is an error.
  using Handler = std::function<std::string()>;
  void AddHandler(const std::string& path, const std::string& content_type, Handler handler);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Registers vicreg_build_info{version,revision} = 1 (idempotent per registry).
void RegisterBuildInfo(prometheus::Registry& registry);

// Worker-side metrics for one rank (labels job_id, rank). Also registers vicreg_build_info.
// Not thread-safe by design (one trainer loop per rank); the scrape side is.
class WorkerMetrics {
 public:
  static constexpr double kNotMeasured = -1.0;

  WorkerMetrics(std::shared_ptr<prometheus::Registry> registry, const std::string& job_id, int rank);
  ~WorkerMetrics();
  WorkerMetrics(const WorkerMetrics&) = delete;
  WorkerMetrics& operator=(const WorkerMetrics&) = delete;

  // Every step on every rank: step duration histogram, steps/samples counters, last-step
  // timestamp, and (when measured, >= 0) the time this step waited for the data loader.
  void OnStep(double step_seconds, int64_t global_samples, double data_wait_seconds = kNotMeasured);
  // Every log_every steps: gauges from the (global, all-reduced) report. Only finite values are
  // set (a skipped non-finite step keeps the last good values; count it with OnNonFiniteLoss).
  // Optional diagnostics absent from the report leave their gauges unchanged. If OnStep never got
  // a data wait, the report's data_wait_seconds is observed into the data-wait histogram here.
  void OnReport(const StepReport& report);
  void OnNonFiniteLoss();
  // Time the newest complete checkpoint was written. Until the first call the gauge holds the
  // worker's start time, so "checkpoint age" means "time without a durable checkpoint".
  void OnCheckpoint(double unix_time_s);
  void SetEpoch(int64_t epoch);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Coordinator-side metrics (docs/METRICS.md), used by server/. Thread-safe (gRPC threads).
// Dynamic label values are added on first use and cached; the documented enum values are
// pre-created at 0 so that rate()/increase() see the first event.
// A job whose current attempt waits in the cluster's queue (Slurm PENDING).
struct QueueWait {
  std::string job_id;
  std::string state;   // PENDING
  std::string reason;  // Resources, Priority, ...
  double seconds = 0;  // waited so far
};

class CoordinatorMetrics {
 public:
  explicit CoordinatorMetrics(std::shared_ptr<prometheus::Registry> registry);
  ~CoordinatorMetrics();
  CoordinatorMetrics(const CoordinatorMetrics&) = delete;
  CoordinatorMetrics& operator=(const CoordinatorMetrics&) = delete;

  // state: queued | starting | running | restarting | succeeded | failed | cancelled
  void SetJobs(const std::string& state, double count);
  void OnSubmit(const std::string& result);           // accepted | rejected | duplicate
  void OnRestart(const std::string& reason);          // rank_exit | no_progress | coordinator_restart | ...
  void SetSlots(const std::string& state, double n);  // free | used
  // The jobs waiting in the cluster's queue now: vicreg_cluster_queued_jobs{reason} and
  // vicreg_job_cluster_queue_wait_seconds{job_id,state,reason} (a job's series goes when it runs).
  void SetClusterQueue(const std::vector<QueueWait>& waits);
  void SetEvalTop1(const std::string& job_id, const std::string& dataset, const std::string& probe, double top1_ratio,
                   double unix_time_s);
  void OnEvalFailure(const std::string& job_id);
  // method: the short RPC name ("SubmitJob"); code: the grpc status name ("OK", "INVALID_ARGUMENT").
  void OnRpc(const std::string& method, const std::string& code, double seconds);
  // Drops the per-job series (eval gauges, eval failures) of a job that is gone, so the
  // coordinator's /metrics does not grow with the job history.
  void ForgetJob(const std::string& job_id);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Bucket boundaries (seconds), exported for the docs and tests.
const std::vector<double>& StepDurationBuckets();  // 1 ms .. 60 s
const std::vector<double>& DataWaitBuckets();      // 100 us .. 10 s
const std::vector<double>& RpcDurationBuckets();   // 0.5 ms .. 60 s

}  // namespace vicreg::metrics
