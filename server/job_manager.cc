#include "server/job_manager.h"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "common/config_loader.h"
#include "common/errors.h"
#include "common/fs.h"
#include "common/metrics.h"
#include "server/service_error.h"

namespace vicreg::server {

// A job holding slots (STARTING, RUNNING, RESTARTING). Manager thread only.
struct JobManager::ActiveJob {
  enum class Phase { kRunning, kStopping, kWaitRestart };
  JobRecord rec;
  AttemptRecord attempt;
  Phase phase = Phase::kWaitRestart;
  double attempt_started = 0;
  int64_t last_step = -1;  // stall detection: last step seen ...
  double last_change = 0;  // ... and when it changed
  double rate_t0 = 0;      // rate: first progress seen in this attempt
  int64_t rate_step0 = -1;
  double last_progress_event = 0;
  bool running_seen = false;  // STARTING -> RUNNING done
  double stop_deadline = 0;   // kStopping: SIGKILL after this
  bool killed = false;
  std::string stop_cause;
  std::string stop_restart_reason;
  double next_launch = 0;  // kWaitRestart
  std::string restart_reason;
  bool count_restart = true;  // coordinator_restart does not use up max_restarts
  bool done = false;
};

// A cancelled attempt whose processes are being stopped (slots already freed).
struct JobManager::Stopping {
  std::string job_id;
  std::string handle;
  RunDir run_dir;
  int attempt = 0;
  double deadline = 0;
  bool killed = false;
};

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

std::string Fmt(double v, int prec = 1) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", prec, v);
  return buf;
}

}  // namespace

std::string SpecHash(const std::string& yaml, const std::vector<std::string>& overrides) {
  uint64_t h = 1469598103934665603ULL;
  auto mix = [&](const std::string& s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ULL;
    }
    h ^= 0xff;
    h *= 1099511628211ULL;
  };
  mix(yaml);
  for (const auto& o : overrides) mix(o);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

bool ValidClientRequestId(const std::string& id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-' || c == ':';
    if (!ok) return false;
  }
  return true;
}

bool ValidJobId(const std::string& id) {
  if (id.size() < 5 || id.size() > 24 || id.rfind("job-", 0) != 0) return false;
  return id.find_first_not_of("0123456789", 4) == std::string::npos;
}

JobManager::JobManager(JobManagerOptions options, JobStore& store, Scheduler scheduler,
                       std::unique_ptr<Launcher> launcher, metrics::CoordinatorMetrics* metrics, EvalRunner* evals)
    : options_(std::move(options)),
      store_(store),
      scheduler_(std::move(scheduler)),
      launcher_(std::move(launcher)),
      metrics_(metrics),
      evals_(evals) {
  capacity_ = scheduler_.capacity();
}

JobManager::~JobManager() { Stop(); }

std::string JobManager::slot_kind_name() const { return scheduler_.kind() == SlotKind::kGpu ? "gpu" : "cpu"; }

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

void JobManager::Notify(const std::string& job_id, int64_t sequence) {
  if (sequence <= 0) return;
  {
    std::lock_guard<std::mutex> lock(events_mu_);
    int64_t& last = last_event_[job_id];
    last = std::max(last, sequence);
  }
  events_cv_.notify_all();
}

void JobManager::WaitForEvents(const std::string& job_id, int64_t after_sequence, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(events_mu_);
  events_cv_.wait_for(lock, timeout, [&] {
    auto it = last_event_.find(job_id);
    return it != last_event_.end() && it->second > after_sequence;
  });
}

void JobManager::PostMessage(const std::string& job_id, const std::string& message) {
  auto rec = store_.GetJob(job_id, false);
  if (!rec) return;
  EventRecord e;
  e.job_id = job_id;
  e.time_unix = NowUnix();
  e.kind = EventKind::kMessage;
  e.state = rec->state;
  e.message = message;
  e.progress = rec->progress;
  e.attempt = rec->attempt;
  Notify(job_id, store_.AppendEvent(e));
}

