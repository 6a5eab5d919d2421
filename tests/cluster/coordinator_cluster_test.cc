// vicreg_coordinator with the Slurm launcher driving the multi-node test bed (tests/cluster/testbed.sh):
// real coordinator, vicregctl, sbatch/srun/squeue/scancel (the bed's wrappers on PATH), real workers
// with ranks on several nodes. What issue 13 asks to be shown on a real cluster:
//   * a node dies during a 2-node job: the attempt ends within the collective timeout with a cause
//     naming the dead node, the job is resubmitted from its last checkpoint onto the nodes still up
//     and SUCCEEDS at the planned step;
//   * slurmctld killed and restarted during a run, the coordinator killed (-9) meanwhile with one job
//     running and one queued in Slurm: nothing fails, both are re-adopted (one Slurm job each) and
//     SUCCEED;
//   * queue semantics: PENDING (Resources) for longer than no_progress_timeout_s is shown as queued
//     and neither cancelled nor restarted, the job starts when the cluster frees up; max_queue_wait_s;
//   * one squeue call per refresh with 200 jobs queued in Slurm, vicregctl list latency;
//   * scheduled evaluation of a multi-node job as a Slurm job on a cluster node.
// Each test resets the bed (no jobs, every node idle) before and after. Set VICREG_KEEP_TEST_DIRS=1
// to keep a passing test's coordinator dir (<bed>/work/coord-*).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/cluster/testbed.h"
#include "tests/comm/subprocess.h"
#include "tests/server/test_util.h"

namespace vicreg::testing {
namespace {

using ::testing::AnyOf;
using testutil::Coordinator;
using testutil::WaitFor;

// WaitFor for conditions that run a command (squeue through the bed, vicregctl): every 0.5 s, not
// every 50 ms, so that polling does not take the CPU from the ranks under test.
bool WaitForCommand(const std::function<bool()>& pred, double timeout_s) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (true) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= end) return false;
    usleep(500000);
  }
}

bool IsTerminal(v1::JobState s) { return s == v1::SUCCEEDED || s == v1::FAILED || s == v1::CANCELLED; }

struct SlurmJob {
  std::string id, name, state, reason_or_nodes;
};

