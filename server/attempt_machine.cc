#include "server/attempt_machine.h"

#include <spdlog/spdlog.h>

#include <cstdio>

#include "common/config_loader.h"
#include "common/fs.h"
#include "common/metrics.h"
#include "common/run_contract.h"
#include "server/failure.h"

namespace vicreg::server {

struct AttemptMachine::ActiveJob {
  enum class Phase { kNew, kRunning, kStopping, kWaitRestart };
  JobRecord rec;
  AttemptRecord attempt;
  Phase phase = Phase::kNew;
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
  RestartReason stop_restart_reason = RestartReason::kNone;
  bool stop_restartable = true;  // false: the stop ends the job (max_queue_wait_s)
  double next_launch = 0;        // kWaitRestart
  RestartReason restart_reason = RestartReason::kNone;
  bool done = false;
  // From the job's spec (parsed once): what the launcher is asked for.
  bool plan_loaded = false;
  int nodes = 0;
  int ranks_per_node = 0;
  bool gpu = false;
  double max_queue_wait_s = 0;  // the job's own limit (0 = none)
};

// A cancelled attempt whose processes are being stopped. The job is CANCELLED but keeps its slots
// (and its stored placement, which is how a restarted coordinator finds it) until they are gone.
struct AttemptMachine::Stopping {
  std::string job_id;
  int attempt = 0;
  AttemptRef ref;
  double deadline = 0;
  bool killed = false;
};

namespace {

// The launch's name (LaunchSpec::name): the Slurm job is "<prefix>-<job id>-a<n>".
std::string AttemptName(const std::string& job_id, int attempt) { return job_id + "-a" + std::to_string(attempt); }

// How the launcher finds one attempt of a job: its launch name and the run contract's files.
AttemptRef RefOfAttempt(const JobRecord& rec, const AttemptRecord& attempt) {
  const contract::RunPaths d(rec.run_dir);
  AttemptRef r;
  r.name = AttemptName(rec.id, attempt.number);
  r.handle = attempt.handle;
  r.status_path = d.attempt_status(attempt.number);
  r.info_path = d.attempt_launcher_info(attempt.number);
  return r;
}

std::string Fmt(double v, int prec = 1) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", prec, v);
  return buf;
}

// Seconds as people write them: "3600", "90", "0.3".
std::string Seconds(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", v < 10 && v != static_cast<int64_t>(v) ? 1 : 0, v);
  return buf;
}

}  // namespace

AttemptMachine::AttemptMachine(AttemptOptions options, JobJournal& journal, Scheduler& scheduler, Launcher& launcher,
                               metrics::CoordinatorMetrics* metrics, EvalRunner* evals)
    : options_(std::move(options)),
      journal_(journal),
      store_(journal.store()),
      scheduler_(scheduler),
      launcher_(launcher),
      metrics_(metrics),
      evals_(evals) {}

AttemptMachine::~AttemptMachine() = default;

bool AttemptMachine::Has(const std::string& job_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  return jobs_.count(job_id) > 0;
}

bool AttemptMachine::Busy() const {
  std::lock_guard<std::mutex> lock(mu_);
  return !jobs_.empty() || !stopping_.empty();
}

std::vector<std::string> AttemptMachine::JobIds() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (const auto& [id, job] : jobs_) out.push_back(id);
  return out;
}

AttemptMachine::ActiveJob& AttemptMachine::Insert(JobRecord rec) {
  auto job = std::make_unique<ActiveJob>();
  job->rec = std::move(rec);
  ActiveJob& raw = *job;
  std::lock_guard<std::mutex> lock(mu_);
  jobs_[raw.rec.id] = std::move(job);
  return raw;
}

void AttemptMachine::Add(const std::string& job_id) {
  JobRecord rec;
  rec.id = job_id;
  Insert(rec);
}

void AttemptMachine::Drop(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  jobs_.erase(job_id);
}

void AttemptMachine::Launch(JobRecord rec) {
  ActiveJob* job = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = jobs_.find(rec.id);
    if (it != jobs_.end()) job = it->second.get();
  }
  if (!job) job = &Insert(rec);
  job->rec = std::move(rec);
  LaunchAttempt(*job, RestartReason::kNone);
}

