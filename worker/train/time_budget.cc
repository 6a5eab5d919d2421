#include "worker/train/time_budget.h"

#include <algorithm>
#include <cmath>

#include "common/errors.h"

namespace vicreg::train {

TimeBudget::TimeBudget(double budget_s, double used_s) : budget_s_(budget_s), used_s_(std::max(0.0, used_s)) {
  VICREG_CHECK(budget_s > 0 && std::isfinite(budget_s), "TimeBudget: the budget must be > 0 seconds");
}

std::optional<int64_t> TimeBudget::Plan(int64_t step, double attempt_s, int64_t total) {
  if (!first_step_) first_step_ = step;
  const double remaining = budget_s_ - used_s(attempt_s);
  if (remaining <= 0) return step + 1;  // spent: the step about to be taken is the last
  // No rate yet: keep the plan, or go on one more step when it would end here.
  const auto unmeasured = [&]() -> std::optional<int64_t> {
    if (total <= step + 1) return step + 2;
    return std::nullopt;
  };
  if (step - *first_step_ < kWarmupSteps) return unmeasured();
  if (!base_s_) base_s_ = attempt_s;
  window_.emplace_back(step, attempt_s);
  // Keep the recent part: the last kRateWindow of the time since the warm-up, and kWarmupSteps steps at least.
  const double horizon = kRateWindow * (attempt_s - *base_s_);
  while (window_.size() > 2 && attempt_s - window_[1].second >= horizon && step - window_[1].first >= kWarmupSteps)
    window_.pop_front();
  const int64_t steps = step - window_.front().first;
  const double seconds = attempt_s - window_.front().second;
  if (steps <= 0 || seconds <= 0) return unmeasured();
  const double fit = std::floor(remaining * (static_cast<double>(steps) / seconds));
  // Bounded (2^40 steps) so that a pathological clock cannot overflow the step counter, and the plan
  // travels exactly in the Trainer's float32 all-reduce (two halves below 2^24).
  return step + std::max<int64_t>(1, static_cast<int64_t>(std::min(fit, 1099511627776.0)));
}

}  // namespace vicreg::train
