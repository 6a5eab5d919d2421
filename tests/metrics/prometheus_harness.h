// A real Prometheus for the integration tests, configured from the shipped deploy/prometheus
// files: the same scrape jobs, HTTP service discovery and alert rules, with 1 s intervals and
// the alerts' `for:` windows shortened.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/metrics/test_support.h"

namespace vicreg::metrics::testing {

// deploy/prometheus/prometheus.yml with: 1 s scrape/evaluation intervals, the coordinator job
// scraping `coordinator_target`, the workers' HTTP SD pointing at http://<coordinator_target>/sd
// (refresh 1 s), and rule_files = [rules_path].
std::string DerivePrometheusConfig(const std::string& deploy_config_path, const std::string& coordinator_target,
                                   const std::string& rules_path);
// deploy/prometheus/alerts.yml with every `for:` set to `for_window`.
std::string DeriveAlertRules(const std::string& deploy_rules_path, const std::string& for_window);

class PrometheusServer {
 public:
  // Starts `prometheus` on a free loopback port with the derived files in a fresh temp dir;
  // throws std::runtime_error (with its log) if it does not become ready.
  PrometheusServer(const std::string& coordinator_target, const std::string& for_window);
  ~PrometheusServer();
  int port() const { return port_; }
  // GET /api/v1/query; returns data.result (an array for vectors). Throws with the error text.
  nlohmann::json Query(const std::string& expr);
  // First value of the query's result as a double, NaN if the result is empty.
  double Scalar(const std::string& expr);
  // GET /api/v1/alerts: data.alerts.
  nlohmann::json Alerts();
  // State ("firing" / "pending") of the alert with this name whose labels include job_id, or "".
  std::string AlertState(const std::string& alertname, const std::string& job_id);
  std::string Log() const;
  std::string ConfigText() const { return ReadText(dir_ + "/prometheus.yml"); }

 private:
  nlohmann::json Get(const std::string& path_and_query);
  std::string dir_;
  int port_ = 0;
  std::unique_ptr<Process> process_;
};

}  // namespace vicreg::metrics::testing
