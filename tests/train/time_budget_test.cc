// TimeBudget (train.time_budget_s): the plan follows the rate a run reaches, ends within the budget
// whatever the machine's speed (and when the speed changes mid-run), and carries over a restart.
// Simulated clocks: the planner sees only steps and seconds.
#include "worker/train/time_budget.h"

#include <gtest/gtest.h>

#include <functional>

#include "common/errors.h"

namespace vicreg::train {
namespace {

struct Simulated {
  int64_t steps = 0;
  double seconds = 0;  // when the last step ended
};

// Steps a run planned at `initial_plan` steps, asking the planner before every step as the Trainer does.
Simulated Simulate(TimeBudget& b, int64_t initial_plan, const std::function<double(double)>& step_seconds_at,
                   int64_t first_step = 0) {
  Simulated s;
  s.steps = first_step;
  int64_t total = initial_plan;
  while (s.steps < total) {
    if (auto plan = b.Plan(s.steps, s.seconds, total)) {
      EXPECT_GT(*plan, s.steps);
      total = *plan;
    }
    s.seconds += step_seconds_at(s.seconds);
    ++s.steps;
  }
  return s;
}

TEST(TimeBudget, NoPlanDuringTheWarmUp) {
  TimeBudget b(100, 0);
  for (int64_t step = 0; step <= TimeBudget::kWarmupSteps; ++step)
    EXPECT_FALSE(b.Plan(step, 0.5 * static_cast<double>(step), 1000).has_value()) << step;
  // Rate measured from the warm-up's end: 2 steps/s with 94.5 s left.
  auto plan = b.Plan(TimeBudget::kWarmupSteps + 1, 5.5, 1000);
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(*plan, TimeBudget::kWarmupSteps + 1 + 189);
}

TEST(TimeBudget, EndsAtTheBudgetWhetherThePlanWasTooLongOrTooShort) {
  for (int64_t initial : {1, 8, 20, 300, 100000}) {  // 1 and 8: the first plan ends within the warm-up
    TimeBudget b(30, 0);
    Simulated s = Simulate(b, initial, [](double) { return 0.1; });
    EXPECT_NEAR(s.seconds, 30.0, 0.15) << "initial plan " << initial;
    EXPECT_NEAR(static_cast<double>(s.steps), 300.0, 1.5) << "initial plan " << initial;
  }
}

TEST(TimeBudget, FollowsAMachineThatSlowsDownOrSpeedsUpMidRun) {
  // 3x slower (a CPU hog starts) or 3x faster halfway: the end stays within 2% of the budget.
  for (double factor : {3.0, 1.0 / 3.0}) {
    TimeBudget b(600, 0);
    Simulated s = Simulate(b, 1000, [&](double t) { return t < 300 ? 0.1 : 0.1 * factor; });
    EXPECT_NEAR(s.seconds, 600.0, 12.0) << "speed x" << 1 / factor << " at half time";
  }
}

TEST(TimeBudget, ARestartGoesOnWithTheSecondsAlreadyUsed) {
  TimeBudget b(100, /*used_s=*/60);
  EXPECT_DOUBLE_EQ(b.used_s(5), 65);
  Simulated s = Simulate(b, 1000, [](double) { return 0.2; }, /*first_step=*/400);
  EXPECT_NEAR(s.seconds, 40.0, 0.4);  // 40 s were left
  EXPECT_NEAR(static_cast<double>(s.steps), 600.0, 2.0);
}

TEST(TimeBudget, ASpentBudgetMakesTheNextStepTheLast) {
  TimeBudget spent(100, /*used_s=*/100);
  EXPECT_EQ(spent.Plan(250, 0, 1000), 251);  // even before any rate is measured
  TimeBudget b(10, 0);
  EXPECT_EQ(b.Plan(3, 12, 1000), 4);
  EXPECT_THROW(TimeBudget(0, 0), InternalError);
}

}  // namespace
}  // namespace vicreg::train
