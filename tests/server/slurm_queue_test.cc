// The coordinator's Slurm launcher against stand-ins for sbatch/squeue/scancel/sacct/srun
// (tests/server/fake_slurm.py: they record every call and answer from a state file the test
// steers), with the fake worker and fake eval as the programs: queue semantics (a PENDING job is
// shown with Slurm's reason and for how long, is never stopped for lack of progress, and
// max_queue_wait_s ends it), one squeue per poll for 200 jobs, a controller that stops answering,
// no double launch (lost sbatch reply, coordinator restart with an unrecorded handle, strays),
// cancel through scancel, multi-node requests, and evaluations submitted as Slurm jobs and
// re-adopted across a restart. The real Slurm runs in slurm_test.cc and on the test bed
// (tests/cluster/).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "server/process.h"
#include "tests/server/test_util.h"

namespace vicreg {
namespace {

using testutil::Coordinator;

class FakeSlurm {
 public:
  explicit FakeSlurm(const std::string& dir) : dir_(dir) {
    server::RunCommand({"/bin/mkdir", "-p", dir_ + "/bin", dir_ + "/state"}, 10);
    const std::string script = testutil::SourceDir() + "/tests/server/fake_slurm.py";
    for (const char* cmd : {"sbatch", "squeue", "scancel", "sacct", "srun", "fake_slurm"}) {
      if (symlink(script.c_str(), (dir_ + "/bin/" + cmd).c_str()) != 0) throw std::runtime_error("symlink");
    }
  }
  ~FakeSlurm() {
    // Batch scripts still running (a test that stopped early): their sessions go.
    nlohmann::json jobs = Jobs();
    for (auto& [id, j] : jobs.items()) {
      int pid = j.value("pid", 0);
      if (pid > 1 && j.value("state", "") == "RUNNING") ::killpg(pid, SIGKILL);
    }
  }
  std::string bin(const std::string& cmd) const { return dir_ + "/bin/" + cmd; }
  void Set(const std::string& flag, bool on, const std::string& text = "") {
    const std::string p = dir_ + "/state/" + flag;
    if (on)
      testutil::WriteText(p, text);
    else
      unlink(p.c_str());
  }
  // The recorded calls of one command (each {"cmd","argv","time"}).
  std::vector<nlohmann::json> Calls(const std::string& cmd) const {
    std::vector<nlohmann::json> out;
    std::istringstream lines(testutil::ReadText(dir_ + "/state/calls.jsonl"));
    std::string line;
    while (std::getline(lines, line)) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_object() && j.value("cmd", "") == cmd) out.push_back(j);
    }
    return out;
  }
  int Count(const std::string& cmd) const { return static_cast<int>(Calls(cmd).size()); }
  nlohmann::json Jobs() const {
    auto j = nlohmann::json::parse(testutil::ReadText(dir_ + "/state/jobs.json"), nullptr, false);
    return j.is_object() && j.contains("jobs") ? j["jobs"] : nlohmann::json::object();
  }
  // The Slurm job id of the job with this name ("" if none).
  std::string IdOf(const std::string& name) const {
    const nlohmann::json jobs = Jobs();
    for (const auto& [id, j] : jobs.items())
      if (j.value("name", "") == name) return id;
    return "";
  }
  std::string State(const std::string& id) const {
    auto jobs = Jobs();
    return jobs.contains(id) ? jobs[id].value("state", "") : "";
  }
  bool Start(const std::string& id_or_name) {
    return server::RunCommand({bin("fake_slurm"), "start", id_or_name}, 30).exit_code == 0;
  }
  std::string Add(const std::string& name) {
    auto r = server::RunCommand({bin("fake_slurm"), "add", name}, 30);
    return r.out.substr(0, r.out.find('\n'));
  }
  std::string ConfigFile() const {
    const std::string p = dir_ + "/coordinator.yaml";
    testutil::WriteText(p, "slurm:\n  sbatch: " + bin("sbatch") + "\n  squeue: " + bin("squeue") +
                               "\n  scancel: " + bin("scancel") + "\n  sacct: " + bin("sacct") +
                               "\n  srun: " + bin("srun") + "\n  squeue_interval_s: 0\n  command_timeout_s: 20\n");
    return p;
  }

