// End to end with the REAL vicreg_worker under mpirun (2 ranks on 2 CPU slots), driven by
// vicregctl and gRPC: submit/watch/logs/run dir, /metrics and Prometheus SD, a SIGKILLed rank
// restarting from its checkpoint (and failing with max_restarts 0), a coordinator SIGKILLed with
// one job running and three queued, gang placement with the pending reason.
// The jobs are configs/tiny_cpu.yaml with 2 ranks (seconds each).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "common/run_contract.h"
#include "server/process.h"
#include "tests/server/test_util.h"

namespace vicreg {
namespace {

using testutil::Coordinator;
using testutil::TempDir;

class E2ETest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(access(testutil::RealWorkerBinary().c_str(), X_OK), 0)
        << testutil::RealWorkerBinary() << " is not built (ninja vicreg_worker)";
    tiny_ = testutil::SourceDir() + "/configs/tiny_cpu.yaml";
    ASSERT_EQ(access(tiny_.c_str(), R_OK), 0) << tiny_;
  }
  std::unique_ptr<Coordinator> Start(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--slots",
                                     "2",
                                     "--worker-binary",
                                     testutil::RealWorkerBinary(),
                                     "--eval-binary",
                                     "off",
                                     "--poll-interval",
                                     "0.2",
                                     "--restart-backoff",
                                     "0.5",
                                     "--stop-grace",
                                     "5",
                                     "--no-progress-timeout",
                                     "300"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto c = std::make_unique<Coordinator>(dir_.path() + "/state", args);
    c->Start();
    return c;
  }
  // Submits tiny_cpu.yaml with 2 ranks (plus overrides); returns the job id.
  std::string Submit(Coordinator& c, std::vector<std::string> sets = {}) {
    std::vector<std::string> args = {"submit", tiny_, "--set", "resources.ranks=2"};
    for (const auto& s : sets) {
      args.push_back("--set");
      args.push_back(s);
    }
    auto r = c.Ctl(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::string id = r.out.substr(0, r.out.find('\n'));
    EXPECT_EQ(id.rfind("job-", 0), 0u) << r.out;
    return id;
  }
  TempDir dir_{"e2e"};
  std::string tiny_;
};

int CountLinesWithStep(const std::string& metrics_jsonl, int64_t step) {
  std::istringstream in(metrics_jsonl);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.value("step", int64_t{-1}) == step) ++n;
  }
  return n;
}

TEST_F(E2ETest, SubmitWatchLogsAndRunDir) {
  auto c = Start();
  auto r = c->Ctl({"submit", tiny_, "--set", "resources.ranks=2", "--wait"}, 600);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << c->log();
  std::string id = r.out.substr(0, r.out.find('\n'));
  EXPECT_NE(r.out.find("RUNNING"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(id + " SUCCEEDED"), std::string::npos) << r.out;

  auto logs = c->Ctl({"logs", id});
  ASSERT_EQ(logs.exit_code, 0) << logs.err;
  EXPECT_NE(logs.out.find("[rank 0] "), std::string::npos) << logs.out.substr(0, 2000);
  EXPECT_NE(logs.out.find("[rank 1] "), std::string::npos) << logs.out.substr(0, 2000);
  auto one = c->Ctl({"logs", id, "--rank", "1"});
  EXPECT_EQ(one.out.find("[rank 1] "), std::string::npos);  // a single rank is printed raw (no prefix)
  EXPECT_NE(one.out.find("rank 1"), std::string::npos) << one.out.substr(0, 2000);

  const contract::RunPaths d(c->RunDir(id));
  std::string latest = testutil::ReadText(d.checkpoints_dir() + "/latest");
  EXPECT_FALSE(latest.empty());
  EXPECT_FALSE(contract::CheckpointEpochs(d).empty());
  std::string metrics_jsonl = testutil::ReadText(d.metrics_jsonl());
  EXPECT_GT(CountLinesWithStep(metrics_jsonl, 1), 0) << metrics_jsonl.substr(0, 500);
  // job.yaml: the worker's resolved config; attempts/1/job.yaml: the spec the coordinator launched.
  EXPECT_NE(testutil::ReadText(d.job_yaml()).find("ranks: 2"), std::string::npos);
  EXPECT_EQ(testutil::ReadText(d.job_yaml()), testutil::ReadText(d.attempt_job_yaml(1)));
  auto result = contract::ReadResult(d);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, contract::RunStatus::kSucceeded);

  v1::Job job = c->Get(id);
  EXPECT_EQ(job.state(), v1::SUCCEEDED);
  EXPECT_EQ(job.attempt(), 1);
  EXPECT_EQ(job.restarts(), 0);
  EXPECT_GT(job.progress().step(), 0);
  EXPECT_EQ(job.progress().step(), job.progress().total_steps());
  auto status = c->Ctl({"-o", "json", "status", id});
  auto sj = nlohmann::json::parse(status.out);
  EXPECT_EQ(sj["state"], "SUCCEEDED");
  // Coordinator metrics: the job counted as succeeded, the slots free again.
  std::string m;
  EXPECT_TRUE(testutil::WaitFor(
      [&] {
        m = testutil::HttpGet(c->metrics(), "/metrics");
        return m.find("vicreg_jobs{state=\"succeeded\"} 1") != std::string::npos &&
               m.find("vicreg_slots{state=\"free\"} 2") != std::string::npos;
      },
      10))
      << m;
  EXPECT_NE(m.find("vicreg_jobs_submitted_total{result=\"accepted\"} 1"), std::string::npos);
}

