// The contract between the processes of a run: vicreg_worker (and vicreg_eval), vicreg_job_shim and
// vicreg_coordinator. One definition, used by every side (docs/ARCHITECTURE.md "Contracts between
// processes"): the run directory layout, the JSON files with their writer and their reader, the
// result status values and the process exit codes. No torch, no gRPC, no third-party header: the
// libc-only vicreg_job_shim includes it for the records it writes (the inline formatters below).
//
// One writer per file:
//   <run>/job.yaml                        worker rank 0: the resolved config it runs
//   <run>/progress.json                   worker rank 0, atomically at every logged step
//   <run>/result.json                     worker rank 0, atomically at exit
//   <run>/metrics.jsonl, checkpoints/     worker rank 0 (worker/train/run_dir.h, checkpoint.h)
//   <run>/logs/rank-<r>.log               worker, every rank (its own log)
//   <run>/endpoints/rank-<r>.json         worker, every rank, atomically at start
//   <run>/logs/rank-<r>.out               vicreg_job_shim rank: the rank's stdout+stderr
//   <run>/logs/launcher.log               the launcher (mpirun / sbatch --output)
//   <run>/attempts/<n>/job.yaml           coordinator, before attempt n (the worker's --job)
//   <run>/attempts/<n>/status.json        vicreg_job_shim supervise: exit of mpirun / srun
//   <run>/attempts/<n>/launcher.json      vicreg_job_shim supervise: its own pid + start time
//   <run>/attempts/<n>/ranks/rank-<r>.json  vicreg_job_shim rank: exit of rank r
//   <run>/attempts/<n>/result.json        coordinator: result.json of attempt n, moved aside before n+1
//   <run>/attempts/<n>/job.sbatch         coordinator (Slurm launcher)
//   <run>/eval/epoch_<E>_<ds>.json        coordinator's eval runner: attempt k's out.json, renamed on success
//   <run>/eval/epoch_<E>_<ds>.log         the evaluation's output, appended across attempts
//   <run>/eval/attempts/epoch_<E>_<ds>/<k>/{out.json,status.json,launcher.json,job.sbatch}
//                                         vicreg_eval (out.json), vicreg_job_shim, coordinator (Slurm script)
//
// Readers are tolerant: a missing or malformed file (a writer mid-way through a non-atomic write,
// an older writer) reads as nullopt / empty; nothing here throws on bad content. Writers are atomic
// (fs::AtomicWriteFile) and throw RuntimeFailure naming the file.
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

// Exit codes of every vicreg binary (defined next to the error types that map to them; the
// coordinator reads the worker's through the shim's exit records):
//   kExitOk 0, kExitFailure 1 (runtime failure, or stopped by a signal), kExitUsage 2 (invalid
//   input: flags, config, dataset files, checkpoint; it fails the same way again).
#include "common/errors.h"

namespace vicreg {

// vicreg_job_shim: the program it was asked to run could not be executed (as a shell's 127).
constexpr int kExitCannotExecute = 127;

}  // namespace vicreg

namespace vicreg::contract {

// A rank or program that exited with this code rejected its input: restarting cannot help.
constexpr bool IsInvalidInputExit(int exit_code) { return exit_code == kExitUsage; }

// ---- paths ------------------------------------------------------------------------------------

// Written by vicreg_job_shim rank (which knows only the directories it is given).
inline std::string RankExitPath(const std::string& ranks_dir, int rank) {
  return ranks_dir + "/rank-" + std::to_string(rank) + ".json";
}
inline std::string RankOutputPath(const std::string& logs_dir, int rank) {
  return logs_dir + "/rank-" + std::to_string(rank) + ".out";
}

class RunPaths {
 public:
  RunPaths() = default;
  explicit RunPaths(std::string root);  // trailing '/' removed

