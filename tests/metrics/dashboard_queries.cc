#include "tests/metrics/dashboard_queries.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <set>

#include "tests/metrics/exported_names.h"
#include "tests/metrics/metric_names.h"

namespace vicreg::metrics::testing {
namespace {

void Collect(const nlohmann::json& panels, const std::string& uid, std::vector<DashboardQuery>* out) {
  for (const auto& p : panels) {
    if (p.contains("targets")) {
      for (const auto& t : p["targets"]) out->push_back({uid, p.value("title", "?"), t.at("expr").get<std::string>()});
    }
    if (p.contains("panels")) Collect(p["panels"], uid, out);
  }
}

void ReplaceAll(std::string* s, const std::string& from, const std::string& to) {
  for (size_t pos = s->find(from); pos != std::string::npos; pos = s->find(from, pos + to.size())) {
    s->replace(pos, from.size(), to);
  }
}

std::string Labels(const nlohmann::json& metric) {
  std::string s;
  for (auto it = metric.begin(); it != metric.end(); ++it) s += it.key() + "=" + it.value().get<std::string>() + " ";
  return s;
}

}  // namespace

std::vector<DashboardQuery> LoadDashboardQueries() {
  std::vector<DashboardQuery> out;
  const std::filesystem::path dir = std::filesystem::path(VICREG_SOURCE_DIR) / "deploy/grafana/dashboards";
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".json") continue;
    const auto d = nlohmann::json::parse(ReadText(entry.path().string()));
    Collect(d.at("panels"), d.at("uid").get<std::string>(), &out);
  }
  return out;
}

std::string SubstituteVariables(const std::string& expr, const std::string& job_id) {
  std::string e = expr;
  ReplaceAll(&e, "${job_id}", job_id);
  ReplaceAll(&e, "$job_id", job_id);
  ReplaceAll(&e, "${rank}", ".*");
  ReplaceAll(&e, "$rank", ".*");
  ReplaceAll(&e, "$__rate_interval", "10s");
  ReplaceAll(&e, "$__interval", "2s");
  ReplaceAll(&e, "${__range}", "5m");
  ReplaceAll(&e, "$__range", "5m");
  return e;
}

std::vector<std::string> ExpectEveryDashboardQueryReturnsData(PrometheusServer& prom, const std::string& job_id,
                                                              const std::vector<std::string>& ranks,
                                                              const std::set<std::string>& optional_metrics) {
  std::vector<std::string> allowed_empty;
  const auto queries = LoadDashboardQueries();
  EXPECT_GT(queries.size(), 20u);
  for (const auto& q : queries) {
    const std::string expr = SubstituteVariables(q.expr, job_id);
    SCOPED_TRACE(q.dashboard + " / " + q.panel + ": " + expr);
    EXPECT_EQ(expr.find('$'), std::string::npos) << "unsubstituted variable";
    nlohmann::json result;
    try {
      result = prom.Query(expr);
    } catch (const std::exception& e) {
      ADD_FAILURE() << e.what();
      continue;
    }
    EXPECT_TRUE(result.is_array());
    // The GPU memory panel: these runs are CPU ranks, which must export none of those series.
    bool cuda_only = !SeriesNamesIn(expr).empty();
    for (const auto& name : SeriesNamesIn(expr)) {
      bool is_cuda_only = false;
      for (const auto& spec : WorkerSpecs()) is_cuda_only = is_cuda_only || (spec.cuda_only && spec.name == name);
      cuda_only = cuda_only && is_cuda_only;
    }
    if (cuda_only) {
      EXPECT_TRUE(result.empty()) << "a CPU rank exported GPU memory: " << result.dump();
      allowed_empty.push_back(expr);
      continue;
    }
    bool finite = false;
    for (const auto& series : result) {
      if (std::isfinite(std::stod(series["value"][1].get<std::string>()))) finite = true;
    }
    if (!finite && !optional_metrics.empty()) {
      bool all_optional = true;
      for (const auto& name : SeriesNamesIn(expr)) all_optional = all_optional && optional_metrics.count(name) > 0;
      if (all_optional) {
        allowed_empty.push_back(expr);
        continue;
      }
    }
    EXPECT_TRUE(finite) << "no data: " << result.dump();
  }
  // Dashboard variables: label_values(vicreg_train_steps_total, job_id) and the ranks of the job.
  std::set<std::string> jobs, got_ranks;
  for (const auto& s : prom.Query("group by (job_id) (vicreg_train_steps_total)")) jobs.insert(s["metric"]["job_id"]);
  for (const auto& s : prom.Query("group by (rank) (vicreg_train_steps_total{job_id=\"" + job_id + "\"})")) {
    got_ranks.insert(s["metric"]["rank"]);
  }
  EXPECT_EQ(jobs.count(job_id), 1u);
  EXPECT_EQ(got_ranks, std::set<std::string>(ranks.begin(), ranks.end()));
  return allowed_empty;
}

