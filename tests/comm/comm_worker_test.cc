// Worker-level distributed invariants with real vicreg_worker processes (docs/ARCHITECTURE.md "Distributed"):
//   * W ranks x batch B == 1 rank x batch W*B: loss components every step and parameters after
//     5 steps (fp32, rel. tol. 1e-5), for mpirun -np 2 and -np 3;
//   * a 2-rank run interrupted and resumed from its checkpoint reproduces the uninterrupted run
//     bit for bit (across an epoch boundary);
//   * the same run under a real single-node Slurm (slurmctld + slurmd started here, auth/none,
//     srun --mpi=pmix -n 2); skipped with the reason when Slurm cannot start.
// Data and job: tests/comm/synthetic_job.h.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/comm/subprocess.h"
#include "tests/comm/synthetic_job.h"

namespace vicreg::testing {
namespace {

const char* kPython = "/usr/bin/python3";

class DistWorker : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/vicreg_comm_worker_XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    RunProcess({"mkdir", "-p", dir_ + "/data"}, 10);
    WriteIdxDataset(dir_ + "/data", 96);
    std::ofstream(dir_ + "/job.yaml") << SyntheticJobYaml(dir_ + "/data", 96);
    tag_ = UniqueTag("vicreg-comm-worker");
  }
  void TearDown() override {
    const auto orphans = ReapOrphans(tag_, 2.0);
    EXPECT_TRUE(orphans.empty()) << orphans.size() << " worker process(es) outlived the test";
    if (!HasFailure())
      RunProcess({"rm", "-rf", dir_}, 30);
    else
      std::fprintf(stderr, "keeping %s for inspection\n", dir_.c_str());
  }

  // Worker argv; the tag rides along as the job id so leftover processes can be found.
  std::vector<std::string> WorkerArgs(const std::string& run, int batch, int max_steps, bool resume = false) {
    std::vector<std::string> a = {VICREG_WORKER,
                                  "--job",
                                  dir_ + "/job.yaml",
                                  "--run-dir",
                                  dir_ + "/" + run,
                                  "--max-steps",
                                  std::to_string(max_steps),
                                  "--set",
                                  "train.batch_size=" + std::to_string(batch),
                                  "--job-id",
                                  tag_};
    if (resume) a.insert(a.end(), {"--resume", "auto"});
    return a;
  }

  ProcessResult Single(const std::string& run, int batch, int max_steps, bool resume = false) {
    return RunProcess(WorkerArgs(run, batch, max_steps, resume), 120);
  }

  ProcessResult Mpirun(int np, const std::string& run, int batch, int max_steps, bool resume = false) {
    std::vector<std::string> a = {"mpirun", "--allow-run-as-root", "--oversubscribe", "-np", std::to_string(np)};
    auto w = WorkerArgs(run, batch, max_steps, resume);
    a.insert(a.end(), w.begin(), w.end());
    return RunProcess(a, 180);
  }

  ProcessResult Compare(const std::string& ref, const std::string& other, int steps,
                        const std::vector<std::string>& extra = {}) {
    std::vector<std::string> a = {kPython,          VICREG_SOURCE_DIR "/tests/comm/compare_runs.py",
                                  dir_ + "/" + ref, dir_ + "/" + other,
                                  "--steps",        std::to_string(steps)};
    a.insert(a.end(), extra.begin(), extra.end());
    return RunProcess(a, 120);
  }

  std::string dir_;
  std::string tag_;
};

#define ASSERT_RAN(r)                                                                                                  \
  ASSERT_TRUE((r).ok()) << "exit " << (r).exit_code << " signal " << (r).term_signal << " timed_out " << (r).timed_out \
                        << "\n"                                                                                        \
                        << (r).output

TEST_F(DistWorker, RanksTimesBatchEqualsOneRankWithGlobalBatch) {
  auto ref = Single("np1", 24, 5);
  ASSERT_RAN(ref);
  auto two = Mpirun(2, "np2", 12, 5);
  ASSERT_RAN(two);
  auto c2 = Compare("np1", "np2", 5, {"--rtol", "1e-5"});
  EXPECT_TRUE(c2.ok()) << c2.output;
  std::printf("np2 vs np1: %s", c2.output.c_str());
  auto three = Mpirun(3, "np3", 8, 5);
  ASSERT_RAN(three);
  auto c3 = Compare("np1", "np3", 5, {"--rtol", "1e-5"});
  EXPECT_TRUE(c3.ok()) << c3.output;
  std::printf("np3 vs np1: %s", c3.output.c_str());
}

// The comparison must be able to fail: a different global batch is not equivalent.
TEST_F(DistWorker, ComparisonDetectsADifferentRun) {
  auto ref = Single("np1", 24, 2);
  ASSERT_RAN(ref);
  auto other = Mpirun(2, "np2_b8", 8, 2);  // global batch 16 instead of 24
  ASSERT_RAN(other);
  auto c = Compare("np1", "np2_b8", 2, {"--rtol", "1e-5"});
  EXPECT_EQ(c.exit_code, 1) << c.output;
  EXPECT_NE(c.output.find("MISMATCH"), std::string::npos) << c.output;
}

