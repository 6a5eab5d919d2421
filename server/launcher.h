// Launchers start one supervised program (all ranks of a training attempt, or one evaluation) and
// report how it goes. One interface, three backends (MakeLauncher):
//   local  `vicreg_job_shim supervise -- mpirun -np R ... vicreg_job_shim rank -- PROGRAM ...` (or
//          `vicreg_job_shim supervise -- PROGRAM ...` for a single process without ranks) in its own
//          session (setsid); argv arrays only, never a shell string.
//   slurm  `sbatch --parsable` of a generated script that runs
//          `vicreg_job_shim supervise -- srun --mpi=pmix vicreg_job_shim rank -- PROGRAM ...`;
//          one `squeue` per refresh for every job of the coordinator, sacct, scancel
//          (docs/OPERATIONS.md "Running against a Slurm cluster").
//   none   starts nothing (benchmarks: jobs stay queued).
// A handle (string) identifies a launched program; it is persisted in the store so that a restarted
// coordinator can poll and stop a program it did not start (not its child any more). Every launch
// also has a name unique to it (the Slurm job name), by which a launcher that supports it finds a
// program whose handle was never recorded. Not thread-safe: used by the job manager's thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "server/scheduler.h"

namespace vicreg::server {

struct LaunchSpec {
  // Unique per launch: "<job id>-a<n>" for a training attempt, "<job id>-eval-e<epoch>-<dataset>-a<k>"
  // for an evaluation. The Slurm launcher submits it as "<job_name_prefix>-<name>".
  std::string name;
  std::vector<std::string> argv;  // the program (vicreg_worker ... | vicreg_eval ...)
  std::string workdir;            // its working directory
  int ranks = 1;                  // processes; > 0
  // Ranks are wrapped by `vicreg_job_shim rank` (own log per rank, exit records) when rank_log_dir is
  // set; otherwise the program runs once, directly under the supervisor (its output in output_path).
  std::string rank_log_dir;     // logs/ (rank-<r>.out)
  std::string rank_status_dir;  // attempts/<n>/ranks (rank-<r>.json)
  int attempt = 0;              // written in each rank log's header line
  // Placement. Local: slots of kind (GPU indices become CUDA_VISIBLE_DEVICES). Cluster: the
  // launcher's own request (Slurm: --ntasks, --nodes, --ntasks-per-node, --cpus-per-task, --gpus-per-task).
  SlotKind kind = SlotKind::kCpu;
  std::vector<int> slots;
  int nodes = 0;           // 0 = the cluster chooses
  int ranks_per_node = 0;  // 0 = the cluster chooses
  int cpus_per_rank = 0;   // 0 = the cluster's default
  bool gpu_per_rank = false;
  // Files of the contract (common/run_contract.h).
  std::string status_path;  // written by `vicreg_job_shim supervise` when the program ended
  std::string info_path;    // its pid and start time, written when it starts
  std::string output_path;  // the supervisor's (mpirun's / srun's / a single program's) output, appended
  std::string script_path;  // Slurm: the generated batch script
};

// A launched program to poll or stop, also one this coordinator did not start (re-adopted).
struct AttemptRef {
  std::string name;         // LaunchSpec::name
  std::string handle;       // from Launch; "" when it was never recorded (then found by name or info_path)
  std::string status_path;  // LaunchSpec::status_path
  std::string info_path;    // LaunchSpec::info_path
};

struct AttemptStatus {
  enum class Phase {
    kQueued,   // waiting in the cluster's queue (queue_state/queue_reason say why)
    kRunning,  // started (the local launcher reports this at once)
    kExited,   // ended: exit_code / signal
    kLost,     // gone without a trace of how it ended (detail says what is missing)
  };
  Phase phase = Phase::kRunning;
  int exit_code = -1;  // of the supervised program (mpirun / srun / vicreg_eval); -1 if unknown or signalled
  int signal = 0;
  std::string detail;        // "slurm state FAILED", "launcher vanished without writing its status", ...
  std::string queue_state;   // kQueued (and kRunning on a cluster): the cluster's state, e.g. PENDING
  std::string queue_reason;  // kQueued: the cluster's reason, e.g. Resources, Priority
  std::string handle;        // set when the launcher found a program whose handle was not recorded
  // The launcher cannot tell now (the cluster's controller does not answer): phase is the last one
  // it knew (kQueued if none); nothing should be concluded from it.
  bool stale = false;
};
const char* AttemptPhaseName(AttemptStatus::Phase p);  // queued | running | exited | lost

// What the job manager may rely on, per backend (policy follows capabilities, never names).
struct LauncherCapabilities {
  // It starts programs at all (false for `none`: benchmarks of the API; jobs stay queued and no
  // evaluation is scheduled).
  bool launches = true;
  // A failed Launch fails the same way when repeated (local: the shim or mpirun cannot be started),
  // so the job is not restarted; false where a launch can fail transiently (sbatch, busy controller).
  bool launch_failures_are_permanent = false;
  // The cluster places the ranks (and queues what does not fit): the coordinator's scheduler only
  // caps how many jobs are submitted, it never holds a job back for lack of its own slots.
  bool places_ranks = false;
};

class Launcher {
 public:
  virtual ~Launcher() = default;
  virtual std::string name() const = 0;  // recorded with each attempt: local | slurm | none
  virtual LauncherCapabilities capabilities() const = 0;
  // Starts the program; returns its handle (may be "" when it was submitted but its id is not known
  // yet: Poll finds it by name). Throws std::runtime_error with the reason when nothing was started.
  virtual std::string Launch(const LaunchSpec& spec) = 0;
  // Called once per manager tick before any Poll: the Slurm launcher runs its one squeue here (at
  // most every poll interval, with backoff while the controller does not answer).
  virtual void Refresh() {}
  virtual AttemptStatus Poll(const AttemptRef& ref) = 0;
  // Stops every process: force=false sends SIGTERM (and SIGCONT, so that stopped ranks see it) /
  // `scancel` (a queued job leaves the queue); force=true SIGKILL. Safe on a program that ended.
  virtual void Stop(const AttemptRef& ref, bool force) = 0;
  // Programs of this launcher whose names say they are older attempts of `name`'s job ("<job id>-a<m>",
  // m < n for name "<job id>-a<n>") and are still queued or running: stopped (a launch that was
  // thought lost but was accepted after all). Returns how many. Cluster launchers only.
  virtual int CancelStrays(const std::string& name) { return 0; }
};

struct LauncherOptions {
  std::string kind = "local";  // local | slurm | none
  std::string shim_binary;     // vicreg_job_shim (absolute path)
  // local
  std::string mpirun = "mpirun";
  std::vector<std::string> mpirun_args;  // extra arguments placed before the program
  // slurm
  std::string sbatch = "sbatch";
  std::string squeue = "squeue";
  std::string scancel = "scancel";
  std::string sacct = "sacct";
  std::string srun = "srun";
  std::string srun_mpi = "pmix";           // srun --mpi=<this>
  std::string partition;                   // sbatch --partition (empty = cluster default)
  std::string account;                     // sbatch --account
  std::vector<std::string> sbatch_args;    // extra sbatch arguments
  std::vector<std::string> srun_args;      // extra srun arguments
  std::string job_name_prefix = "vicreg";  // Slurm job names: <prefix>-<LaunchSpec::name>
  double command_timeout_s = 30;           // for sbatch/squeue/scancel/sacct
  double squeue_interval_s = 5;            // at most one squeue per this interval
  double squeue_max_backoff_s = 120;       // while squeue fails: the interval doubles up to this
};

std::unique_ptr<Launcher> MakeLauncher(const LauncherOptions& options);

// Shell-quotes one argument for a POSIX shell ('...' with ' escaped).
std::string ShellQuote(const std::string& arg);

}  // namespace vicreg::server
