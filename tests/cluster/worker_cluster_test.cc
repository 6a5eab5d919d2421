// vicreg_worker with ranks on several nodes of the namespace test bed (tests/cluster/testbed.sh),
// real processes under a real Slurm:
//   * 2 nodes x 2 ranks == 1 node x 4 ranks (same global batch 24, deterministic data): step losses
//     (relative difference <= 1e-5 over 5 steps) and final parameters (max |diff| <= 1e-5), for the
//     mpi backend (srun --mpi=pmix, and Open MPI's mpirun across nodes through the bed's rsh agent
//     and inside an sbatch allocation) and the gloo backend (srun; TCP on the nodes' own addresses);
//   * every rank runs on, logs and records (endpoints/rank-<r>.json "host") its node's hostname, and
//     its local rank / local world size are the node's own (2 per node);
//   * a node that dies mid-run ends the step within the collective timeout, naming the lost ranks;
//   * deploy/slurm/vicreg-train.sbatch runs on the bed as its header documents for CPU nodes.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "tests/cluster/testbed.h"
#include "tests/comm/subprocess.h"
#include "tests/comm/synthetic_job.h"

namespace vicreg::testing {
namespace {

constexpr int kGlobalBatch = 24;
constexpr int kSteps = 5;

#define ASSERT_RAN(r)                                                                                                  \
  ASSERT_TRUE((r).ok()) << "exit " << (r).exit_code << " signal " << (r).term_signal << " timed_out " << (r).timed_out \
                        << "\n"                                                                                        \
                        << (r).output

class MultiNodeWorker : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_TESTBED();
    bed_ = &TestBed::Get();
    // On the bed's "shared file system": every node sees the same paths.
    const std::string base = bed_->dir() + "/work";
    RunProcess({"mkdir", "-p", base}, 10);
    std::string tmpl = base + "/worker-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    RunProcess({"mkdir", "-p", dir_ + "/data"}, 10);
    WriteIdxDataset(dir_ + "/data", 96);
    std::ofstream(dir_ + "/job.yaml") << SyntheticJobYaml(dir_ + "/data", 96);
    tag_ = UniqueTag("vicreg-cluster-worker");
  }
  void TearDown() override {
    if (!bed_) return;
    const auto orphans = ReapOrphans(tag_, 5.0);
    EXPECT_TRUE(orphans.empty()) << orphans.size() << " worker process(es) outlived the test";
    if (!HasFailure())
      RunProcess({"rm", "-rf", dir_}, 30);
    else
      std::fprintf(stderr, "keeping %s for inspection (bed logs: %s/log)\n", dir_.c_str(), bed_->dir().c_str());
  }

  std::vector<std::string> WorkerArgs(const std::string& run, int ranks, const std::string& backend) {
    return {VICREG_WORKER,
            "--job",
            dir_ + "/job.yaml",
            "--run-dir",
            dir_ + "/" + run,
            "--max-steps",
            std::to_string(kSteps),
            "--set",
            "train.batch_size=" + std::to_string(kGlobalBatch / ranks),
            "--set",
            "resources.ranks=" + std::to_string(ranks),
            "--set",
            "resources.backend=" + backend,
            "--job-id",
            tag_};
  }

  // srun from the login node: `nodes` nodes (node1..), `per_node` ranks each.
  ProcessResult Srun(const std::string& run, int nodes, int per_node, const std::string& backend) {
    std::string nodelist;
    for (int n = 1; n <= nodes; ++n) nodelist += (n > 1 ? ",node" : "node") + std::to_string(n);
    std::vector<std::string> a = {"srun",
                                  "--mpi=pmix",
                                  "--kill-on-bad-exit=1",
                                  "-N",
                                  std::to_string(nodes),
                                  "--ntasks-per-node=" + std::to_string(per_node),
                                  "--nodelist=" + nodelist};
    auto w = WorkerArgs(run, nodes * per_node, backend);
    a.insert(a.end(), w.begin(), w.end());
    return bed_->Login(a, 240);
  }

  // One compare_runs.py (one torch import) for every run against the reference.
  ProcessResult Compare(const std::string& ref, const std::vector<std::string>& others) {
    std::vector<std::string> a = {"/usr/bin/python3", VICREG_SOURCE_DIR "/tests/comm/compare_runs.py",
                                  dir_ + "/" + ref};
    for (const auto& o : others) a.push_back(dir_ + "/" + o);
    a.insert(a.end(), {"--steps", std::to_string(kSteps), "--rtol", "1e-5", "--max-abs-diff", "1e-5"});
    return RunProcess(a, 120);
  }

