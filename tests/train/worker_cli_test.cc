// vicreg_worker end to end (label integration): real processes on the tests' tiny CPU job.
//   - a run writes the whole run directory (metrics.jsonl with every key finite, progress, result, endpoints)
//   - SIGKILL after a checkpoint + --resume auto ends bit-identical to an uninterrupted run
//   - a corrupted / truncated checkpoint is refused; --resume auto falls back to the previous one
//   - SIGTERM checkpoints, exits 1 with reason "terminated", and the run resumes exactly
//   - invalid configs and flags exit 2 naming the field and leave no run directory
#include <ATen/ATen.h>
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "tests/train/test_util.h"
#include "worker/train/checkpoint.h"

namespace vicreg::train {
namespace {

using vicreg::testing::MakeTempDir;
using vicreg::testing::PathExists;
using vicreg::testing::ProcResult;
using vicreg::testing::RemoveTree;
using vicreg::testing::RunProcess;
using vicreg::testing::Slurp;
using vicreg::testing::WriteText;

const std::string kWorker = std::string(VICREG_BINARY_DIR) + "/worker/vicreg_worker";
const std::string kData = std::string(VICREG_SOURCE_DIR) + "/tests/train/data";
const std::string kJob = kData + "/tiny_job.yaml";
constexpr int kStepsPerEpoch = 8;  // 256 images / batch 32
constexpr int kEpochs = 6;
constexpr int kTotalSteps = kStepsPerEpoch * kEpochs;
constexpr double kTimeout = 300;

const std::vector<std::string> kMetricKeys = {
    "step",    "epoch",    "loss",      "invariance",   "variance",       "covariance",
    "std_min", "std_mean", "std_max",   "pairwise_sim", "cov_offdiag_sq", "collapsed_dims",
    "rankme",  "lr",       "grad_norm", "images_per_s", "data_wait_s",    "step_s"};

bool HaveFashionMnist() { return PathExists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"); }

std::vector<nlohmann::json> JsonLines(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::istringstream in(Slurp(path));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

ProcResult Worker(const std::vector<std::string>& args, const std::string& log, double timeout = kTimeout) {
  std::vector<std::string> argv = {kWorker};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(argv, log, timeout);
}

// Runs vicreg_worker once per argument list, up to `parallel` at a time (the cases are independent).
std::vector<ProcResult> Workers(const std::vector<std::vector<std::string>>& cases, const std::string& dir,
                                int parallel = 4) {
  std::vector<ProcResult> out(cases.size());
  for (size_t start = 0; start < cases.size(); start += parallel) {
    std::vector<std::pair<size_t, pid_t>> running;
    for (size_t i = start; i < std::min(cases.size(), start + parallel); ++i) {
      std::vector<std::string> argv = {kWorker};
      argv.insert(argv.end(), cases[i].begin(), cases[i].end());
      running.emplace_back(i, vicreg::testing::Spawn(argv, dir + "/out" + std::to_string(i) + ".txt"));
    }
    for (auto [i, pid] : running) out[i] = vicreg::testing::Wait(pid, dir + "/out" + std::to_string(i) + ".txt", 120);
  }
  return out;
}

// Bitwise comparison of the model state of two checkpoints.
void ExpectSameModel(const std::string& a, const std::string& b) {
  auto pa = CheckpointManager::Load(a);
  auto pb = CheckpointManager::Load(b);
  EXPECT_EQ(pa.global_step, pb.global_step);
  ASSERT_EQ(pa.model.size(), pb.model.size());
  for (size_t i = 0; i < pa.model.size(); ++i) {
    ASSERT_EQ(pa.model[i].first, pb.model[i].first);
    EXPECT_TRUE(at::equal(pa.model[i].second, pb.model[i].second))
        << pa.model[i].first << " differs: max |diff| "
        << (pa.model[i].second.to(at::kDouble) - pb.model[i].second.to(at::kDouble)).abs().max().item<double>();
  }
  // The optimizer state is part of "continues exactly" too.
  auto oa = pa.optimizer.toGenericDict();
  auto ob = pb.optimizer.toGenericDict();
  ASSERT_EQ(oa.size(), ob.size());
  for (const auto& kv : oa) {
    const auto& v = ob.at(kv.key());
    if (kv.value().isTensor())
      EXPECT_TRUE(at::equal(kv.value().toTensor(), v.toTensor())) << "optimizer " << kv.key().toStringRef();
    else
      EXPECT_EQ(kv.value(), v) << "optimizer " << kv.key().toStringRef();
  }
}

class WorkerCliTest : public ::testing::Test {
 protected:
  static void TearDownTestSuite() { RemoveTree(ref_root_); }
  void SetUp() override {
    if (!PathExists(kWorker)) GTEST_SKIP() << kWorker << " is not built";
    if (!HaveFashionMnist()) GTEST_SKIP() << "Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)";
    tmp_ = MakeTempDir("worker");
  }
  void TearDown() override { RemoveTree(tmp_); }
  // One uninterrupted reference run, made on first use and shared by the tests of this process
  // (ctest runs each test in its own process, so only the tests that compare against it pay for it).
  static std::string RefRun() {
    if (ref_root_.empty()) {
      ref_root_ = MakeTempDir("worker-ref");
      ref_result_ = Worker({"--job", kJob, "--run-dir", ref_root_ + "/run"}, ref_root_ + "/out.txt");
    }
    EXPECT_EQ(ref_result_.exit_code, 0) << ref_result_.output;
    return ref_root_ + "/run";
  }
  static std::string RefFinal() { return RefRun() + "/checkpoints/epoch_0006.pt"; }

  static std::string ref_root_;
  static ProcResult ref_result_;
  std::string tmp_;
};
std::string WorkerCliTest::ref_root_;
ProcResult WorkerCliTest::ref_result_;

TEST_F(WorkerCliTest, TrainsAndWritesTheRunDirectory) {
  const std::string run = RefRun();
  auto lines = JsonLines(run + "/metrics.jsonl");
  ASSERT_EQ(lines.size(), static_cast<size_t>(kTotalSteps)) << "log_every 1";
  double wait = 0, step_time = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto& l = lines[i];
    EXPECT_EQ(l["step"], static_cast<int>(i + 1));
    EXPECT_EQ(l["epoch"], static_cast<int>(i / kStepsPerEpoch + 1));
    for (const auto& k : kMetricKeys) {
      ASSERT_TRUE(l.contains(k)) << k << " missing: " << l.dump();
      ASSERT_TRUE(l[k].is_number()) << k << " is not a number: " << l.dump();
      EXPECT_TRUE(std::isfinite(l[k].get<double>())) << k << ": " << l.dump();
    }
    EXPECT_GT(l["rankme"].get<double>(), 1.0);
    EXPECT_GE(l["std_min"].get<double>(), 0.0);
    EXPECT_LE(l["std_min"].get<double>(), l["std_max"].get<double>());
    wait += l["data_wait_s"].get<double>();
    step_time += l["step_s"].get<double>();
  }
  EXPECT_DOUBLE_EQ(lines[0]["lr"].get<double>(), 0.0) << "warmup starts at 0";
  EXPECT_NEAR(lines[kStepsPerEpoch]["lr"].get<double>(), 1e-3, 1e-12) << "peak after 1 warmup epoch";
  std::printf("[data] loader wait: %.4f s of %.4f s step time (%.1f%% of wait+step) over %d steps\n", wait, step_time,
              100.0 * wait / (wait + step_time), kTotalSteps);

  auto progress = nlohmann::json::parse(Slurp(run + "/progress.json"));
  EXPECT_EQ(progress["step"], kTotalSteps);
  EXPECT_EQ(progress["total_steps"], kTotalSteps);
  EXPECT_EQ(progress["epoch"], kEpochs);
  EXPECT_EQ(progress["num_epochs"], kEpochs);
  auto result = nlohmann::json::parse(Slurp(run + "/result.json"));
  EXPECT_EQ(result["status"], "succeeded");
  EXPECT_EQ(result["step"], kTotalSteps);
  EXPECT_EQ(result["epoch"], kEpochs);
  auto ep = nlohmann::json::parse(Slurp(run + "/endpoints/rank-0.json"));
  EXPECT_EQ(ep["rank"], 0);
  EXPECT_TRUE(ep["metrics"].get<std::string>().rfind("127.0.0.1:", 0) == 0) << ep.dump();
  EXPECT_NE(Slurp(run + "/job.yaml").find("tiny_train_test"), std::string::npos);
  EXPECT_NE(Slurp(run + "/logs/rank-0.log").find("ETA"), std::string::npos);
  EXPECT_EQ(Slurp(run + "/checkpoints/latest"), "epoch_0006.pt\n");
  // keep_last 3: the newest three are epoch 6 (step 48), step 45 and step 42.
  CheckpointManager mgr({run + "/checkpoints", 3, {}});
  std::vector<std::string> files;
  for (const auto& c : mgr.List()) files.push_back(c.file);
  EXPECT_EQ(files, (std::vector<std::string>{"step_00000042.pt", "step_00000045.pt", "epoch_0006.pt"}));
  // The loss went down over the run.
  double first = 0, last = 0;
  for (int i = 0; i < kStepsPerEpoch; ++i) {
    first += lines[i]["loss"].get<double>();
    last += lines[kTotalSteps - kStepsPerEpoch + i]["loss"].get<double>();
  }
  EXPECT_LT(last, first) << "mean loss of the last epoch vs the first";
  // Python reads the final checkpoint.
  if (PathExists("/usr/bin/python3")) {
    auto py = RunProcess(
        {"/usr/bin/python3", kData + "/../check_checkpoint.py", RefFinal(), std::to_string(kTotalSteps),
         std::to_string(kEpochs), "--model-key", "encoder.cls_token", "--model-key", "encoder.blocks.1.mlp.fc2.weight"},
        tmp_ + "/py.txt", 120);
    EXPECT_EQ(py.exit_code, 0) << py.output;
  }
}

TEST_F(WorkerCliTest, SigkillAfterCheckpointThenResumeAutoIsBitIdentical) {
  const std::string run = tmp_ + "/run";
  const std::string log = tmp_ + "/a.txt";
  pid_t pid = vicreg::testing::Spawn({kWorker, "--job", kJob, "--run-dir", run, "--resume", "auto"}, log);
  // Kill as soon as the first checkpoint is complete (step 3 of 48).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!PathExists(run + "/checkpoints/latest") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  kill(pid, SIGKILL);
  auto killed = vicreg::testing::Wait(pid, log, 60);
  ASSERT_EQ(killed.term_signal, SIGKILL) << "the run ended before it could be killed:\n" << killed.output;
  ASSERT_FALSE(PathExists(run + "/result.json"));
  auto resumed = Worker({"--job", kJob, "--run-dir", run, "--resume", "auto"}, tmp_ + "/b.txt");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resumed from"), std::string::npos) << resumed.output;
  ExpectSameModel(RefFinal(), run + "/checkpoints/epoch_0006.pt");
  // metrics.jsonl holds every step exactly once.
  auto lines = JsonLines(run + "/metrics.jsonl");
  ASSERT_EQ(lines.size(), static_cast<size_t>(kTotalSteps));
  for (int i = 0; i < kTotalSteps; ++i) EXPECT_EQ(lines[i]["step"], i + 1);
}

TEST_F(WorkerCliTest, CorruptOrTruncatedCheckpointIsRefusedAndAutoFallsBack) {
  const std::string run = tmp_ + "/run";
  // Stop at the end of epoch 1 (step 8): checkpoints step 3, step 6, epoch 1 (latest).
  auto first = Worker({"--job", kJob, "--run-dir", run, "--max-steps", "8"}, tmp_ + "/a.txt");
  ASSERT_EQ(first.exit_code, 0) << first.output;
  auto result = nlohmann::json::parse(Slurp(run + "/result.json"));
  EXPECT_EQ(result["status"], "succeeded");
  EXPECT_NE(result["reason"].get<std::string>().find("max_steps"), std::string::npos);
  ASSERT_EQ(Slurp(run + "/checkpoints/latest"), "epoch_0001.pt\n");

  const std::string latest = run + "/checkpoints/epoch_0001.pt";
  std::string bytes = Slurp(latest);
  std::string flipped = bytes;
  flipped[flipped.size() / 2] ^= 0x20;
  WriteText(latest, flipped);
  // An explicit --resume of the corrupted file: exit 2 naming the file and the CRC mismatch.
  auto bad = Worker({"--job", kJob, "--run-dir", run, "--resume", latest}, tmp_ + "/b.txt");
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find(latest), std::string::npos) << bad.output;
  EXPECT_NE(bad.output.find("CRC32"), std::string::npos) << bad.output;
  // Truncated: exit 2 naming the size.
  WriteText(latest, bytes.substr(0, bytes.size() / 3));
  bad = Worker({"--job", kJob, "--run-dir", run, "--resume", latest}, tmp_ + "/c.txt");
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("truncated"), std::string::npos) << bad.output;
  EXPECT_NE(bad.output.find(latest), std::string::npos) << bad.output;

