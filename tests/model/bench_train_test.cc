// vicreg_bench train: a tiny run prints one JSON line with the documented fields; bad flags exit 2.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "tests/model/model_test_util.h"

namespace {

using vicreg::testing::RunProcess;

const std::string kBench = std::string(VICREG_BINARY_DIR) + "/worker/bench/vicreg_bench";

TEST(BenchTrain, TinyRunPrintsOneJsonLine) {
  auto r =
      RunProcess({kBench,      "train", "--model",        "custom", "--patch-size", "4",  "--embed-dim",       "16",
                  "--depth",   "2",     "--heads",        "2",      "--image-size", "8",  "--batch-size",      "6",
                  "--steps",   "2",     "--warmup-steps", "1",      "--proj-dim",   "32", "--proj-hidden-dim", "24",
                  "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::istringstream lines(r.output);
  std::string line, json_line;
  int n = 0;
  while (std::getline(lines, line))
    if (!line.empty() && line[0] == '{') json_line = line, ++n;
  ASSERT_EQ(n, 1) << r.output;
  auto j = nlohmann::json::parse(json_line);
  EXPECT_EQ(j["bench"], "train");
  EXPECT_EQ(j["impl"], "cpp");
  EXPECT_EQ(j["batch_size"], 6);
  EXPECT_EQ(j["threads"], 1);
  EXPECT_EQ(j["embed_dim"], 16);
  EXPECT_GT(j["images_per_s"].get<double>(), 0.0);
  EXPECT_GT(j["step_ms"].get<double>(), 0.0);
  EXPECT_TRUE(std::isfinite(j["loss_last"].get<double>()));
}

TEST(BenchTrain, InvalidInputExitsTwoNamingTheFlag) {
  auto r = RunProcess({kBench, "train", "--model", "vit_giant"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("vit_giant"), std::string::npos) << r.output;
  r = RunProcess({kBench, "train", "--model", "vit_small", "--image-size", "100", "--steps", "1"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("image_size"), std::string::npos) << r.output;
  r = RunProcess({kBench, "train", "--batch-size", "1"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--batch-size"), std::string::npos) << r.output;
  r = RunProcess({kBench, "train", "--no-such-flag"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
}

}  // namespace
