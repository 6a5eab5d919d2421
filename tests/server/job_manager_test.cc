// The job manager's state machine with an in-process fake launcher (tests/server/fake_launcher.h):
// queue -> start -> progress -> exit / restart / stall / cancel / lost, launch failures, and recovery
// by a second manager on the same store after a "coordinator restart". No process is spawned; the
// run directory files the manager reads (progress.json, endpoints, exit records, result.json) are
// written by the test through common/run_contract.h. Each test takes well under a second.
#include "server/job_manager.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/fs.h"
#include "common/run_contract.h"
#include "server/service_error.h"
#include "tests/server/fake_launcher.h"
#include "tests/server/test_util.h"

namespace vicreg::server {
namespace {

using testutil::FakeCluster;
using testutil::FakeLauncher;

class JobManagerTest : public ::testing::Test {
 protected:
  JobManagerTest() {
    JobStore::Options so;
    so.path = dir_.path() + "/coordinator.db";
    so.runs_root = dir_.path() + "/runs";
    so.checkpoint_interval_s = 0;
    store_ = std::make_unique<JobStore>(so);
    fs::MakeDirs(so.runs_root);
  }
  ~JobManagerTest() override {
    if (manager_) manager_->Stop();
  }

  // A manager on `slots` CPU slots with the fake launcher (a new one per call: a "coordinator restart").
  JobManager& StartManager(int slots = 2, LauncherCapabilities caps = {}) {
    if (manager_) manager_->Stop();
    manager_.reset();
    launcher_.reset();
    JobManagerOptions o;
    o.runs_root = dir_.path() + "/runs";
    o.worker_binary = "/opt/vicreg/vicreg_worker";
    o.poll_interval_s = 0.01;
    o.no_progress_timeout_s = no_progress_timeout_s_;
    o.stop_grace_s = stop_grace_s_;
    o.restart_backoff_s = 0.01;
    o.progress_event_interval_s = 0;
    o.max_queue_wait_s = max_queue_wait_s_;
    o.retention_s = retention_s_;
    o.retention_delete_run_dirs = retention_s_ > 0;
    o.retention_interval_s = 0.05;
    SchedulerOptions sched;
    if (caps.places_ranks) sched.kind = SlotKind::kCluster;
    for (int i = 0; i < slots; ++i) sched.slots.push_back(i);
    launcher_ = std::make_unique<FakeLauncher>(cluster_, caps);
    manager_ = std::make_unique<JobManager>(o, *store_, Scheduler(sched), *launcher_, nullptr, nullptr);
    manager_->Start();
    return *manager_;
  }

  // extra: more top-level YAML; resources: more keys of the resources section (", nodes: 2").
  std::string Submit(const std::string& name, int ranks = 2, int max_restarts = 2, const std::string& extra = "",
                     const std::string& resources = "") {
    SubmitRequest r;
    r.yaml = "name: " + name + "\nresources: {ranks: " + std::to_string(ranks) + resources +
             "}\nmax_restarts: " + std::to_string(max_restarts) + "\n" + extra;
    return manager_->Submit(r).job.id;
  }

  JobRecord Job(const std::string& id) { return *store_->GetJob(id, false); }
  contract::RunPaths Run(const std::string& id) { return contract::RunPaths(Job(id).run_dir); }

  bool WaitState(const std::string& id, JobState s, double timeout_s = 5) {
    return testutil::WaitFor([&] { return Job(id).state == s; }, timeout_s);
  }
  bool WaitLaunches(const std::string& id, int n, double timeout_s = 5) {
    return testutil::WaitFor([&] { return cluster_->launches(id) >= n; }, timeout_s);
  }

  // What a worker would write: progress, and at the end result.json and the ranks' exit records.
  void Progress(const std::string& id, int64_t step, int64_t total = 20) {
    contract::WriteProgress(Run(id), {step, total, 1, 1, 10.0 / step, 100});
  }
  void WorkerEnds(const std::string& id, contract::RunStatus status, const std::string& reason, int attempt,
                  std::vector<int> rank_codes) {
    contract::RunPaths d = Run(id);
    contract::RunResult r;
    r.status = status;
    r.reason = reason;
    r.step = 20;
    contract::WriteResult(d, r);
    fs::MakeDirs(d.attempt_ranks_dir(attempt));
    for (size_t rank = 0; rank < rank_codes.size(); ++rank) {
      contract::ExitRecord e;
      e.rank = static_cast<int>(rank);
      e.exit_code = rank_codes[rank];
      e.finished = static_cast<double>(rank);
      fs::AtomicWriteFile(d.attempt_rank_exit(attempt, static_cast<int>(rank)), contract::FormatExitRecord(e));
    }
  }