  // --resume auto warns and falls back to step 6, and still ends exactly like the reference.
  auto resumed = Worker({"--job", kJob, "--run-dir", run, "--resume", "auto"}, tmp_ + "/d.txt");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("falling back"), std::string::npos) << resumed.output;
  EXPECT_NE(resumed.output.find("step_00000006.pt"), std::string::npos) << resumed.output;
  ExpectSameModel(RefFinal(), run + "/checkpoints/epoch_0006.pt");
}

TEST_F(WorkerCliTest, SigtermCheckpointsExitsOneAndResumesExactly) {
  const std::string run = tmp_ + "/run";
  const std::string log = tmp_ + "/a.txt";
  pid_t pid = vicreg::testing::Spawn({kWorker, "--job", kJob, "--run-dir", run}, log);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!PathExists(run + "/progress.json") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  kill(pid, SIGTERM);
  auto term = vicreg::testing::Wait(pid, log, 120);
  ASSERT_EQ(term.exit_code, 1) << term.output;
  auto result = nlohmann::json::parse(Slurp(run + "/result.json"));
  EXPECT_EQ(result["status"], "failed");
  EXPECT_EQ(result["reason"], "terminated by SIGTERM");
  const int64_t stopped_at = result["step"].get<int64_t>();
  ASSERT_GT(stopped_at, 0);
  ASSERT_LT(stopped_at, kTotalSteps) << "SIGTERM came too late to test anything";
  CheckpointManager mgr({run + "/checkpoints", 3, {}});
  auto latest = CheckpointManager::Load(run + "/checkpoints/" + mgr.Latest());
  EXPECT_EQ(latest.global_step, stopped_at) << "a checkpoint at the stop point";

  auto resumed = Worker({"--job", kJob, "--run-dir", run, "--resume", "auto"}, tmp_ + "/b.txt");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_EQ(nlohmann::json::parse(Slurp(run + "/result.json"))["status"], "succeeded");
  ExpectSameModel(RefFinal(), run + "/checkpoints/epoch_0006.pt");
}