int64_t JobManager::WriteJob(JobRecord& rec, EventKind kind, const std::string& message) {
  EventRecord e;
  e.time_unix = NowUnix();
  e.kind = kind;
  e.state = rec.state;
  e.message = message;
  e.progress = rec.progress;
  e.attempt = rec.attempt;
  int64_t seq = store_.UpdateJob(rec, e);
  Notify(rec.id, seq);
  return seq;
}

// ---- submit / cancel (gRPC threads) -----------------------------------------------------------

JobManager::SubmitResult JobManager::Submit(const SubmitRequest& req) {
  auto reject = [&](ErrorCode code, const std::string& msg, std::vector<FieldViolation> fields = {}) {
    if (metrics_) metrics_->OnSubmit("rejected");
    throw ServiceError(code, msg, std::move(fields));
  };
  if (req.yaml.size() > options_.max_spec_bytes) {
    reject(ErrorCode::kResourceExhausted, "job_yaml is " + std::to_string(req.yaml.size()) +
                                              " bytes; this coordinator accepts at most " +
                                              std::to_string(options_.max_spec_bytes) + " bytes");
  }
  if (req.yaml.find_first_not_of(" \t\r\n") == std::string::npos) {
    reject(ErrorCode::kInvalidArgument, "job_yaml is empty: send the text of a job file", {{"job_yaml", "is empty"}});
  }
  if (!req.client_request_id.empty() && !ValidClientRequestId(req.client_request_id)) {
    reject(ErrorCode::kInvalidArgument,
           "client_request_id must be 1-128 characters from A-Z a-z 0-9 . _ : -, got '" +
               req.client_request_id.substr(0, 200) + "'",
           {{"client_request_id", "invalid syntax"}});
  }
  if (req.overrides.size() > 256) {
    reject(ErrorCode::kResourceExhausted,
           "at most 256 overrides are accepted, got " + std::to_string(req.overrides.size()));
  }
  config::JobConfig cfg;
  try {
    cfg = config::ParseJobYaml(req.yaml, "job_yaml", req.overrides);
  } catch (const ConfigError& e) {
    std::vector<FieldViolation> fields;
    std::string msg = "invalid job spec (" + std::to_string(e.items().size()) + " problem" +
                      (e.items().size() == 1 ? "" : "s") + "):";
    for (const auto& item : e.items()) {
      fields.push_back({item.field, item.message});
      msg += "\n  " + item.field + ": " + item.message;
    }
    reject(ErrorCode::kInvalidArgument, msg, fields);
  } catch (const UserError& e) {
    reject(ErrorCode::kInvalidArgument, std::string("invalid job spec: ") + e.what());
  }
  if (cfg.resources.ranks > options_.max_ranks_per_job) {
    std::string m = "must be <= " + std::to_string(options_.max_ranks_per_job) +
                    " (this coordinator's max_ranks_per_job), got " + std::to_string(cfg.resources.ranks);
    reject(ErrorCode::kInvalidArgument, "invalid job spec:\n  resources.ranks: " + m, {{"resources.ranks", m}});
  }
  if (cfg.resources.device == "cuda" && scheduler_.kind() != SlotKind::kGpu) {
    reject(ErrorCode::kFailedPrecondition,
           "resources.device: the job needs cuda but this coordinator schedules CPU slots "
           "(start it with --gpus LIST); it can never be placed");
  }
  if (std::string why = scheduler_.WhyNeverPlaceable(cfg.resources.ranks); !why.empty()) {
    reject(ErrorCode::kFailedPrecondition, why);
  }

  JobRecord rec;
  rec.name = cfg.name;
  rec.state = JobState::kQueued;
  rec.priority = cfg.priority;
  rec.ranks = cfg.resources.ranks;
  rec.device = cfg.resources.device;
  rec.max_restarts = cfg.max_restarts;
  rec.created_unix = NowUnix();
  rec.pending_reason = options_.launch_enabled
                           ? "waiting for the scheduler"
                           : "not scheduled: this coordinator runs with --launcher none (benchmark mode)";
  rec.client_request_id = req.client_request_id;
  rec.spec_yaml = config::ToYaml(cfg);
  rec.spec_hash = SpecHash(req.yaml, req.overrides);
  EventRecord first;
  first.time_unix = rec.created_unix;
  first.kind = EventKind::kState;
  first.state = JobState::kQueued;
  first.message = "submitted: " + std::to_string(rec.ranks) + (rec.ranks == 1 ? " rank" : " ranks") + ", priority " +
                  std::to_string(rec.priority);

  JobStore::InsertResult ins;
  {
    // Under mu_ so that the manager never sees a job in the store that is missing from the queue.
    std::lock_guard<std::mutex> lock(mu_);
    try {
      ins = store_.InsertJob(rec, first);
    } catch (const ServiceError& e) {
      if (metrics_) metrics_->OnSubmit("rejected");
      throw;
    }
    if (!ins.duplicate) {
      queue_.push_back({{ins.job.id, ins.job.ranks, ins.job.priority, ins.job.seq}, ins.job.pending_reason});
      wake_ = true;
    }
  }
  if (ins.duplicate) {
    if (metrics_) metrics_->OnSubmit("duplicate");
    return {ins.job, true};
  }
  wake_cv_.notify_all();
  Notify(ins.job.id, ins.job.last_sequence);
  if (metrics_) metrics_->OnSubmit("accepted");
  return {ins.job, false};
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
    WriteJob(*rec, EventKind::kState, reason);
    return *rec;
  }
  if (active_.count(job_id)) {
    cancel_requests_[job_id] = reason;
    wake_ = true;
    wake_cv_.notify_all();
    cancel_done_cv_.wait_for(lock, std::chrono::seconds(30), [&] {
      return stop_ || !active_.count(job_id) ||
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
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [id, job] : active_) out.emplace_back(id, options_.runs_root + "/" + id);
  return out;
}

// ---- manager thread ---------------------------------------------------------------------------

void JobManager::Tick() {
  const double now = NowUnix();
  std::map<std::string, std::string> cancels;
  std::vector<ActiveJob*> jobs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancels.swap(cancel_requests_);
    for (auto& [id, job] : active_) jobs.push_back(job.get());
  }
  for (ActiveJob* job : jobs) {
    if (job->done) continue;
    auto c = cancels.find(job->rec.id);
    if (c != cancels.end()) {
      CancelActive(*job, c->second);
      continue;
    }
    switch (job->phase) {
      case ActiveJob::Phase::kWaitRestart:
        if (now >= job->next_launch) LaunchAttempt(*job, job->restart_reason);
        break;
      case ActiveJob::Phase::kRunning: PollRunning(*job, now); break;
      case ActiveJob::Phase::kStopping: {
        AttemptStatus st = launcher_->Poll(job->attempt.handle, RunDir{job->rec.run_dir}, job->attempt.number);
        if (st.phase != AttemptStatus::Phase::kRunning) {
          EndAttempt(*job, st, job->stop_cause, job->stop_restart_reason);
        } else if (now >= job->stop_deadline && !job->killed) {
          launcher_->Stop(job->attempt.handle, RunDir{job->rec.run_dir}, job->attempt.number, true);
          job->killed = true;
        }
        break;
      }
    }
    if (!job->done && evals_) evals_->ScanJob(job->rec);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = active_.begin(); it != active_.end();) {
      if (it->second->done) {
        if (cancels.count(it->first)) cancelled_.push_back(it->first);
        it = active_.erase(it);
      } else {
        ++it;
      }
    }
  }
  if (!cancels.empty()) cancel_done_cv_.notify_all();
  ReapStopping(now);
  if (options_.launch_enabled) ScheduleQueued();
  if (evals_) evals_->Tick();
  UpdateGauges(false);
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
    auto job = std::make_unique<ActiveJob>();
    ActiveJob* raw = job.get();
    {
      // Still queued? (a Cancel may have taken it out since the snapshot)
      std::lock_guard<std::mutex> lock(mu_);
      auto q = std::find_if(queue_.begin(), queue_.end(), [&](const Queued& e) { return e.job.id == id; });
      if (q == queue_.end()) {
        scheduler_.Release(id);
        continue;
      }
      queue_.erase(q);
      live_reasons_.erase(id);
      // From here a Cancel finds the job in active_ and is handled by the next tick.
      active_[id] = std::move(job);
    }
    auto rec = store_.GetJob(id, true);
    if (!rec) {
      scheduler_.Release(id);
      raw->done = true;
      continue;
    }
    raw->rec = *rec;
    raw->rec.placement = scheduler_.PlacementString(slots);
    LaunchAttempt(*raw, "");
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
    WriteJob(*rec, EventKind::kMessage, "pending: " + reason);
  }
}

