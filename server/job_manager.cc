#include "server/job_manager.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "common/metrics.h"
#include "server/recovery.h"
#include "server/service_error.h"

namespace vicreg::server {
namespace {

const char* StateLabel(JobState s) {
  switch (s) {
    case JobState::kQueued: return "queued";
    case JobState::kStarting: return "starting";
    case JobState::kRunning: return "running";
    case JobState::kRestarting: return "restarting";
    case JobState::kSucceeded: return "succeeded";
    case JobState::kFailed: return "failed";
    case JobState::kCancelled: return "cancelled";
    default: return "unspecified";
  }
}

AttemptOptions AttemptOptionsOf(const JobManagerOptions& o) {
  AttemptOptions a;
  a.runs_root = o.runs_root;
  a.worker_binary = o.worker_binary;
  a.workdir = o.workdir;
  a.no_progress_timeout_s = o.no_progress_timeout_s;
  a.stop_grace_s = o.stop_grace_s;
  a.restart_backoff_s = o.restart_backoff_s;
  a.progress_event_interval_s = o.progress_event_interval_s;
  a.max_queue_wait_s = o.max_queue_wait_s;
  return a;
}

}  // namespace

JobManager::JobManager(JobManagerOptions options, JobStore& store, Scheduler scheduler, Launcher& launcher,
                       metrics::CoordinatorMetrics* metrics, EvalRunner* evals)
    : options_(std::move(options)),
      store_(store),
      journal_(store),
      scheduler_(std::move(scheduler)),
      view_(scheduler_),
      launcher_(launcher),
      metrics_(metrics),
      evals_(evals),
      attempts_(AttemptOptionsOf(options_), journal_, scheduler_, launcher, metrics, evals) {
  capacity_ = scheduler_.capacity();
}

JobManager::~JobManager() { Stop(); }

std::string JobManager::slot_kind_name() const {
  switch (scheduler_.kind()) {
    case SlotKind::kGpu: return "gpu";
    case SlotKind::kCluster: return "cluster submission";
    default: return "cpu";
  }
}

void JobManager::Start() {
  Recover();
  thread_ = std::thread([this] { Run(); });
}

void JobManager::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return;
    stop_ = true;
    wake_ = true;
  }
  wake_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  cancel_done_cv_.notify_all();
}

void JobManager::Run() {
  while (true) {
    try {
      Tick();
    } catch (const std::exception& e) {
      spdlog::error("coordinator: manager tick failed: {}", e.what());
    }
    std::unique_lock<std::mutex> lock(mu_);
    wake_cv_.wait_for(lock, std::chrono::duration<double>(options_.poll_interval_s), [&] { return wake_ || stop_; });
    wake_ = false;
    if (stop_) return;
  }
}

void JobManager::WaitForEvents(const std::string& job_id, int64_t after_sequence, std::chrono::milliseconds timeout) {
  journal_.WaitForEvents(job_id, after_sequence, timeout);
}

void JobManager::PostMessage(const std::string& job_id, const std::string& message) {
  journal_.Message(job_id, message);
}

// ---- submit / cancel (gRPC threads) -----------------------------------------------------------

JobManager::SubmitResult JobManager::Submit(const SubmitRequest& req) {
  AdmissionOptions ao;
  ao.max_spec_bytes = options_.max_spec_bytes;
  ao.max_ranks_per_job = options_.max_ranks_per_job;
  ao.launch_enabled = options_.launch_enabled;
  JobStore::InsertResult ins;
  try {
    Admitted admitted = Admit(req, ao, scheduler_);
    // Under mu_ so that the manager never sees a job in the store that is missing from the queue.
    std::lock_guard<std::mutex> lock(mu_);
    ins = store_.InsertJob(admitted.job, admitted.first_event);
    if (!ins.duplicate) {
      queue_.push_back(QueuedOf(ins.job));
      wake_ = true;
    }
  } catch (const ServiceError&) {
    if (metrics_) metrics_->OnSubmit("rejected");
    throw;
  }
  if (ins.duplicate) {
    if (metrics_) metrics_->OnSubmit("duplicate");
    return {ins.job, true};
  }
  wake_cv_.notify_all();
  journal_.Inserted(ins.job);
  if (metrics_) metrics_->OnSubmit("accepted");
  return {ins.job, false};
}