void ExpectWorkerMetricsSane(PrometheusServer& prom, const std::string& job_id, const std::vector<std::string>& ranks,
                             bool collapsed) {
  const std::string sel = "{job_id=\"" + job_id + "\"}";
  // Every metric of the contract, once per rank (the online probe gauges are optional).
  for (const auto& spec : WorkerSpecs()) {
    if (spec.name == "vicreg_build_info" || spec.name == "vicreg_online_top1_ratio" || spec.cuda_only) continue;
    const std::string series = spec.type == "histogram" ? spec.name + "_count" : spec.name;
    std::set<std::string> seen;
    for (const auto& s : prom.Query(series + sel)) {
      seen.insert(s["metric"].value("rank", "?"));
      const double v = std::stod(s["value"][1].get<std::string>());
      EXPECT_TRUE(std::isfinite(v)) << series << " " << Labels(s["metric"]);
      EXPECT_GE(v, 0) << series << " " << Labels(s["metric"]);
    }
    EXPECT_EQ(seen, std::set<std::string>(ranks.begin(), ranks.end())) << series;
  }
  auto all_ranks = [&](const std::string& expr, const std::string& what) {
    auto r = prom.Query(expr);
    EXPECT_EQ(r.size(), ranks.size()) << what << ": " << expr << " -> " << r.dump();
  };
  all_ranks("vicreg_train_steps_total" + sel + " > 0", "steps counted");
  all_ranks("vicreg_train_samples_total" + sel + " > 0", "samples counted");
  all_ranks("vicreg_train_step_duration_seconds_count" + sel + " > 0", "step durations observed");
  all_ranks("abs(time() - vicreg_last_step_timestamp_seconds" + sel + ") < 60", "recent last step");
  all_ranks("vicreg_checkpoint_last_timestamp_seconds" + sel + " > 1.6e9", "checkpoint timestamp is a Unix time");
  all_ranks("vicreg_train_epoch" + sel + " >= 1", "epoch");
  all_ranks("vicreg_learning_rate" + sel + " > 0", "lr");
  all_ranks("vicreg_train_images_per_second" + sel + " > 0", "images/s");
  all_ranks("vicreg_embedding_pairwise_similarity" + sel + " >= -1 <= 1", "cosine range");
  all_ranks("vicreg_embedding_collapsed_dims_ratio" + sel + " >= 0 <= 1", "ratio range");
  all_ranks("vicreg_embedding_std_max" + sel + " >= on (job_id, rank) vicreg_embedding_std_min" + sel, "max >= min");
  all_ranks("vicreg_train_loss{job_id=\"" + job_id + "\",component=\"total\"} > 0", "loss");
  all_ranks("vicreg_representation_effective_rank" + sel + " >= 1", "effective rank >= 1");
  if (!collapsed) {
    all_ranks("vicreg_embedding_std_min" + sel + " > 0.01", "healthy std_min");
    all_ranks("vicreg_embedding_pairwise_similarity" + sel + " < 0.9", "healthy pairwise similarity");
  }
  EXPECT_EQ(prom.Query("vicreg_build_info").size(), ranks.size() + 1) << "build info of every rank + coordinator";
}

}  // namespace vicreg::metrics::testing
