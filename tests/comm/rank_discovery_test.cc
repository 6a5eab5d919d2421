// Rank discovery from synthetic launcher environments (OpenMPI, PMIx/Slurm, torchrun, none).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/errors.h"
#include "worker/comm/communicator.h"

namespace vicreg::comm {
namespace {

using Env = std::vector<std::string>;

// Expects a UserError whose message contains every fragment.
void ExpectUserError(const Env& env, const std::vector<std::string>& fragments) {
  try {
    DiscoverRankFromEnv(env);
    FAIL() << "expected UserError";
  } catch (const UserError& e) {
    for (const auto& f : fragments) EXPECT_NE(std::string(e.what()).find(f), std::string::npos) << e.what();
  }
}

TEST(RankDiscovery, NoLauncherIsSingleProcess) {
  auto r = DiscoverRankFromEnv({"HOME=/root", "PATH=/usr/bin"});
  EXPECT_EQ(r.source, "none");
  EXPECT_EQ(r.rank, 0);
  EXPECT_EQ(r.world_size, 1);
  EXPECT_EQ(r.local_rank, 0);
  EXPECT_EQ(r.local_world_size, 1);
}

TEST(RankDiscovery, OpenMpi) {
  auto r = DiscoverRankFromEnv({"OMPI_COMM_WORLD_RANK=3", "OMPI_COMM_WORLD_SIZE=8", "OMPI_COMM_WORLD_LOCAL_RANK=1",
                                "OMPI_COMM_WORLD_LOCAL_SIZE=2", "PMIX_RANK=3", "PMIX_NAMESPACE=1607663617"});
  EXPECT_EQ(r.source, "openmpi");
  EXPECT_EQ(r.rank, 3);
  EXPECT_EQ(r.world_size, 8);
  EXPECT_EQ(r.local_rank, 1);
  EXPECT_EQ(r.local_world_size, 2);
  EXPECT_EQ(r.job_token, "1607663617");
}

TEST(RankDiscovery, OpenMpiWinsOverOuterSlurmAllocation) {
  // mpirun inside an sbatch script: the batch step's SLURM_PROCID=0 describes the allocation.
  auto r = DiscoverRankFromEnv({"OMPI_COMM_WORLD_RANK=1", "OMPI_COMM_WORLD_SIZE=2", "OMPI_COMM_WORLD_LOCAL_RANK=1",
                                "OMPI_COMM_WORLD_LOCAL_SIZE=2", "SLURM_PROCID=0", "SLURM_NTASKS=2", "SLURM_JOB_ID=7"});
  EXPECT_EQ(r.source, "openmpi");
  EXPECT_EQ(r.rank, 1);
}

TEST(RankDiscovery, OpenMpiErrorsNameTheVariable) {
  ExpectUserError({"OMPI_COMM_WORLD_RANK=2", "OMPI_COMM_WORLD_SIZE=2", "OMPI_COMM_WORLD_LOCAL_RANK=0",
                   "OMPI_COMM_WORLD_LOCAL_SIZE=1"},
                  {"OMPI_COMM_WORLD_RANK=2", "OMPI_COMM_WORLD_SIZE=2", "0..1"});
  ExpectUserError({"OMPI_COMM_WORLD_RANK=x1", "OMPI_COMM_WORLD_SIZE=2"},
                  {"OMPI_COMM_WORLD_RANK", "x1", "not an integer"});
  ExpectUserError({"OMPI_COMM_WORLD_RANK=-1", "OMPI_COMM_WORLD_SIZE=2"}, {"OMPI_COMM_WORLD_RANK=-1", ">= 0"});
  ExpectUserError({"OMPI_COMM_WORLD_RANK=0"}, {"OMPI_COMM_WORLD_SIZE"});
  ExpectUserError({"OMPI_COMM_WORLD_SIZE=2"}, {"OMPI_COMM_WORLD_RANK"});
  ExpectUserError({"OMPI_COMM_WORLD_RANK=1", "OMPI_COMM_WORLD_SIZE=2", "OMPI_COMM_WORLD_LOCAL_RANK=1",
                   "OMPI_COMM_WORLD_LOCAL_SIZE=2", "PMIX_RANK=0"},
                  {"PMIX_RANK=0", "OMPI_COMM_WORLD_RANK=1", "inconsistent"});
  ExpectUserError({"OMPI_COMM_WORLD_RANK=1", "OMPI_COMM_WORLD_SIZE=4", "OMPI_COMM_WORLD_LOCAL_RANK=2",
                   "OMPI_COMM_WORLD_LOCAL_SIZE=2"},
                  {"OMPI_COMM_WORLD_LOCAL_RANK=2", "OMPI_COMM_WORLD_LOCAL_SIZE=2"});
  ExpectUserError({"OMPI_COMM_WORLD_RANK=0", "OMPI_COMM_WORLD_SIZE=2", "OMPI_COMM_WORLD_LOCAL_RANK=0",
                   "OMPI_COMM_WORLD_LOCAL_SIZE=3"},
                  {"OMPI_COMM_WORLD_LOCAL_SIZE"});
}

TEST(RankDiscovery, SrunWithPmix) {
  auto r = DiscoverRankFromEnv({"PMIX_RANK=5", "PMIX_NAMESPACE=slurm.pmix.42.0", "SLURM_PROCID=5", "SLURM_STEP_ID=0",
                                "SLURM_STEP_NUM_TASKS=6", "SLURM_NTASKS=6", "SLURM_LOCALID=1",
                                "SLURM_STEP_TASKS_PER_NODE=2(x3)", "SLURM_NODEID=2", "SLURM_JOB_ID=42"});
  EXPECT_EQ(r.source, "pmix");
  EXPECT_EQ(r.rank, 5);
  EXPECT_EQ(r.world_size, 6);
  EXPECT_EQ(r.local_rank, 1);
  EXPECT_EQ(r.local_world_size, 2);
  EXPECT_EQ(r.job_token, "slurm.pmix.42.0");
}

TEST(RankDiscovery, SrunWithoutPmixUnevenNodes) {
  auto r = DiscoverRankFromEnv({"SLURM_PROCID=6", "SLURM_STEP_ID=3", "SLURM_NTASKS=7", "SLURM_LOCALID=0",
                                "SLURM_STEP_TASKS_PER_NODE=3(x2),1", "SLURM_NODEID=2", "SLURM_JOB_ID=9"});
  EXPECT_EQ(r.source, "slurm");
  EXPECT_EQ(r.rank, 6);
  EXPECT_EQ(r.world_size, 7);
  EXPECT_EQ(r.local_world_size, 1);
  EXPECT_EQ(r.job_token, "slurm.9.3");
}

TEST(RankDiscovery, SlurmBatchScriptIsNotARank) {
  // Inside an sbatch script (no step id): the process is not one of the job's tasks.
  auto r = DiscoverRankFromEnv({"SLURM_PROCID=0", "SLURM_NTASKS=4", "SLURM_JOB_ID=9", "SLURM_NNODES=1"});
  EXPECT_EQ(r.source, "none");
  EXPECT_EQ(r.world_size, 1);
}

TEST(RankDiscovery, SlurmErrorsNameTheVariable) {
  ExpectUserError({"PMIX_RANK=1", "SLURM_PROCID=0", "SLURM_STEP_ID=0", "SLURM_NTASKS=2", "SLURM_LOCALID=0"},
                  {"PMIX_RANK=1", "SLURM_PROCID=0"});
  ExpectUserError({"SLURM_PROCID=4", "SLURM_STEP_ID=0", "SLURM_STEP_NUM_TASKS=4", "SLURM_LOCALID=0"},
                  {"SLURM_PROCID=4", "SLURM_STEP_NUM_TASKS=4"});
  ExpectUserError({"PMIX_RANK=0"}, {"PMIX_RANK", "world size is unknown"});
  ExpectUserError(
      {"SLURM_PROCID=0", "SLURM_STEP_ID=0", "SLURM_NTASKS=2", "SLURM_LOCALID=0", "SLURM_STEP_TASKS_PER_NODE=2(3)"},
      {"SLURM_STEP_TASKS_PER_NODE", "2(3)"});
  ExpectUserError(
      {"SLURM_PROCID=0", "SLURM_STEP_ID=0", "SLURM_NTASKS=2", "SLURM_LOCALID=2", "SLURM_STEP_TASKS_PER_NODE=2"},
      {"SLURM_LOCALID=2", "SLURM_STEP_TASKS_PER_NODE=2"});
}

TEST(RankDiscovery, Torchrun) {
  auto r = DiscoverRankFromEnv({"RANK=2", "WORLD_SIZE=4", "LOCAL_RANK=0", "LOCAL_WORLD_SIZE=2", "MASTER_ADDR=10.0.0.1",
                                "MASTER_PORT=29500", "TORCHELASTIC_RUN_ID=abc"});
  EXPECT_EQ(r.source, "torchrun");
  EXPECT_EQ(r.rank, 2);
  EXPECT_EQ(r.world_size, 4);
  EXPECT_EQ(r.local_rank, 0);
  EXPECT_EQ(r.local_world_size, 2);
  EXPECT_EQ(r.master_addr, "10.0.0.1");
  EXPECT_EQ(r.master_port, 29500);
  EXPECT_EQ(r.job_token, "abc");
}

TEST(RankDiscovery, TorchrunErrorsNameTheVariable) {
  ExpectUserError({"RANK=0"}, {"WORLD_SIZE"});
  ExpectUserError({"RANK=3", "WORLD_SIZE=2", "LOCAL_RANK=0"}, {"RANK=3", "WORLD_SIZE=2"});
  ExpectUserError({"RANK=1", "WORLD_SIZE=2"}, {"LOCAL_RANK"});
  ExpectUserError({"RANK=0", "WORLD_SIZE=2", "LOCAL_RANK=0", "MASTER_ADDR=h", "MASTER_PORT=70000"},
                  {"MASTER_PORT=70000", "1..65535"});
  ExpectUserError({"RANK=0", "WORLD_SIZE=2", "LOCAL_RANK=0", "MASTER_ADDR=h"}, {"MASTER_PORT"});
  ExpectUserError({"RANK=0", "WORLD_SIZE=0"}, {"WORLD_SIZE=0", ">= 1"});
}

TEST(DeviceForRank, CpuAndCuda) {
  RankInfo r;
  r.local_rank = 1;
  r.local_world_size = 2;
  EXPECT_EQ(DeviceForRank(r, "cpu"), "cpu");
  EXPECT_EQ(DeviceForRank(r, "cuda"), "cuda:1");
  EXPECT_EQ(DeviceForRank(r, "cuda", 2), "cuda:1");
  try {
    DeviceForRank(r, "cuda", 1);
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("needs cuda:1 but only 1 CUDA device"), std::string::npos) << e.what();
  }
  EXPECT_THROW(DeviceForRank(r, "cuda", 0), UserError);
  EXPECT_THROW(DeviceForRank(r, "tpu"), UserError);
}

}  // namespace
}  // namespace vicreg::comm
