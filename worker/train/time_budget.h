// Training to a time budget (train.time_budget_s): how many steps fit, re-planned from the rate the
// run actually reaches, so that a run ends within its budget on a machine of any speed (or on a shared
// one whose speed changes as it trains), and its lr schedule (warmup + cosine, lr_schedule.h) still
// ends at min_lr on the last step.
//
// The budget counts training time: from the first step of each attempt to its last, summed over the
// attempts (a checkpoint carries the seconds used and the plan, so a restarted run goes on with them).
// The first kWarmupSteps steps of an attempt are not timed (start-up, first allocations, caches); from
// then on, before every step (a first plan ending sooner goes on step by step until then):
//   rate      = steps / seconds over the recent part of the attempt: the last kRateWindow of the time
//               since the warm-up (at least kWarmupSteps steps), so a machine that slows down or speeds
//               up is followed within a fraction of the run
//   remaining = budget - seconds used by earlier attempts - seconds of this attempt so far
//   total     = step + max(1, floor(remaining * rate))   (step + 1: the budget is spent, this step is the last)
// No torch here: the Trainer feeds it steps and seconds (rank 0 plans, every rank follows its plan).
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <utility>

namespace vicreg::train {

class TimeBudget {
 public:
  static constexpr int64_t kWarmupSteps = 10;
  static constexpr double kRateWindow = 0.25;

  // budget_s > 0; used_s: training seconds of earlier attempts (from the checkpoint resumed, else 0).
  TimeBudget(double budget_s, double used_s);

  // Before a step. step: steps done (global); attempt_s: seconds since this attempt's first step
  // began (0 before it); total: the plan in force. Returns the planned total step count (> step), or
  // nullopt (keep `total`) while the rate is not measured yet (the first kWarmupSteps steps of the
  // attempt) and the budget is not spent; a plan that would end during those steps is extended one
  // step at a time, so that a first plan shorter than the warm-up still gets measured and re-planned.
  std::optional<int64_t> Plan(int64_t step, double attempt_s, int64_t total);

  double budget_s() const { return budget_s_; }
  // Training seconds used by every attempt so far, this one up to attempt_s.
  double used_s(double attempt_s) const { return used_s_ + attempt_s; }

 private:
  double budget_s_;
  double used_s_;
  std::optional<int64_t> first_step_;              // steps done when this attempt's first step began
  std::optional<double> base_s_;                   // when the warm-up ended (attempt seconds)
  std::deque<std::pair<int64_t, double>> window_;  // (step, attempt_s) since the warm-up, the recent part
};

}  // namespace vicreg::train