std::string JobManager::PendingReason(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_reasons_.find(job_id);
  return it == live_reasons_.end() ? "" : it->second;
}

void JobManager::LaunchAttempt(ActiveJob& job, const std::string& restart_reason) {
  JobRecord& rec = job.rec;
  const double now = NowUnix();
  RunDir d{rec.run_dir};
  const int n = rec.attempt + 1;
  AttemptRecord a;
  a.job_id = rec.id;
  a.number = n;
  a.placement = rec.placement;
  a.launcher = launcher_->name();
  a.started_unix = now;
  a.restart_reason = restart_reason;
  a.start_step = rec.progress.step;
  job.attempt = a;
  job.phase = ActiveJob::Phase::kRunning;
  job.attempt_started = now;
  job.last_step = -1;
  job.last_change = now;
  job.rate_step0 = -1;
  job.running_seen = false;
  job.killed = false;
  job.stop_cause.clear();

  std::string launch_error;
  try {
    if (!fs::IsInside(options_.runs_root, d.root)) {
      throw std::runtime_error("run dir " + d.root + " is outside " + options_.runs_root);
    }
    fs::MakeDirs(d.root);
    fs::MakeDirs(d.Attempt(n));
    fs::AtomicWriteFile(d.JobYaml(), rec.spec_yaml);
    // A result.json of the previous attempt must not be mistaken for this one's.
    if (fs::Exists(d.Result())) std::rename(d.Result().c_str(), (d.Attempt(n - 1) + "/result.json").c_str());
  } catch (const std::exception& e) {
    launch_error = std::string("cannot prepare the run dir: ") + e.what();
  }

  rec.state = JobState::kStarting;
  rec.attempt = n;
  if (rec.started_unix == 0) rec.started_unix = now;
  rec.pending_reason.clear();
  store_.UpsertAttempt(a);
  std::string msg = "starting attempt " + std::to_string(n) + " on " + rec.placement + " (" + launcher_->name() +
                    " launcher)" + (restart_reason.empty() ? "" : ", restart reason " + restart_reason);
  WriteJob(rec, EventKind::kState, msg);

  if (launch_error.empty()) {
    LaunchSpec spec;
    spec.job_id = rec.id;
    spec.attempt = n;
    spec.run_dir = d;
    spec.ranks = rec.ranks;
    spec.kind = scheduler_.kind();
    spec.slots = Scheduler::ParsePlacement(rec.placement).value_or(std::vector<int>{});
    spec.worker_argv = {
        options_.worker_binary, "--job", d.JobYaml(), "--run-dir", d.root, "--resume", "auto", "--job-id", rec.id};
    spec.workdir = options_.workdir;
    try {
      job.attempt.handle = launcher_->Launch(spec);
      store_.UpsertAttempt(job.attempt);
      spdlog::info("coordinator: {} attempt {} launched ({})", rec.id, n, job.attempt.handle);
      return;
    } catch (const std::exception& e) {
      launch_error = std::string("launch failed: ") + e.what();
    }
  }
  spdlog::warn("coordinator: {} attempt {}: {}", rec.id, n, launch_error);
  AttemptStatus st;
  st.phase = AttemptStatus::Phase::kLost;
  st.detail = launch_error;
  EndAttempt(job, st, launch_error, "launch_failure");
}

