// Multi-rank tests: real processes under `mpirun --allow-run-as-root --oversubscribe -np N`
// running comm_helper scenarios on the MPI and Gloo backends, plus peer failure handling.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <regex>
#include <string>
#include <vector>

#include "tests/comm/subprocess.h"

namespace vicreg::testing {
namespace {

struct MpiRun {
  MpiRun(std::string s, std::string b, int n, std::vector<std::string> e = {})
      : scenario(std::move(s)), backend(std::move(b)), np(n), extra(std::move(e)) {}
  std::string scenario;
  std::string backend;
  int np;
  std::vector<std::string> extra;
};

class MultiRank : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/vicreg_comm_test_XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
  }
  void TearDown() override {
    const auto orphans = ReapOrphans(tag_, 2.0);
    EXPECT_TRUE(orphans.empty()) << orphans.size() << " process(es) tagged " << tag_ << " outlived the test";
    RunProcess({"rm", "-rf", dir_}, 30);
  }

  ProcessResult Mpirun(const MpiRun& run, double timeout_s = 90) {
    tag_ = UniqueTag("vicreg-comm-test");
    std::vector<std::string> argv = {"mpirun",
                                     "--allow-run-as-root",
                                     "--oversubscribe",
                                     "-np",
                                     std::to_string(run.np),
                                     COMM_HELPER,
                                     run.scenario,
                                     "--backend",
                                     run.backend,
                                     "--rendezvous",
                                     dir_,
                                     "--tag",
                                     tag_};
    argv.insert(argv.end(), run.extra.begin(), run.extra.end());
    auto r = RunProcess(argv, timeout_s, {"OMPI_MCA_rmaps_base_oversubscribe=1"});
    last_ = r.output;
    return r;
  }

  // Every rank printed PASS.
  void ExpectAllPass(const ProcessResult& r, int np, const std::string& backend) {
    EXPECT_TRUE(r.ok()) << "exit " << r.exit_code << " signal " << r.term_signal << " timed_out " << r.timed_out << "\n"
                        << r.output;
    for (int k = 0; k < np; ++k) {
      const std::string line = "PASS rank " + std::to_string(k) + "/" + std::to_string(np) + " backend " + backend;
      EXPECT_NE(r.output.find(line), std::string::npos) << "missing '" << line << "' in:\n" << r.output;
    }
  }

  std::string dir_;
  std::string tag_ = "vicreg-comm-test-none";
  std::string last_;
};

// ---- VICReg loss: train.vicreg.global_stats allreduce vs gather vs one process (float64, uneven values) ----
TEST_F(MultiRank, VicregLossMpiNp2) { ExpectAllPass(Mpirun({"vicreg_loss", "mpi", 2}), 2, "mpi"); }
TEST_F(MultiRank, VicregLossMpiNp3) {
  ExpectAllPass(Mpirun({"vicreg_loss", "mpi", 3, {"--batch", "4", "--dim", "7"}}), 3, "mpi");
}
TEST_F(MultiRank, VicregLossMpiNp4) { ExpectAllPass(Mpirun({"vicreg_loss", "mpi", 4, {"--batch", "3"}}), 4, "mpi"); }
TEST_F(MultiRank, VicregLossGlooNp3) { ExpectAllPass(Mpirun({"vicreg_loss", "gloo", 3}), 3, "gloo"); }

// ---- collectives ------------------------------------------------------------------------------
TEST_F(MultiRank, CollectivesMpiNp2) { ExpectAllPass(Mpirun({"collectives", "mpi", 2}), 2, "mpi"); }
TEST_F(MultiRank, CollectivesMpiNp3) { ExpectAllPass(Mpirun({"collectives", "mpi", 3}), 3, "mpi"); }
TEST_F(MultiRank, CollectivesGlooNp2) { ExpectAllPass(Mpirun({"collectives", "gloo", 2}), 2, "gloo"); }
TEST_F(MultiRank, CollectivesGlooNp3) { ExpectAllPass(Mpirun({"collectives", "gloo", 3}), 3, "gloo"); }