// train.time_budget_s: the run re-plans its step count from the rate it reaches and ends at its budget
// (the tiny job's 6 epochs take a fraction of it here, so the plan grows past num_epochs; on a machine too
// slow for them it would shrink), with an epoch checkpoint at its last step and the lr annealed to min_lr;
// a restart goes on with the plan and the seconds already used.
TEST_F(WorkerCliTest, TimeBudgetEndsTheRunAtItsBudgetAcrossARestart) {
  constexpr double kBudget = 8;
  const std::string run = tmp_ + "/run";
  const std::string budget = "train.time_budget_s=" + std::to_string(kBudget);
  auto a = Worker({"--job", kJob, "--run-dir", run, "--max-steps", "20", "--set", budget}, tmp_ + "/a.txt");
  ASSERT_EQ(a.exit_code, 0) << a.output;
  auto stopped = CheckpointManager::Load(run + "/checkpoints/step_00000020.pt");
  ASSERT_TRUE(stopped.time_budget.has_value()) << "the plan travels with the checkpoint";
  EXPECT_GT(stopped.time_budget->seconds_used, 0);
  EXPECT_LT(stopped.time_budget->seconds_used, kBudget);
  EXPECT_GT(stopped.time_budget->total_steps, 20);

  auto b = Worker({"--job", kJob, "--run-dir", run, "--resume", "auto", "--set", budget}, tmp_ + "/b.txt");
  ASSERT_EQ(b.exit_code, 0) << b.output;
  EXPECT_NE(b.output.find("used before this attempt; the plan was " +
                          std::to_string(stopped.time_budget->total_steps) + " step(s)"),
            std::string::npos)
      << b.output;
  // "time budget: N step(s) in S s of training (8 s budget)"
  const std::string key = "time budget: ";
  size_t at = b.output.find(" s of training (");
  ASSERT_NE(at, std::string::npos) << b.output;
  size_t from = b.output.rfind(key, at);
  ASSERT_NE(from, std::string::npos) << b.output;
  int64_t steps = 0;
  double seconds = 0;
  ASSERT_EQ(std::sscanf(b.output.c_str() + from + key.size(), "%ld step(s) in %lf", &steps, &seconds), 2) << b.output;
  std::printf("[budget] %ld steps in %.2f s of training for a %.0f s budget (the job file plans %d)\n", steps, seconds,
              kBudget, kTotalSteps);
  // The seconds are the worker's own clock; the bounds leave room for a loaded machine (the plan follows
  // the rate of the last quarter of the run, test by test in time_budget_test.cc).
  EXPECT_GT(seconds, 0.6 * kBudget) << "the run did not use its budget";
  EXPECT_LT(seconds, 1.5 * kBudget + 2) << "the run overran its budget";

  auto result = nlohmann::json::parse(Slurp(run + "/result.json"));
  EXPECT_EQ(result["status"], "succeeded");
  EXPECT_EQ(result["step"], steps);
  const int64_t last_epoch = (steps + kStepsPerEpoch - 1) / kStepsPerEpoch;
  EXPECT_EQ(result["epoch"], last_epoch);
  auto progress = nlohmann::json::parse(Slurp(run + "/progress.json"));
  EXPECT_EQ(progress["total_steps"], steps);
  EXPECT_EQ(progress["num_epochs"], last_epoch);
  CheckpointManager mgr({run + "/checkpoints", 3, {}});
  char file[32];
  std::snprintf(file, sizeof file, "epoch_%04ld.pt", last_epoch);
  ASSERT_EQ(mgr.Latest(), file) << "an epoch checkpoint at the last step, even inside an epoch";
  auto final_ck = CheckpointManager::Load(run + "/checkpoints/" + file);
  EXPECT_EQ(final_ck.global_step, steps);
  ASSERT_TRUE(final_ck.time_budget.has_value());
  EXPECT_EQ(final_ck.time_budget->total_steps, steps);
  auto lines = JsonLines(run + "/metrics.jsonl");
  ASSERT_EQ(lines.size(), static_cast<size_t>(steps)) << "every step once, across the restart";
  EXPECT_LT(lines.back()["lr"].get<double>(), 0.05 * 1e-3) << "the cosine ended at the last step";
  EXPECT_NEAR(lines[kStepsPerEpoch]["lr"].get<double>(), 1e-3, 1e-12) << "the warmup kept its length";
}

