// vicreg_web_bench: latency of the web UI's metrics API on a long run.
//
//   vicreg_web_bench [--steps 100000] [--repeats 20] [--max-points 2000] [--dir DIR]
//
// Writes a synthetic <run_dir>/metrics.jsonl of --steps lines with every key the worker writes
// (docs/ARCHITECTURE.md "metrics.jsonl on resume"), stores a job pointing at it, serves the web UI
// on a loopback port (the coordinator's http::Server + WebUi) and times, over real HTTP:
//   cold: the first /api/v1/jobs/<id>/metrics (parses the whole file),
//   warm: --repeats more (cached columns, downsampled again each time; p50 and max), and the same
//         answer computed in process without HTTP (warm_compute),
//   grow: after appending 1% more lines (parses only the new bytes),
// against a reference measured in the same run: reading the file's bytes once (cat-like).
// Prints one JSON object; exit 1 if a series has more than --max-points points.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include "common/errors.h"
#include "common/fs.h"
#include "common/http_client.h"
#include "common/http_server.h"
#include "server/http/web_ui.h"
#include "server/store.h"

namespace {

using Clock = std::chrono::steady_clock;
double Ms(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); }

void WriteLines(const std::string& path, int64_t first, int64_t count, int64_t total, bool append) {
  std::ofstream f(path, append ? std::ios::app : std::ios::trunc);
  std::mt19937_64 rng(static_cast<uint64_t>(first));
  std::uniform_real_distribution<double> u(0, 1);
  for (int64_t s = first; s < first + count; ++s) {
    const double t = static_cast<double>(s) / static_cast<double>(total);
    nlohmann::ordered_json j;
    j["step"] = s;
    j["epoch"] = 1 + s * 100 / total;
    j["loss"] = 40 * std::exp(-3 * t) + u(rng);
    j["invariance"] = 0.5 * std::exp(-2 * t) + 0.01 * u(rng);
    j["variance"] = 0.8 * std::exp(-4 * t) + 0.01 * u(rng);
    j["covariance"] = 0.3 * std::exp(-t) + 0.01 * u(rng);
    j["std_min"] = 0.2 + 0.5 * t + 0.01 * u(rng);
    j["std_mean"] = 0.6 + 0.2 * t;
    j["std_max"] = 1.2 - 0.1 * t;
    j["pairwise_sim"] = 0.3 * std::exp(-2 * t) + 0.01 * u(rng);
    j["cov_offdiag_sq"] = 1e-3 * std::exp(-t) * u(rng);
    j["collapsed_dims"] = 0.0;
    j["rankme"] = 20 + 150 * t + u(rng);
    j["lr"] = 1e-3 * 0.5 * (1 + std::cos(M_PI * t));
    j["grad_norm"] = 1 + u(rng);
    j["images_per_s"] = 1400 + 50 * u(rng);
    j["data_wait_s"] = 1e-4 * u(rng);
    j["step_s"] = 0.18 + 0.02 * u(rng);
    j["samples"] = 256;
    f << j.dump() << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace vicreg;
  CLI::App app("vicreg_web_bench: latency of the web UI's metrics API on a long synthetic run");
  int64_t steps = 100000;
  int repeats = 20;
  int max_points = 2000;
  std::string dir;
  app.add_option("--steps", steps, "lines of the synthetic metrics.jsonl")->capture_default_str()->check(
      CLI::Range(int64_t{1}, int64_t{100000000}));
  app.add_option("--repeats", repeats, "warm requests")->capture_default_str()->check(CLI::Range(1, 100000));
  app.add_option("--max-points", max_points, "max_points of each request (2..2000)")
      ->capture_default_str()
      ->check(CLI::Range(2, 2000));
  app.add_option("--dir", dir, "work directory (default: a new temporary one, removed at the end)");
  CLI11_PARSE(app, argc, argv);
  try {
    bool remove = false;
    if (dir.empty()) {
      char tmpl[] = "/tmp/vicreg-web-bench.XXXXXX";
      if (mkdtemp(tmpl) == nullptr) throw RuntimeFailure("mkdtemp failed");
      dir = tmpl;
      remove = true;
    }
    fs::MakeDirs(dir + "/runs");
    server::JobStore::Options so;
    so.path = dir + "/coordinator.db";
    so.runs_root = dir + "/runs";
    server::JobStore store(so);
    server::JobRecord rec;
    rec.name = "bench";
    rec.state = server::JobState::kRunning;
    server::EventRecord ev;
    ev.message = "submitted";
    ev.kind = server::EventKind::kState;
    rec = store.InsertJob(rec, ev).job;
    fs::MakeDirs(rec.run_dir);
    const std::string path = rec.run_dir + "/metrics.jsonl";
    std::cerr << "vicreg_web_bench: writing " << steps << " lines to " << path << " ..." << std::endl;
    WriteLines(path, 1, steps, steps, false);

    // Reference: the bytes of the file, read once (page cache warm, as for the API).
    auto r0 = Clock::now();
    const std::string bytes = fs::ReadFile(path);
    auto r1 = Clock::now();
    const double read_ms = Ms(r0, r1);

    http::Server server(http::ServerOptions{});
    web::WebUi ui(store, web::WebUiOptions{});
    ui.Mount(server);
    const std::string url = "/api/v1/jobs/" + rec.id + "/metrics?max_points=" + std::to_string(max_points);
    auto get = [&](double* ms) {
      auto a = Clock::now();
      auto r = http::Get(server.endpoint(), url);
      *ms = Ms(a, Clock::now());
      if (!r.error.empty() || r.status != 200) throw RuntimeFailure("GET " + url + ": " + r.error + r.body);
      return r;
    };
    double cold_ms = 0;
    auto first = get(&cold_ms);
    auto doc = nlohmann::json::parse(first.body);
    size_t most = 0;
    for (auto& [k, v] : doc["series"].items()) most = std::max(most, v.size());
    std::vector<double> warm;
    for (int i = 0; i < repeats; ++i) {
      double ms = 0;
      get(&ms);
      warm.push_back(ms);
    }
    std::sort(warm.begin(), warm.end());
    // The same answer computed in process (cached columns -> downsampled JSON), without HTTP/gzip.
    std::vector<double> compute;
    {
      auto job = ui.api().FindJob(rec.id);
      web::SeriesQuery q;
      q.max_points = max_points;
      for (int i = 0; i < repeats; ++i) {
        auto a = Clock::now();
        const std::string body = ui.api().MetricsJson(*job, q);
        compute.push_back(Ms(a, Clock::now()));
        if (body.size() < 10) throw RuntimeFailure("empty metrics JSON");
      }
      std::sort(compute.begin(), compute.end());
    }
    const int64_t more = std::max<int64_t>(1, steps / 100);
    WriteLines(path, steps + 1, more, steps, true);
    double grow_ms = 0;
    auto grown = get(&grow_ms);
    const int64_t rows_after = nlohmann::json::parse(grown.body)["rows"].get<int64_t>();

    nlohmann::ordered_json out;
    out["steps"] = steps;
    out["file_mb"] = static_cast<double>(bytes.size()) / 1e6;
    out["series"] = doc["series"].size();
    out["max_points"] = max_points;
    out["points_per_series"] = most;
    out["response_kb"] = static_cast<double>(first.body.size()) / 1e3;
    out["reference_read_file_ms"] = read_ms;
    out["cold_ms"] = cold_ms;
    out["warm_p50_ms"] = warm[warm.size() / 2];
    out["warm_max_ms"] = warm.back();
    out["warm_compute_p50_ms"] = compute[compute.size() / 2];
    out["append_1pct_ms"] = grow_ms;
    out["rows_after_append"] = rows_after;
    out["cold_over_read"] = cold_ms / std::max(read_ms, 1e-3);
    out["warm_over_read"] = warm[warm.size() / 2] / std::max(read_ms, 1e-3);
    out["target_ms"] = 200;
    std::cout << out.dump() << std::endl;
    std::cerr << "vicreg_web_bench: " << steps << " steps (" << bytes.size() / 1000000 << " MB): cold " << cold_ms
              << " ms, warm p50 " << warm[warm.size() / 2] << " ms (max " << warm.back() << "), after +1% "
              << grow_ms << " ms; reading the file alone " << read_ms << " ms; " << most << " points per series"
              << std::endl;
    if (remove) std::filesystem::remove_all(dir);
    if (static_cast<int>(most) > max_points || rows_after != steps + more) {
      std::cerr << "vicreg_web_bench: FAILED: " << most << " points per series (max " << max_points << "), rows "
                << rows_after << " (expected " << steps + more << ")" << std::endl;
      return 1;
    }
    return 0;
  } catch (const UserError& e) {
    std::cerr << "vicreg_web_bench: " << e.what() << std::endl;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "vicreg_web_bench: " << e.what() << std::endl;
    return 1;
  }
}
