// Checks shared by the integration tests: the dashboards' queries and variables against a
// live Prometheus, and the sanity of the exported values.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "tests/metrics/prometheus_harness.h"

namespace vicreg::metrics::testing {

struct DashboardQuery {
  std::string dashboard;  // uid
  std::string panel;      // title
  std::string expr;       // as written in the JSON
};
// Every target expression of deploy/grafana/dashboards/*.json.
std::vector<DashboardQuery> LoadDashboardQueries();
// The expression with Grafana's variables replaced: $job_id -> job_id, $rank -> .* (All),
// $__rate_interval -> 10s, $__interval -> 2s, $__range -> 5m.
std::string SubstituteVariables(const std::string& expr, const std::string& job_id);

// Every dashboard query returns at least one series with a finite value (ADD_FAILURE per query
// that does not); the dashboard variables resolve to job_id and the expected ranks. A query whose
// metrics are all in `optional_metrics` (e.g. the online-probe gauges of a job without online
// monitoring) may be empty; the empty ones are returned. These are CPU runs: a query of only
// CUDA-only metrics (the GPU memory panel) must be empty, and is returned too.
std::vector<std::string> ExpectEveryDashboardQueryReturnsData(PrometheusServer& prom, const std::string& job_id,
                                                              const std::vector<std::string>& ranks,
                                                              const std::set<std::string>& optional_metrics = {});
// Every worker metric of the contract exists for each rank with a plausible value.
void ExpectWorkerMetricsSane(PrometheusServer& prom, const std::string& job_id, const std::vector<std::string>& ranks,
                             bool collapsed);

}  // namespace vicreg::metrics::testing
