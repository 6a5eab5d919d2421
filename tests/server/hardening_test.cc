// Regression tests for defects of the adversarial review (issue 17), with real processes:
// a second vicreg_coordinator on a port in use is refused ("address in use", not a shared port
// through SO_REUSEPORT), a host name that merely starts with "127." is not loopback, and
// vicregctl prints client-controlled text (a cancel reason) without terminal escape sequences;
// WatchJob/StreamLogs streams are capped (before: one server thread each, without limit); a
// loopback coordinator without a configured token requires the one it generates (before: any
// local user could submit, cancel and read logs).
#include <gtest/gtest.h>

#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

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

// Before: 2,000 WatchJob streams held 2,018 server threads and GetJob went from 2 ms to 333 ms.
// Now streams beyond --max-streams-per-client (per client address) or --max-streams are refused
// with RESOURCE_EXHAUSTED, and unary calls keep being served.
TEST(HardeningTest, StreamsAreCappedPerClientAndUnaryCallsStayServed) {
  TempDir dir("hard");
  Coordinator c(dir.path() + "/state",
                {"--launcher", "none", "--max-streams", "6", "--max-streams-per-client", "4"});
  c.Start();
  const std::string job = dir.path() + "/job.yaml";
  testutil::WriteText(job, "name: watched\nresources: {ranks: 1, device: cpu}\n");
  ASSERT_EQ(c.Ctl({"submit", job}).exit_code, 0);  // stays QUEUED (launcher none): its watches never end
  auto stub = c.Stub();
  struct Watch {
    std::unique_ptr<grpc::ClientContext> ctx;
    std::unique_ptr<grpc::ClientReader<v1::JobEvent>> reader;
  };
  auto open = [&](Watch* w) {
    w->reader.reset();  // before its context
    w->ctx = std::make_unique<grpc::ClientContext>();
    w->ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    v1::WatchJobRequest req;
    req.set_job_id("job-000001");
    w->reader = stub->WatchJob(w->ctx.get(), req);
    v1::JobEvent ev;
    return w->reader->Read(&ev);  // the first event: the stream is being served
  };
  std::vector<Watch> watches(4);
  for (auto& w : watches) ASSERT_TRUE(open(&w));
  Watch extra;
  EXPECT_FALSE(open(&extra)) << "a 5th stream from one client was served";
  grpc::Status st = extra.reader->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
  EXPECT_NE(st.error_message().find("--max-streams-per-client"), std::string::npos) << st.error_message();
  // Unary calls are served while the streams are open.
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(c.Get("job-000001").state(), v1::QUEUED);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
  // Closing one frees its place.
  watches[0].ctx->TryCancel();
  watches[0].reader->Finish();
  bool reopened = testutil::WaitFor([&] { return open(&watches[0]); }, 10);
  EXPECT_TRUE(reopened);
  for (auto& w : watches) {
    w.ctx->TryCancel();
    w.reader->Finish();
  }
  // Probes that cannot send a token nor speak TLS use /healthz on the metrics port.
  int code = 0;
  EXPECT_EQ(testutil::HttpGet(c.metrics(), "/healthz", &code), "ok\n");
  EXPECT_EQ(code, 200);
}

TEST(HardeningTest, LoopbackCoordinatorRequiresItsGeneratedTokenWhichOnlyItsOwnerReads) {
  TempDir dir("hard");
  const std::string state = dir.path() + "/state";
  Coordinator c(state, {"--launcher", "none"});
  c.require_local_token(true);  // the default: no --allow-unauthenticated-loopback
  c.Start();
  struct stat st {};
  ASSERT_EQ(::stat((state + "/token").c_str(), &st), 0) << c.log();
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(state.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  const std::string token = testutil::ReadText(state + "/token").substr(0, 64);
  // No token: refused (gRPC and vicregctl), also by the web API.
  v1::ListJobsResponse list;
  EXPECT_EQ(c.Stub()->ListJobs(Coordinator::Ctx().get(), v1::ListJobsRequest(), &list).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(c.Ctl({"list"}).exit_code, 4);
  int code = 0;
  testutil::HttpGet(c.metrics(), "/api/v1/jobs", &code);
  EXPECT_EQ(code, 401);
  // The owner: vicregctl finds the address and the token through the state dir.
  server::CommandResult r = server::RunCommand({testutil::CtlBinary(), "--state-dir", state, "list"}, 30);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(c.Stub()->ListJobs(Coordinator::Ctx(token).get(), v1::ListJobsRequest(), &list).error_code(),
            grpc::StatusCode::OK);
  // Another local user cannot read the token (nor anything in the state dir).
  if (::geteuid() == 0 && ::access("/usr/bin/setpriv", X_OK) == 0) {
    r = server::RunCommand({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            testutil::CtlBinary(), "--state-dir", state, "--server", c.address(), "list"},
                           30);
    EXPECT_EQ(r.exit_code, 4) << "another user got in:\n" << r.out << r.err;
  }
  // The token survives a restart (clients keep working).
  c.Stop();
  c.Start();
  EXPECT_EQ(testutil::ReadText(state + "/token").substr(0, 64), token);
  EXPECT_EQ(c.Stub()->ListJobs(Coordinator::Ctx(token).get(), v1::ListJobsRequest(), &list).error_code(),
            grpc::StatusCode::OK);
}

}  // namespace
}  // namespace vicreg