AttemptRef AttemptMachine::RefOf(const ActiveJob& job) const { return RefOfAttempt(job.rec, job.attempt); }

void AttemptMachine::LoadPlan(ActiveJob& job) {
  if (job.plan_loaded) return;
  job.plan_loaded = true;
  std::string spec = job.rec.spec_yaml;
  if (spec.empty()) {
    if (auto full = store_.GetJob(job.rec.id, true)) spec = full->spec_yaml;
  }
  try {
    config::JobConfig cfg = config::ParseJobYaml(spec, job.rec.id + "/spec");
    job.nodes = cfg.resources.nodes;
    job.ranks_per_node = cfg.resources.ranks_per_node;
    job.gpu = cfg.resources.device == "cuda";
    job.max_queue_wait_s = cfg.max_queue_wait_s;
  } catch (const std::exception& e) {
    // Accepted at submit; a later schema change must not stop the coordinator: defaults.
    spdlog::warn("coordinator: {}: cannot read its spec again ({}); launching with default resources", job.rec.id,
                 e.what());
    job.gpu = job.rec.device == "cuda";
  }
}

// ---- recovery entry points --------------------------------------------------------------------

void AttemptMachine::Adopt(JobRecord rec, AttemptRecord attempt) {
  ActiveJob& job = Insert(std::move(rec));
  const double now = NowUnix();
  job.attempt = std::move(attempt);
  job.attempt_started = job.attempt.started_unix;
  job.last_change = now;  // the stall clock restarts with the coordinator
  job.running_seen = job.rec.state == JobState::kRunning;
  job.phase = ActiveJob::Phase::kRunning;
  job.last_step = job.rec.progress.step;
  store_.UpsertAttempt(job.attempt);  // a handle found by name is kept
  journal_.Message(job.rec.id, "coordinator restarted: re-adopted attempt " + std::to_string(job.attempt.number) +
                                   " (" + (job.attempt.handle.empty() ? "handle not recorded" : job.attempt.handle) +
                                   ", " + AttemptPhaseLabel(job.attempt.phase) + ")");
}

void AttemptMachine::AccountEnded(JobRecord rec, AttemptRecord attempt, const AttemptStatus& status) {
  ActiveJob& job = Insert(std::move(rec));
  job.attempt = std::move(attempt);
  job.attempt_started = job.attempt.started_unix;
  job.last_change = NowUnix();
  job.running_seen = job.rec.state == JobState::kRunning;
  job.phase = ActiveJob::Phase::kRunning;
  EndAttempt(job, status, "", RestartReason::kRankExit);
}

void AttemptMachine::RestartLost(JobRecord rec, std::optional<AttemptRecord> attempt, const AttemptStatus& status) {
  ActiveJob& job = Insert(std::move(rec));
  const double now = NowUnix();
  if (attempt) {
    job.attempt = *attempt;
    launcher_.Stop(RefOf(job), true);  // stragglers
    job.attempt.ended_unix = now;
    job.attempt.phase = AttemptPhase::kEnded;
    job.attempt.cause = "lost across a coordinator restart: " + status.detail;
    store_.UpsertAttempt(job.attempt);
  }
  job.rec.state = JobState::kRestarting;
  job.rec.attempt_phase = AttemptPhase::kEnded;
  job.rec.queue_state.clear();
  job.rec.queue_reason.clear();
  job.rec.queued_since_unix = 0;
  job.phase = ActiveJob::Phase::kWaitRestart;
  job.next_launch = now;
  job.restart_reason = RestartReason::kCoordinatorRestart;
  if (metrics_) metrics_->OnRestart(RestartReasonName(RestartReason::kCoordinatorRestart));
  journal_.Record(job.rec, EventKind::kState,
                  "coordinator restarted and attempt " + std::to_string(job.attempt.number) + " is gone (" +
                      status.detail + "); restarting from the latest checkpoint");
}

