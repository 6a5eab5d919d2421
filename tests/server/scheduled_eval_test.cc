// Scheduled evaluation end to end with the REAL binaries: vicreg_coordinator launching 2
// vicreg_worker ranks under mpirun (local launcher, 2 CPU slots) and running the real
// vicreg_eval (worker/eval) on the checkpoints the job's eval section names, while training
// continues. (coordinator_test.cc covers retries and failures with the stand-in fake_eval.py.)
// The job: a 2-block ViT at 32 px on 512 Fashion-MNIST images, 8 epochs of 8 steps, eval of
// epochs 1 and 2 on 512/256 probe images: about 10 s on a 2-core machine. Then the checkpoints and
// the exported encoder through vicregctl (ListCheckpoints, ExportEncoder).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "server/process.h"
#include "tests/server/test_util.h"

namespace vicreg {
namespace {

using testutil::Coordinator;
using testutil::TempDir;

const char* kFashionMnist = "/usr/share/datasets/fashion-mnist";

std::string EvalBinary() { return testutil::BinaryDir() + "/worker/eval/vicreg_eval"; }

// The job: training keeps going for 6 epochs (seconds) after the epoch-2 checkpoint, so the
// evaluations of epochs 1 and 2 start while the ranks still train; keep_last 1 also checks that
// the evaluated epochs outlive checkpoint retention.
std::string JobYaml() {
  return std::string(
             "name: scheduled_eval\n"
             "max_restarts: 0\n"
             "resources: {ranks: 2, device: cpu, threads_per_rank: 1}\n"
             "data: {dataset: fashion_mnist, data_dir: ") +
         kFashionMnist +
         ", limit: 512, num_workers: 1}\n"
         "model: {backbone_name: vit_custom, image_size: 32, patch_size: 8, embed_dim: 64, depth: 2, num_heads: 2}\n"
         "train: {batch_size: 32, num_epochs: 8, warmup_epochs: 0, log_every: 1, seed: 7,\n"
         "        vicreg: {proj_dim: 128, proj_hidden_dim: 128}}\n"
         "checkpoint: {every_epochs: 1, keep_last: 1}\n"
         "eval: {epochs: [1, 2], probes: [linear, knn], limit_train: 512, limit_test: 256, max_attempts: 1}\n";
}

// The value of the Prometheus sample `series` (exact label set as rendered) in `text`; NaN if absent.
double Sample(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::strtod(line.c_str() + series.size() + 1, nullptr);
  }
  return std::nan("");
}

const v1::EvalRow* FindRow(const v1::EvalTask& t, const std::string& model, const std::string& probe) {
  for (const auto& r : t.rows())
    if (r.model() == model && r.probe() == probe) return &r;
  return nullptr;
}

TEST(ScheduledEvalTest, RealEvalOfTwoEpochsRunsWhileTrainingContinuesAndIsStoredFiledAndExported) {
  for (const std::string& b : {testutil::CoordinatorBinary(), testutil::CtlBinary(), testutil::RealWorkerBinary(),
                               EvalBinary(), testutil::BinaryDir() + "/server/vicreg_job_shim"}) {
    if (access(b.c_str(), X_OK) != 0) GTEST_SKIP() << b << " is not built";
  }
  ASSERT_EQ(access((std::string(kFashionMnist) + "/train-images-idx3-ubyte.gz").c_str(), R_OK), 0)
      << "dataset-fashion-mnist is not installed (deploy/install-deps.sh installs it)";

  TempDir dir("sched-eval");
  Coordinator c(dir.path() + "/state",
                {"--slots", "2", "--worker-binary", testutil::RealWorkerBinary(), "--eval-binary", EvalBinary(),
                 "--eval-slots", "1", "--poll-interval", "0.1", "--eval-retry-backoff", "0.5", "--stop-grace", "5",
                 "--restart-backoff", "0.5", "--no-progress-timeout", "120"});
  c.Start();
  const std::string job_yaml = dir.path() + "/job.yaml";
  testutil::WriteText(job_yaml, JobYaml());
  auto submit = c.Ctl({"submit", job_yaml, "--wait"}, 50);
  ASSERT_EQ(submit.exit_code, 0) << submit.out << submit.err << c.log();
  const std::string id = submit.out.substr(0, submit.out.find('\n'));
  ASSERT_EQ(id, "job-000001") << submit.out;
  const v1::Job job = c.Get(id);
  ASSERT_EQ(job.state(), v1::SUCCEEDED) << job.DebugString();
  const std::string run_dir = c.RunDir(id);
  EXPECT_EQ(job.run_dir(), run_dir);

  // The evaluations may still run after the job ended (they never hold training up): wait.
  auto stub = c.Stub();
  v1::ListEvalsResponse evals;
  auto settled = [&] {
    v1::ListEvalsRequest req;
    req.set_job_id(id);
    evals.Clear();
    auto ctx = Coordinator::Ctx();
    if (!stub->ListEvals(ctx.get(), req, &evals).ok() || evals.tasks_size() < 2) return false;
    for (const auto& t : evals.tasks())
      if (t.state() == v1::EvalTask::PENDING || t.state() == v1::EvalTask::RUNNING) return false;
    return true;
  };
  ASSERT_TRUE(testutil::WaitFor(settled, 40)) << evals.DebugString() << c.log();

  // (1) One stored result per scheduled epoch, succeeded at the first attempt, with the learned
  // encoder's linear and kNN top-1 (ratios) as the real vicreg_eval wrote them to its JSON.
  ASSERT_EQ(evals.tasks_size(), 2) << evals.DebugString();
  std::map<int, v1::EvalTask> by_epoch;
  for (const auto& t : evals.tasks()) by_epoch[t.epoch()] = t;
  ASSERT_EQ(by_epoch.size(), 2u) << evals.DebugString();
  ASSERT_TRUE(by_epoch.count(1) && by_epoch.count(2)) << evals.DebugString();
  for (const auto& [epoch, t] : by_epoch) {
    SCOPED_TRACE("epoch " + std::to_string(epoch));
    const std::string stem = run_dir + "/eval/epoch_" + std::to_string(epoch) + "_fashion_mnist";
    EXPECT_EQ(t.dataset(), "fashion_mnist");
    EXPECT_EQ(t.state(), v1::EvalTask::SUCCEEDED) << t.error() << "\n" << testutil::ReadText(stem + ".log");
    EXPECT_EQ(t.attempts(), 1);
    EXPECT_EQ(t.output_path(), stem + ".json");
    // The learned encoder plus the two reference models, both probes each.
    EXPECT_EQ(t.rows_size(), 6) << t.DebugString();
    for (const char* model : {"vicreg", "random_init", "raw_pixels"}) {
      for (const char* probe : {"linear", "knn"}) {
        const v1::EvalRow* r = FindRow(t, model, probe);
        ASSERT_NE(r, nullptr) << model << "/" << probe << " missing:\n" << t.DebugString();
        EXPECT_GE(r->top1(), 0.0) << model << "/" << probe;
        EXPECT_LE(r->top1(), 1.0) << model << "/" << probe;
        EXPECT_GE(r->top5(), r->top1()) << model << "/" << probe;
        EXPECT_LE(r->top5(), 1.0) << model << "/" << probe;
      }
    }
    for (const char* probe : {"linear", "knn"}) {
      const v1::EvalRow* r = FindRow(t, "vicreg", probe);
      EXPECT_EQ(r->epoch(), epoch);
      // Better than chance on 10 classes: the probes really ran on the checkpoint's features.
      EXPECT_GT(r->top1(), 0.10) << probe;
    }

    // (2) The result files under <run_dir>/eval: the JSON (same numbers as stored), the CSV, the log.
    const std::string json_text = testutil::ReadText(stem + ".json");
    nlohmann::json j = nlohmann::json::parse(json_text, nullptr, false);
    ASSERT_TRUE(j.is_object()) << stem << ".json: " << json_text;
    EXPECT_EQ(j.value("dataset", ""), "fashion_mnist");
    EXPECT_EQ(j.value("checkpoint_dir", ""), run_dir + "/checkpoints");
    ASSERT_TRUE(j.contains("rows") && j["rows"].is_array()) << json_text;
    int vicreg_rows = 0;
    for (const auto& row : j["rows"]) {
      if (row.value("model", "") != "vicreg") continue;
      ++vicreg_rows;
      EXPECT_EQ(row.value("epoch", -1), epoch) << row.dump();
      const v1::EvalRow* stored = FindRow(t, "vicreg", row.value("probe", ""));
      ASSERT_NE(stored, nullptr) << row.dump();
      EXPECT_DOUBLE_EQ(stored->top1(), row.value("top1", -1.0)) << row.dump();
      EXPECT_DOUBLE_EQ(stored->top5(), row.value("top5", -1.0)) << row.dump();
    }
    EXPECT_EQ(vicreg_rows, 2) << json_text;
    const std::string csv = testutil::ReadText(stem + ".csv");
    EXPECT_EQ(csv.rfind("model,epoch,probe,top1,top5", 0), 0u) << csv;
    EXPECT_NE(csv.find("\nvicreg," + std::to_string(epoch) + ",linear,"), std::string::npos) << csv;
    EXPECT_NE(csv.find("\nvicreg," + std::to_string(epoch) + ",knn,"), std::string::npos) << csv;
    EXPECT_NE(testutil::ReadText(stem + ".log").find("vicreg epoch " + std::to_string(epoch) + " linear: top1"),
              std::string::npos);
  }
  // The epochs asked for survived keep_last 1 (the worker keeps them for the evaluation).
  EXPECT_EQ(access((run_dir + "/checkpoints/epoch_0001.pt").c_str(), R_OK), 0);
  EXPECT_EQ(access((run_dir + "/checkpoints/epoch_0002.pt").c_str(), R_OK), 0);

  // The same results through vicregctl (-o json is the ListEvals response).
  auto ctl = c.Ctl({"-o", "json", "eval", id});
  ASSERT_EQ(ctl.exit_code, 0) << ctl.err;
  nlohmann::json cj = nlohmann::json::parse(ctl.out, nullptr, false);
  ASSERT_TRUE(cj.is_object() && cj.contains("tasks")) << ctl.out;
  ASSERT_EQ(cj["tasks"].size(), 2u) << ctl.out;
  std::set<int> ctl_epochs;
  for (const auto& t : cj["tasks"]) {
    ctl_epochs.insert(t.value("epoch", 0));
    EXPECT_EQ(t.value("state", ""), "SUCCEEDED") << t.dump();
  }
  EXPECT_EQ(ctl_epochs, (std::set<int>{1, 2}));

  // (3) The epoch-1 evaluation started while the job was still training: its "eval started"
  // event precedes the job's SUCCEEDED state event in the job's event log (sequence numbers are a
  // total order) and was recorded with the job RUNNING. The margin is seconds (6 more epochs of
  // training against one 0.1 s poll), and the assertions read the recorded log, not a clock.
  std::vector<v1::JobEvent> events;
  {
    v1::WatchJobRequest req;
    req.set_job_id(id);
    auto ctx = Coordinator::Ctx("", 20);
    auto reader = stub->WatchJob(ctx.get(), req);
    v1::JobEvent ev;
    while (reader->Read(&ev)) events.push_back(ev);
    ASSERT_TRUE(reader->Finish().ok());
  }
  std::string all;
  int64_t started1 = -1, started2 = -1, succeeded = -1;
  double started1_time = 0;
  v1::JobState started1_state = v1::JOB_STATE_UNSPECIFIED;
  for (const auto& e : events) {
    all += std::to_string(e.sequence()) + " " + v1::JobState_Name(e.state()) + " " + e.message() + "\n";
    if (e.kind() == v1::JobEvent::STATE && e.state() == v1::SUCCEEDED && succeeded < 0) succeeded = e.sequence();
    if (e.message().rfind("eval started: epoch 1 on fashion_mnist", 0) == 0 && started1 < 0) {
      started1 = e.sequence();
      started1_time = testutil::Seconds(e.time());
      started1_state = e.state();
    }
    if (e.message().rfind("eval started: epoch 2 on fashion_mnist", 0) == 0 && started2 < 0) started2 = e.sequence();
  }
  ASSERT_GT(started1, 0) << all;
  ASSERT_GT(started2, 0) << all;
  ASSERT_GT(succeeded, 0) << all;
  EXPECT_LT(started1, succeeded) << all;
  EXPECT_EQ(started1_state, v1::RUNNING) << all;
  EXPECT_LT(started1_time, testutil::Seconds(job.finished_time())) << all;
  EXPECT_LT(started1, started2) << all;  // one eval slot: epoch 1 first
  EXPECT_NE(all.find("eval epoch 1 on fashion_mnist: linear top1"), std::string::npos) << all;
  EXPECT_NE(all.find("eval epoch 2 on fashion_mnist: linear top1"), std::string::npos) << all;

  // (4) /metrics exports the learned encoder's top-1 per probe: the latest finished evaluation's.
  const v1::EvalTask& last = testutil::Seconds(by_epoch[1].updated_time()) > testutil::Seconds(by_epoch[2].updated_time()) ? by_epoch[1] : by_epoch[2];
  std::string m = testutil::HttpGet(c.metrics(), "/metrics");
  for (const char* probe : {"linear", "knn"}) {
    const std::string series =
        std::string("vicreg_eval_top1_ratio{dataset=\"fashion_mnist\",job_id=\"") + id + "\",probe=\"" + probe + "\"}";
    const double v = Sample(m, series);
    ASSERT_FALSE(std::isnan(v)) << series << " missing:\n" << m;
    EXPECT_NEAR(v, FindRow(last, "vicreg", probe)->top1(), 1e-6) << series;
  }
  EXPECT_TRUE(std::isnan(Sample(m, std::string("vicreg_eval_failures_total{job_id=\"") + id + "\"}")) ||
              Sample(m, std::string("vicreg_eval_failures_total{job_id=\"") + id + "\"}") == 0)
      << m;

  // (5) Checkpoints from the CLI: the list carries the evaluated epochs' results, and the encoder of
  // epoch 2, exported by the coordinator (vicreg_eval export), streamed, checked and written by
  // vicregctl, has the announced SHA-256 and loads strictly into the independent Python ViT.
  auto ck = c.Ctl({"-o", "json", "checkpoints", id});
  ASSERT_EQ(ck.exit_code, 0) << ck.err;
  const auto ckj = nlohmann::json::parse(ck.out);
  auto num = [](const nlohmann::json& v) {  // proto3 JSON writes int64 as a string
    return v.is_string() ? std::stoll(v.get<std::string>()) : v.get<long long>();
  };
  std::set<long long> epochs;
  int latest = 0;
  for (const auto& cp : ckj.at("checkpoints")) {
    if (cp.at("kind") == "epoch") epochs.insert(num(cp.at("epoch")));
    latest += cp.value("latest", false) ? 1 : 0;
    if (cp.at("kind") != "epoch" || num(cp.at("epoch")) != 2) continue;
    EXPECT_GT(num(cp.at("size_bytes")), 0);
    EXPECT_FALSE(cp.value("created_time", std::string()).empty()) << cp;
    bool found = false;
    for (const auto& r : cp.value("evals", nlohmann::json::array()))
      found = found || (r.at("model") == "vicreg" && r.at("probe") == "linear" &&
                        std::abs(r.at("top1").get<double>() - FindRow(by_epoch[2], "vicreg", "linear")->top1()) < 1e-9);
    EXPECT_TRUE(found) << cp;
  }
  EXPECT_EQ(epochs, (std::set<long long>{1, 2, 8})) << ck.out;  // keep_last 1 + the evaluated epochs
  EXPECT_EQ(latest, 1) << ck.out;
  ck = c.Ctl({"checkpoints", id});
  EXPECT_EQ(ck.exit_code, 0) << ck.err;
  EXPECT_NE(ck.out.find("fashion_mnist linear"), std::string::npos) << ck.out;
  const std::string enc = dir.path() + "/encoder.safetensors";
  auto ex = c.Ctl({"export", id, "--epoch", "2", "-o", enc}, 120);
  ASSERT_EQ(ex.exit_code, 0) << ex.out << ex.err << c.log();
  const size_t at = ex.out.find("sha256 ");
  ASSERT_NE(at, std::string::npos) << ex.out;
  const std::string sha = ex.out.substr(at + 7, 64);
  auto py = server::RunCommand(
      {"/usr/bin/python3", testutil::SourceDir() + "/tests/server/export_load_check.py", enc, sha, "32"}, 120);
  EXPECT_EQ(py.exit_code, 0) << py.out << py.err;
  EXPECT_EQ(py.out.find("FAIL"), std::string::npos) << py.out;
  ex = c.Ctl({"export", id, "--epoch", "5", "-o", dir.path() + "/none.safetensors"}, 60);
  EXPECT_EQ(ex.exit_code, 3) << ex.err;
  EXPECT_NE(ex.err.find("epochs with one: 1, 2, 8"), std::string::npos) << ex.err;
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/none.safetensors"));
  std::filesystem::path exports(run_dir + "/export");
  EXPECT_TRUE(std::filesystem::is_empty(exports)) << "the temporary export file was left behind";
  EXPECT_EQ(c.Stop(), 0) << c.log();
}

}  // namespace
}  // namespace vicreg
