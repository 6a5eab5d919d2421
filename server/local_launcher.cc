// Local launcher: one supervised process tree per launch, in its own session, under vicreg_job_shim.
//
//   vicreg_job_shim supervise --status <status> --info <info> --
//     mpirun -np R [--allow-run-as-root] [--oversubscribe] --bind-to none [-x CUDA_VISIBLE_DEVICES=2,3]
//            [extra mpirun args] --
//       vicreg_job_shim rank --log-dir <run>/logs --status-dir <run>/attempts/<n>/ranks --attempt <n> --
//         vicreg_worker --job <run>/attempts/<n>/job.yaml --run-dir <run> --resume auto --job-id <id>
//
// A single program without ranks (LaunchSpec::rank_log_dir empty, e.g. vicreg_eval) runs directly
// under the supervisor: `vicreg_job_shim supervise --status S --info I -- vicreg_eval ...`.
// stdout/stderr: the supervised program's output goes to LaunchSpec::output_path (mpirun's:
// <run>/logs/launcher.log); rank r's to <run>/logs/rank-<r>.out (appended across attempts, with a
// header line per attempt); each launch first appends a banner to output_path,
// "=== vicreg: <name> (local) on <host>, <UTC time> ===", as the Slurm launcher's batch script does.
// Nothing waits in a queue here: an attempt runs as soon as it is launched.
// Handle: "local:<pid>:<start_ticks>" of the supervising shim (the session leader).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ctime>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "common/fs.h"
#include "common/run_contract.h"
#include "server/launcher.h"
#include "server/process.h"

namespace vicreg::server {
namespace {

void MakeParentDir(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) fs::MakeDirs(path.substr(0, slash));
}

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
    for (const std::string* p : {&spec.status_path, &spec.info_path, &spec.output_path}) MakeParentDir(*p);
    std::vector<std::string> argv = {options_.shim_binary, "supervise", "--status", spec.status_path, "--info",
                                     spec.info_path,       "--"};
    std::vector<std::string> env;
    if (spec.kind == SlotKind::kGpu && !spec.slots.empty()) {
      env.push_back("CUDA_VISIBLE_DEVICES=" + Scheduler::JoinSlots(spec.slots));
    }
    if (!spec.rank_log_dir.empty()) {
      fs::MakeDirs(spec.rank_log_dir);
      fs::MakeDirs(spec.rank_status_dir);
      argv.insert(argv.end(), {options_.mpirun, "-np", std::to_string(spec.ranks)});
      if (geteuid() == 0) argv.push_back("--allow-run-as-root");
      if (spec.kind == SlotKind::kCpu) argv.push_back("--oversubscribe");
      // Several jobs share the machine: never pin ranks to the same cores.
      argv.insert(argv.end(), {"--bind-to", "none"});
      if (!env.empty()) argv.insert(argv.end(), {"-x", env.front()});
      argv.insert(argv.end(), options_.mpirun_args.begin(), options_.mpirun_args.end());
      argv.insert(argv.end(), {options_.shim_binary, "rank", "--log-dir", spec.rank_log_dir, "--status-dir",
                               spec.rank_status_dir, "--attempt", std::to_string(spec.attempt), "--"});
    }
    argv.insert(argv.end(), spec.argv.begin(), spec.argv.end());

    if (!spec.output_path.empty()) {
      char host[256] = {0};
      gethostname(host, sizeof host - 1);
      char when[32] = {0};
      const time_t t = time(nullptr);
      struct tm tm_utc;
      gmtime_r(&t, &tm_utc);
      strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm_utc);
      std::ofstream(spec.output_path, std::ios::app)
          << "=== vicreg: " << spec.name << " (local) on " << host << ", " << when << " ===\n";
    }
    SpawnOptions so;
    so.argv = argv;
    so.env_set = env;
    so.cwd = spec.workdir;
    so.output_path = spec.output_path;
    so.new_session = true;
    ProcessRef p = Spawn(so);
    return "local:" + std::to_string(p.pid) + ":" + std::to_string(p.start_ticks);
  }

  AttemptStatus Poll(const AttemptRef& ref) override {
    AttemptStatus s;
    ProcessRef p;
    if (!ParseHandle(ref.handle, &p)) {
      // The coordinator died between launching and recording the handle: the shim's own record.
      auto info = contract::ReadLauncherInfo(ref.info_path);
      if (!info) {
        s.phase = AttemptStatus::Phase::kLost;
        s.detail = "no launcher handle recorded and no " + ref.info_path;
        return s;
      }
      p.pid = info->pid;
      p.start_ticks = info->start_ticks;
      s.handle = "local:" + std::to_string(p.pid) + ":" + std::to_string(p.start_ticks);
    }
    std::optional<int> reaped = TryReap(p.pid);
    if (!reaped) {
      return s;  // our child, still running
    }
    if (*reaped == -1 && IsAlive(p)) {
      return s;  // not our child (adopted after a coordinator restart), alive
    }
    // Ended: the shim's status file has the supervised program's exit status.
    if (auto rec = contract::ReadExitRecord(ref.status_path)) {
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
      s.detail = "the launcher (vicreg_job_shim) ended without writing " + ref.status_path;
      return s;
    }
    s.phase = AttemptStatus::Phase::kLost;
    s.detail = "launcher process " + std::to_string(p.pid) + " is gone and wrote no " + ref.status_path;
    return s;
  }

  void Stop(const AttemptRef& ref, bool force) override {
    ProcessRef p;
    if (!ParseHandle(ref.handle, &p)) {
      auto info = contract::ReadLauncherInfo(ref.info_path);
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