void AttemptMachine::AdoptStopping(const JobRecord& rec, std::optional<AttemptRecord> attempt) {
  auto s = std::make_unique<Stopping>();
  s->job_id = rec.id;
  if (attempt) {
    s->attempt = attempt->number;
    s->ref = RefOfAttempt(rec, *attempt);
  }
  // The grace period runs from the cancel (the attempt's end time), not from this restart.
  const double cancelled = attempt && attempt->ended_unix > 0 ? attempt->ended_unix : NowUnix();
  s->deadline = cancelled + options_.stop_grace_s;
  launcher_.Stop(s->ref, false);  // again: the coordinator may have died before sending it
  stopping_.push_back(std::move(s));
}

void AttemptMachine::RestartNow(JobRecord rec) {
  ActiveJob& job = Insert(std::move(rec));
  job.phase = ActiveJob::Phase::kWaitRestart;
  job.next_launch = NowUnix();
  job.restart_reason = RestartReason::kCoordinatorRestart;
}

// ---- the tick ---------------------------------------------------------------------------------

std::vector<std::string> AttemptMachine::Tick(double now, const std::map<std::string, std::string>& cancels) {
  std::vector<ActiveJob*> jobs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, job] : jobs_) jobs.push_back(job.get());
  }
  for (ActiveJob* job : jobs) {
    if (job->done || job->phase == ActiveJob::Phase::kNew) continue;
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
      case ActiveJob::Phase::kStopping: PollStopping(*job, now); break;
      case ActiveJob::Phase::kNew: break;
    }
    if (!job->done && evals_) evals_->ScanJob(job->rec);
  }
  ReapStopping(now);
  return Sweep();
}

std::vector<std::string> AttemptMachine::Sweep() {
  std::vector<std::string> ended;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    if (it->second->done) {
      ended.push_back(it->first);
      it = jobs_.erase(it);
    } else {
      ++it;
    }
  }
  return ended;
}

std::vector<ClusterWait> AttemptMachine::ClusterWaits() const {
  std::vector<ClusterWait> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [id, job] : jobs_) {
    if (job->done || job->phase == ActiveJob::Phase::kNew) continue;
    if (job->rec.attempt_phase != AttemptPhase::kQueued) continue;
    out.push_back({id, job->rec.queue_state, job->rec.queue_reason, job->rec.queued_since_unix});
  }
  return out;
}

// ---- attempts ---------------------------------------------------------------------------------