 private:
  std::string dir_;
};

bool HasArg(const nlohmann::json& call, const std::string& arg) {
  for (const auto& a : call["argv"])
    if (a.get<std::string>() == arg) return true;
  return false;
}

class SlurmQueueTest : public ::testing::Test {
 protected:
  std::unique_ptr<Coordinator> StartCoordinator(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--launcher",        "slurm",
                                     "--config",          slurm_.ConfigFile(),
                                     "--worker-binary",   testutil::FakeWorker(),
                                     "--eval-binary",     "off",
                                     "--poll-interval",   "0.1",
                                     "--stop-grace",      "2",
                                     "--restart-backoff", "0.2"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto c = std::make_unique<Coordinator>(dir_.path() + "/state", args);
    c->Start();
    return c;
  }
  std::string Submit(Coordinator& c, const std::string& yaml) {
    const std::string p = dir_.path() + "/job-" + std::to_string(++files_) + ".yaml";
    testutil::WriteText(p, yaml);
    auto r = c.Ctl({"submit", p});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    return r.out.substr(0, r.out.find('\n'));
  }
  bool WaitQueued(Coordinator& c, const std::string& id, double timeout_s = 20) {
    return testutil::WaitFor([&] { return c.Get(id).attempt_phase() == v1::ATTEMPT_QUEUED; }, timeout_s);
  }
  std::string Events(Coordinator& c, const std::string& id) { return c.Ctl({"watch", id}, 5).out; }
  // Two jobs both queued in Slurm, then the second started there and RUNNING in the coordinator.
  void QueueBothAndStartTheSecond(Coordinator& c, const std::string& queued, const std::string& running) {
    ASSERT_TRUE(WaitQueued(c, queued));
    ASSERT_TRUE(WaitQueued(c, running));
    ASSERT_TRUE(slurm_.Start(slurm_.IdOf("vicreg-" + running + "-a1")));
    ASSERT_TRUE(testutil::WaitFor([&] { return c.Get(running).state() == v1::RUNNING; }, 30));
  }

  testutil::TempDir dir_{"slurmq"};
  FakeSlurm slurm_{dir_.path() + "/slurm"};
  int files_ = 0;
};