void JobManager::UpdateProgress(ActiveJob& job, double now) {
  RunDir d{job.rec.run_dir};
  auto p = ReadProgress(d);
  bool fresh = p && p->mtime >= job.attempt_started - 1.0;
  if (!job.running_seen) {
    bool started = fresh;
    if (!started) {
      for (const auto& ep : ReadEndpoints(d))
        if (ep.mtime >= job.attempt_started - 1.0) started = true;
    }
    if (started) {
      job.running_seen = true;
      job.rec.state = JobState::kRunning;
      WriteJob(job.rec, EventKind::kState, "running (attempt " + std::to_string(job.attempt.number) + ")");
    }
  }
  if (!fresh) return;
  Progress& pr = job.rec.progress;
  bool changed = p->step != job.last_step;
  if (changed) {
    job.last_step = p->step;
    job.last_change = now;
  }
  if (job.rate_step0 < 0) {
    job.rate_step0 = p->step;
    job.rate_t0 = now;
  }
  pr.step = p->step;
  pr.total_steps = p->total_steps;
  pr.epoch = p->epoch;
  pr.num_epochs = p->num_epochs;
  pr.loss = p->loss;
  pr.images_per_s = p->images_per_s;
  if (changed) pr.updated_unix = now;
  double dt = now - job.rate_t0;
  if (dt > 0.5 && p->step > job.rate_step0) {
    pr.steps_per_s = static_cast<double>(p->step - job.rate_step0) / dt;
    pr.eta_seconds = pr.total_steps > pr.step ? (pr.total_steps - pr.step) / pr.steps_per_s : 0;
  }
  if (changed && now - job.last_progress_event >= options_.progress_event_interval_s) {
    job.last_progress_event = now;
    std::string msg = "step " + std::to_string(pr.step) + (pr.total_steps ? "/" + std::to_string(pr.total_steps) : "") +
                      ", epoch " + std::to_string(pr.epoch) +
                      (pr.num_epochs ? "/" + std::to_string(pr.num_epochs) : "") + ", loss " + Fmt(pr.loss, 4);
    WriteJob(job.rec, EventKind::kProgress, msg);
  }
}

