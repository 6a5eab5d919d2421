// Stopping attempts, with real processes (regression tests of issue 17's review):
//  - a graceful stop reaches each worker once: a cancelled real vicreg_worker (2 ranks under
//    mpirun) finishes its step and writes its stop checkpoint and result.json (before, the
//    coordinator, mpirun and the rank shim each sent a SIGTERM, the worker took the second as
//    "exit now" and exited 143 with nothing written);
//  - orphan ranks after cancel: a cancelled job's slots go to the next job only when its ranks are
//    gone, also when the coordinator is killed within stop_grace_s of the cancel (before, the slots
//    were freed at once and the SIGKILL escalation lived only in the dead coordinator's memory, so
//    a rank ignoring SIGTERM ran on forever next to the job that got its slot).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <set>

#include "common/run_contract.h"
#include "server/process.h"
#include "tests/server/test_util.h"

namespace vicreg {
namespace {

using testutil::Coordinator;
using testutil::TempDir;

int LeaderPid(const v1::Attempt& a) { return std::atoi(a.handle().substr(a.handle().find(':') + 1).c_str()); }

class StopTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& name, const std::string& yaml) {
    std::string p = dir_.path() + "/" + name;
    testutil::WriteText(p, yaml);
    return p;
  }
  TempDir dir_{"stop"};
};

// ---- graceful stop of a real worker ---------------------------------------------------------

TEST_F(StopTest, CancelledRealWorkerWritesItsStopCheckpoint) {
  ASSERT_EQ(access(testutil::RealWorkerBinary().c_str(), X_OK), 0) << testutil::RealWorkerBinary();
  Coordinator c(dir_.path() + "/state",
                {"--slots", "2", "--worker-binary", testutil::RealWorkerBinary(), "--eval-binary", "off",
                 "--poll-interval", "0.2", "--stop-grace", "60", "--no-progress-timeout", "300"});
  c.Start();
  // Long enough never to finish by itself; no epoch checkpoint before the stop (every_epochs 100).
  auto r = c.Ctl({"submit", testutil::SourceDir() + "/configs/tiny_cpu.yaml", "--set", "resources.ranks=2", "--set",
                  "train.num_epochs=200", "--set", "checkpoint.every_epochs=100"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string id = r.out.substr(0, r.out.find('\n'));
  const contract::RunPaths d(c.RunDir(id));
  ASSERT_TRUE(testutil::WaitFor(
      [&] {
        auto p = contract::ReadProgress(d);
        return p && p->progress.step >= 3;
      },
      300))
      << c.log();
  const int leader = LeaderPid(c.Get(id).attempts(0));
  ASSERT_GT(leader, 0);
  r = c.Ctl({"cancel", id});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The ranks finish their step, write the checkpoint and exit long before the 60-s grace ends.
  ASSERT_TRUE(testutil::WaitFor([&] { return server::SessionMembers(leader).empty(); }, 50))
      << "the ranks did not stop by themselves\n"
      << c.log();
  auto result = contract::ReadResult(d);
  ASSERT_TRUE(result) << "no result.json: the worker did not stop gracefully\n"
                      << testutil::ReadText(d.logs_dir() + "/rank-0.out");
  EXPECT_EQ(result->status, contract::RunStatus::kFailed);
  EXPECT_EQ(result->reason, "terminated by SIGTERM");
  EXPECT_GE(result->step, 3);
  ASSERT_FALSE(result->checkpoint.empty());
  EXPECT_NE(result->checkpoint.find("/step_"), std::string::npos) << result->checkpoint;
  EXPECT_EQ(access(result->checkpoint.c_str(), R_OK), 0) << result->checkpoint;
  std::string manifest = result->checkpoint.substr(0, result->checkpoint.size() - 3) + ".json";
  auto m = nlohmann::json::parse(testutil::ReadText(manifest), nullptr, false);
  ASSERT_FALSE(m.is_discarded()) << manifest;
  EXPECT_EQ(m.value("global_step", int64_t{-1}), result->step);
  EXPECT_EQ(testutil::ReadText(d.checkpoints_dir() + "/latest").find(m.value("file", std::string("?"))), 0u);
  // Each rank exited 1 by itself (the worker's stop), not 143 (a second SIGTERM: "exit now").
  for (int rank = 0; rank < 2; ++rank) {
    auto rec = contract::ReadExitRecord(contract::RankExitPath(d.attempt_ranks_dir(1), rank));
    ASSERT_TRUE(rec) << "rank " << rank;
    EXPECT_EQ(rec->exit_code, kExitFailure) << "rank " << rank;
    EXPECT_EQ(rec->signal, 0) << "rank " << rank;
  }
}

// ---- orphan ranks after cancel ---------------------------------------------------------------

TEST_F(StopTest, CancelledRanksKeepTheirSlotsUntilGoneAcrossACoordinatorKill) {
  Coordinator c(dir_.path() + "/state", {"--slots", "1", "--worker-binary", testutil::FakeWorker(), "--eval-binary",
                                         "off", "--poll-interval", "0.1", "--stop-grace", "4"});
  c.Start();
  // The fake worker named "stubborn" ignores SIGTERM and would step for 300 s.
  auto r = c.Ctl({"submit", Write("stubborn.yaml", "name: stubborn\ntrain: {max_steps: 1000}\n")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string stubborn = r.out.substr(0, r.out.find('\n'));
  ASSERT_TRUE(testutil::WaitFor([&] { return c.Get(stubborn).state() == v1::RUNNING; }, 60)) << c.log();
  const int leader = LeaderPid(c.Get(stubborn).attempts(0));
  ASSERT_GT(leader, 0);
  struct Cleanup {  // whatever happens, no stubborn rank outlives the test
    int sid;
    ~Cleanup() { server::SignalSession(sid, SIGKILL); }
  } cleanup{leader};
  r = c.Ctl({"submit", Write("next.yaml", "name: next\ntrain: {max_steps: 5}\n")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string next = r.out.substr(0, r.out.find('\n'));
  r = c.Ctl({"cancel", stubborn});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(c.Get(stubborn).state(), v1::CANCELLED);
  c.Kill(SIGKILL);  // within stop_grace_s of the cancel
  EXPECT_FALSE(server::SessionMembers(leader).empty()) << "the stubborn rank should have ignored SIGTERM";
  c.Start();
  // The next job starts once the stubborn ranks are gone (SIGKILL ~4 s after the cancel), never before.
  ASSERT_TRUE(testutil::WaitFor([&] { return c.Get(next).attempts_size() > 0; }, 60)) << c.log();
  EXPECT_TRUE(server::SessionMembers(leader).empty()) << "job " << next << " got the slot of cancelled " << stubborn
                                                      << " while its ranks were still running";
  EXPECT_EQ(c.WaitTerminal(next, 60).state(), v1::SUCCEEDED);
  v1::Job j = c.Get(stubborn);
  EXPECT_EQ(j.state(), v1::CANCELLED);
  EXPECT_EQ(j.placement(), "");
}

}  // namespace
}  // namespace vicreg
