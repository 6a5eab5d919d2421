// The metric names the code really registers (not a hand-written list): WorkerMetrics and
// CoordinatorMetrics are built on a registry and driven once so that every lazily created
// series exists, then the registry is collected.
#pragma once

#include <set>
#include <string>

namespace vicreg::metrics::testing {

struct ExportedNames {
  std::set<std::string> families;  // vicreg_train_step_duration_seconds, ...
  std::set<std::string> series;    // families plus _bucket/_sum/_count of histograms
  std::set<std::string> histograms;
};
ExportedNames CollectExportedNames();

// Identifiers in a PromQL expression that name series: every vicreg_* token and every
// identifier directly followed by '{' or '['.
std::set<std::string> SeriesNamesIn(const std::string& promql);

}  // namespace vicreg::metrics::testing
