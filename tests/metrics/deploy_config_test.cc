// Static checks of deploy/prometheus and deploy/grafana: promtool (config, rules, rule unit
// tests), the alert rules' structure and test coverage, and the Grafana dashboards' structure,
// variables and metric names (cross-checked against the names the code registers).
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "common/metrics.h"
#include "tests/metrics/exported_names.h"
#include "tests/metrics/metric_names.h"
#include "tests/metrics/test_support.h"

namespace vicreg::metrics::testing {
namespace {

const std::string kPromDir = std::string(VICREG_SOURCE_DIR) + "/deploy/prometheus";
const std::string kGrafanaDir = std::string(VICREG_SOURCE_DIR) + "/deploy/grafana";

struct ToolResult {
  int status = -1;
  std::string output;
};

ToolResult RunTool(const std::vector<std::string>& argv, const std::string& stdin_text = "") {
  const std::string dir = MakeTempDir("vicreg-promtool-");
  ToolResult r;
  {
    if (!stdin_text.empty()) WriteText(dir + "/stdin", stdin_text);
    Process p(argv, dir + "/out.log", {}, stdin_text.empty() ? "" : dir + "/stdin");
    auto st = p.Wait(120);
    r.status = st ? *st : -1;
    r.output = p.Log();
  }
  RemoveTree(dir);
  return r;
}

#define REQUIRE_PROMTOOL()                                                               \
  if (FindOnPath("promtool").empty()) {                                                  \
    GTEST_SKIP() << "promtool not found on PATH: install Debian's `prometheus` package " \
                    "(deploy/install-deps.sh) to run this check";                        \
  }

TEST(MetricsPromtool, CheckConfig) {
  REQUIRE_PROMTOOL();
  auto r = RunTool({"promtool", "check", "config", kPromDir + "/prometheus.yml"});
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("SUCCESS"), std::string::npos) << r.output;
}

TEST(MetricsPromtool, CheckRules) {
  REQUIRE_PROMTOOL();
  auto r = RunTool({"promtool", "check", "rules", kPromDir + "/alerts.yml"});
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("SUCCESS"), std::string::npos) << r.output;
}

TEST(MetricsPromtool, TestRules) {
  REQUIRE_PROMTOOL();
  auto r = RunTool({"promtool", "test", "rules", kPromDir + "/alerts_test.yml"});
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("SUCCESS"), std::string::npos) << r.output;
}

// `promtool check metrics` lints what the code exports (names, units, _total, HELP).
TEST(MetricsPromtool, CheckMetricsLintsTheExposition) {
  REQUIRE_PROMTOOL();
  MetricsServer server("127.0.0.1", 0);
  WorkerMetrics worker(server.registry(), "lint-job", 0);
  CoordinatorMetrics coord(server.registry());
  StepReport r;
  r.loss = 20;
  r.std_min = r.std_mean = r.std_max = r.pairwise_sim = r.cov_offdiag_sq = r.collapsed_dims = r.rankme = 0.5;
  r.online_linear_top1 = r.online_knn_top1 = 0.5;
  r.lr = 1e-3;
  r.images_per_s = 100;
  worker.OnStep(0.1, 64, 0.01);
  worker.OnReport(r);
  coord.SetEvalTop1("lint-job", "cifar10", "linear", 0.5, 1.7e9);
  coord.OnEvalFailure("lint-job");
  coord.OnRpc("GetJob", "OK", 0.001);
  const auto scrape = HttpGet("127.0.0.1", server.port(), "/metrics");
  ASSERT_EQ(scrape.status, 200) << scrape.error;
  auto res = RunTool({"promtool", "check", "metrics"}, scrape.body);
  EXPECT_EQ(res.status, 0) << res.output;
  EXPECT_EQ(res.output, "") << "lint findings:\n" << res.output;
}