// Waits until the job runs and has a checkpoint with steps left after it; returns its rank-1 pid.
int WaitForCheckpointAndRank1(Coordinator& c, const std::string& id) {
  const contract::RunPaths d(c.RunDir(id));
  int pid = 0;
  bool ok = testutil::WaitFor(
      [&] {
        if (contract::CheckpointEpochs(d).empty()) return false;
        for (const auto& ep : contract::ReadEndpoints(d))
          if (ep.rank == 1) pid = ep.pid;
        return pid > 0;
      },
      300);
  EXPECT_TRUE(ok) << "no checkpoint / endpoint for " << id << "\n" << c.log();
  return pid;
}

TEST_F(E2ETest, KilledRankRestartsFromCheckpointAndSucceeds) {
  auto c = Start();
  // 6 epochs: the first checkpoint lands early, with most of the run still to go.
  std::string id = Submit(*c, {"train.num_epochs=6", "max_restarts=1"});
  int pid = WaitForCheckpointAndRank1(*c, id);
  ASSERT_GT(pid, 0);
  // Prometheus service discovery lists both running ranks with their labels.
  auto sd = nlohmann::json::parse(testutil::HttpGet(c->metrics(), "/sd"), nullptr, false);
  ASSERT_TRUE(sd.is_array()) << sd;
  std::set<std::string> ranks;
  for (const auto& g : sd) {
    EXPECT_EQ(g["labels"]["job_id"], id);
    ranks.insert(g["labels"]["rank"].get<std::string>());
    EXPECT_EQ(g["targets"][0].get<std::string>().rfind("127.0.0.1:", 0), 0u) << g;
  }
  EXPECT_EQ(ranks, (std::set<std::string>{"0", "1"}));

  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  v1::Job job = c->WaitTerminal(id, 600);
  ASSERT_EQ(job.state(), v1::SUCCEEDED) << job.last_error() << "\n" << c->log();
  EXPECT_EQ(job.restarts(), 1);
  ASSERT_EQ(job.attempts_size(), 2);
  EXPECT_NE(job.attempts(0).cause().find("rank 1 killed by signal 9 (SIGKILL)"), std::string::npos)
      << job.attempts(0).cause();
  EXPECT_NE(job.last_error().find("rank 1 killed by signal 9"), std::string::npos) << job.last_error();
  EXPECT_EQ(job.attempts(1).restart_reason(), "rank_exit");
  EXPECT_GT(job.attempts(1).start_step(), 0);
  // Resumed from the checkpoint: step 1 was trained (and logged) once, not twice.
  std::string metrics_jsonl = testutil::ReadText(c->RunDir(id) + "/metrics.jsonl");
  EXPECT_EQ(CountLinesWithStep(metrics_jsonl, 1), 1);
  EXPECT_EQ(CountLinesWithStep(metrics_jsonl, job.progress().total_steps()), 1);
  auto status = c->Ctl({"status", id});
  EXPECT_NE(status.out.find("restarts 1/1"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("rank_exit"), std::string::npos) << status.out;
  std::string m = testutil::HttpGet(c->metrics(), "/metrics");
  EXPECT_NE(m.find("vicreg_job_restarts_total{reason=\"rank_exit\"} 1"), std::string::npos) << m;
}

TEST_F(E2ETest, KilledRankWithoutRestartsFailsWithTheCause) {
  auto c = Start();
  std::string id = Submit(*c, {"train.num_epochs=6", "max_restarts=0"});
  int pid = WaitForCheckpointAndRank1(*c, id);
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  auto w = c->Ctl({"watch", id}, 600);
  EXPECT_EQ(w.exit_code, 1) << w.out;
  EXPECT_NE(w.out.find("FAILED"), std::string::npos) << w.out;
  v1::Job job = c->Get(id);
  ASSERT_EQ(job.state(), v1::FAILED);
  EXPECT_EQ(job.restarts(), 0);
  EXPECT_EQ(job.attempts_size(), 1);
  EXPECT_NE(job.last_error().find("rank 1 killed by signal 9 (SIGKILL)"), std::string::npos) << job.last_error();
  EXPECT_NE(job.last_error().find("last lines of logs/rank-1.out"), std::string::npos) << job.last_error();
  // Every rank is gone.
  int launcher_pid = std::atoi(job.attempts(0).handle().substr(6).c_str());
  EXPECT_TRUE(testutil::WaitFor([&] { return server::SessionMembers(launcher_pid).empty(); }, 10));
}

TEST_F(E2ETest, CoordinatorCrashLosesNothing) {
  auto c = Start();
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(Submit(*c));
  ASSERT_TRUE(testutil::WaitFor([&] { return c->Get(ids[0]).state() == v1::RUNNING; }, 120)) << c->log();
  for (int i = 1; i < 4; ++i) EXPECT_EQ(c->Get(ids[i]).state(), v1::QUEUED);
  c->Kill(SIGKILL);
  c->Start();
  for (const auto& id : ids) {
    v1::Job job = c->WaitTerminal(id, 600);
    EXPECT_EQ(job.state(), v1::SUCCEEDED) << id << ": " << job.last_error() << "\n" << c->log();
  }
  // The running job was re-adopted (its ranks did not die with the coordinator), not restarted.
  v1::Job first = c->Get(ids[0]);
  EXPECT_EQ(first.attempts_size(), 1) << first.last_error();
  auto w = c->Ctl({"-o", "json", "watch", ids[0]});
  EXPECT_NE(w.out.find("re-adopted attempt 1"), std::string::npos) << w.out;
  // One after the other on the 2 slots (gang placement): no two jobs overlapped.
  std::vector<v1::Job> jobs;
  for (const auto& id : ids) jobs.push_back(c->Get(id));
  for (size_t i = 1; i < jobs.size(); ++i) {
    EXPECT_GE(testutil::Seconds(jobs[i].started_time()), testutil::Seconds(jobs[i - 1].finished_time()) - 0.01)
        << ids[i];
  }
}

TEST_F(E2ETest, GangPlacementQueuesAndExplainsWhy) {
  auto c = Start();
  std::string a = Submit(*c);
  std::string b = Submit(*c);
  ASSERT_TRUE(
      testutil::WaitFor([&] { return c->Get(a).state() == v1::RUNNING || c->Get(a).state() == v1::STARTING; }, 60));
  v1::Job waiting = c->Get(b);
  if (waiting.state() == v1::QUEUED) {
    ASSERT_TRUE(testutil::WaitFor(
        [&] {
          return !c->Get(b).pending_reason().empty() && c->Get(b).pending_reason() != "waiting for the scheduler";
        },
        10));
    EXPECT_EQ(c->Get(b).pending_reason(), "waiting for 2 slots, 0 free (" + a + " holds 2)");
    auto st = c->Ctl({"status", b});
    EXPECT_NE(st.out.find("pending:    waiting for 2 slots, 0 free (" + a + " holds 2)"), std::string::npos) << st.out;
  } else {
    ADD_FAILURE() << b << " did not wait for " << a << ": " << v1::JobState_Name(waiting.state());
  }
  // A job that can never fit is refused at submit.
  auto big = c->Ctl({"submit", tiny_, "--set", "resources.ranks=3"});
  EXPECT_EQ(big.exit_code, 2);
  EXPECT_NE(big.err.find("FAILED_PRECONDITION"), std::string::npos) << big.err;
  EXPECT_NE(big.err.find("needs 3 slots"), std::string::npos) << big.err;
  v1::Job ja = c->WaitTerminal(a, 600), jb = c->WaitTerminal(b, 600);
  EXPECT_EQ(ja.state(), v1::SUCCEEDED);
  EXPECT_EQ(jb.state(), v1::SUCCEEDED);
  EXPECT_GE(testutil::Seconds(jb.started_time()), testutil::Seconds(ja.finished_time()) - 0.01);
}

}  // namespace
}  // namespace vicreg