TEST_F(WorkerCliTest, CoordinatorStyleRelaunchInARunDirHoldingJobYaml) {
  // A relaunch in a run dir holding the job.yaml the worker wrote, with --resume auto (no checkpoint yet).
  const std::string run = tmp_ + "/job-1";
  ASSERT_EQ(0, ::mkdir(run.c_str(), 0755));
  WriteText(run + "/job.yaml", Slurp(kJob));
  auto r = Worker(
      {"--job", run + "/job.yaml", "--run-dir", run, "--resume", "auto", "--job-id", "job-1", "--max-steps", "2"},
      tmp_ + "/a.txt");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("no checkpoint yet"), std::string::npos) << r.output;
  // The restart re-reads its own (now resolved) job.yaml and continues.
  r = Worker(
      {"--job", run + "/job.yaml", "--run-dir", run, "--resume", "auto", "--job-id", "job-1", "--max-steps", "4"},
      tmp_ + "/b.txt");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from"), std::string::npos) << r.output;
  EXPECT_EQ(nlohmann::json::parse(Slurp(run + "/result.json"))["step"], 4);
  // A fresh start (--resume none) into a run dir with checkpoints is refused, nothing is overwritten.
  r = Worker({"--job", run + "/job.yaml", "--run-dir", run}, tmp_ + "/c.txt");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("already holds checkpoints"), std::string::npos) << r.output;
}