// The required alerts exist, each with a severity and job-naming annotations, and each is
// unit-tested both firing and not firing.
TEST(MetricsAlertRules, RequiredAlertsAreAnnotatedAndTestedBothWays) {
  const YAML::Node rules = YAML::LoadFile(kPromDir + "/alerts.yml");
  const ExportedNames exported = CollectExportedNames();
  std::set<std::string> alerts;
  for (const auto& group : rules["groups"]) {
    for (const auto& rule : group["rules"]) {
      ASSERT_TRUE(rule["alert"]) << "recording rules are not expected here";
      const std::string name = rule["alert"].as<std::string>();
      SCOPED_TRACE(name);
      EXPECT_TRUE(alerts.insert(name).second) << "duplicate alert";
      const std::string severity = rule["labels"]["severity"].as<std::string>("");
      EXPECT_TRUE(severity == "critical" || severity == "warning") << "severity '" << severity << "'";
      const std::string summary = rule["annotations"]["summary"].as<std::string>("");
      const std::string description = rule["annotations"]["description"].as<std::string>("");
      EXPECT_FALSE(summary.empty());
      EXPECT_FALSE(description.empty());
      EXPECT_NE(rule["annotations"]["runbook"].as<std::string>("").find("docs/METRICS.md#"), std::string::npos);
      if (name != "CoordinatorDown") {
        EXPECT_NE(summary.find("$labels.job_id"), std::string::npos) << summary;
        EXPECT_NE(description.find("$labels.job_id"), std::string::npos) << description;
      }
      for (const auto& metric : SeriesNamesIn(rule["expr"].as<std::string>())) {
        EXPECT_TRUE(metric == "up" || exported.series.count(metric)) << "unknown metric " << metric;
      }
    }
  }
  for (const char* required : {"RepresentationCollapse", "FeatureCollapse", "LowVariance", "JobStalled",
                               "NonFiniteLoss", "CheckpointStale", "EvalStale", "CoordinatorDown"}) {
    EXPECT_EQ(alerts.count(required), 1u) << "missing alert " << required;
  }

  const YAML::Node tests = YAML::LoadFile(kPromDir + "/alerts_test.yml");
  std::set<std::string> fires, stays_quiet;
  for (const auto& test : tests["tests"]) {
    for (const auto& check : test["alert_rule_test"]) {
      const std::string name = check["alertname"].as<std::string>();
      (check["exp_alerts"].size() > 0 ? fires : stays_quiet).insert(name);
    }
  }
  for (const auto& name : alerts) {
    EXPECT_EQ(fires.count(name), 1u) << name << " has no firing case in alerts_test.yml";
    EXPECT_EQ(stays_quiet.count(name), 1u) << name << " has no not-firing case in alerts_test.yml";
  }
}

TEST(MetricsPrometheusConfig, ScrapesTheCoordinatorAndDiscoversRanksThroughIt) {
  const YAML::Node cfg = YAML::LoadFile(kPromDir + "/prometheus.yml");
  ASSERT_EQ(cfg["rule_files"].size(), 1u);
  EXPECT_EQ(cfg["rule_files"][0].as<std::string>(), "alerts.yml");
  std::map<std::string, YAML::Node> jobs;
  for (const auto& job : cfg["scrape_configs"]) jobs.emplace(job["job_name"].as<std::string>(), YAML::Node(job));
  ASSERT_TRUE(jobs.count("vicreg-coordinator"));
  ASSERT_TRUE(jobs.count("vicreg-workers"));
  const std::string coordinator = jobs["vicreg-coordinator"]["static_configs"][0]["targets"][0].as<std::string>();
  const std::string sd = jobs["vicreg-workers"]["http_sd_configs"][0]["url"].as<std::string>();
  EXPECT_EQ(coordinator.rfind("127.0.0.1:", 0), 0u) << "bind/scrape loopback by default";
  EXPECT_EQ(sd, "http://" + coordinator + "/sd") << "the coordinator serves /sd next to /metrics";
  EXPECT_TRUE(jobs["vicreg-workers"]["honor_labels"].as<bool>(false))
      << "without honor_labels the ranks' job_id/rank become exported_job_id/exported_rank";
}

