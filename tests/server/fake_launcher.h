// An in-process Launcher for unit tests of the job manager's state machine: nothing is spawned.
// Every Launch creates an attempt in a FakeCluster (shared, so that it outlives a JobManager the
// way real processes outlive a coordinator); the test decides how each attempt goes (exits with a
// code or signal, is lost, ignores SIGTERM) and reads back what the manager asked for (launch specs,
// stops). Poll and Stop behave as the real launchers do: Stop(force=false) ends an attempt as
// SIGTERM would unless it ignores SIGTERM; Stop(force=true) always ends it (SIGKILL).
// Thread-safe (the manager thread polls while the test thread steers).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "server/launcher.h"

namespace vicreg::testutil {

class FakeCluster {
 public:
  struct Attempt {
    server::LaunchSpec spec;
    std::string handle;  // "fake:<n>" (LaunchSpec::name identifies it too)
    server::AttemptStatus status;
    bool ignore_sigterm = false;
    int terms = 0;  // Stop(force=false) calls
    int kills = 0;  // Stop(force=true) calls
    bool handle_hidden = false;
  };

  // Launches that throw (with this message) instead of starting anything; -1 = all of them.
  void FailLaunches(int count, const std::string& message = "no such program: mpirun");
  // New launches wait in the "cluster queue" (phase kQueued with this state and reason) until Run.
  void QueueNewLaunches(const std::string& state = "PENDING", const std::string& reason = "Resources");
  // New launches return no handle (sbatch lost its reply): Poll reports the handle once, by name.
  void HideHandles(bool hide);
  void Run(const std::string& job_id, int attempt = 0);  // a queued attempt starts

  // Steering the attempt `attempt` of `job_id` (the newest one when attempt is 0).
  void Exit(const std::string& job_id, int exit_code, int signal = 0, int attempt = 0);
  void Lose(const std::string& job_id, const std::string& detail, int attempt = 0);
  void IgnoreSigterm(const std::string& job_id, int attempt = 0);

  // What the manager did.
  int launches() const;
  int stops() const;  // Stop calls of any kind
  int launches(const std::string& job_id) const;
  std::optional<Attempt> Latest(const std::string& job_id) const;
  std::vector<Attempt> Attempts(const std::string& job_id) const;
  bool Running(const std::string& job_id) const;  // the newest attempt is still running

  // The launcher side (used by FakeLauncher).
  std::string Launch(const server::LaunchSpec& spec);
  server::AttemptStatus Poll(const server::AttemptRef& ref);
  void Stop(const server::AttemptRef& ref, bool force);

 private:
  Attempt* Find(const std::string& job_id, int attempt);
  Attempt* FindHandle(const std::string& handle);
  Attempt* FindName(const std::string& name);

  mutable std::mutex mu_;
  std::vector<Attempt> attempts_;  // in launch order
  int fail_launches_ = 0;
  std::string fail_message_;
  bool queue_new_ = false;
  std::string queue_state_, queue_reason_;
  bool hide_handles_ = false;
  int stops_ = 0;
};

class FakeLauncher : public server::Launcher {
 public:
  explicit FakeLauncher(std::shared_ptr<FakeCluster> cluster, server::LauncherCapabilities caps = {})
      : cluster_(std::move(cluster)), caps_(caps) {}
  std::string name() const override { return "fake"; }
  server::LauncherCapabilities capabilities() const override { return caps_; }
  std::string Launch(const server::LaunchSpec& spec) override { return cluster_->Launch(spec); }
  server::AttemptStatus Poll(const server::AttemptRef& ref) override { return cluster_->Poll(ref); }
  void Stop(const server::AttemptRef& ref, bool force) override { cluster_->Stop(ref, force); }

 private:
  std::shared_ptr<FakeCluster> cluster_;
  server::LauncherCapabilities caps_;
};

}  // namespace vicreg::testutil