void JobManager::PollRunning(ActiveJob& job, double now) {
  RunDir d{job.rec.run_dir};
  AttemptStatus st = launcher_->Poll(job.attempt.handle, d, job.attempt.number);
  UpdateProgress(job, now);
  if (st.phase != AttemptStatus::Phase::kRunning) {
    EndAttempt(job, st, "", "rank_exit");
    return;
  }
  if (options_.no_progress_timeout_s > 0 && now - job.last_change > options_.no_progress_timeout_s) {
    std::string cause = "no progress for " + Fmt(now - job.last_change, 0) + " s (limit " +
                        Fmt(options_.no_progress_timeout_s, 0) + " s; " +
                        (job.last_step >= 0 ? "step stuck at " + std::to_string(job.last_step)
                                            : std::string("no progress.json from this attempt")) +
                        ")";
    spdlog::warn("coordinator: {} attempt {}: {}; stopping it", job.rec.id, job.attempt.number, cause);
    launcher_->Stop(job.attempt.handle, d, job.attempt.number, false);
    job.phase = ActiveJob::Phase::kStopping;
    job.stop_deadline = now + options_.stop_grace_s;
    job.stop_cause = cause;
    job.stop_restart_reason = "no_progress";
  }
}

std::string JobManager::DescribeFailure(const ActiveJob& job, const AttemptStatus& st) {
  RunDir d{job.rec.run_dir};
  std::vector<ExitRecord> ranks = ReadRankExits(d, job.attempt.number);
  // The first rank that failed by itself: ranks terminated with SIGTERM were usually stopped by
  // mpirun because another one failed, so prefer any other failure.
  const ExitRecord* first = nullptr;
  for (const auto& r : ranks) {
    if ((r.exit_code != 0 || r.signal != 0) && r.signal != SIGTERM) {
      first = &r;
      break;
    }
  }
  if (!first) {
    for (const auto& r : ranks)
      if (r.exit_code != 0 || r.signal != 0) {
        first = &r;
        break;
      }
  }
  std::string cause;
  int log_rank = -1;
  if (first) {
    cause =
        "rank " + std::to_string(first->rank) +
        (first->signal ? " killed by signal " + std::to_string(first->signal) + " (" + SignalName(first->signal) + ")"
                       : " exited with code " + std::to_string(first->exit_code));
    log_rank = first->rank;
  } else if (st.phase == AttemptStatus::Phase::kExited) {
    cause = st.signal ? "launcher killed by " + SignalName(st.signal)
                      : "launcher exited with code " + std::to_string(st.exit_code);
    if (st.exit_code == 0 && !st.signal) cause = "launcher exited with code 0";
  } else {
    cause = "attempt lost: " + st.detail;
  }
  if (!st.detail.empty() && st.phase == AttemptStatus::Phase::kExited) cause += " (" + st.detail + ")";
  if (auto res = ReadResult(d); res && res->status == "failed" && !res->reason.empty()) {
    cause += "; worker: " + res->reason;
  }
  std::string log_path = log_rank >= 0 ? d.RankLog(log_rank) : d.LauncherLog();
  std::string tail = TailFile(log_path, 8, 4096);
  if (!tail.empty()) {
    cause += "\nlast lines of logs/" + log_path.substr(log_path.rfind('/') + 1) + ":\n" + tail;
  }
  return cause;
}