class CoordinatorOnBed : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_TESTBED();
    bed_ = &TestBed::Get();
    const std::string base = bed_->dir() + "/work";
    RunProcess({"mkdir", "-p", base}, 10);
    std::string tmpl = base + "/coord-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    // The coordinator (a child of this process) finds sbatch/squeue/scancel/srun on PATH: the bed's
    // wrappers, which run the real commands in the login namespace.
    old_path_ = std::getenv("PATH") ? std::getenv("PATH") : "";
    setenv("PATH", (bed_->bin() + ":" + old_path_).c_str(), 1);
    setenv("SLURM_CONF", bed_->conf().c_str(), 1);
    // Finished jobs of earlier tests stay in squeue for MinJobAge, under the same names (a fresh
    // coordinator numbers its jobs from job-000001 again): only jobs newer than these are ours.
    for (const auto& j : SlurmJobs()) first_slurm_id_ = std::max(first_slurm_id_, std::atol(j.id.c_str()));
  }
  void TearDown() override {
    if (!bed_) return;
    for (auto& c : coordinators_) c->Kill(SIGKILL);
    setenv("PATH", old_path_.c_str(), 1);
    bed_->Script({"reset"}, 120);  // the next test starts without our Slurm jobs
    if (!HasFailure() && !std::getenv("VICREG_KEEP_TEST_DIRS"))
      RunProcess({"rm", "-rf", dir_}, 60);
    else
      std::fprintf(stderr, "keeping %s for inspection (bed logs: %s/log)\n", dir_.c_str(), bed_->dir().c_str());
  }

  // A coordinator with the Slurm launcher; `yaml` is appended to its config file.
  Coordinator& StartCoordinator(const std::string& yaml, const std::vector<std::string>& args = {}) {
    const std::string conf = dir_ + "/coordinator-" + std::to_string(coordinators_.size()) + ".yaml";
    std::ofstream(conf) << "launcher: slurm\npoll_interval_s: 0.5\nstop_grace_s: 5\nrestart_backoff_s: 1\n"
                        << "eval_binary: \"off\"\nworkdir: " << dir_ << "\n"
                        << yaml;
    std::vector<std::string> a = {"--config", conf, "--worker-binary", testutil::RealWorkerBinary()};
    a.insert(a.end(), args.begin(), args.end());
    coordinators_.push_back(std::make_unique<Coordinator>(dir_ + "/state", a));
    coordinators_.back()->Start(60);
    return *coordinators_.back();
  }

  // vicregctl submit configs/tiny_cpu.yaml --set ...: the job id.
  std::string Submit(Coordinator& c, const std::vector<std::string>& sets) {
    std::vector<std::string> a = {"submit", testutil::SourceDir() + "/configs/tiny_cpu.yaml"};
    for (const auto& s : sets) a.insert(a.end(), {"--set", s});
    auto r = c.Ctl(a, 60);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    return r.out.substr(0, r.out.find('\n'));
  }

  // The same through one gRPC call (no vicregctl process): for submitting many jobs quickly.
  std::string SubmitRpc(Coordinator& c, const std::vector<std::string>& sets) {
    v1::SubmitJobRequest req;
    req.set_job_yaml(testutil::ReadText(testutil::SourceDir() + "/configs/tiny_cpu.yaml"));
    for (const auto& s : sets) req.add_overrides(s);
    v1::SubmitJobResponse resp;
    auto ctx = Coordinator::Ctx("", 30);
    grpc::Status st = c.Stub()->SubmitJob(ctx.get(), req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp.job_id();
  }

  // Every job the controller knows (finished ones for MinJobAge): id, name, state, nodes or reason.
  std::vector<SlurmJob> SlurmJobs() {
    auto r = bed_->Login({"squeue", "-h", "-t", "all", "-o", "%i|%j|%T|%R"}, 30);
    std::vector<SlurmJob> out;
    std::istringstream in(r.output);
    for (std::string l; std::getline(in, l);) {
      std::vector<std::string> f;
      std::stringstream ss(l);
      for (std::string x; std::getline(ss, x, '|');) f.push_back(x);
      if (f.size() == 4) out.push_back({f[0], f[1], f[2], f[3]});
    }
    return out;
  }
  std::vector<SlurmJob> SlurmJobsNamed(const std::string& prefix) {
    std::vector<SlurmJob> v;
    for (const auto& j : SlurmJobs())
      if (j.name.rfind(prefix, 0) == 0 && std::atol(j.id.c_str()) > first_slurm_id_) v.push_back(j);
    return v;
  }
  std::string SlurmJobNodes(const std::string& slurm_id) {
    auto r = bed_->Login({"squeue", "-h", "-j", slurm_id, "-o", "%N"}, 30);
    std::string s = r.output;
    s.erase(std::remove(s.begin(), s.end(), '\n'), s.end());
    return s;
  }
  // A job that holds `nodes` whole nodes (or the named ones) until cancelled: the cluster is full.
  std::string Blocker(const std::vector<std::string>& where) {
    std::vector<std::string> a = {"sbatch", "--parsable", "--exclusive", "--job-name=blocker", "--output=/dev/null"};
    a.insert(a.end(), where.begin(), where.end());
    a.insert(a.end(), {"--wrap", "sleep 3600"});
    auto r = bed_->Login(a, 30);
    EXPECT_TRUE(r.ok()) << r.output;
    std::string id = r.output.substr(0, r.output.find_first_of(";\n"));
    EXPECT_TRUE(WaitForCommand(
        [&] {
          for (const auto& j : SlurmJobs())
            if (j.id == id && j.state == "RUNNING") return true;
          return false;
        },
        60))
        << "blocker " << id << " did not start";
    return id;
  }
  static std::string Handle(const v1::Job& j, int attempt) {
    return attempt <= j.attempts_size() ? j.attempts(attempt - 1).handle() : "";
  }
  static std::string SlurmIdOf(const std::string& handle) {
    std::smatch m;
    return std::regex_search(handle, m, std::regex("([0-9]+)$")) ? m[1].str() : "";
  }
  std::string Describe(const Coordinator& c, const std::string& id) {
    return c.Ctl({"status", id}, 30).out + "\ncoordinator log (tail):\n" + Tail(c.log(), 4000) + "\nlauncher log:\n" +
           Tail(testutil::ReadText(c.RunDir(id) + "/logs/launcher.log"), 3000);
  }
  static std::string Tail(const std::string& s, size_t n) { return s.size() > n ? s.substr(s.size() - n) : s; }

  TestBed* bed_ = nullptr;
  std::string dir_, old_path_;
  long first_slurm_id_ = 0;
  std::vector<std::unique_ptr<Coordinator>> coordinators_;
};

