// CoordinatorMetrics: job/slot/eval/gRPC metrics of vicreg_coordinator (docs/METRICS.md
// "Coordinator metrics"). Families are built in the constructor; children for dynamic label values
// are created on first use and cached in maps guarded by one mutex (gRPC threads call in).
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>

#include <cmath>
#include <map>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>

#include "common/errors.h"
#include "common/metrics.h"

namespace vicreg::metrics {
namespace {

using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;
using prometheus::Histogram;

// An empty label value is the same as an absent label in Prometheus: make it visible instead.
const std::string& NonEmpty(const std::string& v) {
  static const std::string kUnknown = "unknown";
  return v.empty() ? kUnknown : v;
}

// Children of one family keyed by the value of its single label.
template <typename T>
class ByLabel {
 public:
  ByLabel(Family<T>& family, std::string label) : family_(&family), label_(std::move(label)) {}
  template <typename... Args>
  T& Get(const std::string& value, Args&&... args) {
    auto it = cache_.find(value);
    if (it != cache_.end()) return *it->second;
    T& child = family_->Add({{label_, NonEmpty(value)}}, std::forward<Args>(args)...);
    cache_.emplace(value, &child);
    return child;
  }
  // Removes the child (its series disappears from /metrics).
  void Erase(const std::string& value) {
    auto it = cache_.find(value);
    if (it == cache_.end()) return;
    family_->Remove(it->second);
    cache_.erase(it);
  }

 private:
  Family<T>* family_;
  std::string label_;
  std::unordered_map<std::string, T*> cache_;
};

}  // namespace

struct CoordinatorMetrics::Impl {
  std::shared_ptr<prometheus::Registry> registry;
  std::mutex mu;
  std::optional<ByLabel<Gauge>> jobs, slots;
  std::optional<ByLabel<Counter>> submitted, restarts, eval_failures;
  std::optional<ByLabel<Gauge>> eval_last_time;
  std::optional<ByLabel<Histogram>> rpc_duration;
  Family<Gauge>* eval_top1 = nullptr;
  std::optional<ByLabel<Gauge>> cluster_queued;  // by reason
  Family<Gauge>* queue_wait = nullptr;
  std::map<std::string, std::pair<std::string, Gauge*>> queue_wait_by_job;  // job id -> (state|reason, gauge)
  std::map<std::string, double> cluster_queued_counts;                      // reason -> jobs
  Family<Counter>* rpc_requests = nullptr;
  // job_id -> (dataset, probe) -> gauge
  std::map<std::string, std::map<std::pair<std::string, std::string>, Gauge*>> eval_top1_by_job;
  std::unordered_map<std::string, Counter*> rpc_requests_by_key;  // method + '\n' + code
};

CoordinatorMetrics::CoordinatorMetrics(std::shared_ptr<prometheus::Registry> registry)
    : impl_(std::make_unique<Impl>()) {
  VICREG_CHECK(registry != nullptr, "CoordinatorMetrics needs a registry");
  auto& r = *registry;
  Impl& m = *impl_;
  m.registry = std::move(registry);
  RegisterBuildInfo(r);

  m.jobs.emplace(
      prometheus::BuildGauge().Name("vicreg_jobs").Help("Jobs known to the coordinator, by state").Register(r),
      "state");
  m.submitted.emplace(prometheus::BuildCounter()
                          .Name("vicreg_jobs_submitted_total")
                          .Help("SubmitJob outcomes: accepted, rejected (invalid or unplaceable), duplicate "
                                "(idempotent retry)")
                          .Register(r),
                      "result");
  m.restarts.emplace(prometheus::BuildCounter()
                         .Name("vicreg_job_restarts_total")
                         .Help("Job attempts restarted from their latest checkpoint, by cause")
                         .Register(r),
                     "reason");
  m.slots.emplace(
      prometheus::BuildGauge().Name("vicreg_slots").Help("Scheduler slots (GPUs or CPU slots), by state").Register(r),
      "state");
  m.eval_top1 = &prometheus::BuildGauge()
                     .Name("vicreg_eval_top1_ratio")
                     .Help("Top-1 accuracy (0-1) of the latest evaluation of a job's checkpoint, per dataset and probe")
                     .Register(r);
  m.eval_last_time.emplace(prometheus::BuildGauge()
                               .Name("vicreg_eval_last_timestamp_seconds")
                               .Help("Unix time of the latest successful evaluation of a job")
                               .Register(r),
                           "job_id");
  m.eval_failures.emplace(prometheus::BuildCounter()
                              .Name("vicreg_eval_failures_total")
                              .Help("Evaluation runs of a job that failed (each attempt counts)")
                              .Register(r),
                          "job_id");
  m.rpc_requests = &prometheus::BuildCounter()
                        .Name("vicreg_grpc_requests_total")
                        .Help("gRPC requests handled, by method and status code")
                        .Register(r);
  m.rpc_duration.emplace(prometheus::BuildHistogram()
                             .Name("vicreg_grpc_request_duration_seconds")
                             .Help("gRPC request handling time by method (server streams: until the stream ends)")
                             .Register(r),
                         "method");

  m.cluster_queued.emplace(prometheus::BuildGauge()
                               .Name("vicreg_cluster_queued_jobs")
                               .Help("Jobs whose current attempt waits in the cluster's queue (Slurm PENDING), by "
                                     "the cluster's reason")
                               .Register(r),
                           "reason");
  m.queue_wait = &prometheus::BuildGauge()
                      .Name("vicreg_job_cluster_queue_wait_seconds")
                      .Help(
                          "How long a job's current attempt has waited in the cluster's queue, with the cluster's "
                          "state and reason (present only while it waits)")
                      .Register(r);

  // Documented enum values start at 0 so that the first event is visible to rate()/increase().
  for (const char* s : {"queued", "starting", "running", "restarting", "succeeded", "failed", "cancelled"}) {
    m.jobs->Get(s);
  }
  for (const char* s : {"accepted", "rejected", "duplicate"}) m.submitted->Get(s);
  for (const char* s : {"rank_exit", "no_progress", "coordinator_restart"}) m.restarts->Get(s);
  for (const char* s : {"free", "used"}) m.slots->Get(s);
}

CoordinatorMetrics::~CoordinatorMetrics() = default;

void CoordinatorMetrics::SetJobs(const std::string& state, double count) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->jobs->Get(state).Set(count);
}

