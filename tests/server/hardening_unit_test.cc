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
#include "server/service.h"
#include "server/service_error.h"
#include "tests/server/test_util.h"

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
  EXPECT_EQ(TerminalSafe("\x1b"
                         "c\x1b[2J\x1b[H"),
            "");
  EXPECT_EQ(TerminalSafe("cr\rbs\bbel\adel\x7f"), "cr?bs?bel?del?");
  EXPECT_EQ(TerminalSafe("c1 csi \xc2\x9b"
                         "31m!"),
            "c1 csi !");
  EXPECT_EQ(TerminalSafe("two\nlines", /*keep_newlines=*/false), "two lines");
  EXPECT_EQ(TerminalSafe("unterminated \x1b[12"), "unterminated ");
  EXPECT_EQ(TerminalSafe("\x1b"), "");
}

// Bearer token in cleartext (issue 17): off loopback a token needs TLS unless explicitly allowed,
// and a non-loopback /metrics needs the token unless explicitly allowed.
TEST(HardeningTest, NonLoopbackListenersNeedTlsAndTheToken) {
  testutil::TempDir dir("opts");
  const std::string token = dir.path() + "/token";
  testutil::WriteText(token, "0123456789abcdef\n");
  auto message_of = [&](const std::string& text) {
    testutil::WriteText(dir.path() + "/c.yaml", text + "launcher: none\n");
    CoordinatorOptions o;
    try {
      LoadCoordinatorConfig(dir.path() + "/c.yaml", &o);
      FinalizeCoordinatorOptions(&o);
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)") + (MetricsNeedToken(o) ? " metrics need the token" : "");
  };
  const std::string tok = "token_file: " + token + "\n";
  EXPECT_NE(message_of("listen: 0.0.0.0:50051\n" + tok).find("TLS is required"), std::string::npos);
  EXPECT_NE(message_of("listen: 10.1.2.3:50051\n" + tok).find("allow_insecure_token"), std::string::npos);
  EXPECT_EQ(message_of("listen: 0.0.0.0:50051\nallow_insecure_token: true\nmetrics_listen: 127.0.0.1:0\n" + tok),
            "(accepted)");
  EXPECT_NE(
      message_of("allow_insecure_token: maybe\n").find("allow_insecure_token: expected true or false, got 'maybe'"),
      std::string::npos);
  // /metrics off loopback: the token, or an explicit opt-out.
  EXPECT_NE(message_of("metrics_listen: 0.0.0.0:9400\n").find("/metrics and /sd need the bearer token"),
            std::string::npos);
  EXPECT_EQ(message_of("metrics_listen: 0.0.0.0:9400\n" + tok), "(accepted) metrics need the token");
  EXPECT_EQ(message_of("metrics_listen: 0.0.0.0:9400\nallow_unauthenticated_metrics: true\n" + tok), "(accepted)");
  EXPECT_EQ(message_of("metrics_listen: 127.0.0.1:9400\n" + tok), "(accepted)");  // local scrapes need nothing
  EXPECT_NE(message_of("max_streams: 8\nmax_streams_per_client: 9\n").find("--max-streams-per-client"),
            std::string::npos);
  // Retention: deleting run dirs needs a retention period.
  EXPECT_NE(message_of("retention_delete_run_dirs: true\n").find("needs retention_days (--retention-days"),
            std::string::npos);
  EXPECT_EQ(message_of("retention_days: 30\nretention_delete_run_dirs: true\n"), "(accepted)");
}

// One server thread per stream, unbounded (issue 17): the limiter behind WatchJob/StreamLogs.
TEST(HardeningTest, StreamLimiterCapsTotalAndPerClient) {
  EXPECT_EQ(StreamLimiter::ClientOf("ipv4:127.0.0.1:5555"), "ipv4:127.0.0.1");
  EXPECT_EQ(StreamLimiter::ClientOf("ipv6:[::1]:5555"), "ipv6:[::1]");
  EXPECT_EQ(StreamLimiter::ClientOf("unix:/run/x.sock"), "unix:/run/x.sock");
  StreamLimiter l(3, 2);
  auto a1 = l.Acquire("a");
  auto a2 = l.Acquire("a");
  try {
    l.Acquire("a");
    ADD_FAILURE() << "a third stream of one client was accepted";
  } catch (const ServiceError& e) {
    EXPECT_EQ(e.code(), ErrorCode::kResourceExhausted);
    EXPECT_NE(std::string(e.what()).find("--max-streams-per-client"), std::string::npos) << e.what();
  }
  auto b1 = l.Acquire("b");
  EXPECT_THROW(l.Acquire("c"), ServiceError);  // 3 in total
  a1.reset();
  EXPECT_EQ(l.open(), 2);
  auto c1 = l.Acquire("c");
  EXPECT_EQ(l.open(), 3);
}

}  // namespace
}  // namespace vicreg::server
