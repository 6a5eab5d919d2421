// Per-iteration learning rate: linear warmup, then cosine to min_lr (facebookresearch/vicreg's
// adjust_learning_rate form, with base_lr = learning_rate (not batch-scaled) and end_lr = min_lr):
//
//   W = warmup_steps, T = total_steps, s = 0-based index of the optimizer step being taken
//   s <  W : lr = base_lr * s / W                                   (0 at the very first step)
//   s >= W : q  = 0.5 * (1 + cos(pi * (s - W) / (T - W)))
//            lr = base_lr * q + min_lr * (1 - q)                    (base_lr at s = W, min_lr at s = T)
//   s >= T : lr = min_lr                                            (runs past the planned end)
#pragma once

#include <cstdint>

#include "common/config.h"

namespace vicreg::train {

struct LrScheduleOptions {
  double base_lr = 1e-3;
  double min_lr = 0.0;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  // W = round(warmup_epochs * steps_per_epoch), T = num_epochs * steps_per_epoch, from a validated config
  // (config::Validate checks the values; the Loader refuses data without one full batch per epoch).
  static LrScheduleOptions FromConfig(const config::TrainConfig& t, int64_t steps_per_epoch);
};

class LrSchedule {
 public:
  explicit LrSchedule(const LrScheduleOptions& opts);
  double At(int64_t step) const;  // step: 0-based global optimizer step
  // Moves the end T (train.time_budget_s re-plans it); the warmup stays. Needs total > warmup_steps.
  void SetTotalSteps(int64_t total);
  const LrScheduleOptions& options() const { return opts_; }

 private:
  LrScheduleOptions opts_;
};

}  // namespace vicreg::train
