// Domain model of the coordinator: jobs, attempts, events, evaluation tasks.
// Plain data shared by the store, the scheduler, the job manager and the gRPC service
// (which converts it to/from vicreg.v1 messages). No gRPC, no SQLite here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/run_contract.h"

namespace vicreg::server {

// Values are stored in SQLite and match vicreg.v1.JobState numbers.
enum class JobState : int {
  kUnspecified = 0,
  kQueued = 1,
  kStarting = 2,
  kRunning = 3,
  kRestarting = 4,
  kSucceeded = 5,
  kFailed = 6,
  kCancelled = 7,
};

const char* JobStateName(JobState s);                            // "QUEUED"
std::optional<JobState> ParseJobState(const std::string& name);  // "queued" / "QUEUED" -> kQueued
bool IsTerminal(JobState s);
// Holds slots (placed): STARTING, RUNNING, RESTARTING.
bool IsActive(JobState s);

// Progress of the current attempt: what the worker reports in progress.json (contract::Progress)
// plus the coordinator's rate and ETA.
struct JobProgress : contract::Progress {
  double steps_per_s = 0;
  double eta_seconds = 0;
  double updated_unix = 0;  // when the coordinator last saw the step advance
};

// Why an attempt was started (stored as its name; the metric label of vicreg_job_restarts_total).
enum class RestartReason {
  kNone,                // the first attempt
  kRankExit,            // the previous attempt ended with a failure
  kNoProgress,          // the previous attempt was stopped: no step advance for no_progress_timeout_s
  kLaunchFailure,       // the previous attempt could not be launched
  kCoordinatorRestart,  // the previous attempt was lost while the coordinator was down
};
const char* RestartReasonName(RestartReason r);             // "", "rank_exit", "no_progress", ...
RestartReason ParseRestartReason(const std::string& name);  // kNone for "" or an unknown name

// Where a job's current attempt is, as its launcher reports it (Job.attempt_phase in the proto).
enum class AttemptPhase : int {
  kNone = 0,       // no attempt yet (or between attempts)
  kLaunching = 1,  // recorded, being submitted (sbatch) or spawned
  kQueued = 2,     // waiting in the cluster's queue (Slurm PENDING: queue_state, queue_reason)
  kRunning = 3,    // started
  kEnded = 4,      // exited or lost
};
const char* AttemptPhaseLabel(AttemptPhase p);  // "none", "launching", "queued", "running", "ended"

struct JobRecord {
  std::string id;   // "job-000042"
  int64_t seq = 0;  // submission order (SQLite rowid)
  std::string name;
  JobState state = JobState::kQueued;
  int priority = 0;
  int ranks = 1;
  std::string device = "cpu";
  int attempt = 0;  // last attempt number (0 = never launched)
  int restarts = 0;
  int max_restarts = 0;
  double created_unix = 0;
  double started_unix = 0;
  double finished_unix = 0;
  std::string pending_reason;
  std::string last_error;
  std::string result_reason;
  JobProgress progress;
  std::string run_dir;
  std::string placement;  // "cpu:0,1" / "gpu:2,3" / ""
  std::string client_request_id;
  std::string spec_yaml;  // resolved YAML (config::ToYaml)
  std::string spec_hash;  // of the submitted text + overrides (idempotency check)
  int64_t last_sequence = 0;
  // The current attempt as the launcher reports it (a wait in the cluster's queue shows here).
  AttemptPhase attempt_phase = AttemptPhase::kNone;
  std::string queue_state;       // e.g. PENDING
  std::string queue_reason;      // e.g. Resources
  double queued_since_unix = 0;  // when the current wait in the cluster's queue began (0 = not waiting)
};

// One launch of all ranks of a job.
struct AttemptRecord {
  std::string job_id;
  int number = 0;
  std::string placement;
  std::string launcher;  // local | slurm | none
  std::string handle;    // launcher-specific, e.g. "local:pid=1234,start=5678" / "slurm:57"
  double started_unix = 0;
  double ended_unix = 0;
  int exit_code = -1;
  std::string cause;
  RestartReason restart_reason = RestartReason::kNone;
  int64_t start_step = 0;
  AttemptPhase phase = AttemptPhase::kLaunching;
  std::string queue_state;  // the cluster's last state/reason while it waited or ran (PENDING / Resources)
  std::string queue_reason;
  double queued_unix = 0;   // first seen waiting in the cluster's queue (0 = never waited)
  double running_unix = 0;  // first seen running (the no-progress clock starts here)
};

enum class EventKind : int { kUnspecified = 0, kState = 1, kProgress = 2, kMessage = 3 };

struct EventRecord {
  int64_t sequence = 0;
  std::string job_id;
  double time_unix = 0;
  EventKind kind = EventKind::kMessage;
  JobState state = JobState::kUnspecified;
  std::string message;
  JobProgress progress;
  int attempt = 0;
};

enum class EvalState : int { kUnspecified = 0, kPending = 1, kRunning = 2, kSucceeded = 3, kFailed = 4 };
const char* EvalStateName(EvalState s);

struct EvalRowRecord {
  int epoch = 0;
  std::string dataset;
  std::string probe;  // linear | knn
  std::string model;  // vicreg | random_init | raw_pixels
  double top1 = 0;    // ratio
  double top5 = 0;
};

struct EvalTaskRecord {
  std::string job_id;
  int epoch = 0;
  std::string dataset;
  std::string data_dir;
  EvalState state = EvalState::kPending;
  int attempts = 0;
  std::string error;
  double updated_unix = 0;
  double next_try_unix = 0;  // retry backoff
  std::string output_path;   // <run_dir>/eval/epoch_<E>_<dataset>.json (renamed from the attempt's own file)
  std::vector<EvalRowRecord> rows;
  // The current attempt (RUNNING): how to find it again after a coordinator restart.
  std::string launcher;     // local | slurm
  std::string handle;       // "" while being launched or when the launcher never told
  double started_unix = 0;  // when it was launched
  double running_unix = 0;  // when the launcher first reported it running (timeout_s counts from here)
};

double NowUnix();

}  // namespace vicreg::server