TEST_F(WorkerCliTest, OnlineMonitorsReportWithoutChangingTraining) {
  const std::string run = tmp_ + "/monitors";
  auto r = Worker({"--job", kJob, "--run-dir", run, "--set", "eval.online_linear=true", "--set",
                   "eval.online_knn_every_epochs=3", "--set", "eval.online_knn_subset=64"},
                  tmp_ + "/a.txt");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto lines = JsonLines(run + "/metrics.jsonl");
  ASSERT_EQ(lines.size(), static_cast<size_t>(kTotalSteps));
  int knn = 0;
  for (const auto& l : lines) {
    ASSERT_TRUE(l.contains("online_linear_top1")) << l.dump();
    const double top1 = l["online_linear_top1"].get<double>();
    EXPECT_GE(top1, 0.0);
    EXPECT_LE(top1, 1.0);
    if (l.contains("online_knn_top1")) {
      ++knn;
      EXPECT_EQ(l["step"].get<int>() % (3 * kStepsPerEpoch), 0) << "kNN at the end of epochs 3 and 6";
      EXPECT_GT(l["online_knn_top1"].get<double>(), 0.1) << "10 classes: better than chance";
    }
  }
  EXPECT_EQ(knn, 2);
  // The monitors see detached features only: the encoder trains exactly as without them.
  ExpectSameModel(RefFinal(), run + "/checkpoints/epoch_0006.pt");
}