// Job shape for the tests: 2 nodes x 2 ranks, global batch 32 over 512 images = 16 steps/epoch.
std::vector<std::string> TwoNodeJob(int epochs) {
  return {"resources.ranks=4",
          "train.batch_size=8",
          "train.num_epochs=" + std::to_string(epochs),
          "checkpoint.every_steps=4",
          "checkpoint.keep_last=3",
          "resources.collective_timeout_s=10",
          "max_restarts=3"};
}

// Slurm requeues a batch job whose node fails (JobRequeue=1, the default) and runs it again later
// under the same job id, behind the coordinator's back; the coordinator owns retries (from the last
// checkpoint), so its jobs are submitted with --no-requeue (deploy/slurm/coordinator-slurm.yaml).
const char* kTwoNodeSlurm = "slurm: {sbatch_args: [--ntasks-per-node=2, --no-requeue]}\n";

TEST_F(CoordinatorOnBed, NodeDeathDuringATwoNodeJobIsResubmittedFromTheLastCheckpoint) {
  Coordinator& c = StartCoordinator(std::string("slots: 16\nno_progress_timeout_s: 120\n") + kTwoNodeSlurm);
  const std::string id = Submit(c, TwoNodeJob(3));  // 48 steps
  ASSERT_FALSE(id.empty());
  const std::string run = c.RunDir(id);
  // Running on two nodes, past a checkpoint.
  ASSERT_TRUE(WaitFor(
      [&] {
        v1::Job j = c.Get(id);
        return j.state() == v1::RUNNING && j.progress().step() >= 6 &&
               !testutil::ReadText(run + "/checkpoints/latest").empty();
      },
      240))
      << Describe(c, id);
  v1::Job j1 = c.Get(id);
  ASSERT_EQ(j1.attempts_size(), 1);
  const std::string slurm1 = SlurmIdOf(Handle(j1, 1));
  const std::string nodes1 = SlurmJobNodes(slurm1);  // e.g. node[1-2]
  ASSERT_FALSE(nodes1.empty()) << "slurm job " << slurm1 << " " << Handle(j1, 1);
  // The batch script (and vicreg_job_shim supervise) runs on the first node; the second one dies.
  auto e = bed_->Login({"scontrol", "show", "hostnames", nodes1}, 30);
  std::vector<std::string> hosts;
  std::istringstream hs(e.output);
  for (std::string h; std::getline(hs, h);)
    if (!h.empty()) hosts.push_back(h);
  ASSERT_EQ(hosts.size(), 2u) << e.output;
  const std::string victim = hosts[1];
  const auto killed = std::chrono::steady_clock::now();
  auto k = bed_->Script({"node-kill", victim}, 30);
  ASSERT_TRUE(k.ok()) << k.output;
  // As slurmctld would after SlurmdTimeout, without waiting for it: the node is down.
  auto down = bed_->Login({"scontrol", "update", "nodename=" + victim, "state=down", "reason=test-killed"}, 30);
  ASSERT_TRUE(down.ok()) << down.output;

  // Attempt 1 ends (ranks on the surviving node leave their collective within 10 s) ...
  ASSERT_TRUE(WaitFor([&] { return c.Get(id).attempts_size() >= 2 || c.Get(id).state() == v1::FAILED; }, 180))
      << Describe(c, id);
  const double ended_after = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
  v1::Job j2 = c.Get(id);
  const std::string cause = j2.attempts(0).cause();
  // The cause names the dead node (the launcher's error lines: "srun: error: Node failure on
  // <node>"), whichever of the ranks' exit or the job leaving the queue is seen first.
  EXPECT_NE(cause.find(victim), std::string::npos) << "the cause does not name the dead node:\n" << cause;
  EXPECT_LT(ended_after, 60) << "attempt 1 hung after " << victim << " died";
  EXPECT_EQ(j2.attempts(1).restart_reason(), "rank_exit") << j2.DebugString();
  EXPECT_GT(j2.attempts(1).start_step(), 0) << "attempt 2 must resume from a checkpoint\n" << j2.DebugString();
  // ... and attempt 2 runs on nodes that are up.
  ASSERT_TRUE(WaitFor([&] { return c.Get(id).state() == v1::SUCCEEDED || c.Get(id).state() == v1::FAILED; }, 300))
      << Describe(c, id);
  v1::Job done = c.Get(id);
  EXPECT_EQ(done.state(), v1::SUCCEEDED) << Describe(c, id);
  EXPECT_EQ(done.progress().step(), 48);
  EXPECT_EQ(done.progress().total_steps(), 48);
  auto ck = RunProcess({"/usr/bin/python3", "-c",
                        "import sys, torch; d = sys.argv[1]; n = open(d + '/latest').read().strip(); "
                        "print(n, torch.load(d + '/' + n, map_location='cpu')['global_step'])",
                        run + "/checkpoints"},
                       120);
  EXPECT_TRUE(ck.ok() && ck.output.find(" 48") != std::string::npos) << "final checkpoint: " << ck.output;
  const std::string result = testutil::ReadText(run + "/result.json");
  EXPECT_NE(result.find("\"step\": 48"), std::string::npos) << result;
  // Every rank of the last attempt ran on a node that was up.
  for (int r = 0; r < 4; ++r) {
    const std::string ep = testutil::ReadText(run + "/endpoints/rank-" + std::to_string(r) + ".json");
    EXPECT_EQ(ep.find("\"host\":\"" + victim + "\""), std::string::npos) << "rank " << r << " on dead " << victim;
  }
  std::printf("node death: %s killed; attempt 1 ended %.1f s later: %s\n  attempt 2 resumed at step %lld; %s\n",
              victim.c_str(), ended_after, cause.substr(0, 300).c_str(),
              static_cast<long long>(done.attempts(1).start_step()), v1::JobState_Name(done.state()).c_str());
}

