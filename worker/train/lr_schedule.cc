#include "worker/train/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "common/errors.h"

namespace vicreg::train {

LrScheduleOptions LrScheduleOptions::FromConfig(const config::TrainConfig& t, int64_t steps_per_epoch) {
  LrScheduleOptions o;
  o.base_lr = t.learning_rate;
  o.min_lr = t.min_lr;
  o.total_steps = static_cast<int64_t>(t.num_epochs) * steps_per_epoch;
  o.warmup_steps =
      std::min<int64_t>(std::llround(t.warmup_epochs * static_cast<double>(steps_per_epoch)), o.total_steps - 1);
  return o;
}

LrSchedule::LrSchedule(const LrScheduleOptions& opts) : opts_(opts) {
  VICREG_CHECK(opts_.total_steps >= 1 && opts_.warmup_steps >= 0 && opts_.warmup_steps < opts_.total_steps,
               "LrSchedule: need 0 <= warmup_steps < total_steps, got " + std::to_string(opts_.warmup_steps) + ", " +
                   std::to_string(opts_.total_steps));
}

void LrSchedule::SetTotalSteps(int64_t total) {
  VICREG_CHECK(total > opts_.warmup_steps, "LrSchedule: need total_steps > warmup_steps, got " + std::to_string(total) +
                                               " <= " + std::to_string(opts_.warmup_steps));
  opts_.total_steps = total;
}

double LrSchedule::At(int64_t step) const {
  const auto W = opts_.warmup_steps, T = opts_.total_steps;
  if (step < 0) step = 0;
  if (step < W) return opts_.base_lr * static_cast<double>(step) / static_cast<double>(W);
  if (step >= T) return opts_.min_lr;
  const double q = 0.5 * (1.0 + std::cos(M_PI * static_cast<double>(step - W) / static_cast<double>(T - W)));
  return opts_.base_lr * q + opts_.min_lr * (1.0 - q);
}

}  // namespace vicreg::train