  std::vector<std::string> Messages(const std::string& id) {
    std::vector<std::string> out;
    for (const auto& e : store_->EventsAfter(id, 0, 1000)) out.push_back(e.message);
    return out;
  }
  bool HasMessage(const std::string& id, const std::string& part) {
    for (const auto& m : Messages(id))
      if (m.find(part) != std::string::npos) return true;
    return false;
  }

  testutil::TempDir dir_{"jobmanager"};
  std::unique_ptr<JobStore> store_;
  std::shared_ptr<FakeCluster> cluster_ = std::make_shared<FakeCluster>();
  std::unique_ptr<FakeLauncher> launcher_;
  std::unique_ptr<JobManager> manager_;
  double no_progress_timeout_s_ = 600;
  double stop_grace_s_ = 0.1;
  double max_queue_wait_s_ = 0;
  double retention_s_ = 0;
};

TEST_F(JobManagerTest, QueueStartProgressSucceed) {
  StartManager(2);
  std::string id = Submit("ok");
  ASSERT_TRUE(WaitLaunches(id, 1));
  auto a = cluster_->Latest(id);
  EXPECT_EQ(a->spec.ranks, 2);
  EXPECT_EQ(a->spec.attempt, 1);
  const contract::RunPaths d = Run(id);
  // The worker runs the spec the coordinator wrote for this attempt, resuming in its run dir.
  EXPECT_EQ(a->spec.name, id + "-a1");
  EXPECT_EQ(a->spec.rank_status_dir, d.attempt_ranks_dir(1));
  EXPECT_EQ(a->spec.status_path, d.attempt_status(1));
  EXPECT_EQ(a->spec.argv, (std::vector<std::string>{"/opt/vicreg/vicreg_worker", "--job", d.attempt_job_yaml(1),
                                                    "--run-dir", d.root(), "--resume", "auto", "--job-id", id}));
  EXPECT_NE(testutil::ReadText(d.attempt_job_yaml(1)).find("name: \"ok\""), std::string::npos);
  EXPECT_FALSE(fs::Exists(d.job_yaml())) << "the worker writes <run>/job.yaml, not the coordinator";
  EXPECT_EQ(Job(id).state, JobState::kStarting);
  EXPECT_EQ(Job(id).placement, "cpu:0,1");

  Progress(id, 5);
  ASSERT_TRUE(WaitState(id, JobState::kRunning));
  ASSERT_TRUE(testutil::WaitFor([&] { return Job(id).progress.step == 5; }, 5));
  EXPECT_EQ(Job(id).progress.total_steps, 20);

  Progress(id, 20);
  WorkerEnds(id, contract::RunStatus::kSucceeded, "", 1, {kExitOk, kExitOk});
  cluster_->Exit(id, kExitOk);
  ASSERT_TRUE(WaitState(id, JobState::kSucceeded));
  JobRecord j = Job(id);
  EXPECT_EQ(j.placement, "");
  EXPECT_EQ(j.progress.step, 20);
  EXPECT_EQ(j.attempt, 1);
  auto attempts = store_->Attempts(id);
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].handle, a->handle);
  EXPECT_EQ(attempts[0].launcher, "fake");
  EXPECT_EQ(attempts[0].cause, "succeeded");
  EXPECT_EQ(attempts[0].restart_reason, RestartReason::kNone);
  std::vector<std::string> m = Messages(id);
  ASSERT_GE(m.size(), 4u);
  EXPECT_EQ(m.front().rfind("submitted", 0), 0u);
  EXPECT_EQ(m.back().rfind("succeeded (attempt 1, 0 restarts)", 0), 0u) << m.back();
}