void CoordinatorMetrics::OnSubmit(const std::string& result) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->submitted->Get(result).Increment();
}

void CoordinatorMetrics::OnRestart(const std::string& reason) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->restarts->Get(reason).Increment();
}

void CoordinatorMetrics::SetSlots(const std::string& state, double n) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->slots->Get(state).Set(n);
}

void CoordinatorMetrics::SetClusterQueue(const std::vector<QueueWait>& waits) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  std::map<std::string, double> by_reason;
  std::map<std::string, const QueueWait*> now;
  for (const auto& w : waits) {
    by_reason[NonEmpty(w.reason)] += 1;
    now[w.job_id] = &w;
  }
  // Reasons seen before and gone now read 0 (kept: a series that vanishes looks like missing data).
  for (auto& [reason, count] : m.cluster_queued_counts) count = 0;
  for (const auto& [reason, count] : by_reason) m.cluster_queued_counts[reason] = count;
  for (const auto& [reason, count] : m.cluster_queued_counts) m.cluster_queued->Get(reason).Set(count);
  for (auto it = m.queue_wait_by_job.begin(); it != m.queue_wait_by_job.end();) {
    auto w = now.find(it->first);
    if (w == now.end() || it->second.first != w->second->state + "|" + w->second->reason) {
      m.queue_wait->Remove(it->second.second);
      it = m.queue_wait_by_job.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& [job_id, w] : now) {
    auto it = m.queue_wait_by_job.find(job_id);
    if (it == m.queue_wait_by_job.end()) {
      Gauge& g = m.queue_wait->Add(
          {{"job_id", NonEmpty(job_id)}, {"state", NonEmpty(w->state)}, {"reason", NonEmpty(w->reason)}});
      it = m.queue_wait_by_job.emplace(job_id, std::make_pair(w->state + "|" + w->reason, &g)).first;
    }
    it->second.second->Set(w->seconds);
  }
}

void CoordinatorMetrics::SetEvalTop1(const std::string& job_id, const std::string& dataset, const std::string& probe,
                                     double top1_ratio, double unix_time_s) {
  if (!std::isfinite(top1_ratio) || top1_ratio < 0 || top1_ratio > 1) {
    spdlog::warn("metrics: ignoring eval top-1 {} for job {} ({}, {}): expected a ratio in [0, 1]", top1_ratio, job_id,
                 dataset, probe);
    return;
  }
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  auto& per_job = m.eval_top1_by_job[job_id];
  auto key = std::make_pair(dataset, probe);
  auto it = per_job.find(key);
  if (it == per_job.end()) {
    Gauge& g =
        m.eval_top1->Add({{"job_id", NonEmpty(job_id)}, {"dataset", NonEmpty(dataset)}, {"probe", NonEmpty(probe)}});
    it = per_job.emplace(key, &g).first;
  }
  it->second->Set(top1_ratio);
  if (std::isfinite(unix_time_s) && unix_time_s > 0) m.eval_last_time->Get(job_id).Set(unix_time_s);
}

void CoordinatorMetrics::OnEvalFailure(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->eval_failures->Get(job_id).Increment();
}

void CoordinatorMetrics::OnRpc(const std::string& method, const std::string& code, double seconds) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  std::string key;
  key.reserve(method.size() + code.size() + 1);
  key.append(method).push_back('\n');
  key.append(code);
  auto it = m.rpc_requests_by_key.find(key);
  if (it == m.rpc_requests_by_key.end()) {
    Counter& c = m.rpc_requests->Add({{"method", NonEmpty(method)}, {"code", NonEmpty(code)}});
    it = m.rpc_requests_by_key.emplace(std::move(key), &c).first;
  }
  it->second->Increment();
  if (std::isfinite(seconds) && seconds >= 0) m.rpc_duration->Get(method, RpcDurationBuckets()).Observe(seconds);
}

void CoordinatorMetrics::ForgetJob(const std::string& job_id) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  auto it = m.eval_top1_by_job.find(job_id);
  if (it != m.eval_top1_by_job.end()) {
    for (auto& [key, gauge] : it->second) m.eval_top1->Remove(gauge);
    m.eval_top1_by_job.erase(it);
  }
  m.eval_last_time->Erase(job_id);
  m.eval_failures->Erase(job_id);
}

}  // namespace vicreg::metrics