// ---- gathered autograd vs one process on the concatenated batch (fp64, 1e-6) ------------------
TEST_F(MultiRank, GatherGradientMpiNp2) { ExpectAllPass(Mpirun({"gather", "mpi", 2}), 2, "mpi"); }
TEST_F(MultiRank, GatherGradientMpiNp3) { ExpectAllPass(Mpirun({"gather", "mpi", 3, {"--batch", "3"}}), 3, "mpi"); }
TEST_F(MultiRank, GatherGradientGlooNp2) { ExpectAllPass(Mpirun({"gather", "gloo", 2}), 2, "gloo"); }
TEST_F(MultiRank, GatherGradientGlooNp3) { ExpectAllPass(Mpirun({"gather", "gloo", 3}), 3, "gloo"); }

// ---- gradient synchronizer: mean over ranks, odd bucket sizes, params without grads ------------
TEST_F(MultiRank, GradSyncMpiOverlappedNp3) {
  ExpectAllPass(Mpirun({"grad_sync", "mpi", 3, {"--bucket-bytes", "40", "--expect-overlap", "1"}}), 3, "mpi");
}
TEST_F(MultiRank, GradSyncMpiSyncFallbackNp2) {
  ExpectAllPass(Mpirun({"grad_sync", "mpi", 2, {"--bucket-bytes", "40", "--overlap", "0"}}), 2, "mpi");
  EXPECT_NE(last_.find("in_backward=0"), std::string::npos) << last_;
}
TEST_F(MultiRank, GradSyncMpiOneBucketNp2) {
  ExpectAllPass(Mpirun({"grad_sync", "mpi", 2, {"--bucket-bytes", "1000000"}}), 2, "mpi");
  EXPECT_NE(last_.find("buckets=1 "), std::string::npos) << last_;
}
TEST_F(MultiRank, GradSyncGlooNp2) {
  ExpectAllPass(Mpirun({"grad_sync", "gloo", 2, {"--bucket-bytes", "40", "--expect-overlap", "1"}}), 2, "gloo");
}

// ---- SyncBatchNorm1d (worker/model) vs BatchNorm1d on the concatenated batch ------------------
TEST_F(MultiRank, SyncBatchNormMpiNp2) { ExpectAllPass(Mpirun({"syncbn", "mpi", 2}), 2, "mpi"); }
TEST_F(MultiRank, SyncBatchNormMpiNp3) { ExpectAllPass(Mpirun({"syncbn", "mpi", 3, {"--batch", "2"}}), 3, "mpi"); }
TEST_F(MultiRank, SyncBatchNormGlooNp3) { ExpectAllPass(Mpirun({"syncbn", "gloo", 3}), 3, "gloo"); }

// ---- parameters + buffers broadcast, divergence detection ----------------------------------
TEST_F(MultiRank, StateBroadcastAndCheckMpiNp3) { ExpectAllPass(Mpirun({"state", "mpi", 3}), 3, "mpi"); }
TEST_F(MultiRank, StateBroadcastAndCheckGlooNp2) { ExpectAllPass(Mpirun({"state", "gloo", 2}), 2, "gloo"); }

// ---- torchrun-style launch (no MPI): RANK/WORLD_SIZE/LOCAL_RANK, Gloo over a store --------------
// Two helper processes started directly; rendezvous through MASTER_ADDR/MASTER_PORT (TCPStore) or,
// with a rendezvous folder, a FileStore named after TORCHELASTIC_RUN_ID.
ProcessResult RunTorchrunStyle(const std::string& tag, const std::string& rendezvous, int port) {
  std::vector<pid_t> pids;
  std::vector<std::string> logs;
  for (int r = 0; r < 2; ++r) {
    logs.push_back("/tmp/vicreg_torchrun_" + tag + "_" + std::to_string(r) + ".log");
    std::vector<std::string> argv = {COMM_HELPER, "collectives", "--backend", "gloo", "--tag", tag};
    if (!rendezvous.empty()) argv.insert(argv.end(), {"--rendezvous", rendezvous});
    pids.push_back(SpawnProcess(
        argv, logs.back(),
        {"RANK=" + std::to_string(r), "WORLD_SIZE=2", "LOCAL_RANK=" + std::to_string(r), "LOCAL_WORLD_SIZE=2",
         "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + std::to_string(port), "TORCHELASTIC_RUN_ID=" + tag}));
  }
  ProcessResult res;
  res.exit_code = 0;
  const auto start = std::chrono::steady_clock::now();
  for (pid_t pid : pids) {
    int status = 0;
    while (waitpid(pid, &status, WNOHANG) == 0) {
      if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > 60) {
        for (pid_t p : pids) kill(p, SIGKILL);
        waitpid(pid, &status, 0);
        res.timed_out = true;
        break;
      }
      usleep(20000);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) res.exit_code = 1;
  }
  for (const auto& l : logs) {
    res.output += ReadTextFile(l);
    unlink(l.c_str());
  }
  return res;
}

TEST_F(MultiRank, TorchrunEnvGlooTcpStore) {
  tag_ = UniqueTag("vicreg-comm-torchrun");
  // A port from the ephemeral range that is free right now.
  int port = 0;
  for (int p = 29500 + getpid() % 2000; p < 65000 && port == 0; p += 7) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(p));
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) port = p;
    close(fd);
  }
  auto r = RunTorchrunStyle(tag_, "", port);
  ExpectAllPass(r, 2, "gloo");
}

