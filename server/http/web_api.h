// The web UI's JSON API, read-only (docs/OPERATIONS.md "Web UI and HTTP API"):
//   GET /api/v1/info                          version, auth, warning thresholds, Prometheus links
//   GET /api/v1/jobs?state=&limit=&before=    newest first, with the latest collapse diagnostics
//   GET /api/v1/jobs/<id>                     + attempts, checkpoints, rank endpoints, log sources
//   GET /api/v1/jobs/<id>/metrics?from=&to=&max_points=&keys=   metrics.jsonl, downsampled
//   GET /api/v1/jobs/<id>/evals               tasks and the learned-vs-references table
//   GET /api/v1/jobs/<id>/events?limit=       timeline: state changes, attempts, restarts, evals, checkpoints
//   GET /api/v1/jobs/<id>/logs?source=&lines= tail of logs/<source> (rank-<r>.out, launcher.log, ...)
//   GET /api/v1/jobs/<id>/spec                the resolved job file
// Reads the coordinator's JobStore and the run directories; never writes anything. Every bad
// parameter is a 400 naming it, the value and what is valid; an unknown job is a 404.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "common/http_server.h"
#include "server/http/metrics_series.h"
#include "server/job.h"

namespace vicreg::server {
class JobStore;
}

namespace vicreg::web {

// The seed's collapse warnings (docs/METRICS.md): min_std < 0.1 amber, < 0.01 red; pairwise_sim > 0.9 red.
struct Thresholds {
  double std_min_amber = 0.1;
  double std_min_red = 0.01;
  double pairwise_sim_red = 0.9;
};

class WebApi {
 public:
  explicit WebApi(server::JobStore& store);

  // Serves GET /api/v1/... (JSON; errors are {"error": "..."}).
  void Handle(const http::Request& req, http::Response& res);

  // The JSON documents (also embedded in the report).
  nlohmann::json Info() const;
  std::optional<server::JobRecord> FindJob(const std::string& id) const;  // nullopt: unknown or malformed id
  nlohmann::json JobDetail(const server::JobRecord& job) const;
  std::string MetricsJson(const server::JobRecord& job, const SeriesQuery& q);  // SeriesJson + job_id
  nlohmann::json Evals(const server::JobRecord& job) const;
  nlohmann::json Events(const server::JobRecord& job, int limit = 500) const;
  // source: a file name in <run_dir>/logs ("rank-0.out"); empty = the first rank's. Throws UserError.
  nlohmann::json Logs(const server::JobRecord& job, const std::string& source, int lines = 300) const;
  nlohmann::json Spec(const server::JobRecord& job) const;

  // JSON text that is safe inside HTML <script> (no '<', '>', '&'; invalid UTF-8 replaced).
  static std::string Dump(const nlohmann::json& j, bool html_safe = false);

 private:
  nlohmann::json Jobs(const http::Request& req) const;
  nlohmann::json Summary(const server::JobRecord& job) const;

  server::JobStore& store_;
  Thresholds thresholds_;
  MetricsCache cache_;
};

}  // namespace vicreg::web
