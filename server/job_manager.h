// The job manager: the coordinator's one owner of job lifecycles, and the seam the gRPC service
// talks to. It holds the queue and the manager thread; the work is done by one piece per job:
//   admission.h        Submit: validation and the QUEUED record (gRPC threads)
//   scheduler.h        placement of queued jobs on slots (priority, FIFO, gang)
//   attempt_machine.h  the attempts of placed jobs: launch, progress, stall, end, restart, cancel
//   failure.h          why an attempt failed, and whether restarting can help
//   recovery.h         the store's open jobs after a coordinator restart
//   job_journal.h      every change stored with its event before it is visible; WatchJob wakeups
// One manager thread ("tick", every poll_interval_s or when woken) refreshes the launcher's view of
// the cluster (one squeue at most), cancels, advances attempts, places queued jobs and drives the
// EvalRunner. A coordinator restart (Start -> recovery) loses
// nothing.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "server/admission.h"
#include "server/attempt_machine.h"
#include "server/eval_runner.h"
#include "server/job.h"
#include "server/job_journal.h"
#include "server/launcher.h"
#include "server/scheduler.h"
#include "server/store.h"

namespace vicreg::metrics {
class CoordinatorMetrics;
}

namespace vicreg::server {

struct JobManagerOptions {
  std::string runs_root;      // <state_dir>/runs
  std::string worker_binary;  // vicreg_worker (absolute path)
  std::string workdir;        // working directory of the ranks
  double poll_interval_s = 0.5;
  double no_progress_timeout_s = 900;  // 0 = never declare a stall
  double stop_grace_s = 10;            // SIGTERM -> SIGKILL
  double restart_backoff_s = 2;
  double progress_event_interval_s = 1;  // at most one PROGRESS event per job per interval
  double max_queue_wait_s = 0;           // cap on a wait in the cluster's queue (0 = none; jobs may set less)
  int max_ranks_per_job = 64;
  size_t max_spec_bytes = 256 * 1024;  // job YAML text
  bool launch_enabled = true;          // false with --launcher none (benchmarks)
  // Retention (0 = keep every ended job): ended jobs are removed from the store (with their
  // attempts, events, evaluations), the metrics and memory this long after they finished; their
  // run dirs too with retention_delete_run_dirs.
  double retention_s = 0;
  bool retention_delete_run_dirs = false;
  double retention_interval_s = 60;  // how often the manager looks for jobs to remove
};

class JobManager {
 public:
  // The launcher is shared with the EvalRunner (both are driven by this manager's thread).
  JobManager(JobManagerOptions options, JobStore& store, Scheduler scheduler, Launcher& launcher,
             metrics::CoordinatorMetrics* metrics, EvalRunner* evals);
  ~JobManager();
  JobManager(const JobManager&) = delete;
  JobManager& operator=(const JobManager&) = delete;

  // Recovers the store's open jobs (recovery.h) and starts the manager thread.
  void Start();
  // Stops the manager thread. Running attempts keep running; the next Start re-adopts them.
  void Stop();

  using SubmitRequest = server::SubmitRequest;
  struct SubmitResult {
    JobRecord job;
    bool duplicate = false;
  };
  // Throws ServiceError (kInvalidArgument with field violations, kFailedPrecondition,
  // kResourceExhausted, kAlreadyExists).
  SubmitResult Submit(const SubmitRequest& request);
  // A submit that stores and queues nothing: the same validation as Submit (same errors), then
  // where the job would go now: placed at once (placement = the slots it would get) or queued
  // behind the current queue (reason = the scheduler's pending reason). client_request_id is
  // checked for syntax only.
  struct DryRunResult {
    JobRecord job;  // the record Submit would store (id empty; spec_yaml resolved)
    bool would_start = false;
    std::string placement;  // "cpu:0,1" when it would start now
    std::string reason;     // why it would start or wait
  };
  DryRunResult DryRun(const SubmitRequest& request);
  // Cancels the job (see the proto). Throws ServiceError(kNotFound).
  JobRecord Cancel(const std::string& job_id, const std::string& reason);

  // Blocks until the job has an event with sequence > after_sequence, or timeout.
  void WaitForEvents(const std::string& job_id, int64_t after_sequence, std::chrono::milliseconds timeout);
  // Appends a MESSAGE event (eval runner, operators).
  void PostMessage(const std::string& job_id, const std::string& message);

  // Why a queued job waits, computed by the last scheduling pass ("" if not queued or not yet
  // scheduled). Authoritative over the stored pending_reason for jobs behind the head of the line.
  std::string PendingReason(const std::string& job_id);

  // Running jobs' run dirs (for Prometheus service discovery).
  std::vector<std::pair<std::string, std::string>> ActiveRunDirs();

  const JobManagerOptions& options() const { return options_; }
  std::string slot_kind_name() const;
  int capacity() const { return capacity_; }

 private:
  struct Queued {
    QueuedJob job;
    std::string pending_reason;  // last recorded reason
  };
  static Queued QueuedOf(const JobRecord& rec) {
    return {{rec.id, rec.ranks, rec.priority, rec.seq}, rec.pending_reason};
  }

  void Run();
  void Tick();
  void Recover();
  void ScheduleQueued();
  void UpdateGauges(bool force);
  void ApplyRetention(double now);

  JobManagerOptions options_;
  JobStore& store_;
  JobJournal journal_;
  Scheduler scheduler_;
  Scheduler view_;  // a copy of scheduler_ after the manager's last tick (under mu_), for DryRun
  Launcher& launcher_;
  metrics::CoordinatorMetrics* metrics_;
  EvalRunner* evals_;
  AttemptMachine attempts_;
  int capacity_ = 0;

  // mu_ guards queue_, live_reasons_, cancel_requests_, cancelled_ and the moves between queue_ and attempts_.
  std::mutex mu_;
  std::condition_variable wake_cv_;         // wakes the manager thread
  std::condition_variable cancel_done_cv_;  // a cancel request was processed
  bool wake_ = false;
  bool stop_ = false;
  std::vector<Queued> queue_;
  std::map<std::string, std::string> live_reasons_;     // queued job id -> current reason
  std::map<std::string, std::string> cancel_requests_;  // job id -> reason
  std::vector<std::string> cancelled_;                  // processed cancel requests
  std::thread thread_;
  double last_gauges_ = 0;
  double last_retention_ = 0;
};

}  // namespace vicreg::server
