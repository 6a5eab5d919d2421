// Shared pieces of the Prometheus layer: vicreg_build_info and the histogram buckets.
#include "common/metrics.h"

#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <vector>

#include "common/build_info.h"

namespace vicreg::metrics {

void RegisterBuildInfo(prometheus::Registry& registry) {
  // Merge semantics of prometheus::Registry: the same family and child are returned when
  // a worker and a coordinator (or two ranks in one test process) share a registry.
  prometheus::BuildGauge()
      .Name("vicreg_build_info")
      .Help("Always 1; the labels carry the vicreg version and git revision of this binary")
      .Register(registry)
      .Add({{"version", BuildVersion()}, {"revision", BuildRevision()}})
      .Set(1);
}

const std::vector<double>& StepDurationBuckets() {
  static const std::vector<double> b = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
  return b;
}

const std::vector<double>& DataWaitBuckets() {
  static const std::vector<double> b = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                        0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
  return b;
}

const std::vector<double>& RpcDurationBuckets() {
  static const std::vector<double> b = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                        0.25,   0.5,   1,      2.5,   5,    10,    30,   60};
  return b;
}

}  // namespace vicreg::metrics
