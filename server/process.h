// Process utilities for the launchers and the eval runner: spawning argv arrays (never a shell),
// identifying processes across coordinator restarts (pid + start time from /proc/<pid>/stat),
// signalling whole sessions, running short commands with a timeout.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace vicreg::server {

// Identity of a process that survives pid reuse: start time in clock ticks since boot.
struct ProcessRef {
  int pid = 0;
  uint64_t start_ticks = 0;
};

struct ProcStat {
  int pid = 0;
  char state = '?';  // R S D Z T X ...
  int ppid = 0;
  int pgid = 0;
  int sid = 0;
  uint64_t start_ticks = 0;
  std::string comm;  // executable name, at most 15 characters
};

std::optional<ProcStat> ReadProcStat(int pid);
// Alive: exists, same start time, not a zombie.
bool IsAlive(const ProcessRef& p);
// The pids of every live process whose session id is sid.
std::vector<int> SessionMembers(int sid);
// Sends sig to every process of the session (the launchers' jobs run in their own session).
// Returns the number of processes signalled.
int SignalSession(int sid, int sig);
// The same for the session led by `leader`, unless the leader's pid now belongs to another process
// (same pid, other start time): then nothing is signalled. While any member of a session lives,
// the kernel does not reuse its id, so a session found under a dead leader's pid is still ours.
int SignalSessionOf(const ProcessRef& leader, int sig);

// A graceful stop of what a launcher's session runs, one SIGTERM per program: SIGTERM to every
// program a rank shim (`vicreg_job_shim rank`, a member other than the leader) runs, or, when the
// session has no rank shim (a single program under `vicreg_job_shim supervise`, or mpirun before
// it started the ranks), to every member but the leader; then SIGCONT to every member (a stopped
// rank must see it). The leader, mpirun and the rank shims get no SIGTERM: mpirun answers one
// with SIGTERM to each rank's process group and SIGKILL a second later, and a shim that passed it
// on made a second SIGTERM, which the worker takes as "exit now" (no stop checkpoint). Returns
// the number of processes sent SIGTERM. Nothing is signalled if the leader's pid was reused.
int TerminateSessionPrograms(const ProcessRef& leader);

struct SpawnOptions {
  std::vector<std::string> argv;     // argv[0] is resolved through PATH if it has no '/'
  std::vector<std::string> env_set;  // "KEY=VALUE" added to (or replacing in) the environment
  std::string cwd;                   // "" = inherit
  std::string output_path;           // stdout+stderr appended here ("" = /dev/null)
  bool new_session = true;           // setsid(): own session and process group
};
// fork+exec; returns the child's identity. Throws std::runtime_error naming argv[0] on failure
// (including exec failure, reported through a CLOEXEC pipe).
ProcessRef Spawn(const SpawnOptions& options);

// Non-blocking reap of our own child. nullopt while running; else the wait status.
// Returns a status of -1 if pid is not our child (ECHILD).
std::optional<int> TryReap(int pid);

struct CommandResult {
  int exit_code = -1;  // -1 when killed by a signal or timed out
  bool timed_out = false;
  std::string out;  // stdout
  std::string err;  // stderr
};
// Runs argv to completion (no shell), capturing output; kills it after timeout_s.
CommandResult RunCommand(const std::vector<std::string>& argv, double timeout_s,
                         const std::vector<std::string>& env_set = {});

// "SIGKILL"
std::string SignalName(int sig);
// Absolute path of an executable found in PATH ("" if none).
std::string FindInPath(const std::string& name);
// Directory of the running executable (/proc/self/exe).
std::string SelfExeDir();

// Closes every file descriptor >= first (in a child between fork and exec: async-signal-safe).
// close_range(2) when the kernel has it (use_close_range false forces the fallback, for tests),
// else close() up to the RLIMIT_NOFILE soft limit.
void CloseFdsFrom(int first, bool use_close_range = true);

}  // namespace vicreg::server
