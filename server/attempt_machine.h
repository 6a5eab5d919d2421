// The attempt state machine of the jobs that hold slots (STARTING, RUNNING, RESTARTING):
//
//   launch ──> [queued in the cluster] ──> running ──(launcher exited / lost)──> ended ──> SUCCEEDED | FAILED
//                 │                          │                                       │
//                 │                          └─(no step advance for no_progress_timeout_s, counted from
//                 │                             the moment it runs)──> stopping (SIGTERM / scancel,
//                 │                             SIGKILL after stop_grace_s) ──> ended
//                 └─(waited longer than max_queue_wait_s)──> stopping ──> ended ──> FAILED (not restarted)
//   ended with a failure and restarts < max_restarts ──> wait restart_backoff_s ──> launch (RESTARTING)
//   cancel ──> CANCELLED at once; SIGTERM, SIGKILL after stop_grace_s; the slots are freed (and the
//              stored placement cleared) only when the attempt's processes are gone, also across a
//              coordinator restart (recovery.h: AdoptStopping).
//
// It records where each attempt is (launching, queued in the cluster with the cluster's state and
// reason, running, ended; MESSAGE events when that changes), follows progress (progress.json:
// rate, ETA, throttled PROGRESS events; endpoints/ or a fresh progress.json mark STARTING ->
// RUNNING), judges ended attempts (failure.h) and records every change through the journal. Restarted attempts resume
// from the latest checkpoint (--resume auto). Not thread-safe except Has/JobIds: driven by the job manager's thread
// (and by recovery before it starts).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "server/eval_runner.h"
#include "server/job.h"
#include "server/job_journal.h"
#include "server/launcher.h"
#include "server/scheduler.h"

namespace vicreg::metrics {
class CoordinatorMetrics;
}

namespace vicreg::server {

struct AttemptOptions {
  std::string runs_root;               // <state_dir>/runs: every run dir must be inside
  std::string worker_binary;           // vicreg_worker (absolute path)
  std::string workdir;                 // working directory of the ranks
  double no_progress_timeout_s = 900;  // 0 = never declare a stall
  double stop_grace_s = 10;            // SIGTERM -> SIGKILL
  double restart_backoff_s = 2;
  double progress_event_interval_s = 1;  // at most one PROGRESS event per job per interval
  double max_queue_wait_s = 0;           // coordinator-wide cap on a wait in the cluster queue (0 = none)
};

// A job waiting in the cluster's queue (for metrics).
struct ClusterWait {
  std::string job_id;
  std::string state;   // PENDING
  std::string reason;  // Resources
  double since_unix = 0;
};

class AttemptMachine {
 public:
  AttemptMachine(AttemptOptions options, JobJournal& journal, Scheduler& scheduler, Launcher& launcher,
                 metrics::CoordinatorMetrics* metrics, EvalRunner* evals);
  ~AttemptMachine();
  AttemptMachine(const AttemptMachine&) = delete;
  AttemptMachine& operator=(const AttemptMachine&) = delete;

  // Thread-safe: whether the job is active here (a Cancel is then handled by the next Tick).
  bool Has(const std::string& job_id) const;
  std::vector<std::string> JobIds() const;
  // Manager thread: anything to poll (active jobs, or cancelled attempts being stopped)?
  bool Busy() const;

  // A job the scheduler just placed: Add makes it active (under the manager's queue lock, so that a
  // Cancel always finds it somewhere), Launch starts its first attempt (rec.placement is set).
  void Add(const std::string& job_id);
  void Launch(JobRecord rec);
  void Drop(const std::string& job_id);  // Added but not launchable (gone from the store)

  // After a coordinator restart (recovery.h), for a job whose slots are reserved again:
  void Adopt(JobRecord rec, AttemptRecord attempt);  // its attempt is alive: keep following it
  void AccountEnded(JobRecord rec, AttemptRecord attempt, const AttemptStatus& status);  // ended while down
  // Its attempt is gone with an unknown outcome (or was never recorded): stragglers are killed and
  // the job restarts from its checkpoint without using up one of its max_restarts.
  void RestartLost(JobRecord rec, std::optional<AttemptRecord> attempt, const AttemptStatus& status);
  void RestartNow(JobRecord rec);  // it was RESTARTING: launch the next attempt
  // A CANCELLED job that still holds its slots (its stored placement is not empty): the coordinator
  // stopped or died while the attempt's processes were being stopped. Its slots must be reserved
  // again; it is stopped again (SIGKILL once stop_grace_s has passed since the cancel) and its slots
  // are freed when its processes are gone.
  void AdoptStopping(const JobRecord& rec, std::optional<AttemptRecord> attempt);

  // Applies cancel requests (job id -> reason), then advances every job; finished jobs leave.
  // Returns the ids of the jobs that left.
  std::vector<std::string> Tick(double now, const std::map<std::string, std::string>& cancels);
  // Removes finished jobs (after recovery); returns their ids.
  std::vector<std::string> Sweep();
  // The jobs whose current attempt waits in the cluster's queue.
  std::vector<ClusterWait> ClusterWaits() const;

 private:
  struct ActiveJob;
  struct Stopping;

  ActiveJob& Insert(JobRecord rec);
  AttemptRef RefOf(const ActiveJob& job) const;
  void LoadPlan(ActiveJob& job);
  void LaunchAttempt(ActiveJob& job, RestartReason reason);
  void PollRunning(ActiveJob& job, double now);
  void TakeHandle(ActiveJob& job, const AttemptStatus& status);
  void NoteQueued(ActiveJob& job, const AttemptStatus& status, double now);
  void NoteRunning(ActiveJob& job, const AttemptStatus& status, double now);
  void StopAttempt(ActiveJob& job, double now, const std::string& cause, RestartReason restart_reason,
                   bool restartable);
  void PollStopping(ActiveJob& job, double now);
  void UpdateProgress(ActiveJob& job, double now);
  // forced_cause: the coordinator ended the attempt (stall, launch failure); restart_reason: the
  // reason the next attempt (if any) is started with.
  // restartable=false: the job fails whatever its max_restarts (a wait past max_queue_wait_s).
  void EndAttempt(ActiveJob& job, const AttemptStatus& status, const std::string& forced_cause,
                  RestartReason restart_reason, bool restartable = true);
  void CancelActive(ActiveJob& job, const std::string& reason);
  void Finish(ActiveJob& job, JobState state, const std::string& message, bool release_slots = true);
  void ReapStopping(double now);

  AttemptOptions options_;
  JobJournal& journal_;
  JobStore& store_;
  Scheduler& scheduler_;
  Launcher& launcher_;
  metrics::CoordinatorMetrics* metrics_;
  EvalRunner* evals_;

  mutable std::mutex mu_;                                   // guards the structure of jobs_
  std::map<std::string, std::unique_ptr<ActiveJob>> jobs_;  // contents: manager thread only
  std::vector<std::unique_ptr<Stopping>> stopping_;         // cancelled attempts being stopped
};

}  // namespace vicreg::server
