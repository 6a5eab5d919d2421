// Small pieces of the coordinator: tokens, ids, page tokens, shell quoting (checked by a real
// shell), eval output parsing, coordinator options, process/session control.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <set>
#include <thread>

#include "common/errors.h"
#include "common/fs.h"
#include "common/sha256.h"
#include "server/coordinator_options.h"
#include "server/eval_runner.h"
#include "server/failure.h"
#include "server/job_manager.h"
#include "server/launcher.h"
#include "server/process.h"
#include "server/service.h"
#include "server/service_error.h"
#include "tests/server/test_util.h"

namespace vicreg::server {
namespace {

TEST(ServerUtilTest, TokenComparison) {
  EXPECT_TRUE(TokenEquals("s3cret-token", "s3cret-token"));
  EXPECT_FALSE(TokenEquals("s3cret-tokem", "s3cret-token"));
  EXPECT_FALSE(TokenEquals("s3cret", "s3cret-token"));
  EXPECT_FALSE(TokenEquals("s3cret-token-and-more", "s3cret-token"));
  EXPECT_FALSE(TokenEquals("", "s3cret-token"));
  EXPECT_FALSE(TokenEquals("", ""));  // an empty configured token never authenticates
}

TEST(ServerUtilTest, IdsAndRequestIds) {
  EXPECT_TRUE(ValidJobId("job-000042"));
  EXPECT_TRUE(ValidJobId("job-1234567"));
  EXPECT_FALSE(ValidJobId("job-"));
  EXPECT_FALSE(ValidJobId("../job-000001"));
  EXPECT_FALSE(ValidJobId("job-00/../../etc"));
  EXPECT_FALSE(ValidJobId("JOB-000001"));
  EXPECT_TRUE(ValidClientRequestId("vicregctl-0123abcd:retry.1_x"));
  EXPECT_FALSE(ValidClientRequestId(""));
  EXPECT_FALSE(ValidClientRequestId("has space"));
  EXPECT_FALSE(ValidClientRequestId(std::string(129, 'a')));
  EXPECT_EQ(SpecHash("a", {"x=1"}), SpecHash("a", {"x=1"}));
  EXPECT_NE(SpecHash("a", {"x=1"}), SpecHash("a", {"x=2"}));
  EXPECT_NE(SpecHash("ab", {}), SpecHash("a", {"b"}));
  EXPECT_EQ(SpecHash("", {}).size(), 16u);
}

TEST(ServerUtilTest, PageTokensEncodeFilterAndPosition) {
  std::string t = CoordinatorService::EncodePageToken(JobState::kRunning, 1234);
  EXPECT_EQ(CoordinatorService::DecodePageToken(t, JobState::kRunning), 1234);
  auto code_of = [](const std::string& token, JobState filter) {
    try {
      CoordinatorService::DecodePageToken(token, filter);
    } catch (const ServiceError& e) {
      return e.code();
    }
    return ErrorCode::kInternal;
  };
  EXPECT_EQ(code_of(t, JobState::kQueued), ErrorCode::kInvalidArgument);  // filter changed
  EXPECT_EQ(code_of("garbage!", JobState::kRunning), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of("djE6Mzo", JobState::kRunning), ErrorCode::kInvalidArgument);     // "v1:3:" (no position)
  EXPECT_EQ(code_of("djE6MzotNQ", JobState::kRunning), ErrorCode::kInvalidArgument);  // "v1:3:-5"
  EXPECT_EQ(CoordinatorService::DecodePageToken("djE6Mzox", JobState::kRunning), 1);  // "v1:3:1"
  EXPECT_EQ(code_of(std::string(100, 'A'), JobState::kRunning), ErrorCode::kInvalidArgument);
}

TEST(ServerUtilTest, ShellQuotingSurvivesARealShell) {
  std::vector<std::string> args = {"plain", "with space", "it's", "$(echo pwned)", "`id`", "a\"b", "new\nline", ""};
  std::string script = "for a in";
  for (const auto& a : args) script += " " + ShellQuote(a);
  script += "; do printf '<%s>' \"$a\"; done";
  CommandResult r = RunCommand({"/bin/bash", "-c", script}, 10);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string expected;
  for (const auto& a : args) expected += "<" + a + ">";
  EXPECT_EQ(r.out, expected);
}

TEST(ServerUtilTest, EvalOutputParsingAndDueEpochs) {
  auto rows = EvalRunner::ParseEvalOutput(
      R"({"dataset":"cifar10","epoch":2,"rows":[
          {"model":"vicreg","epoch":2,"probe":"linear","top1":0.61,"top5":0.95},
          {"model":"raw_pixels","epoch":0,"probe":"knn","top1":0.35,"top5":0.80},
          {"model":"vicreg","epoch":3,"probe":"linear","top1":0.7,"top5":0.96}]})",
      2, "cifar10");
  ASSERT_EQ(rows.size(), 2u);  // the epoch-3 row belongs to another task; epoch 0 = reference row
  EXPECT_EQ(rows[1].model, "raw_pixels");
  EXPECT_EQ(rows[1].epoch, 2);
  EXPECT_EQ(rows[0].model, "vicreg");
  EXPECT_DOUBLE_EQ(rows[1].top1, 0.35);
  EXPECT_THROW(EvalRunner::ParseEvalOutput("not json", 2, "c"), std::runtime_error);
  EXPECT_THROW(EvalRunner::ParseEvalOutput(R"({"rows":[]})", 2, "c"), std::runtime_error);
  EXPECT_THROW(EvalRunner::ParseEvalOutput(R"({"rows":[{"model":"vicreg","probe":"linear","top1":61.0}]})", 2, "c"),
               std::runtime_error);  // percentages are not ratios
  config::EvalConfig e;
  e.epochs = {1, 5};
  e.every_epochs = 4;
  EXPECT_EQ(EvalRunner::DueEpochs(e, {1, 2, 3, 4, 5, 6, 8}), (std::vector<int>{1, 4, 5, 8}));
  EXPECT_TRUE(EvalRunner::DueEpochs(config::EvalConfig{}, {1, 2}).empty());
  // eval.final: the last epoch checkpoint, once the job succeeded (a running or failed job's last
  // checkpoint is not its final one).
  config::EvalConfig f;
  f.final = true;
  EXPECT_TRUE(EvalRunner::DueEpochs(f, {1, 2, 7}).empty());
  EXPECT_EQ(EvalRunner::DueEpochs(f, {1, 2, 7}, /*job_succeeded=*/true), (std::vector<int>{7}));
  EXPECT_TRUE(EvalRunner::DueEpochs(f, {}, true).empty());
  f.epochs = {2, 7};
  EXPECT_EQ(EvalRunner::DueEpochs(f, {1, 2, 7}, true), (std::vector<int>{2, 7}));  // 7 once, not twice
}

