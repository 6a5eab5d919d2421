// An independent client: Python grpcio (/usr/bin/python3, Debian python3-grpcio) with stubs
// generated in the test from the proto (protoc + grpc_python_plugin) does health, reflection,
// submit/get/watch/list/logs against a real coordinator running a real 2-rank job, and reads the
// standard error details (google.rpc.Status + BadRequest) of rejected requests.
#include <gtest/gtest.h>
#include <unistd.h>

#include "server/process.h"
#include "tests/server/test_util.h"

namespace vicreg {
namespace {

TEST(PythonClientTest, SubmitGetWatchAndHealthThroughGrpcio) {
  for (const char* tool : {"/usr/bin/python3", "/usr/bin/grpc_python_plugin", "/usr/bin/protoc",
                           "/usr/share/grpc-proto/grpc/health/v1/health.proto"}) {
    ASSERT_EQ(access(tool, R_OK), 0) << tool << " is missing (deploy/install-deps.sh installs it)";
  }
  ASSERT_EQ(access(testutil::RealWorkerBinary().c_str(), X_OK), 0) << testutil::RealWorkerBinary();
  testutil::TempDir dir("py");
  testutil::Coordinator c(dir.path() + "/state", {"--slots", "2", "--worker-binary", testutil::RealWorkerBinary(),
                                                  "--eval-binary", "off", "--poll-interval", "0.2"});
  c.Start();
  server::CommandResult r =
      server::RunCommand({"/usr/bin/python3", testutil::SourceDir() + "/tests/server/grpc_client_check.py", "--server",
                          c.address(), "--source-dir", testutil::SourceDir(), "--job",
                          testutil::SourceDir() + "/configs/tiny_cpu.yaml", "--gen-dir", dir.path() + "/gen"},
                         600);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err << "\ncoordinator log:\n" << c.log();
  EXPECT_NE(r.out.find("ok   watch ends with SUCCEEDED"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("FAIL"), std::string::npos) << r.out;
}

// The standard error model from another language: the rejected submit's google.rpc.BadRequest
// (trailer grpc-status-details-bin) names every bad key path; times come as Timestamps (~2 s).
TEST(PythonClientTest, ErrorDetailsAreStandardBadRequestsReadableByGrpcio) {
  for (const char* tool : {"/usr/bin/python3", "/usr/bin/grpc_python_plugin", "/usr/bin/protoc"}) {
    ASSERT_EQ(access(tool, R_OK), 0) << tool << " is missing (deploy/install-deps.sh installs it)";
  }
  testutil::TempDir dir("pydetails");
  testutil::Coordinator c(dir.path() + "/state", {"--slots", "2", "--launcher", "none"});
  c.Start();
  server::CommandResult r =
      server::RunCommand({"/usr/bin/python3", testutil::SourceDir() + "/tests/server/grpc_error_details_check.py",
                          "--server", c.address(), "--source-dir", testutil::SourceDir(), "--gen-dir",
                          dir.path() + "/gen"},
                         120);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err << "\ncoordinator log:\n" << c.log();
  EXPECT_NE(r.out.find("ok   BadRequest names train.batch_size"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("FAIL"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace vicreg
