// The run-directory contract as seen by the coordinator (docs/ARCHITECTURE.md):
// paths, and tolerant readers of the files the worker and the shims write. Every reader
// returns nullopt / empty for a missing or malformed file (the worker may be mid-write of a
// non-atomic file, or an older worker may not write it); nothing here throws on bad content.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace vicreg::server {

struct RunDir {
  std::string root;  // <state_dir>/runs/<job_id>

  std::string JobYaml() const { return root + "/job.yaml"; }
  std::string Progress() const { return root + "/progress.json"; }
  std::string Result() const { return root + "/result.json"; }
  std::string Logs() const { return root + "/logs"; }
  std::string RankLog(int rank) const { return Logs() + "/rank-" + std::to_string(rank) + ".out"; }
  std::string LauncherLog() const { return Logs() + "/launcher.log"; }
  std::string Endpoints() const { return root + "/endpoints"; }
  std::string Checkpoints() const { return root + "/checkpoints"; }
  std::string Eval() const { return root + "/eval"; }
  std::string Attempt(int n) const { return root + "/attempts/" + std::to_string(n); }
  std::string AttemptStatus(int n) const { return Attempt(n) + "/status.json"; }
  std::string AttemptInfo(int n) const { return Attempt(n) + "/launcher.json"; }
  std::string AttemptRanks(int n) const { return Attempt(n) + "/ranks"; }
};

// progress.json (rank 0, atomically at every logged step).
struct WorkerProgress {
  int64_t step = 0;
  int64_t total_steps = 0;
  int64_t epoch = 0;
  int64_t num_epochs = 0;
  double loss = 0;
  double images_per_s = 0;
  double time = 0;
  double mtime = 0;  // file modification time (unix seconds)
};
std::optional<WorkerProgress> ReadProgress(const RunDir& d);

// result.json (rank 0 at exit).
struct WorkerResult {
  std::string status;  // succeeded | failed
  std::string reason;
  int64_t step = 0;
  int64_t epoch = 0;
};
std::optional<WorkerResult> ReadResult(const RunDir& d);

// Exit records written by vicreg_job_shim (attempts/<n>/status.json and attempts/<n>/ranks/rank-<r>.json).
struct ExitRecord {
  int rank = -1;  // -1 for the launcher's record
  int pid = 0;
  int exit_code = -1;  // -1 if killed by a signal
  int signal = 0;
  double finished = 0;
};
std::optional<ExitRecord> ReadExitRecord(const std::string& path);
std::vector<ExitRecord> ReadRankExits(const RunDir& d, int attempt);  // sorted by finish time

// attempts/<n>/launcher.json: {"pid","start_ticks"} of the supervising shim.
struct LauncherInfo {
  int pid = 0;
  uint64_t start_ticks = 0;
};
std::optional<LauncherInfo> ReadLauncherInfo(const std::string& path);

// endpoints/rank-<r>.json: {"rank","local_rank","pid","host","metrics":"127.0.0.1:PORT"}.
struct RankEndpoint {
  int rank = 0;
  int pid = 0;
  std::string host;
  std::string metrics;  // host:port
  double mtime = 0;
};
std::vector<RankEndpoint> ReadEndpoints(const RunDir& d);

// Epochs of the complete epoch checkpoints present (checkpoints/epoch_XXXX.pt), ascending.
std::vector<int> CheckpointEpochs(const RunDir& d);

// Last max_lines lines of a file (reads at most max_bytes from its end).
std::string TailFile(const std::string& path, int max_lines, int64_t max_bytes = 16384);
double FileMtime(const std::string& path);  // 0 if missing

}  // namespace vicreg::server
