// vicreg_coordinator as a real process, driven over gRPC and with vicregctl, with jobs that
// need behaviour the real worker cannot be asked for (tests/server/fake_worker.py: a hang, an
// exit code 2) or no worker at all (--launcher none): malformed requests and authentication,
// TLS, stall detection, cancellation, permanent failures, the non-loopback guard.
// The real-worker end-to-end tests are in e2e_test.cc.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "common/run_contract.h"
#include "server/process.h"
#include "tests/server/test_util.h"

namespace vicreg {
namespace {

using testutil::Coordinator;
using testutil::TempDir;

const char* kToken = "t0k3n-for-tests-only";

class CoordinatorTest : public ::testing::Test {
 protected:
  // A coordinator on 2 CPU slots launching the fake worker.
  std::unique_ptr<Coordinator> StartFake(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--slots",           "2",   "--worker-binary", testutil::FakeWorker(),
                                     "--eval-binary",     "off", "--poll-interval", "0.1",
                                     "--restart-backoff", "0.2", "--stop-grace",    "2"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto c = std::make_unique<Coordinator>(dir_.path() + "/state", args);
    c->Start();
    return c;
  }
  std::string Write(const std::string& name, const std::string& yaml) {
    std::string p = dir_.path() + "/" + name;
    testutil::WriteText(p, yaml);
    return p;
  }
  TempDir dir_{"coord"};
};

// ---- malformed requests ---------------------------------------------------------------------

struct BadCase {
  std::string what;
  grpc::StatusCode code;
  std::vector<std::string> must_mention;  // substrings of the status message
  std::function<grpc::Status(v1::Coordinator::Stub&)> call;
};

grpc::Status Submit(v1::Coordinator::Stub& stub, const std::string& yaml, const std::string& token = kToken,
                    const std::string& request_id = "", std::vector<std::string> overrides = {}) {
  v1::SubmitJobRequest req;
  req.set_job_yaml(yaml);
  req.set_client_request_id(request_id);
  for (auto& o : overrides) req.add_overrides(o);
  v1::SubmitJobResponse resp;
  auto ctx = Coordinator::Ctx(token);
  return stub.SubmitJob(ctx.get(), req, &resp);
}

TEST_F(CoordinatorTest, MalformedRequestsGetTheRightCodeAndTheCoordinatorKeepsServing) {
  std::string token_file = Write("token", std::string(kToken) + "\n");
  // launcher none: nothing is started; small request limit to test the size guard cheaply.
  auto c = std::make_unique<Coordinator>(
      dir_.path() + "/state", std::vector<std::string>{"--slots", "2", "--launcher", "none", "--token-file", token_file,
                                                       "--max-request-bytes", "65536"});
  c->Start();
  auto stub = c->Stub();
  const std::string ok_yaml = "name: ok\nresources: {ranks: 2}\n";
  {
    v1::SubmitJobRequest req;
    req.set_job_yaml(ok_yaml);
    req.set_client_request_id("req-A");
    v1::SubmitJobResponse resp;
    auto ctx = Coordinator::Ctx(kToken);
    ASSERT_TRUE(stub->SubmitJob(ctx.get(), req, &resp).ok());
    ASSERT_EQ(resp.job_id(), "job-000001");
    EXPECT_EQ(resp.state(), v1::QUEUED);
  }
  using C = grpc::StatusCode;
  std::vector<BadCase> cases = {
      {"bad YAML syntax",
       C::INVALID_ARGUMENT,
       {"job_yaml"},
       [](auto& s) { return Submit(s, "name: [unclosed\nresources: {ranks: 2\n"); }},
      {"YAML that is not a mapping", C::INVALID_ARGUMENT, {}, [](auto& s) { return Submit(s, "- a\n- b\n"); }},
      {"empty YAML", C::INVALID_ARGUMENT, {"job_yaml is empty"}, [](auto& s) { return Submit(s, "  \n"); }},
      {"unknown top-level key",
       C::INVALID_ARGUMENT,
       {"trian", "train"},
       [](auto& s) { return Submit(s, "name: x\ntrian: {batch_size: 8}\n"); }},
      {"unknown nested key",
       C::INVALID_ARGUMENT,
       {"train.vicreg", "lamda_invariance"},
       [](auto& s) { return Submit(s, "name: x\ntrain: {vicreg: {lamda_invariance: 25}}\n"); }},
      {"negative batch size",
       C::INVALID_ARGUMENT,
       {"train.batch_size", "-1"},
       [](auto& s) { return Submit(s, "name: x\ntrain: {batch_size: -1}\n"); }},
      {"negative learning rate and gamma, both reported",
       C::INVALID_ARGUMENT,
       {"train.learning_rate", "train.vicreg.gamma"},
       [](auto& s) { return Submit(s, "name: x\ntrain: {learning_rate: -0.1, vicreg: {gamma: -1}}\n"); }},
      {"wrong type",
       C::INVALID_ARGUMENT,
       {"train.batch_size"},
       [](auto& s) { return Submit(s, "name: x\ntrain: {batch_size: many}\n"); }},
      {"huge ranks",
       C::INVALID_ARGUMENT,
       {"resources.ranks"},
       [](auto& s) { return Submit(s, "name: x\nresources: {ranks: 1000000}\n"); }},
      {"ranks above max_ranks_per_job",
       C::INVALID_ARGUMENT,
       {"resources.ranks", "max_ranks_per_job"},
       [](auto& s) { return Submit(s, "name: x\nresources: {ranks: 100}\n"); }},
      {"zero ranks",
       C::INVALID_ARGUMENT,
       {"resources.ranks"},
       [](auto& s) { return Submit(s, "name: x\nresources: {ranks: 0}\n"); }},
      {"more ranks than slots",
       C::FAILED_PRECONDITION,
       {"needs 3 slots", "only 2"},
       [](auto& s) { return Submit(s, "name: x\nresources: {ranks: 3}\n"); }},
      {"cuda job on CPU slots",
       C::FAILED_PRECONDITION,
       {"cuda", "--gpus"},
       [](auto& s) { return Submit(s, "name: x\nresources: {ranks: 1, device: cuda}\n"); }},
      {"path traversal in the name",
       C::INVALID_ARGUMENT,
       {"name", "../../etc"},
       [](auto& s) { return Submit(s, "name: ../../etc\n"); }},
      {"slash in the name", C::INVALID_ARGUMENT, {"name"}, [](auto& s) { return Submit(s, "name: a/b\n"); }},
      {"over-long name",
       C::INVALID_ARGUMENT,
       {"name"},
       [](auto& s) { return Submit(s, "name: " + std::string(65, 'n') + "\n"); }},
      {"warmup not below num_epochs",
       C::INVALID_ARGUMENT,
       {"warmup_epochs"},
       [](auto& s) { return Submit(s, "name: x\ntrain: {num_epochs: 5, warmup_epochs: 5}\n"); }},
      {"bad override",
       C::INVALID_ARGUMENT,
       {"train.batchsize"},
       [](auto& s) { return Submit(s, "name: x\n", kToken, "", {"train.batchsize=4"}); }},
      {"bad client_request_id",
       C::INVALID_ARGUMENT,
       {"client_request_id"},
       [](auto& s) { return Submit(s, "name: x\n", kToken, "has space"); }},
      {"request id reused with another spec",
       C::ALREADY_EXISTS,
       {"req-A", "job-000001"},
       [](auto& s) { return Submit(s, "name: other\n", kToken, "req-A"); }},
      {"oversized request",
       C::RESOURCE_EXHAUSTED,
       {},
       [](auto& s) { return Submit(s, "name: x\n#" + std::string(100000, 'x') + "\n"); }},
      {"missing token", C::UNAUTHENTICATED, {"missing bearer token"}, [&](auto& s) { return Submit(s, ok_yaml, ""); }},
      {"wrong token",
       C::UNAUTHENTICATED,
       {"invalid bearer token"},
       [&](auto& s) { return Submit(s, ok_yaml, "not-the-token"); }},
      {"token prefix only",
       C::UNAUTHENTICATED,
       {"invalid bearer token"},
       [&](auto& s) { return Submit(s, ok_yaml, std::string(kToken).substr(0, 5)); }},
      {"wrong scheme",
       C::UNAUTHENTICATED,
       {"Bearer"},
       [&](auto& s) {
         v1::GetJobRequest req;
         req.set_job_id("job-000001");
         v1::Job job;
         auto ctx = Coordinator::Ctx();
         ctx->AddMetadata("authorization", std::string("Basic ") + kToken);
         return s.GetJob(ctx.get(), req, &job);
       }},
      {"unknown job id",
       C::NOT_FOUND,
       {"job-999999"},
       [](auto& s) {
         v1::GetJobRequest req;
         req.set_job_id("job-999999");
         v1::Job job;
         auto ctx = Coordinator::Ctx(kToken);
         return s.GetJob(ctx.get(), req, &job);
       }},
      {"path traversal as job id",
       C::INVALID_ARGUMENT,
       {"job_id", "not a job id"},
       [](auto& s) {
         v1::GetJobRequest req;
         req.set_job_id("../../../etc/passwd");
         v1::Job job;
         auto ctx = Coordinator::Ctx(kToken);
         return s.GetJob(ctx.get(), req, &job);
       }},
      {"empty job id",
       C::INVALID_ARGUMENT,
       {"job_id"},
       [](auto& s) {
         v1::CancelJobRequest req;
         v1::Job job;
         auto ctx = Coordinator::Ctx(kToken);
         return s.CancelJob(ctx.get(), req, &job);
       }},
      {"cancel of an unknown job",
       C::NOT_FOUND,
       {"job-000777"},
       [](auto& s) {
         v1::CancelJobRequest req;
         req.set_job_id("job-000777");
         v1::Job job;
         auto ctx = Coordinator::Ctx(kToken);
         return s.CancelJob(ctx.get(), req, &job);
       }},
      {"bad page token",
       C::INVALID_ARGUMENT,
       {"page_token"},
       [](auto& s) {
         v1::ListJobsRequest req;
         req.set_page_token("bm90LWEtdG9rZW4");
         v1::ListJobsResponse resp;
         auto ctx = Coordinator::Ctx(kToken);
         return s.ListJobs(ctx.get(), req, &resp);
       }},
      {"negative page size",
       C::INVALID_ARGUMENT,
       {"page_size"},
       [](auto& s) {
         v1::ListJobsRequest req;
         req.set_page_size(-5);
         v1::ListJobsResponse resp;
         auto ctx = Coordinator::Ctx(kToken);
         return s.ListJobs(ctx.get(), req, &resp);
       }},
      {"state filter out of the enum",
       C::INVALID_ARGUMENT,
       {"state"},
       [](auto& s) {
         v1::ListJobsRequest req;
         req.set_state(static_cast<v1::JobState>(42));
         v1::ListJobsResponse resp;
         auto ctx = Coordinator::Ctx(kToken);
         return s.ListJobs(ctx.get(), req, &resp);
       }},
      {"log rank out of range",
       C::INVALID_ARGUMENT,
       {"rank 7"},
       [](auto& s) {
         v1::StreamLogsRequest req;
         req.set_job_id("job-000001");
         req.set_rank(7);
         auto ctx = Coordinator::Ctx(kToken);
         auto r = s.StreamLogs(ctx.get(), req);
         v1::LogChunk chunk;
         while (r->Read(&chunk)) {
         }
         return r->Finish();
       }},
      {"negative log offset",
       C::INVALID_ARGUMENT,
       {"offset"},
       [](auto& s) {
         v1::StreamLogsRequest req;
         req.set_job_id("job-000001");
         req.set_offset(-1);
         auto ctx = Coordinator::Ctx(kToken);
         auto r = s.StreamLogs(ctx.get(), req);
         v1::LogChunk chunk;
         while (r->Read(&chunk)) {
         }
         return r->Finish();
       }},
      {"watch of an unknown job",
       C::NOT_FOUND,
       {"job-000404"},
       [](auto& s) {
         v1::WatchJobRequest req;
         req.set_job_id("job-000404");
         auto ctx = Coordinator::Ctx(kToken);
         auto r = s.WatchJob(ctx.get(), req);
         v1::JobEvent ev;
         while (r->Read(&ev)) {
         }
         return r->Finish();
       }},
      {"eval that does not exist",
       C::NOT_FOUND,
       {"epoch 3"},
       [](auto& s) {
         v1::GetEvalRequest req;
         req.set_job_id("job-000001");
         req.set_epoch(3);
         req.set_dataset("cifar10");
         v1::EvalTask t;
         auto ctx = Coordinator::Ctx(kToken);
         return s.GetEval(ctx.get(), req, &t);
       }},
  };
  ASSERT_GE(cases.size(), 20u);
  for (const auto& bc : cases) {
    grpc::Status st = bc.call(*stub);
    EXPECT_EQ(st.error_code(), bc.code) << bc.what << ": got " << st.error_code() << " " << st.error_message();
    EXPECT_FALSE(st.error_message().empty()) << bc.what;
    for (const auto& m : bc.must_mention) {
      EXPECT_NE(st.error_message().find(m), std::string::npos)
          << bc.what << ": message should mention '" << m << "': " << st.error_message();
    }
  }
  // Still serving: health, a valid submit, the idempotent retry, listing.
  {
    v1::SubmitJobResponse resp;
    v1::SubmitJobRequest req;
    req.set_job_yaml(ok_yaml);
    req.set_client_request_id("req-A");
    auto ctx = Coordinator::Ctx(kToken);
    ASSERT_TRUE(stub->SubmitJob(ctx.get(), req, &resp).ok());
    EXPECT_EQ(resp.job_id(), "job-000001");
    EXPECT_TRUE(resp.duplicate());
    ASSERT_TRUE(Submit(*stub, "name: ok2\n").ok());
    v1::ListJobsRequest lreq;
    v1::ListJobsResponse lresp;
    auto lctx = Coordinator::Ctx(kToken);
    ASSERT_TRUE(stub->ListJobs(lctx.get(), lreq, &lresp).ok());
    EXPECT_EQ(lresp.total_size(), 2);  // rejected submits left nothing behind
    EXPECT_NE(c->Get("job-000001", kToken).pending_reason().find("--launcher none"), std::string::npos);
  }
  // vicregctl maps the codes to exit codes: 4 auth, 3 not found, 2 invalid, 0 ok.
  std::string bad = Write("bad.yaml", "name: x\ntrain: {batch_size: -1}\ntrian: {epochs: 2}\n");
  auto r = c->Ctl({"status", "job-000001"});
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_NE(r.err.find("UNAUTHENTICATED"), std::string::npos) << r.err;
  r = c->Ctl({"--token-file", token_file, "status", "job-000099"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  r = c->Ctl({"--token-file", token_file, "submit", bad});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  // Each violated field of the status details on its own line, once.
  EXPECT_NE(r.err.find("\n  train.batch_size: must be in [1, 1048576], got -1"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("\n  trian: unknown key; did you mean 'train'?"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("train.batch_size"), r.err.rfind("train.batch_size")) << r.err;
  r = c->Ctl({"submit", dir_.path() + "/missing.yaml"}, 30, {"VICREG_TOKEN=" + std::string(kToken)});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  r = c->Ctl({"status", "job-000001"}, 30, {"VICREG_TOKEN=" + std::string(kToken)});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("QUEUED"), std::string::npos) << r.out;
  r = c->Ctl({"frobnicate"});
  EXPECT_EQ(r.exit_code, 2);
  // The coordinator's RPC counters saw the rejections.
  std::string metrics = testutil::HttpGet(c->metrics(), "/metrics");
  EXPECT_NE(metrics.find("UNAUTHENTICATED"), std::string::npos);
  EXPECT_NE(metrics.find("vicreg_jobs_submitted_total"), std::string::npos);
}

TEST_F(CoordinatorTest, RefusesToListenBeyondLoopbackWithoutAToken) {
  server::CommandResult r = server::RunCommand(
      {testutil::CoordinatorBinary(), "--state-dir", dir_.path() + "/s", "--listen", "0.0.0.0:0", "--launcher", "none"},
      30);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("bearer token is required"), std::string::npos) << r.err;
  r = server::RunCommand({testutil::CoordinatorBinary(), "--slots", "2", "--gpus", "0"}, 30);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("exclude each other"), std::string::npos) << r.err;
  // A second coordinator on the same state dir is refused.
  auto c = std::make_unique<Coordinator>(dir_.path() + "/one", std::vector<std::string>{"--launcher", "none"});
  c->Start();
  r = server::RunCommand({testutil::CoordinatorBinary(), "--state-dir", dir_.path() + "/one", "--listen", "127.0.0.1:0",
                          "--metrics-port", "off", "--launcher", "none"},
                         30);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("in use by another vicreg_coordinator"), std::string::npos) << r.err;
}

// The --config file and the flags are one table (issue 20): the file is read by the job file's
// reader (every problem at once, line/column, did-you-mean across sections), bounds hold whatever
// set the value and name where it came from, flags override the file, and the reference in
// docs/OPERATIONS.md is the table's own output.
TEST_F(CoordinatorTest, ConfigFileAndFlagsAreOneTable) {
  const std::string coord = testutil::CoordinatorBinary();
  std::string bad = Write("bad.yaml", "slot: 2\nslurm: {partion: gpu}\nmax_streams: many\npartition: cpu\n");
  server::CommandResult r = server::RunCommand({coord, "--config", bad}, 30);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find(bad + ": 4 problems"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("\n  slot: unknown key; did you mean 'slots'? (line 1, column 1)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("\n  slurm.partion: unknown key; did you mean 'slurm.partition'? (line 2, column 9)"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("\n  max_streams: expected an integer, got 'many' (line 3, column 1)"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("\n  partition: unknown key; did you mean 'slurm.partition'?"), std::string::npos) << r.err;

  // Bounds: a file value names the file's line, a flag value the flag; all problems at once.
  std::string slow = Write("slow.yaml", "launcher: none\npoll_interval_s: 0\nlog_level: chatty\n");
  r = server::RunCommand({coord, "--config", slow, "--max-page-size", "0"}, 30);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("configuration: 3 problems"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("\n  poll_interval_s: must be in [0.01, 60] (--poll-interval), got 0 (" + slow +
                       ", line 2, column 1)"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("\n  log_level: must be trace, debug, info, warn or error (--log-level), got 'chatty' (" + slow +
                       ", line 3, column 1)"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("\n  max_page_size: must be in [1, 100000] (--max-page-size), got 0 (from --max-page-size)"),
            std::string::npos)
      << r.err;
  // Flags override the file: with them the bounds hold, and the next rule (the listen address) speaks.
  r = server::RunCommand(
      {coord, "--config", slow, "--poll-interval", "0.5", "--log-level", "warn", "--listen", "127.0.0.1:99999"}, 30);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(r.err.find("poll_interval_s"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("port must be 0..65535"), std::string::npos) << r.err;

  // The reference: every key once, and docs/OPERATIONS.md carries exactly this table.
  r = server::RunCommand({coord, "--config-reference"}, 30);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* key : {"`listen`", "`slurm.partition`", "`slurm.max_submitted_jobs`", "`log_level`"}) {
    EXPECT_NE(r.out.find(std::string("| ") + key + " |"), std::string::npos) << key;
  }
  EXPECT_NE(r.out.find("| `poll_interval_s` | `--poll-interval` | `0.5` | 0.01 .. 60 |"), std::string::npos) << r.out;
  const std::string ops = testutil::ReadText(std::string(VICREG_SOURCE_DIR) + "/docs/OPERATIONS.md");
  EXPECT_NE(
      ops.find("<!-- coordinator-config-reference: begin -->\n" + r.out + "<!-- coordinator-config-reference: end -->"),
      std::string::npos)
      << "docs/OPERATIONS.md \"Configuration\" is stale; replace its table with the output of\n"
         "  vicreg_coordinator --config-reference";
}

TEST_F(CoordinatorTest, ServesTlsWhenConfigured) {
  std::string cert = dir_.path() + "/cert.pem", key = dir_.path() + "/key.pem";
  server::CommandResult gen = server::RunCommand(
      {"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost", "-addext",
       "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", key, "-out", cert},
      60);
  if (gen.exit_code != 0) GTEST_SKIP() << "openssl cannot make a test certificate: " << gen.err;
  auto c = std::make_unique<Coordinator>(
      dir_.path() + "/state",
      std::vector<std::string>{"--launcher", "none", "--slots", "1", "--tls-cert", cert, "--tls-key", key});
  c->Start();
  std::string job = Write("j.yaml", "name: tls\n");
  auto r = c->Ctl({"--tls-ca", cert, "submit", job});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("job-000001"), std::string::npos);
  r = c->Ctl({"--timeout", "3", "list"});  // plaintext against TLS
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.err.find("UNAVAILABLE"), std::string::npos) << r.err;
}

// ---- lifecycle with the fake worker -----------------------------------------------------------

TEST_F(CoordinatorTest, StalledAttemptIsStoppedAndRestartedThenFails) {
  auto c = StartFake({"--no-progress-timeout", "1.5"});
  std::string job = Write("hang.yaml", "name: hang\nresources: {ranks: 2}\ntrain: {max_steps: 20}\nmax_restarts: 1\n");
  auto r = c->Ctl({"submit", job, "--wait"}, 120);
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  v1::Job j = c->Get("job-000001");
  ASSERT_EQ(j.state(), v1::FAILED);
  EXPECT_EQ(j.restarts(), 1);
  ASSERT_EQ(j.attempts_size(), 2);
  EXPECT_EQ(j.attempts(1).restart_reason(), "no_progress");
  EXPECT_NE(j.attempts(0).cause().find("no progress for"), std::string::npos) << j.attempts(0).cause();
  EXPECT_NE(j.last_error().find("step stuck at 2"), std::string::npos) << j.last_error();
  // The stopped attempts left no process behind.
  for (const auto& a : j.attempts()) {
    int pid = std::atoi(a.handle().substr(6).c_str());
    ASSERT_GT(pid, 0) << a.handle();
    EXPECT_TRUE(testutil::WaitFor([&] { return server::SessionMembers(pid).empty(); }, 10)) << a.handle();
  }
  std::string metrics;
  EXPECT_TRUE(testutil::WaitFor(
      [&] {
        metrics = testutil::HttpGet(c->metrics(), "/metrics");
        return metrics.find("vicreg_job_restarts_total{reason=\"no_progress\"} 1") != std::string::npos;
      },
      5))
      << metrics;
}

TEST_F(CoordinatorTest, InvalidInputExitIsNotRetried) {
  auto c = StartFake();
  std::string job = Write("e2.yaml", "name: exit2\nresources: {ranks: 2}\nmax_restarts: 3\n");
  auto r = c->Ctl({"submit", job, "--wait"}, 60);
  EXPECT_EQ(r.exit_code, 1);
  v1::Job j = c->Get("job-000001");
  EXPECT_EQ(j.state(), v1::FAILED);
  EXPECT_EQ(j.restarts(), 0);
  EXPECT_NE(j.last_error().find("exited with code 2"), std::string::npos) << j.last_error();
  EXPECT_NE(j.last_error().find("invalid input (fake)"), std::string::npos) << j.last_error();  // log tail
}

TEST_F(CoordinatorTest, CancelStopsAllRanksAndFreesTheSlotsOnceTheyAreGone) {
  auto c = StartFake();
  std::string slow = Write("slow.yaml", "name: slow\nresources: {ranks: 2}\ntrain: {max_steps: 1000}\n");
  std::string next = Write("next.yaml", "name: next\nresources: {ranks: 2}\ntrain: {max_steps: 5}\n");
  ASSERT_EQ(c->Ctl({"submit", slow}).exit_code, 0);
  ASSERT_EQ(c->Ctl({"submit", next}).exit_code, 0);
  ASSERT_TRUE(testutil::WaitFor([&] { return c->Get("job-000001").state() == v1::RUNNING; }, 30));
  v1::Job waiting = c->Get("job-000002");
  EXPECT_EQ(waiting.state(), v1::QUEUED);
  EXPECT_EQ(waiting.pending_reason(), "waiting for 2 slots, 0 free (job-000001 holds 2)");
  auto status = c->Ctl({"status", "job-000002"});
  EXPECT_NE(status.out.find("pending:    waiting for 2 slots, 0 free (job-000001 holds 2)"), std::string::npos)
      << status.out;
  // A queued job cancels without ever starting.
  std::string third = Write("third.yaml", "name: third\nresources: {ranks: 1}\n");
  ASSERT_EQ(c->Ctl({"submit", third}).exit_code, 0);
  auto r = c->Ctl({"cancel", "job-000003", "--reason", "not needed"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(c->Get("job-000003").state(), v1::CANCELLED);
  EXPECT_EQ(c->Get("job-000003").attempt(), 0);

  v1::Job running = c->Get("job-000001");
  int pid = std::atoi(running.attempts(0).handle().substr(6).c_str());
  ASSERT_GT(pid, 0);
  ASSERT_FALSE(server::SessionMembers(pid).empty());
  auto t0 = std::chrono::steady_clock::now();
  r = c->Ctl({"cancel", "job-000001"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("CANCELLED"), std::string::npos) << r.out;
  EXPECT_EQ(c->Get("job-000001").state(), v1::CANCELLED);
  // The ranks (which exit on SIGTERM) are gone within the grace period, and then their slots go to
  // the waiting job (never while they run: server_stop_test CancelledRanksKeepTheirSlotsUntilGone...).
  EXPECT_TRUE(testutil::WaitFor([&] { return c->Get("job-000002").state() != v1::QUEUED; }, 5));
  EXPECT_TRUE(testutil::WaitFor([&] { return server::SessionMembers(pid).empty(); }, 5));
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 6);
  EXPECT_EQ(c->WaitTerminal("job-000002", 60).state(), v1::SUCCEEDED);
  // Cancelling an ended job returns it unchanged.
  r = c->Ctl({"cancel", "job-000002"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(c->Get("job-000002").state(), v1::SUCCEEDED);
}

TEST_F(CoordinatorTest, GpuSlotsArePlacedAndExportedToTheRanks) {
  auto c = std::make_unique<Coordinator>(
      dir_.path() + "/state", std::vector<std::string>{"--gpus", "2,5,7", "--worker-binary", testutil::FakeWorker(),
                                                       "--eval-binary", "off", "--poll-interval", "0.1"});
  c->Start();
  std::string job = Write("g.yaml", "name: gpujob\nresources: {ranks: 2, device: cuda}\ntrain: {max_steps: 5}\n");
  auto r = c->Ctl({"submit", job, "--wait"}, 60);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  v1::Job j = c->Get("job-000001");
  EXPECT_EQ(j.attempts(0).placement(), "gpu:2,5");
  auto logs = c->Ctl({"logs", "job-000001"});
  EXPECT_NE(logs.out.find("[rank 0] fake worker rank 0 job job-000001 name gpujob pid"), std::string::npos) << logs.out;
  EXPECT_NE(logs.out.find("CUDA_VISIBLE_DEVICES=2,5"), std::string::npos) << logs.out;
  // A 4-rank job can never fit on 3 GPUs.
  std::string big = Write("g4.yaml", "name: big\nresources: {ranks: 4, device: cuda}\n");
  r = c->Ctl({"submit", big});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("only 3 GPU slots (--gpus 2,5,7)"), std::string::npos) << r.err;
}

TEST_F(CoordinatorTest, ListPagesAndJsonOutput) {
  auto c = std::make_unique<Coordinator>(dir_.path() + "/state",
                                         std::vector<std::string>{"--launcher", "none", "--slots", "1"});
  c->Start();
  std::string job = Write("j.yaml", "name: many\n");
  for (int i = 0; i < 7; ++i) ASSERT_EQ(c->Ctl({"submit", job}).exit_code, 0);
  auto r = c->Ctl({"list", "--limit", "3"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("job-000007"), std::string::npos);
  EXPECT_EQ(r.out.find("job-000004"), std::string::npos);
  EXPECT_NE(r.err.find("3 of 7"), std::string::npos) << r.err;
  r = c->Ctl({"-o", "json", "list", "--limit", "3", "--all", "--state", "queued"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["jobs"].size(), 7u);
  EXPECT_EQ(j["jobs"][0]["id"], "job-000007");
  EXPECT_EQ(j["jobs"][6]["id"], "job-000001");
  EXPECT_EQ(j["total_size"], "7");  // int64 in proto3 JSON is a string
  r = c->Ctl({"list", "--state", "bogus"});
  EXPECT_EQ(r.exit_code, 2);
}

// Scheduled evaluation through the EvalRunner with a stand-in vicreg_eval (fake_eval.py; the
// end-to-end test with the real vicreg_eval is scheduled_eval_test.cc): checkpoints of the
// listed epochs are evaluated as they land, results stored and exported, a failing dataset is
// retried up to eval.max_attempts and recorded, and the training job still succeeds.
TEST_F(CoordinatorTest, ScheduledEvaluationStoresResultsAndNeverFailsTheJob) {
  auto c = StartFake({"--eval-binary", testutil::SourceDir() + "/tests/server/fake_eval.py", "--eval-slots", "2",
                      "--eval-retry-backoff", "0.2"});
  std::string job =
      Write("ev.yaml",
            "name: evaljob\nresources: {ranks: 2}\ntrain: {max_steps: 20}\n"
            "eval: {epochs: [1, 3], datasets: [{name: fashion_mnist}, {name: mnist}], max_attempts: 2}\n");
  auto r = c->Ctl({"submit", job, "--wait"}, 120);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto stub = c->Stub();
  v1::ListEvalsResponse evals;
  auto done = [&] {
    v1::ListEvalsRequest req;
    req.set_job_id("job-000001");
    evals.Clear();
    auto ctx = Coordinator::Ctx();
    if (!stub->ListEvals(ctx.get(), req, &evals).ok() || evals.tasks_size() != 4) return false;
    for (const auto& t : evals.tasks())
      if (t.state() == v1::EvalTask::PENDING || t.state() == v1::EvalTask::RUNNING) return false;
    return true;
  };
  ASSERT_TRUE(testutil::WaitFor(done, 60)) << evals.DebugString() << c->log();
  for (const auto& t : evals.tasks()) {
    EXPECT_TRUE(t.epoch() == 1 || t.epoch() == 3) << t.epoch();  // epochs 2 and 4 were not asked for
    if (t.dataset() == "fashion_mnist") {
      EXPECT_EQ(t.state(), v1::EvalTask::SUCCEEDED) << t.error();
      EXPECT_EQ(t.attempts(), 1);
      ASSERT_EQ(t.rows_size(), 6);
      bool found = false;
      for (const auto& row : t.rows()) {
        if (row.model() == "vicreg" && row.probe() == "linear") {
          EXPECT_NEAR(row.top1(), 0.5 + t.epoch() / 100.0, 1e-9);
          found = true;
        }
      }
      EXPECT_TRUE(found);
    } else {
      EXPECT_EQ(t.dataset(), "mnist");
      EXPECT_EQ(t.state(), v1::EvalTask::FAILED);
      EXPECT_EQ(t.attempts(), 2);
      EXPECT_NE(t.error().find("exited with code 1"), std::string::npos) << t.error();
      EXPECT_NE(t.error().find("mnist always fails"), std::string::npos) << t.error();  // log tail
    }
  }
  EXPECT_EQ(c->Get("job-000001").state(), v1::SUCCEEDED);
  v1::GetEvalRequest greq;
  greq.set_job_id("job-000001");
  greq.set_epoch(3);
  greq.set_dataset("fashion_mnist");
  v1::EvalTask one;
  auto ctx = Coordinator::Ctx();
  ASSERT_TRUE(stub->GetEval(ctx.get(), greq, &one).ok());
  EXPECT_EQ(one.output_path(), c->RunDir("job-000001") + "/eval/epoch_3_fashion_mnist.json");
  auto table = c->Ctl({"eval", "job-000001"});
  EXPECT_EQ(table.exit_code, 0);
  EXPECT_NE(table.out.find("53.00%"), std::string::npos) << table.out;  // vicreg linear, epoch 3
  EXPECT_NE(table.out.find("FAILED"), std::string::npos) << table.out;
  std::string m = testutil::HttpGet(c->metrics(), "/metrics");
  EXPECT_NE(m.find("vicreg_eval_top1_ratio{dataset=\"fashion_mnist\",job_id=\"job-000001\",probe=\"linear\"} 0.53"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("vicreg_eval_failures_total{job_id=\"job-000001\"} 2"), std::string::npos) << m;
}

// --db-path: the SQLite store on a local disk, the run dirs in the (shared) state dir.
TEST_F(CoordinatorTest, DbPathKeepsTheStoreOutsideTheStateDirAndLocksIt) {
  const std::string db = dir_.path() + "/local-disk/store/vicreg.db";
  auto c = StartFake({"--db-path", db});
  std::string job = Write("db.yaml", "name: dbpath\nresources: {ranks: 1}\ntrain: {max_steps: 3}\n");
  auto r = c->Ctl({"submit", job, "--wait"}, 120);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(access(db.c_str(), F_OK), 0);
  EXPECT_NE(access((c->state_dir() + "/coordinator.db").c_str(), F_OK), 0) << "no store in the state dir";
  EXPECT_EQ(access((c->RunDir("job-000001") + "/progress.json").c_str(), F_OK), 0) << "run dirs stay there";
  auto info = nlohmann::json::parse(testutil::ReadText(c->state_dir() + "/coordinator.json"));
  EXPECT_EQ(info["db_path"], db);
  // Another coordinator (another state dir) cannot open the same store.
  Coordinator other(dir_.path() + "/state2",
                    {"--slots", "1", "--launcher", "none", "--db-path", db, "--worker-binary", testutil::FakeWorker()});
  EXPECT_THROW(other.Start(10), std::runtime_error);
  EXPECT_NE(other.log().find("is in use by another vicreg_coordinator"), std::string::npos) << other.log();
  // Restarted with the same --db-path: the job is there.
  c->Stop();
  c->Start();
  EXPECT_EQ(c->Get("job-000001").state(), v1::SUCCEEDED);
}

}  // namespace
}  // namespace vicreg