TEST_F(JobManagerTest, SecondJobWaitsForSlotsThenStarts) {
  StartManager(2);
  std::string a = Submit("first");
  std::string b = Submit("second");
  ASSERT_TRUE(WaitLaunches(a, 1));
  ASSERT_TRUE(testutil::WaitFor([&] { return !manager_->PendingReason(b).empty(); }, 5));
  EXPECT_EQ(manager_->PendingReason(b), "waiting for 2 slots, 0 free (" + a + " holds 2)");
  EXPECT_EQ(Job(b).state, JobState::kQueued);
  EXPECT_EQ(cluster_->launches(b), 0);
  WorkerEnds(a, contract::RunStatus::kSucceeded, "", 1, {kExitOk, kExitOk});
  cluster_->Exit(a, kExitOk);
  ASSERT_TRUE(WaitLaunches(b, 1));
  EXPECT_EQ(Job(a).state, JobState::kSucceeded);
  EXPECT_EQ(manager_->PendingReason(b), "");
}

TEST_F(JobManagerTest, FailedRankRestartsFromCheckpointThenSucceeds) {
  StartManager(2);
  std::string id = Submit("flaky");
  ASSERT_TRUE(WaitLaunches(id, 1));
  Progress(id, 3);
  WorkerEnds(id, contract::RunStatus::kFailed, "peer died", 1, {kExitOk, kExitFailure});
  cluster_->Exit(id, kExitFailure);
  ASSERT_TRUE(WaitLaunches(id, 2));
  auto second = cluster_->Latest(id);
  EXPECT_EQ(second->spec.attempt, 2);
  JobRecord j = Job(id);
  EXPECT_EQ(j.restarts, 1);
  EXPECT_NE(j.last_error.find("attempt 1: rank 1 exited with code 1"), std::string::npos) << j.last_error;
  EXPECT_NE(j.last_error.find("worker: peer died"), std::string::npos) << j.last_error;
  // The failed attempt's result.json was moved aside: it is not taken for the new attempt's.
  EXPECT_TRUE(fs::Exists(Run(id).attempt_result(1)));
  EXPECT_FALSE(fs::Exists(Run(id).result_json()));
  auto attempts = store_->Attempts(id);
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[1].restart_reason, RestartReason::kRankExit);
  EXPECT_EQ(attempts[1].start_step, 3);

  WorkerEnds(id, contract::RunStatus::kSucceeded, "", 2, {kExitOk, kExitOk});
  cluster_->Exit(id, kExitOk);
  ASSERT_TRUE(WaitState(id, JobState::kSucceeded));
  EXPECT_TRUE(HasMessage(id, "succeeded (attempt 2, 1 restart)"));
}

TEST_F(JobManagerTest, RankThatRejectsItsInputIsNotRestarted) {
  StartManager(2);
  std::string id = Submit("badinput", 2, 5);
  ASSERT_TRUE(WaitLaunches(id, 1));
  WorkerEnds(id, contract::RunStatus::kFailed, "invalid input: data.data_dir missing", 1, {kExitUsage, kExitUsage});
  cluster_->Exit(id, kExitUsage);
  ASSERT_TRUE(WaitState(id, JobState::kFailed));
  EXPECT_EQ(cluster_->launches(id), 1);
  EXPECT_TRUE(HasMessage(id, "a rank rejected its input with exit code 2; not restarted"));
}

TEST_F(JobManagerTest, MaxRestartsEndsTheJob) {
  StartManager(2);
  std::string id = Submit("doomed", 1, 1);
  for (int n = 1; n <= 2; ++n) {
    ASSERT_TRUE(WaitLaunches(id, n));
    cluster_->Exit(id, -1, SIGSEGV);
  }
  ASSERT_TRUE(WaitState(id, JobState::kFailed));
  EXPECT_EQ(cluster_->launches(id), 2);
  EXPECT_EQ(Job(id).restarts, 1);
  EXPECT_TRUE(HasMessage(id, "(max_restarts 1 reached)"));
  EXPECT_NE(Job(id).last_error.find("launcher killed by SIGSEGV"), std::string::npos) << Job(id).last_error;
}