void JobManager::EndAttempt(ActiveJob& job, const AttemptStatus& st, const std::string& forced_cause,
                            const std::string& restart_reason) {
  JobRecord& rec = job.rec;
  RunDir d{rec.run_dir};
  const double now = NowUnix();
  // Stragglers (a rank's child that outlived it): the attempt is over, kill what is left.
  if (!job.attempt.handle.empty() && st.phase != AttemptStatus::Phase::kRunning) {
    launcher_->Stop(job.attempt.handle, d, job.attempt.number, true);
  }
  if (st.phase == AttemptStatus::Phase::kExited || st.phase == AttemptStatus::Phase::kLost) {
    UpdateProgress(job, now);  // the final progress.json
  }
  auto result = ReadResult(d);
  bool success = forced_cause.empty() && st.phase == AttemptStatus::Phase::kExited && st.exit_code == 0 &&
                 st.signal == 0 && !(result && result->status == "failed");
  job.attempt.ended_unix = now;
  job.attempt.exit_code = st.exit_code;
  if (result) rec.result_reason = result->reason;

  if (success) {
    job.attempt.cause = "succeeded";
    store_.UpsertAttempt(job.attempt);
    if (rec.progress.total_steps > 0 && rec.progress.step < rec.progress.total_steps && result &&
        result->step > rec.progress.step) {
      rec.progress.step = result->step;
    }
    rec.progress.eta_seconds = 0;
    Finish(job, JobState::kSucceeded,
           "succeeded (attempt " + std::to_string(job.attempt.number) + ", " + std::to_string(rec.restarts) +
               (rec.restarts == 1 ? " restart" : " restarts") + ")" +
               (result && !result->reason.empty() ? ": " + result->reason : ""));
    return;
  }

  std::string cause = forced_cause.empty() ? DescribeFailure(job, st) : forced_cause;
  if (!forced_cause.empty() && st.phase == AttemptStatus::Phase::kExited && restart_reason == "no_progress") {
    cause += " (stopped by the coordinator)";
  }
  job.attempt.cause = cause;
  store_.UpsertAttempt(job.attempt);
  rec.last_error = "attempt " + std::to_string(job.attempt.number) + ": " + cause;
  // A worker that rejected its input (exit code 2) fails the same way on every attempt.
  bool permanent = false;
  for (const auto& r : ReadRankExits(d, job.attempt.number))
    if (r.exit_code == 2) permanent = true;
  if (restart_reason == "launch_failure" && launcher_->name() == "local") permanent = true;
  const std::string headline = cause.substr(0, cause.find('\n'));
  if (!permanent && rec.restarts < rec.max_restarts) {
    rec.restarts += 1;
    rec.state = JobState::kRestarting;
    job.phase = ActiveJob::Phase::kWaitRestart;
    job.next_launch = now + options_.restart_backoff_s;
    job.restart_reason = restart_reason;
    if (metrics_) metrics_->OnRestart(restart_reason);
    WriteJob(rec, EventKind::kState,
             "attempt " + std::to_string(job.attempt.number) + " failed: " + headline + "; restarting (" +
                 std::to_string(rec.restarts) + "/" + std::to_string(rec.max_restarts) +
                 ") from the latest checkpoint");
    spdlog::warn("coordinator: {} attempt {} failed ({}); restart {}/{}", rec.id, job.attempt.number, headline,
                 rec.restarts, rec.max_restarts);
    return;
  }
  std::string why =
      permanent ? (restart_reason == "launch_failure" ? " (launch failures are not retried)"
                                                      : " (a rank rejected its input with exit code 2; not restarted)")
                : " (max_restarts " + std::to_string(rec.max_restarts) + " reached)";
  spdlog::warn("coordinator: {} failed: {}{}", rec.id, headline, why);
  Finish(job, JobState::kFailed, "failed: " + headline + why);
}