// slurmctld is killed and restarted during a run, then the coordinator is killed (-9) with one job
// running and one queued in Slurm. Nothing fails, nothing is submitted twice: both jobs are
// re-adopted by their Slurm job ids (one Slurm job each) and SUCCEED.
TEST_F(CoordinatorOnBed, ControllerRestartAndCoordinatorKill9FailNothingAndSubmitNothingTwice) {
  // node3 is taken: job A (2 nodes, exclusive) runs on node1+node2, job B (1 node) waits in Slurm.
  const std::string blocker = Blocker({"--nodelist=node3"});
  const std::string yaml =
      "slots: 16\nno_progress_timeout_s: 600\n"
      "slurm: {squeue_interval_s: 1, sbatch_args: [--ntasks-per-node=2, --exclusive, --no-requeue]}\n";
  Coordinator& c1 = StartCoordinator(yaml);
  const std::string a = Submit(c1, TwoNodeJob(4));  // 64 steps: runs through both outages
  // B is submitted at once: slurmctld writes a new job to its state files within seconds, and a
  // controller SIGKILLed before that forgets it ("Purged files for defunct batch JobId"); A's
  // start-up gives it that time.
  const std::string b = Submit(c1, {"resources.ranks=2", "train.batch_size=16", "train.num_epochs=1"});
  ASSERT_TRUE(WaitFor([&] { return c1.Get(a).state() == v1::RUNNING && c1.Get(a).progress().step() >= 2; }, 240))
      << Describe(c1, a);
  ASSERT_TRUE(WaitForCommand(
      [&] {
        auto v = SlurmJobsNamed("vicreg-" + b + "-");
        return v.size() == 1 && v[0].state == "PENDING" && c1.Get(b).attempts_size() == 1 &&
               c1.Get(b).attempts(0).phase() == v1::ATTEMPT_QUEUED;
      },
      60))
      << Describe(c1, b);

  // slurmctld keeps a new job in memory and writes it to StateSaveLocation/job_state a moment later;
  // SIGKILLed before that, it forgets B (and the coordinator then rightly starts a second attempt:
  // seen once in CI when A started quickly). So the controller dies only once its saved state holds
  // B's job (job names are stored as plain strings in that file).
  {
    const std::string state = bed_->dir() + "/ctld/state/job_state";
    const std::string b_name = "vicreg-" + b + "-a1";
    auto saved = [&] { return testutil::ReadText(state).find(b_name) != std::string::npos; };
    ASSERT_TRUE(WaitFor(saved, 120)) << "slurmctld never saved " << b_name << " to " << state;
  }

  // The controller dies: squeue fails, every job stays as it was; then it is back.
  auto stop = bed_->Script({"ctld-stop"}, 30);
  ASSERT_TRUE(stop.ok()) << stop.output;
  const int64_t step_at_stop = c1.Get(a).progress().step();
  sleep(4);
  // (A may finish meanwhile: its status file says so, the controller is not needed for that.)
  EXPECT_THAT(c1.Get(a).state(), AnyOf(v1::RUNNING, v1::SUCCEEDED)) << Describe(c1, a);
  EXPECT_FALSE(IsTerminal(c1.Get(b).state())) << Describe(c1, b);
  auto start = bed_->Script({"ctld-start"}, 60);
  ASSERT_TRUE(start.ok()) << start.output;

  // The coordinator is killed; its successor re-adopts both jobs by their Slurm job ids.
  c1.Kill(SIGKILL);
  coordinators_.clear();
  Coordinator& c2 = StartCoordinator(yaml);
  EXPECT_THAT(c2.Get(a).state(), AnyOf(v1::RUNNING, v1::SUCCEEDED)) << Describe(c2, a);
  EXPECT_FALSE(IsTerminal(c2.Get(b).state())) << Describe(c2, b);
  bed_->Login({"scancel", blocker}, 30);  // node3 frees up: B runs
  v1::Job da = c2.WaitTerminal(a, 300);
  EXPECT_EQ(da.state(), v1::SUCCEEDED) << Describe(c2, a);
  v1::Job db = c2.WaitTerminal(b, 300);
  EXPECT_EQ(db.state(), v1::SUCCEEDED) << Describe(c2, b);
  EXPECT_EQ(da.attempts_size(), 1) << da.DebugString();
  EXPECT_EQ(db.attempts_size(), 1) << db.DebugString();
  EXPECT_EQ(da.restarts() + db.restarts(), 0);
  auto ja = SlurmJobsNamed("vicreg-" + a + "-");
  auto jb = SlurmJobsNamed("vicreg-" + b + "-");
  EXPECT_EQ(ja.size(), 1u) << "Slurm jobs of " << a;
  EXPECT_EQ(jb.size(), 1u) << "Slurm jobs of " << b;
  std::printf("controller stopped at step %lld of %s\n", static_cast<long long>(step_at_stop), a.c_str());
  for (const auto& j : SlurmJobs()) {
    if (std::atol(j.id.c_str()) > first_slurm_id_)
      std::printf("slurm job %s %s %s\n", j.id.c_str(), j.name.c_str(), j.state.c_str());
  }
}

