// The run directory contract (docs/ARCHITECTURE.md "Contracts between processes"):
//
//   <run_dir>/job.yaml                 resolved config                          rank 0
//   <run_dir>/checkpoints/             see checkpoint.h                         rank 0
//   <run_dir>/metrics.jsonl            one JSON object per logged step          rank 0
//   <run_dir>/progress.json            at every logged step (atomic)            rank 0
//   <run_dir>/result.json              at exit (atomic)                         rank 0
//   <run_dir>/logs/rank-<r>.log        every rank
//   <run_dir>/endpoints/rank-<r>.json  every rank, at start (atomic)
//   <run_dir>/eval/                    evaluation results (vicreg_eval)
//
// metrics.jsonl on resume: the lines of steps after the resumed step were produced by the attempt that
// died and will be produced again, so OpenMetrics(resume_step) rewrites the file (atomically) keeping
// only lines with step <= resume_step, then appends. The file therefore never holds a step twice.
// No torch here.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/step_report.h"

namespace vicreg::fs {
class JsonlWriter;
}

namespace vicreg::train {

struct EndpointInfo {
  int rank = 0;
  int local_rank = 0;
  int64_t pid = 0;
  std::string host;
  std::string metrics;  // "127.0.0.1:PORT", or "" when the endpoint is disabled (written as null)
};

struct Progress {
  int64_t step = 0;         // iterations done
  int64_t total_steps = 0;  // iterations this run will do (num_epochs * batches_per_epoch or max_steps)
  int64_t epoch = 0;        // current epoch (1-based)
  int64_t num_epochs = 0;
  double loss = 0;
  double images_per_s = 0;
};

struct RunResult {
  std::string status;  // "succeeded" | "failed"
  std::string reason;  // "" on success; "terminated", "non-finite loss ...", the error text, ...
  int64_t step = 0;
  int64_t epoch = 0;
  std::string checkpoint;  // last checkpoint written or resumed from ("" if none)
  double wall_s = 0;
};

// One JSON object (no newline) for metrics.jsonl; keys always present, absent diagnostics are null.
std::string MetricsJsonLine(const StepReport& r);

class RunDir {
 public:
  RunDir(std::string root, int rank);
  ~RunDir();

  // mkdir -p of root, logs/, endpoints/ (every rank) and checkpoints/, eval/ (rank 0).
  void Create() const;

  const std::string& root() const { return root_; }
  int rank() const { return rank_; }
  std::string job_yaml() const { return root_ + "/job.yaml"; }
  std::string checkpoints_dir() const { return root_ + "/checkpoints"; }
  std::string metrics_jsonl() const { return root_ + "/metrics.jsonl"; }
  std::string progress_json() const { return root_ + "/progress.json"; }
  std::string result_json() const { return root_ + "/result.json"; }
  std::string log_file(int rank) const;
  std::string endpoint_file(int rank) const;

  void WriteJobYaml(const std::string& yaml) const;  // atomic
  void WriteEndpoint(const EndpointInfo& e) const;   // atomic, endpoints/rank-<e.rank>.json
  // Keeps the lines with step <= keep_through_step (0 on a fresh start), then opens for appending.
  void OpenMetrics(int64_t keep_through_step);
  void AppendMetrics(const StepReport& r);      // requires OpenMetrics
  void WriteProgress(const Progress& p) const;  // atomic
  void WriteResult(const RunResult& r) const;   // atomic

 private:
  std::string root_;
  int rank_;
  std::unique_ptr<fs::JsonlWriter> metrics_;
};

}  // namespace vicreg::train