void AttemptMachine::LaunchAttempt(ActiveJob& job, RestartReason restart_reason) {
  JobRecord& rec = job.rec;
  const double now = NowUnix();
  const contract::RunPaths d(rec.run_dir);
  const int n = rec.attempt + 1;
  LoadPlan(job);
  AttemptRecord a;
  a.job_id = rec.id;
  a.number = n;
  a.placement = rec.placement;
  a.launcher = launcher_.name();
  a.started_unix = now;
  a.restart_reason = restart_reason;
  a.start_step = rec.progress.step;
  a.phase = AttemptPhase::kLaunching;
  job.attempt = a;
  job.stop_restartable = true;
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
    if (!fs::IsInside(options_.runs_root, d.root())) {
      throw std::runtime_error("run dir " + d.root() + " is outside " + options_.runs_root);
    }
    fs::MakeDirs(d.root());
    fs::MakeDirs(d.attempt_dir(n));
    // The spec this attempt runs (the worker writes the resolved <run>/job.yaml itself).
    contract::WriteJobYaml(d.attempt_job_yaml(n), rec.spec_yaml);
    // A result.json of the previous attempt must not be mistaken for this one's.
    if (fs::Exists(d.result_json())) std::rename(d.result_json().c_str(), d.attempt_result(n - 1).c_str());
  } catch (const std::exception& e) {
    launch_error = std::string("cannot prepare the run dir: ") + e.what();
  }

  rec.state = JobState::kStarting;
  rec.attempt = n;
  if (rec.started_unix == 0) rec.started_unix = now;
  rec.pending_reason.clear();
  rec.attempt_phase = AttemptPhase::kLaunching;
  rec.queue_state.clear();
  rec.queue_reason.clear();
  rec.queued_since_unix = 0;
  // The intent, before anything is launched: a coordinator that dies from here on finds the attempt
  // again (by its handle, else by its name) instead of launching it twice.
  store_.UpsertAttempt(a);
  const std::string reason_name = RestartReasonName(restart_reason);
  journal_.Record(rec, EventKind::kState,
                  "starting attempt " + std::to_string(n) + " on " + rec.placement + " (" + launcher_.name() +
                      " launcher)" + (reason_name.empty() ? "" : ", restart reason " + reason_name));

  if (launch_error.empty()) {
    LaunchSpec spec;
    spec.name = AttemptName(rec.id, n);
    spec.argv = {options_.worker_binary,
                 "--job",
                 d.attempt_job_yaml(n),
                 "--run-dir",
                 d.root(),
                 "--resume",
                 "auto",
                 "--job-id",
                 rec.id};
    spec.workdir = options_.workdir;
    spec.ranks = rec.ranks;
    spec.rank_log_dir = d.logs_dir();
    spec.rank_status_dir = d.attempt_ranks_dir(n);
    spec.attempt = n;
    spec.kind = scheduler_.kind();
    if (spec.kind != SlotKind::kCluster)
      spec.slots = Scheduler::ParsePlacement(rec.placement).value_or(std::vector<int>{});
    spec.nodes = job.nodes;
    spec.ranks_per_node = job.ranks_per_node;
    spec.gpu_per_rank = job.gpu;
    spec.status_path = d.attempt_status(n);
    spec.info_path = d.attempt_launcher_info(n);
    spec.output_path = d.launcher_log();
    spec.script_path = d.attempt_sbatch(n);
    try {
      job.attempt.handle = launcher_.Launch(spec);
      store_.UpsertAttempt(job.attempt);
      spdlog::info("coordinator: {} attempt {} launched ({})", rec.id, n,
                   job.attempt.handle.empty() ? "handle not known yet" : job.attempt.handle);
      return;
    } catch (const std::exception& e) {
      launch_error = std::string("launch failed: ") + e.what();
    }
  }
  spdlog::warn("coordinator: {} attempt {}: {}", rec.id, n, launch_error);
  AttemptStatus st;
  st.phase = AttemptStatus::Phase::kLost;
  st.detail = launch_error;
  EndAttempt(job, st, launch_error, RestartReason::kLaunchFailure);
}

void AttemptMachine::UpdateProgress(ActiveJob& job, double now) {
  const contract::RunPaths d(job.rec.run_dir);
  auto snap = contract::ReadProgress(d);
  const bool fresh = snap && snap->mtime >= job.attempt_started - 1.0;
  if (!job.running_seen) {
    bool started = fresh;
    if (!started) {
      for (const auto& ep : contract::ReadEndpoints(d))
        if (ep.mtime >= job.attempt_started - 1.0) started = true;
    }
    if (started) {
      job.running_seen = true;
      job.rec.state = JobState::kRunning;
      journal_.Record(job.rec, EventKind::kState, "running (attempt " + std::to_string(job.attempt.number) + ")");
    }
  }
  if (!fresh) return;
  const contract::Progress& p = snap->progress;
  JobProgress& pr = job.rec.progress;
  const bool changed = p.step != job.last_step;
  if (changed) {
    job.last_step = p.step;
    job.last_change = now;
  }
  if (job.rate_step0 < 0) {
    job.rate_step0 = p.step;
    job.rate_t0 = now;
  }
  static_cast<contract::Progress&>(pr) = p;
  if (changed) pr.updated_unix = now;
  const double dt = now - job.rate_t0;
  if (dt > 0.5 && p.step > job.rate_step0) {
    pr.steps_per_s = static_cast<double>(p.step - job.rate_step0) / dt;
    pr.eta_seconds = pr.total_steps > pr.step ? (pr.total_steps - pr.step) / pr.steps_per_s : 0;
  }
  if (changed && now - job.last_progress_event >= options_.progress_event_interval_s) {
    job.last_progress_event = now;
    std::string msg = "step " + std::to_string(pr.step) + (pr.total_steps ? "/" + std::to_string(pr.total_steps) : "") +
                      ", epoch " + std::to_string(pr.epoch) +
                      (pr.num_epochs ? "/" + std::to_string(pr.num_epochs) : "") + ", loss " + Fmt(pr.loss, 4);
    journal_.Record(job.rec, EventKind::kProgress, msg);
  }
}

