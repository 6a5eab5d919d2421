#include "tests/metrics/prometheus_harness.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <csignal>
#include <stdexcept>

namespace vicreg::metrics::testing {

std::string DerivePrometheusConfig(const std::string& deploy_config_path, const std::string& coordinator_target,
                                   const std::string& rules_path) {
  YAML::Node cfg = YAML::LoadFile(deploy_config_path);
  cfg["global"]["scrape_interval"] = "1s";
  cfg["global"]["evaluation_interval"] = "1s";
  cfg["global"]["scrape_timeout"] = "1s";
  YAML::Node rules(YAML::NodeType::Sequence);
  rules.push_back(rules_path);
  cfg["rule_files"] = rules;
  bool coordinator = false, workers = false;
  for (auto job : cfg["scrape_configs"]) {
    const std::string name = job["job_name"].as<std::string>();
    if (name == "vicreg-coordinator") {
      YAML::Node targets(YAML::NodeType::Sequence);
      targets.push_back(coordinator_target);
      job["static_configs"][0]["targets"] = targets;
      coordinator = true;
    } else if (name == "vicreg-workers") {
      job["http_sd_configs"][0]["url"] = "http://" + coordinator_target + "/sd";
      job["http_sd_configs"][0]["refresh_interval"] = "1s";
      workers = true;
    }
  }
  if (!coordinator || !workers) {
    throw std::runtime_error(deploy_config_path + " lacks the vicreg-coordinator or vicreg-workers scrape job");
  }
  YAML::Emitter out;
  out << cfg;
  return out.c_str();
}

std::string DeriveAlertRules(const std::string& deploy_rules_path, const std::string& for_window) {
  YAML::Node rules = YAML::LoadFile(deploy_rules_path);
  for (auto group : rules["groups"]) {
    for (auto rule : group["rules"]) {
      if (rule["for"]) rule["for"] = for_window;
    }
  }
  YAML::Emitter out;
  out << rules;
  return out.c_str();
}

PrometheusServer::PrometheusServer(const std::string& coordinator_target, const std::string& for_window) {
  dir_ = MakeTempDir("vicreg-prometheus-");
  const std::string deploy = std::string(VICREG_SOURCE_DIR) + "/deploy/prometheus";
  WriteText(dir_ + "/alerts.yml", DeriveAlertRules(deploy + "/alerts.yml", for_window));
  WriteText(dir_ + "/prometheus.yml",
            DerivePrometheusConfig(deploy + "/prometheus.yml", coordinator_target, dir_ + "/alerts.yml"));
  for (int attempt = 0; attempt < 3 && !process_; ++attempt) {
    port_ = FreeTcpPort();
    auto p = std::make_unique<Process>(
        std::vector<std::string>{"prometheus", "--config.file=" + dir_ + "/prometheus.yml",
                                 "--storage.tsdb.path=" + dir_ + "/data",
                                 "--web.listen-address=127.0.0.1:" + std::to_string(port_), "--log.level=warn"},
        dir_ + "/prometheus.log");
    const bool ready =
        WaitFor([&] { return !p->Running() || HttpGet("127.0.0.1", port_, "/-/ready", 1).status == 200; }, 20, 0.1);
    if (ready && p->Running()) process_ = std::move(p);  // else: port raced away or failed; retry
  }
  if (!process_) throw std::runtime_error("prometheus did not become ready:\n" + Log());
}

PrometheusServer::~PrometheusServer() {
  if (process_) process_->Stop(SIGTERM, 10);
  process_.reset();
  RemoveTree(dir_);
}

std::string PrometheusServer::Log() const { return ReadText(dir_ + "/prometheus.log"); }

nlohmann::json PrometheusServer::Get(const std::string& path_and_query) {
  auto resp = HttpGet("127.0.0.1", port_, path_and_query, 10);
  if (resp.status == 0) throw std::runtime_error("prometheus: " + resp.error);
  auto j = nlohmann::json::parse(resp.body, nullptr, false);
  if (j.is_discarded() || j.value("status", "") != "success") {
    throw std::runtime_error("prometheus " + path_and_query + " -> HTTP " + std::to_string(resp.status) + ": " +
                             resp.body);
  }
  return j["data"];
}

nlohmann::json PrometheusServer::Query(const std::string& expr) {
  return Get("/api/v1/query?query=" + UrlEncode(expr))["result"];
}

double PrometheusServer::Scalar(const std::string& expr) {
  auto r = Query(expr);
  if (!r.is_array() || r.empty()) return std::nan("");
  return std::stod(r[0]["value"][1].get<std::string>());
}

nlohmann::json PrometheusServer::Alerts() { return Get("/api/v1/alerts")["alerts"]; }

std::string PrometheusServer::AlertState(const std::string& alertname, const std::string& job_id) {
  for (const auto& a : Alerts()) {
    const auto& l = a["labels"];
    if (l.value("alertname", "") == alertname && l.value("job_id", "") == job_id) return a.value("state", "");
  }
  return "";
}

}  // namespace vicreg::metrics::testing
