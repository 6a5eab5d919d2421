// vicreg_coordinator_bench: load generator for the coordinator API (issue 6, "Performance").
//
//   vicreg_coordinator_bench --server HOST:PORT [--token-file F] [--clients 100] [--duration 10]
//                            [--mix submit=1,get=4,list=1] [--rate R] [--preload 10000] [--job FILE]
//
// Run it against a coordinator that never starts jobs (`vicreg_coordinator --launcher none`),
// so that only the API, the store and the scheduler's bookkeeping are measured. Phases:
//   1. preload: --preload jobs submitted by 16 threads (not measured, reported as a rate);
//   2. load: --clients threads, one channel each, issuing SubmitJob / GetJob / ListJobs(page 100)
//      by the --mix weights for --duration seconds, either as fast as possible (closed loop:
//      saturation throughput) or --rate requests/s each (latency at that offered load);
//      per-method p50/p99/max latency and throughput;
//   3. listing: ListJobs first page (100) x 50 and a full scan of every stored job in pages of
//      1000, sequentially.
// Prints one JSON object. Exit 0, 2 on bad usage, 1 when the coordinator cannot be reached.
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "common/build_info.h"
#include "common/run_contract.h"
#include "vicreg/v1/coordinator.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string server = "127.0.0.1:50051";
  std::string token_file;
  std::string token;
  int clients = 100;
  double duration_s = 10;
  std::string mix = "submit=1,get=4,list=1";
  int preload = 0;
  std::string job_file;
  double rate = 0;  // requests/s per client (0 = closed loop, as fast as possible)
  double timeout_s = 30;
};

std::shared_ptr<grpc::Channel> NewChannel(const std::string& server) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // one connection per simulated client
  return grpc::CreateCustomChannel(server, grpc::InsecureChannelCredentials(), args);
}

std::unique_ptr<grpc::ClientContext> Ctx(const Options& o) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(static_cast<int64_t>(o.timeout_s * 1000)));
  if (!o.token.empty()) ctx->AddMetadata("authorization", "Bearer " + o.token);
  return ctx;
}

struct Stats {
  std::vector<double> ms;
  int64_t errors = 0;
  std::string last_error;
};