TEST_F(SlurmQueueTest, PendingJobIsShownWithItsReasonIsNeverStoppedForNoProgressThenRuns) {
  auto c = StartCoordinator({"--no-progress-timeout", "1"});
  std::string id = Submit(*c, "name: waits\nresources: {ranks: 2}\ntrain: {max_steps: 10}\n");
  ASSERT_TRUE(WaitQueued(*c, id)) << c->log();
  v1::Job j = c->Get(id);
  EXPECT_EQ(j.state(), v1::STARTING);
  EXPECT_EQ(j.queue_state(), "PENDING");
  EXPECT_EQ(j.queue_reason(), "Resources");
  EXPECT_GT(testutil::Seconds(j.queued_since_time()), 0);
  // Longer than the no-progress timeout in the queue.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  j = c->Get(id);
  EXPECT_EQ(j.attempt_phase(), v1::ATTEMPT_QUEUED);
  ASSERT_EQ(j.attempts_size(), 1);
  EXPECT_EQ(j.attempts(0).phase(), v1::ATTEMPT_QUEUED);
  EXPECT_EQ(j.attempts(0).queue_reason(), "Resources");
  EXPECT_EQ(slurm_.Count("sbatch"), 1);
  EXPECT_EQ(slurm_.Count("scancel"), 0) << "a queue wait is no stall";
  auto status = c->Ctl({"status", id});
  EXPECT_NE(status.out.find("waiting in the cluster queue: PENDING (Resources) for"), std::string::npos) << status.out;
  auto list = c->Ctl({"list"});
  EXPECT_NE(list.out.find("CLUSTER QUEUE"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("PENDING (Resources) for"), std::string::npos) << list.out;
  std::string m;
  EXPECT_TRUE(testutil::WaitFor(
      [&] {
        m = testutil::HttpGet(c->metrics(), "/metrics");
        return m.find("vicreg_job_cluster_queue_wait_seconds{job_id=\"" + id +
                      "\",reason=\"Resources\",state=\"PENDING\"}") != std::string::npos &&
               m.find("vicreg_cluster_queued_jobs{reason=\"Resources\"} 1") != std::string::npos;
      },
      10))
      << m;
  // The cluster starts it: it runs to the end.
  ASSERT_TRUE(slurm_.Start(slurm_.IdOf("vicreg-" + id + "-a1")));
  j = c->WaitTerminal(id, 60);
  EXPECT_EQ(j.state(), v1::SUCCEEDED) << j.last_error() << c->log();
  ASSERT_EQ(j.attempts_size(), 1);
  EXPECT_GT(testutil::Seconds(j.attempts(0).running_time()), testutil::Seconds(j.attempts(0).queued_time()));
  EXPECT_EQ(j.attempts(0).handle(), "slurm:" + slurm_.IdOf("vicreg-" + id + "-a1"));
  std::string events = Events(*c, id);
  EXPECT_NE(events.find("waits in the cluster queue: PENDING (Resources)"), std::string::npos) << events;
  EXPECT_NE(events.find("left the cluster queue after"), std::string::npos) << events;
  for (const auto& q : slurm_.Calls("squeue")) EXPECT_TRUE(HasArg(q, "--me")) << q.dump();
}

TEST_F(SlurmQueueTest, MaxQueueWaitEndsTheJobWithThatCauseAndCancelsItInSlurm) {
  auto c = StartCoordinator();
  std::string id = Submit(*c, "name: impatient\nmax_queue_wait_s: 1\nresources: {ranks: 1}\n");
  v1::Job j = c->WaitTerminal(id, 30);
  EXPECT_EQ(j.state(), v1::FAILED);
  EXPECT_NE(j.last_error().find("in the cluster queue (PENDING (Resources)); max_queue_wait_s 1"), std::string::npos)
      << j.last_error();
  EXPECT_EQ(j.attempts_size(), 1) << "not restarted";
  const std::string sid = slurm_.IdOf("vicreg-" + id + "-a1");
  EXPECT_EQ(slurm_.State(sid), "CANCELLED");
  bool cancelled = false;
  for (const auto& call : slurm_.Calls("scancel")) cancelled = cancelled || HasArg(call, sid);
  EXPECT_TRUE(cancelled);
}

TEST_F(SlurmQueueTest, OnePollIsOneSqueueCallFor200QueuedJobs) {
  auto c = StartCoordinator({"--poll-interval", "0.2"});
  auto stub = c->Stub();
  for (int i = 0; i < 200; ++i) {
    v1::SubmitJobRequest req;
    req.set_job_yaml("name: many-" + std::to_string(i) + "\nresources: {ranks: 4}\n");
    v1::SubmitJobResponse resp;
    auto ctx = Coordinator::Ctx();
    ASSERT_TRUE(stub->SubmitJob(ctx.get(), req, &resp).ok());
  }
  ASSERT_TRUE(testutil::WaitFor([&] { return slurm_.Count("sbatch") == 200; }, 120)) << slurm_.Count("sbatch");
  ASSERT_TRUE(testutil::WaitFor([&] { return c->Get("job-000200").attempt_phase() == v1::ATTEMPT_QUEUED; }, 30));
  const int before = slurm_.Count("squeue");
  const auto t0 = std::chrono::steady_clock::now();
  // vicregctl list stays responsive meanwhile (p99 reported, not asserted: machines differ).
  std::vector<double> ms;
  for (int i = 0; i < 20; ++i) {
    auto s = std::chrono::steady_clock::now();
    auto r = c->Ctl({"list", "--limit", "200"});
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - s).count());
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const int calls = slurm_.Count("squeue") - before;
  std::sort(ms.begin(), ms.end());
  std::printf(
      "200 queued jobs: %d squeue call(s) in %.1f s at a 0.2 s poll interval; vicregctl list p50 %.0f ms, "
      "p99 %.0f ms\n",
      calls, seconds, ms[ms.size() / 2], ms.back());
  EXPECT_GE(calls, 2);
  EXPECT_LE(calls, static_cast<int>(seconds / 0.2) + 2) << "one squeue per poll at most, whatever the number of jobs";
  for (const auto& q : slurm_.Calls("squeue")) {
    EXPECT_TRUE(HasArg(q, "--me")) << q.dump();
    EXPECT_FALSE(HasArg(q, "-j")) << "no per-job squeue: " << q.dump();
  }
  EXPECT_EQ(slurm_.Count("scancel"), 0);
  auto list = c->Ctl({"list", "--state", "starting", "--limit", "1"});
  EXPECT_NE(list.out.find("PENDING (Resources)"), std::string::npos) << list.out;
}