JobManager::DryRunResult JobManager::DryRun(const SubmitRequest& req) {
  AdmissionOptions ao;
  ao.max_spec_bytes = options_.max_spec_bytes;
  ao.max_ranks_per_job = options_.max_ranks_per_job;
  ao.launch_enabled = options_.launch_enabled;
  DryRunResult out;
  out.job = Admit(req, ao, scheduler_).job;  // kind() and WhyNeverPlaceable read only the configuration
  if (!options_.launch_enabled) {
    out.reason = "would queue: " + out.job.pending_reason;
    return out;
  }
  // The next scheduling pass as it would run now: the queue (which goes first where it fits) plus
  // this job, last of its priority, on a copy of the slots.
  const std::string self = "(this job)";
  std::lock_guard<std::mutex> lock(mu_);
  Scheduler sim = view_;
  std::vector<QueuedJob> queue;
  int64_t last_seq = 0;
  for (const auto& q : queue_) {
    queue.push_back(q.job);
    last_seq = std::max(last_seq, q.job.seq);
  }
  queue.push_back({self, out.job.ranks, out.job.priority, last_seq + 1});
  Scheduler::Decision d = sim.Schedule(queue);
  for (const auto& [id, slots] : d.placements) {
    if (id != self) continue;
    out.would_start = true;
    out.placement = sim.PlacementString(slots);
    out.reason = "would start now on " + out.placement + " (" + std::to_string(sim.free_count() + static_cast<int>(slots.size())) +
                 " of " + std::to_string(sim.capacity()) + " slots free after the jobs ahead of it)";
  }
  if (!out.would_start) {
    auto it = d.pending.find(self);
    out.reason = "would queue: " + (it != d.pending.end() ? it->second : std::string("waiting for slots"));
  }
  return out;
}

JobRecord JobManager::Cancel(const std::string& job_id, const std::string& reason_in) {
  std::string reason = reason_in.empty() ? "cancelled by a client" : "cancelled: " + reason_in.substr(0, 500);
  std::unique_lock<std::mutex> lock(mu_);
  auto q = std::find_if(queue_.begin(), queue_.end(), [&](const Queued& e) { return e.job.id == job_id; });
  if (q != queue_.end()) {
    queue_.erase(q);
    live_reasons_.erase(job_id);
    auto rec = store_.GetJob(job_id, false);
    if (!rec) throw ServiceError(ErrorCode::kNotFound, "job " + job_id + " not found");
    rec->state = JobState::kCancelled;
    rec->finished_unix = NowUnix();
    rec->pending_reason.clear();
    lock.unlock();
    journal_.Record(*rec, EventKind::kState, reason);
    return *rec;
  }
  if (attempts_.Has(job_id)) {
    cancel_requests_[job_id] = reason;
    wake_ = true;
    wake_cv_.notify_all();
    cancel_done_cv_.wait_for(lock, std::chrono::seconds(30), [&] {
      return stop_ || !attempts_.Has(job_id) ||
             std::find(cancelled_.begin(), cancelled_.end(), job_id) != cancelled_.end();
    });
    cancelled_.erase(std::remove(cancelled_.begin(), cancelled_.end(), job_id), cancelled_.end());
  }
  lock.unlock();
  auto rec = store_.GetJob(job_id, false);
  if (!rec) throw ServiceError(ErrorCode::kNotFound, "job " + job_id + " not found");
  return *rec;
}

std::vector<std::pair<std::string, std::string>> JobManager::ActiveRunDirs() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const std::string& id : attempts_.JobIds()) out.emplace_back(id, options_.runs_root + "/" + id);
  return out;
}

// ---- manager thread ---------------------------------------------------------------------------

void JobManager::Tick() {
  const double now = NowUnix();
  std::map<std::string, std::string> cancels;
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancels.swap(cancel_requests_);
  }
  // One look at the cluster's queue for every attempt and evaluation of this tick (none when idle).
  if (attempts_.Busy() || (evals_ && evals_->HasLaunched())) launcher_.Refresh();
  std::vector<std::string> ended = attempts_.Tick(now, cancels);
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const std::string& id : ended) {
      if (cancels.count(id)) cancelled_.push_back(id);
    }
  }
  if (!cancels.empty()) cancel_done_cv_.notify_all();
  if (options_.launch_enabled) ScheduleQueued();
  {
    std::lock_guard<std::mutex> lock(mu_);
    view_ = scheduler_;  // the slots as this tick left them (DryRun reads it from gRPC threads)
  }
  if (evals_) evals_->Tick();
  UpdateGauges(false);
  ApplyRetention(now);
}