TEST_F(WorkerCliTest, NonFiniteStreakStopsTheRunWithoutACheckpoint) {
  // lr 1e30: the first update blows the weights up, every later loss is NaN.
  const std::string run = tmp_ + "/nan";
  auto r = Worker({"--job", kJob, "--run-dir", run, "--set", "train.learning_rate=1e30", "--set",
                   "train.warmup_epochs=0", "--set", "train.max_consecutive_nonfinite=4"},
                  tmp_ + "/a.txt");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  auto result = nlohmann::json::parse(Slurp(run + "/result.json"));
  EXPECT_EQ(result["status"], "failed");
  EXPECT_NE(result["reason"].get<std::string>().find("non-finite loss or gradient in 4 consecutive steps"),
            std::string::npos)
      << result.dump();
  EXPECT_EQ(result["step"], 5) << "step 1 applies the update, steps 2-5 are non-finite";
  EXPECT_FALSE(PathExists(run + "/checkpoints/latest")) << "the step-3 checkpoint falls inside the streak";
  auto lines = JsonLines(run + "/metrics.jsonl");
  ASSERT_EQ(lines.size(), 5u);
  for (int i = 1; i < 5; ++i) {
    EXPECT_EQ(lines[i]["skipped"], true) << lines[i].dump();
    EXPECT_TRUE(lines[i]["loss"].is_null()) << lines[i].dump();
  }
}

TEST_F(WorkerCliTest, SeedFormTrains) {
  const std::string run = tmp_ + "/seed";
  auto r =
      Worker({"--data_config", kData + "/seed_data_config.yaml", "--train_config", kData + "/seed_train_config.yaml",
              "--model_config", kData + "/seed_model_config.yaml", "--device", "cpu", "--run-dir", run},
             tmp_ + "/a.txt");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(JsonLines(run + "/metrics.jsonl").size(), 4u) << "128 images / 32 = 4 steps";
  EXPECT_TRUE(PathExists(run + "/checkpoints/epoch_0001.pt"));
}