TEST_F(SlurmQueueTest, AControllerThatStopsAnsweringFailsNoJob) {
  auto c = StartCoordinator({"--no-progress-timeout", "30"});
  std::string id = Submit(*c, "name: slow-outage\nresources: {ranks: 2}\ntrain: {max_steps: 12}\n");
  ASSERT_TRUE(WaitQueued(*c, id));
  ASSERT_TRUE(slurm_.Start(slurm_.IdOf("vicreg-" + id + "-a1")));
  ASSERT_TRUE(testutil::WaitFor([&] { return c->Get(id).state() == v1::RUNNING; }, 30)) << c->log();
  slurm_.Set("squeue_fail", true);
  const int before = slurm_.Count("squeue");
  std::this_thread::sleep_for(std::chrono::milliseconds(3000));
  const int during = slurm_.Count("squeue") - before;
  EXPECT_EQ(c->Get(id).state(), v1::RUNNING);
  EXPECT_LE(during, 5) << "backoff while the controller does not answer (30 polls in 3 s)";
  // The job may well end while the controller is down: it is accounted for once it answers.
  slurm_.Set("squeue_fail", false);
  v1::Job j = c->WaitTerminal(id, 120);
  EXPECT_EQ(j.state(), v1::SUCCEEDED) << j.last_error();
  EXPECT_EQ(j.attempts_size(), 1);
  EXPECT_EQ(slurm_.Count("sbatch"), 1);
  EXPECT_NE(c->log().find("squeue answers again"), std::string::npos);
}

TEST_F(SlurmQueueTest, ALostSbatchReplyIsFoundByNameAndNotSubmittedTwice) {
  slurm_.Set("sbatch_lose_reply", true);
  auto c = StartCoordinator();
  std::string id = Submit(*c, "name: lost-reply\nresources: {ranks: 2}\ntrain: {max_steps: 5}\n");
  ASSERT_TRUE(WaitQueued(*c, id)) << c->log();
  const std::string sid = slurm_.IdOf("vicreg-" + id + "-a1");
  EXPECT_EQ(c->Get(id).attempts(0).handle(), "slurm:" + sid);
  EXPECT_EQ(slurm_.Count("sbatch"), 1);
  bool by_name = false;
  for (const auto& q : slurm_.Calls("squeue")) by_name = by_name || HasArg(q, "--name=vicreg-" + id + "-a1");
  EXPECT_TRUE(by_name);
  ASSERT_TRUE(slurm_.Start(sid));
  EXPECT_EQ(c->WaitTerminal(id, 60).state(), v1::SUCCEEDED);
  EXPECT_EQ(slurm_.Count("sbatch"), 1);
}

