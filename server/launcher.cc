#include "server/launcher.h"

#include <stdexcept>

namespace vicreg::server {

std::unique_ptr<Launcher> MakeLocalLauncher(const LauncherOptions& options);
std::unique_ptr<Launcher> MakeSlurmLauncher(const LauncherOptions& options);

namespace {

// Starts nothing: for benchmarks of the API and the store (jobs stay QUEUED).
class NoneLauncher : public Launcher {
 public:
  std::string name() const override { return "none"; }
  LauncherCapabilities capabilities() const override {
    LauncherCapabilities c;
    c.launches = false;
    return c;
  }
  std::string Launch(const LaunchSpec&) override {
    throw std::runtime_error("the coordinator runs with --launcher none: jobs are never started");
  }
  AttemptStatus Poll(const AttemptRef&) override {
    AttemptStatus s;
    s.phase = AttemptStatus::Phase::kLost;
    s.detail = "launcher none";
    return s;
  }
  void Stop(const AttemptRef&, bool) override {}
};

}  // namespace

const char* AttemptPhaseName(AttemptStatus::Phase p) {
  switch (p) {
    case AttemptStatus::Phase::kQueued: return "queued";
    case AttemptStatus::Phase::kRunning: return "running";
    case AttemptStatus::Phase::kExited: return "exited";
    case AttemptStatus::Phase::kLost: return "lost";
  }
  return "unknown";
}

std::unique_ptr<Launcher> MakeLauncher(const LauncherOptions& options) {
  if (options.kind == "local") return MakeLocalLauncher(options);
  if (options.kind == "slurm") return MakeSlurmLauncher(options);
  if (options.kind == "none") return std::make_unique<NoneLauncher>();
  throw std::invalid_argument("launcher: unknown kind '" + options.kind + "' (valid: local, slurm, none)");
}

std::string ShellQuote(const std::string& arg) {
  std::string out = "'";
  for (char c : arg) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  out += "'";
  return out;
}

}  // namespace vicreg::server