void AttemptMachine::TakeHandle(ActiveJob& job, const AttemptStatus& st) {
  if (st.handle.empty() || st.handle == job.attempt.handle) return;
  job.attempt.handle = st.handle;
  store_.UpsertAttempt(job.attempt);
  journal_.Message(job.rec.id, "attempt " + std::to_string(job.attempt.number) + " found by its name: " + st.handle);
}

void AttemptMachine::NoteQueued(ActiveJob& job, const AttemptStatus& st, double now) {
  job.last_change = now;  // the no-progress clock does not run while the attempt waits in the queue
  AttemptRecord& a = job.attempt;
  if (a.phase == AttemptPhase::kQueued && a.queue_state == st.queue_state && a.queue_reason == st.queue_reason) return;
  a.phase = AttemptPhase::kQueued;
  a.queue_state = st.queue_state;
  a.queue_reason = st.queue_reason;
  if (a.queued_unix == 0) a.queued_unix = a.started_unix > 0 ? a.started_unix : now;
  store_.UpsertAttempt(a);
  JobRecord& rec = job.rec;
  rec.attempt_phase = AttemptPhase::kQueued;
  rec.queue_state = st.queue_state;
  rec.queue_reason = st.queue_reason;
  rec.queued_since_unix = a.queued_unix;
  journal_.Record(rec, EventKind::kMessage,
                  "attempt " + std::to_string(a.number) + " waits in the cluster queue: " + st.queue_state +
                      (st.queue_reason.empty() ? "" : " (" + st.queue_reason + ")"));
}

void AttemptMachine::NoteRunning(ActiveJob& job, const AttemptStatus& st, double now) {
  AttemptRecord& a = job.attempt;
  if (a.phase == AttemptPhase::kRunning) return;
  const bool waited = a.phase == AttemptPhase::kQueued;
  a.phase = AttemptPhase::kRunning;
  a.running_unix = now;
  if (!st.queue_state.empty()) a.queue_state = st.queue_state;
  store_.UpsertAttempt(a);
  job.last_change = now;  // the no-progress clock starts when the ranks run
  JobRecord& rec = job.rec;
  rec.attempt_phase = AttemptPhase::kRunning;
  rec.queue_state.clear();
  rec.queue_reason.clear();
  rec.queued_since_unix = 0;
  if (waited) {
    journal_.Record(rec, EventKind::kMessage,
                    "attempt " + std::to_string(a.number) + " left the cluster queue after " +
                        Fmt(now - a.queued_unix, 0) + " s and runs");
  } else {
    store_.UpdateJob(rec);
  }
}

void AttemptMachine::StopAttempt(ActiveJob& job, double now, const std::string& cause, RestartReason restart_reason,
                                 bool restartable) {
  spdlog::warn("coordinator: {} attempt {}: {}; stopping it", job.rec.id, job.attempt.number, cause);
  launcher_.Stop(RefOf(job), false);
  job.phase = ActiveJob::Phase::kStopping;
  job.stop_deadline = now + options_.stop_grace_s;
  job.stop_cause = cause;
  job.stop_restart_reason = restart_reason;
  job.stop_restartable = restartable;
}