// ---- Grafana -------------------------------------------------------------------------------

nlohmann::json LoadJson(const std::string& path) { return nlohmann::json::parse(ReadText(path)); }

void CollectPanels(const nlohmann::json& panels, std::vector<nlohmann::json>* out) {
  for (const auto& p : panels) {
    out->push_back(p);
    if (p.contains("panels")) CollectPanels(p["panels"], out);
  }
}

std::vector<std::string> Expressions(const nlohmann::json& dashboard) {
  std::vector<nlohmann::json> panels;
  CollectPanels(dashboard.at("panels"), &panels);
  std::vector<std::string> exprs;
  for (const auto& p : panels) {
    if (!p.contains("targets")) continue;
    for (const auto& t : p["targets"]) exprs.push_back(t.at("expr").get<std::string>());
  }
  return exprs;
}

void CheckDashboardStructure(const nlohmann::json& d, const std::string& uid) {
  EXPECT_EQ(d.at("uid"), uid);
  EXPECT_FALSE(d.at("title").get<std::string>().empty());
  const auto& vars = d.at("templating").at("list");
  ASSERT_FALSE(vars.empty());
  EXPECT_EQ(vars[0].at("name"), "datasource");
  EXPECT_EQ(vars[0].at("type"), "datasource");
  EXPECT_EQ(vars[0].at("query"), "prometheus");
  std::vector<nlohmann::json> panels;
  CollectPanels(d.at("panels"), &panels);
  std::set<int> ids;
  size_t with_queries = 0;
  for (const auto& p : panels) {
    SCOPED_TRACE(p.value("title", "?"));
    EXPECT_TRUE(ids.insert(p.at("id").get<int>()).second) << "duplicate panel id";
    const auto& pos = p.at("gridPos");
    EXPECT_LE(pos.at("x").get<int>() + pos.at("w").get<int>(), 24);
    if (p.at("type") == "row") continue;
    EXPECT_EQ(p.at("datasource").at("uid"), "${datasource}") << "panels must follow the datasource variable";
    ASSERT_TRUE(p.contains("targets"));
    for (const auto& t : p["targets"]) {
      EXPECT_EQ(t.at("datasource").at("uid"), "${datasource}");
      EXPECT_FALSE(t.at("expr").get<std::string>().empty());
    }
    ++with_queries;
  }
  EXPECT_GT(with_queries, 0u);
}

TEST(MetricsGrafana, TrainingDashboardHasStableUidVariablesAndKnownMetrics) {
  const auto d = LoadJson(kGrafanaDir + "/dashboards/vicreg-training.json");
  CheckDashboardStructure(d, "vicreg-training");
  std::map<std::string, nlohmann::json> vars;
  for (const auto& v : d["templating"]["list"]) vars[v.at("name")] = v;
  ASSERT_TRUE(vars.count("job_id"));
  ASSERT_TRUE(vars.count("rank"));
  EXPECT_EQ(vars["job_id"].at("type"), "query");
  EXPECT_EQ(vars["job_id"].at("definition"), "label_values(vicreg_train_steps_total, job_id)");
  EXPECT_EQ(vars["rank"].at("definition"), "label_values(vicreg_train_steps_total{job_id=\"$job_id\"}, rank)");
  EXPECT_TRUE(vars["rank"].at("multi").get<bool>());
  EXPECT_TRUE(vars["rank"].at("includeAll").get<bool>());
  EXPECT_EQ(vars["rank"].at("allValue"), ".*");

  const ExportedNames exported = CollectExportedNames();
  std::set<std::string> used;
  for (const auto& expr : Expressions(d)) {
    for (const auto& name : SeriesNamesIn(expr)) {
      EXPECT_TRUE(name == "up" || exported.series.count(name)) << "unknown metric " << name << " in: " << expr;
      used.insert(name);
    }
    if (expr.find("vicreg_train_") != std::string::npos || expr.find("vicreg_embedding") != std::string::npos) {
      EXPECT_NE(expr.find("job_id=\"$job_id\""), std::string::npos) << "per-job panel without the job filter: " << expr;
    }
  }
  // Every worker metric is on the dashboard, plus restarts and evaluation accuracy.
  for (const auto& spec : WorkerSpecs()) {
    if (spec.name == "vicreg_build_info") continue;
    const bool histogram = spec.type == "histogram";
    EXPECT_TRUE(used.count(histogram ? spec.name + "_bucket" : spec.name) ||
                (histogram && used.count(spec.name + "_sum")))
        << spec.name << " is not on the training dashboard";
  }
  EXPECT_TRUE(used.count("vicreg_job_restarts_total"));
  EXPECT_TRUE(used.count("vicreg_eval_top1_ratio"));
  // Step time per rank is a quantile over the histogram, by rank.
  bool step_quantile = false;
  for (const auto& expr : Expressions(d)) {
    if (expr.find("histogram_quantile") != std::string::npos &&
        expr.find("vicreg_train_step_duration_seconds_bucket") != std::string::npos &&
        expr.find("by (le, rank)") != std::string::npos) {
      step_quantile = true;
    }
  }
  EXPECT_TRUE(step_quantile);
}