void JobManager::ApplyRetention(double now) {
  if (options_.retention_s <= 0 || now - last_retention_ < options_.retention_interval_s) return;
  last_retention_ = now;
  size_t total = 0;
  std::vector<JobRecord> pruned;
  do {  // in batches: one short transaction each
    pruned = store_.PruneFinishedJobs(now - options_.retention_s, 500);
    for (const JobRecord& rec : pruned) {
      journal_.Forget(rec.id);
      if (evals_) evals_->Forget(rec.id);
      if (metrics_) metrics_->ForgetJob(rec.id);
      // Only a run dir the store made (<runs_root>/<job id>), never anything a path could reach.
      if (options_.retention_delete_run_dirs && rec.run_dir == options_.runs_root + "/" + rec.id) {
        std::error_code ec;
        std::filesystem::remove_all(rec.run_dir, ec);
        if (ec) spdlog::warn("coordinator: retention: cannot remove {}: {}", rec.run_dir, ec.message());
      }
    }
    total += pruned.size();
  } while (pruned.size() == 500);
  if (total > 0) {
    spdlog::info("coordinator: retention: removed {} job(s) that ended more than {:.0f} s ago{}", total,
                 options_.retention_s, options_.retention_delete_run_dirs ? " (and their run dirs)" : "");
  }
}

void JobManager::ScheduleQueued() {
  std::vector<QueuedJob> queue;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.empty()) return;
    for (const auto& q : queue_) queue.push_back(q.job);
  }
  Scheduler::Decision d = scheduler_.Schedule(queue);
  for (const auto& [id, slots] : d.placements) {
    {
      // Still queued? (a Cancel may have taken it out since the snapshot)
      std::lock_guard<std::mutex> lock(mu_);
      auto q = std::find_if(queue_.begin(), queue_.end(), [&, &id = id](const Queued& e) { return e.job.id == id; });
      if (q == queue_.end()) {
        scheduler_.Release(id);
        continue;
      }
      queue_.erase(q);
      live_reasons_.erase(id);
      // From here a Cancel finds the job among the attempts and is handled by the next tick.
      attempts_.Add(id);
    }
    auto rec = store_.GetJob(id, true);
    if (!rec) {
      scheduler_.Release(id);
      attempts_.Drop(id);
      continue;
    }
    rec->placement = scheduler_.PlacementString(slots);
    attempts_.Launch(*rec);
  }
  // Every queued job's reason is kept live in memory (served by PendingReason). Only the job at
  // the head of the line ("waiting for N slots ...") has its reason stored with an event: the
  // reasons of the jobs behind it change with every start and would rewrite the whole queue.
  std::vector<std::pair<std::string, std::string>> to_record;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& q : queue_) {
      auto it = d.pending.find(q.job.id);
      if (it == d.pending.end() || q.pending_reason == it->second) continue;
      q.pending_reason = it->second;
      live_reasons_[q.job.id] = it->second;
      if (it->second.rfind("waiting for", 0) == 0) to_record.emplace_back(q.job.id, it->second);
    }
  }
  for (const auto& [id, reason] : to_record) {
    auto rec = store_.GetJob(id, false);
    if (!rec || rec->state != JobState::kQueued) continue;
    rec->pending_reason = reason;
    journal_.Record(*rec, EventKind::kMessage, "pending: " + reason);
  }
}

std::string JobManager::PendingReason(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_reasons_.find(job_id);
  return it == live_reasons_.end() ? "" : it->second;
}

void JobManager::UpdateGauges(bool force) {
  if (!metrics_) return;
  double now = NowUnix();
  if (!force && now - last_gauges_ < 2.0) return;
  last_gauges_ = now;
  auto counts = store_.CountByState();
  for (JobState s : {JobState::kQueued, JobState::kStarting, JobState::kRunning, JobState::kRestarting,
                     JobState::kSucceeded, JobState::kFailed, JobState::kCancelled}) {
    metrics_->SetJobs(StateLabel(s), static_cast<double>(counts.count(s) ? counts[s] : 0));
  }
  metrics_->SetSlots("free", scheduler_.free_count());
  metrics_->SetSlots("used", scheduler_.capacity() - scheduler_.free_count());
  std::vector<metrics::QueueWait> waits;
  for (const ClusterWait& w : attempts_.ClusterWaits())
    waits.push_back({w.job_id, w.state, w.reason, w.since_unix > 0 ? now - w.since_unix : 0});
  metrics_->SetClusterQueue(waits);
}

void JobManager::Recover() {
  Recovered r = RecoverJobs(journal_, scheduler_, launcher_, attempts_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const JobRecord& rec : r.queue) queue_.push_back(QueuedOf(rec));
  }
  if (evals_) evals_->Recover();
  UpdateGauges(true);
  spdlog::info(
      "coordinator: recovered {} open job(s): {} queued ({} re-queued), {} re-adopted, {} restarting, {} ended while "
      "down; {} cancelled job(s) still stopping",
      r.queue.size() + r.adopted + r.restarting + r.ended, r.queue.size(), r.requeued, r.adopted, r.restarting,
      r.ended, r.stopping);
}

}  // namespace vicreg::server
