// logging: rank prefix, file sink, re-initialization, levels.
#include "common/logging.h"

#include <gtest/gtest.h>

#include <string>

#include "common/errors.h"
#include "tests/common/test_util.h"

namespace vicreg {
namespace {

using testing_util::ReadText;
using testing_util::TempDir;

TEST(Logging, RankPrefixInFile) {
  TempDir tmp_dir("log");
  const std::string dir = tmp_dir.path();
  std::string file = dir + "/logs/rank-1.log";  // logs/ is created
  InitLogging({/*rank=*/1, /*world_size=*/4, file, "info", /*console=*/false});
  spdlog::info("hello {}", 42);
  spdlog::debug("not shown at info");
  spdlog::default_logger()->flush();
  std::string text = ReadText(file);
  EXPECT_NE(text.find("] [info] [rank 1/4] hello 42\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("not shown"), std::string::npos) << text;
  // Timestamp first: "[YYYY-MM-DD HH:MM:SS.mmm]".
  ASSERT_GE(text.size(), 25u);
  EXPECT_EQ(text[0], '[');
  EXPECT_EQ(text[5], '-');
  EXPECT_EQ(text[24], ']');
}

TEST(Logging, WarnIsFlushedWithoutAsking) {
  TempDir tmp_dir("log");
  const std::string dir = tmp_dir.path();
  std::string file = dir + "/w.log";
  InitLogging({0, 2, file, "info", false});
  spdlog::warn("collapse risk: min_std {:.3f}", 0.005);
  EXPECT_NE(ReadText(file).find("[warning] [rank 0/2] collapse risk: min_std 0.005"), std::string::npos)
      << ReadText(file);
}

TEST(Logging, ReinitReplacesLoggerAndNoRankPrefixWhenNotARank) {
  TempDir tmp_dir("log");
  const std::string dir = tmp_dir.path();
  std::string first = dir + "/first.log", second = dir + "/second.log";
  InitLogging({-1, 1, first, "debug", false});
  spdlog::debug("before rank is known");
  InitLogging({3, 8, second, "info", false});  // closes `first`
  spdlog::info("after");
  spdlog::default_logger()->flush();
  std::string a = ReadText(first), b = ReadText(second);
  EXPECT_NE(a.find("] [debug] before rank is known"), std::string::npos) << a;
  EXPECT_EQ(a.find("[rank"), std::string::npos) << a;
  EXPECT_EQ(a.find("after"), std::string::npos) << a;
  EXPECT_NE(b.find("[rank 3/8] after"), std::string::npos) << b;
  EXPECT_EQ(b.find("before"), std::string::npos) << b;
}

TEST(Logging, BadLevelAndUnwritableFile) {
  try {
    InitLogging({0, 1, "", "verbose", false});
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("\"verbose\""), std::string::npos) << e.what();
  }
  TempDir tmp_dir("log");
  const std::string dir = tmp_dir.path();
  testing_util::WriteText(dir + "/blocker", "x");
  EXPECT_THROW(InitLogging({0, 1, dir + "/blocker/rank-0.log", "info", false}), RuntimeFailure);
}

}  // namespace
}  // namespace vicreg
