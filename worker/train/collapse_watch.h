// Collapse warnings exactly as the seed pipeline describes them, rate-limited:
//   min_std < 0.01      -> "collapse risk"     (very low variance in some dimensions)
//   min_std < 0.1       -> "low variance"      (monitor for collapse)       [only when not a collapse risk]
//   pairwise_sim > 0.9  -> "feature collapse"  (features are too similar)
// Each kind is logged the first time it occurs and then at most once per min_interval_steps; a logged
// warning says how many occurrences were suppressed since the previous one. Summary() gives the totals.
// Reports without diagnostics (std_min / pairwise_sim absent) are ignored. No torch here.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "common/step_report.h"

namespace vicreg::train {

struct CollapseWatchOptions {
  double collapse_std = 0.01;
  double low_std = 0.1;
  double similarity = 0.9;
  int64_t min_interval_steps = 100;  // per kind
};

class CollapseWatch {
 public:
  enum Kind { kCollapseRisk = 0, kLowVariance = 1, kFeatureCollapse = 2 };
  explicit CollapseWatch(CollapseWatchOptions opts = {});
  // Returns the warning lines emitted for this report (also logged with spdlog::warn).
  std::vector<std::string> Observe(const StepReport& r);
  int64_t count(Kind k) const { return kinds_[k].count; }
  // "collapse risk 3 step(s), low variance 0 step(s), feature collapse 1 step(s)".
  std::string Summary() const;

 private:
  struct State {
    int64_t count = 0;
    int64_t last_logged_step = -1;
    int64_t suppressed = 0;
  };
  bool ShouldLog(State& s, int64_t step);
  CollapseWatchOptions opts_;
  std::array<State, 3> kinds_;
};

}  // namespace vicreg::train