TEST_F(WorkerCliTest, TwoRanksUnderMpirun) {
  if (!PathExists("/usr/bin/mpirun")) GTEST_SKIP() << "mpirun is not installed";
  const std::string run = tmp_ + "/np2";
  auto r = RunProcess({"/usr/bin/mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2", kWorker, "--job", kJob,
                       "--run-dir", run, "--max-steps", "3", "--set", "train.batch_size=16"},
                      tmp_ + "/a.txt", kTimeout);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (int rank : {0, 1}) {
    EXPECT_TRUE(PathExists(run + "/logs/rank-" + std::to_string(rank) + ".log"));
    auto ep = nlohmann::json::parse(Slurp(run + "/endpoints/rank-" + std::to_string(rank) + ".json"));
    EXPECT_EQ(ep["rank"], rank);
  }
  auto lines = JsonLines(run + "/metrics.jsonl");
  ASSERT_EQ(lines.size(), 3u) << "rank 0 alone writes metrics.jsonl";
  auto ck = CheckpointManager::Load(run + "/checkpoints/step_00000003.pt");
  EXPECT_EQ(ck.world_size, 2);
  EXPECT_EQ(ck.global_batch, 32);
}

TEST(WorkerCliUsage, HelpAndBadFlags) {
  if (!PathExists(kWorker)) GTEST_SKIP() << kWorker << " is not built";
  std::string tmp = MakeTempDir("worker-usage");
  auto r = Worker({"--help"}, tmp + "/h.txt", 60);
  EXPECT_EQ(r.exit_code, 0);
  for (const char* flag : {"--job", "--data_config", "--resume", "--max-steps", "--metrics-port", "--set", "--run-dir"})
    EXPECT_NE(r.output.find(flag), std::string::npos) << flag;

  struct Case {
    std::vector<std::string> args;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {{}, "--job FILE"},
      {{"--job", kJob, "--learning-rate", "0.1"}, "--learning-rate"},
      {{"--job", kJob, "--device", "gpu"}, "--device: 'gpu'"},
      {{"--job", kJob, "--log-level", "loud"}, "--log-level"},
      {{"--job", kJob, "--job-id", "a b"}, "--job-id"},
      {{"--job", kJob, "--max-steps", "-3"}, "--max-steps"},
      {{"--job", kJob, "--max-steps", "ten"}, "--max-steps"},
      {{"--job", kJob, "--data_config", kJob}, "one form"},
      {{"--job", kJob, "--resume", tmp + "/none.pt"}, "none.pt"},
  };
  // Without --run-dir the default (runs/<name>-<time> in the working directory) must not appear either.
  auto nodir = RunProcess({kWorker, "--job", kJob, "--resume", tmp + "/none.pt"}, tmp + "/o.txt", 60, {}, tmp);
  EXPECT_EQ(nodir.exit_code, 2) << nodir.output;
  EXPECT_NE(nodir.output.find("none.pt"), std::string::npos) << nodir.output;
  EXPECT_FALSE(PathExists(tmp + "/runs")) << nodir.output;
  auto lr = Worker({"--job", kJob, "--lr", "0.1"}, tmp + "/o.txt", 60);
  EXPECT_EQ(lr.exit_code, 2);
  EXPECT_NE(lr.output.find("--set train.learning_rate"), std::string::npos) << lr.output;

  std::vector<std::vector<std::string>> argvs;
  for (size_t i = 0; i < cases.size(); ++i) {
    argvs.push_back(cases[i].args);
    argvs.back().push_back("--run-dir");
    argvs.back().push_back(tmp + "/run" + std::to_string(i));
  }
  auto results = Workers(argvs, tmp);
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string run = tmp + "/run" + std::to_string(i);
    const auto& res = results[i];
    EXPECT_EQ(res.exit_code, 2) << "case " << i << ":\n" << res.output;
    EXPECT_NE(res.output.find(cases[i].expect), std::string::npos) << "case " << i << ":\n" << res.output;
    EXPECT_FALSE(PathExists(run)) << "case " << i << " created the run dir";
  }
  RemoveTree(tmp);
}

TEST(WorkerCliUsage, MetricsPortInUseIsARuntimeFailure) {
  if (!PathExists(kWorker)) GTEST_SKIP() << kWorker << " is not built";
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(0, ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr));
  ASSERT_EQ(0, ::listen(fd, 1));
  socklen_t len = sizeof addr;
  ASSERT_EQ(0, ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len));
  const int port = ntohs(addr.sin_port);
  std::string tmp = MakeTempDir("worker-port");
  auto r =
      Worker({"--job", kJob, "--run-dir", tmp + "/run", "--metrics-port", std::to_string(port)}, tmp + "/o.txt", 120);
  ::close(fd);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(std::to_string(port)), std::string::npos) << r.output;
  auto result = nlohmann::json::parse(Slurp(tmp + "/run/result.json"));
  EXPECT_EQ(result["status"], "failed");
  EXPECT_NE(result["reason"].get<std::string>().find("metrics"), std::string::npos) << result.dump();
  RemoveTree(tmp);
}

