// The trainer's hook for optional online monitors (eval.online_linear, eval.online_knn_every_epochs):
// what the loop calls, not how the monitors work. The implementation is evaluation code and lives above
// train (worker/eval/online_monitor.h); a program that wants monitors hands its factory to the Trainer
// (TrainerOptions::online_monitors, trainer.h), so train never includes eval.
//
// Contract for implementations: never touch the encoder's gradients nor the global RNG, so that a run
// with monitors is bit-identical to one without (and resumes stay bit-identical).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>

#include "worker/model/vit.h"

namespace vicreg::comm {
class Communicator;
}

namespace vicreg::train {

class OnlineMonitor {
 public:
  virtual ~OnlineMonitor() = default;
  // Every step that was applied: features [B, D] of this rank's view 1 (detached by the monitor), labels
  // int64 [B] (-1 = unlabeled; undefined when the dataset has none).
  virtual void Update(const at::Tensor& features, const at::Tensor& labels) = 0;
  // Global running top-1 of the linear probe since the last ResetEpoch; collective when comm has several
  // ranks (every rank calls it at the same steps). nullopt when the probe is off or saw no labels.
  virtual std::optional<double> LinearTop1(comm::Communicator* comm) = 0;
  // At the start of every epoch.
  virtual void ResetEpoch() = 0;
  // True if the kNN monitor runs at the end of `epoch`; then the trainer calls KnnTop1 once.
  virtual bool KnnDue(int64_t epoch) const = 0;
  virtual double KnnTop1(model::VisionTransformer& encoder) = 0;
};

}  // namespace vicreg::train
