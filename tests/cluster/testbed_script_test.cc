// tests/cluster/testbed.sh without building a bed (no root needed): usage, input errors (exit 2,
// naming the bad value), status of a bed that is down (exit 1), shellcheck-clean.
#include <gtest/gtest.h>

#include <string>

#include "tests/comm/subprocess.h"

namespace vicreg::testing {
namespace {

const std::string kScript = VICREG_SOURCE_DIR "/tests/cluster/testbed.sh";

ProcessResult Bed(const std::vector<std::string>& args) {
  std::vector<std::string> a = {kScript};
  a.insert(a.end(), args.begin(), args.end());
  return RunProcess(a, 30);
}

TEST(TestBedScript, HelpDescribesEveryCommand) {
  auto r = Bed({"--help"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  for (const char* c : {"up", "down", "status", "exec NAME CMD", "reset", "node-kill", "node-cut", "ctld-stop",
                        "srun -N2 hostname", "VICREG_TESTBED_DIR"}) {
    EXPECT_NE(r.output.find(c), std::string::npos) << c << "\n" << r.output;
  }
}

TEST(TestBedScript, InputErrorsNameTheValueAndExit2) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  } cases[] = {
      {{"--frobnicate", "up"}, "unknown option '--frobnicate'"},
      {{"--nodes", "0", "up"}, "--nodes '0': expected 1..200"},
      {{"--nodes", "x", "up"}, "--nodes 'x': expected 1..200"},
      {{"--auth", "kerberos", "up"}, "--auth 'kerberos': expected munge or none"},
      {{"--subnet", "10.1", "up"}, "--subnet '10.1': expected three octets"},
      {{"--gpus", "9", "up"}, "--gpus '9': expected 0..8"},
      {{"--dir", "/nonexistent/bed", "exec", "node9", "true"}, "exec: unknown member 'node9'"},
      {{"--dir", "/nonexistent/bed", "node-kill", "ctl"}, "expected a node name node1..node3, got 'ctl'"},
      {{"launch"}, "unknown command 'launch'"},
      {{"--dir", "/tmp/" + std::string(60, 'x'), "status"}, "is too long (65 > 50 characters)"},
      {{}, "missing command"},
  };
  for (const auto& c : cases) {
    auto r = Bed(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.message << "\n" << r.output;
    EXPECT_NE(r.output.find(c.message), std::string::npos) << c.message << "\n" << r.output;
  }
}

TEST(TestBedScript, StatusOfABedThatIsDown) {
  auto r = Bed({"--dir", "/nonexistent/bed", "status"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("down (/nonexistent/bed)"), std::string::npos) << r.output;
  r = Bed({"--dir", "/nonexistent/bed", "exec", "node1", "true"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("member node1 is not running"), std::string::npos) << r.output;
}

TEST(TestBedScript, Shellcheck) {
  if (!RunProcess({"sh", "-c", "command -v shellcheck"}, 10).ok()) GTEST_SKIP() << "shellcheck is not installed";
  auto r =
      RunProcess({"shellcheck", "-S", "warning", kScript, VICREG_SOURCE_DIR "/deploy/slurm/vicreg-train.sbatch"}, 60);
  EXPECT_TRUE(r.ok()) << r.output;
}

}  // namespace
}  // namespace vicreg::testing
