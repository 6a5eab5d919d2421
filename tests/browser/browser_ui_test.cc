// The web UI in a real headless Chromium (Debian's chromium + chromium-driver, driven by
// python3-selenium from tests/browser/ui_check.py; nothing downloads a browser):
// a real vicreg_coordinator with a token runs a real tiny job (1 rank, 32 steps) with a scheduled
// evaluation by the real vicreg_eval; the browser is refused without the token and signs in with
// it, sees the job with its state on the jobs page, non-empty charts whose data points match
// metrics.jsonl (as is and downsampled), the evaluation table equal to the eval JSON, the events
// and the logs; a job named <script>alert(1)</script> with HTML in its error and logs renders as
// text and runs no script; the report written by `vicregctl report` renders the same offline.
// Screenshots (PNG) land in <build>/tests/browser/artifacts/.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/fs.h"
#include "server/process.h"
#include "server/store.h"
#include "tests/server/test_util.h"

namespace vicreg {
namespace {

using testutil::Coordinator;
using testutil::TempDir;

const char* kFashionMnist = "/usr/share/datasets/fashion-mnist";
const char* kToken = "browser-test-token-3f9a";

std::string EvalBinary() { return testutil::BinaryDir() + "/worker/eval/vicreg_eval"; }

// 4 epochs x 8 steps on 256 images, 1 rank; the epoch-2 checkpoint is evaluated while training goes on.
std::string JobYaml() {
  return std::string(
             "name: browser_ui\n"
             "max_restarts: 0\n"
             "resources: {ranks: 1, device: cpu, threads_per_rank: 1}\n"
             "data: {dataset: fashion_mnist, data_dir: ") +
         kFashionMnist +
         ", limit: 256, num_workers: 1}\n"
         "model: {backbone_name: vit_custom, image_size: 32, patch_size: 8, embed_dim: 64, depth: 2, num_heads: 2}\n"
         "train: {batch_size: 32, num_epochs: 4, warmup_epochs: 1, log_every: 1, seed: 7,\n"
         "        vicreg: {proj_dim: 128, proj_hidden_dim: 128}}\n"
         "checkpoint: {every_epochs: 1, keep_last: 2}\n"
         "eval: {epochs: [2], probes: [linear, knn], limit_train: 512, limit_test: 256, max_attempts: 1}\n";
}

// A finished job with hostile content, stored directly (the service refuses such a name).
std::string InsertHostileJob(const std::string& state_dir) {
  fs::MakeDirs(state_dir + "/runs");
  server::JobStore::Options so;
  so.path = state_dir + "/coordinator.db";
  so.runs_root = state_dir + "/runs";
  server::JobStore store(so);
  server::JobRecord rec;
  rec.name = "<script>alert(1)</script>";
  rec.spec_yaml = "name: \"<script>window.__xss=4</script>\"\n";
  server::EventRecord ev;
  ev.kind = server::EventKind::kState;
  ev.message = "submitted: <b onmouseover=window.__xss=5>bold</b>";
  rec = store.InsertJob(rec, ev).job;
  rec.state = server::JobState::kFailed;
  rec.attempt = 1;
  rec.progress.step = 3;
  rec.progress.total_steps = 10;
  rec.last_error = "rank 0 exited with code 1: <img src=x onerror=\"window.__xss=1\">";
  server::EventRecord fail;
  fail.kind = server::EventKind::kState;
  fail.state = server::JobState::kFailed;
  fail.message = "failed: <img src=x onerror=\"window.__xss=3\">";
  store.UpdateJob(rec, fail);
  fs::MakeDirs(rec.run_dir + "/logs");
  testutil::WriteText(rec.run_dir + "/logs/rank-0.out",
                      "== attempt 1 ==\n<script>window.__xss=2</script>\n<img src=x onerror=\"window.__xss=6\">\n");
  std::string metrics;
  for (int s = 1; s <= 3; ++s) {
    metrics += nlohmann::json{{"step", s}, {"loss", 5.0 / s}, {"std_min", 0.005}, {"pairwise_sim", 0.97}}.dump() + "\n";
  }
  testutil::WriteText(rec.run_dir + "/metrics.jsonl", metrics);
  return rec.id;
}

TEST(BrowserUiTest, SignInJobsJobPageEscapingAndReportInHeadlessChromium) {
  for (const char* tool : {"/usr/bin/chromium", "/usr/bin/chromedriver", "/usr/bin/python3"}) {
    ASSERT_EQ(access(tool, X_OK), 0) << tool << " is missing (deploy/install-deps.sh installs chromium, "
                                     << "chromium-driver and python3-selenium)";
  }
  for (const std::string& b : {testutil::CoordinatorBinary(), testutil::CtlBinary(), testutil::RealWorkerBinary(),
                               EvalBinary(), testutil::BinaryDir() + "/server/vicreg_job_shim"}) {
    ASSERT_EQ(access(b.c_str(), X_OK), 0) << b << " is not built";
  }
  ASSERT_EQ(access((std::string(kFashionMnist) + "/train-images-idx3-ubyte.gz").c_str(), R_OK), 0)
      << "dataset-fashion-mnist is not installed (deploy/install-deps.sh installs it)";
  const auto t0 = std::chrono::steady_clock::now();

  TempDir dir("browser");
  const std::string state = dir.path() + "/state";
  const std::string hostile = InsertHostileJob(state);
  const std::string token_file = dir.path() + "/token";
  testutil::WriteText(token_file, std::string(kToken) + "\n");
  chmod(token_file.c_str(), 0600);
  Coordinator c(state, {"--slots", "2", "--worker-binary", testutil::RealWorkerBinary(), "--eval-binary", EvalBinary(),
                        "--eval-slots", "1", "--poll-interval", "0.1", "--token-file", token_file,
                        "--no-progress-timeout", "120"});
  c.Start();
  const std::string job_yaml = dir.path() + "/job.yaml";
  testutil::WriteText(job_yaml, JobYaml());
  const std::vector<std::string> env = {std::string("VICREG_TOKEN=") + kToken};
  auto submit = c.Ctl({"submit", job_yaml, "--wait"}, 300, env);
  ASSERT_EQ(submit.exit_code, 0) << submit.out << submit.err << c.log();
  std::string id = submit.out.substr(0, submit.out.find('\n'));
  ASSERT_EQ(id.rfind("job-", 0), 0u) << submit.out;
  // The scheduled evaluation finishes after training.
  bool evals_done = testutil::WaitFor(
      [&] {
        auto r = c.Ctl({"--output", "json", "eval", id}, 30, env);
        auto j = nlohmann::json::parse(r.out, nullptr, false);
        if (!j.is_object() || !j.contains("tasks") || j["tasks"].empty()) return false;
        for (const auto& t : j["tasks"]) {
          const std::string s = t.value("state", "");
          if (s != "SUCCEEDED" && s != "FAILED") return false;
        }
        return true;
      },
      300);
  auto evals = c.Ctl({"eval", id}, 30, env).out;
  ASSERT_TRUE(evals_done) << evals << c.log();
  ASSERT_EQ(evals.find("FAILED"), std::string::npos) << evals;
  const std::string run_dir = c.RunDir(id);
  // HTML in a real job's log must render as text too.
  {
    std::ofstream log(run_dir + "/logs/rank-0.out", std::ios::app);
    log << "<img src=x onerror=\"window.__xss=7\"> <script>window.__xss=8</script>\n";
  }

  const std::string artifacts = testutil::BinaryDir() + "/tests/browser/artifacts";
  fs::MakeDirs(artifacts);
  // The shareable report, through the CLI and the HTTP API (refused without the token).
  const std::string report = artifacts + "/report.html";
  auto refused = c.Ctl({"report", id, "-o", report, "--http", c.metrics()}, 60);
  EXPECT_EQ(refused.exit_code, 4) << refused.out << refused.err;
  auto rep = c.Ctl({"report", id, "-o", report, "--http", c.metrics()}, 60, env);
  ASSERT_EQ(rep.exit_code, 0) << rep.out << rep.err;

  server::CommandResult r = server::RunCommand(
      {"/usr/bin/python3", testutil::SourceDir() + "/tests/browser/ui_check.py", "--url", "http://" + c.metrics(),
       "--token", kToken, "--job", id, "--hostile-job", hostile, "--run-dir", run_dir, "--report", report, "--out",
       artifacts},
      600);
  std::cout << r.out << r.err << std::endl;
  EXPECT_EQ(r.exit_code, 0) << "coordinator log:\n" << c.log();
  EXPECT_NE(r.out.find("ok   jobs page lists"), std::string::npos);
  EXPECT_EQ(r.out.find("FAIL"), std::string::npos);
  for (const char* png : {"jobs.png", "job.png", "phone.png", "report.png"}) {
    struct stat st {};
    EXPECT_EQ(stat((artifacts + "/" + png).c_str(), &st), 0) << png;
    EXPECT_GT(st.st_size, 1000) << png;
  }
  std::cout << "browser test: " << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()
            << " s in all" << std::endl;
}

}  // namespace
}  // namespace vicreg