TEST_F(JobManagerTest, StalledAttemptIsStoppedAndRestarted) {
  no_progress_timeout_s_ = 0.3;
  StartManager(2);
  std::string id = Submit("stuck", 2, 1);
  ASSERT_TRUE(WaitLaunches(id, 1));
  Progress(id, 3);
  ASSERT_TRUE(WaitLaunches(id, 2));
  auto first = cluster_->Attempts(id)[0];
  EXPECT_EQ(first.terms, 1);  // SIGTERM was enough
  auto attempts = store_->Attempts(id);
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_NE(attempts[0].cause.find("no progress for"), std::string::npos) << attempts[0].cause;
  EXPECT_NE(attempts[0].cause.find("step stuck at 3"), std::string::npos) << attempts[0].cause;
  EXPECT_NE(attempts[0].cause.find("(stopped by the coordinator)"), std::string::npos) << attempts[0].cause;
  EXPECT_EQ(attempts[1].restart_reason, RestartReason::kNoProgress);
}

TEST_F(JobManagerTest, StalledAttemptIgnoringSigtermIsKilledAfterTheGrace) {
  no_progress_timeout_s_ = 0.2;
  StartManager(2);
  std::string id = Submit("deaf", 2, 0);
  ASSERT_TRUE(WaitLaunches(id, 1));
  cluster_->IgnoreSigterm(id);
  ASSERT_TRUE(WaitState(id, JobState::kFailed));
  auto a = cluster_->Latest(id);
  EXPECT_GE(a->terms, 1);
  EXPECT_GE(a->kills, 1);
  EXPECT_NE(Job(id).last_error.find("no progress.json from this attempt"), std::string::npos) << Job(id).last_error;
}

TEST_F(JobManagerTest, CancelQueuedAndRunningJobs) {
  StartManager(2);
  std::string running = Submit("running");
  std::string queued = Submit("queued");
  ASSERT_TRUE(WaitLaunches(running, 1));
  JobRecord q = manager_->Cancel(queued, "not needed");
  EXPECT_EQ(q.state, JobState::kCancelled);
  JobRecord r = manager_->Cancel(running, "");
  EXPECT_EQ(r.state, JobState::kCancelled);  // at once; slots freed as soon as its processes are gone (here at once)
  EXPECT_EQ(r.placement, "");
  EXPECT_TRUE(HasMessage(queued, "cancelled: not needed"));
  EXPECT_TRUE(HasMessage(running, "cancelled by a client"));
  EXPECT_FALSE(cluster_->Running(running));  // SIGTERM to the attempt
  EXPECT_GE(cluster_->Latest(running)->terms, 1);
  EXPECT_EQ(cluster_->launches(queued), 0);
  // Cancelling an ended job returns it unchanged.
  EXPECT_EQ(manager_->Cancel(running, "again").state, JobState::kCancelled);
  EXPECT_THROW(manager_->Cancel("job-000099", ""), ServiceError);
}

// Regression test of issue 17's review ("orphan ranks after cancel"): before, a cancel freed the
// slots at once and the SIGKILL escalation lived only in memory, so ranks ignoring SIGTERM kept
// running while the next job got their slots, and forever if the coordinator restarted within
// stop_grace_s.
TEST_F(JobManagerTest, CancelledJobKeepsItsSlotsUntilItsProcessesAreGoneAcrossARestart) {
  stop_grace_s_ = 1.5;
  StartManager(2);
  std::string stubborn = Submit("stubborn", 2);
  ASSERT_TRUE(WaitLaunches(stubborn, 1));
  cluster_->IgnoreSigterm(stubborn);
  std::string next = Submit("next", 2);
  const double t0 = NowUnix();
  JobRecord c = manager_->Cancel(stubborn, "");
  EXPECT_EQ(c.state, JobState::kCancelled);
  EXPECT_EQ(c.placement, "cpu:0,1");  // still held: its processes ignore SIGTERM
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(cluster_->launches(next), 0) << "the slots of a cancelled job went to the next job while its ranks live";
  // The coordinator restarts within stop_grace_s of the cancel: the restarted one finishes the stop.
  StartManager(2);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_TRUE(cluster_->Running(stubborn));
  EXPECT_EQ(cluster_->launches(next), 0);
  ASSERT_TRUE(WaitLaunches(next, 1, 10)) << "the restarted coordinator never finished the stop";
  EXPECT_GE(NowUnix() - t0, 1.5);  // SIGKILL only after stop_grace_s since the cancel
  EXPECT_FALSE(cluster_->Running(stubborn));
  EXPECT_GE(cluster_->Latest(stubborn)->kills, 1);
  EXPECT_EQ(Job(stubborn).placement, "");
  EXPECT_EQ(Job(stubborn).state, JobState::kCancelled);
  EXPECT_TRUE(HasMessage(stubborn, "are gone (SIGKILL after stop_grace_s); cpu:0,1 freed"));
}