void JobManager::Finish(ActiveJob& job, JobState state, const std::string& message) {
  JobRecord& rec = job.rec;
  rec.state = state;
  rec.finished_unix = NowUnix();
  rec.placement.clear();
  rec.pending_reason.clear();
  scheduler_.Release(rec.id);
  WriteJob(rec, EventKind::kState, message);
  job.done = true;
  if (evals_) evals_->ScanJob(rec);
  {
    std::lock_guard<std::mutex> lock(mu_);
    wake_ = true;  // slots were freed: schedule again soon
  }
}

void JobManager::CancelActive(ActiveJob& job, const std::string& reason) {
  RunDir d{job.rec.run_dir};
  if (job.phase != ActiveJob::Phase::kWaitRestart && !job.attempt.handle.empty()) {
    launcher_->Stop(job.attempt.handle, d, job.attempt.number, false);
    auto s = std::make_unique<Stopping>();
    s->job_id = job.rec.id;
    s->handle = job.attempt.handle;
    s->run_dir = d;
    s->attempt = job.attempt.number;
    s->deadline = NowUnix() + options_.stop_grace_s;
    stopping_.push_back(std::move(s));
    job.attempt.ended_unix = NowUnix();
    job.attempt.cause = reason;
    store_.UpsertAttempt(job.attempt);
  }
  Finish(job, JobState::kCancelled, reason);
}

void JobManager::ReapStopping(double now) {
  for (auto it = stopping_.begin(); it != stopping_.end();) {
    Stopping& s = **it;
    AttemptStatus st = launcher_->Poll(s.handle, s.run_dir, s.attempt);
    if (st.phase != AttemptStatus::Phase::kRunning) {
      launcher_->Stop(s.handle, s.run_dir, s.attempt, true);  // stragglers
      it = stopping_.erase(it);
      continue;
    }
    if (now >= s.deadline && !s.killed) {
      launcher_->Stop(s.handle, s.run_dir, s.attempt, true);
      s.killed = true;
    }
    ++it;
  }
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
}

// ---- recovery ---------------------------------------------------------------------------------