void AttemptMachine::PollRunning(ActiveJob& job, double now) {
  LoadPlan(job);
  const AttemptRef ref = RefOf(job);
  AttemptStatus st = launcher_.Poll(ref);
  TakeHandle(job, st);
  if (st.stale) {
    if (job.attempt.phase != AttemptPhase::kRunning) {
      job.last_change = now;  // not known to run: neither a stall nor a queue wait can be judged
      return;
    }
    // It ran when the launcher last knew (e.g. re-adopted while the controller is down): it still
    // does as far as anyone can tell; its progress files say whether it advances.
    st.phase = AttemptStatus::Phase::kRunning;
  }
  if (launcher_.capabilities().places_ranks) launcher_.CancelStrays(ref.name);
  if (st.phase == AttemptStatus::Phase::kQueued) {
    NoteQueued(job, st, now);
    double limit = job.max_queue_wait_s;
    if (options_.max_queue_wait_s > 0 && (limit <= 0 || options_.max_queue_wait_s < limit))
      limit = options_.max_queue_wait_s;
    const double waited = now - job.attempt.queued_unix;
    if (limit > 0 && waited > limit) {
      StopAttempt(job, now,
                  "waited " + Seconds(waited) + " s in the cluster queue (" + st.queue_state +
                      (st.queue_reason.empty() ? "" : " (" + st.queue_reason + ")") + "); max_queue_wait_s " +
                      Seconds(limit),
                  RestartReason::kNone, false);
    }
    return;
  }
  if (st.phase == AttemptStatus::Phase::kRunning) NoteRunning(job, st, now);
  UpdateProgress(job, now);
  if (st.phase != AttemptStatus::Phase::kRunning) {
    EndAttempt(job, st, "", RestartReason::kRankExit);
    return;
  }
  if (options_.no_progress_timeout_s > 0 && now - job.last_change > options_.no_progress_timeout_s) {
    StopAttempt(job, now,
                "no progress for " + Fmt(now - job.last_change, 0) + " s (limit " +
                    Fmt(options_.no_progress_timeout_s, 0) + " s; " +
                    (job.last_step >= 0 ? "step stuck at " + std::to_string(job.last_step)
                                        : std::string("no progress.json from this attempt")) +
                    ")",
                RestartReason::kNoProgress, true);
  }
}

void AttemptMachine::PollStopping(ActiveJob& job, double now) {
  const AttemptRef ref = RefOf(job);
  AttemptStatus st = launcher_.Poll(ref);
  TakeHandle(job, st);
  const bool alive = st.phase == AttemptStatus::Phase::kRunning || st.phase == AttemptStatus::Phase::kQueued;
  if (!alive) {
    EndAttempt(job, st, job.stop_cause, job.stop_restart_reason, job.stop_restartable);
  } else if (now >= job.stop_deadline && !job.killed) {
    launcher_.Stop(ref, true);
    job.killed = true;
  }
}

void AttemptMachine::EndAttempt(ActiveJob& job, const AttemptStatus& st, const std::string& forced_cause,
                                RestartReason restart_reason, bool restartable) {
  JobRecord& rec = job.rec;
  const contract::RunPaths d(rec.run_dir);
  const double now = NowUnix();
  // Stragglers (a rank's child that outlived it): the attempt is over, kill what is left.
  if (st.phase == AttemptStatus::Phase::kExited || st.phase == AttemptStatus::Phase::kLost) {
    launcher_.Stop(RefOf(job), true);
  }
  job.attempt.phase = AttemptPhase::kEnded;
  rec.attempt_phase = AttemptPhase::kEnded;
  rec.queue_state.clear();
  rec.queue_reason.clear();
  rec.queued_since_unix = 0;
  if (st.phase == AttemptStatus::Phase::kExited || st.phase == AttemptStatus::Phase::kLost) {
    UpdateProgress(job, now);  // the final progress.json
  }
  const auto result = contract::ReadResult(d);
  const bool success = forced_cause.empty() && AttemptSucceeded(st, result);
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

  std::string cause = forced_cause.empty() ? DescribeFailure(d, job.attempt.number, st) : forced_cause;
  if (!forced_cause.empty() && st.phase == AttemptStatus::Phase::kExited &&
      restart_reason == RestartReason::kNoProgress) {
    cause += " (stopped by the coordinator)";
  }
  job.attempt.cause = cause;
  store_.UpsertAttempt(job.attempt);
  rec.last_error = "attempt " + std::to_string(job.attempt.number) + ": " + cause;
  // A worker that rejected its input fails the same way on every attempt; so does a launch that
  // this launcher cannot retry.
  const bool rejected_input = RankRejectedInput(d, job.attempt.number);
  const bool unlaunchable =
      restart_reason == RestartReason::kLaunchFailure && launcher_.capabilities().launch_failures_are_permanent;
  const std::string headline = cause.substr(0, cause.find('\n'));
  if (restartable && !rejected_input && !unlaunchable && rec.restarts < rec.max_restarts) {
    rec.restarts += 1;
    rec.state = JobState::kRestarting;
    job.phase = ActiveJob::Phase::kWaitRestart;
    job.next_launch = now + options_.restart_backoff_s;
    job.restart_reason = restart_reason;
    if (metrics_) metrics_->OnRestart(RestartReasonName(restart_reason));
    journal_.Record(rec, EventKind::kState,
                    "attempt " + std::to_string(job.attempt.number) + " failed: " + headline + "; restarting (" +
                        std::to_string(rec.restarts) + "/" + std::to_string(rec.max_restarts) +
                        ") from the latest checkpoint");
    spdlog::warn("coordinator: {} attempt {} failed ({}); restart {}/{}", rec.id, job.attempt.number, headline,
                 rec.restarts, rec.max_restarts);
    return;
  }
  const std::string why =
      !restartable     ? " (not restarted)"
      : unlaunchable   ? " (launch failures are not retried)"
      : rejected_input ? " (a rank rejected its input with exit code " + std::to_string(kExitUsage) + "; not restarted)"
                       : " (max_restarts " + std::to_string(rec.max_restarts) + " reached)";
  spdlog::warn("coordinator: {} failed: {}{}", rec.id, headline, why);
  Finish(job, JobState::kFailed, "failed: " + headline + why);
}

