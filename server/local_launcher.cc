// Local launcher: one mpirun per attempt, in its own session, under vicreg_job_shim.
//
//   vicreg_job_shim supervise --status <run>/attempts/<n>/status.json --info <run>/attempts/<n>/launcher.json --
//     mpirun -np R [--allow-run-as-root] [--oversubscribe] --bind-to none [-x CUDA_VISIBLE_DEVICES=2,3]
//            [extra mpirun args] --
//       vicreg_job_shim rank --log-dir <run>/logs --status-dir <run>/attempts/<n>/ranks --attempt <n> --
//         vicreg_worker --job <run>/job.yaml --run-dir <run> --resume auto --job-id <id>
//
// stdout/stderr: the launcher's (mpirun's) output goes to <run>/logs/launcher.log; rank r's to
// <run>/logs/rank-<r>.out (appended across attempts, with a header line per attempt).
// Handle: "local:<pid>:<start_ticks>" of the supervising shim (the session leader).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sstream>
#include <stdexcept>

#include "common/fs.h"
#include "common/run_contract.h"
#include "server/launcher.h"
#include "server/process.h"

namespace vicreg::server {
namespace {

bool ParseHandle(const std::string& handle, ProcessRef* out) {
  if (handle.rfind("local:", 0) != 0) return false;
  std::istringstream ss(handle.substr(6));
  char colon = 0;
  ss >> out->pid >> colon >> out->start_ticks;
  return ss && colon == ':' && out->pid > 0;
}

class LocalLauncher : public Launcher {
 public:
  explicit LocalLauncher(LauncherOptions options) : options_(std::move(options)) {}
  std::string name() const override { return "local"; }
  LauncherCapabilities capabilities() const override {
    LauncherCapabilities c;
    c.launch_failures_are_permanent = true;  // a local spawn that failed fails again
    return c;
  }

  std::string Launch(const LaunchSpec& spec) override {
    const contract::RunPaths& d = spec.run;
    fs::MakeDirs(d.logs_dir());
    fs::MakeDirs(d.attempt_ranks_dir(spec.attempt));
    std::vector<std::string> argv = {options_.shim_binary,
                                     "supervise",
                                     "--status",
                                     d.attempt_status(spec.attempt),
                                     "--info",
                                     d.attempt_launcher_info(spec.attempt),
                                     "--",
                                     options_.mpirun,
                                     "-np",
                                     std::to_string(spec.ranks)};
    if (geteuid() == 0) argv.push_back("--allow-run-as-root");
    if (spec.kind == SlotKind::kCpu) argv.push_back("--oversubscribe");
    // Several jobs share the machine: never pin ranks to the same cores.
    argv.insert(argv.end(), {"--bind-to", "none"});
    std::vector<std::string> env;
    if (spec.kind == SlotKind::kGpu) {
      std::string devices = "CUDA_VISIBLE_DEVICES=" + Scheduler::JoinSlots(spec.slots);
      argv.insert(argv.end(), {"-x", devices});
      env.push_back(devices);
    }
    argv.insert(argv.end(), options_.mpirun_args.begin(), options_.mpirun_args.end());
    argv.insert(argv.end(), {options_.shim_binary, "rank", "--log-dir", d.logs_dir(), "--status-dir",
                             d.attempt_ranks_dir(spec.attempt), "--attempt", std::to_string(spec.attempt), "--"});
    argv.insert(argv.end(), spec.worker_argv.begin(), spec.worker_argv.end());

    SpawnOptions so;
    so.argv = argv;
    so.env_set = env;
    so.cwd = spec.workdir;
    so.output_path = d.launcher_log();
    so.new_session = true;
    ProcessRef p = Spawn(so);
    return "local:" + std::to_string(p.pid) + ":" + std::to_string(p.start_ticks);
  }

  AttemptStatus Poll(const AttemptRef& a) override {
    AttemptStatus s;
    const std::string status_path = a.run.attempt_status(a.attempt);
    ProcessRef p;
    if (!ParseHandle(a.handle, &p)) {
      // The coordinator died between launching and recording the handle: the shim's own record.
      auto info = contract::ReadLauncherInfo(a.run.attempt_launcher_info(a.attempt));
      if (!info) {
        s.phase = AttemptStatus::Phase::kLost;
        s.detail = "no launcher handle recorded and no " + a.run.attempt_launcher_info(a.attempt);
        return s;
      }
      p.pid = info->pid;
      p.start_ticks = info->start_ticks;
    }
    std::optional<int> reaped = TryReap(p.pid);
    if (!reaped) {
      return s;  // our child, still running
    }
    if (*reaped == -1 && IsAlive(p)) {
      return s;  // not our child (adopted after a coordinator restart), alive
    }
    // Ended: the shim's status file has mpirun's exit status.
    if (auto rec = contract::ReadExitRecord(status_path)) {
      s.phase = AttemptStatus::Phase::kExited;
      s.exit_code = rec->exit_code;
      s.signal = rec->signal;
      return s;
    }
    if (*reaped != -1) {
      // Our child ended without writing a status (killed): its own wait status.
      s.phase = AttemptStatus::Phase::kExited;
      if (WIFEXITED(*reaped)) s.exit_code = WEXITSTATUS(*reaped);
      if (WIFSIGNALED(*reaped)) s.signal = WTERMSIG(*reaped);
      s.detail = "the launcher (vicreg_job_shim) ended without writing " + status_path;
      return s;
    }
    s.phase = AttemptStatus::Phase::kLost;
    s.detail = "launcher process " + std::to_string(p.pid) + " is gone and wrote no " + status_path;
    return s;
  }

  void Stop(const AttemptRef& a, bool force) override {
    ProcessRef p;
    if (!ParseHandle(a.handle, &p)) {
      auto info = contract::ReadLauncherInfo(a.run.attempt_launcher_info(a.attempt));
      if (!info) return;
      p.pid = info->pid;
      p.start_ticks = info->start_ticks;
    }
    // The shim is the session leader: its pid is the session id of mpirun and every rank
    // (mpirun gives each rank its own process group, so a process-group kill would miss them).
    // A graceful stop sends one SIGTERM to each worker only (process.h: TerminateSessionPrograms).
    if (force) {
      SignalSessionOf(p, SIGKILL);
    } else {
      TerminateSessionPrograms(p);
    }
  }

 private:
  LauncherOptions options_;
};

}  // namespace

std::unique_ptr<Launcher> MakeLocalLauncher(const LauncherOptions& options) {
  return std::make_unique<LocalLauncher>(options);
}

}  // namespace vicreg::server