void JobManager::Recover() {
  const double now = NowUnix();
  std::vector<JobRecord> open = store_.LoadOpenJobs();
  int queued = 0, adopted = 0, restarted = 0, ended = 0;
  for (JobRecord& rec : open) {
    if (rec.state == JobState::kQueued) {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back({{rec.id, rec.ranks, rec.priority, rec.seq}, rec.pending_reason});
      ++queued;
      continue;
    }
    auto job = std::make_unique<ActiveJob>();
    job->rec = rec;
    auto slots = Scheduler::ParsePlacement(rec.placement);
    if (!slots || !scheduler_.Reserve(rec.id, *slots)) {
      // The slot configuration changed (or the placement is unusable): place it again.
      spdlog::warn("coordinator: {} held '{}', which this configuration cannot reserve; re-placing it", rec.id,
                   rec.placement);
      if (auto a = store_.GetAttempt(rec.id, rec.attempt); a && rec.state != JobState::kRestarting) {
        AttemptStatus st = launcher_->Poll(a->handle, RunDir{rec.run_dir}, a->number);
        if (st.phase == AttemptStatus::Phase::kRunning)
          launcher_->Stop(a->handle, RunDir{rec.run_dir}, a->number, true);
      }
      rec.state = JobState::kQueued;
      rec.placement.clear();
      rec.pending_reason = "re-queued after a coordinator restart";
      WriteJob(rec, EventKind::kState, "re-queued: its placement is not available after the coordinator restart");
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back({{rec.id, rec.ranks, rec.priority, rec.seq}, rec.pending_reason});
      continue;
    }
    ActiveJob* raw = job.get();
    {
      std::lock_guard<std::mutex> lock(mu_);
      active_[rec.id] = std::move(job);
    }
    if (rec.state == JobState::kRestarting) {
      raw->phase = ActiveJob::Phase::kWaitRestart;
      raw->next_launch = now;
      raw->restart_reason = "coordinator_restart";
      ++restarted;
      continue;
    }
    auto a = store_.GetAttempt(rec.id, rec.attempt);
    RunDir d{rec.run_dir};
    AttemptStatus st;
    if (a) {
      raw->attempt = *a;
      st = launcher_->Poll(a->handle, d, a->number);
    } else {
      st.phase = AttemptStatus::Phase::kLost;
      st.detail = "no attempt record";
    }
    raw->attempt_started = raw->attempt.started_unix;
    raw->last_change = now;  // the stall clock restarts with the coordinator
    raw->running_seen = rec.state == JobState::kRunning;
    if (st.phase == AttemptStatus::Phase::kRunning) {
      raw->phase = ActiveJob::Phase::kRunning;
      raw->last_step = rec.progress.step;
      PostMessage(rec.id, "coordinator restarted: re-adopted attempt " + std::to_string(raw->attempt.number) + " (" +
                              raw->attempt.handle + ")");
      ++adopted;
    } else if (st.phase == AttemptStatus::Phase::kExited) {
      // It ended while the coordinator was down: account for it as usual.
      raw->phase = ActiveJob::Phase::kRunning;
      EndAttempt(*raw, st, "", "rank_exit");
      ++ended;
    } else {
      // Unknown outcome (the launcher itself is gone): restart from the checkpoint without using
      // up one of the job's restarts.
      if (a) launcher_->Stop(a->handle, d, a->number, true);
      raw->attempt.ended_unix = now;
      raw->attempt.cause = "lost across a coordinator restart: " + st.detail;
      if (a) store_.UpsertAttempt(raw->attempt);
      raw->rec.state = JobState::kRestarting;
      raw->phase = ActiveJob::Phase::kWaitRestart;
      raw->next_launch = now;
      raw->restart_reason = "coordinator_restart";
      if (metrics_) metrics_->OnRestart("coordinator_restart");
      WriteJob(raw->rec, EventKind::kState,
               "coordinator restarted and attempt " + std::to_string(raw->attempt.number) + " is gone (" + st.detail +
                   "); restarting from the latest checkpoint");
      ++restarted;
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = active_.begin(); it != active_.end();) {
      if (it->second->done)
        it = active_.erase(it);
      else
        ++it;
    }
  }
  if (evals_) evals_->Recover();
  UpdateGauges(true);
  spdlog::info("coordinator: recovered {} open job(s): {} queued, {} re-adopted, {} restarting, {} ended while down",
               open.size(), queued, adopted, restarted, ended);
}

}  // namespace vicreg::server