// While the controller does not answer: a job that ends is accounted for from its status file, a
// coordinator restarted meanwhile re-adopts a queued job, and no scancel is sent (it would wait for
// the controller; a job that left the queue by itself needs none).
TEST_F(SlurmQueueTest, JobsEndAndAreReadoptedWhileTheControllerIsDownWithoutScancel) {
  auto c = StartCoordinator({"--no-progress-timeout", "30"});
  std::string ends = Submit(*c, "name: ends\nresources: {ranks: 1}\ntrain: {max_steps: 3}\n");
  std::string queued = Submit(*c, "name: q\nresources: {ranks: 1}\ntrain: {max_steps: 3}\n");
  ASSERT_TRUE(WaitQueued(*c, ends));
  ASSERT_TRUE(WaitQueued(*c, queued));
  slurm_.Set("squeue_fail", true);
  ASSERT_TRUE(slurm_.Start(slurm_.IdOf("vicreg-" + ends + "-a1")));
  v1::Job j = c->WaitTerminal(ends, 60);
  EXPECT_EQ(j.state(), v1::SUCCEEDED) << j.last_error();
  c->Kill(SIGKILL);
  c->Start();
  EXPECT_EQ(c->Get(queued).attempt_phase(), v1::ATTEMPT_QUEUED);
  EXPECT_EQ(c->Get(queued).state(), v1::STARTING);
  slurm_.Set("squeue_fail", false);
  ASSERT_TRUE(slurm_.Start(slurm_.IdOf("vicreg-" + queued + "-a1")));
  j = c->WaitTerminal(queued, 60);
  EXPECT_EQ(j.state(), v1::SUCCEEDED) << j.last_error();
  EXPECT_EQ(j.attempts_size(), 1);
  EXPECT_EQ(slurm_.Count("sbatch"), 2);
  EXPECT_EQ(slurm_.Count("scancel"), 0) << "both jobs left the queue by themselves";
}

TEST_F(SlurmQueueTest, CoordinatorKilledWithJobsQueuedAndRunningReadoptsBothByJobIdOrName) {
  auto c = StartCoordinator();
  std::string queued = Submit(*c, "name: q\nresources: {ranks: 1}\ntrain: {max_steps: 5}\n");
  std::string running = Submit(*c, "name: slow-r\nresources: {ranks: 2}\ntrain: {max_steps: 15}\n");
  QueueBothAndStartTheSecond(*c, queued, running);
  if (HasFatalFailure()) return;
  c->Kill(SIGKILL);
  // As if it had died between sbatch and storing the job id: the queued attempt has no handle.
  ASSERT_EQ(testutil::Sqlite(c->state_dir() + "/coordinator.db",
                             "UPDATE attempts SET handle = '' WHERE job_id = '" + queued + "'"),
            0);
  c->Start();
  EXPECT_EQ(c->Get(queued).attempt_phase(), v1::ATTEMPT_QUEUED);
  ASSERT_TRUE(testutil::WaitFor(
      [&] { return c->Get(queued).attempts(0).handle() == "slurm:" + slurm_.IdOf("vicreg-" + queued + "-a1"); }, 10));
  ASSERT_TRUE(slurm_.Start(slurm_.IdOf("vicreg-" + queued + "-a1")));
  for (const auto& id : {queued, running}) {
    v1::Job j = c->WaitTerminal(id, 120);
    EXPECT_EQ(j.state(), v1::SUCCEEDED) << id << ": " << j.last_error();
    EXPECT_EQ(j.attempts_size(), 1) << id;
  }
  EXPECT_EQ(slurm_.Count("sbatch"), 2) << "one Slurm job each";
  std::string events = Events(*c, queued);
  EXPECT_NE(events.find("re-adopted attempt 1"), std::string::npos) << events;
  EXPECT_NE(events.find("found by its name"), std::string::npos) << events;
}

TEST_F(SlurmQueueTest, CancelOfAQueuedAndARunningJobGoesThroughScancel) {
  auto c = StartCoordinator();
  std::string queued = Submit(*c, "name: cq\nresources: {ranks: 1}\n");
  std::string running = Submit(*c, "name: slow-cr\nresources: {ranks: 2}\ntrain: {max_steps: 200}\n");
  QueueBothAndStartTheSecond(*c, queued, running);
  if (HasFatalFailure()) return;
  for (const auto& id : {queued, running}) {
    auto r = c->Ctl({"cancel", id});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(c->Get(id).state(), v1::CANCELLED);
    const std::string sid = slurm_.IdOf("vicreg-" + id + "-a1");
    EXPECT_TRUE(testutil::WaitFor([&] { return slurm_.State(sid) == "CANCELLED"; }, 30))
        << id << " " << slurm_.State(sid);
  }
}