// Retention (issue 17): an ended job leaves the store, and its run dir goes with
// retention_delete_run_dirs, retention_s after it ended; running jobs stay.
TEST_F(JobManagerTest, RetentionRemovesEndedJobsAndTheirRunDirs) {
  retention_s_ = 1;
  StartManager(2);
  std::string done = Submit("done", 1);
  std::string running = Submit("running", 1);
  ASSERT_TRUE(WaitLaunches(done, 1));
  ASSERT_TRUE(WaitLaunches(running, 1));
  WorkerEnds(done, contract::RunStatus::kSucceeded, "completed", 1, {0});
  cluster_->Exit(done, 0);
  ASSERT_TRUE(WaitState(done, JobState::kSucceeded));
  const std::string run_dir = Job(done).run_dir;
  ASSERT_TRUE(fs::Exists(run_dir));
  ASSERT_TRUE(testutil::WaitFor([&] { return !store_->GetJob(done, false); }, 10)) << "never removed";
  EXPECT_TRUE(testutil::WaitFor([&] { return !fs::Exists(run_dir); }, 5)) << run_dir;
  EXPECT_TRUE(store_->EventsAfter(done, 0, 10).empty());
  EXPECT_EQ(Job(running).state, JobState::kStarting);
  EXPECT_TRUE(fs::Exists(Job(running).run_dir));
}

TEST_F(JobManagerTest, LostAttemptIsRestarted) {
  StartManager(2);
  std::string id = Submit("lost", 2, 1);
  ASSERT_TRUE(WaitLaunches(id, 1));
  cluster_->Lose(id, "launcher process 123 is gone");
  ASSERT_TRUE(WaitLaunches(id, 2));
  EXPECT_NE(Job(id).last_error.find("attempt lost: launcher process 123 is gone"), std::string::npos)
      << Job(id).last_error;
}

TEST_F(JobManagerTest, LaunchFailuresFollowTheLaunchersCapability) {
  LauncherCapabilities permanent;
  permanent.launch_failures_are_permanent = true;
  StartManager(2, permanent);
  cluster_->FailLaunches(1, "cannot run mpirun");
  std::string a = Submit("nolaunch", 2, 3);
  ASSERT_TRUE(WaitState(a, JobState::kFailed));
  EXPECT_TRUE(HasMessage(a, "launch failures are not retried"));
  EXPECT_NE(Job(a).last_error.find("launch failed: cannot run mpirun"), std::string::npos) << Job(a).last_error;

  StartManager(2);  // a launcher whose launch failures may be transient
  cluster_->FailLaunches(1, "sbatch: controller busy");
  std::string b = Submit("retry", 2, 3);
  ASSERT_TRUE(WaitLaunches(b, 1));
  auto attempts = store_->Attempts(b);
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[1].restart_reason, RestartReason::kLaunchFailure);
  EXPECT_EQ(Job(b).restarts, 1);
}