  const std::string& root() const { return root_; }
  std::string job_yaml() const { return root_ + "/job.yaml"; }
  std::string progress_json() const { return root_ + "/progress.json"; }
  std::string result_json() const { return root_ + "/result.json"; }
  std::string metrics_jsonl() const { return root_ + "/metrics.jsonl"; }
  std::string checkpoints_dir() const { return root_ + "/checkpoints"; }
  std::string eval_dir() const { return root_ + "/eval"; }
  std::string rendezvous_dir() const { return root_ + "/.rendezvous"; }
  std::string logs_dir() const { return root_ + "/logs"; }
  std::string worker_log(int rank) const { return logs_dir() + "/rank-" + std::to_string(rank) + ".log"; }
  std::string rank_output(int rank) const { return RankOutputPath(logs_dir(), rank); }
  std::string launcher_log() const { return logs_dir() + "/launcher.log"; }
  std::string endpoints_dir() const { return root_ + "/endpoints"; }
  std::string endpoint_json(int rank) const { return endpoints_dir() + "/rank-" + std::to_string(rank) + ".json"; }
  std::string attempt_dir(int n) const { return root_ + "/attempts/" + std::to_string(n); }
  std::string attempt_job_yaml(int n) const { return attempt_dir(n) + "/job.yaml"; }
  std::string attempt_status(int n) const { return attempt_dir(n) + "/status.json"; }
  std::string attempt_launcher_info(int n) const { return attempt_dir(n) + "/launcher.json"; }
  std::string attempt_ranks_dir(int n) const { return attempt_dir(n) + "/ranks"; }
  std::string attempt_rank_exit(int n, int rank) const { return RankExitPath(attempt_ranks_dir(n), rank); }
  std::string attempt_result(int n) const { return attempt_dir(n) + "/result.json"; }
  std::string attempt_sbatch(int n) const { return attempt_dir(n) + "/job.sbatch"; }
  // Scheduled evaluations (the coordinator's eval runner and vicreg_eval): the result of epoch E on a
  // dataset, its log (appended across attempts) and attempt k's own files (out.json, status.json,
  // launcher.json, job.sbatch).
  std::string eval_result(int epoch, const std::string& dataset) const {
    return eval_dir() + "/epoch_" + std::to_string(epoch) + "_" + dataset + ".json";
  }
  std::string eval_log(int epoch, const std::string& dataset) const {
    return eval_dir() + "/epoch_" + std::to_string(epoch) + "_" + dataset + ".log";
  }
  std::string eval_attempt_dir(int epoch, const std::string& dataset, int k) const {
    return eval_dir() + "/attempts/epoch_" + std::to_string(epoch) + "_" + dataset + "/" + std::to_string(k);
  }