TEST(WorkerCliUsage, InvalidConfigsExitTwoNamingTheFieldWithoutARunDir) {
  if (!PathExists(kWorker)) GTEST_SKIP() << kWorker << " is not built";
  std::string tmp = MakeTempDir("worker-badcfg");
  struct Case {
    std::string set;    // --set override, or "" with `file` content
    std::string field;  // must appear in the message
    std::string file;   // job file content (replaces the tiny job)
  };
  const std::vector<Case> cases = {
      {"train.batch_size=0", "train.batch_size", ""},
      {"train.learning_rate=-1", "train.learning_rate", ""},
      {"train.vicreg.gamma=0", "train.vicreg.gamma", ""},
      {"train.warmup_epochs=9", "train.warmup_epochs", ""},
      {"model.image_size=30", "model.image_size", ""},
      {"model.embed_dim=63", "model.embed_dim", ""},
      {"train.optimizer=sgd", "train.optimizer", ""},
      {"resources.device=tpu", "resources.device", ""},
      {"train.learning_rat=0.1", "learning_rate", ""},
      {"data.dataset=imagenet", "data.dataset", ""},
      {"train.precision=bf16", "train.precision", ""},
      {"augment.view1.hflip_prob=1.5", "augment.view1.hflip_prob", ""},
      {"checkpoint.keep_last=0", "checkpoint.keep_last", ""},
      {"metrics.port=70000", "metrics.port", ""},
      {"train.batch_size=abc", "train.batch_size", ""},
      {"name=bad name!", "name", ""},
      {"train.vicreg.proj_dim=0", "train.vicreg.proj_dim", ""},
      {"data.data_dir=/nonexistent/fmnist", "/nonexistent/fmnist", ""},  // a dataset that is not there
      {"model.init_from=/nonexistent/enc.safetensors", "model.init_from", ""},
      {"augment.view2.crop_scale=[0.9,0.2]", "augment.view2.crop_scale", ""},
      {"", "line", "name: x\ntrain: {batch_size: 3\n"},     // YAML syntax error
      {"", "trian", "name: x\ntrian:\n  batch_size: 3\n"},  // unknown section, did-you-mean
      {"", "train.num_epochs", "name: x\ntrain:\n  num_epochs: 0\n"},
  };
  std::vector<std::vector<std::string>> argvs;
  for (size_t i = 0; i < cases.size(); ++i) {
    std::string job = kJob;
    if (!cases[i].file.empty()) {
      job = tmp + "/job" + std::to_string(i) + ".yaml";
      WriteText(job, cases[i].file);
    }
    argvs.push_back({"--job", job, "--run-dir", tmp + "/run" + std::to_string(i)});
    if (!cases[i].set.empty()) {
      argvs.back().push_back("--set");
      argvs.back().push_back(cases[i].set);
    }
  }
  auto results = Workers(argvs, tmp);
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string run = tmp + "/run" + std::to_string(i);
    const auto& res = results[i];
    EXPECT_EQ(res.exit_code, 2) << "case " << i << " (" << cases[i].set << "):\n" << res.output;
    EXPECT_NE(res.output.find(cases[i].field), std::string::npos)
        << "case " << i << " (" << cases[i].set << ") does not name " << cases[i].field << ":\n"
        << res.output;
    EXPECT_FALSE(PathExists(run)) << "case " << i << " created the run dir";
  }
  // A job file that does not exist.
  auto res = Worker({"--job", tmp + "/missing.yaml", "--run-dir", tmp + "/runx"}, tmp + "/o.txt", 60);
  EXPECT_EQ(res.exit_code, 2) << res.output;
  EXPECT_NE(res.output.find("missing.yaml"), std::string::npos) << res.output;
  EXPECT_FALSE(PathExists(tmp + "/runx"));
  RemoveTree(tmp);
}

}  // namespace
}  // namespace vicreg::train
