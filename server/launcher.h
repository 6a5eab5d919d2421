// Launchers start all ranks of one attempt of a job and report how it ended. One interface,
// three backends (MakeLauncher):
//   local  `vicreg_job_shim supervise -- mpirun -np R ... vicreg_job_shim rank -- vicreg_worker ...`
//          in its own session (setsid); argv arrays only, never a shell string.
//   slurm  `sbatch --parsable` of a generated script that runs
//          `vicreg_job_shim supervise -- srun --mpi=pmix vicreg_job_shim rank -- vicreg_worker ...`;
//          squeue/sacct polling, scancel.
//   none   starts nothing (benchmarks: jobs stay queued).
// A handle (string) identifies a running attempt; it is persisted in the store so that a restarted
// coordinator can poll and stop an attempt it did not start (not its child any more).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/run_contract.h"
#include "server/scheduler.h"

namespace vicreg::server {

struct LaunchSpec {
  std::string job_id;
  int attempt = 1;
  contract::RunPaths run;
  int ranks = 1;
  SlotKind kind = SlotKind::kCpu;
  std::vector<int> slots;                // placement (GPU indices for kGpu)
  std::vector<std::string> worker_argv;  // vicreg_worker --job ... --run-dir ... --resume auto --job-id ...
  std::string workdir;                   // working directory of the ranks
};

// An attempt to poll or stop, also one this coordinator did not start (re-adopted after a restart).
struct AttemptRef {
  std::string job_id;
  int attempt = 0;
  contract::RunPaths run;
  std::string handle;  // from Launch; "" when the coordinator died before recording it
};

struct AttemptStatus {
  enum class Phase { kRunning, kExited, kLost };
  Phase phase = Phase::kRunning;
  int exit_code = -1;  // of the launcher (mpirun / the Slurm job); -1 if unknown or signalled
  int signal = 0;
  std::string detail;  // "slurm state FAILED", "launcher vanished without writing its status", ...
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
  std::string srun_mpi = "pmix";         // srun --mpi=<this>
  std::string partition;                 // sbatch --partition (empty = cluster default)
  std::string account;                   // sbatch --account
  std::vector<std::string> sbatch_args;  // extra sbatch arguments
  std::vector<std::string> srun_args;    // extra srun arguments
  double command_timeout_s = 30;         // for sbatch/squeue/scancel/sacct
};

// What the job manager may rely on, per backend (policy follows capabilities, never names).
struct LauncherCapabilities {
  // A failed Launch fails the same way when repeated (local: the shim or mpirun cannot be started),
  // so the job is not restarted; false where a launch can fail transiently (sbatch, busy controller).
  bool launch_failures_are_permanent = false;
};

class Launcher {
 public:
  virtual ~Launcher() = default;
  virtual std::string name() const = 0;  // recorded with each attempt: local | slurm | none
  virtual LauncherCapabilities capabilities() const = 0;
  // Starts the attempt; returns its handle. Throws std::runtime_error with the reason.
  virtual std::string Launch(const LaunchSpec& spec) = 0;
  virtual AttemptStatus Poll(const AttemptRef& attempt) = 0;
  // Stops every process of the attempt: force=false sends SIGTERM (and SIGCONT, so that stopped
  // ranks see it), force=true SIGKILL. Safe to call on an attempt that already ended.
  virtual void Stop(const AttemptRef& attempt, bool force) = 0;
};

std::unique_ptr<Launcher> MakeLauncher(const LauncherOptions& options);

// Shell-quotes one argument for a POSIX shell ('...' with ' escaped).
std::string ShellQuote(const std::string& arg);

}  // namespace vicreg::server