TEST_F(MultiRank, TorchrunEnvGlooFileStore) {
  tag_ = UniqueTag("vicreg-comm-torchrun");
  auto r = RunTorchrunStyle(tag_, dir_ + "/rdzv", 1);
  ExpectAllPass(r, 2, "gloo");
}

// ---- failure handling -----------------------------------------------------------------------
// Rank 1 of 3 kills or stops itself after 5 all-reduces; the job must end non-zero in bounded time
// with a message naming the collective (and the rank), and leave no process behind.
constexpr int kTimeoutMs = 3000;

void ExpectBoundedFailure(const ProcessResult& r, const std::string& backend) {
  EXPECT_FALSE(r.timed_out) << "the job hung until the test's deadline:\n" << r.output;
  EXPECT_FALSE(r.ok()) << r.output;
  // mpirun startup (~3 s) + collective timeout (3 s) + probe grace (1 s) + teardown, with slack for CI.
  EXPECT_LT(r.seconds, 40.0) << r.output;
  EXPECT_NE(r.output.find("victim: raising"), std::string::npos) << r.output;
  EXPECT_TRUE(std::regex_search(r.output, std::regex(backend + " allreduce #[0-9]+"))) << r.output;
}

TEST_F(MultiRank, SigkilledRankEndsJobMpi) {
  auto r =
      Mpirun({"failure", "mpi", 3, {"--mode", "kill", "--victim", "1", "--timeout-ms", std::to_string(kTimeoutMs)}});
  ExpectBoundedFailure(r, "mpi");
  // Either mpirun noticed the death (and SIGTERMed the others, who report their collective) or
  // the survivors timed out and named the unresponsive rank.
  EXPECT_TRUE(r.output.find("process rank 1") != std::string::npos ||
              r.output.find("unresponsive rank(s): 1") != std::string::npos)
      << r.output;
}

TEST_F(MultiRank, SigkilledRankEndsJobGloo) {
  auto r =
      Mpirun({"failure", "gloo", 3, {"--mode", "kill", "--victim", "1", "--timeout-ms", std::to_string(kTimeoutMs)}});
  ExpectBoundedFailure(r, "gloo");
  EXPECT_TRUE(r.output.find("process rank 1") != std::string::npos ||
              r.output.find("unresponsive rank(s): 1") != std::string::npos)
      << r.output;
}

TEST_F(MultiRank, StoppedRankTimesOutMpi) {
  auto r =
      Mpirun({"failure", "mpi", 3, {"--mode", "stop", "--victim", "1", "--timeout-ms", std::to_string(kTimeoutMs)}});
  ExpectBoundedFailure(r, "mpi");
  EXPECT_NE(r.output.find("did not complete within 3.0 s"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("unresponsive rank(s): 1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("alive, waiting in mpi allreduce"), std::string::npos) << r.output;
}

TEST_F(MultiRank, StoppedRankTimesOutGloo) {
  auto r =
      Mpirun({"failure", "gloo", 3, {"--mode", "stop", "--victim", "1", "--timeout-ms", std::to_string(kTimeoutMs)}});
  ExpectBoundedFailure(r, "gloo");
  EXPECT_NE(r.output.find("unresponsive rank(s): 1"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace vicreg::testing
