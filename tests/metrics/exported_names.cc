#include "tests/metrics/exported_names.h"

#include <prometheus/metric_type.h>
#include <prometheus/registry.h>

#include <cctype>

#include "common/metrics.h"

namespace vicreg::metrics::testing {

ExportedNames CollectExportedNames() {
  auto registry = std::make_shared<prometheus::Registry>();
  WorkerMetrics worker(registry, "j", 0);
  CoordinatorMetrics coord(registry);
  StepReport r;
  r.loss = r.invariance = r.variance = r.covariance = 1;
  r.std_min = r.std_mean = r.std_max = r.pairwise_sim = r.cov_offdiag_sq = r.collapsed_dims = r.rankme = 0.5;
  r.lr = r.grad_norm = r.images_per_s = 1;
  r.online_linear_top1 = r.online_knn_top1 = 0.5;
  r.gpu_memory_allocated = r.gpu_memory_max_allocated = r.gpu_memory_reserved = 1;
  worker.OnReport(r);
  coord.SetEvalTop1("j", "d", "linear", 0.5, 1);
  coord.OnEvalFailure("j");
  coord.OnRpc("GetJob", "OK", 0.001);
  ExportedNames out;
  for (const auto& family : registry->Collect()) {
    out.families.insert(family.name);
    out.series.insert(family.name);
    if (family.type == prometheus::MetricType::Histogram) {
      out.histograms.insert(family.name);
      for (const char* suffix : {"_bucket", "_sum", "_count"}) out.series.insert(family.name + suffix);
    }
  }
  return out;
}

std::set<std::string> SeriesNamesIn(const std::string& q) {
  std::set<std::string> names;
  size_t i = 0;
  while (i < q.size()) {
    const char c = q[i];
    if (c == '"' || c == '\'') {  // skip string literals (label values)
      const char quote = c;
      ++i;
      while (i < q.size() && q[i] != quote) i += q[i] == '\\' ? 2 : 1;
      ++i;
      continue;
    }
    if (c == '{') {  // skip label matchers: label names are not series
      while (i < q.size() && q[i] != '}') {
        if (q[i] == '"') {
          ++i;
          while (i < q.size() && q[i] != '"') i += q[i] == '\\' ? 2 : 1;
        }
        ++i;
      }
      continue;
    }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':') {
      // A preceding '$' makes it a Grafana variable ($job_id, $__rate_interval).
      const bool variable = i > 0 && q[i - 1] == '$';
      size_t j = i;
      while (j < q.size() && (std::isalnum(static_cast<unsigned char>(q[j])) || q[j] == '_' || q[j] == ':')) ++j;
      const std::string tok = q.substr(i, j - i);
      size_t k = j;
      while (k < q.size() && q[k] == ' ') ++k;
      const bool selector = k < q.size() && (q[k] == '{' || q[k] == '[');
      if (!variable && (tok.rfind("vicreg_", 0) == 0 || selector)) names.insert(tok);
      // Skip the label list of by/without/on/ignoring/group_left/group_right.
      if (tok == "by" || tok == "without" || tok == "on" || tok == "ignoring" || tok == "group_left" ||
          tok == "group_right") {
        if (k < q.size() && q[k] == '(') {
          j = q.find(')', k);
          if (j == std::string::npos) j = q.size();
        }
      }
      i = j;
      continue;
    }
    ++i;
  }
  return names;
}

}  // namespace vicreg::metrics::testing
