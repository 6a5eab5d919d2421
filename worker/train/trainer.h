// The VICReg training loop of one rank (docs/ARCHITECTURE.md "Model and objective", "Distributed",
// "Checkpoints and resume").
//
//   Trainer t(cfg, rank_info, comm, &run_dir, &worker_metrics, opts);
//   RunResult r = t.Run();        // epochs x batches, checkpoints, metrics.jsonl, progress.json
//
// Step() is one iteration and reads top to bottom: views to device -> forward both views -> gather z
// (differentiable all-gather) -> loss (fp32) -> agree on non-finite/stop across ranks -> backward ->
// gradient average -> clip -> lr -> optimizer step -> diagnostics -> report.
//
// Iterations ("steps") are counted whether or not a non-finite loss made the optimizer skip them, so the
// lr schedule and the data position are pure functions of the step. Rank 0 alone writes checkpoints,
// metrics.jsonl and progress.json (through RunDir); every rank updates its own WorkerMetrics.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/step_report.h"
#include "worker/comm/communicator.h"
#include "worker/train/run_dir.h"

namespace vicreg::metrics {
class WorkerMetrics;
}
namespace vicreg::data {
struct Batch;
class Dataset;
}  // namespace vicreg::data

namespace vicreg::train {

class OnlineMonitor;  // online_monitor.h
// Builds the monitors `cfg.eval` asks for. train_set: the training dataset; feature_dim: the encoder's
// width; device: where the features live. Throws UserError naming the eval.* key that cannot be served.
using OnlineMonitorFactory = std::function<std::unique_ptr<OnlineMonitor>(
    const config::JobConfig& cfg, std::shared_ptr<const data::Dataset> train_set, int feature_dim, c10::Device device)>;

struct TrainerOptions {
  std::string resume = "none";  // none | auto | PATH (checkpoint.h CheckpointManager::Resume)
  std::string device = "cpu";   // "cpu" or "cuda:<local_rank>"
  // Builds the monitors of eval.online_linear / eval.online_knn_every_epochs (vicreg_worker passes
  // eval::MakeOnlineMonitor). Without one, a config that enables them is refused (UserError).
  OnlineMonitorFactory online_monitors;
};

// What one Step() did (this rank's view; loss values are global after the all-reduce).
struct StepOutcome {
  bool applied = false;         // false: skipped (non-finite loss / gradient, or fp16 overflow)
  bool nonfinite = false;       // skipped because the loss or the gradient was NaN/Inf
  bool stop_requested = false;  // some rank received SIGTERM/SIGINT
  StepReport report;            // step, epoch, losses (global), lr, grad_norm, diagnostics if computed
};

class Trainer {
 public:
  // run_dir and metrics may be null (in-process tests): nothing is written / exported then.
  Trainer(const config::JobConfig& cfg, const comm::RankInfo& rank, std::shared_ptr<comm::Communicator> comm,
          RunDir* run_dir, metrics::WorkerMetrics* metrics, TrainerOptions opts);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // The whole run: resume (per options), epochs, checkpoints, reports. Returns how it ended
  // ("succeeded", or "failed" with reason "terminated by SIGTERM" / "non-finite loss ..."). Throws
  // UserError (bad dataset, bad checkpoint) and RuntimeFailure (peer died, disk full, ...).
  RunResult Run();

  // One iteration on `batch` (views or raw images, see data::Batch). Advances the global step.
  StepOutcome Step(const data::Batch& batch);

  // Writes a checkpoint now (rank 0; other ranks return ""). kind "epoch" | "step".
  std::string SaveCheckpoint(const std::string& kind);

  // Model state (params + buffers, state_dict order): for tests and evaluation.
  std::vector<std::pair<std::string, at::Tensor>> ModelState() const;
  int64_t global_step() const;
  int64_t epoch() const;
  int64_t steps_per_epoch() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vicreg::train
