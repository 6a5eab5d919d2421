// An independent client: Python grpcio (/usr/bin/python3, Debian python3-grpcio) with stubs
// generated in the test from the proto (protoc + grpc_python_plugin) does health, reflection,
// submit/get/watch/list/logs against a real coordinator running a real 2-rank job.
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

}  // namespace
}  // namespace vicreg