TEST(MetricsGrafana, CoordinatorDashboardUsesKnownMetrics) {
  const auto d = LoadJson(kGrafanaDir + "/dashboards/vicreg-coordinator.json");
  CheckDashboardStructure(d, "vicreg-coordinator");
  const ExportedNames exported = CollectExportedNames();
  std::set<std::string> used;
  for (const auto& expr : Expressions(d)) {
    for (const auto& name : SeriesNamesIn(expr)) {
      EXPECT_TRUE(name == "up" || exported.series.count(name)) << "unknown metric " << name << " in: " << expr;
      used.insert(name);
    }
  }
  for (const auto& spec : CoordinatorSpecs()) {
    if (spec.name == "vicreg_build_info") continue;
    const std::string series = spec.type == "histogram" ? spec.name + "_bucket" : spec.name;
    EXPECT_TRUE(used.count(series)) << spec.name << " is not on the coordinator dashboard";
  }
}

TEST(MetricsGrafana, ProvisioningPointsAtPrometheusAndTheDashboardsFolder) {
  const YAML::Node ds = YAML::LoadFile(kGrafanaDir + "/provisioning/datasources/prometheus.yml");
  EXPECT_EQ(ds["apiVersion"].as<int>(), 1);
  ASSERT_EQ(ds["datasources"].size(), 1u);
  EXPECT_EQ(ds["datasources"][0]["type"].as<std::string>(), "prometheus");
  EXPECT_FALSE(ds["datasources"][0]["url"].as<std::string>("").empty());
  const YAML::Node prov = YAML::LoadFile(kGrafanaDir + "/provisioning/dashboards/vicreg.yml");
  EXPECT_EQ(prov["apiVersion"].as<int>(), 1);
  ASSERT_EQ(prov["providers"].size(), 1u);
  EXPECT_EQ(prov["providers"][0]["type"].as<std::string>(), "file");
  EXPECT_FALSE(prov["providers"][0]["options"]["path"].as<std::string>("").empty());
}

TEST(MetricsPromQLNames, FindsSelectorsAndSkipsLabelsVariablesAndFunctions) {
  const auto names = SeriesNamesIn(
      "histogram_quantile(0.5, sum by (le, rank) (rate(vicreg_a_bucket{job_id=\"$job_id\", x=~\"up{\"}"
      "[$__rate_interval]))) / on (job_id) group_left (rank) up{job=\"x\"} + time() - foo[5m] + vicreg_b");
  EXPECT_EQ(names, (std::set<std::string>{"vicreg_a_bucket", "up", "foo", "vicreg_b"}));
}

}  // namespace
}  // namespace vicreg::metrics::testing
