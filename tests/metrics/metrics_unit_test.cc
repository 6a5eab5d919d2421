// WorkerMetrics / CoordinatorMetrics through a real MetricsServer on port 0: the /metrics text
// is fetched over HTTP and parsed, and checked against the docs/METRICS.md contract.
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <ctime>
#include <thread>

#include "common/build_info.h"
#include "common/errors.h"
#include "common/metrics.h"
#include "tests/metrics/metric_names.h"
#include "tests/metrics/test_support.h"

namespace vicreg::metrics {
namespace {

using testing::Exposition;
using testing::HttpGet;
using testing::MetricSpec;

Exposition Scrape(const MetricsServer& server) {
  auto resp = HttpGet("127.0.0.1", server.port(), "/metrics");
  EXPECT_EQ(resp.status, 200) << resp.error;
  EXPECT_NE(resp.content_type.find("text/plain"), std::string::npos) << resp.content_type;
  return testing::ParseExposition(resp.body);
}

StepReport FullReport() {
  StepReport r;
  r.step = 120;
  r.epoch = 3;
  r.loss = 21.5;
  r.invariance = 0.25;
  r.variance = 0.5;
  r.covariance = 0.125;
  r.std_min = 0.0625;
  r.std_mean = 0.75;
  r.std_max = 1.5;
  r.pairwise_sim = 0.3125;
  r.cov_offdiag_sq = 0.001953125;
  r.collapsed_dims = 0.015625;
  r.rankme = 42.5;
  r.lr = 0.00075;
  r.grad_norm = 3.25;
  r.images_per_s = 812.5;
  r.step_seconds = 0.2;
  r.data_wait_seconds = 0.004;
  r.samples = 512;
  r.online_linear_top1 = 0.4375;
  r.online_knn_top1 = 0.40625;
  r.gpu_memory_allocated = 3.5 * (1 << 30);
  r.gpu_memory_max_allocated = 5.25 * (1 << 30);
  r.gpu_memory_reserved = 6.0 * (1 << 30);
  return r;
}

// Every series of `spec` has exactly the spec's label set (histograms: plus le on _bucket).
void ExpectSpec(const Exposition& e, const MetricSpec& spec, bool must_exist) {
  SCOPED_TRACE(spec.name);
  auto type = e.type.find(spec.name);
  ASSERT_NE(type, e.type.end()) << "no # TYPE line for " << spec.name;
  EXPECT_EQ(type->second, spec.type);
  EXPECT_FALSE(e.help.at(spec.name).empty()) << "no HELP text";
  std::vector<std::string> series_names = {spec.name};
  if (spec.type == "histogram") series_names = {spec.name + "_bucket", spec.name + "_sum", spec.name + "_count"};
  size_t n = 0;
  for (const auto& series : series_names) {
    for (const auto& s : e.Find(series)) {
      ++n;
      std::set<std::string> keys;
      for (const auto& [k, v] : s.labels) keys.insert(k);
      if (series.size() > 7 && series.compare(series.size() - 7, 7, "_bucket") == 0) {
        EXPECT_EQ(keys.count("le"), 1u) << series;
        keys.erase("le");
      }
      EXPECT_EQ(keys, spec.labels) << series;
      if (spec.type == "counter") {
        EXPECT_EQ(series.substr(series.size() - 6), "_total");
      }
    }
  }
  if (must_exist) {
    EXPECT_GT(n, 0u) << "no series of " << spec.name;
  }
}

TEST(MetricsServer, ServesMetricsOnAFreePort) {
  MetricsServer server("127.0.0.1", 0);
  EXPECT_GT(server.port(), 0);
  EXPECT_EQ(server.endpoint(), "127.0.0.1:" + std::to_string(server.port()));
  EXPECT_EQ(server.url(), "http://127.0.0.1:" + std::to_string(server.port()) + "/metrics");
  RegisterBuildInfo(*server.registry());
  auto e = Scrape(server);
  EXPECT_EQ(e.Value("vicreg_build_info", {{"version", BuildVersion()}, {"revision", BuildRevision()}}), 1.0);
  EXPECT_EQ(HttpGet("127.0.0.1", server.port(), "/nope").status, 404);
}

TEST(MetricsServer, TwoServersGetDistinctPorts) {
  MetricsServer a("127.0.0.1", 0), b("localhost", 0);
  EXPECT_NE(a.port(), b.port());
  EXPECT_EQ(b.endpoint(), "127.0.0.1:" + std::to_string(b.port()));
}

TEST(MetricsServer, RejectsInvalidAddressAndPortNamingTheValue) {
  try {
    MetricsServer s("not-an-ip", 0);
    FAIL() << "no error";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("'not-an-ip'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("127.0.0.1"), std::string::npos) << e.what();
  }
  for (int port : {-1, 65536, 100000}) {
    try {
      MetricsServer s("127.0.0.1", port);
      FAIL() << "no error for port " << port;
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find(std::to_string(port)), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("1..65535"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(MetricsServer(std::string(), 0), UserError);
  EXPECT_THROW(MetricsServer(MetricsServerOptions{"127.0.0.1", 0, 0}), UserError);
}

TEST(MetricsServer, PortInUseIsARuntimeFailureNamingTheEndpoint) {
  MetricsServer first("127.0.0.1", 0);
  try {
    MetricsServer second("127.0.0.1", first.port());
    FAIL() << "bound the same port twice";
  } catch (const RuntimeFailure& e) {
    EXPECT_NE(std::string(e.what()).find(first.endpoint()), std::string::npos) << e.what();
  }
  // The first server still serves.
  EXPECT_EQ(HttpGet("127.0.0.1", first.port(), "/metrics").status, 200);
}

TEST(MetricsServer, ServesIPv6Loopback) {
  std::unique_ptr<MetricsServer> s;
  try {
    s = std::make_unique<MetricsServer>("::1", 0);
  } catch (const RuntimeFailure& e) {
    GTEST_SKIP() << "no IPv6 loopback on this host: " << e.what();
  }
  EXPECT_EQ(s->endpoint(), "[::1]:" + std::to_string(s->port()));
  EXPECT_EQ(HttpGet("::1", s->port(), "/metrics").status, 200);
  MetricsServer bracketed("[::1]", 0);
  EXPECT_EQ(HttpGet("::1", bracketed.port(), "/metrics").status, 200);
}

// The server runs in processes with a large static TLS (LibTorch + OpenBLAS + glog ~108 KiB):
// its threads must not use small fixed stacks (civetweb's 100 KiB made Exposer fail there).
TEST(MetricsServer, ServesFromThreadsWithTheDefaultStack) {
  thread_local char big_tls[256 * 1024];  // more static TLS than civetweb's thread stacks hold
  big_tls[0] = 1;
  ASSERT_EQ(big_tls[0], 1);  // used: the array must stay in this binary's static TLS
  MetricsServer server(MetricsServerOptions{"127.0.0.1", 0, 4});
  for (int i = 0; i < 8; ++i) EXPECT_EQ(HttpGet("127.0.0.1", server.port(), "/metrics").status, 200);
}

TEST(MetricsServer, AnswersBadRequestsAndMethodsWithoutDying) {
  MetricsServer server("127.0.0.1", 0);
  server.AddHandler("/sd", "application/json", [] { return std::string("[]"); });
  EXPECT_EQ(testing::HttpRequest("127.0.0.1", server.port(), "POST /metrics HTTP/1.1\r\n\r\n").status, 405);
  EXPECT_EQ(testing::HttpRequest("127.0.0.1", server.port(), "DELETE /sd HTTP/1.1\r\n\r\n").status, 405);
  EXPECT_EQ(testing::HttpRequest("127.0.0.1", server.port(), "garbage\r\n\r\n").status, 400);
  auto head = testing::HttpRequest("127.0.0.1", server.port(), "HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.body.empty());
  EXPECT_EQ(HttpGet("127.0.0.1", server.port(), "/metrics?x=1").status, 200);
  // A client that connects and sends nothing must not block the others (2 threads, 5 s timeout).
  auto idle = testing::ConnectOnly("127.0.0.1", server.port());
  EXPECT_EQ(HttpGet("127.0.0.1", server.port(), "/sd").body, "[]");
  testing::CloseFd(idle);
}

TEST(MetricsServer, ExtraHandlersShareThePort) {
  MetricsServer server("127.0.0.1", 0);
  std::atomic<int> calls{0};
  server.AddHandler("/sd", "application/json", [&] {
    ++calls;
    return std::string(R"([{"targets":["127.0.0.1:1"],"labels":{"job_id":"j","rank":"0"}}])");
  });
  server.AddHandler("/broken", "text/plain", []() -> std::string { throw std::runtime_error("store is locked"); });
  auto sd = HttpGet("127.0.0.1", server.port(), "/sd");
  EXPECT_EQ(sd.status, 200);
  EXPECT_EQ(sd.content_type, "application/json");
  EXPECT_EQ(sd.body, R"([{"targets":["127.0.0.1:1"],"labels":{"job_id":"j","rank":"0"}}])");
  EXPECT_EQ(calls.load(), 1);
  auto broken = HttpGet("127.0.0.1", server.port(), "/broken");
  EXPECT_EQ(broken.status, 500);
  EXPECT_NE(broken.body.find("store is locked"), std::string::npos) << broken.body;
  EXPECT_EQ(HttpGet("127.0.0.1", server.port(), "/metrics").status, 200);
  EXPECT_EQ(HttpGet("127.0.0.1", server.port(), "/sd/x").status, 404);
  EXPECT_THROW(server.AddHandler("/sd", "text/plain", [] { return std::string(); }), InternalError);
  EXPECT_THROW(server.AddHandler("/metrics", "text/plain", [] { return std::string(); }), InternalError);
  EXPECT_THROW(server.AddHandler("sd", "text/plain", [] { return std::string(); }), InternalError);
}

TEST(MetricsWorker, ExportsTheContractBeforeAndAfterAReport) {
  MetricsServer server("127.0.0.1", 0);
  WorkerMetrics m(server.registry(), "job-7", 1);
  const double t0 = static_cast<double>(std::time(nullptr));
  {
    auto e = Scrape(server);
    for (const auto& spec : testing::WorkerSpecs()) {
      if (spec.after_report) {
        // Diagnostics must not read 0 (= "collapsed") before they were computed.
        EXPECT_TRUE(e.Find(spec.name).empty()) << spec.name << " exported before the first report";
      } else {
        ExpectSpec(e, spec, true);
      }
    }
    const std::map<std::string, std::string> me = {{"job_id", "job-7"}, {"rank", "1"}};
    EXPECT_EQ(e.Value("vicreg_train_steps_total", me), 0);
    EXPECT_EQ(e.Value("vicreg_loss_nonfinite_total", me), 0);
    EXPECT_EQ(e.Value("vicreg_train_epoch", me), 0);
    EXPECT_NEAR(e.Value("vicreg_last_step_timestamp_seconds", me), t0, 5);
    EXPECT_NEAR(e.Value("vicreg_checkpoint_last_timestamp_seconds", me), t0, 5);
  }
  m.SetEpoch(3);
  m.OnStep(0.2, 512, 0.004);
  m.OnStep(0.3, 512, 0.006);
  m.OnReport(FullReport());
  m.OnNonFiniteLoss();
  m.OnCheckpoint(1700000000.5);
  auto e = Scrape(server);
  for (const auto& spec : testing::WorkerSpecs()) ExpectSpec(e, spec, true);
  const std::map<std::string, std::string> me = {{"job_id", "job-7"}, {"rank", "1"}};
  auto with = [&](const char* k, const char* v) {
    auto l = me;
    l[k] = v;
    return l;
  };
  const StepReport r = FullReport();
  EXPECT_EQ(e.Value("vicreg_train_loss", with("component", "total")), r.loss);
  EXPECT_EQ(e.Value("vicreg_train_loss", with("component", "invariance")), r.invariance);
  EXPECT_EQ(e.Value("vicreg_train_loss", with("component", "variance")), r.variance);
  EXPECT_EQ(e.Value("vicreg_train_loss", with("component", "covariance")), r.covariance);
  EXPECT_EQ(e.Find("vicreg_train_loss").size(), 4u);
  EXPECT_EQ(e.Value("vicreg_embedding_std_min", me), *r.std_min);
  EXPECT_EQ(e.Value("vicreg_embedding_std_mean", me), *r.std_mean);
  EXPECT_EQ(e.Value("vicreg_embedding_std_max", me), *r.std_max);
  EXPECT_EQ(e.Value("vicreg_embedding_pairwise_similarity", me), *r.pairwise_sim);
  EXPECT_EQ(e.Value("vicreg_covariance_offdiag_sq_mean", me), *r.cov_offdiag_sq);
  EXPECT_EQ(e.Value("vicreg_embedding_collapsed_dims_ratio", me), *r.collapsed_dims);
  EXPECT_EQ(e.Value("vicreg_representation_effective_rank", me), *r.rankme);
  EXPECT_EQ(e.Value("vicreg_learning_rate", me), r.lr);
  EXPECT_EQ(e.Value("vicreg_grad_norm", me), r.grad_norm);
  EXPECT_EQ(e.Value("vicreg_train_images_per_second", me), r.images_per_s);
  EXPECT_EQ(e.Value("vicreg_online_top1_ratio", with("probe", "linear")), *r.online_linear_top1);
  EXPECT_EQ(e.Value("vicreg_online_top1_ratio", with("probe", "knn")), *r.online_knn_top1);
  EXPECT_EQ(e.Value("vicreg_gpu_memory_allocated_bytes", me), *r.gpu_memory_allocated);
  EXPECT_EQ(e.Value("vicreg_gpu_memory_max_allocated_bytes", me), *r.gpu_memory_max_allocated);
  EXPECT_EQ(e.Value("vicreg_gpu_memory_reserved_bytes", me), *r.gpu_memory_reserved);
  EXPECT_EQ(e.Value("vicreg_train_epoch", me), 3);
  EXPECT_EQ(e.Value("vicreg_train_steps_total", me), 2);
  EXPECT_EQ(e.Value("vicreg_train_samples_total", me), 1024);
  EXPECT_EQ(e.Value("vicreg_loss_nonfinite_total", me), 1);
  EXPECT_EQ(e.Value("vicreg_checkpoint_last_timestamp_seconds", me), 1700000000.5);
  EXPECT_NEAR(e.Value("vicreg_last_step_timestamp_seconds", me), static_cast<double>(std::time(nullptr)), 5);
  // Histograms: two steps observed; the data wait came from OnStep, so OnReport did not add a third.
  EXPECT_EQ(e.Value("vicreg_train_step_duration_seconds_count", me), 2);
  EXPECT_NEAR(e.Value("vicreg_train_step_duration_seconds_sum", me), 0.5, 1e-12);
  EXPECT_EQ(e.Value("vicreg_train_step_duration_seconds_bucket", with("le", "0.25")), 1);
  EXPECT_EQ(e.Value("vicreg_train_step_duration_seconds_bucket", with("le", "0.5")), 2);
  EXPECT_EQ(e.Value("vicreg_train_step_duration_seconds_bucket", with("le", "+Inf")), 2);
  EXPECT_EQ(e.Find("vicreg_train_step_duration_seconds_bucket").size(), StepDurationBuckets().size() + 1);
  EXPECT_EQ(StepDurationBuckets().front(), 0.001);
  EXPECT_EQ(StepDurationBuckets().back(), 60);
  EXPECT_EQ(e.Value("vicreg_data_wait_seconds_count", me), 2);
  EXPECT_NEAR(e.Value("vicreg_data_wait_seconds_sum", me), 0.010, 1e-12);
  // Never step or epoch as a label, on any series.
  for (const auto& s : e.samples) {
    EXPECT_EQ(s.labels.count("step"), 0u) << s.name;
    EXPECT_EQ(s.labels.count("epoch"), 0u) << s.name;
  }
}

// A CPU rank's reports carry no GPU memory: it exports none of the GPU series (not a 0 that reads
// as "no memory used"), while every other after-report metric appears.
TEST(MetricsWorker, CpuRanksExportNoGpuMemorySeries) {
  MetricsServer server("127.0.0.1", 0);
  WorkerMetrics m(server.registry(), "job-8", 0);
  StepReport r = FullReport();
  r.gpu_memory_allocated.reset();
  r.gpu_memory_max_allocated.reset();
  r.gpu_memory_reserved.reset();
  m.OnReport(r);
  m.OnReport(r);
  auto e = Scrape(server);
  for (const auto& spec : testing::WorkerSpecs()) {
    if (spec.cuda_only) {
      EXPECT_TRUE(e.Find(spec.name).empty()) << spec.name << " exported by a CPU rank";
    } else {
      ExpectSpec(e, spec, true);
    }
  }
}

TEST(MetricsWorker, CountersOnlyIncreaseAndNonFiniteValuesKeepTheLastGoodOnes) {
  MetricsServer server("127.0.0.1", 0);
  WorkerMetrics m(server.registry(), "j", 0);
  const std::map<std::string, std::string> me = {{"job_id", "j"}, {"rank", "0"}};
  double last_steps = 0, last_samples = 0;
  for (int i = 1; i <= 5; ++i) {
    m.OnStep(0.01 * i, 64);
    auto e = Scrape(server);
    const double steps = e.Value("vicreg_train_steps_total", me);
    const double samples = e.Value("vicreg_train_samples_total", me);
    EXPECT_EQ(steps, last_steps + 1);
    EXPECT_EQ(samples, last_samples + 64);
    last_steps = steps;
    last_samples = samples;
  }
  m.OnReport(FullReport());
  StepReport bad = FullReport();
  bad.loss = std::nan("");
  bad.invariance = INFINITY;
  bad.grad_norm = std::nan("");
  bad.loss_finite = false;
  bad.std_min.reset();  // not computed this step: unchanged
  m.OnReport(bad);
  m.OnNonFiniteLoss();
  m.OnNonFiniteLoss();
  m.OnCheckpoint(std::nan(""));  // ignored
  auto e = Scrape(server);
  EXPECT_EQ(e.Value("vicreg_train_loss", {{"rank", "0"}, {"component", "total"}}), FullReport().loss);
  EXPECT_EQ(e.Value("vicreg_train_loss", {{"rank", "0"}, {"component", "invariance"}}), FullReport().invariance);
  EXPECT_EQ(e.Value("vicreg_grad_norm", me), FullReport().grad_norm);
  EXPECT_EQ(e.Value("vicreg_embedding_std_min", me), *FullReport().std_min);
  EXPECT_EQ(e.Value("vicreg_loss_nonfinite_total", me), 2);
  EXPECT_GT(e.Value("vicreg_checkpoint_last_timestamp_seconds", me), 1e9);
  // No data wait measured per step: the report's value is observed (once per report).
  EXPECT_EQ(e.Value("vicreg_data_wait_seconds_count", me), 2);
}

TEST(MetricsWorker, RanksAndACoordinatorCanShareOneRegistry) {
  MetricsServer server("127.0.0.1", 0);
  WorkerMetrics r0(server.registry(), "j", 0);
  WorkerMetrics r1(server.registry(), "j", 1);
  CoordinatorMetrics c(server.registry());
  r0.OnStep(0.1, 8);
  r1.OnStep(0.1, 8);
  r1.OnStep(0.1, 8);
  auto e = Scrape(server);
  EXPECT_EQ(e.Value("vicreg_train_steps_total", {{"rank", "0"}}), 1);
  EXPECT_EQ(e.Value("vicreg_train_steps_total", {{"rank", "1"}}), 2);
  EXPECT_EQ(e.Find("vicreg_build_info").size(), 1u);
}

TEST(MetricsCoordinator, ExportsTheContract) {
  MetricsServer server("127.0.0.1", 0);
  CoordinatorMetrics m(server.registry());
  {
    auto e = Scrape(server);
    for (const auto& spec : testing::CoordinatorSpecs()) {
      if (!spec.after_report) ExpectSpec(e, spec, true);
    }
    // Documented enum values start at 0.
    for (const char* s : {"queued", "starting", "running", "restarting", "succeeded", "failed", "cancelled"}) {
      EXPECT_EQ(e.Value("vicreg_jobs", {{"state", s}}), 0) << s;
    }
    for (const char* s : {"accepted", "rejected", "duplicate"}) {
      EXPECT_EQ(e.Value("vicreg_jobs_submitted_total", {{"result", s}}), 0) << s;
    }
    EXPECT_EQ(e.Value("vicreg_slots", {{"state", "free"}}), 0);
  }
  m.SetJobs("running", 2);
  m.SetJobs("queued", 5);
  m.SetJobs("queued", 4);
  m.OnSubmit("accepted");
  m.OnSubmit("accepted");
  m.OnSubmit("rejected");
  m.OnRestart("rank_exit");
  m.OnRestart("oom");  // an undocumented reason is still exported
  m.SetSlots("free", 1);
  m.SetSlots("used", 3);
  m.SetEvalTop1("job-1", "cifar10", "linear", 0.8125, 1700000100);
  m.SetEvalTop1("job-1", "cifar10", "knn", 0.78125, 1700000200);
  m.SetEvalTop1("job-1", "cifar10", "knn", 85.0, 1700000300);  // a percentage: ignored
  m.OnEvalFailure("job-2");
  m.OnRpc("SubmitJob", "OK", 0.002);
  m.OnRpc("SubmitJob", "OK", 0.004);
  m.OnRpc("SubmitJob", "INVALID_ARGUMENT", 0.001);
  m.OnRpc("WatchJob", "CANCELLED", 12.0);
  auto e = Scrape(server);
  for (const auto& spec : testing::CoordinatorSpecs()) ExpectSpec(e, spec, true);
  EXPECT_EQ(e.Value("vicreg_jobs", {{"state", "running"}}), 2);
  EXPECT_EQ(e.Value("vicreg_jobs", {{"state", "queued"}}), 4);
  EXPECT_EQ(e.Value("vicreg_jobs_submitted_total", {{"result", "accepted"}}), 2);
  EXPECT_EQ(e.Value("vicreg_jobs_submitted_total", {{"result", "rejected"}}), 1);
  EXPECT_EQ(e.Value("vicreg_job_restarts_total", {{"reason", "rank_exit"}}), 1);
  EXPECT_EQ(e.Value("vicreg_job_restarts_total", {{"reason", "oom"}}), 1);
  EXPECT_EQ(e.Value("vicreg_slots", {{"state", "used"}}), 3);
  EXPECT_EQ(e.Value("vicreg_eval_top1_ratio", {{"job_id", "job-1"}, {"dataset", "cifar10"}, {"probe", "linear"}}),
            0.8125);
  EXPECT_EQ(e.Value("vicreg_eval_top1_ratio", {{"job_id", "job-1"}, {"dataset", "cifar10"}, {"probe", "knn"}}),
            0.78125);
  EXPECT_EQ(e.Value("vicreg_eval_last_timestamp_seconds", {{"job_id", "job-1"}}), 1700000200);
  EXPECT_EQ(e.Value("vicreg_eval_failures_total", {{"job_id", "job-2"}}), 1);
  EXPECT_EQ(e.Value("vicreg_grpc_requests_total", {{"method", "SubmitJob"}, {"code", "OK"}}), 2);
  EXPECT_EQ(e.Value("vicreg_grpc_requests_total", {{"method", "SubmitJob"}, {"code", "INVALID_ARGUMENT"}}), 1);
  EXPECT_EQ(e.Value("vicreg_grpc_request_duration_seconds_count", {{"method", "SubmitJob"}}), 3);
  EXPECT_NEAR(e.Value("vicreg_grpc_request_duration_seconds_sum", {{"method", "SubmitJob"}}), 0.007, 1e-12);
  EXPECT_EQ(e.Value("vicreg_grpc_request_duration_seconds_bucket", {{"method", "WatchJob"}, {"le", "10"}}), 0);
  EXPECT_EQ(e.Value("vicreg_grpc_request_duration_seconds_bucket", {{"method", "WatchJob"}, {"le", "30"}}), 1);

  m.ForgetJob("job-1");
  m.ForgetJob("job-2");
  m.ForgetJob("never-seen");
  e = Scrape(server);
  EXPECT_TRUE(e.Find("vicreg_eval_top1_ratio").empty());
  EXPECT_TRUE(e.Find("vicreg_eval_last_timestamp_seconds").empty());
  EXPECT_TRUE(e.Find("vicreg_eval_failures_total").empty());
  // A forgotten job can come back (e.g. a re-evaluation).
  m.OnEvalFailure("job-2");
  e = Scrape(server);
  EXPECT_EQ(e.Value("vicreg_eval_failures_total", {{"job_id", "job-2"}}), 1);
}

TEST(MetricsCoordinator, ConcurrentCallersLoseNoIncrement) {
  MetricsServer server("127.0.0.1", 0);
  CoordinatorMetrics m(server.registry());
  constexpr int kThreads = 4, kCalls = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kCalls; ++i) {
        m.OnRpc(i % 2 ? "GetJob" : "ListJobs", "OK", 0.001);
        m.OnSubmit("accepted");
        m.SetJobs("state-" + std::to_string(t), i);
      }
    });
  }
  for (auto& t : threads) t.join();
  auto e = Scrape(server);
  EXPECT_EQ(e.Value("vicreg_grpc_requests_total", {{"method", "GetJob"}}), kThreads * kCalls / 2);
  EXPECT_EQ(e.Value("vicreg_grpc_requests_total", {{"method", "ListJobs"}}), kThreads * kCalls / 2);
  EXPECT_EQ(e.Value("vicreg_jobs_submitted_total", {{"result", "accepted"}}), kThreads * kCalls);
  EXPECT_EQ(e.Value("vicreg_jobs", {{"state", "state-0"}}), kCalls - 1);
}

// The per-step cost of the layer, against the 2% budget of a step: a small CPU step takes
// tens of milliseconds; the bound below is ~100x what the layer needs, so it does not flake.
TEST(MetricsWorker, PerStepCostIsMicroseconds) {
  MetricsServer server("127.0.0.1", 0);
  WorkerMetrics m(server.registry(), "j", 0);
  const StepReport r = FullReport();
  constexpr int kSteps = 20000;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kSteps; ++i) {
    m.OnStep(0.02, 256, 0.001);
    if (i % 10 == 0) m.OnReport(r);
  }
  const double per_step_us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / kSteps;
  RecordProperty("per_step_us", std::to_string(per_step_us));
  std::printf("metrics cost per step (OnStep + OnReport every 10): %.3f us\n", per_step_us);
  EXPECT_LT(per_step_us, 100.0);
}

}  // namespace
}  // namespace vicreg::metrics