TEST_F(JobManagerTest, RecoveryReadoptsAccountsRestartsAndRequeues) {
  StartManager(4);
  std::string alive = Submit("alive", 1);
  std::string lost = Submit("lost", 1);
  std::string ended = Submit("ended", 1);
  std::string done = Submit("done", 1);
  std::string queued = Submit("waits", 4);
  for (const auto& id : {alive, lost, ended, done}) ASSERT_TRUE(WaitLaunches(id, 1));
  Progress(alive, 7);
  ASSERT_TRUE(WaitState(alive, JobState::kRunning));
  // The "coordinator" stops; the attempts go on (or not) without it.
  manager_->Stop();
  cluster_->Lose(lost, "launcher process 42 is gone");
  WorkerEnds(ended, contract::RunStatus::kFailed, "disk full", 1, {kExitFailure});
  cluster_->Exit(ended, kExitFailure);
  WorkerEnds(done, contract::RunStatus::kSucceeded, "", 1, {kExitOk});
  cluster_->Exit(done, kExitOk);
  const int launches_before = cluster_->launches();

  StartManager(4);
  EXPECT_EQ(Job(done).state, JobState::kSucceeded);
  EXPECT_TRUE(HasMessage(alive, "coordinator restarted: re-adopted attempt 1"));
  EXPECT_EQ(cluster_->launches(alive), 1) << "re-adopted, not launched again";
  // The lost one restarts without using up a restart; the one that failed while down restarts as usual.
  ASSERT_TRUE(WaitLaunches(lost, 2));
  ASSERT_TRUE(WaitLaunches(ended, 2));
  EXPECT_EQ(Job(lost).restarts, 0);
  EXPECT_EQ(store_->Attempts(lost)[1].restart_reason, RestartReason::kCoordinatorRestart);
  EXPECT_EQ(Job(ended).restarts, 1);
  EXPECT_EQ(store_->Attempts(ended)[1].restart_reason, RestartReason::kRankExit);
  EXPECT_EQ(cluster_->launches(), launches_before + 2);
  // The re-adopted attempt is followed as before: progress, then success; then the queued job runs.
  Progress(alive, 9);
  ASSERT_TRUE(testutil::WaitFor([&] { return Job(alive).progress.step == 9; }, 5));
  WorkerEnds(alive, contract::RunStatus::kSucceeded, "", 1, {kExitOk});
  cluster_->Exit(alive, kExitOk);
  ASSERT_TRUE(WaitState(alive, JobState::kSucceeded));
  for (const auto& id : {lost, ended}) cluster_->Exit(id, kExitOk);
  ASSERT_TRUE(WaitLaunches(queued, 1));
}

TEST_F(JobManagerTest, RecoveryRequeuesAJobWhosePlacementIsGone) {
  StartManager(4);
  std::string id = Submit("wide", 4);
  ASSERT_TRUE(WaitLaunches(id, 1));
  EXPECT_EQ(Job(id).placement, "cpu:0,1,2,3");
  manager_->Stop();
  StartManager(2);  // restarted with fewer slots: slots 2 and 3 are gone
  EXPECT_FALSE(cluster_->Running(id)) << "its attempt is stopped";
  EXPECT_EQ(Job(id).state, JobState::kQueued);
  EXPECT_TRUE(HasMessage(id, "re-queued: its placement is not available"));
}

// ---- a launcher whose cluster queues attempts (Slurm) ------------------------------------------

LauncherCapabilities ClusterCaps() {
  LauncherCapabilities c;
  c.places_ranks = true;
  return c;
}

TEST_F(JobManagerTest, AQueueWaitIsShownAndNeverCountsAsNoProgress) {
  no_progress_timeout_s_ = 0.2;
  StartManager(100, ClusterCaps());
  cluster_->QueueNewLaunches("PENDING", "Resources");
  std::string id = Submit("waits", 64, 0, "", ", nodes: 8, ranks_per_node: 8");
  ASSERT_TRUE(WaitLaunches(id, 1));
  ASSERT_TRUE(testutil::WaitFor([&] { return Job(id).attempt_phase == AttemptPhase::kQueued; }, 5));
  JobRecord j = Job(id);
  EXPECT_EQ(j.state, JobState::kStarting);
  EXPECT_EQ(j.queue_state, "PENDING");
  EXPECT_EQ(j.queue_reason, "Resources");
  EXPECT_GT(j.queued_since_unix, 0);
  EXPECT_EQ(j.placement, "cluster:0") << "one submission slot, whatever the ranks";
  auto spec = cluster_->Latest(id)->spec;
  EXPECT_EQ(spec.nodes, 8);
  EXPECT_EQ(spec.ranks_per_node, 8);
  EXPECT_FALSE(spec.gpu_per_rank);
  EXPECT_TRUE(HasMessage(id, "waits in the cluster queue: PENDING (Resources)"));
  // Three times the no-progress timeout in the queue: not stopped, not restarted.
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  EXPECT_EQ(cluster_->stops(), 0);
  EXPECT_EQ(cluster_->launches(id), 1);
  EXPECT_EQ(Job(id).attempt_phase, AttemptPhase::kQueued);
  // It runs: the no-progress clock starts now.
  cluster_->Run(id);
  ASSERT_TRUE(testutil::WaitFor([&] { return Job(id).attempt_phase == AttemptPhase::kRunning; }, 5));
  EXPECT_EQ(Job(id).queue_state, "");
  EXPECT_TRUE(HasMessage(id, "left the cluster queue after"));
  auto a = store_->GetAttempt(id, 1);
  EXPECT_GT(a->running_unix, a->queued_unix);
  EXPECT_EQ(a->queue_reason, "Resources");
  Progress(id, 20);
  WorkerEnds(id, contract::RunStatus::kSucceeded, "", 1, {kExitOk});
  cluster_->Exit(id, kExitOk);
  ASSERT_TRUE(WaitState(id, JobState::kSucceeded));
  EXPECT_EQ(Job(id).attempt_phase, AttemptPhase::kEnded);
}