  // Each rank's endpoint names the node Slurm put it on, with the node-local rank; its log says so.
  void ExpectPlacement(const std::string& run, const std::vector<std::string>& host_of_rank, int per_node) {
    for (size_t r = 0; r < host_of_rank.size(); ++r) {
      const std::string ep = ReadTextFile(dir_ + "/" + run + "/endpoints/rank-" + std::to_string(r) + ".json");
      EXPECT_NE(ep.find("\"host\":\"" + host_of_rank[r] + "\""), std::string::npos)
          << run << " rank " << r << ": " << ep;
      EXPECT_NE(ep.find("\"local_rank\":" + std::to_string(r % per_node)), std::string::npos)
          << run << " rank " << r << ": " << ep;
      const std::string log = ReadTextFile(dir_ + "/" + run + "/logs/rank-" + std::to_string(r) + ".log");
      EXPECT_NE(log.find(" rank " + std::to_string(r) + "/" + std::to_string(host_of_rank.size()) + " (local " +
                         std::to_string(r % per_node) + ")"),
                std::string::npos)
          << run << " rank " << r << " log:\n"
          << log.substr(0, 2000);
      EXPECT_NE(log.find(" on " + host_of_rank[r] + ","), std::string::npos) << run << " rank " << r << " log:\n"
                                                                             << log.substr(0, 2000);
    }
  }

  TestBed* bed_ = nullptr;
  std::string dir_, tag_;
};

const std::vector<std::string> kOneNode = {"node1", "node1", "node1", "node1"};
const std::vector<std::string> kTwoNodes = {"node1", "node1", "node2", "node2"};

TEST_F(MultiNodeWorker, MpiTwoNodesTimesTwoRanksEqualsOneNodeTimesFour) {
  auto one = Srun("mpi_1x4", 1, 4, "mpi");
  ASSERT_RAN(one);
  auto two = Srun("mpi_2x2", 2, 2, "mpi");
  ASSERT_RAN(two);
  ExpectPlacement("mpi_1x4", kOneNode, 4);
  ExpectPlacement("mpi_2x2", kTwoNodes, 2);
  const std::string log0 = ReadTextFile(dir_ + "/mpi_2x2/logs/rank-0.log");
  EXPECT_NE(log0.find("from pmix"), std::string::npos) << log0.substr(0, 2000);

  // Open MPI's own launcher across the nodes, without ssh: mpirun on node1 starts its daemon on
  // node2 through the bed's rsh agent (an `nsenter` into node2's namespaces).
  const std::string hosts = dir_ + "/hostfile";
  std::ofstream(hosts) << "node1 slots=2\nnode2 slots=2\n";
  std::vector<std::string> a = {"mpirun",     "--mca", "plm_rsh_agent", bed_->bin() + "/rsh",
                                "--hostfile", hosts,   "-np",           "4"};
  auto w = WorkerArgs("mpirun_2x2", 4, "mpi");
  a.insert(a.end(), w.begin(), w.end());
  auto m = bed_->Exec("node1", a, 240, {"OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"});
  ASSERT_RAN(m);
  ExpectPlacement("mpirun_2x2", kTwoNodes, 2);
  EXPECT_NE(ReadTextFile(dir_ + "/mpirun_2x2/logs/rank-0.log").find("from openmpi"), std::string::npos);

  // mpirun inside a Slurm allocation: Open MPI starts its daemons with srun (no ssh, no PMIx direct launch).
  std::string cmd = "export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; exec mpirun";
  for (const auto& x : WorkerArgs("alloc_2x2", 4, "mpi")) cmd += " '" + x + "'";
  auto s = bed_->Login({"sbatch", "--wait", "-N", "2", "--ntasks-per-node=2", "--nodelist=node1,node2",
                        "--output=" + dir_ + "/alloc.out", "--wrap", cmd},
                       240);
  ASSERT_RAN(s) << "\n" << ReadTextFile(dir_ + "/alloc.out");
  ExpectPlacement("alloc_2x2", kTwoNodes, 2);

  // srun 2x2, mpirun (rsh agent) 2x2 and mpirun in an allocation 2x2, each against srun 1x4.
  auto c = Compare("mpi_1x4", {"mpi_2x2", "mpirun_2x2", "alloc_2x2"});
  EXPECT_TRUE(c.ok()) << c.output;
  std::printf("mpi, 2 nodes x 2 ranks (srun; mpirun + rsh agent; mpirun in an allocation) vs srun 1 node x 4:\n%s",
              c.output.c_str());
}

TEST_F(MultiNodeWorker, GlooTwoNodesTimesTwoRanksEqualsOneNodeTimesFour) {
  auto one = Srun("gloo_1x4", 1, 4, "gloo");
  ASSERT_RAN(one);
  EXPECT_NE(one.output.find("binds 127.0.0.1 (all 4 rank(s) on this host)"), std::string::npos) << one.output;
  auto two = Srun("gloo_2x2", 2, 2, "gloo");
  ASSERT_RAN(two);
  // Each rank binds its own node's address on the bed's subnet, found from the other node's.
  for (int r = 0; r < 4; ++r) {
    const std::string own = r < 2 ? "11" : "12", peer = r < 2 ? "12" : "11";
    const std::string want =
        "gloo: rank " + std::to_string(r) + " of 4 binds 10.233.0." + own + " (eth0, same subnet as rank ";
    EXPECT_NE(two.output.find(want), std::string::npos) << want << "\n" << two.output;
  }
  auto c = Compare("gloo_1x4", {"gloo_2x2"});
  EXPECT_TRUE(c.ok()) << c.output;
  std::printf("gloo, srun 2 nodes x 2 vs 1 node x 4: %s", c.output.c_str());
  ExpectPlacement("gloo_1x4", kOneNode, 4);
  ExpectPlacement("gloo_2x2", kTwoNodes, 2);
}

