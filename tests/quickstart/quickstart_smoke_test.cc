// Runs the README's main-job command in its reduced mode against the binaries of this build tree:
//   deploy/quickstart.sh --smoke --skip-install --no-build --build-dir <build> --summary F
// and checks its outcome: the calibration job measured this machine's training rate and evaluation time, the job
// SUCCEEDED after training to its time budget (train.time_budget_s, 2 ranks agreeing on the plan), its
// last checkpoint was the one evaluated (eval.final), the coordinator's and both ranks' /metrics answered while it ran, the evaluation table
// has the learned, random-init and raw-pixel rows for both probes and the margins with their 95%
// intervals, the run dir holds checkpoints and metrics.jsonl, and the coordinator was stopped.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace {

const std::string kSrc = VICREG_SOURCE_DIR;
const std::string kBin = VICREG_BINARY_DIR;

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

int Sh(const std::string& cmd, std::string* out) {
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out->append(buf, n);
  int st = ::pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

std::map<std::string, std::string> ReadSummary(const std::string& path) {
  std::map<std::string, std::string> kv;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    auto eq = line.find('=');
    if (eq != std::string::npos) kv[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return kv;
}

double Percent(const std::string& s) { return s.empty() ? -1 : std::atof(s.c_str()); }

TEST(Quickstart, SmokeRunGoesThroughEveryComponent) {
  for (const char* b : {"/server/vicreg_coordinator", "/server/cli/vicregctl", "/worker/vicreg_worker",
                        "/worker/eval/vicreg_eval", "/server/vicreg_job_shim"}) {
    if (::access((kBin + b).c_str(), X_OK) != 0) GTEST_SKIP() << kBin + b << " is not built";
  }
  if (::access("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", R_OK) != 0)
    GTEST_SKIP() << "dataset-fashion-mnist is not installed (deploy/install-deps.sh installs it)";
  char tmpl[] = "/tmp/vicreg-qs-test-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string tmp = tmpl;
  const std::string summary = tmp + "/summary.txt";
  std::string out;
  const int code = Sh("cd " + Quote(tmp) + " && " + Quote(kSrc + "/deploy/quickstart.sh") +
                          " --smoke --skip-install --no-build --build-dir " + Quote(kBin) + " --state-dir " +
                          Quote(tmp + "/state") + " --summary " + Quote(summary) + " </dev/null",
                      &out);
  ASSERT_EQ(code, 0) << out;
  auto kv = ReadSummary(summary);
  EXPECT_EQ(kv["job_state"], "SUCCEEDED") << out;
  EXPECT_EQ(kv["coordinator_metrics_ok"], "1") << "the coordinator's /metrics did not answer\n" << out;
  EXPECT_EQ(kv["rank_metrics_ok"], "2") << "both ranks' /metrics should have answered during training\n" << out;
  for (const char* k : {"vicreg_linear", "random_init_linear", "raw_pixels_linear", "vicreg_knn", "random_init_knn",
                        "raw_pixels_knn"}) {
    const double p = Percent(kv[k]);
    EXPECT_GT(p, 10.0) << k << " = '" << kv[k] << "' (better than chance on 10 classes)\n" << out;
    EXPECT_LE(p, 100.0) << k;
  }
  // The rate was measured by the calibration job (2 ranks through the coordinator), not assumed.
  EXPECT_EQ(kv["rate_source"], "measured") << out;
  EXPECT_GT(std::atof(kv["rate_img_s"].c_str()), 0.0) << out;
  EXPECT_FALSE(kv["calibration_job_id"].empty()) << out;
  EXPECT_NE(kv["calibration_job_id"], kv["job_id"]) << out;
  EXPECT_NE(out.find("measured: "), std::string::npos) << out;
  // The evaluation's time was measured too: the coordinator evaluated the calibration's checkpoint.
  EXPECT_EQ(kv["eval_source"], "measured") << out;
  EXPECT_GT(std::atoi(kv["planned_eval_s"].c_str()), 0) << out;
  EXPECT_EQ(
      ::access((kv["state_dir"] + "/runs/" + kv["calibration_job_id"] + "/eval/epoch_1_fashion_mnist.json").c_str(),
               R_OK),
      0)
      << out;
  // Margins over the references with their 95% intervals on the evaluated test images (500 here).
  EXPECT_EQ(kv["test_images"], "500") << out;
  const double n = 500;
  for (const auto& [ref, probe] : std::vector<std::pair<std::string, std::string>>{
           {"random_init", "linear"}, {"raw_pixels", "linear"}, {"random_init", "knn"}, {"raw_pixels", "knn"}}) {
    const double a = Percent(kv["vicreg_" + probe]) / 100, b = Percent(kv[ref + "_" + probe]) / 100;
    const std::string key = "margin_" + ref + "_" + probe;
    ASSERT_FALSE(kv[key].empty()) << key << "\n" << out;
    EXPECT_NEAR(std::atof(kv[key].c_str()), 100 * (a - b), 0.006) << key;
    EXPECT_NEAR(std::atof(kv[key + "_ci95"].c_str()), 196 * std::sqrt((a * (1 - a) + b * (1 - b)) / n), 0.006)
        << key << "_ci95";
  }
  for (const char* s : {"learned - random-init", "learned - raw pixels", "95% interval"})
    EXPECT_NE(out.find(s), std::string::npos) << "missing '" << s << "' in the output:\n" << out;
  // The verdict calls a win only when the margin exceeds its interval.
  const double mp = std::atof(kv["margin_raw_pixels_linear"].c_str());
  const double hp = std::atof(kv["margin_raw_pixels_linear_ci95"].c_str());
  const double mr = std::atof(kv["margin_random_init_linear"].c_str());
  const double hr = std::atof(kv["margin_random_init_linear_ci95"].c_str());
  const std::string verdict = kv["verdict"];
  const char* expected = mr <= hr    ? "does not beat random-init"
                         : mp > hp   ? "and raw pixels"
                         : mp >= -hp ? "ties raw pixels"
                                     : "not raw pixels";
  EXPECT_NE(verdict.find(expected), std::string::npos) << verdict;
  // The printed table is vicregctl's, with its three models.
  for (const char* s : {"vicregctl eval", "MODEL", "vicreg", "random_init", "raw_pixels", "learned encoder (VICReg)",
                        "run dir:", "/metrics", "/sd", "coordinator stopped"})
    EXPECT_NE(out.find(s), std::string::npos) << "missing '" << s << "' in the output:\n" << out;
  // The run dir is kept: checkpoints, metrics.jsonl with the diagnostics, the eval JSON.
  const std::string run = kv["run_dir"];
  ASSERT_FALSE(run.empty());
  // The workers trained to the smoke run's time budget (8 s): where they stopped is the last epoch
  // checkpoint, and that is the one the coordinator evaluated (eval.final).
  EXPECT_EQ(kv["time_budget_s"], "8") << out;
  const int steps = std::atoi(kv["steps"].c_str()), epochs = std::atoi(kv["epochs"].c_str());
  ASSERT_GT(steps, 0) << out;
  EXPECT_EQ(epochs, (steps + 3) / 4) << "4 steps per epoch (1024 images, 2 x 128)\n" << out;
  char ck[64];
  std::snprintf(ck, sizeof ck, "/checkpoints/epoch_%04d.pt", epochs);
  EXPECT_EQ(::access((run + ck).c_str(), R_OK), 0) << run << ck;
  EXPECT_EQ(::access((run + "/eval/epoch_" + std::to_string(epochs) + "_fashion_mnist.json").c_str(), R_OK), 0) << run;
  std::ifstream m(run + "/metrics.jsonl");
  std::string first;
  ASSERT_TRUE(std::getline(m, first)) << "empty metrics.jsonl";
  EXPECT_NE(first.find("\"std_min\""), std::string::npos) << first;
  // The web UI's URL was printed and the self-contained report written.
  EXPECT_NE(out.find("web UI:"), std::string::npos) << out;
  EXPECT_EQ(kv["report"], run + "/report.html") << out;
  std::ifstream rep(run + "/report.html");
  std::stringstream rs;
  rs << rep.rdbuf();
  EXPECT_NE(rs.str().find("vicreg-report-data"), std::string::npos) << "report.html is not a vicreg report";
  // The coordinator is gone (the state dir's coordinator.json names its pid).
  std::ifstream cj(tmp + "/state/coordinator.json");
  std::stringstream ss;
  ss << cj.rdbuf();
  const std::string j = ss.str();
  const auto pos = j.find("\"pid\":");
  ASSERT_NE(pos, std::string::npos) << j;
  const int pid = std::atoi(j.c_str() + pos + 6);
  ASSERT_GT(pid, 0);
  EXPECT_NE(::kill(pid, 0), 0) << "vicreg_coordinator (pid " << pid << ") still runs after the quickstart";
  if (!::testing::Test::HasFailure()) {
    std::string ignored;
    Sh("rm -rf " + Quote(tmp), &ignored);
  }
}

}  // namespace
