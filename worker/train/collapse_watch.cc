#include "worker/train/collapse_watch.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace vicreg::train {

CollapseWatch::CollapseWatch(CollapseWatchOptions opts) : opts_(opts) {}

bool CollapseWatch::ShouldLog(State& s, int64_t step) {
  ++s.count;
  if (s.last_logged_step < 0 || step - s.last_logged_step >= opts_.min_interval_steps) return true;
  ++s.suppressed;
  return false;
}

std::vector<std::string> CollapseWatch::Observe(const StepReport& r) {
  std::vector<std::string> out;
  auto emit = [&](Kind k, std::string msg) {
    State& s = kinds_[k];
    if (!ShouldLog(s, r.step)) return;
    if (s.suppressed > 0) msg += fmt::format(" [{} more since step {}]", s.suppressed, s.last_logged_step);
    s.last_logged_step = r.step;
    s.suppressed = 0;
    spdlog::warn("{}", msg);
    out.push_back(std::move(msg));
  };
  if (r.std_min) {
    const double v = *r.std_min;
    if (v < opts_.collapse_std)
      emit(kCollapseRisk, fmt::format("collapse risk at step {}: min_std={:.4g} < {} (very low variance in some "
                                      "dimensions)",
                                      r.step, v, opts_.collapse_std));
    else if (v < opts_.low_std)
      emit(kLowVariance, fmt::format("low variance at step {}: min_std={:.4g} < {} (monitor for collapse)", r.step, v,
                                     opts_.low_std));
  }
  if (r.pairwise_sim && *r.pairwise_sim > opts_.similarity)
    emit(kFeatureCollapse, fmt::format("feature collapse at step {}: pairwise_sim={:.4g} > {} (features are too "
                                       "similar)",
                                       r.step, *r.pairwise_sim, opts_.similarity));
  return out;
}

std::string CollapseWatch::Summary() const {
  return fmt::format("collapse risk {} step(s), low variance {} step(s), feature collapse {} step(s)",
                     kinds_[kCollapseRisk].count, kinds_[kLowVariance].count, kinds_[kFeatureCollapse].count);
}

}  // namespace vicreg::train