TEST_F(DistWorker, TwoRankResumeReproducesUninterruptedRun) {
  // 96 images / (2 x 12) = 4 steps per epoch: stop at step 3, resume past the epoch boundary to 6.
  auto full = Mpirun(2, "full", 12, 6);
  ASSERT_RAN(full);
  auto first = Mpirun(2, "resumed", 12, 3);
  ASSERT_RAN(first);
  auto second = Mpirun(2, "resumed", 12, 6, /*resume=*/true);
  ASSERT_RAN(second);
  auto c = Compare("full", "resumed", 6, {"--bitwise", "--from-step", "4"});
  EXPECT_TRUE(c.ok()) << c.output;
  std::printf("resume: %s", c.output.c_str());
}

// Any world size that keeps the global batch resumes: 2 ranks x 12 stopped at step 3, resumed on
// 3 ranks x 8 (and on 1 rank x 24), matches the uninterrupted 2-rank run to the fp32 tolerance.
TEST_F(DistWorker, ResumeOnADifferentWorldSize) {
  auto full = Mpirun(2, "full", 12, 6);
  ASSERT_RAN(full);
  auto first = Mpirun(2, "to3", 12, 3);
  ASSERT_RAN(first);
  RunProcess({"cp", "-r", dir_ + "/to3", dir_ + "/to1"}, 30);
  auto three = Mpirun(3, "to3", 8, 6, /*resume=*/true);
  ASSERT_RAN(three);
  auto c3 = Compare("full", "to3", 6, {"--rtol", "1e-5"});
  EXPECT_TRUE(c3.ok()) << c3.output;
  auto one = Single("to1", 24, 6, /*resume=*/true);
  ASSERT_RAN(one);
  auto c1 = Compare("full", "to1", 6, {"--rtol", "1e-5"});
  EXPECT_TRUE(c1.ok()) << c1.output;
  std::printf("resume 2->3 ranks: %s2->1 rank: %s", c3.output.c_str(), c1.output.c_str());
}

// A rank stopped (SIGSTOP) mid-run: rank 0's collective times out, names the unresponsive rank in
// result.json and aborts the job through MPI; mpirun exits non-zero and no worker is left behind.
TEST_F(DistWorker, StoppedRankFailsTheJobWithAReason) {
  const std::string run = dir_ + "/stopped";
  std::vector<std::string> a = {"mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2"};
  auto w = WorkerArgs("stopped", 12, 400);
  a.insert(a.end(), w.begin(), w.end());
  a.insert(a.end(), {"--set", "resources.collective_timeout_s=4", "--set", "train.num_epochs=100"});
  const pid_t mpirun = SpawnProcess(a, dir_ + "/stopped.out");
  ASSERT_GT(mpirun, 0);
  // Wait until rank 1 announced itself and a few steps were logged.
  int victim = 0;
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  while (elapsed() < 90) {
    std::smatch m;
    const std::string ep = ReadTextFile(run + "/endpoints/rank-1.json");
    const std::string metrics = ReadTextFile(run + "/metrics.jsonl");
    if (std::regex_search(ep, m, std::regex("\"pid\"\\s*:\\s*([0-9]+)")) &&
        std::count(metrics.begin(), metrics.end(), '\n') >= 3) {
      victim = std::stoi(m[1]);
      break;
    }
    usleep(100000);
  }
  ASSERT_GT(victim, 0) << "the run did not start:\n" << ReadTextFile(dir_ + "/stopped.out");
  ASSERT_EQ(kill(victim, SIGSTOP), 0);
  const double stopped_at = elapsed();
  int status = 0;
  while (waitpid(mpirun, &status, WNOHANG) == 0 && elapsed() - stopped_at < 60) usleep(100000);
  const double took = elapsed() - stopped_at;
  if (took >= 60) {
    kill(-mpirun, SIGKILL);
    kill(victim, SIGKILL);
    waitpid(mpirun, &status, 0);
    FAIL() << "the job hung after rank 1 was stopped:\n" << ReadTextFile(dir_ + "/stopped.out");
  }
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << "status " << status;
  EXPECT_LT(took, 4 + 1 + 15) << "timeout 4 s + probe 1 s + teardown";
  const std::string result = ReadTextFile(run + "/result.json");
  EXPECT_NE(result.find("\"failed\""), std::string::npos) << result;
  EXPECT_NE(result.find("did not complete within 4.0 s"), std::string::npos) << result;
  EXPECT_NE(result.find("unresponsive rank(s): 1"), std::string::npos) << result;
  std::printf("stopped rank: job ended %.1f s after SIGSTOP; result.json: %s\n", took, result.c_str());
}

// ---- Slurm ----------------------------------------------------------------------------------
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  close(fd);
  return port;
}