nlohmann::json Summarize(Stats s, double wall_s) {
  std::sort(s.ms.begin(), s.ms.end());
  auto pct = [&](double p) {
    if (s.ms.empty()) return 0.0;
    size_t i = static_cast<size_t>(std::ceil(p * s.ms.size())) - 1;
    return s.ms[std::min(i, s.ms.size() - 1)];
  };
  nlohmann::json j = {{"count", s.ms.size()},
                      {"errors", s.errors},
                      {"p50_ms", pct(0.50)},
                      {"p99_ms", pct(0.99)},
                      {"max_ms", s.ms.empty() ? 0.0 : s.ms.back()},
                      {"per_s", wall_s > 0 ? s.ms.size() / wall_s : 0.0}};
  if (!s.last_error.empty()) j["last_error"] = s.last_error;
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{
      "vicreg_coordinator_bench: concurrent SubmitJob/GetJob/ListJobs load against a vicreg_coordinator "
      "(start it with --launcher none). Prints one JSON object.",
      "vicreg_coordinator_bench"};
  app.add_option("--server", o.server, "coordinator HOST:PORT")->capture_default_str();
  app.add_option("--token-file", o.token_file, "bearer token file");
  app.add_option("--clients", o.clients, "concurrent clients")->check(CLI::Range(1, 10000))->capture_default_str();
  app.add_option("--duration", o.duration_s, "seconds of load")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--mix", o.mix, "operation weights: submit=N,get=N,list=N")->capture_default_str();
  app.add_option("--preload", o.preload, "jobs submitted before the measurement")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--rate", o.rate, "requests per second per client (0 = closed loop: saturate the coordinator)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--job", o.job_file, "job YAML to submit (default: a small built-in job)");
  app.set_version_flag("--version", [] { return vicreg::VersionText("vicreg_coordinator_bench"); },
                       vicreg::kVersionFlagHelp);
  CLI11_PARSE(app, argc, argv);

  std::map<std::string, int> weights = {{"submit", 0}, {"get", 0}, {"list", 0}};
  {
    std::stringstream ss(o.mix);
    std::string item;
    while (std::getline(ss, item, ',')) {
      auto eq = item.find('=');
      std::string k = item.substr(0, eq);
      if (eq == std::string::npos || !weights.count(k)) {
        std::cerr << "vicreg_coordinator_bench: --mix: expected submit=N,get=N,list=N, got '" << o.mix << "'\n";
        return vicreg::kExitUsage;
      }
      weights[k] = std::atoi(item.c_str() + eq + 1);
    }
  }
  int total_weight = weights["submit"] + weights["get"] + weights["list"];
  if (total_weight <= 0) {
    std::cerr << "vicreg_coordinator_bench: --mix: the weights sum to 0\n";
    return vicreg::kExitUsage;
  }
  if (!o.token_file.empty()) {
    std::ifstream f(o.token_file);
    if (!(f >> o.token)) {
      std::cerr << "vicreg_coordinator_bench: cannot read --token-file " << o.token_file << "\n";
      return vicreg::kExitUsage;
    }
  }
  std::string yaml = "name: bench\nresources: {ranks: 1}\ntrain: {batch_size: 32, num_epochs: 2, warmup_epochs: 0}\n";
  if (!o.job_file.empty()) {
    std::ifstream f(o.job_file);
    if (!f) {
      std::cerr << "vicreg_coordinator_bench: cannot read --job " << o.job_file << "\n";
      return vicreg::kExitUsage;
    }
    std::stringstream ss;
    ss << f.rdbuf();
    yaml = ss.str();
  }

  // Reachability check (and a first job id for GetJob).
  std::vector<std::string> ids;
  std::mutex ids_mu;
  {
    auto stub = vicreg::v1::Coordinator::NewStub(NewChannel(o.server));
    vicreg::v1::SubmitJobRequest req;
    req.set_job_yaml(yaml);
    vicreg::v1::SubmitJobResponse resp;
    auto ctx = Ctx(o);
    grpc::Status st = stub->SubmitJob(ctx.get(), req, &resp);
    if (!st.ok()) {
      std::cerr << "vicreg_coordinator_bench: SubmitJob to " << o.server << " failed: " << st.error_message() << "\n";
      return vicreg::kExitFailure;
    }
    ids.push_back(resp.job_id());
  }

  nlohmann::json out = {{"server", o.server},
                        {"clients", o.clients},
                        {"duration_s", o.duration_s},
                        {"mix", o.mix},
                        {"rate_per_client", o.rate}};

  // 1. preload
  if (o.preload > 0) {
    std::atomic<int> next{0};
    auto t0 = Clock::now();
    std::vector<std::thread> threads;
    std::atomic<int64_t> errors{0};
    for (int t = 0; t < 16; ++t) {
      threads.emplace_back([&] {
        auto stub = vicreg::v1::Coordinator::NewStub(NewChannel(o.server));
        while (next.fetch_add(1) < o.preload) {
          vicreg::v1::SubmitJobRequest req;
          req.set_job_yaml(yaml);
          vicreg::v1::SubmitJobResponse resp;
          auto ctx = Ctx(o);
          if (stub->SubmitJob(ctx.get(), req, &resp).ok()) {
            std::lock_guard<std::mutex> lock(ids_mu);
            ids.push_back(resp.job_id());
          } else {
            ++errors;
          }
        }
      });
    }
    for (auto& t : threads) t.join();
    double s = std::chrono::duration<double>(Clock::now() - t0).count();
    out["preload"] = {{"jobs", o.preload}, {"seconds", s}, {"per_s", o.preload / s}, {"errors", errors.load()}};
  }

  // 2. concurrent load
  std::map<std::string, Stats> merged;
  std::mutex merged_mu;
  std::atomic<bool> go{false};
  auto start = Clock::now();
  auto end = start + std::chrono::duration<double>(o.duration_s);
  {
    std::vector<std::thread> threads;
    for (int c = 0; c < o.clients; ++c) {
      threads.emplace_back([&, c] {
        auto stub = vicreg::v1::Coordinator::NewStub(NewChannel(o.server));
        std::mt19937 rng(1234 + c);
        std::map<std::string, Stats> local;
        while (!go) std::this_thread::yield();
        // Open loop at --rate: clients start spread over one interval, then send every 1/rate s
        // (immediately when behind). Latency is measured from the send.
        auto interval =
            std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.rate > 0 ? 1.0 / o.rate : 0.0));
        auto next_send = Clock::now() + interval * c / std::max(1, o.clients);
        while (Clock::now() < end) {
          if (o.rate > 0) {
            std::this_thread::sleep_until(next_send);
            next_send += interval;
            if (Clock::now() >= end) break;
          }
          int pick = std::uniform_int_distribution<int>(0, total_weight - 1)(rng);
          std::string op = pick < weights["submit"]                    ? "SubmitJob"
                           : pick < weights["submit"] + weights["get"] ? "GetJob"
                                                                       : "ListJobs";
          auto ctx = Ctx(o);
          grpc::Status st;
          auto t0 = Clock::now();
          if (op == "SubmitJob") {
            vicreg::v1::SubmitJobRequest req;
            req.set_job_yaml(yaml);
            vicreg::v1::SubmitJobResponse resp;
            st = stub->SubmitJob(ctx.get(), req, &resp);
            if (st.ok()) {
              std::lock_guard<std::mutex> lock(ids_mu);
              ids.push_back(resp.job_id());
            }
          } else if (op == "GetJob") {
            vicreg::v1::GetJobRequest req;
            {
              std::lock_guard<std::mutex> lock(ids_mu);
              req.set_job_id(ids[std::uniform_int_distribution<size_t>(0, ids.size() - 1)(rng)]);
            }
            vicreg::v1::Job resp;
            st = stub->GetJob(ctx.get(), req, &resp);
          } else {
            vicreg::v1::ListJobsRequest req;
            req.set_page_size(100);
            vicreg::v1::ListJobsResponse resp;
            st = stub->ListJobs(ctx.get(), req, &resp);
          }
          double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
          Stats& s = local[op];
          if (st.ok()) {
            s.ms.push_back(ms);
          } else {
            ++s.errors;
            s.last_error = st.error_message();
          }
        }
        std::lock_guard<std::mutex> lock(merged_mu);
        for (auto& [op, s] : local) {
          Stats& m = merged[op];
          m.ms.insert(m.ms.end(), s.ms.begin(), s.ms.end());
          m.errors += s.errors;
          if (!s.last_error.empty()) m.last_error = s.last_error;
        }
      });
    }
    start = Clock::now();
    end = start + std::chrono::duration<double>(o.duration_s);
    go = true;
    for (auto& t : threads) t.join();
  }
  double wall = std::chrono::duration<double>(Clock::now() - start).count();
  int64_t total_ok = 0;
  nlohmann::json ops = nlohmann::json::object();
  for (auto& [op, s] : merged) {
    total_ok += static_cast<int64_t>(s.ms.size());
    ops[op] = Summarize(s, wall);
  }
  out["load"] = {{"wall_s", wall}, {"requests_per_s", total_ok / wall}, {"ops", ops}};

  // 3. listing over everything stored
  {
    auto stub = vicreg::v1::Coordinator::NewStub(NewChannel(o.server));
    Stats first_page;
    int64_t stored = 0;
    for (int i = 0; i < 50; ++i) {
      vicreg::v1::ListJobsRequest req;
      req.set_page_size(100);
      vicreg::v1::ListJobsResponse resp;
      auto ctx = Ctx(o);
      auto t0 = Clock::now();
      grpc::Status st = stub->ListJobs(ctx.get(), req, &resp);
      first_page.ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      if (!st.ok()) ++first_page.errors;
      stored = resp.total_size();
    }
    auto t0 = Clock::now();
    int64_t seen = 0, pages = 0;
    vicreg::v1::ListJobsRequest req;
    req.set_page_size(1000);
    while (true) {
      vicreg::v1::ListJobsResponse resp;
      auto ctx = Ctx(o);
      if (!stub->ListJobs(ctx.get(), req, &resp).ok()) break;
      seen += resp.jobs_size();
      ++pages;
      if (resp.next_page_token().empty()) break;
      req.set_page_token(resp.next_page_token());
    }
    double scan_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    out["listing"] = {{"stored_jobs", stored},
                      {"first_page_100", Summarize(first_page, 0)},
                      {"full_scan", {{"jobs", seen}, {"pages_of_1000", pages}, {"ms", scan_ms}}}};
  }
  std::cout << out.dump(2) << std::endl;
  return vicreg::kExitOk;
}
