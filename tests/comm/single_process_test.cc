// Single-process pieces of worker/comm: the factory's validation, world-size-1 backends,
// GatherWithGrad / GradientSynchronizer degenerate cases, the termination reporter.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <torch/autograd.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/errors.h"
#include "worker/comm/collective_tracker.h"
#include "worker/comm/communicator.h"
#include "worker/comm/gather.h"
#include "worker/comm/grad_sync.h"

namespace vicreg::comm {
namespace {

std::string UserErrorOf(const RankInfo& info, const CommunicatorOptions& o) {
  try {
    CreateCommunicator(info, o);
  } catch (const UserError& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(CommunicatorFactory, ValidatesBackendAndDevice) {
  RankInfo one;
  CommunicatorOptions o;
  o.backend = "mpii";
  EXPECT_NE(
      UserErrorOf(one, o).find("resources.backend='mpii' is invalid: valid values are auto, single, mpi, gloo, nccl"),
      std::string::npos);
  o.backend = "auto";
  o.device = "gpu";
  EXPECT_NE(UserErrorOf(one, o).find("resources.device='gpu'"), std::string::npos);
  o.device = "cpu";
  o.timeout = std::chrono::milliseconds(0);
  EXPECT_NE(UserErrorOf(one, o).find("collective_timeout_s"), std::string::npos);

  RankInfo two;
  two.world_size = 2;
  two.rank = 1;
  two.source = "openmpi";
  CommunicatorOptions single;
  single.backend = "single";
  EXPECT_NE(UserErrorOf(two, single).find("rank 1 of 2"), std::string::npos);

  CommunicatorOptions nccl_cpu;
  nccl_cpu.backend = "nccl";
  const std::string msg = UserErrorOf(one, nccl_cpu);
  // Either not built here, or built but refused on cpu: both name the field.
  EXPECT_NE(msg.find("resources.backend=nccl"), std::string::npos) << msg;

  CommunicatorOptions mpi_cuda;
  mpi_cuda.backend = "mpi";
  mpi_cuda.device = "cuda";
  EXPECT_NE(UserErrorOf(one, mpi_cuda).find("CPU tensors only"), std::string::npos);
}

TEST(CommunicatorFactory, AutoOnOneRankIsSingle) {
  auto comm = CreateCommunicator(RankInfo{}, CommunicatorOptions{});
  EXPECT_EQ(comm->backend(), "single");
  EXPECT_EQ(comm->world_size(), 1);
  at::Tensor t = at::arange(0, 5, at::kFloat);
  comm->AllReduceSum(t);
  EXPECT_TRUE(at::equal(t, at::arange(0, 5, at::kFloat)));
  at::Tensor g = comm->AllGather(t.view({5, 1}));
  EXPECT_TRUE(at::equal(g, t.view({5, 1})));
  g.fill_(0);
  EXPECT_EQ(t[1].item<float>(), 1.f) << "AllGather output must not alias its input";
  comm->Broadcast(t, 0);
  comm->Barrier();
  EXPECT_TRUE(comm->AllReduceSumAsync(t)->Test());
}

TEST(CommunicatorFactory, GlooWorldOneInProcess) {
  const auto built = AvailableBackends();
  if (std::find(built.begin(), built.end(), "gloo") == built.end()) GTEST_SKIP() << "gloo not built";
  char dir[] = "/tmp/vicreg_gloo_XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  RankInfo one;
  one.job_token = "unit-" + std::to_string(getpid());
  CommunicatorOptions o;
  o.backend = "gloo";
  o.rendezvous_dir = dir;
  o.report_termination = false;
  auto comm = CreateCommunicator(one, o);
  EXPECT_EQ(comm->backend(), "gloo");
  at::Tensor t = at::full({3}, 2.f);
  comm->AllReduceSum(t);
  EXPECT_TRUE(at::equal(t, at::full({3}, 2.f)));
  EXPECT_TRUE(at::equal(comm->AllGather(t.view({3, 1})), t.view({3, 1})));
  comm.reset();
  std::string cmd = std::string("rm -rf ") + dir;
  (void)std::system(cmd.c_str());
}

TEST(GatherWithGrad, WorldOneIsIdentityWithPlainAutograd) {
  auto comm = CreateCommunicator(RankInfo{}, CommunicatorOptions{});
  at::Tensor z = at::randn({4, 3}).requires_grad_(true);
  at::Tensor all = GatherWithGrad(z, *comm);
  (all * all).sum().backward();
  EXPECT_TRUE(at::allclose(z.grad(), 2 * z.detach()));
  at::Tensor nd = GatherNoGrad(z, *comm);
  EXPECT_FALSE(nd.requires_grad());
  EXPECT_TRUE(at::equal(nd, z.detach()));
}

TEST(GradientSynchronizer, WorldOneLeavesGradientsAlone) {
  auto comm = CreateCommunicator(RankInfo{}, CommunicatorOptions{});
  at::Tensor p = at::ones({5}).requires_grad_(true);
  GradientSynchronizer sync({p}, comm, GradSyncOptions{});
  (p * 3).sum().backward();
  sync.Finish();
  EXPECT_TRUE(at::allclose(p.grad(), at::full({5}, 3.f)));
  EXPECT_EQ(sync.num_buckets(), 0);
}

struct Tiny : torch::nn::Module {
  Tiny() { fc = register_module("fc", torch::nn::Linear(3, 2)); }
  torch::nn::Linear fc{nullptr};
};

TEST(StateChecksum, DetectsAnyByteChangeAndIsStable) {
  Tiny a;
  auto s1 = StateChecksum(a);
  auto s2 = StateChecksum(a);
  ASSERT_EQ(s1.size(), 2u);
  EXPECT_EQ(s1[0].name, "param:fc.weight");
  EXPECT_EQ(s1[1].name, "param:fc.bias");
  EXPECT_EQ(s1[0].hash, s2[0].hash);
  {
    at::NoGradGuard ng;
    a.fc->weight[1][2] += 1e-7;  // one ulp-scale change
  }
  auto s3 = StateChecksum(a);
  EXPECT_NE(s1[0].hash, s3[0].hash);
  EXPECT_EQ(s1[1].hash, s3[1].hash);
  // Swapping two values changes the checksum (order-sensitive).
  {
    at::NoGradGuard ng;
    a.fc->bias.copy_(at::tensor({1.f, 2.f}));
  }
  auto h12 = StateChecksum(a)[1].hash;
  {
    at::NoGradGuard ng;
    a.fc->bias.copy_(at::tensor({2.f, 1.f}));
  }
  EXPECT_NE(h12, StateChecksum(a)[1].hash);
}

// The reporter runs in a forked child that is "stuck" in a collective when SIGTERM arrives.
TEST(TerminationReporter, NamesTheCollectiveOnSigterm) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(fds[1], STDERR_FILENO);
    close(fds[0]);
    InstallTerminationReporter(1, 3);
    CollectiveDesc d;
    d.backend = "mpi";
    d.op = "allgather";
    d.seq = 42;
    d.bytes = 4096;
    CollectiveScope scope(d);
    raise(SIGTERM);
    _exit(0);  // not reached: the reporter re-raises with the default action
  }
  close(fds[1]);
  std::string out;
  char buf[512];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) << "status " << status;
  EXPECT_NE(out.find("[rank 1/3] terminated by signal 15 while waiting"), std::string::npos) << out;
  EXPECT_NE(out.find("in collective mpi allgather #42 (4096 bytes)"), std::string::npos) << out;
}

// With a graceful-stop handler installed first, the reporter chains to it (the process lives on)
// and speaks only when the rank has been stuck in a collective for a while.
void GracefulHandler(int) {
  const char msg[] = "graceful stop requested\n";
  ssize_t ignored = write(STDERR_FILENO, msg, sizeof(msg) - 1);
  (void)ignored;
}

std::string RunChainedChild(int wait_ms, int* exit_status) {
  int fds[2];
  if (pipe(fds) != 0) return "";
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], STDERR_FILENO);
    close(fds[0]);
    signal(SIGTERM, GracefulHandler);
    InstallTerminationReporter(0, 2);
    CollectiveDesc d;
    d.backend = "gloo";
    d.op = "allreduce";
    d.seq = 9;
    d.bytes = 64;
    {
      CollectiveScope scope(d);
      usleep(static_cast<useconds_t>(wait_ms) * 1000);
      raise(SIGTERM);
    }
    _exit(7);  // still alive: the graceful handler only took note
  }
  close(fds[1]);
  std::string out;
  char buf[512];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  waitpid(pid, exit_status, 0);
  return out;
}

TEST(TerminationReporter, ChainsToAnEarlierHandler) {
  int status = 0;
  std::string quick = RunChainedChild(0, &status);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 7) << status;
  EXPECT_NE(quick.find("graceful stop requested"), std::string::npos) << quick;
  EXPECT_EQ(quick.find("received signal"), std::string::npos) << quick;
  std::string stuck = RunChainedChild(700, &status);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 7) << status;
  EXPECT_NE(stuck.find("[rank 0/2] received signal 15 while waiting"), std::string::npos) << stuck;
  EXPECT_NE(stuck.find("gloo allreduce #9 (64 bytes)"), std::string::npos) << stuck;
  EXPECT_NE(stuck.find("graceful stop requested"), std::string::npos) << stuck;
}

}  // namespace
}  // namespace vicreg::comm