TEST(ServerUtilTest, CoordinatorOptionsAreStrict) {
  testutil::TempDir dir("opts");
  auto write = [&](const std::string& text) {
    std::string p = dir.path() + "/c.yaml";
    fs::AtomicWriteFile(p, text);
    return p;
  };
  CoordinatorOptions o;
  LoadCoordinatorConfig(write("listen: 127.0.0.1:6000\nslots: 3\nslurm: {partition: gpu, srun_args: [--exclusive]}\n"),
                        &o);
  EXPECT_EQ(o.listen, "127.0.0.1:6000");
  EXPECT_EQ(o.slots, 3);
  EXPECT_EQ(o.slurm_partition, "gpu");
  EXPECT_EQ(o.slurm_srun_args, (std::vector<std::string>{"--exclusive"}));
  auto message_of = [&](const std::string& text) {
    CoordinatorOptions x;
    try {
      LoadCoordinatorConfig(write(text), &x);
      FinalizeCoordinatorOptions(&x);
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  EXPECT_NE(message_of("slot: 2\n").find("slot: unknown key; did you mean 'slots'? (line 1, column 1)"),
            std::string::npos);
  EXPECT_NE(message_of("slurm: {partion: x}\n").find("slurm.partition"), std::string::npos);
  EXPECT_NE(message_of("slots: many\n").find("slots: expected an integer, got 'many'"), std::string::npos);
  EXPECT_NE(message_of("listen: 0.0.0.0:50051\nlauncher: none\n").find("bearer token is required"), std::string::npos);
  EXPECT_NE(message_of("slots: 2\ngpus: '0,1'\nlauncher: none\n").find("exclude each other"), std::string::npos);
  EXPECT_NE(message_of("gpus: '0,0'\nlauncher: none\n").find("distinct GPU indices"), std::string::npos);
  EXPECT_NE(message_of("listen: localhost\nlauncher: none\n").find("HOST:PORT"), std::string::npos);
  EXPECT_NE(message_of("launcher: k8s\n").find("local, slurm or none"), std::string::npos);
  EXPECT_NE(message_of("launcher: none\ntls_cert: /etc/hostname\n").find("go together"), std::string::npos);
  EXPECT_NE(message_of("launcher: local\nworker_binary: /nonexistent/vicreg_worker\n").find("not an executable"),
            std::string::npos);
  EXPECT_EQ(message_of("launcher: none\nslots: 0\n"), "(accepted)");
  // Slurm launcher settings, the queue-wait cap and the store's own path.
  CoordinatorOptions q;
  LoadCoordinatorConfig(write("launcher: none\ndb_path: /var/lib/v/c.db\nmax_queue_wait_s: 3600\n"
                              "slurm: {job_name_prefix: lab2, squeue_interval_s: 10, max_submitted_jobs: 50, "
                              "squeue: /opt/slurm/bin/squeue}\n"),
                        &q);
  FinalizeCoordinatorOptions(&q);
  EXPECT_EQ(q.db_path, "/var/lib/v/c.db");
  EXPECT_DOUBLE_EQ(q.max_queue_wait_s, 3600);
  EXPECT_EQ(q.slurm_job_name_prefix, "lab2");
  EXPECT_DOUBLE_EQ(q.slurm_squeue_interval_s, 10);
  EXPECT_EQ(q.slurm_max_submitted_jobs, 50);
  EXPECT_EQ(q.slurm_squeue, "/opt/slurm/bin/squeue");
  CoordinatorOptions d;
  LoadCoordinatorConfig(write("launcher: none\nstate_dir: /srv/vicreg\n"), &d);
  FinalizeCoordinatorOptions(&d);
  EXPECT_EQ(d.db_path, "/srv/vicreg/coordinator.db") << "default: in the state dir";
  EXPECT_NE(message_of("launcher: none\nmax_queue_wait_s: -1\n").find("--max-queue-wait"), std::string::npos);
  EXPECT_NE(message_of("launcher: none\nslurm: {job_name_prefix: 'a b'}\n").find("slurm.job_name_prefix"),
            std::string::npos);
  EXPECT_NE(message_of("launcher: none\nslurm: {max_submitted_jobs: 0}\n").find("slurm.max_submitted_jobs"),
            std::string::npos);
  EXPECT_NE(message_of("slurm: {squeue_intervall_s: 1}\n").find("slurm.squeue_interval_s"), std::string::npos);
  // Every problem of a file at once, each at its line.
  const std::string two = message_of("slots: 2\nstop_grace: 5\nslurm: {partition: [a]}\n");
  EXPECT_NE(two.find("2 problems"), std::string::npos) << two;
  EXPECT_NE(two.find("stop_grace: unknown key; did you mean 'stop_grace_s'? (line 2, column 1)"), std::string::npos)
      << two;
  EXPECT_NE(two.find("slurm.partition: expected a string, got a list"), std::string::npos) << two;
  // An empty file (or comments only) sets nothing; gpus also as a YAML list.
  CoordinatorOptions g;
  EXPECT_NO_THROW(LoadCoordinatorConfig(write("# nothing yet\n"), &g));
  EXPECT_NO_THROW(LoadCoordinatorConfig(write(""), &g));
  LoadCoordinatorConfig(write("gpus: [0, 2]\n"), &g);
  EXPECT_EQ(g.gpus, "0,2");
  // The configs the repository ships load without a problem.
  for (const char* shipped :
       {"deploy/systemd/coordinator.yaml", "deploy/slurm/coordinator-slurm.yaml", "docker/coordinator.yaml"}) {
    CoordinatorOptions s;
    EXPECT_NO_THROW(LoadCoordinatorConfig(std::string(VICREG_SOURCE_DIR) + "/" + shipped, &s)) << shipped;
  }
}

// The export's checksum (coordinator and vicregctl share common/sha256.h): FIPS 180-2 vectors,
// and pieces hash as the whole.
TEST(ServerUtilTest, Sha256MatchesTheStandardVectorsInPieces) {
  auto digest = [](const std::vector<std::string>& pieces) {
    Sha256 sha;
    for (const auto& p : pieces) sha.Update(p.data(), p.size());
    return sha.HexDigest();
  };
  EXPECT_EQ(digest({}), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(digest({"abc"}), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string long_msg = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  EXPECT_EQ(digest({long_msg}), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(digest({long_msg.substr(0, 7), "", long_msg.substr(7)}), digest({long_msg}));
}

TEST(ServerUtilTest, SessionsAreSignalledAsAWhole) {
  testutil::TempDir dir("proc");
  SpawnOptions so;
  // Background jobs with job control on get their own process groups in the same session, as
  // mpirun's ranks do: a process-group kill would miss them, a session kill must not.
  so.argv = {"/bin/bash", "-c", "set -m; sleep 300 & sleep 300 & wait"};
  so.output_path = dir.path() + "/out";
  ProcessRef p = Spawn(so);
  ASSERT_TRUE(IsAlive(p));
  // A forked background job is visible in the session before bash (and the child itself) moved it
  // into its own group: wait for three members in three groups, not just for three members.
  std::vector<int> members;
  std::set<int> groups;
  for (int i = 0; i < 250 && (members.size() < 3 || groups.size() < 3); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    members = SessionMembers(p.pid);
    groups.clear();
    for (int pid : members) {
      if (auto st = ReadProcStat(pid)) groups.insert(st->pgid);
    }
  }
  ASSERT_EQ(members.size(), 3u);
  EXPECT_EQ(groups.size(), 3u) << "the test needs members in distinct process groups";
  EXPECT_EQ(SignalSessionOf(p, SIGKILL), 3);
  for (int i = 0; i < 100 && !SessionMembers(p.pid).empty(); ++i) {
    TryReap(p.pid);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  TryReap(p.pid);
  EXPECT_TRUE(SessionMembers(p.pid).empty());
  EXPECT_FALSE(IsAlive(p));
}

TEST(ServerUtilTest, SpawnReportsExecFailureAndProcessIdentityDetectsReuse) {
  SpawnOptions so;
  so.argv = {"/nonexistent/binary"};
  try {
    Spawn(so);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/binary"), std::string::npos) << e.what();
  }
  ProcessRef self{getpid(), 0};
  self.start_ticks = ReadProcStat(getpid())->start_ticks;
  EXPECT_TRUE(IsAlive(self));
  ProcessRef reused = self;
  reused.start_ticks += 1;  // same pid, another start time: a different process
  EXPECT_FALSE(IsAlive(reused));
  EXPECT_EQ(SignalSessionOf(reused, 0), 0);  // never signals a session under a reused pid
}

// The cause of a failed attempt: the first rank that failed by itself; when the ranks were stopped
// (SIGTERM, exit 143, a worker that reports "terminated by SIGTERM"), the launcher's error lines of
// this launch (after its banner) say why, e.g. a node failure under srun.
TEST(ServerUtilTest, FailureCauseNamesTheRankAndWhatTheLauncherSaw) {
  testutil::TempDir dir("failure");
  const contract::RunPaths run(dir.path() + "/run");
  fs::MakeDirs(run.attempt_ranks_dir(2));
  fs::MakeDirs(run.logs_dir());
  testutil::WriteText(run.launcher_log(),
                      "=== vicreg: vicreg-job-000001-a1 (Slurm job 7) on node1, T ===\nsrun: error: old attempt\n"
                      "=== vicreg: vicreg-job-000001-a2 (Slurm job 8) on node1, T ===\n"
                      "srun: error: Node failure on node2\nsrun: got SIGCONT\n");
  auto rank = [&](int r, int code, int sig) {
    contract::ExitRecord e;
    e.rank = r;
    e.pid = 100 + r;
    e.exit_code = code;
    e.signal = sig;
    e.finished = 1000 + r;
    testutil::WriteText(run.attempt_rank_exit(2, r), contract::FormatExitRecord(e));
  };
  rank(0, 143, 0);
  rank(1, 143, 0);
  AttemptStatus st;
  st.phase = AttemptStatus::Phase::kExited;
  st.exit_code = 1;
  std::string cause = DescribeFailure(run, 2, st);
  EXPECT_EQ(cause.rfind("rank 0 exited with code 143; launcher: srun: error: Node failure on node2", 0), 0u) << cause;
  EXPECT_EQ(cause.find("old attempt"), std::string::npos) << cause;
  // A rank that failed by itself comes first, and the launcher's lines are not needed.
  rank(1, 1, 0);
  cause = DescribeFailure(run, 2, st);
  EXPECT_EQ(cause.rfind("rank 1 exited with code 1", 0), 0u) << cause;
  EXPECT_EQ(cause.find("launcher:"), std::string::npos) << cause;
}

}  // namespace
}  // namespace vicreg::server