bool OnPath(const std::string& exe) { return RunProcess({"sh", "-c", "command -v " + exe}, 10).ok(); }

class SlurmCluster {
 public:
  // Returns "" when the cluster is up (node idle), else why not.
  std::string Start(const std::string& dir) {
    for (const char* exe : {"slurmctld", "slurmd", "srun", "sinfo"}) {
      if (!OnPath(exe)) return std::string(exe) + " is not installed (apt-get install slurm-wlm)";
    }
    dir_ = dir;
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    host_ = host;
    RunProcess({"mkdir", "-p", dir + "/state", dir + "/spool"}, 10);
    auto node = RunProcess({"slurmd", "-C"}, 30);
    std::string node_line;
    std::istringstream lines(node.output);
    for (std::string l; std::getline(lines, l);) {
      if (l.rfind("NodeName=", 0) == 0) node_line = l;
    }
    if (node_line.empty()) return "slurmd -C printed no NodeName line:\n" + node.output;
    // Keep CPUs/RealMemory from slurmd -C, but allow 3 tasks on a 2-core machine.
    conf_ = dir + "/slurm.conf";
    std::ofstream c(conf_);
    c << "ClusterName=vicregcomm" << getpid() << "\n"
      << "SlurmctldHost=" << host_ << "(127.0.0.1)\n"
      << "SlurmctldPort=" << FreePort() << "\nSlurmdPort=" << FreePort() << "\n"
      << "SlurmUser=root\nSlurmdUser=root\nAuthType=auth/none\nCredType=cred/none\n"
      << "StateSaveLocation=" << dir << "/state\nSlurmdSpoolDir=" << dir << "/spool\n"
      << "SlurmctldPidFile=" << dir << "/slurmctld.pid\nSlurmdPidFile=" << dir << "/slurmd.pid\n"
      << "SlurmctldLogFile=" << dir << "/slurmctld.log\nSlurmdLogFile=" << dir << "/slurmd.log\n"
      << "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nSelectType=select/cons_tres\n"
      << "SelectTypeParameters=CR_Core\nSchedulerType=sched/backfill\nMpiDefault=none\nReturnToService=2\n"
      << "JobAcctGatherType=jobacct_gather/none\nAccountingStorageType=accounting_storage/none\n"
      << "JobCompType=jobcomp/none\nKillOnBadExit=1\n"
      << node_line << "\n"
      << "PartitionName=debug Nodes=" << host_ << " Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE\n";
    c.close();
    env_ = {"SLURM_CONF=" + conf_};
    ctld_ = SpawnProcess({"slurmctld", "-D", "-f", conf_}, dir + "/slurmctld.out", env_);
    slurmd_ = SpawnProcess({"slurmd", "-D", "-f", conf_, "-N", host_}, dir + "/slurmd.out", env_);
    for (int i = 0; i < 100; ++i) {
      auto s = RunProcess({"sinfo", "-h", "-o", "%T"}, 10, env_);
      if (s.ok() && s.output.find("idle") != std::string::npos) return "";
      usleep(200000);
    }
    return "the node did not become idle within 20 s; slurmctld.log:\n" + ReadTextFile(dir + "/slurmctld.log") +
           "\nslurmd.log:\n" + ReadTextFile(dir + "/slurmd.log") + "\n" + ReadTextFile(dir + "/slurmd.out");
  }
  ~SlurmCluster() {
    StopProcess(slurmd_);
    StopProcess(ctld_);
  }
  const std::vector<std::string>& env() const { return env_; }

 private:
  std::string dir_, host_, conf_;
  std::vector<std::string> env_;
  pid_t ctld_ = -1, slurmd_ = -1;
};

TEST_F(DistWorker, SrunPmixTwoRanksEqualsOneRank) {
  SlurmCluster slurm;
  const std::string why = slurm.Start(dir_ + "/slurm");
  if (!why.empty()) GTEST_SKIP() << "Slurm could not start: " << why;
  auto ref = Single("np1", 24, 5);
  ASSERT_RAN(ref);
  std::vector<std::string> a = {"srun", "--mpi=pmix", "-n", "2", "-N", "1", "--kill-on-bad-exit=1"};
  auto w = WorkerArgs("srun2", 12, 5);
  a.insert(a.end(), w.begin(), w.end());
  auto r = RunProcess(a, 180, slurm.env());
  ASSERT_RAN(r);
  const std::string log0 = ReadTextFile(dir_ + "/srun2/logs/rank-0.log");
  EXPECT_NE(log0.find("rank 0/2"), std::string::npos) << log0;
  EXPECT_NE(log0.find("from pmix"), std::string::npos) << "rank discovery should come from PMIx under srun:\n" << log0;
  auto c = Compare("np1", "srun2", 5, {"--rtol", "1e-5"});
  EXPECT_TRUE(c.ok()) << c.output;
  std::printf("srun vs np1: %s", c.output.c_str());
}

}  // namespace
}  // namespace vicreg::testing