void AttemptMachine::Finish(ActiveJob& job, JobState state, const std::string& message, bool release_slots) {
  JobRecord& rec = job.rec;
  rec.state = state;
  rec.finished_unix = NowUnix();
  rec.pending_reason.clear();
  if (release_slots) {
    rec.placement.clear();
    scheduler_.Release(rec.id);
  }
  journal_.Record(rec, EventKind::kState, message);
  job.done = true;
  if (evals_) evals_->ScanJob(rec);
}

void AttemptMachine::CancelActive(ActiveJob& job, const std::string& reason) {
  const bool in_flight = job.phase != ActiveJob::Phase::kWaitRestart && job.phase != ActiveJob::Phase::kNew;
  if (in_flight) {
    auto s = std::make_unique<Stopping>();
    s->job_id = job.rec.id;
    s->ref = RefOf(job);
    launcher_.Stop(s->ref, false);
    s->deadline = NowUnix() + options_.stop_grace_s;
    stopping_.push_back(std::move(s));
    job.attempt.ended_unix = NowUnix();
    job.attempt.cause = reason;
    job.attempt.phase = AttemptPhase::kEnded;
    store_.UpsertAttempt(job.attempt);
  }
  job.rec.attempt_phase = AttemptPhase::kEnded;
  job.rec.queue_state.clear();
  job.rec.queue_reason.clear();
  job.rec.queued_since_unix = 0;
  // CANCELLED at once; the slots (and the stored placement) stay until the processes are gone.
  Finish(job, JobState::kCancelled, reason, !in_flight);
}

void AttemptMachine::ReapStopping(double now) {
  for (auto it = stopping_.begin(); it != stopping_.end();) {
    Stopping& s = **it;
    AttemptStatus st = launcher_.Poll(s.ref);
    if (!st.handle.empty()) s.ref.handle = st.handle;
    if (st.phase != AttemptStatus::Phase::kRunning && st.phase != AttemptStatus::Phase::kQueued) {
      launcher_.Stop(s.ref, true);  // stragglers
      scheduler_.Release(s.job_id);
      if (auto rec = store_.GetJob(s.job_id, false); rec && !rec->placement.empty()) {
        const std::string placement = rec->placement;
        rec->placement.clear();
        journal_.Record(*rec, EventKind::kMessage,
                        "the processes of cancelled attempt " + std::to_string(s.attempt) + " are gone" +
                            (s.killed ? " (SIGKILL after stop_grace_s)" : "") + "; " + placement + " freed");
      }
      it = stopping_.erase(it);
      continue;
    }
    if (now >= s.deadline && !s.killed) {
      launcher_.Stop(s.ref, true);
      s.killed = true;
    }
    ++it;
  }
}

}  // namespace vicreg::server
