// Regression tests for defects of the adversarial review (issue 17), with real processes:
// a second vicreg_coordinator on a port in use is refused ("address in use", not a shared port
// through SO_REUSEPORT), a host name that merely starts with "127." is not loopback, and
// vicregctl prints client-controlled text (a cancel reason) without terminal escape sequences.
#include <gtest/gtest.h>

#include <string>

#include "server/process.h"
#include "tests/server/test_util.h"

namespace vicreg {
namespace {

using testutil::Coordinator;
using testutil::TempDir;

TEST(HardeningTest, SecondCoordinatorOnAPortInUseIsRefused) {
  TempDir dir("hard");
  auto first = std::make_unique<Coordinator>(dir.path() + "/one", std::vector<std::string>{"--launcher", "none"});
  first->Start();
  const std::string addr = first->address();  // 127.0.0.1:<port>
  server::CommandResult r =
      server::RunCommand({testutil::CoordinatorBinary(), "--state-dir", dir.path() + "/two", "--listen", addr,
                          "--metrics-port", "off", "--launcher", "none"},
                         20);
  EXPECT_FALSE(r.timed_out) << "the second coordinator kept serving on " << addr << " (SO_REUSEPORT)";
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("cannot listen on " + addr), std::string::npos) << r.err;
  // The first one still answers.
  EXPECT_EQ(first->Ctl({"list"}).exit_code, 0);
}

TEST(HardeningTest, HostNameStartingWith127NeedsAToken) {
  TempDir dir("hard");
  server::CommandResult r =
      server::RunCommand({testutil::CoordinatorBinary(), "--state-dir", dir.path() + "/s", "--listen",
                          "127.example.org:0", "--metrics-port", "off", "--launcher", "none"},
                         20);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("bearer token is required"), std::string::npos) << r.err;
}

TEST(HardeningTest, VicregctlStripsEscapeSequencesFromServerText) {
  TempDir dir("hard");
  Coordinator c(dir.path() + "/state", {"--launcher", "none"});
  c.Start();
  const std::string job = dir.path() + "/job.yaml";
  testutil::WriteText(job, "name: esc\nresources: {ranks: 1, device: cpu}\n");
  ASSERT_EQ(c.Ctl({"submit", job}).exit_code, 0);
  // A client-chosen reason lands in last_error and in the job's events.
  const std::string reason = "bye\x1b]0;pwned\x07\x1b[2J\x1b[31mred\r";
  ASSERT_EQ(c.Ctl({"cancel", "job-000001", "--reason", reason}).exit_code, 0);
  for (const auto& args : std::vector<std::vector<std::string>>{{"status", "job-000001"},
                                                                {"watch", "job-000001"},
                                                                {"list", "--all"}}) {
    server::CommandResult r = c.Ctl(args);
    const std::string both = r.out + r.err;
    EXPECT_EQ(both.find('\x1b'), std::string::npos) << args[0] << ":\n" << both;
    EXPECT_EQ(both.find('\x07'), std::string::npos) << args[0] << ":\n" << both;
    EXPECT_EQ(both.find('\r'), std::string::npos) << args[0] << ":\n" << both;
    if (args[0] == "watch") {
      EXPECT_NE(both.find("byered?"), std::string::npos) << args[0] << ":\n" << both;
    }
  }
}

}  // namespace
}  // namespace vicreg