 private:
  std::string root_;
};

// ---- result.json ------------------------------------------------------------------------------

enum class RunStatus { kUnknown, kSucceeded, kFailed };
const char* RunStatusName(RunStatus s);           // "succeeded" | "failed" | "unknown"
RunStatus ParseRunStatus(std::string_view text);  // kUnknown for anything else

// {"status","reason","step","epoch","checkpoint","wall_s","time"}
struct RunResult {
  RunStatus status = RunStatus::kUnknown;
  std::string reason;  // "" on success; "terminated by SIGTERM", "non-finite loss ...", the error text
  int64_t step = 0;
  int64_t epoch = 0;
  std::string checkpoint;  // last checkpoint written or resumed from ("" if none)
  double wall_s = 0;
};
void WriteResult(const RunPaths& run, const RunResult& r);
std::optional<RunResult> ReadResult(const std::string& path);
inline std::optional<RunResult> ReadResult(const RunPaths& run) { return ReadResult(run.result_json()); }

// ---- progress.json ----------------------------------------------------------------------------

// {"step","total_steps","epoch","num_epochs","loss","images_per_s","time"}
struct Progress {
  int64_t step = 0;         // global optimizer steps done
  int64_t total_steps = 0;  // steps this run will do (num_epochs * batches_per_epoch or max_steps)
  int64_t epoch = 0;        // current epoch (1-based)
  int64_t num_epochs = 0;
  double loss = 0;
  double images_per_s = 0;
};
void WriteProgress(const RunPaths& run, const Progress& p);  // "time" = now
struct ProgressSnapshot {
  Progress progress;
  double time = 0;   // "time" written by the worker (unix seconds)
  double mtime = 0;  // the file's modification time (unix seconds)
};
std::optional<ProgressSnapshot> ReadProgress(const RunPaths& run);

// ---- endpoints/rank-<r>.json ------------------------------------------------------------------

// {"rank","local_rank","pid","host","metrics":"127.0.0.1:PORT"|null}
struct Endpoint {
  int rank = 0;
  int local_rank = 0;
  int64_t pid = 0;
  std::string host;
  std::string metrics;  // "host:port", "" when the endpoint is disabled (written as null)
  double mtime = 0;     // set by the reader
};
void WriteEndpoint(const RunPaths& run, const Endpoint& e);
std::vector<Endpoint> ReadEndpoints(const RunPaths& run);  // sorted by rank

// ---- job.yaml ---------------------------------------------------------------------------------

void WriteJobYaml(const std::string& path, const std::string& yaml);  // atomic

// ---- checkpoints/epoch_XXXX.pt ----------------------------------------------------------------

// Epochs of the complete epoch checkpoints present, ascending (temporaries have another suffix).
std::vector<int> CheckpointEpochs(const RunPaths& run);

// ---- logs -------------------------------------------------------------------------------------

// The last max_lines lines of a log (logs/rank-<r>.out, launcher.log, an eval log), reading at most
// max_bytes from its end (a line cut by that window is dropped); "" if the file is missing.
std::string TailLines(const std::string& path, int max_lines, int64_t max_bytes = 16384);

// ---- vicreg_job_shim records ------------------------------------------------------------------

// attempts/<n>/status.json {"pid","exit_code","signal","finished"} (supervise) and
// attempts/<n>/ranks/rank-<r>.json {"rank","pid","exit_code","signal","finished"} (rank).
struct ExitRecord {
  int rank = -1;  // -1 for the supervising shim's record
  int pid = 0;
  int exit_code = -1;  // -1 if killed by a signal
  int signal = 0;
  double finished = 0;
};
std::optional<ExitRecord> ReadExitRecord(const std::string& path);
std::vector<ExitRecord> ReadRankExits(const RunPaths& run, int attempt);  // sorted by finish time, then rank

// attempts/<n>/launcher.json {"pid","start_ticks"} of the supervising shim (written at its start).
struct LauncherInfo {
  int pid = 0;
  uint64_t start_ticks = 0;  // /proc/<pid>/stat field 22: tells a reused pid apart
};
std::optional<LauncherInfo> ReadLauncherInfo(const std::string& path);

// The shim's writers format with these (snprintf only: the shim has no other dependency).
inline std::string FormatExitRecord(const ExitRecord& r) {
  char buf[256];
  if (r.rank >= 0) {
    std::snprintf(buf, sizeof(buf), "{\"rank\":%d,\"pid\":%d,\"exit_code\":%d,\"signal\":%d,\"finished\":%.3f}\n",
                  r.rank, r.pid, r.exit_code, r.signal, r.finished);
  } else {
    std::snprintf(buf, sizeof(buf), "{\"pid\":%d,\"exit_code\":%d,\"signal\":%d,\"finished\":%.3f}\n", r.pid,
                  r.exit_code, r.signal, r.finished);
  }
  return buf;
}
inline std::string FormatLauncherInfo(const LauncherInfo& i) {
  char buf[128];
  std::snprintf(buf, sizeof(buf), "{\"pid\":%d,\"start_ticks\":%llu}\n", i.pid,
                static_cast<unsigned long long>(i.start_ticks));
  return buf;
}

}  // namespace vicreg::contract
