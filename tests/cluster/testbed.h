// Test helper: the multi-node Slurm test bed (tests/cluster/testbed.sh) from GoogleTest.
//
// One bed per test process, set up once by a gtest Environment: under ctest the fixture test
// `cluster_testbed_up` has already brought a shared bed up (VICREG_TESTBED_DIR names it) and
// `cluster_testbed_down` takes it down after the last cluster test; run by hand, the first test
// brings up a private bed under /tmp and the Environment takes it down at exit. Tests call
// REQUIRE_TESTBED() first: it skips, with the script's reason, where namespaces cannot be created,
// and resets the bed (no jobs, every node up and idle) so that each test starts from the same state.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "tests/comm/subprocess.h"

namespace vicreg::testing {

class TestBed {
 public:
  static TestBed& Get() {
    static TestBed bed;
    return bed;
  }

  // "" when the bed is up (ours or the shared one), else why not (the test skips or fails).
  const std::string& Up() {
    if (tried_) return status_;
    tried_ = true;
    const char* shared = std::getenv("VICREG_TESTBED_DIR");
    if (shared && *shared) {
      dir_ = shared;
    } else {
      dir_ = "/tmp/vicreg-testbed-" + std::to_string(getpid());
      own_ = true;
    }
    auto r = Script({"up"}, 180);
    if (r.exit_code == 77) {
      skip_ = true;
      status_ = r.output;
    } else if (!r.ok()) {
      status_ = "testbed.sh up failed (exit " + std::to_string(r.exit_code) + "):\n" + r.output;
    }
    return status_;
  }
  void Down() {
    if (own_ && tried_) Script({"down", "--purge"}, 60);
  }
  bool skip() const { return skip_; }

  const std::string& dir() const { return dir_; }
  std::string bin() const { return dir_ + "/bin"; }
  std::string conf() const { return dir_ + "/slurm.conf"; }

  // testbed.sh --dir <dir> args...
  ProcessResult Script(const std::vector<std::string>& args, double timeout_s) const {
    std::vector<std::string> a = {VICREG_SOURCE_DIR "/tests/cluster/testbed.sh", "--dir", dir_};
    a.insert(a.end(), args.begin(), args.end());
    return RunProcess(a, timeout_s);
  }
  // argv in member `where` (login, ctl, node1..): testbed.sh exec where argv...
  ProcessResult Exec(const std::string& where, const std::vector<std::string>& argv, double timeout_s,
                     const std::vector<std::string>& env = {}) const {
    std::vector<std::string> a = {VICREG_SOURCE_DIR "/tests/cluster/testbed.sh", "--dir", dir_, "exec", where};
    if (!env.empty()) {
      a.push_back("env");
      a.insert(a.end(), env.begin(), env.end());
    }
    a.insert(a.end(), argv.begin(), argv.end());
    return RunProcess(a, timeout_s);
  }
  ProcessResult Login(const std::vector<std::string>& argv, double timeout_s,
                      const std::vector<std::string>& env = {}) const {
    return Exec("login", argv, timeout_s, env);
  }
  // No jobs, every node up and idle. "" or what went wrong.
  std::string Reset() const {
    auto r = Script({"reset"}, 120);
    return r.ok() ? "" : "testbed.sh reset failed:\n" + r.output;
  }

 private:
  std::string dir_, status_;
  bool tried_ = false, own_ = false, skip_ = false;
};

class TestBedEnvironment : public ::testing::Environment {
 public:
  void TearDown() override { TestBed::Get().Down(); }
};

// Registered once per test binary (inline variable: one instance however many TUs include this).
inline ::testing::Environment* const kTestBedEnvironment = ::testing::AddGlobalTestEnvironment(new TestBedEnvironment);

#define REQUIRE_TESTBED()                                                 \
  do {                                                                    \
    const std::string& why_ = ::vicreg::testing::TestBed::Get().Up();     \
    if (::vicreg::testing::TestBed::Get().skip()) GTEST_SKIP() << why_;   \
    ASSERT_TRUE(why_.empty()) << why_;                                    \
    const std::string reset_ = ::vicreg::testing::TestBed::Get().Reset(); \
    ASSERT_TRUE(reset_.empty()) << reset_;                                \
  } while (0)

}  // namespace vicreg::testing