TEST_F(CoordinatorOnBed, QueuedJobOutlivesNoProgressTimeoutAndStartsWhenTheClusterFrees) {
  const std::string blocker = Blocker({"-N", "3"});
  Coordinator& c = StartCoordinator(
      "slots: 16\nno_progress_timeout_s: 8\n"
      "slurm: {squeue_interval_s: 1, sbatch_args: [--ntasks-per-node=2, --no-requeue]}\n");
  const std::string id = Submit(c, {"resources.ranks=2", "train.batch_size=16", "train.num_epochs=1"});
  // Waits in the cluster queue for longer than its no-progress timeout (a coordinator that counted
  // the wait would have stopped and resubmitted it by now), shown as such.
  sleep(12);
  v1::Job q = c.Get(id);
  EXPECT_EQ(q.attempts_size(), 1) << q.DebugString();
  EXPECT_EQ(q.restarts(), 0);
  auto st = c.Ctl({"status", id}, 30);
  EXPECT_NE(st.out.find("PENDING (Resources)"), std::string::npos) << st.out;
  auto v = SlurmJobsNamed("vicreg-" + id + "-");
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].state, "PENDING");
  EXPECT_EQ(v[0].reason_or_nodes, "(Resources)");
  // A job with a queue limit gives up with that cause.
  const std::string limited = Submit(c, {"resources.ranks=2", "max_queue_wait_s=3"});
  v1::Job lj = c.WaitTerminal(limited, 60);
  EXPECT_EQ(lj.state(), v1::FAILED) << lj.DebugString();
  EXPECT_NE(lj.last_error().find("max_queue_wait_s"), std::string::npos) << lj.last_error();
  EXPECT_TRUE(SlurmJobsNamed("vicreg-" + limited + "-").empty() ||
              SlurmJobsNamed("vicreg-" + limited + "-")[0].state != "PENDING");
  // The cluster frees up: the queued job starts and succeeds in its first attempt.
  bed_->Login({"scancel", blocker}, 30);
  v1::Job done = c.WaitTerminal(id, 300);
  EXPECT_EQ(done.state(), v1::SUCCEEDED) << Describe(c, id);
  EXPECT_EQ(done.attempts_size(), 1);
}