// A node dies mid-run (its slurmd, step daemon and ranks SIGKILLed): the ranks on the other node
// leave their collective within the collective timeout, rank 0 records which ranks stopped
// answering, and srun ends the step with a failure instead of hanging.
TEST_F(MultiNodeWorker, NodeDeathEndsTheStepWithinTheCollectiveTimeout) {
  const std::string run = dir_ + "/node_death";
  std::vector<std::string> a = {"srun", "--mpi=pmix",          "--kill-on-bad-exit=1",  "-N",
                                "2",    "--ntasks-per-node=2", "--nodelist=node1,node2"};
  auto w = WorkerArgs("node_death", 4, "mpi");
  w[6] = "100000";  // --max-steps
  a.insert(a.end(), w.begin(), w.end());
  a.insert(a.end(), {"--set", "train.num_epochs=100000", "--set", "resources.collective_timeout_s=8"});
  std::vector<std::string> argv = {VICREG_SOURCE_DIR "/tests/cluster/testbed.sh", "--dir", bed_->dir(), "exec",
                                   "login"};
  argv.insert(argv.end(), a.begin(), a.end());
  const pid_t srun = SpawnProcess(argv, dir_ + "/node_death.out");
  ASSERT_GT(srun, 0);
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  bool running = false;
  while (!running && elapsed() < 180) {
    const std::string metrics = ReadTextFile(run + "/metrics.jsonl");
    running = std::count(metrics.begin(), metrics.end(), '\n') >= 3;
    if (!running) usleep(200000);
  }
  if (!running) {
    StopProcess(srun);
    FAIL() << "the run did not start:\n" << ReadTextFile(dir_ + "/node_death.out");
  }
  auto k = bed_->Script({"node-kill", "node2"}, 30);
  ASSERT_TRUE(k.ok()) << k.output;
  const double killed_at = elapsed();
  int status = 0;
  while (waitpid(srun, &status, WNOHANG) == 0 && elapsed() - killed_at < 120) usleep(100000);
  const double took = elapsed() - killed_at;
  if (took >= 120) {
    StopProcess(srun);
    FAIL() << "srun still running 120 s after node2 died:\n" << ReadTextFile(dir_ + "/node_death.out");
  }
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << "status " << status;
  // 8 s collective timeout + 1 s liveness probe + srun's wait for the dead node's step (KillWait 5 s,
  // message timeouts): bounded, not a hang.
  EXPECT_LT(took, 60) << ReadTextFile(dir_ + "/node_death.out");
  const std::string result = ReadTextFile(run + "/result.json");
  EXPECT_NE(result.find("\"failed\""), std::string::npos) << result;
  EXPECT_NE(result.find("did not complete within 8.0 s"), std::string::npos) << result;
  EXPECT_NE(result.find("unresponsive rank(s): 2 3"), std::string::npos) << result;
  std::printf("node death: srun ended %.1f s after node2 was killed; result.json: %s\n", took, result.c_str());
}

// The documented CPU-node use of deploy/slurm/vicreg-train.sbatch, submitted from the login node.
TEST_F(MultiNodeWorker, DeploySbatchScriptRunsAsDocumented) {
  const std::string run = dir_ + "/deploy_run";
  const std::string bindir = std::string(VICREG_WORKER).substr(0, std::string(VICREG_WORKER).rfind('/'));
  auto s = bed_->Login(
      {"sbatch", "--wait", "--gpus-per-task=0", "--ntasks-per-node=2", "--cpus-per-task=1", "--nodelist=node2,node3",
       "--output=" + dir_ + "/vicreg-%j.out", VICREG_SOURCE_DIR "/deploy/slurm/vicreg-train.sbatch", dir_ + "/job.yaml",
       run, "--set", "resources.backend=gloo", "--max-steps", "3", "--job-id", tag_},
      300, {"VICREG_DEVICE=cpu", "VICREG_BIN=" + bindir});
  std::string out;
  std::smatch m;
  if (std::regex_search(s.output, m, std::regex("Submitted batch job ([0-9]+)")))
    out = ReadTextFile(dir_ + "/vicreg-" + m[1].str() + ".out");
  ASSERT_RAN(s) << "\nbatch output:\n" << out;
  EXPECT_NE(out.find("4 ranks, run dir " + run), std::string::npos) << out;
  const std::string result = ReadTextFile(run + "/result.json");
  EXPECT_NE(result.find("\"succeeded\""), std::string::npos) << result << "\n" << out;
  ExpectPlacement("deploy_run", {"node2", "node2", "node3", "node3"}, 2);
}

}  // namespace
}  // namespace vicreg::testing
