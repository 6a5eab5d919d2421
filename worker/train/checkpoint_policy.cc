#include "worker/train/checkpoint_policy.h"

namespace vicreg::train {

CheckpointPolicy::CheckpointPolicy(const config::JobConfig& cfg) : cfg_(cfg) {}

CheckpointAction CheckpointPolicy::AfterStep(const StepPosition& at) const {
  const auto& ck = cfg_.checkpoint;
  const bool last_epoch = at.epoch == cfg_.train.num_epochs;
  const bool epoch_due =
      at.run_end || (at.epoch_end && (last_epoch || (ck.every_epochs > 0 && at.epoch % ck.every_epochs == 0)));
  const bool step_due = ck.every_steps > 0 && at.step % ck.every_steps == 0;
  if ((epoch_due || step_due) && at.in_streak && !at.stopping && !at.run_end) return CheckpointAction::kDeferred;
  if (epoch_due) return CheckpointAction::kEpoch;
  if (at.stopping || step_due) return CheckpointAction::kStep;
  return CheckpointAction::kNone;
}

CheckpointManagerOptions CheckpointPolicy::Retention(const std::string& dir) const {
  CheckpointManagerOptions co;
  co.dir = dir;
  co.keep_last = cfg_.checkpoint.keep_last;
  co.keep_epochs = cfg_.checkpoint.keep_epochs;
  // Checkpoints the coordinator evaluates must outlive retention.
  for (int e : cfg_.eval.epochs) co.keep_epochs.push_back(e);
  if (cfg_.eval.every_epochs > 0)
    for (int e = cfg_.eval.every_epochs; e <= cfg_.train.num_epochs; e += cfg_.eval.every_epochs)
      co.keep_epochs.push_back(e);
  return co;
}

}  // namespace vicreg::train