TEST_F(SlurmQueueTest, AStrayOfAnOlderAttemptIsCancelled) {
  slurm_.Set("autostart", true);
  auto c = StartCoordinator();
  std::string id = Submit(*c, "name: failonce\nresources: {ranks: 2}\ntrain: {max_steps: 40}\nmax_restarts: 2\n");
  ASSERT_TRUE(testutil::WaitFor([&] { return slurm_.Count("sbatch") == 2; }, 60)) << c->log();
  // The first attempt's sbatch "was accepted after all": a second job named like attempt 1.
  const std::string stray = slurm_.Add("vicreg-" + id + "-a1");
  EXPECT_TRUE(testutil::WaitFor([&] { return slurm_.State(stray) == "CANCELLED"; }, 20)) << c->log();
  EXPECT_EQ(c->WaitTerminal(id, 120).state(), v1::SUCCEEDED);
  EXPECT_NE(c->log().find("is an older attempt of"), std::string::npos);
}

TEST_F(SlurmQueueTest, MultiNodeRequestAndEvaluationsAreSlurmJobsReadoptedAcrossARestart) {
  auto c = StartCoordinator({"--eval-binary", testutil::SourceDir() + "/tests/server/fake_eval.py"});
  std::string id =
      Submit(*c,
             "name: nodes\nresources: {ranks: 4, nodes: 2, ranks_per_node: 2}\ntrain: {max_steps: 10}\n"
             "eval: {every_epochs: 1, datasets: [{name: cifar10, data_dir: /data/c10}], resources: {cpus: 3}}\n");
  ASSERT_TRUE(WaitQueued(*c, id));
  auto sb = slurm_.Calls("sbatch");
  ASSERT_EQ(sb.size(), 1u);
  for (const char* a : {"--ntasks=4", "--nodes=2", "--ntasks-per-node=2"})
    EXPECT_TRUE(HasArg(sb[0], a)) << sb[0].dump();
  ASSERT_TRUE(slurm_.Start(slurm_.IdOf("vicreg-" + id + "-a1")));
  // Epoch 1's checkpoint lands: its evaluation is a one-task Slurm job with the job's eval.resources.
  const std::string eval_name = "vicreg-" + id + "-eval-e1-cifar10-a1";
  ASSERT_TRUE(testutil::WaitFor([&] { return !slurm_.IdOf(eval_name).empty(); }, 60)) << c->log();
  sb = slurm_.Calls("sbatch");
  auto eval_call =
      std::find_if(sb.begin(), sb.end(), [&](const auto& s) { return HasArg(s, "--job-name=" + eval_name); });
  ASSERT_NE(eval_call, sb.end());
  EXPECT_TRUE(HasArg(*eval_call, "--ntasks=1"));
  EXPECT_TRUE(HasArg(*eval_call, "--cpus-per-task=3"));
  // The coordinator restarts while the evaluation waits in the queue: re-adopted, not submitted again.
  c->Kill(SIGKILL);
  c->Start();
  ASSERT_TRUE(slurm_.Start(slurm_.IdOf(eval_name)));
  ASSERT_TRUE(testutil::WaitFor(
      [&] {
        auto r = c->Ctl({"-o", "json", "eval", id});
        return r.out.find("\"SUCCEEDED\"") != std::string::npos;
      },
      60))
      << c->Ctl({"eval", id}).out << c->log();
  int eval_sbatches = 0;
  for (const auto& s : slurm_.Calls("sbatch")) eval_sbatches += HasArg(s, "--job-name=" + eval_name);
  EXPECT_EQ(eval_sbatches, 1);
  const std::string result = c->RunDir(id) + "/eval/epoch_1_cifar10.json";
  EXPECT_NE(testutil::ReadText(result).find("\"rows\""), std::string::npos) << result;
  const std::string log = testutil::ReadText(c->RunDir(id) + "/eval/epoch_1_cifar10.log");
  EXPECT_NE(log.find("threads 3"), std::string::npos) << log;
  EXPECT_NE(log.find("=== vicreg: " + eval_name + " (Slurm job " + slurm_.IdOf(eval_name) + ") on "), std::string::npos)
      << log;
  EXPECT_EQ(c->WaitTerminal(id, 120).state(), v1::SUCCEEDED);
}

}  // namespace
}  // namespace vicreg
