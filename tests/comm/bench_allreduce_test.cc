// vicreg_bench allreduce --gather-loss under mpirun -np 1/2/3: one JSON line per
// train.vicreg.global_stats mode, and the bytes the loss's collectives move per step as counted
// at the communicator: constant in the world size for allreduce, growing with it for gather, and
// equal to the closed form the benchmark reports next to them.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/comm/subprocess.h"

namespace vicreg::testing {
namespace {

// mode -> the JSON line of that mode.
std::map<std::string, nlohmann::json> RunBench(int np, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> argv = {"mpirun",
                                   "--allow-run-as-root",
                                   "--oversubscribe",
                                   "-np",
                                   std::to_string(np),
                                   VICREG_BENCH,
                                   "allreduce",
                                   "--gather-loss",
                                   "--backend",
                                   np == 1 ? "single" : "mpi",
                                   "--model",
                                   "custom",
                                   "--patch-size",
                                   "4",
                                   "--embed-dim",
                                   "16",
                                   "--depth",
                                   "1",
                                   "--heads",
                                   "2",
                                   "--image-size",
                                   "8",
                                   "--proj-dim",
                                   "24",
                                   "--proj-hidden-dim",
                                   "16",
                                   "--batch-per-rank",
                                   "4",
                                   "--steps",
                                   "1",
                                   "--warmup",
                                   "1",
                                   "--threads",
                                   "1"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto r = RunProcess(argv, 120, {"OMPI_MCA_rmaps_base_oversubscribe=1"});
  EXPECT_TRUE(r.ok()) << r.output;
  std::map<std::string, nlohmann::json> out;
  std::istringstream lines(r.output);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] != '{') continue;
    auto j = nlohmann::json::parse(line);
    out[j["global_stats"].get<std::string>()] = j;
  }
  return out;
}

TEST(BenchAllreduce, LossBytesAreConstantInTheWorldSizeForAllReduceOnly) {
  const double P = 24, B = 4;
  std::map<int, std::map<std::string, nlohmann::json>> runs;
  for (int np : {1, 2, 3}) {
    runs[np] = RunBench(np);
    ASSERT_EQ(runs[np].size(), 2u) << "np " << np;
  }
  for (int np : {1, 2, 3}) {
    const auto& ar = runs[np]["allreduce"];
    const auto& ga = runs[np]["gather"];
    EXPECT_EQ(ar["world_size"], np);
    EXPECT_EQ(ar["global_batch"], 4 * np);
    EXPECT_TRUE(std::isfinite(ar["loss_last"].get<double>()));
    EXPECT_TRUE(std::isfinite(ga["loss_last"].get<double>()));
    // Counted at the communicator == the closed form.
    EXPECT_DOUBLE_EQ(ar["loss_payload_bytes"].get<double>(),
                     ar["model_bytes"]["allreduce_payload_bytes"].get<double>());
    EXPECT_DOUBLE_EQ(ga["loss_payload_bytes"].get<double>(), ga["model_bytes"]["gather_payload_bytes"].get<double>());
    EXPECT_NEAR(ar["loss_bus_bytes"].get<double>(), ar["model_bytes"]["allreduce_bus_bytes"].get<double>(), 1e-6);
    EXPECT_NEAR(ga["loss_bus_bytes"].get<double>(), ga["model_bytes"]["gather_bus_bytes"].get<double>(), 1e-6);
    if (np == 1) {
      EXPECT_EQ(ar["loss_collective_calls"], 0);  // one rank: no collective in either mode
      EXPECT_EQ(ga["loss_collective_calls"], 0);
    } else {
      EXPECT_EQ(ar["loss_collective_calls"], 2);  // [2P + 1] sums and [2, P, P] Gram matrices, nothing in backward
      EXPECT_EQ(ga["loss_collective_calls"], 2);  // the all-gather and its backward all-reduce
      EXPECT_DOUBLE_EQ(ar["loss_payload_bytes"].get<double>(), 4 * (2 * P + 1 + 2 * P * P));
      EXPECT_DOUBLE_EQ(ga["loss_payload_bytes"].get<double>(), 4 * 2 * (np * B * 2 * P));
    }
  }
  EXPECT_EQ(runs[2]["allreduce"]["loss_payload_bytes"], runs[3]["allreduce"]["loss_payload_bytes"]);
  EXPECT_GT(runs[3]["gather"]["loss_payload_bytes"].get<double>(),
            runs[2]["gather"]["loss_payload_bytes"].get<double>());
}

TEST(BenchAllreduce, OneModeAndBadFlags) {
  auto only = RunBench(2, {"--global-stats", "allreduce"});
  EXPECT_EQ(only.size(), 1u);
  EXPECT_EQ(only.count("allreduce"), 1u);
  auto r = RunProcess({VICREG_BENCH, "allreduce", "--gather-loss", "--global-stats", "scatter"}, 60);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--global-stats"), std::string::npos) << r.output;
  r = RunProcess({VICREG_BENCH, "allreduce", "--gather-loss", "--batch-per-rank", "1"}, 60);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--batch-per-rank"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace vicreg::testing