TEST_F(CoordinatorOnBed, TwoHundredQueuedJobsCostOneSqueuePerPoll) {
  // squeue/sbatch wrappers that count their calls, ahead of the bed's wrappers on PATH.
  const std::string count = dir_ + "/countbin";
  RunProcess({"mkdir", "-p", count}, 10);
  for (const char* cmd : {"squeue", "sbatch"}) {
    const std::string p = count + "/" + cmd;
    std::ofstream(p) << "#!/bin/sh\necho \"$*\" >> '" << dir_ << "/" << cmd << ".calls'\nexec '" << bed_->bin() << "/"
                     << cmd << "' \"$@\"\n";
    chmod(p.c_str(), 0755);
  }
  setenv("PATH", (count + ":" + bed_->bin() + ":" + old_path_).c_str(), 1);
  const std::string blocker = Blocker({"-N", "3"});
  // One squeue per refresh, at most one refresh per second: squeue_interval_s 1.
  Coordinator& c =
      StartCoordinator("no_progress_timeout_s: 600\nslurm: {max_submitted_jobs: 256, squeue_interval_s: 1}\n");
  const auto t_submit = std::chrono::steady_clock::now();
  for (int i = 0; i < 200; ++i) SubmitRpc(c, {"resources.ranks=1", "train.num_epochs=1"});
  const double submit_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_submit).count();
  ASSERT_TRUE(WaitForCommand([&] { return SlurmJobsNamed("vicreg-job-").size() == 200; }, 300))
      << SlurmJobsNamed("vicreg-job-").size() << " of 200 submitted";
  const double sbatch_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_submit).count();
  std::printf("200 jobs: submitted to the coordinator in %.1f s, all in Slurm's queue after %.1f s\n", submit_s,
              sbatch_s);
  auto calls = [&] {
    const std::string s = testutil::ReadText(dir_ + "/squeue.calls");
    return static_cast<int>(std::count(s.begin(), s.end(), '\n'));
  };
  const int before = calls();
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<double> list_ms;
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < 5) {
    const auto s = std::chrono::steady_clock::now();
    auto r = c.Ctl({"list", "--limit", "1000"}, 30);
    list_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - s).count());
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }
  const double window = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const int polls = calls() - before;
  std::sort(list_ms.begin(), list_ms.end());
  const double p99 = list_ms[std::min(list_ms.size() - 1, static_cast<size_t>(list_ms.size() * 0.99))];
  std::printf(
      "200 queued jobs: %d squeue calls in %.1f s (squeue_interval_s 1, poll interval 0.5 s); vicregctl list x%zu: "
      "p50 %.0f ms, p99 %.0f ms\n",
      polls, window, list_ms.size(), list_ms[list_ms.size() / 2], p99);
  EXPECT_LE(polls, static_cast<int>(window / 1.0) + 2) << "more than one squeue call per refresh";
  EXPECT_GE(polls, 1);
  bed_->Login({"scancel", blocker}, 30);
}

TEST_F(CoordinatorOnBed, ScheduledEvaluationOfAMultiNodeJobRunsOnAClusterNode) {
  Coordinator& c =
      StartCoordinator(std::string("slots: 16\nno_progress_timeout_s: 300\neval_slots: 1\n") + kTwoNodeSlurm,
                       {"--eval-binary", testutil::BinaryDir() + "/worker/eval/vicreg_eval"});
  auto sets = TwoNodeJob(1);
  sets.insert(sets.end(), {"eval.epochs=[1]", "eval.probes=[knn]", "eval.limit_train=512", "eval.limit_test=256",
                           "eval.max_attempts=1"});
  const std::string id = Submit(c, sets);
  v1::Job done = c.WaitTerminal(id, 400);
  EXPECT_EQ(done.state(), v1::SUCCEEDED) << Describe(c, id);
  ASSERT_TRUE(WaitForCommand(
      [&] {
        return c.Ctl({"eval", id}, 30).out.find("knn") != std::string::npos;
      },
      300))
      << c.Ctl({"eval", id}, 30).out << Describe(c, id);
  std::string logs;
  auto ls = RunProcess({"sh", "-c", "cat '" + c.RunDir(id) + "'/eval/*.log"}, 30);
  EXPECT_TRUE(std::regex_search(ls.output, std::regex("node[1-3]"))) << "eval log does not name a node:\n" << ls.output;
  // It ran as a Slurm job of its own.
  bool eval_job = false;
  for (const auto& j : SlurmJobs()) {
    // "<prefix>-<job id>-eval-e<epoch>-<dataset>-a<k>"
    eval_job =
        eval_job || (std::atol(j.id.c_str()) > first_slurm_id_ && j.name.rfind("vicreg-" + id + "-eval-e1-", 0) == 0);
  }
  EXPECT_TRUE(eval_job) << "no Slurm job for the evaluation of " << id;
}

}  // namespace
}  // namespace vicreg::testing
