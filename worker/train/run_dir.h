// The worker's side of the run directory (common/run_contract.h defines the layout and the JSON of
// every file; docs/ARCHITECTURE.md "Contracts between processes"): RunDir creates the directories a
// rank writes into, writes rank 0's files through the contract, and keeps metrics.jsonl.
//
// metrics.jsonl on resume: the lines of steps after the resumed step were produced by the attempt that
// died and will be produced again, so OpenMetrics(resume_step) rewrites the file (atomically) keeping
// only lines with step <= resume_step, then appends. The file therefore never holds a step twice.
// No torch here.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/run_contract.h"
#include "common/step_report.h"

namespace vicreg::fs {
class JsonlWriter;
}

namespace vicreg::train {

using EndpointInfo = contract::Endpoint;
using Progress = contract::Progress;
using RunResult = contract::RunResult;
using contract::RunStatus;

// One JSON object (no newline) for metrics.jsonl; keys always present, absent diagnostics are null.
std::string MetricsJsonLine(const StepReport& r);

class RunDir {
 public:
  RunDir(std::string root, int rank);
  ~RunDir();

  // mkdir -p of root, logs/, endpoints/ (every rank) and checkpoints/, eval/ (rank 0).
  void Create() const;

  const std::string& root() const { return paths_.root(); }
  const contract::RunPaths& paths() const { return paths_; }
  int rank() const { return rank_; }
  std::string job_yaml() const { return paths_.job_yaml(); }
  std::string checkpoints_dir() const { return paths_.checkpoints_dir(); }
  std::string metrics_jsonl() const { return paths_.metrics_jsonl(); }
  std::string progress_json() const { return paths_.progress_json(); }
  std::string result_json() const { return paths_.result_json(); }
  std::string log_file(int rank) const { return paths_.worker_log(rank); }
  std::string endpoint_file(int rank) const { return paths_.endpoint_json(rank); }

  void WriteJobYaml(const std::string& yaml) const;  // atomic
  void WriteEndpoint(const EndpointInfo& e) const;   // atomic, endpoints/rank-<e.rank>.json
  // Keeps the lines with step <= keep_through_step (0 on a fresh start), then opens for appending.
  void OpenMetrics(int64_t keep_through_step);
  void AppendMetrics(const StepReport& r);      // requires OpenMetrics
  void WriteProgress(const Progress& p) const;  // atomic
  void WriteResult(const RunResult& r) const;   // atomic

 private:
  contract::RunPaths paths_;
  int rank_;
  std::unique_ptr<fs::JsonlWriter> metrics_;
};

}  // namespace vicreg::train
