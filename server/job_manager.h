// The job manager owns every job's lifecycle:
//   QUEUED -> STARTING -> RUNNING -> SUCCEEDED | FAILED | CANCELLED, RESTARTING between attempts.
// One manager thread ("tick", every poll_interval_s or when woken) places queued jobs (Scheduler),
// launches attempts (Launcher), follows progress (<run_dir>/progress.json), detects ended
// attempts (rank exit, launcher exit) and stalls (no step advance for no_progress_timeout_s),
// stops and restarts attempts, reaps cancelled ones and drives the EvalRunner.
// gRPC threads call Submit/Cancel/WaitForEvents; every state change goes to the store (with an
// event) before it is visible, so a coordinator restart (Start -> Recover) loses nothing.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "server/eval_runner.h"
#include "server/job.h"
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
  int max_ranks_per_job = 64;
  size_t max_spec_bytes = 256 * 1024;  // job YAML text
  bool launch_enabled = true;          // false with --launcher none (benchmarks)
};

class JobManager {
 public:
  JobManager(JobManagerOptions options, JobStore& store, Scheduler scheduler, std::unique_ptr<Launcher> launcher,
             metrics::CoordinatorMetrics* metrics, EvalRunner* evals);
  ~JobManager();
  JobManager(const JobManager&) = delete;
  JobManager& operator=(const JobManager&) = delete;

  // Reloads the store (queued jobs stay queued, running ones are re-adopted or restarted) and
  // starts the manager thread.
  void Start();
  // Stops the manager thread. Running attempts keep running; the next Start re-adopts them.
  void Stop();

  struct SubmitRequest {
    std::string yaml;
    std::string client_request_id;
    std::vector<std::string> overrides;
  };
  struct SubmitResult {
    JobRecord job;
    bool duplicate = false;
  };
  // Throws ServiceError (kInvalidArgument with field violations, kFailedPrecondition,
  // kResourceExhausted, kAlreadyExists).
  SubmitResult Submit(const SubmitRequest& request);
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
  struct ActiveJob;
  struct Stopping;

  void Run();
  void Tick();
  void Recover();
  void ScheduleQueued();
  void LaunchAttempt(ActiveJob& job, const std::string& restart_reason);
  void PollRunning(ActiveJob& job, double now);
  void UpdateProgress(ActiveJob& job, double now);
  void EndAttempt(ActiveJob& job, const AttemptStatus& status, const std::string& forced_cause,
                  const std::string& restart_reason_if_any);
  void CancelActive(ActiveJob& job, const std::string& reason);
  void Finish(ActiveJob& job, JobState state, const std::string& message);
  void ReapStopping(double now);
  void UpdateGauges(bool force);
  std::string DescribeFailure(const ActiveJob& job, const AttemptStatus& status);
  int64_t WriteJob(JobRecord& rec, EventKind kind, const std::string& message);
  void Notify(const std::string& job_id, int64_t sequence);

  JobManagerOptions options_;
  JobStore& store_;
  Scheduler scheduler_;
  std::unique_ptr<Launcher> launcher_;
  metrics::CoordinatorMetrics* metrics_;
  EvalRunner* evals_;
  int capacity_ = 0;

  // mu_ guards queue_, live_reasons_, the structure of active_, cancel_requests_ and cancelled_.
  std::mutex mu_;
  std::condition_variable wake_cv_;         // wakes the manager thread
  std::condition_variable cancel_done_cv_;  // a cancel request was processed
  bool wake_ = false;
  bool stop_ = false;
  struct Queued {
    QueuedJob job;
    std::string pending_reason;  // last recorded reason
  };
  std::vector<Queued> queue_;
  std::map<std::string, std::string> live_reasons_;           // queued job id -> current reason
  std::map<std::string, std::unique_ptr<ActiveJob>> active_;  // contents: manager thread only
  std::map<std::string, std::string> cancel_requests_;        // job id -> reason
  std::vector<std::string> cancelled_;                        // processed cancel requests
  std::thread thread_;

  std::vector<std::unique_ptr<Stopping>> stopping_;  // manager thread only
  double last_gauges_ = 0;

  // Event notification for WatchJob.
  std::mutex events_mu_;
  std::condition_variable events_cv_;
  std::map<std::string, int64_t> last_event_;
};

// Stable 64-bit FNV-1a of the submitted text and overrides (idempotency check), hex.
std::string SpecHash(const std::string& yaml, const std::vector<std::string>& overrides);
// [A-Za-z0-9._:-]{1,128}
bool ValidClientRequestId(const std::string& id);
// "job-000042"
bool ValidJobId(const std::string& id);

}  // namespace vicreg::server
