// Regression tests for defects of the adversarial review (issue 17) in small server pieces: the
// loopback check parses addresses, the fd-closing fallback reaches the descriptor limit, and
// vicregctl's terminal output cannot carry escape sequences.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "server/cli/format.h"
#include "server/coordinator_options.h"
#include "server/process.h"

namespace vicreg::server {
namespace {

TEST(HardeningTest, LoopbackHostIsParsedNotMatchedByPrefix) {
  for (const char* h : {"127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]", "::ffff:127.0.0.1"})
    EXPECT_TRUE(IsLoopbackHost(h)) << h;
  for (const char* h : {"127.example.org", "127.0.0.1.nip.io", "0.0.0.0", "::", "10.0.0.1", "128.0.0.1",
                        "::ffff:10.0.0.1", "", "127.", "localhost.evil.org"})
    EXPECT_FALSE(IsLoopbackHost(h)) << h;
}

// The fallback for kernels without close_range(2) must close descriptors up to the soft limit,
// not only below 4096 (a coordinator with LimitNOFILE=65536 holds sockets above it).
TEST(HardeningTest, CloseFdsFallbackReachesTheDescriptorLimit) {
  rlimit rl{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 5001) GTEST_SKIP() << "hard RLIMIT_NOFILE " << rl.rlim_max;
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    rlimit raised = rl;
    raised.rlim_cur = 8192;
    if (rl.rlim_max != RLIM_INFINITY && raised.rlim_cur > rl.rlim_max) raised.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) != 0) _exit(3);
    if (dup2(1, 5000) != 5000) _exit(4);
    CloseFdsFrom(3, /*use_close_range=*/false);
    const bool closed = fcntl(5000, F_GETFD) == -1 && errno == EBADF;
    _exit(closed ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "descriptor 5000 survived the fallback (1), or setup failed (3, 4)";
}

TEST(HardeningTest, TerminalSafeRemovesEscapeSequencesAndControls) {
  using cli::TerminalSafe;
  EXPECT_EQ(TerminalSafe("plain text, unicode: \xc3\xa9\xe2\x9c\x93\nline 2\ttab"),
            "plain text, unicode: \xc3\xa9\xe2\x9c\x93\nline 2\ttab");
  EXPECT_EQ(TerminalSafe("a\x1b[31mred\x1b[0m b"), "ared b");
  EXPECT_EQ(TerminalSafe("x\x1b]0;window title\x07y"), "xy");
  EXPECT_EQ(TerminalSafe("x\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\y"), "xlinky");
  EXPECT_EQ(TerminalSafe("\x1b" "c\x1b[2J\x1b[H"), "");
  EXPECT_EQ(TerminalSafe("cr\rbs\bbel\adel\x7f"), "cr?bs?bel?del?");
  EXPECT_EQ(TerminalSafe("c1 csi \xc2\x9b" "31m!"), "c1 csi !");
  EXPECT_EQ(TerminalSafe("two\nlines", /*keep_newlines=*/false), "two lines");
  EXPECT_EQ(TerminalSafe("unterminated \x1b[12"), "unterminated ");
  EXPECT_EQ(TerminalSafe("\x1b"), "");
}

}  // namespace
}  // namespace vicreg::server