TEST_F(JobManagerTest, MaxQueueWaitEndsTheJobWithThatCause) {
  max_queue_wait_s_ = 30;  // the coordinator's cap; the job asks for less
  StartManager(100, ClusterCaps());
  cluster_->QueueNewLaunches("PENDING", "Priority");
  std::string id = Submit("impatient", 2, 3, "max_queue_wait_s: 0.3\n");
  ASSERT_TRUE(WaitState(id, JobState::kFailed));
  EXPECT_EQ(cluster_->launches(id), 1) << "not restarted, whatever max_restarts";
  EXPECT_GE(cluster_->Latest(id)->terms, 1) << "cancelled in the cluster (scancel)";
  JobRecord j = Job(id);
  EXPECT_NE(j.last_error.find("in the cluster queue (PENDING (Priority)); max_queue_wait_s 0.3"), std::string::npos)
      << j.last_error;
  EXPECT_TRUE(HasMessage(id, "(not restarted)"));
}

TEST_F(JobManagerTest, AHandleNeverRecordedIsFoundByNameAndKept) {
  StartManager(100, ClusterCaps());
  cluster_->HideHandles(true);
  std::string id = Submit("noreply", 2, 0);
  ASSERT_TRUE(WaitLaunches(id, 1));
  const std::string handle = cluster_->Latest(id)->handle;
  ASSERT_TRUE(testutil::WaitFor([&] { return store_->GetAttempt(id, 1)->handle == handle; }, 5));
  EXPECT_TRUE(HasMessage(id, "found by its name: " + handle));
  // After a coordinator restart the stored handle is used: still one launch.
  manager_->Stop();
  StartManager(100, ClusterCaps());
  EXPECT_TRUE(HasMessage(id, "re-adopted attempt 1 (" + handle));
  cluster_->Exit(id, kExitOk);
  ASSERT_TRUE(WaitState(id, JobState::kSucceeded));
  EXPECT_EQ(cluster_->launches(id), 1);
}

TEST_F(JobManagerTest, RecoveryReadoptsAnAttemptStillQueued) {
  StartManager(100, ClusterCaps());
  cluster_->QueueNewLaunches();
  std::string id = Submit("queued", 4, 1);
  ASSERT_TRUE(testutil::WaitFor([&] { return Job(id).attempt_phase == AttemptPhase::kQueued; }, 5));
  const double since = Job(id).queued_since_unix;
  manager_->Stop();
  StartManager(100, ClusterCaps());
  EXPECT_TRUE(HasMessage(id, "re-adopted attempt 1"));
  EXPECT_EQ(Job(id).attempt_phase, AttemptPhase::kQueued);
  EXPECT_DOUBLE_EQ(Job(id).queued_since_unix, since) << "the wait is counted from the submission";
  cluster_->Run(id);
  cluster_->Exit(id, kExitOk);
  ASSERT_TRUE(WaitState(id, JobState::kSucceeded));
  EXPECT_EQ(cluster_->launches(id), 1);
}

}  // namespace
}  // namespace vicreg::server
